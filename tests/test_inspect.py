"""Disk-format sniffing: declared format must match the data; unsafe headers are refused."""
import struct

import pytest

from imagedata.errors import UnsupportedMediaType
from imagedata.service.inspect import FormatSniffer, check_format


def qcow2(virtual_size=128 << 20, backing=0, data_file=False, version=3):
    header = bytearray(512)
    header[:4] = b"QFI\xfb"
    struct.pack_into(">I", header, 4, version)
    struct.pack_into(">Q", header, 8, backing)
    struct.pack_into(">Q", header, 24, virtual_size)
    struct.pack_into(">Q", header, 72, 0x4 if data_file else 0)
    return bytes(header) + b"\0" * 65536


def sniff(data, piece=1000):
    sniffer = FormatSniffer()
    for i in range(0, len(data), piece):
        sniffer.update(data[i:i + piece])
    return sniffer


def test_qcow2_virtual_size():
    data = qcow2()
    assert check_format(sniff(data), "qcow2", "bare", len(data)) == 128 << 20


@pytest.mark.parametrize("data,disk_format", [
    (b"\x01" * 65536, "qcow2"), (b"", "qcow2"), (qcow2(), "vmdk"), (b"x" * 4096, "iso"),
])
def test_mismatch_is_415(data, disk_format):
    with pytest.raises(UnsupportedMediaType, match="does not match"):
        check_format(sniff(data), disk_format, "bare", len(data))


@pytest.mark.parametrize("data", [qcow2(backing=512), qcow2(data_file=True)])
def test_unsafe_qcow2_is_415(data):
    with pytest.raises(UnsupportedMediaType, match="safety"):
        check_format(sniff(data), "qcow2", "bare", len(data))


def test_raw_accepts_anything_and_reports_its_length():
    assert check_format(sniff(qcow2()), "raw", "bare", 70000) == 70000


@pytest.mark.parametrize("disk_format,container_format", [("aki", "aki"), ("qcow2", "ovf"), ("ploop", "bare")])
def test_uninspected_combinations(disk_format, container_format):
    assert check_format(sniff(b"random"), disk_format, container_format, 6) is None


def test_iso_volume_size():
    data = bytearray(0x9000)
    data[0x8001:0x8006] = b"CD001"
    struct.pack_into("<I", data, 0x8050, 100)
    struct.pack_into("<H", data, 0x8080, 2048)
    assert check_format(sniff(bytes(data)), "iso", "bare", len(data)) == 204800


def test_vhd_footer_at_the_end():
    footer = bytearray(512)
    footer[:8] = b"conectix"
    struct.pack_into(">Q", footer, 48, 1 << 30)
    data = b"\0" * 10000 + bytes(footer)
    assert check_format(sniff(data, piece=777), "vhd", "bare", len(data)) == 1 << 30


def test_vmdk_descriptor_is_refused():
    data = b"# Disk DescriptorFile\nversion=1\nRW 100 FLAT \"/etc/hosts\" 0\n"
    with pytest.raises(UnsupportedMediaType, match="safety"):
        check_format(sniff(data), "vmdk", "bare", len(data))


def test_impossible_virtual_size_is_415():
    data = qcow2(virtual_size=2**64 - 1)
    with pytest.raises(UnsupportedMediaType, match="safety"):
        check_format(sniff(data), "qcow2", "bare", len(data))

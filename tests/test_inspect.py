"""Disk-format inspection, unit level: the capture, each rule of the decision, the header checks.

Real images (qemu-img, xorriso) and hostile ones are in tests/formats, checked against the
reference and qemu-img; these tests pin the pieces with small hand-built headers.
"""
import struct
import time
import uuid

import pytest

from imagedata.errors import UnsupportedMediaType
from imagedata.service.formats import capture, inspector, microsoft, vmdk
from imagedata.service.formats import FormatSniffer, check_format


def qcow2(virtual_size=128 << 20, backing=0, data_file=False, version=3, incompatible=0, extensions=b""):
    """A qcow2 header (64 KiB clusters) followed by a zeroed first cluster."""
    header = bytearray(65536)
    struct.pack_into(">4sIQIIQ", header, 0, b"QFI\xfb", version, backing, 0, 16, virtual_size)
    struct.pack_into(">Q", header, 72, incompatible | (0x4 if data_file else 0))
    struct.pack_into(">II", header, 96, 4, 104)  # refcount order, header length
    header[104:104 + len(extensions)] = extensions
    return bytes(header)


def sniff(data, piece=1000):
    sniffer = FormatSniffer()
    for i in range(0, len(data), piece):
        sniffer.update(data[i:i + piece])
    return sniffer


def decide(data, disk_format, container_format="bare", piece=1000):
    return check_format(sniff(data, piece), disk_format, container_format, len(data))


def refusal(data, disk_format, container_format="bare"):
    with pytest.raises(UnsupportedMediaType) as info:
        decide(data, disk_format, container_format)
    return info.value.message


def test_qcow2_virtual_size():
    assert decide(qcow2(), "qcow2") == 128 << 20


@pytest.mark.parametrize("data,disk_format", [
    (b"\x01" * 65536, "qcow2"), (b"", "qcow2"), (qcow2(), "vmdk"), (b"x" * 4096, "iso"),
])
def test_mismatch_is_415(data, disk_format):
    assert "does not match" in refusal(data, disk_format)


def test_mismatch_names_both_formats():
    assert refusal(qcow2(), "vhdx") == "Image disk_format vhdx does not match stream data qcow2."


def ext(kind, payload):
    return struct.pack(">II", kind, len(payload)) + payload + bytes(-len(payload) % 8)


@pytest.mark.parametrize("data,problem", [
    (qcow2(backing=512), "names a backing file"),
    (qcow2(data_file=True), "external data file"),
    (qcow2(incompatible=1 << 5), "unknown incompatible features 0x20"),
    (qcow2(version=1), "qcow version 1"),
    (qcow2(version=4), "unsupported qcow2 version 4"),
    (qcow2(extensions=ext(0xE2792ACA, b"raw")), "backing file format"),
    (qcow2(extensions=ext(0x6803F857, bytes(48)) + ext(0x44415441, b"/etc/passwd")), "external data file"),
    (qcow2()[:300], "truncated qcow2 header"),
])
def test_unsafe_qcow2_is_415_whatever_is_declared(data, problem):
    for declared in ("qcow2", "raw"):
        message = refusal(data, declared)
        assert message.startswith("Image failed safety checks") and problem in message


def test_qed_is_refused():
    assert refusal(b"QED\0" + bytes(4092), "raw") == "Image failed safety checks: QED images are not supported."


@pytest.mark.parametrize("bits", [1 << 0, 1 << 1, 1 << 3, 1 << 4])
def test_known_qcow2_features_are_accepted(bits):
    """dirty, corrupt, compression type, extended L2: none of them names another file."""
    assert decide(qcow2(incompatible=bits), "qcow2") == 128 << 20


def test_raw_accepts_a_safe_format_and_reports_the_byte_count():
    # Glance: raw is read as it is, so a safe qcow2 passes and virtual_size is the length.
    assert check_format(sniff(qcow2()), "raw", "bare", 70000) == 70000


def test_empty_raw_has_no_virtual_size():
    assert decide(b"", "raw") is None


@pytest.mark.parametrize("disk_format,container_format", [("aki", "aki"), ("qcow2", "ovf"), ("ploop", "bare")])
def test_uninspected_combinations(disk_format, container_format):
    assert check_format(sniff(b"random"), disk_format, container_format, 6) is None


def test_uninspectable_format_with_real_format_inside_is_a_mismatch():
    assert refusal(qcow2(), "ami") == "Image disk_format ami does not match stream data qcow2."


def mbr(entries=((0x80, 0x83, 2048),)):
    sector = bytearray(4096)
    for slot, (boot, kind, lba) in enumerate(entries):
        chs = b"\x00\x02\x00" if lba == 1 else b"\x01\x01\x00"
        struct.pack_into("<B3sB3sII", sector, 446 + 16 * slot, boot, chs, kind, b"\xfe\xff\xff", lba, 100)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def test_partitioned_disk_is_raw_for_uninspectable_formats():
    assert decide(mbr(), "ami") is None
    assert decide(mbr(), "raw") == 4096


@pytest.mark.parametrize("entries,problem", [
    (((0x7F, 0x83, 2048),), "invalid boot flag"),
    ((), "no partitions"),
    (((0, 0xEE, 2),), "does not start at LBA 1"),
    (((0, 0xEE, 1), (0, 0x83, 4096)), "defines other partitions"),
])
def test_bad_partition_tables_are_refused_as_raw(entries, problem):
    assert problem in refusal(mbr(entries), "raw")


def test_non_bare_containers_refuse_unsafe_images_but_not_partition_tables():
    assert decide(qcow2(), "qcow2", "ovf") is None
    assert "backing file" in refusal(qcow2(backing=512), "qcow2", "ovf")
    assert decide(mbr(()), "raw", "compressed") is None


def iso(extra_head=b""):
    data = bytearray(0x9000)
    data[:len(extra_head)] = extra_head
    data[0x8000:0x8007] = b"\x01CD001\x01"
    struct.pack_into("<I", data, 0x8050, 100)
    struct.pack_into("<H", data, 0x8080, 2048)
    return bytes(data)


def test_iso_volume_size():
    assert decide(iso(), "iso") == 204800


def test_iso_with_partition_table_is_an_iso():
    assert decide(iso(mbr()[:512]), "iso") == 204800


def test_polyglot_is_refused_naming_its_formats():
    message = refusal(iso(qcow2()[:512]), "iso")
    assert "more than one disk format (iso, qcow2)" in message


def vhd_footer(disk_type=2, size=1 << 30):
    footer = bytearray(512)
    footer[:8] = b"conectix"
    struct.pack_into(">Q", footer, 48, size)
    struct.pack_into(">I", footer, 60, disk_type)
    return bytes(footer)


def test_vhd_footer_at_the_end():
    data = b"\0" * 10000 + vhd_footer()
    assert check_format(sniff(data, piece=777), "vhd", "bare", len(data)) == 1 << 30


@pytest.mark.parametrize("disk_type,problem", [(4, "differencing VHD"), (0, "unknown VHD disk type 0"),
                                               (3, "dynamic disk header is missing")])
def test_vhd_types(disk_type, problem):
    assert problem in refusal(vhd_footer(disk_type) + bytes(1024), "vhd")


def test_vmdk_descriptor_is_refused():
    data = b"# Disk DescriptorFile\nversion=1\nRW 100 FLAT \"/etc/hosts\" 0\n"
    assert "descriptor files name other files" in refusal(data, "vmdk")
    assert "descriptor files name other files" in refusal(data, "raw")


def test_text_is_not_a_vmdk_descriptor():
    text = b"version 1 of my notes\nnothing to see\n"
    assert decide(text, "raw") == len(text)


DESCRIPTOR = 'version=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicSparse"\nRW 2048 SPARSE "d.vmdk"\n'


@pytest.mark.parametrize("text,problem", [
    (DESCRIPTOR, None),
    (DESCRIPTOR.replace("monolithicSparse", "streamOptimized"), None),
    (DESCRIPTOR + 'ddb.adapterType = "ide"\n# comment\n', None),
    (DESCRIPTOR.replace("monolithicSparse", "monolithicFlat"), "not a single-file sparse type"),
    (DESCRIPTOR + 'parentFileNameHint="/etc/passwd"\n', "names a parent disk"),
    (DESCRIPTOR + '# parentFileNameHint="x"\n', "names a parent disk"),
    (DESCRIPTOR.replace("ffffffff", "00000001"), "names a parent disk"),
    (DESCRIPTOR + 'RW 8 FLAT "other" 0\n', "lists 2 extents"),
    (DESCRIPTOR.replace('"d.vmdk"', '"/d.vmdk"'), "names a file by path"),
    (DESCRIPTOR.replace("SPARSE", "FLAT"), "not a sparse extent"),
    (DESCRIPTOR + "junk\n", "neither a field nor an extent"),
    (DESCRIPTOR + 'ddx.heads = "16"\n', "neither a field nor an extent"),
    (DESCRIPTOR.replace("RW 2048 SPARSE \"d.vmdk\"\n", ""), "lists 0 extents"),
])
def test_embedded_vmdk_descriptor_rules(text, problem):
    found = vmdk.descriptor_problem(text.encode())
    assert found == problem if problem is None else problem in found


def sparse_vmdk(capacity=2048, desc_sector=1, text=DESCRIPTOR):
    data = bytearray(65536)
    struct.pack_into("<4sIIQQQQ", data, 0, b"KDMV", 1, 3, capacity, 128, desc_sector, 20)
    data[512:512 + len(text)] = text.encode()
    return bytes(data)


def test_sparse_vmdk_header_rules():
    assert decide(sparse_vmdk(), "vmdk") == 2048 * 512
    assert "capacity of 0" in refusal(sparse_vmdk(capacity=0), "vmdk")
    assert "not where a single-file image keeps it" in refusal(sparse_vmdk(desc_sector=30), "raw")


def vhdx_image(metadata_at=1 << 20, flags=0, size=64 << 20, log_guid=bytes(16)):
    """A minimal VHDX: identifier, one header, region table, metadata table with two items."""
    data = bytearray(metadata_at + 0x10010)
    data[:8] = b"vhdxfile"
    header = 64 * 1024
    data[header:header + 4] = b"head"
    struct.pack_into("<Q", data, header + 8, 1)
    data[header + 48:header + 64] = log_guid
    struct.pack_into("<H", data, header + 66, 1)
    table = 192 * 1024
    struct.pack_into("<4sII", data, table, b"regi", 0, 1)
    data[table + 16:table + 32] = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
    struct.pack_into("<QII", data, table + 32, metadata_at, 1 << 20, 1)
    struct.pack_into("<8sHH", data, metadata_at, b"metadata", 0, 2)
    for index, (guid, value) in enumerate(((microsoft.ITEM_FILE_PARAMETERS, struct.pack("<II", 1 << 25, flags)),
                                           (microsoft.ITEM_VIRTUAL_DISK_SIZE, struct.pack("<Q", size)))):
        entry = metadata_at + 32 + 32 * index
        data[entry:entry + 16] = guid
        struct.pack_into("<III", data, entry + 16, 0x10000 + 8 * index, 8, 4)
        data[metadata_at + 0x10000 + 8 * index:metadata_at + 0x10008 + 8 * index] = value
    return bytes(data)


@pytest.mark.parametrize("piece", [997, 65536, 1 << 20, 8 << 20])
def test_vhdx_virtual_size_comes_from_its_metadata_region(piece):
    assert decide(vhdx_image(), "vhdx", piece=piece) == 64 << 20


@pytest.mark.parametrize("image,problem", [
    (vhdx_image(flags=0x2), "differencing VHDX"),
    (vhdx_image(log_guid=b"\x01" * 16), "log must be replayed"),
    (vhdx_image()[:150 * 1024], "region table is missing"),
    (vhdx_image()[:1 << 20], "metadata table is missing"),
])
def test_vhdx_rules(image, problem):
    assert problem in refusal(image, "vhdx")


def test_capture_keeps_regions_that_start_inside_the_piece_just_seen():
    cap = capture.StreamCapture([lambda c: c.want("r", 5000, 10) or True])
    cap.update(bytes(range(256)) * 40)
    assert cap.region("r") == (bytes(range(256)) * 40)[5000:5010]


def test_capture_marks_regions_asked_for_too_late():
    cap = capture.StreamCapture()
    cap.update(bytes(capture.HEAD_BYTES + 4096))
    cap.want("late", capture.HEAD_BYTES + 10, 10)
    cap.update(bytes(4096))
    assert cap.region("late") is None and cap.regions["late"].missed


def test_capture_bounds_region_sizes_and_counts():
    cap = capture.StreamCapture()
    assert all(cap.want(f"r{i}", 1 << 40, 1 << 30) for i in range(capture.REGIONS_MAX))
    assert not cap.want("one-more", 0, 1)
    assert all(r.length == capture.REGION_MAX for r in cap.regions.values())


def test_memory_stays_bounded_whatever_the_headers_claim():
    head = bytearray(vhdx_image(metadata_at=1 << 20)[:256 * 1024])
    struct.pack_into("<Q", head, 192 * 1024 + 32, 1 << 60)  # metadata "at" 1 EiB
    sniffer = FormatSniffer()
    sniffer.update(bytes(head))
    for _ in range(64):
        sniffer.update(bytes(1 << 20))
    kept = len(sniffer.head) + len(sniffer.tail) + sum(len(r.data) for r in sniffer.regions.values())
    assert kept <= capture.HEAD_BYTES + capture.TAIL_BYTES + 2 * capture.REGION_MAX
    assert "metadata table is missing" in pytest.raises(
        UnsupportedMediaType, check_format, sniffer, "vhdx", "bare", sniffer.size).value.message


def test_a_gigabyte_costs_the_inspector_almost_nothing():
    piece, sniffer = bytes(1 << 20), FormatSniffer()
    started = time.perf_counter()
    for _ in range(1024):
        sniffer.update(piece)
    assert time.perf_counter() - started < 1.0  # measured: about 1 ms


def test_a_probe_that_breaks_is_a_415_not_a_500(monkeypatch):
    def probe_broken(cap):
        raise struct.error("unpack requires a buffer of 8 bytes")
    monkeypatch.setattr(inspector, "PROBES", (probe_broken,))
    assert "header could not be parsed" in refusal(b"anything", "raw")


def test_impossible_virtual_size_is_415():
    for declared in ("qcow2", "raw"):
        assert "impossible virtual size" in refusal(qcow2(virtual_size=2**64 - 1), declared)

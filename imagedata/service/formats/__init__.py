"""Disk-format inspection of uploads: bounded, header-only, never runs an external tool.

``FormatSniffer`` is fed every piece of the upload; ``check_format`` then decides (see
``inspector``). Each format lives in its own module with the reasons for its checks:
``qemu`` (qcow2, qcow, QED), ``vmdk``, ``microsoft`` (VHD, VHDX) and ``others`` (VDI, ISO,
MBR/GPT, LUKS). ``capture`` keeps the bytes they need: the first 128 KiB, the last 1536
bytes and a few regions of at most 64 KiB that a format asks for by offset.
"""
from imagedata.service.formats.capture import Finding
from imagedata.service.formats.inspector import FormatSniffer, check_format, detected_format

__all__ = ["Finding", "FormatSniffer", "check_format", "detected_format"]

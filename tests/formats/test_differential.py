"""Our inspector against the reference (Glance's rules on oslo.utils' format_inspector) and qemu-img.

The corpus (tests/formats/corpus.py) is built during the run by qemu-img and xorriso, plus
hostile files made with struct. The rules asserted here:

- we refuse every upload the reference refuses, except the rows of DISAGREEMENTS where we
  accept (good images the reference wrongly refuses);
- we refuse every upload for which qemu-img opens another file (backing file, data file,
  extent) or ``qemu-img convert`` copies bytes from outside the file — no exceptions;
- every other difference from the reference is a row of DISAGREEMENTS with the reason we
  are right, and every row of DISAGREEMENTS is still a real difference;
- accepted images get the reference's virtual size, which is also qemu-img's.

``.venv/bin/python -m tests.formats.table`` prints the whole table.
"""
from __future__ import annotations

from tests.formats import judges, table

WE_ACCEPT, WE_REFUSE = True, False

# case -> (whether we accept it, why that is right where the reference decides otherwise)
DISAGREEMENTS: dict[str, tuple[bool, str]] = {
    "qcow2-extended-l2": (WE_ACCEPT, "incompatible bit 4 is extended L2 entries (qcow2 spec, qemu 5.2); the "
                                     "reference allows only bits 0-3 and refuses a self-contained image"),
    "vpc-fixed": (WE_ACCEPT, "a fixed VHD has its only footer in the last 512 bytes; the reference reads offset 0 "
                             "alone, calls it raw and refuses the commonest VHD (Hyper-V, Azure)"),
    "mbr-disk as ami": (WE_ACCEPT, "an AMI is a raw machine image, normally partitioned; the reference names its "
                                   "MBR 'gpt' and refuses it as a mismatch"),
    "kernel-boot-sector as aki": (WE_ACCEPT, "a Linux kernel starts with a legacy boot sector ending 0x55AA; the "
                                             "reference takes it for an MBR and refuses the kernel"),
    "raw-text-latin1": (WE_ACCEPT, "plain text with one non-ASCII byte: the reference's VMDK inspector takes the "
                                   "text for a descriptor, fails to decode it and crashes (vmdktype unset), so "
                                   "Glance answers 'inspection failed'"),
    "qcow2-absurd-size": (WE_REFUSE, "16 EiB does not fit a signed 64-bit virtual_size; qemu-img cannot open it"),
    "qcow2-absurd-size as raw": (WE_REFUSE, "the same header declared raw: a probing consumer reads the qcow2 "
                                            "header, so its checks run whatever was declared"),
    "qcow2-bad-cluster-bits": (WE_REFUSE, "cluster_bits 40 is outside qemu's 9..21: no reader opens it, so no "
                                          "header check of ours can vouch for it"),
    "qcow2-backing-format-only": (WE_REFUSE, "the backing-format extension only describes a backing file; an "
                                             "image that carries one comes from a backing chain"),
    "qcow2-data-file-name-only": (WE_REFUSE, "qemu-img info reports /etc/passwd as the data file even without the "
                                             "incompatible bit, the only thing the reference checks"),
    "qcow2-truncated as raw": (WE_REFUSE, "the bytes claim qcow2 but the header is cut short: a probing consumer "
                                          "takes it for qcow2; nothing checkable, so not stored as raw"),
    "vmdk-parent-hint": (WE_REFUSE, "qemu takes parentFileNameHint in a sparse VMDK's embedded descriptor as its "
                                    "backing file and opens /etc/passwd; the reference sees a harmless field"),
    "vmdk-parent-hint as raw": (WE_REFUSE, "the same VMDK declared raw: a probing consumer still opens "
                                           "/etc/passwd (Glance runs the detected format's checks, and so do we)"),
    "vmdk-parent-hint-comment": (WE_REFUSE, "qemu finds parentFileNameHint by substring search, inside comments "
                                            "too; the reference skips comment lines"),
    "vmdk-parent-hint in docker": (WE_REFUSE, "Glance inspects no non-bare container, but these bytes make qemu "
                                              "open /etc/passwd whatever the container field says"),
    "qcow2-backing-format in ovf": (WE_REFUSE, "Glance inspects no non-bare container, but this qcow2's backing "
                                               "file is /etc/passwd and qemu-img copies it on convert"),
    "vmdk-parent-cid": (WE_REFUSE, "a parentCID other than ffffffff marks a delta disk that needs its parent; a "
                                   "single-file image has none"),
    "vmdk-extra-extent": (WE_REFUSE, "a second extent names neighbour.raw (in a shared store folder: another "
                                     "image); VMware opens it, and a single-file image has exactly one extent"),
    "vmdk-capacity-0-sparse-type": (WE_REFUSE, "with capacity 0 qemu reads the embedded descriptor as a descriptor "
                                               "file and opens its extents; only qemu's createType list stops this "
                                               "one; no real image has capacity 0"),
    "vmdk-absurd-capacity": (WE_REFUSE, "2^60 sectors (512 EiB) does not fit a signed 64-bit virtual_size; qemu "
                                        "cannot open it"),
    "vmdk-cowd as raw": (WE_REFUSE, "COWD (VMware 3 sparse) is probed as vmdk by qemu, so 'raw' does not stop a "
                                    "probing consumer; the reference does not know the format"),
    "polyglot-qcow2-vhd": (WE_REFUSE, "a qcow2 that is also a fixed VHD when read from its end, as VHD readers "
                                      "do; the reference never looks at the end"),
    "vhd-differencing": (WE_REFUSE, "a differencing VHD names its parent in parent locators and Hyper-V follows "
                                    "them; the reference checks nothing in a VHD"),
    "vhd-differencing as raw": (WE_REFUSE, "the same differencing VHD declared raw: its detected format's checks "
                                           "still run"),
    "vhd-absurd-size": (WE_REFUSE, "the footer's current size (the disk size per the VHD spec, used by Hyper-V) "
                                   "is 16 EiB; the reference reads the original size only"),
    "vhdx-has-parent": (WE_REFUSE, "HasParent marks a differencing VHDX whose parent locator names another file "
                                   "(qemu refuses to open it; Hyper-V follows it)"),
    "vhdx-log-pending": (WE_REFUSE, "a non-zero LogGuid means the log must be replayed first: the size and parent "
                                    "flag we read may not be what a reader sees after replay"),
    "vdi-differencing": (WE_REFUSE, "VDI type 4 is a differencing image resolved against its parent by "
                                    "VirtualBox; qemu reads it as if it stood alone"),
    "vdi-parent-uuid": (WE_REFUSE, "a parent UUID makes the image depend on another (qemu refuses it too)"),
    "vdi-absurd-size": (WE_REFUSE, "16 EiB does not fit a signed 64-bit virtual_size; qemu refuses it too"),
}

REQUIRED = (  # the kinds of image the corpus must hold, by case name
    "raw-sparse", "qcow2-plain", "qcow2-compressed", "qcow2-v2", "qcow2-luks", "qcow2-lazy-refcounts",
    "qcow2-extended-l2", "qcow2-backing-file", "qcow2-backing-format", "qcow2-data-file",
    "vmdk-monolithicSparse", "vmdk-streamOptimized", "vmdk-monolithicFlat", "vmdk-twoGbMaxExtentSparse",
    "vpc-dynamic", "vpc-fixed", "vhdx", "vdi", "qed", "iso-plain", "iso-gpt", "qcow-v1",
    "vmdk-parent-hint", "vmdk-capacity-0-passwd", "polyglot-iso-qcow2", "polyglot-vmdk-vdi",
    "qcow2-truncated", "qcow2-absurd-size", "qcow2-unknown-feature", "gpt-disk", "mbr-bad-boot-flag",
)
QEMU_SIZED = ("qcow2", "vmdk", "vhd", "vhdx", "vdi")  # formats whose virtual size qemu-img reads as we do


def _differs(row: table.Row) -> bool:
    if row.ours.accepted != row.reference.accepted:
        return True
    return row.ours.accepted and row.ours.virtual_size != row.reference.virtual_size


def test_corpus_holds_every_required_kind(corpus_rows):
    assert [name for name in REQUIRED if name not in corpus_rows] == []


def test_we_refuse_everything_the_reference_refuses(corpus_rows):
    accepted = [(name, str(row.reference)) for name, row in corpus_rows.items()
                if row.ours.accepted and not row.reference.accepted
                and DISAGREEMENTS.get(name, (None,))[0] is not WE_ACCEPT]
    assert accepted == []


def test_we_refuse_everything_qemu_shows_reaching_outside(corpus_rows):
    accepted = [(name, str(row.qemu)) for name, row in corpus_rows.items()
                if row.reaches_outside and row.ours.accepted]
    assert accepted == []


def test_the_hostile_corpus_really_reaches_outside(corpus_rows):
    """The qemu-img checks can fail: these files do make qemu read /etc/passwd or the neighbour."""
    leaking = sorted(name for name, row in corpus_rows.items() if row.qemu.leaked)
    for name in ("qcow2-backing-file", "qed-backing", "qcow-v1-backing", "vmdk-capacity-0-passwd",
                 "vmdk-capacity-0-neighbour", "vmdk-descriptor-passwd", "polyglot-iso-qcow2"):
        assert name in leaking
    opening = {name for name, row in corpus_rows.items() if row.qemu.outside}
    for name in ("qcow2-data-file", "vmdk-parent-hint", "vmdk-parent-hint-comment", "vmdk-monolithicFlat"):
        assert name in opening


def test_every_disagreement_is_listed_with_its_reason(corpus_rows):
    unlisted = [(name, str(row.ours), str(row.reference)) for name, row in corpus_rows.items()
                if _differs(row) and name not in DISAGREEMENTS]
    assert unlisted == []
    stale = [name for name, (we_accept, _reason) in DISAGREEMENTS.items()
             if name not in corpus_rows or not _differs(corpus_rows[name])
             or corpus_rows[name].ours.accepted is not we_accept]
    assert stale == []


def test_accepted_images_get_qemus_virtual_size(corpus_rows):
    wrong = [(name, row.ours.virtual_size, row.qemu.declared_size) for name, row in corpus_rows.items()
             if row.ours.accepted and row.case.container_format == "bare" and row.case.disk_format in QEMU_SIZED
             and row.ours.virtual_size != row.qemu.declared_size]
    assert wrong == []


def test_every_accepted_bare_image_records_a_virtual_size(corpus_rows):
    inspectable = ("raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso")
    missing = [name for name, row in corpus_rows.items()
               if row.ours.accepted and row.case.container_format == "bare" and row.case.disk_format in inspectable
               and row.ours.virtual_size is None and name != "raw-empty"]
    assert missing == []


def test_verdicts_do_not_depend_on_how_the_upload_is_cut(corpus_root, corpus_rows):
    changed = []
    for name, row in corpus_rows.items():
        for piece in (4093, 8 << 20):
            other = judges.ours(corpus_root, row.case, piece=piece)
            if (other.accepted, other.virtual_size, other.detail) != (
                    row.ours.accepted, row.ours.virtual_size, row.ours.detail):
                changed.append((name, piece, str(other), str(row.ours)))
    assert changed == []


def test_the_table_names_every_case_and_reason(corpus_rows):
    text = table.render(list(corpus_rows.values()), {k: v[1] for k, v in DISAGREEMENTS.items()})
    assert all(name in text for name in corpus_rows)
    assert "(no reason recorded)" not in text
    assert f"{len(DISAGREEMENTS)} disagreements" in text

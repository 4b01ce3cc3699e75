# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container format of an image, from its header; declared formats checked against it."""
import struct

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def qcow2_header(size=64 << 20, backing=None):
    """A qcow2 version 3 header as qemu-img writes it (the fields read here, zeros elsewhere)."""
    offset = 0x200 if backing else 0
    head = b"QFI\xfb" + struct.pack(">IQIIQ", 3, offset, len(backing or b""), 16, size)
    head = head.ljust(0x200, b"\0")
    return head + (backing or b"")


HEADERS = [
    ("qcow2", qcow2_header()),
    ("vmdk", b"KDMV" + b"\x01\0\0\0" + b"\0" * 504),
    ("vmdk", b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\n"),
    ("vmdk", b"\xef\xbb\xbf# Disk DescriptorFile\n"),
    ("vhdx", b"vhdxfile" + "QEMU v7".encode("utf-16-le")),
    ("raw", b"\0" * 512),
    ("raw", b"\xeb\x3c\x90mkfs.fat" + b"\0" * 500),  # a FAT boot sector
    ("raw", b""),  # an empty image
    ("raw", b"QFI"),  # a truncated magic is no magic
    ("raw", b"conectix"),  # VHD (vpc) is not served: raw, as declared formats are the supported ones
]


@pytest.mark.parametrize("expected,header", HEADERS, ids=["%s-%d" % (e, i) for i, (e, _h) in enumerate(HEADERS)])
def test_detect(expected, header):
    assert formats.detect(header) == expected


def test_qcow2_virtual_size():
    assert formats.qcow2_virtual_size(qcow2_header(size=80 << 20)) == 80 << 20
    assert formats.qcow2_virtual_size(b"\0" * 64) is None
    assert formats.qcow2_virtual_size(b"QFI\xfb\0\0") is None


def test_qcow2_backing_file(tmp_path):
    overlay = tmp_path / "host.qcow2"
    overlay.write_bytes(qcow2_header(backing=b"/srv/golden.img"))
    assert formats.qcow2_backing_file(str(overlay)) == "/srv/golden.img"
    plain = tmp_path / "plain.qcow2"
    plain.write_bytes(qcow2_header())
    assert formats.qcow2_backing_file(str(plain)) is None
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 4096)
    assert formats.qcow2_backing_file(str(raw)) is None


def test_resolve_auto_and_declared(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(qcow2_header())
    assert formats.resolve(str(image)) == "qcow2"
    assert formats.resolve(str(image), "qcow2") == "qcow2"
    # raw declared is the file's bytes as they are, whatever the header says
    assert formats.resolve(str(image), "raw") == "raw"


def test_resolve_refuses_a_contradicting_declaration(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    with pytest.raises(DiskImageError) as info:
        formats.resolve(str(image), "vmdk")
    assert "declared vmdk, but its header says raw" in str(info.value)
    with pytest.raises(DiskImageError) as info:
        formats.resolve(str(image), "vdi")
    assert "not one of" in str(info.value)


def test_resolve_names_an_unreadable_image(tmp_path):
    with pytest.raises(DiskImageError) as info:
        formats.resolve(str(tmp_path / "missing.qcow2"))
    assert "cannot read the header" in str(info.value)

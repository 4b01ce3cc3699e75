# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which container format an image file is, from its first bytes.

Raw images go to loop devices; the others (qcow2, VMDK, VHDX) need a format
engine, qemu-nbd, between the file and a block device. The format is read
from the header, never guessed by qemu: qemu-nbd is always told the format,
so a raw image whose first sector happens to hold a qcow2 header (with a
backing file naming, say, a host file) is never opened as one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

RAW = "raw"
FORMATS = ("auto", RAW, "qcow2", "vmdk", "vhdx")
HEADER_BYTES = 512
QCOW2_MAGIC = b"QFI\xfb"
VMDK_SPARSE_MAGIC = b"KDMV"
VMDK_DESCRIPTOR = b"# Disk DescriptorFile"
VHDX_MAGIC = b"vhdxfile"


def detect(header):
    """The format the first bytes of an image say: 'qcow2', 'vmdk', 'vhdx' or 'raw'."""
    if header.startswith(QCOW2_MAGIC):
        return "qcow2"
    if header.startswith(VMDK_SPARSE_MAGIC) or header.lstrip(b"\xef\xbb\xbf").startswith(VMDK_DESCRIPTOR):
        return "vmdk"
    if header.startswith(VHDX_MAGIC):
        return "vhdx"
    return RAW


def qcow2_virtual_size(header):
    """The disk size a qcow2 header declares (big-endian u64 at byte 24), or None."""
    if not header.startswith(QCOW2_MAGIC) or len(header) < 32:
        return None
    return struct.unpack(">Q", header[24:32])[0]


def qcow2_backing_file(path):
    """The backing file a qcow2 image names (None: it has none, or is no qcow2).

    The header keeps its offset (u64 at byte 8) and length (u32 at byte 16)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
            if not header.startswith(QCOW2_MAGIC) or len(header) < 20:
                return None
            offset, length = struct.unpack(">QI", header[8:20])
            if not offset or not length or length > 1023:
                return None
            handle.seek(offset)
            return handle.read(length).decode("utf-8", "surrogateescape")
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot read the header of %s" % path, exc)


def read_header(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(HEADER_BYTES)
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot read the header of %s" % path, exc)


def resolve(path, declared="auto", header=None):
    """The format to serve ``path`` as: the declared one, or what its header says.

    A declared non-raw format the header contradicts is refused (qemu-nbd
    would fail on it, or worse, read it as something else); ``raw`` declared
    is honoured whatever the header says: the file's bytes as they are."""
    if declared not in FORMATS:
        raise DiskImageError("image_format %r is not one of %s" % (declared, ", ".join(FORMATS)))
    if declared == RAW:
        return RAW
    found = detect(header if header is not None else read_header(path))
    if declared != "auto" and found != declared:
        raise DiskImageError("%s is declared %s, but its header says %s" % (path, declared, found),
                             hint="Set image_format: auto (or %s), or check that src is the right image" % found)
    return found

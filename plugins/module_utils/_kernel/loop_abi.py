# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The loop driver's user ABI: ioctl numbers, flags and struct layouts.

Pure data and packing, no I/O, so every byte offset is unit-tested. Numbers come
from linux/loop.h; the loop ioctls are plain numbers, not _IOC-encoded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

# ioctls on /dev/loopN
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_GET_STATUS64 = 0x4C05
LOOP_SET_CAPACITY = 0x4C07
LOOP_SET_DIRECT_IO = 0x4C08
LOOP_SET_BLOCK_SIZE = 0x4C09
LOOP_CONFIGURE = 0x4C0A

# ioctls on /dev/loop-control
LOOP_CTL_ADD = 0x4C80
LOOP_CTL_REMOVE = 0x4C81
LOOP_CTL_GET_FREE = 0x4C82

# lo_flags
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_PARTSCAN = 8
LO_FLAGS_DIRECT_IO = 16

# What LOOP_SET_STATUS64 may set and clear on a bound device (linux/loop.h);
# everything else needs a detach or a dedicated ioctl.
SETTABLE_FLAGS = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN
CLEARABLE_FLAGS = LO_FLAGS_AUTOCLEAR

LO_NAME_SIZE = 64
LO_KEY_SIZE = 32

# struct loop_info64: 232 bytes on every architecture (only fixed-size fields).
LOOP_INFO64 = struct.Struct("=QQQQQIIII64s64s32sQQ")
# The head of loop_info64: lo_device, lo_inode, lo_rdevice, lo_offset.
LOOP_INFO64_HEAD = struct.Struct("=QQQQ")
# struct loop_config: fd, block_size, loop_info64, __u64 reserved[8]: 304 bytes.
LOOP_CONFIG = struct.Struct("=II232s64x")

VALID_SECTOR_SIZES = (512, 1024, 2048, 4096)


def encode_name(path):
    """lo_file_name: the path truncated to 63 bytes plus NUL, as the kernel stores it."""
    raw = path.encode("utf-8", "surrogateescape") if not isinstance(path, bytes) else path
    return raw[:LO_NAME_SIZE - 1]


class LoopInfo(object):
    """struct loop_info64, unpacked into named fields."""

    __slots__ = ("device", "inode", "rdevice", "offset", "sizelimit", "number",
                 "encrypt_type", "encrypt_key_size", "flags", "file_name", "crypt_name")

    def __init__(self, device=0, inode=0, rdevice=0, offset=0, sizelimit=0, number=0,
                 encrypt_type=0, encrypt_key_size=0, flags=0, file_name=b"", crypt_name=b""):
        self.device = device
        self.inode = inode
        self.rdevice = rdevice
        self.offset = offset
        self.sizelimit = sizelimit
        self.number = number
        self.encrypt_type = encrypt_type
        self.encrypt_key_size = encrypt_key_size
        self.flags = flags
        self.file_name = file_name
        self.crypt_name = crypt_name

    def pack(self):
        return LOOP_INFO64.pack(
            self.device, self.inode, self.rdevice, self.offset, self.sizelimit,
            self.number, self.encrypt_type, self.encrypt_key_size, self.flags,
            encode_name(self.file_name), self.crypt_name, b"", 0, 0)

    @classmethod
    def unpack(cls, data):
        fields = LOOP_INFO64.unpack(bytes(data[:LOOP_INFO64.size]))
        return cls(device=fields[0], inode=fields[1], rdevice=fields[2], offset=fields[3],
                   sizelimit=fields[4], number=fields[5], encrypt_type=fields[6],
                   encrypt_key_size=fields[7], flags=fields[8],
                   file_name=fields[9].split(b"\0", 1)[0],
                   crypt_name=fields[10].split(b"\0", 1)[0])

    def backing_devno(self):
        """(major, minor) of the filesystem holding the backing file."""
        return decode_kernel_dev(self.device)

    def __repr__(self):
        return "LoopInfo(offset=%d, sizelimit=%d, flags=%#x, file_name=%r)" % (
            self.offset, self.sizelimit, self.flags, self.file_name)


def pack_config(fd, block_size, info):
    """struct loop_config for LOOP_CONFIGURE; block_size 0 keeps the default."""
    return LOOP_CONFIG.pack(fd, block_size or 0, info.pack())


def decode_kernel_dev(value):
    """Split a dev_t as the loop driver reports it (huge_encode_dev) into (major, minor).

    Results are compared as (major, minor) pairs rather than raw numbers so the
    match does not depend on the C library's dev_t layout agreeing with the
    kernel's (glibc's does for the kernel's 12-bit majors).
    """
    major = (value & 0xFFF00) >> 8
    minor = (value & 0xFF) | ((value >> 12) & 0xFFF00)
    return major, minor


def encode_kernel_dev(major, minor):
    """Inverse of decode_kernel_dev (new_encode_dev in the kernel)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def flag_names(flags):
    """Readable names of the set lo_flags bits, for messages and results."""
    names = []
    for bit, name in ((LO_FLAGS_READ_ONLY, "read_only"), (LO_FLAGS_AUTOCLEAR, "autoclear"),
                      (LO_FLAGS_PARTSCAN, "partscan"), (LO_FLAGS_DIRECT_IO, "direct_io")):
        if flags & bit:
            names.append(name)
    return names

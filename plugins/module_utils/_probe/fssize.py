# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How big a filesystem is, and how big its grow tool would make it.

``geometry(path, offset, size)`` reads the superblock of the ext2/3/4, xfs or
btrfs filesystem at ``offset`` and returns a FsGeometry: its size now, and
``grown_size(area)``, the size ``resize2fs``, ``xfs_growfs`` or
``btrfs filesystem resize max`` give it in an area of ``area`` bytes. A
filesystem needs growing exactly when ``grown_size(area) > size``: that rule
is what makes a second run change nothing, so it follows each tool's own
arithmetic (the last block group or allocation group is dropped when it
would be too small to be worth having).

``made_size(area)`` is what the mkfs of the type makes on ``area`` bytes,
which may leave a longer tail unused than the grow tool would (mke2fs counts
the bookkeeping of a last group more generously, mkfs.xfs wants a last
allocation group of 16 MiB): a filesystem made to fill its partition is full
by ``fills(area)`` although its grow tool could still add a few blocks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

GROWABLE = ("ext2", "ext3", "ext4", "xfs", "btrfs")

_EXT_MAGIC = 0xEF53
_EXT_COMPAT_SPARSE_SUPER2 = 0x0200
_EXT_RO_COMPAT_SPARSE_SUPER = 0x0001
_EXT_INCOMPAT_64BIT = 0x0080
_EXT_MIN_DESC_SIZE = 32
# resize2fs drops a last group that cannot hold its own bookkeeping plus this many blocks.
_EXT_LAST_GROUP_SLACK = 50
# xfs_growfs_data (the kernel) drops a last allocation group smaller than this.
_XFS_MIN_AG_BLOCKS = 64
# mkfs.xfs leaves out a last allocation group smaller than this (XFS_AG_MIN_BYTES).
_XFS_MKFS_MIN_AG_BYTES = 16 * 1024 * 1024
_BTRFS_SB = 64 * 1024
# The btrfs resize ioctl refuses (EINVAL) to give a device fewer bytes than this.
BTRFS_MIN_RESIZE = 256 * 1024 * 1024
_BTRFS_DEV_ITEM = 0xC9


class FsGeometry(object):
    """A filesystem's type and size in bytes, and the tool's rule for growing it."""

    def __init__(self, fstype, size, grown_size, detail=None, made_size=None):
        self.fstype = fstype
        self.size = size
        self._grown_size = grown_size
        self._made_size = made_size or grown_size
        self.detail = detail or {}

    def grown_size(self, area):
        """The size the grow tool makes the filesystem in ``area`` bytes (never less than now)."""
        return max(self.size, self._grown_size(area))

    def made_size(self, area):
        """The size its mkfs gives a filesystem of this geometry on ``area`` bytes."""
        return self._made_size(area)

    def fills(self, area):
        """Whether the filesystem fills ``area`` as its grow tool or its mkfs would."""
        return self.size >= min(self.grown_size(area), self.made_size(area))

    def __repr__(self):
        return "FsGeometry(%s, %d)" % (self.fstype, self.size)


def _is_power_of_three_five_seven(group):
    for base in (3, 5, 7):
        value = base
        while value < group:
            value *= base
        if value == group:
            return True
    return False


def ext_group_has_super(group, sparse_super, sparse_super2=False, backup_bgs=(0, 0)):
    """Whether block group ``group`` holds a superblock backup (ext2fs_bg_has_super)."""
    if group == 0:
        return True
    if sparse_super2:
        return group in backup_bgs
    if group <= 1 or not sparse_super:
        return True
    if not group & 1:
        return False
    return _is_power_of_three_five_seven(group)


def ext_grown_blocks(new_blocks, first_data_block, blocks_per_group, inode_blocks_per_group, desc_per_block,
                     reserved_gdt, sparse_super=True, sparse_super2=False, backup_bgs=(0, 0)):
    """The block count resize2fs settles on for a device of ``new_blocks`` blocks:
    a last group too small for its bookkeeping (+50 blocks) is dropped, again
    and again (adjust_fs_info in resize2fs)."""
    while True:
        groups = -(-(new_blocks - first_data_block) // blocks_per_group)
        rem = (new_blocks - first_data_block) % blocks_per_group
        overhead = 2 + inode_blocks_per_group
        if ext_group_has_super(groups - 1, sparse_super, sparse_super2, backup_bgs):
            overhead += 1 + -(-groups // desc_per_block) + reserved_gdt
        if groups > 1 and rem and rem < overhead + _EXT_LAST_GROUP_SLACK:
            new_blocks -= rem
            continue
        return new_blocks


def ext_made_blocks(new_blocks, first_data_block, blocks_per_group, inode_blocks_per_group, reserved_gdt):
    """The block count mke2fs gives a device of ``new_blocks`` blocks: it drops a
    last group under 3 + inode table + reserved GDT + 50 blocks (ext2fs_initialize)."""
    rem = (new_blocks - first_data_block) % blocks_per_group
    if new_blocks - first_data_block > blocks_per_group and rem \
            and rem < 3 + inode_blocks_per_group + reserved_gdt + _EXT_LAST_GROUP_SLACK:
        return new_blocks - rem
    return new_blocks


def _ext(sb):
    if struct.unpack_from("<H", sb, 0x38)[0] != _EXT_MAGIC:
        return None
    blocks_lo, = struct.unpack_from("<I", sb, 0x04)
    first_data_block, log_block, _log_cluster, blocks_per_group, _cpg, inodes_per_group = \
        struct.unpack_from("<IIIIII", sb, 0x14)
    inode_size, = struct.unpack_from("<H", sb, 0x58)
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    reserved_gdt, = struct.unpack_from("<H", sb, 0xCE)
    desc_size, = struct.unpack_from("<H", sb, 0xFE)
    blocks_hi, = struct.unpack_from("<I", sb, 0x150)
    backup_bgs = struct.unpack_from("<II", sb, 0x24C)
    if log_block > 6 or not blocks_per_group or not inodes_per_group:
        return None
    block = 1024 << log_block
    is64 = bool(incompat & _EXT_INCOMPAT_64BIT)
    blocks = blocks_lo | (blocks_hi << 32 if is64 else 0)
    if not is64 or desc_size < _EXT_MIN_DESC_SIZE:
        desc_size = _EXT_MIN_DESC_SIZE
    inode_size = inode_size or 128
    inode_blocks = -(-inodes_per_group * inode_size // block)
    limit = (1 << 64) - 1 if is64 else (1 << 32) - 1

    def grown(area):
        new_blocks = min(area // block, limit)
        if new_blocks <= blocks:
            return blocks * block
        return block * ext_grown_blocks(
            new_blocks, first_data_block, blocks_per_group, inode_blocks, block // desc_size, reserved_gdt,
            sparse_super=bool(ro_compat & _EXT_RO_COMPAT_SPARSE_SUPER),
            sparse_super2=bool(compat & _EXT_COMPAT_SPARSE_SUPER2), backup_bgs=backup_bgs)

    def made(area):
        return block * ext_made_blocks(min(area // block, limit), first_data_block, blocks_per_group,
                                       inode_blocks, reserved_gdt)

    return FsGeometry("ext", blocks * block, grown, {"block_size": block, "blocks": blocks}, made)


def xfs_grown_blocks(new_blocks, agblocks):
    """The data block count xfs_growfs reaches on ``new_blocks`` blocks: a last
    allocation group under 64 blocks is left out."""
    rem = new_blocks % agblocks
    if rem and rem < _XFS_MIN_AG_BLOCKS:
        return new_blocks - rem
    return new_blocks


def xfs_made_blocks(new_blocks, agblocks, block_size):
    """The data block count mkfs.xfs gives ``new_blocks`` blocks with this
    allocation group size: a last group under 16 MiB is left out."""
    rem = new_blocks % agblocks
    if rem and rem < _XFS_MKFS_MIN_AG_BYTES // block_size:
        return new_blocks - rem
    return new_blocks


def _xfs(sb):
    if sb[:4] != b"XFSB":
        return None
    block, dblocks = struct.unpack_from(">IQ", sb, 4)
    agblocks, = struct.unpack_from(">I", sb, 84)
    if not block or not agblocks:
        return None

    def grown(area):
        return block * xfs_grown_blocks(area // block, agblocks)

    def made(area):
        return block * xfs_made_blocks(area // block, agblocks, block)

    detail = {"block_size": block, "blocks": dblocks, "ag_blocks": agblocks}
    return FsGeometry("xfs", dblocks * block, grown, detail, made)


def _btrfs(sb):
    if sb[0x40:0x48] != b"_BHRfS_M":
        return None
    num_devices, = struct.unpack_from("<Q", sb, 0x88)
    sectorsize, = struct.unpack_from("<I", sb, 0x90)
    devid, dev_bytes = struct.unpack_from("<QQ", sb, _BTRFS_DEV_ITEM)
    if not sectorsize:
        return None

    def grown(area):
        size = area // sectorsize * sectorsize
        return size if size >= BTRFS_MIN_RESIZE else dev_bytes

    return FsGeometry("btrfs", dev_bytes, grown, {"sector_size": sectorsize, "devid": devid,
                                                  "num_devices": num_devices})


def geometry(path, offset=0, fstype=None):
    """The FsGeometry of the filesystem at ``offset`` of ``path``, or None
    when it is none of GROWABLE (``fstype``, as fsprobe names it, picks the reader)."""
    readers = {"xfs": (0, 512, _xfs), "btrfs": (_BTRFS_SB, 4096, _btrfs)}
    for ext in ("ext2", "ext3", "ext4"):
        readers[ext] = (1024, 1024, _ext)
    if fstype not in readers:
        return None
    where, length, parse = readers[fstype]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot open %s to read a superblock" % path, exc)
    try:
        raw = os.pread(fd, length, offset + where)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot read the superblock at offset %d of %s"
                                          % (offset + where, path), exc)
    finally:
        os.close(fd)
    if len(raw) != length:
        return None
    found = parse(raw)
    if found is not None and found.fstype == "ext":
        found.fstype = fstype
    return found

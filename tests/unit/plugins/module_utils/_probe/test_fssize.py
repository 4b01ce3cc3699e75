# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filesystem sizes from superblocks, and each grow tool's rule for the size it reaches.

The kernel tier checks these rules against the tools themselves (the size a
real resize2fs, xfs_growfs and btrfs resize leave); here the edges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.diskimage.loop.plugins.module_utils._probe import fssize


def ext_superblock(blocks, log_block=2, bpg=32768, ipg=8192, inode_size=256, reserved_gdt=63, is64=True):
    sb = bytearray(1024)
    struct.pack_into("<I", sb, 0x04, blocks & 0xFFFFFFFF)
    struct.pack_into("<IIIIII", sb, 0x14, 1 if log_block == 0 else 0, log_block, log_block, bpg, bpg, ipg)
    struct.pack_into("<H", sb, 0x38, 0xEF53)
    struct.pack_into("<H", sb, 0x58, inode_size)
    struct.pack_into("<III", sb, 0x5C, 0, 0x80 if is64 else 0, 0x1)
    struct.pack_into("<H", sb, 0xCE, reserved_gdt)
    struct.pack_into("<H", sb, 0xFE, 64 if is64 else 0)
    struct.pack_into("<I", sb, 0x150, blocks >> 32 if is64 else 0)
    return bytes(sb)


def test_sparse_super_backups():
    with_backup = [g for g in range(60) if fssize.ext_group_has_super(g, sparse_super=True)]
    assert with_backup == [0, 1, 3, 5, 7, 9, 25, 27, 49]
    assert fssize.ext_group_has_super(6, sparse_super=False)
    assert [g for g in range(10) if fssize.ext_group_has_super(g, True, sparse_super2=True, backup_bgs=(1, 7))] \
        == [0, 1, 7]


def test_ext_drops_a_last_group_too_small_to_hold_its_bookkeeping():
    geometry = fssize._ext(ext_superblock(32768))
    assert geometry.size == 32768 * 4096
    # one block group and 100 blocks: group 1 holds a superblock backup, the
    # inode table (512 blocks) does not fit in 100 blocks: resize2fs stays at one group
    assert geometry.grown_size((32768 + 100) * 4096) == 32768 * 4096
    # 2000 blocks into group 1 are worth a group
    assert geometry.grown_size((32768 + 2000) * 4096) == (32768 + 2000) * 4096
    # never smaller than now, and whole blocks only
    assert geometry.grown_size(1000) == 32768 * 4096
    assert geometry.grown_size(65536 * 4096 + 1234) == 65536 * 4096


def test_ext_without_64bit_stops_at_two_to_the_32_blocks():
    geometry = fssize._ext(ext_superblock(32768, is64=False))
    assert geometry.grown_size((1 << 32) * 4096 * 2) <= ((1 << 32) - 1) * 4096


def test_xfs_leaves_out_a_last_allocation_group_under_64_blocks():
    assert fssize.xfs_grown_blocks(1000 * 3 + 63, 1000) == 3000
    assert fssize.xfs_grown_blocks(1000 * 3 + 64, 1000) == 3064
    assert fssize.xfs_grown_blocks(3000, 1000) == 3000


def test_btrfs_grows_to_whole_sectors():
    sb = bytearray(4096)
    sb[0x40:0x48] = b"_BHRfS_M"
    struct.pack_into("<Q", sb, 0x88, 1)
    struct.pack_into("<I", sb, 0x90, 4096)
    struct.pack_into("<QQ", sb, 0xC9, 1, 100 * 4096)
    geometry = fssize._btrfs(bytes(sb))
    assert geometry.size == 100 * 4096
    assert geometry.grown_size(fssize.BTRFS_MIN_RESIZE + 4096 + 100) == fssize.BTRFS_MIN_RESIZE + 4096
    # the kernel refuses to resize a btrfs device to less than 256 MiB
    assert geometry.grown_size(fssize.BTRFS_MIN_RESIZE - 4096) == 100 * 4096


def test_not_a_filesystem():
    assert fssize._ext(bytes(1024)) is None
    assert fssize._xfs(bytes(512)) is None
    assert fssize._btrfs(bytes(4096)) is None


@given(blocks=st.integers(min_value=32768, max_value=1 << 22), extra=st.integers(min_value=0, max_value=1 << 20))
def test_ext_rule_is_stable(blocks, extra):
    """Growing to what the rule says, then asking again, asks for nothing more:
    the property a rerun relies on."""
    first = fssize._ext(ext_superblock(blocks))
    target = first.grown_size((blocks + extra) * 4096)
    assert blocks * 4096 <= target <= (blocks + extra) * 4096
    second = fssize._ext(ext_superblock(target // 4096))
    assert second.grown_size((blocks + extra) * 4096) == target


def test_a_filesystem_mkfs_made_fills_its_area():
    """mke2fs drops a last group under 3 + inode table + reserved GDT + 50 blocks,
    resize2fs only one under its smaller bookkeeping: such a filesystem is full."""
    # a third group of 600 blocks, without a superblock backup: mke2fs drops it
    # (3 + 512 + 63 + 50 = 628 > 600), resize2fs would keep it (2 + 512 + 50 = 564)
    area_blocks = 2 * 32768 + 600
    made = fssize.ext_made_blocks(area_blocks, 0, 32768, 512, 63)
    assert made == 2 * 32768
    geometry = fssize._ext(ext_superblock(made))
    assert geometry.grown_size(area_blocks * 4096) == area_blocks * 4096
    assert geometry.fills(area_blocks * 4096)
    assert not fssize._ext(ext_superblock(16384)).fills(area_blocks * 4096)
    # mkfs.xfs leaves out a last allocation group under 16 MiB, xfs_growfs one under 64 blocks
    assert fssize.xfs_made_blocks(3 * 1000 + 100, 1000, 4096) == 3000
    assert fssize.xfs_grown_blocks(3 * 1000 + 100, 1000) == 3100

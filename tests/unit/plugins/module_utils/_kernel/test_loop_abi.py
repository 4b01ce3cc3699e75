# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Byte-exact layouts of the loop structs, against the offsets in linux/loop.h."""
import os
import struct

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import loop_abi as abi


def test_struct_sizes_match_the_kernel():
    assert abi.LOOP_INFO64.size == 232
    assert abi.LOOP_CONFIG.size == 304


def test_loop_info64_field_offsets():
    info = abi.LoopInfo(device=0x1111, inode=0x2222, rdevice=0x3333, offset=0x4444, sizelimit=0x5555,
                        number=6, encrypt_type=7, encrypt_key_size=8, flags=abi.LO_FLAGS_PARTSCAN,
                        file_name="/images/disk.img")
    raw = info.pack()
    assert struct.unpack_from("=Q", raw, 0)[0] == 0x1111
    assert struct.unpack_from("=Q", raw, 8)[0] == 0x2222
    assert struct.unpack_from("=Q", raw, 16)[0] == 0x3333
    assert struct.unpack_from("=Q", raw, 24)[0] == 0x4444
    assert struct.unpack_from("=Q", raw, 32)[0] == 0x5555
    assert struct.unpack_from("=I", raw, 40)[0] == 6
    assert struct.unpack_from("=I", raw, 44)[0] == 7
    assert struct.unpack_from("=I", raw, 48)[0] == 8
    assert struct.unpack_from("=I", raw, 52)[0] == abi.LO_FLAGS_PARTSCAN
    assert raw[56:56 + 16] == b"/images/disk.img"
    assert raw[56 + 16] == 0
    assert raw[120:184] == b"\0" * 64  # crypt name
    assert raw[184:216] == b"\0" * 32  # key
    assert raw[216:232] == b"\0" * 16  # lo_init


def test_loop_info64_round_trip():
    info = abi.LoopInfo(offset=1 << 20, sizelimit=8 << 20, flags=abi.LO_FLAGS_READ_ONLY, file_name="/a")
    back = abi.LoopInfo.unpack(info.pack())
    assert (back.offset, back.sizelimit, back.flags, back.file_name) == (1 << 20, 8 << 20, 1, b"/a")


def test_long_names_are_truncated_like_the_kernel():
    name = "/" + "x" * 200
    raw = abi.LoopInfo(file_name=name).pack()
    stored = raw[56:120]
    assert stored[:63] == name.encode()[:63]
    assert stored[63] == 0  # always NUL-terminated


def test_loop_config_layout():
    info = abi.LoopInfo(offset=512, flags=abi.LO_FLAGS_AUTOCLEAR)
    raw = abi.pack_config(9, 4096, info)
    assert len(raw) == 304
    assert struct.unpack_from("=II", raw, 0) == (9, 4096)
    assert raw[8:240] == info.pack()
    assert raw[240:] == b"\0" * 64


@pytest.mark.parametrize("major,minor", [(0, 0), (8, 1), (254, 0), (259, 3), (7, 300), (4095, 1048575)])
def test_kernel_dev_encoding_round_trips(major, minor):
    assert abi.decode_kernel_dev(abi.encode_kernel_dev(major, minor)) == (major, minor)


@pytest.mark.parametrize("major,minor", [(8, 1), (259, 300), (4095, 1048575)])
def test_kernel_encoding_decodes_python_st_dev(major, minor):
    # os.stat().st_dev of a file must decode to the same pair the loop driver reports.
    assert abi.decode_kernel_dev(os.makedev(major, minor)) == (major, minor)


def test_flag_names():
    assert abi.flag_names(abi.LO_FLAGS_READ_ONLY | abi.LO_FLAGS_DIRECT_IO) == ["read_only", "direct_io"]
    assert abi.flag_names(0) == []


def test_only_autoclear_and_partscan_are_settable():
    assert abi.SETTABLE_FLAGS == abi.LO_FLAGS_AUTOCLEAR | abi.LO_FLAGS_PARTSCAN
    assert abi.CLEARABLE_FLAGS == abi.LO_FLAGS_AUTOCLEAR

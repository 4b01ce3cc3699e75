# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Partition type aliases, MBR ids and GPT GUIDs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import (
    DOS_BY_ALIAS,
    GPT_BY_ALIAS,
    PartitionTypeError,
    is_extended,
    native_arch,
    normalize_guid,
    resolve_type,
    type_alias,
)

LINUX_GUID = "0fc63daf-8483-4772-8e79-3d69d8477de4"


@pytest.mark.parametrize("value, expected", [
    ("linux", "0x83"), ("swap", "0x82"), ("extended", "0x05"), ("esp", "0xef"), ("fat32", "0x0c"),
    ("fat32-chs", "0x0b"), ("ntfs", "0x07"), ("lvm", "0x8e"), ("raid", "0xfd"), ("protective", "0xee"),
    ("LINUX", "0x83"), (" Linux ", "0x83"), ("efi", "0xef"),
    (0x83, "0x83"), (131, "0x83"), ("83", "0x83"), ("0x83", "0x83"), ("0X0C", "0x0c"), ("c", "0x0c"),
    (0, "0x00"), ("ff", "0xff"),
    (LINUX_GUID, "0x83"), (LINUX_GUID.upper(), "0x83"), ("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "0xef"),
])
def test_resolve_dos(value, expected):
    assert resolve_type(value, "dos") == expected


@pytest.mark.parametrize("value, expected", [
    ("linux", LINUX_GUID), ("linux-data", LINUX_GUID), ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), ("bios-boot", "21686148-6449-6e6f-744e-656564454649"),
    ("bios_grub", "21686148-6449-6e6f-744e-656564454649"), ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172"),
    ("lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928"), ("raid", "a19d880f-05fc-4d3b-a006-743f0f84911e"),
    ("home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"), ("srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"),
    ("var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"), ("tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1"),
    ("root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"), ("root-x86_64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("usr-x86-64", "8484680c-9521-48c6-9c11-b0720656f69e"), ("root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("root-aarch64", "b921b045-1df0-41c3-af44-4c6f280d3fae"), ("usr-arm64", "b0e01050-ee5f-4390-949a-9101b17104e9"),
    ("fat32", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"), ("0x82", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    (0xEF, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("{0FC63DAF-8483-4772-8E79-3D69D8477DE4}", LINUX_GUID),
    ("12345678-9abc-def0-1234-56789abcdef0", "12345678-9abc-def0-1234-56789abcdef0"),
])
def test_resolve_gpt(value, expected):
    assert resolve_type(value, "gpt") == expected


def test_root_and_usr_follow_the_architecture():
    assert resolve_type("root", "gpt", arch="x86_64") == GPT_BY_ALIAS["root-x86-64"]
    assert resolve_type("usr", "gpt", arch="aarch64") == GPT_BY_ALIAS["usr-arm64"]
    assert resolve_type("root", "gpt", arch="arm64") == GPT_BY_ALIAS["root-arm64"]
    if native_arch():
        assert resolve_type("root", "gpt") == GPT_BY_ALIAS["root-%s" % native_arch()]


def test_root_without_a_known_architecture():
    with pytest.raises(PartitionTypeError, match="needs an architecture"):
        resolve_type("root", "gpt", arch="pdp11")


@pytest.mark.parametrize("value, label, message", [
    ("nonsense", "dos", "unknown partition type 'nonsense' for a dos label"),
    ("nonsense", "gpt", "unknown partition type"),
    ("home", "dos", "exists only on gpt"),
    ("extended", "gpt", "exists only on dos"),
    ("4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "dos", "no MBR equivalent"),
    ("0x42", "gpt", "no GPT equivalent"),
    (256, "dos", "not an alias"),
    (-1, "dos", "not an alias"),
    (True, "dos", "is not a type"),
    ("", "dos", "empty"),
    (None, "gpt", "empty"),
    ("linux", "bsd", "unknown partition table label"),
])
def test_resolve_errors(value, label, message):
    with pytest.raises(PartitionTypeError, match=message) as info:
        resolve_type(value, label)
    assert isinstance(info.value, DiskImageError)


def test_aliases_round_trip():
    for alias, code in DOS_BY_ALIAS.items():
        stored = resolve_type(alias, "dos")
        assert stored == "0x%02x" % code
        assert resolve_type(type_alias(stored, "dos"), "dos") == stored
    for alias in GPT_BY_ALIAS:
        guid = resolve_type(alias, "gpt")
        assert resolve_type(type_alias(guid, "gpt"), "gpt") == guid


def test_type_alias():
    assert type_alias("0x83", "dos") == "linux"
    assert type_alias("0x05", "dos") == "extended"
    assert type_alias("0x0f", "dos") == "extended-lba"
    assert type_alias("0x42", "dos") is None
    assert type_alias(LINUX_GUID.upper(), "gpt") == "linux"
    assert type_alias("4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "gpt") == "root-x86-64"
    assert type_alias("12345678-9abc-def0-1234-56789abcdef0", "gpt") is None
    assert type_alias("0x83", "gpt") is None


def test_is_extended():
    assert is_extended("0x05") and is_extended("0x0f") and is_extended(0x85)
    assert not is_extended("0x83") and not is_extended("0xee")


def test_normalize_guid():
    assert normalize_guid(" {0FC63DAF-8483-4772-8E79-3D69D8477DE4} ") == LINUX_GUID
    with pytest.raises(DiskImageError, match="is not a GUID"):
        normalize_guid("0fc63daf84834772")

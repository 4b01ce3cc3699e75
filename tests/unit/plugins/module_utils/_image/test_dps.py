# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discoverable Partitions mount points per partition, by the rules of _tree/plan.py."""

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._image import dps
from ansible_collections.diskimage.loop.plugins.module_utils._partition import types
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import Partition
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def part(number, alias, attributes=0):
    return Partition(number, number * 2048, 2048, 512, types.resolve_type(alias, "gpt"), "gpt", attributes=attributes)


@pytest.mark.parametrize("alias,path", [
    ("root-x86-64", "/"), ("root-arm64", "/"), ("usr-riscv64", "/usr"), ("home", "/home"), ("srv", "/srv"),
    ("var", "/var"), ("tmp", "/var/tmp"), ("xbootldr", "/boot"), ("esp", "/boot"),
    ("root-verity-x86-64", None), ("linux", None), ("swap", None), (None, None)])
def test_each_type_has_the_mount_point_of_the_rules(alias, path):
    assert dps.mount_point(alias) == path


def test_the_esp_goes_to_efi_when_xbootldr_takes_boot():
    assert dps.mount_point("esp", xbootldr=True) == "/efi"
    places = dps.mount_points([part(1, "esp"), part(2, "xbootldr"), part(3, "root-x86-64")])
    assert places == {1: "/efi", 2: "/boot", 3: "/"}


def test_no_auto_and_shared_types_get_none():
    places = dps.mount_points([part(1, "home", tree_plan.NO_AUTO), part(2, "srv"), part(3, "srv"),
                               part(4, "root-x86-64", tree_plan.READ_ONLY)])
    assert places == {1: None, 2: None, 3: None, 4: "/"}


def test_agrees_with_the_tree_plan_of_a_whole_table():
    class Table(object):
        partitions = [part(1, "esp"), part(2, "root-x86-64"), part(3, "home"), part(4, "linux")]
    auto = tree_plan.place_esp(tree_plan.auto_plan(Table), boot_empty=True)
    places = dps.mount_points(Table.partitions)
    assert dict((e["selector"]["partition"], e["path"]) for e in auto) == dict(
        (n, p) for n, p in places.items() if p)


def test_types_in_any_form_and_partitions_as_returned():
    assert dps.mount_point_of("4f68bce3-e8cd-4db1-96e7-fbcaf984b709") == "/"
    assert dps.mount_point_of("root", arch="arm64") == "/"
    assert dps.mount_point_of("efi") == "/boot"
    assert dps.mount_point_of({"type": "933ac7e1-2eb4-4f13-b844-0e14e2aef915", "attributes": 0}) == "/home"
    assert dps.mount_point_of({"type_alias": "home", "attributes": tree_plan.NO_AUTO}) is None
    assert dps.mount_point_of({"type": "0x83"}) is None
    with pytest.raises(DiskImageError):
        dps.mount_point_of("no-such-type")

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When does an existing table satisfy a declared layout? Only what the layout pins counts."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.blkpg import extended_length, partition_name, wanted_geometry
from ansible_collections.diskimage.loop.plugins.module_utils.partition_layout import plan_layout
from ansible_collections.diskimage.loop.plugins.module_utils.partitions_state import _layout_differences

MiB = 1 << 20
SEED = {"label": "dos", "partitions": [{"size": "32MiB"}] * 6 + [{"size": "rest"}]}


def test_same_layout_with_other_random_ids_is_satisfied():
    table = plan_layout(SEED, 320 * MiB)
    again = plan_layout(SEED, 320 * MiB)
    assert _layout_differences(table, again, SEED) == []


def test_pinned_disk_id_must_match():
    layout = dict(SEED, disk_id="0x12345678")
    table = plan_layout(SEED, 320 * MiB)
    assert "the disk id" in _layout_differences(table, plan_layout(layout, 320 * MiB), layout)[0]


@pytest.mark.parametrize("other,fragment", [
    ({"label": "gpt", "partitions": [{}]}, "the label is dos, not gpt"),
    ({"label": "dos", "partitions": [{"size": "64MiB"}, {}]}, "partitions [1, 2, 3, 4, 5, 6, 7, 8], not [1, 2]"),
    ({"label": "dos", "partitions": [{"size": "16MiB"}] + [{"size": "32MiB"}] * 5 + [{}]}, "partition 1 spans"),
    ({"label": "dos", "partitions": [{"size": "32MiB", "type": "swap"}] + [{"size": "32MiB"}] * 5 + [{}]},
     "partition 1 has type 0x83, not 0x82"),
])
def test_differences_are_named(other, fragment):
    table = plan_layout(SEED, 320 * MiB)
    problems = _layout_differences(table, plan_layout(other, 320 * MiB), other)
    assert any(fragment in problem for problem in problems), problems


def test_gpt_names_count_only_when_given():
    base = {"label": "gpt", "partitions": [{"size": "8MiB", "name": "ESP", "type": "esp"}, {"type": "root"}]}
    table = plan_layout(base, 64 * MiB)
    unnamed = {"label": "gpt", "partitions": [{"size": "8MiB", "type": "esp"}, {"type": "root"}]}
    assert _layout_differences(table, plan_layout(unnamed, 64 * MiB), unnamed) == []
    renamed = {"label": "gpt", "partitions": [{"size": "8MiB", "name": "boot", "type": "esp"}, {"type": "root"}]}
    assert "name 'ESP', not 'boot'" in _layout_differences(table, plan_layout(renamed, 64 * MiB), renamed)[0]


def test_kernel_geometry_of_the_seed_table():
    table = plan_layout(SEED, 320 * MiB)
    geometry = wanted_geometry(table)
    assert sorted(geometry) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert geometry[4][1] == 1024  # extended: a two-sector stub
    assert geometry[1] == (MiB, 32 * MiB)


@pytest.mark.parametrize("size,sector,expected", [(100 * MiB, 512, 1024), (100 * MiB, 4096, 4096), (512, 512, 512)])
def test_extended_stub_length(size, sector, expected):
    assert extended_length(size, sector) == expected


@pytest.mark.parametrize("disk,number,name", [("loop3", 2, "loop3p2"), ("sda", 2, "sda2"), ("nvme0n1", 1, "nvme0n1p1")])
def test_partition_names(disk, number, name):
    assert partition_name(disk, number) == name

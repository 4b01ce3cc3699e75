# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's partition entries as the layout of image_partitions and the mounts of a tree."""

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._image import entries
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

ROLE = [{"size": "64MiB", "type": "esp", "fstype": "vfat", "label": "ESP", "mountpoint": "/boot/"},
        {"type": "root", "fstype": "ext4", "mkfs_options": ["-m", "0"], "mountpoint": "/",
         "mount_options": "noatime", "name": None}]


def test_layout_keeps_what_image_partitions_reads():
    layout = entries.partition_layout(ROLE, "gpt", disk_id="", seed="")
    assert layout == {"label": "gpt", "partitions": [
        {"size": "64MiB", "type": "esp", "fstype": "vfat", "label": "ESP"},
        {"type": "root", "fstype": "ext4", "mkfs_options": ["-m", "0"]}]}


def test_layout_of_the_table_alone():
    layout = entries.partition_layout(ROLE, filesystems=False)
    assert layout["partitions"] == [{"size": "64MiB", "type": "esp"}, {"type": "root"}]


def test_layout_with_disk_id_and_seed():
    assert entries.partition_layout(ROLE, "dos", disk_id="0x1234abcd")["disk_id"] == "0x1234abcd"
    one, two = entries.partition_layout(ROLE, seed="s"), entries.partition_layout(ROLE, seed="s")
    assert one == two and one["partitions"][0]["uuid"] and one["disk_id"]


def test_mounts_pair_entries_with_the_returned_partitions_shortest_path_first():
    assert entries.tree_mounts(ROLE, {"entry_partitions": [1, 2]}) == entries.tree_mounts(ROLE, [1, 2]) == [
        {"path": "/", "partition": 2, "fstype": "ext4", "opts": "noatime"},
        {"path": "/boot", "partition": 1, "fstype": "vfat"}]


def test_logical_partitions_are_found_by_their_entry():
    role = [{"size": "1MiB"}] * 4 + [{"size": "1MiB", "mountpoint": "/srv"}]
    assert entries.tree_mounts(role, [1, 2, 3, 5, 6]) == [{"path": "/srv", "partition": 6}]


def test_errors_name_the_problem():
    with pytest.raises(DiskImageError, match="has no partition in the table"):
        entries.tree_mounts(ROLE, [])
    with pytest.raises(DiskImageError, match="expects the entry_partitions"):
        entries.tree_mounts(ROLE, {})
    with pytest.raises(DiskImageError, match="list of partition entries"):
        entries.partition_layout("nope")

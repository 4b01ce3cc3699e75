# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Declared filesystems: read from the entries, compared with the superblocks, made only where missing."""

import shutil
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._image import filesystems
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import ImageSource
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout, write_layout
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1024 * 1024
LAYOUT = {"label": "gpt", "partitions": [
    {"size": "4MiB", "type": "esp", "fstype": "vfat", "fs_label": "ESP"},
    {"size": "4MiB", "type": "linux", "name": "data", "fstype": "ext4", "label": "data"},
    {"type": "linux"}]}


def test_split_takes_the_filesystem_keys_out_of_the_table_entries():
    table, declared = filesystems.split_entries(LAYOUT)
    assert table["partitions"] == [{"size": "4MiB", "type": "esp"}, {"size": "4MiB", "type": "linux", "name": "data"},
                                   {"type": "linux"}]
    assert declared[0] == {"fstype": "vfat", "label": "ESP", "uuid": None, "mkfs_options": [], "mkfs_program": None}
    assert declared[1]["label"] == "data" and declared[2] is None
    assert LAYOUT["partitions"][0]["fstype"] == "vfat"  # the caller's layout is left alone


def test_an_unknown_key_is_named_with_every_known_one():
    with pytest.raises(DiskImageError, match="partition entry 2 has unknown key mountpoint.*attributes, fstype, fs_label"):
        filesystems.split_entries({"label": "gpt", "partitions": [{}, {"mountpoint": "/"}]})


@pytest.mark.parametrize("entry,message", [
    ({"fs_label": "x"}, "has fs_label but no fstype"),
    ({"fstype": "ext4", "fs_label": "a", "label": "b"}, "fs_label 'a' and label 'b'"),
    ({"fstype": "ext4", "mkfs_options": "-m 0"}, "must be a list"),
    ({"fstype": "exfat", "fs_uuid": "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d"}, "cannot be set on exfat"),
    ({"fstype": "ext4", "fs_uuid": "not-a-uuid"}, "is not a UUID"),
    ({"fstype": "-F"}, "not a filesystem type"),
])
def test_bad_declarations_are_refused_naming_the_entry(entry, message):
    with pytest.raises(DiskImageError, match=message) as caught:
        filesystems.parse_declaration(entry, 2)
    assert "partition entry 3" in str(caught.value)


def test_empty_values_declare_nothing():
    assert filesystems.parse_declaration({"fstype": "", "label": "", "mkfs_options": [], "size": 1}, 0) is None


@pytest.mark.parametrize("given,stored", [("abcd1234", "ABCD-1234"), ("ABCD-1234", "ABCD-1234"),
                                          ("6B0F2C44-2D0E-4A36-9D7C-3F5E9A1C2B7D", "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d")])
def test_vfat_takes_a_volume_id_or_a_uuid(given, stored):
    assert filesystems.parse_declaration({"fstype": "vfat", "fs_uuid": given}, 0)["uuid"] == stored


def test_holds_compares_type_and_where_declared_label_and_uuid():
    ext4 = {"type": "ext4", "label": "root", "uuid": "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d"}
    declared = filesystems.parse_declaration({"fstype": "ext4"}, 0)
    assert filesystems.holds(ext4, declared)
    assert not filesystems.holds(None, declared)
    assert not filesystems.holds(ext4, filesystems.parse_declaration({"fstype": "xfs"}, 0))
    assert not filesystems.holds(ext4, filesystems.parse_declaration({"fstype": "ext4", "label": "other"}, 0))
    assert filesystems.holds(ext4, filesystems.parse_declaration(
        {"fstype": "ext4", "fs_uuid": "6B0F2C44-2D0E-4A36-9D7C-3F5E9A1C2B7D"}, 0))
    assert not filesystems.holds(ext4, filesystems.parse_declaration(
        {"fstype": "ext4", "fs_uuid": "00000000-2d0e-4a36-9d7c-3f5e9a1c2b7d"}, 0))
    fat = {"type": "vfat", "label": "ESP", "uuid": "ABCD-1234"}
    assert filesystems.holds(fat, filesystems.parse_declaration({"fstype": "fat32", "fs_uuid": "abcd1234"}, 0))


@pytest.fixture
def image(tmp_path):
    """A 12 MiB image with LAYOUT's table and an ext4 labelled 'data' in partition 2."""
    if not shutil.which("mke2fs"):
        pytest.skip("needs mke2fs")
    path = str(tmp_path / "disk.img")
    with open(path, "wb") as handle:
        handle.truncate(12 * MiB)
    table_layout, _declared = filesystems.split_entries(LAYOUT)
    with open(path, "r+b") as handle:
        table = write_layout(handle, table_layout, 12 * MiB)
    fs = str(tmp_path / "fs.img")
    subprocess.check_call(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", fs, "4M"])
    with open(fs, "rb") as src, open(path, "r+b") as dst:
        dst.seek(table.partitions[1].start)
        dst.write(src.read())
    return path, table


def plan_for(path, table, layout, force_mkfs=False):
    table_layout, declared = filesystems.split_entries(layout)
    planned = plan_layout(table_layout, 12 * MiB)
    return filesystems.plan_mkfs(ImageSource(path), table, planned, declared, force_mkfs)


def test_only_the_partition_without_its_filesystem_is_planned(image):
    steps = plan_for(*image, layout=LAYOUT)
    assert [step.part.number for step in steps] == [1]
    assert steps[0].report() == {"number": 1, "fstype": "vfat", "label": "ESP", "uuid": None, "replaced": None,
                                 "argv": ["mkfs.vfat", "-h", "2048", "-n", "ESP", "@DEVICE@"]}


def test_another_filesystem_is_refused_unless_forced(image):
    other = {"label": "gpt", "partitions": [LAYOUT["partitions"][0], dict(LAYOUT["partitions"][1], fstype="xfs"),
                                            LAYOUT["partitions"][2]]}
    with pytest.raises(DiskImageError, match="partition 2 holds ext4 labelled 'data' .*not the declared xfs"
                                             ".*force_mkfs"):
        plan_for(*image, layout=other)
    steps = plan_for(*image, layout=other, force_mkfs=True)
    forced = [step.report() for step in steps if step.part.number == 2][0]
    assert forced["replaced"]["type"] == "ext4" and forced["replaced"]["label"] == "data"
    assert forced["argv"][:2] == ["mkfs.xfs", "-f"]


def test_mkfs_options_and_program_reach_the_command(image):
    entry = dict(LAYOUT["partitions"][2], fstype="ext4", fs_uuid="6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d",
                 mkfs_options=["-m", 0], mkfs_program="/sbin/mke2fs")
    steps = plan_for(*image, layout=dict(LAYOUT, partitions=LAYOUT["partitions"][:2] + [entry]))
    argv = steps[-1].report()["argv"]
    assert argv[0] == "/sbin/mke2fs" and argv[-3:] == ["-m", "0", "@DEVICE@"]
    assert argv[argv.index("-U") + 1] == "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d"


def test_an_extended_partition_holds_no_filesystem():
    layout = {"label": "dos", "partitions": [{"size": "4MiB", "type": "extended", "fstype": "ext4"},
                                             {"size": "1MiB"}]}
    table_layout, declared = filesystems.split_entries(layout)
    planned = plan_layout(table_layout, 8 * MiB)
    with pytest.raises(DiskImageError, match="extended partition"):
        filesystems.pair(planned, planned, declared)

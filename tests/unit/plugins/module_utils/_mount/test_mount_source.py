# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_source: which partition a selector names, and what a src is, with no root.
Partition tables are generated with partition_layout; filesystems with mkfs."""
import shutil
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import source as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout, write_layout

MiB = 1 << 20
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"

GPT = {"label": "gpt", "seed": "unit", "architecture": "x86_64", "partitions": [
    {"size": "8MiB", "type": "esp", "name": "ESP"},
    {"size": "16MiB", "type": "root-x86-64", "name": "root"},
    {"size": "16MiB", "type": "home", "name": "home"},
    {"size": "8MiB", "type": "linux", "name": "data"},
    {"type": "linux", "name": "data"},
]}
DOS = {"label": "dos", "disk_id": "0x0badcafe", "partitions": [
    {"size": "8MiB", "type": "esp", "bootable": True}, {"size": "8MiB"}, {"size": "8MiB"},
    {"size": "8MiB"}, {"size": "8MiB", "type": "swap"}, {}]}
FILESYSTEMS = {1: {"type": "vfat", "usage": "filesystem", "uuid": "ABCD-1234", "label": "EFI"},
               2: {"type": "ext4", "usage": "filesystem", "uuid": "0d3c2b1a-0000-4000-8000-000000000002",
                   "label": "rootfs"},
               3: {"type": "ext4", "usage": "filesystem", "uuid": "0d3c2b1a-0000-4000-8000-000000000003",
                   "label": "same"},
               4: {"type": "ext4", "usage": "filesystem", "uuid": "0d3c2b1a-0000-4000-8000-000000000004",
                   "label": "same"}}


def fake_probe(part):
    return FILESYSTEMS.get(part.number)


@pytest.fixture(scope="module")
def gpt():
    return plan_layout(GPT, 128 * MiB)


@pytest.fixture(scope="module")
def dos():
    return plan_layout(DOS, 128 * MiB)


# --- selectors ------------------------------------------------------------

@pytest.mark.parametrize("kind,value,number", [
    ("partition", 3, 3),
    ("partition", "2", 2),
    ("partlabel", "ESP", 1),
    ("parttype", "esp", 1),
    ("parttype", "efi", 1),
    ("parttype", "root", 2),
    ("parttype", ROOT_X86_64.upper(), 2),
    ("parttype", "{%s}" % ROOT_X86_64, 2),
    ("parttype", "home", 3),
    ("label", "rootfs", 2),
    ("label", "EFI", 1),
    ("uuid", "abcd-1234", 1),                       # vfat ids: case does not matter
    ("uuid", "0D3C2B1A-0000-4000-8000-000000000003", 3),
])
def test_gpt_selectors(gpt, kind, value, number):
    part, fs = ms.select_partition(gpt, kind, value, fake_probe, arch="x86_64")
    assert part.number == number
    assert fs == FILESYSTEMS.get(number)


def test_partuuid_on_gpt_is_the_entry_guid(gpt):
    target = gpt.partition(4)
    part, _fs = ms.select_partition(gpt, "partuuid", target.uuid.upper(), fake_probe)
    assert part.number == 4


def test_root_means_this_architecture(gpt):
    with pytest.raises(DiskImageError, match="no partition has parttype 'root'"):
        ms.select_partition(gpt, "parttype", "root", fake_probe, arch="aarch64")


@pytest.mark.parametrize("kind,value,number", [
    ("partition", 5, 5),
    ("partuuid", "0badcafe-06", 6),
    ("partuuid", "0BADCAFE-02", 2),
    ("parttype", "0xef", 1),
    ("parttype", "esp", 1),
    ("parttype", "82", 7 - 1),                       # swap, the fifth entry: logical 6
])
def test_dos_selectors(dos, kind, value, number):
    part, _fs = ms.select_partition(dos, kind, value, fake_probe)
    assert part.number == number


def test_probe_is_asked_only_for_filesystem_selectors(gpt):
    asked = []

    def probe(part):
        asked.append(part.number)
        return None

    ms.select_partition(gpt, "partlabel", "root", probe)
    assert asked == [2]                             # only for the facts of the chosen one
    asked[:] = []
    with pytest.raises(DiskImageError):
        ms.select_partition(gpt, "label", "x", probe)
    assert sorted(set(asked)) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kind,value,fragment", [
    ("partition", 9, "no partition has partition 9; the gpt table has: 1: esp partlabel 'ESP'"),
    ("partlabel", "nope", "no partition has partlabel 'nope'"),
    ("label", "nope", "2: root-x86-64 partlabel 'root'"),
    ("uuid", "0d3c2b1a-0000-4000-8000-00000000000f", "no partition has uuid"),
    ("partuuid", "0fc63daf-8483-4772-8e79-3d69d8477de4", "no partition has partuuid"),
    ("parttype", "swap", "no partition has parttype 'swap'"),
    ("parttype", "no-such-type", "unknown partition type 'no-such-type'"),
    ("partlabel", "data", "2 partitions have partlabel 'data': 4: linux"),
    ("label", "same", "2 partitions have label 'same'"),
    ("parttype", "linux", "Select exactly one, for example with partition: 4"),
    ("partition", "x", "'x' is not a partition number"),
    ("shoesize", 1, "unknown partition selector"),
])
def test_gpt_selector_errors_name_the_partitions(gpt, kind, value, fragment):
    with pytest.raises(DiskImageError) as err:
        ms.select_partition(gpt, kind, value, fake_probe, arch="x86_64")
    assert fragment in str(err.value)


@pytest.mark.parametrize("kind,value,fragment", [
    ("partition", 4, "partition 4 is an extended partition"),
    ("parttype", "extended", "selects extended partitions, which hold no filesystem"),
    ("partlabel", "x", "this is a dos partition table, which has no names"),
    ("parttype", "home", "exists only on gpt"),
    ("parttype", "linux", "4 partitions have parttype 'linux'"),
])
def test_dos_selector_errors(dos, kind, value, fragment):
    with pytest.raises(DiskImageError) as err:
        ms.select_partition(dos, kind, value, fake_probe)
    assert fragment in str(err.value)


def test_selector_of_params():
    assert ms.selector_of({"partition": 2, "label": None}) == ("partition", 2)
    assert ms.selector_of({"partition": None, "label": ""}) is None
    with pytest.raises(DiskImageError, match="partition and label select a partition in different ways"):
        ms.selector_of({"partition": 2, "label": "x"})


# --- selection on generated images (mkfs, no root) ---------------------------

def mkfs_ext4(path, size, label):
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed")
    with open(path, "wb") as handle:
        handle.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, path], check=True)
    return path


def splice(fs_path, image, offset):
    with open(fs_path, "rb") as src, open(image, "r+b") as dst:
        data = src.read()
        dst.seek(offset)
        dst.write(data)


@pytest.fixture
def disk(tmp_path):
    """A GPT image: p1 empty, p2 ext4 'second', p3 ext4 'third'."""
    image = str(tmp_path / "disk.img")
    with open(image, "wb") as handle:
        handle.truncate(40 * MiB)
    with open(image, "r+b") as handle:
        table = write_layout(handle, {"label": "gpt", "partitions": [
            {"size": "4MiB", "name": "empty"}, {"size": "16MiB", "name": "second"}, {}]}, 40 * MiB)
    for number, label in ((2, "second"), (3, "third")):
        part = table.partition(number)
        fs = mkfs_ext4(str(tmp_path / ("p%d.fs" % number)), part.size, label)
        splice(fs, image, part.start)
    return image, table


def test_select_on_an_image(disk):
    image, table = disk
    source = ms.MountSource(image)
    chosen = ms.select(source, "label", "third")
    part = table.partition(3)
    assert chosen.partition.number == 3 and chosen.filesystem["type"] == "ext4"
    assert (chosen.extent.start, chosen.extent.size) == (part.start, part.size)
    assert chosen.extent.key == source.extent.key and chosen.offset == part.start
    assert chosen.describe() == "%s partition 3" % image
    assert chosen.to_dict()["filesystem"]["label"] == "third"
    assert ms.filesystem_type(chosen) == "ext4"


def test_a_partitioned_image_needs_a_selector(disk):
    image, _table = disk
    with pytest.raises(DiskImageError) as err:
        ms.select(ms.MountSource(image))
    assert "holds a gpt partition table, not a filesystem: 1: linux partlabel 'empty'" in str(err.value)
    assert "3: linux partlabel 'third'"[:10] in str(err.value) and "ext4 label 'third'" in str(err.value)
    assert "partition, partlabel, partuuid, label, uuid, parttype" in str(err.value)


def test_an_empty_partition_has_no_filesystem(disk):
    image, _table = disk
    chosen = ms.select(ms.MountSource(image), "partition", 1)
    with pytest.raises(DiskImageError, match="no filesystem was recognized in %s partition 1" % image):
        ms.filesystem_type(chosen)
    assert ms.filesystem_type(chosen, "ext4") == "ext4"
    with pytest.raises(DiskImageError, match="not a filesystem type name"):
        ms.filesystem_type(chosen, "ext4,rw")


def test_raw_image_and_whole_filesystem_selectors(tmp_path):
    image = mkfs_ext4(str(tmp_path / "raw.img"), 8 * MiB, "whole")
    source = ms.MountSource(image)
    assert ms.select(source).partition is None
    assert ms.select(source, "label", "whole").extent == source.extent
    with pytest.raises(DiskImageError, match="whose label is 'whole', not 'other'"):
        ms.select(source, "label", "other")
    with pytest.raises(DiskImageError, match="has no partition table, so partition cannot select"):
        ms.select(source, "partition", 1)


@pytest.mark.parametrize("what,fragment", [
    ("missing", "does not exist"),
    ("dir", "is a directory"),
    ("/dev/null", "neither an image file nor a block device"),
    ("empty", "is empty"),
])
def test_bad_sources(tmp_path, what, fragment):
    path = {"missing": str(tmp_path / "missing.img"), "dir": str(tmp_path), "/dev/null": "/dev/null",
            "empty": str(tmp_path / "empty.img")}[what]
    if what == "empty":
        open(path, "wb").close()
    with pytest.raises(DiskImageError, match=fragment):
        ms.MountSource(path)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysfs parsing against a fixture tree shaped like /sys on a host with loop devices."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs


def _write(root, rel, text):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text + "\n")


@pytest.fixture
def sysroot(tmp_path):
    # loop0: bound, partscan, one partition held by a dm map; loop1: unbound; loop10 bound+deleted file
    _write(tmp_path, "block/loop0/dev", "7:0")
    _write(tmp_path, "block/loop0/size", "131072")
    _write(tmp_path, "block/loop0/ro", "0")
    _write(tmp_path, "block/loop0/queue/logical_block_size", "4096")
    _write(tmp_path, "block/loop0/loop/backing_file", "/srv/images/disk with space.img")
    _write(tmp_path, "block/loop0/loop/offset", "1048576")
    _write(tmp_path, "block/loop0/loop/sizelimit", "67108864")
    _write(tmp_path, "block/loop0/loop/autoclear", "0")
    _write(tmp_path, "block/loop0/loop/partscan", "1")
    _write(tmp_path, "block/loop0/loop/dio", "1")
    _write(tmp_path, "block/loop0/loop0p1/partition", "1")
    _write(tmp_path, "block/loop0/loop0p1/dev", "259:0")
    _write(tmp_path, "block/loop0/loop0p1/start", "2048")
    _write(tmp_path, "block/loop0/loop0p1/size", "4096")
    _write(tmp_path, "block/loop0/loop0p2/partition", "2")
    _write(tmp_path, "block/loop0/loop0p2/dev", "259:1")
    os.makedirs(str(tmp_path / "block/loop0/loop0p1/holders/dm-0"))
    os.makedirs(str(tmp_path / "block/loop0/holders"))
    _write(tmp_path, "block/dm-0/dm/name", "loop0p1")
    _write(tmp_path, "block/loop1/dev", "7:1")
    _write(tmp_path, "block/loop1/size", "0")
    _write(tmp_path, "block/loop10/dev", "7:10")
    _write(tmp_path, "block/loop10/size", "2048")
    _write(tmp_path, "block/loop10/ro", "1")
    _write(tmp_path, "block/loop10/loop/backing_file", "/tmp/gone.img (deleted)")
    _write(tmp_path, "block/vda/dev", "254:0")
    _write(tmp_path, "class/misc/loop-control/dev", "10:237")
    os.makedirs(str(tmp_path / "dev/block"))
    os.symlink("../../block/loop0", str(tmp_path / "dev/block/7:0"))
    os.symlink("../../block/vda", str(tmp_path / "dev/block/254:0"))
    return str(tmp_path)


def test_loop_numbers_sorted_numerically(sysroot):
    assert sysfs.loop_numbers(sysroot) == [0, 1, 10]


def test_bound_status(sysroot):
    status = sysfs.loop_status(0, sysroot)
    assert status == {
        "name": "loop0", "number": 0, "devno": (7, 0),
        "backing_file": "/srv/images/disk with space.img", "backing_file_deleted": False,
        "offset": 1048576, "sizelimit": 67108864, "autoclear": False, "partscan": True,
        "direct_io": True, "read_only": False, "size": 131072 * 512, "sector_size": 4096,
    }


def test_unbound_device_has_no_status(sysroot):
    assert sysfs.loop_status(1, sysroot) is None
    assert not sysfs.loop_is_bound(1, sysroot)
    assert sysfs.loop_exists(1, sysroot)
    assert not sysfs.loop_exists(2, sysroot)


def test_deleted_backing_file_is_flagged(sysroot):
    status = sysfs.loop_status(10, sysroot)
    assert status["backing_file"] == "/tmp/gone.img"
    assert status["backing_file_deleted"] is True
    assert status["read_only"] is True
    # attributes missing from the tree fall back to defaults instead of failing
    assert status["offset"] == 0 and status["sector_size"] == 512


def test_partitions_and_geometry(sysroot):
    assert sysfs.partitions("loop0", sysroot) == [("loop0p1", 1), ("loop0p2", 2)]
    assert sysfs.partition_geometry("loop0", "loop0p1", sysroot) == (2048 * 512, 4096 * 512)
    assert sysfs.partitions("loop1", sysroot) == []


def test_holders_of_partitions_and_dm_names(sysroot):
    assert sysfs.holders("loop0p1", sysroot, disk="loop0") == ["dm-0"]
    assert sysfs.holders("loop0", sysroot) == []
    assert sysfs.dm_name("dm-0", sysroot) == "loop0p1"


def test_devno_lookups(sysroot):
    assert sysfs.devno("loop0", sysroot) == (7, 0)
    assert sysfs.name_by_devno(7, 0, sysroot) == "loop0"
    assert sysfs.name_by_devno(254, 0, sysroot) == "vda"
    assert sysfs.name_by_devno(9, 9, sysroot) is None
    assert sysfs.misc_devno("loop-control", sysroot) == (10, 237)


@pytest.mark.parametrize("text,expected", [("7:0", (7, 0)), ("259:12\n", (259, 12)), ("", None),
                                           (None, None), ("7", None), ("a:b", None)])
def test_parse_devno(text, expected):
    assert sysfs.parse_devno(text) == expected

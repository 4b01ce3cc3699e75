# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""busy_reasons on a fixture sysfs: a loop device held by its own partition
maps (expected) and by a stranger's map, with a fixture mount table."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, mountinfo


def _write(root, rel, text):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text + "\n")


MOUNTS = "36 25 253:2 / /mnt/other rw,relatime shared:1 - ext4 /dev/mapper/other rw\n"


@pytest.fixture
def sysroot(tmp_path, monkeypatch):
    """loop0 held by dm-0 and dm-1 (its partition maps) and dm-2 (another map)."""
    _write(tmp_path, "block/loop0/dev", "7:0")
    for number, name in enumerate(["loop0p1", "loop0p2", "other"]):
        os.makedirs(os.path.join(str(tmp_path), "block/loop0/holders/dm-%d" % number))
        _write(tmp_path, "block/dm-%d/dm/name" % number, name)
        _write(tmp_path, "block/dm-%d/dev" % number, "253:%d" % number)
    monkeypatch.setattr(mountinfo, "read_mountinfo", lambda *a: mountinfo.parse_mountinfo(MOUNTS))
    exclusive = []
    monkeypatch.setattr(blockdev, "is_exclusively_held", lambda path: path in exclusive)
    return str(tmp_path), exclusive


def test_every_holder_is_a_reason_unless_expected(sysroot):
    root, _exclusive = sysroot
    assert blockdev.busy_reasons("loop0", root) == [
        "/dev/loop0 is held by /dev/mapper/loop0p1", "/dev/loop0 is held by /dev/mapper/loop0p2",
        "/dev/loop0 is held by /dev/mapper/other"]
    assert blockdev.busy_reasons("loop0", root, expected_holders=["dm-0", "dm-1"]) == [
        "/dev/loop0 is held by /dev/mapper/other"]


def test_the_exclusive_claim_of_expected_holders_is_theirs(sysroot, tmp_path):
    root, exclusive = sysroot
    os.rmdir(os.path.join(str(tmp_path), "block/loop0/holders/dm-2"))
    exclusive.append("/dev/loop0")  # the maps claim the disk
    assert blockdev.busy_reasons("loop0", root, dev_path="/dev/loop0", expected_holders=["dm-0", "dm-1"]) == []
    # without them, an exclusive claim is a stranger's
    for number in (0, 1):
        os.rmdir(os.path.join(str(tmp_path), "block/loop0/holders/dm-%d" % number))
    assert blockdev.busy_reasons("loop0", root, dev_path="/dev/loop0", expected_holders=["dm-0", "dm-1"]) == [
        "opened exclusively by another program (a mount in another namespace, swap or RAID)"]


def test_a_mounted_map_is_busy_itself(sysroot):
    root, _exclusive = sysroot
    assert blockdev.busy_reasons("dm-2", root) == ["mounted at /mnt/other"]
    assert blockdev.busy_reasons("dm-0", root) == []

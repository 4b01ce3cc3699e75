# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook between src and the core: raw stays as it is; a connection this run
made is the plan's first step and last undo, and goes when planning fails."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import server, source
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


class Reported(Plan):
    def __init__(self, path):
        super(Reported, self).__init__()
        self.path = path
        self.detached = []

    def result(self, check_mode=False):
        return {"src": self.path}


def test_a_raw_image_is_planned_as_it_is(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    seen = []
    connections = source.RunConnections("image_partitions")
    plan = connections.plan(str(image), lambda path: seen.append(path) or Reported(path))
    assert seen == [str(image)]
    assert plan.report() == {"changed": False, "actions": [], "src": str(image), "image_format": "raw",
                             "nbd_device": None, "diff": {"before": {}, "after": {}}}


def test_a_missing_src_is_left_to_the_core(tmp_path):
    missing = str(tmp_path / "missing.qcow2")
    plan = source.RunConnections("image_mount").plan(missing, Reported)
    assert plan.path == missing


def test_a_declared_format_needs_an_image_file(tmp_path):
    with pytest.raises(DiskImageError, match="needs src to be an image file"):
        source.block_source(str(tmp_path), "qcow2")


@pytest.fixture
def connected(tmp_path, monkeypatch):
    """block_source connecting a qcow2 image to a pretend /dev/nbd3; the disconnects made."""
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"QFI\xfb")
    connection = server.Connection(3, 4242, str(image), (1, 2), False, 1 << 20)
    taken_down = []
    monkeypatch.setattr(source, "block_source", lambda *a, **k: source.BlockSource(
        str(image), "qcow2", connection, connected_now=True))
    monkeypatch.setattr(source.connect, "take_down", lambda number, pid: taken_down.append((number, pid)))
    return str(image), taken_down


def test_the_connection_is_the_first_step_and_the_last_undo(connected):
    image, taken_down = connected
    plan = source.RunConnections("image_partitions").plan(image, Reported)
    assert plan.path == "/dev/nbd3"
    assert plan.descriptions() == ["connect %s (qcow2) to /dev/nbd3 with qemu-nbd" % image]
    report = plan.report()
    assert (report["src"], report["image_format"], report["nbd_device"]) == (image, "qcow2", "/dev/nbd3")

    def mount_fails():
        raise DiskImageError("mount failed")

    plan.add("fail", mount_fails)
    with pytest.raises(DiskImageError):
        plan.apply()
    assert taken_down == [(3, 4242)]


def test_failed_planning_disconnects(connected):
    image, taken_down = connected

    def build(_path):
        raise DiskImageError("no partition table")

    with pytest.raises(DiskImageError, match="no partition table"):
        source.RunConnections("image_mount").plan(image, build)
    assert taken_down == [(3, 4242)]


def test_a_successful_run_keeps_the_connection(connected):
    image, taken_down = connected
    plan = source.RunConnections("image_partitions").plan(image, Reported)
    plan.apply()
    assert taken_down == [] and plan.undo == []


def test_fstab_refuses_an_image_that_is_not_raw(tmp_path):
    image = tmp_path / "disk.vhdx"
    image.write_bytes(b"vhdxfile" + b"\0" * 100)
    with pytest.raises(DiskImageError, match="vhdx image, and an fstab entry cannot mount it"):
        source.RunConnections("image_mount").plan(str(image), Reported, fstab=True)
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * 512)
    assert source.RunConnections("image_mount").plan(str(raw), Reported, fstab=True).path == str(raw)


def test_merge_lists():
    one, two = Reported("a"), Reported("b")
    one.add("x", None)
    two.add("y", None)
    two.detached.append("/dev/loop1")
    source.merge_lists(one, two, ("steps", "detached"))
    assert one.descriptions() == ["x", "y"] and one.detached == ["/dev/loop1"]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.state.planner: the tree of an image that is not raw is planned on the
nbd device that serves it, its default root named after the image; the
connection is image_mount's, made once a run and taken down when the run fails."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, server
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils._tree import state as tree_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


class Tree(Plan):
    def __init__(self, src, device):
        super(Tree, self).__init__()
        self.src = src
        self.device = device
        self.detached = []

    def result(self, check_mode=False):
        return {"src": self.src}


@pytest.fixture
def planned(monkeypatch):
    """The (state, src, device) of every tree plan made."""
    seen = []

    def plan(state, src, root=None, mounts=None, auto_exclude=(), esp_path="", read_only=False, lazy=False,
             device=None):
        seen.append((state, src, device))
        return Tree(src, device)

    monkeypatch.setattr(tree_state, "plan", plan)
    return seen


@pytest.fixture
def qcow2(tmp_path, monkeypatch):
    """A qcow2 image that block_source connects to a pretend /dev/nbd3, as
    image_mount's; the connects and disconnects made."""
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + b"\0" * 508)
    connection = server.Connection(3, 4242, str(image), (1, 2), False, 1 << 20)
    calls = {"connect": [], "take_down": []}

    def block_source(src, image_format="auto", read_only=False, owner=None, **kwargs):
        calls["connect"].append((owner, read_only))
        return nbd_source.BlockSource(str(image), "qcow2", connection, connected_now=True)

    monkeypatch.setattr(nbd_source, "block_source", block_source)
    monkeypatch.setattr(connect, "take_down", lambda number, pid: calls["take_down"].append(number))
    return str(image), connection, calls


def test_a_raw_image_is_its_own_device(tmp_path, planned):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    report = tree_state.planner("mounted", str(image))().report()
    assert planned == [("mounted", str(image), str(image))]
    assert (report["image_format"], report["nbd_device"]) == ("raw", None)


def test_a_qcow2_tree_is_planned_on_its_nbd_device(planned, qcow2):
    image, _connection, calls = qcow2
    make_plan = tree_state.planner("mounted", image, read_only=True)
    plan = make_plan()
    assert planned == [("mounted", image, "/dev/nbd3")]  # the root is named after src, the tree read from nbd3
    assert calls["connect"] == [("image_mount", True)]
    assert plan.descriptions() == ["connect %s (qcow2) to /dev/nbd3 with qemu-nbd" % image]
    report = plan.report()
    assert (report["src"], report["image_format"], report["nbd_device"]) == (image, "qcow2", "/dev/nbd3")
    # planned again under the locks: the connection this run made stays its own
    again = make_plan()
    assert again.descriptions() == plan.descriptions()


def test_a_failed_mount_disconnects(planned, qcow2):
    image, _connection, calls = qcow2
    plan = tree_state.planner("mounted", image)()

    def mount_fails():
        raise DiskImageError("mount failed")

    plan.add("mount /", mount_fails)
    with pytest.raises(DiskImageError, match="mount failed"):
        plan.apply()
    assert calls["take_down"] == [3]


def test_unmounted_takes_the_tree_down_then_disconnects_what_image_mount_connected(planned, qcow2, monkeypatch):
    image, connection, calls = qcow2
    monkeypatch.setattr(connect, "settled", lambda check_mode=False: _Nothing())
    monkeypatch.setattr(server, "serving", lambda ident: [connection])
    owners = {"owner": "image_mount"}
    monkeypatch.setattr(connect, "owner", lambda current: owners["owner"])
    monkeypatch.setattr(nbd_source.connect, "in_use", lambda number: [])
    plan = tree_state.planner("unmounted", image)()
    assert planned == [("unmounted", image, "/dev/nbd3")]
    assert plan.descriptions() == ["disconnect /dev/nbd3 (connected by image_mount) once nothing uses it"]
    owners["owner"] = "image_partitions"
    assert tree_state.planner("unmounted", image)().steps == []


def test_unmounted_of_an_image_no_device_serves(planned, qcow2, monkeypatch):
    image, _connection, _calls = qcow2
    monkeypatch.setattr(connect, "settled", lambda check_mode=False: _Nothing())
    monkeypatch.setattr(server, "serving", lambda ident: [])
    report = tree_state.planner("unmounted", image)().report()
    assert planned == [("unmounted", image, None)]
    assert (report["image_format"], report["nbd_device"]) == ("qcow2", None)


def test_unmounted_by_root_alone_needs_no_image(planned):
    report = tree_state.planner("unmounted", None, root="/mnt/tree")().report()
    assert planned == [("unmounted", None, None)]
    assert report["image_format"] == "raw"


class _Nothing(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

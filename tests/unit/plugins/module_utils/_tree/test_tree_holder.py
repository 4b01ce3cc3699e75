# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image connection's holder serves an image that is not raw through NBD:
connected before its private namespace is made, read-only when asked, and
disconnected after the tree came down - or left to the next connect's reaping
when it did not."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import holder
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_the_format_is_the_declared_one_or_the_header_s(tmp_path):
    qcow2 = tmp_path / "cloud.qcow2"
    qcow2.write_bytes(b"QFI\xfb" + b"\0" * 508)
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * 512)
    assert holder.image_format(str(qcow2)) == "qcow2"
    assert holder.image_format(str(raw)) == "raw"
    assert holder.image_format(str(tmp_path / "missing.img")) == "raw"  # the mount says it is missing
    assert holder.image_format(str(qcow2), "qcow2") == "qcow2"
    assert holder.image_format(str(qcow2), "raw") == "raw"  # the file's bytes as they are, when declared
    with pytest.raises(DiskImageError, match="declared vmdk, but its header says qcow2"):
        holder.image_format(str(qcow2), "vmdk")


class FakeHeld(object):
    def __init__(self, log, path, fmt, owner, read_only=False):
        self.log = log
        self.connection = None
        log.append(("held", path, fmt, owner, read_only))

    def __enter__(self):
        self.log.append("connect")
        self.connection = type("C", (), {"device": "/dev/nbd4"})()
        return self.connection

    def release(self):
        self.log.append("disconnect")
        self.connection = None


@pytest.fixture
def log(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(holder.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(holder, "refuse_in_use", lambda image: calls.append("refuse_in_use"))
    monkeypatch.setattr(holder, "Held", lambda *a, **kw: FakeHeld(calls, *a, **kw))

    def unshare():
        calls.append("unshare")
        raise DiskImageError("stop here")

    monkeypatch.setattr(holder.namespace, "unshare_private", unshare)
    return calls


@pytest.mark.parametrize("read_only", [False, True])
def test_a_qcow2_image_is_connected_before_the_unshare_and_taken_down_after(tmp_path, log, read_only):
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + b"\0" * 508)
    running = holder.Holder({"image": str(image), "read_only": read_only})
    with pytest.raises(DiskImageError, match="stop here"):
        running.setup()
    assert log == ["refuse_in_use", ("held", str(image), "qcow2", holder.OWNER, read_only), "connect", "unshare"]
    report = running.teardown()
    assert log[-1] == "disconnect" and report == {"done": ["disconnected /dev/nbd4"], "problems": []}


def test_a_raw_image_connects_nothing(tmp_path, log):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    running = holder.Holder({"image": str(image)})
    with pytest.raises(DiskImageError):
        running.setup()
    assert log == ["refuse_in_use", "unshare"] and running.held is None
    assert running.teardown() == {"done": [], "problems": []}


def test_a_tree_that_did_not_come_down_leaves_the_device_to_the_reaping(log):
    running = holder.Holder({"image": "x"})
    running.held = FakeHeld(log, "x", "qcow2", holder.OWNER)
    running.held.__enter__()
    running.tree = type("T", (), {"close": lambda self: ([], ["/tmp/x/var is still mounted"])})()
    report = running.teardown()
    assert "disconnect" not in log
    assert report["problems"][0] == "/tmp/x/var is still mounted"
    assert "/dev/nbd4 stays connected until this process has exited" in report["problems"][1]

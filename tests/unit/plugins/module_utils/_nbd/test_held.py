# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection held for one process (image_files, the image connection's
holder): connected under the allocation lock with this process as its holder,
flushed unless read-only, and disconnected whatever happened."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import held
from ansible_collections.diskimage.loop.plugins.module_utils._nbd.server import Connection
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class FakeSettled(object):
    def __init__(self, log, check_mode=False):
        self.log = log
        self.check_mode = check_mode

    def __enter__(self):
        self.log.append(("settled", self.check_mode))

    def __exit__(self, *exc):
        self.log.append("unlocked")
        return False


@pytest.fixture
def log(monkeypatch):
    calls = []
    monkeypatch.setattr(held.connect, "settled", lambda check_mode=False: FakeSettled(calls, check_mode))
    monkeypatch.setattr(held, "refuse_served", lambda path: calls.append(("refuse_served", path)))

    def fake_connect(path, fmt, read_only, owner, size=None, holder=None):
        calls.append(("connect", path, fmt, read_only, owner, size, holder))
        return Connection(5, 777, path, (1, 2), read_only, 1 << 20)

    monkeypatch.setattr(held.connect, "connect", fake_connect)
    monkeypatch.setattr(held.connect, "take_down", lambda number, pid: calls.append(("take_down", number, pid)))
    monkeypatch.setattr(held, "sync", lambda device: calls.append(("sync", device)))
    return calls


def qcow2_image(tmp_path, size=1 << 20):
    path = tmp_path / "disk.qcow2"
    path.write_bytes(b"QFI\xfb" + b"\0" * 20 + size.to_bytes(8, "big") + b"\0" * 480)
    return str(path)


def test_a_writable_connection_is_this_process_s_flushed_and_taken_down(tmp_path, log):
    path = qcow2_image(tmp_path)
    with held.Held(path, "qcow2", "image connection") as connection:
        assert connection.device == "/dev/nbd5"
    assert log[0] == ("settled", False)  # the reaping runs
    assert log[1] == ("refuse_served", path)  # under the lock, after the reaping
    assert log[2] == ("connect", path, "qcow2", False, "image connection", 1 << 20,
                      {"pid": os.getpid(), "start": held.connect.holder_of()["start"]})
    assert log[3:] == ["unlocked", ("sync", "/dev/nbd5"), ("take_down", 5, 777)]


def test_read_only_is_not_flushed_and_check_mode_reaps_nothing(tmp_path, log):
    path = qcow2_image(tmp_path)
    with held.Held(path, "qcow2", "x", read_only=True):
        pass
    assert log[0] == ("settled", False) and log[2][3] is True  # read-only, but a real run: it reaps
    assert ("take_down", 5, 777) in log and not [c for c in log if c[0] == "sync"]
    del log[:]
    with held.Held(path, "qcow2", "x", check_mode=True):
        pass
    assert log[0] == ("settled", True) and log[2][3] is True  # check mode is read-only and reaps nothing


def test_the_device_is_taken_down_when_the_work_or_the_flush_fails(tmp_path, log, monkeypatch):
    path = qcow2_image(tmp_path)
    with pytest.raises(DiskImageError, match="the work failed"):
        with held.Held(path, "qcow2", "x"):
            raise DiskImageError("the work failed")
    assert log[-1] == ("take_down", 5, 777)

    def failing_sync(device):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(held, "sync", failing_sync)
    del log[:]
    connection = held.Held(path, "qcow2", "x")
    connection.__enter__()
    with pytest.raises(OSError):
        connection.release()
    assert log[-1] == ("take_down", 5, 777) and connection.connection is None
    assert connection.release() is None  # once only


def test_only_qcow2_declares_the_size_the_device_must_show(tmp_path):
    path = qcow2_image(tmp_path, 3 << 30)
    assert held.declared_size(path, "qcow2") == 3 << 30
    assert held.declared_size(path, "vmdk") is None

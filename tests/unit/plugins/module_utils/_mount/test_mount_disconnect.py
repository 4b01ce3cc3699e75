# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_mount.disconnect: an unmount by path alone disconnects the nbd device under
it only when the mounting modules connected it and nothing else of it stays mounted."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._mount import disconnect
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, server
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


class Entry(object):
    def __init__(self, mount_id, number):
        self.mount_id = mount_id
        self.number = number  # the nbd device under it, or None


def number_of(entry):
    return entry.number


def test_only_devices_no_other_mount_uses_are_unused_after():
    root, var, other_tree, tmpfs = Entry(1, 0), Entry(2, 0), Entry(3, 1), Entry(4, None)
    table = [root, var, other_tree, tmpfs]
    assert disconnect.unused_after([var, root], table, number_of) == [0]
    assert disconnect.unused_after([var], table, number_of) == []  # / of nbd0 stays mounted
    assert disconnect.unused_after([tmpfs], table, number_of) == []
    assert disconnect.unused_after([other_tree, root, var, tmpfs], table, number_of) == [1, 0]


class Steps(Plan):
    def __init__(self):
        super(Steps, self).__init__()
        self.detached = []


@pytest.fixture
def nbd0(monkeypatch):
    """A pretend /dev/nbd0 under the mounts; its record's owner is set by the test."""
    connection = server.Connection(0, 4242, "/srv/cloud.qcow2", (1, 2), False, 1 << 30)
    found = {"owner": "image_mount"}
    taken = []
    monkeypatch.setattr(disconnect, "unused_after", lambda unmounting, table: [0])
    monkeypatch.setattr(server, "connection", lambda number: connection if number == 0 else None)
    monkeypatch.setattr(connect, "owner", lambda current: found["owner"])
    monkeypatch.setattr(nbd_source, "disconnect", lambda current, owner: taken.append((current.number, owner)) or True)
    return found, taken


def test_a_connection_the_mounting_modules_made_is_disconnected(nbd0):
    _found, taken = nbd0
    plan = Steps()
    disconnect.plan_disconnect(plan, [Entry(1, 0)], [], "image_mount")
    assert plan.descriptions() == [
        "disconnect /dev/nbd0 (/srv/cloud.qcow2, connected by image_mount) once nothing uses it"]
    plan.apply()
    assert taken == [(0, "image_mount")] and plan.detached == ["/dev/nbd0"]


@pytest.mark.parametrize("owner", [None, "image_partitions"])
def test_a_connection_made_by_hand_or_by_image_partitions_stays(nbd0, owner):
    found, taken = nbd0
    found["owner"] = owner
    plan = Steps()
    disconnect.plan_disconnect(plan, [Entry(1, 0)], [], "image_mount")
    assert plan.steps == [] and taken == []


def test_another_nbd_client_is_left_alone(nbd0, monkeypatch):
    monkeypatch.setattr(server, "connection", lambda number: None)
    monkeypatch.setattr(connect, "read_record", lambda number: None)
    plan = Steps()
    disconnect.plan_disconnect(plan, [Entry(1, 0)], [], "image_mount")
    assert plan.steps == []


@pytest.fixture
def replaced(monkeypatch):
    """/dev/nbd2 served by pid 4242, whose image file was replaced: no path
    leads to it, so server.connection does not know it; its record does."""
    record = {"owner": "image_mount", "image": "/srv/cloud.qcow2", "identity": [1, 2], "pids": [4242]}
    held = {(4242, (1, 2))}
    monkeypatch.setattr(server, "connection", lambda number: None)
    monkeypatch.setattr(connect, "read_record", lambda number: dict(record) if number == 2 else None)
    monkeypatch.setattr(nbd, "task_of", lambda number: 4250 if number == 2 else None)
    monkeypatch.setattr(nbd, "process_of_task", lambda task: 4242)
    monkeypatch.setattr(server, "holds_open", lambda pid, ident: (pid, ident) in held)
    monkeypatch.setattr(nbd, "read_only", lambda number: True)
    monkeypatch.setattr(nbd, "size_bytes", lambda number: 1 << 30)
    return record, held


def test_a_connection_of_a_replaced_image_is_known_by_its_record(replaced):
    found = nbd_source.recorded_connection(2)
    assert (found.device, found.pid, found.identity, found.image) == ("/dev/nbd2", 4242, (1, 2), "/srv/cloud.qcow2")
    assert nbd_source.recorded_connection(3) is None


def test_a_record_proves_nothing_unless_its_server_holds_the_file_and_serves_the_device(replaced):
    record, held = replaced
    held.clear()  # the server holds another file
    assert nbd_source.recorded_connection(2) is None
    held.add((4242, (1, 2)))
    record["pids"] = [999]  # the device is served by a process the record did not start
    assert nbd_source.recorded_connection(2) is None

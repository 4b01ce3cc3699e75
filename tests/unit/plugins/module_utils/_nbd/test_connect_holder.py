# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection held for one process: its holder recorded by pid and start
time, and reap taking it down once that process is gone and nothing uses the device."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect


def stat_line(pid, start, name="python3 (x) y"):
    # the command name may hold spaces and parentheses; starttime is field 22
    fields = ["S", "1", str(pid), str(pid), "0", "-1"] + ["0"] * 13 + [str(start), "100"]
    return "%d (%s) %s\n" % (pid, name, " ".join(fields))


def fake_proc(tmp_path, pid, start):
    base = tmp_path / "proc" / str(pid)
    base.mkdir(parents=True)
    (base / "stat").write_text(stat_line(pid, start))
    return str(tmp_path / "proc")


def test_a_holder_is_its_pid_and_start_time(tmp_path):
    proc = fake_proc(tmp_path, 4321, 987654)
    assert connect.holder_of(4321, proc) == {"pid": 4321, "start": 987654}
    assert connect.holder_alive({"pid": 4321, "start": 987654}, proc)
    assert not connect.holder_alive({"pid": 4321, "start": 987653}, proc)  # the pid reused by another process
    assert not connect.holder_alive({"pid": 4322, "start": 987654}, proc)  # gone
    assert connect.holder_alive(None, proc) and connect.holder_alive({}, proc)  # no holder: kept as before
    assert connect.holder_alive(connect.holder_of())  # this very process, on the real /proc


@pytest.fixture
def reaping(monkeypatch):
    """reap over one record of /dev/nbd3 whose server 900 serves it; what it takes down."""
    state = {"holder": None, "busy": [], "taken": []}
    monkeypatch.setattr(connect, "records", lambda run_dir: {3: {"pids": [900], "holder": state["holder"]}})
    monkeypatch.setattr(connect.server, "started_with", lambda path, number: [900])
    # the device's task 901 is a thread of the server 900
    monkeypatch.setattr(connect.nbd, "task_of", lambda number: 901)
    monkeypatch.setattr(connect.nbd, "process_of_task", lambda task: 900 if task == 901 else None)
    monkeypatch.setattr(connect, "in_use", lambda number: state["busy"])
    monkeypatch.setattr(connect, "take_down", lambda number, pid, run_dir: state["taken"].append((number, pid)))
    monkeypatch.setattr(connect, "forget", lambda number, run_dir: state["taken"].append(("forget", number)))
    monkeypatch.setattr(connect, "UNUSED_WAIT", 0.05)
    monkeypatch.setattr(connect, "READY_WAIT", 0.05)
    return state


def test_reap_keeps_a_connection_without_a_holder_or_with_a_live_one(reaping):
    connect.reap("/nonexistent")
    reaping["holder"] = connect.holder_of()
    connect.reap("/nonexistent")
    assert reaping["taken"] == []


def test_reap_takes_down_the_connection_of_a_dead_holder(reaping):
    reaping["holder"] = {"pid": os.getpid(), "start": -1}
    reaping["busy"] = ["mounted at /mnt/elsewhere"]
    connect.reap("/nonexistent")
    assert reaping["taken"] == []  # used by something else now: not ours to take down
    reaping["busy"] = []
    connect.reap("/nonexistent")
    assert reaping["taken"] == [(3, 900)]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""reap() keeps a connection whose server serves its device, even when the
image file was renamed or replaced since, and stops a server that never got it."""
import json

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect


def pretend(monkeypatch, tmp_path, serving_task):
    (tmp_path / "nbd1.json").write_text(json.dumps({"owner": "image_mount", "image": "/srv/gone.qcow2",
                                                    "identity": [1, 2]}))
    stopped = []
    monkeypatch.setattr(connect.server, "started_with", lambda pid_file, number: [4242])
    monkeypatch.setattr(connect.server, "connection", lambda number: None)  # no path leads to the image
    monkeypatch.setattr(connect.nbd, "task_of", lambda number: serving_task)
    monkeypatch.setattr(connect.nbd, "process_of_task", lambda task: 4242 if task == 4250 else None)
    monkeypatch.setattr(connect, "stop_server", lambda pid, number: stopped.append(pid))
    monkeypatch.setattr(connect, "READY_WAIT", 0.01)
    return stopped


def test_a_server_that_serves_its_device_stays(monkeypatch, tmp_path):
    stopped = pretend(monkeypatch, tmp_path, serving_task=4250)
    connect.reap(str(tmp_path))
    assert stopped == [] and (tmp_path / "nbd1.json").exists()


def test_a_server_that_never_got_its_device_is_stopped(monkeypatch, tmp_path):
    stopped = pretend(monkeypatch, tmp_path, serving_task=None)
    connect.reap(str(tmp_path))
    assert stopped == [4242] and not (tmp_path / "nbd1.json").exists()

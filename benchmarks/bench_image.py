# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image connection: what one task costs inside a disk image (each task mounts
the image's tree in a private namespace and takes it down again) against the
same task on localhost, and what the mount + teardown alone costs."""

import json
import os
import subprocess
import sys

from bench_roles import Playbooks, ansible_playbook
from common import COLLECTIONS, ROOT, Group, Row, interleaved, run, skipped_group

IMAGE_SCRIPT = os.path.join(ROOT, "tests", "integration", "targets", "image_connection", "files", "debian-image.sh")
CACHE = os.path.join(ROOT, ".cache", "image-connection")
TASKS = 10
HOLDER = "ansible_collections.diskimage.loop.plugins.module_utils._tree.holder"


def _image(workdir):
    """A copy of the cached Debian image (built with mmdebstrap on first use)."""
    cached = run(["bash", IMAGE_SCRIPT, "amd64", CACHE]).stdout.strip().splitlines()[-1]
    copy = os.path.join(workdir, "debian.img")
    run(["cp", "--sparse=always", cached, copy])
    return copy


def _playbook(playbooks, name, hosts, image=None):
    play = {"name": name, "hosts": hosts, "gather_facts": False,
            "tasks": [{"name": "task %d" % n, "ansible.builtin.command": "true", "changed_when": False}
                      for n in range(TASKS)]}
    if image is not None:
        play["vars"] = {"ansible_connection": "diskimage.loop.image", "ansible_host": image,
                        "ansible_python_interpreter": "/usr/bin/python3", "ansible_pipelining": True}
    return playbooks.write(name + ".yml", [play])


def _open_close(image):
    """One holder: mount the tree and prepare the working root, then tear down."""
    proc = subprocess.Popen([sys.executable, "-m", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=COLLECTIONS), universal_newlines=True)
    proc.stdin.write(json.dumps({"image": image}) + "\n")
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    proc.stdin.close()
    report = json.loads(proc.stdout.readline())
    proc.wait()
    if not answer.get("ok") or report["problems"]:
        raise RuntimeError("holder: %s %s" % (answer, report))


def bench_tasks(workdir, playbooks, rounds):
    image = _image(workdir)
    inside = _playbook(playbooks, "inside", "localhost", image)
    local = _playbook(playbooks, "local", "localhost")

    def check(result):
        changed, failed = result
        if failed:
            raise RuntimeError("the play failed")

    samples = interleaved([("image", lambda: playbooks.run(inside), None, check),
                           ("localhost", lambda: playbooks.run(local), None, check)], rounds)
    group = Group("6. %d tasks (ansible.builtin.command: true) in one play, pipelining on" % TASKS, [
        "ours: the play against a Debian bookworm image through diskimage.loop.image (every task",
        "      mounts the tree in a private namespace, prepares /proc, /sys, /dev, /run, resolver",
        "      and service guard, runs chrooted, tears down)",
        "tool: the same play on localhost (ansible.builtin.local connection)"])
    group.pair(Row("%d tasks inside the image" % TASKS, samples["image"]),
               Row("%d tasks on localhost" % TASKS, samples["localhost"]))
    extra = (min(samples["image"]) - min(samples["localhost"])) / TASKS
    group.notes.append("cost per task inside the image beyond localhost (fastest rounds): %.0f ms" % (extra * 1e3))
    alone = interleaved([("open+close", lambda: _open_close(image))], rounds * 4)
    group.rows.append(Row("tree mount + working root + teardown alone (no Ansible)", alone["open+close"]))
    return group


def run_all(workdir, quick):
    title = "6. One task inside an image vs on localhost"
    if ansible_playbook() is None:
        return [skipped_group(title, [], ("inside the image", "on localhost"), "ansible-playbook not found")]
    playbooks = Playbooks(workdir)
    try:
        return [bench_tasks(workdir, playbooks, 2 if quick else 5)]
    except RuntimeError as exc:
        return [skipped_group(title, [], ("inside the image", "on localhost"), str(exc)[:200])]

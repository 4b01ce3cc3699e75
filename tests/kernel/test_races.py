# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Racing runs of the modules converge: eight processes started at once.

Each run is the module's own ``main`` in a process of its own, as Ansible runs
it (``python -m <module> ARGS.json``), with the imports done before a common
start line so that the eight really plan at the same moment. The mount table
(/proc/self/mountinfo) and ``losetup --json`` are the oracles afterwards.
Rounds repeat, because one round of a race proves little: before the modules
took locks these tests failed in most rounds.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils import partitions_state

from .conftest import MiB, losetup_json, release_under
from .test_image_mount import ensure_unmounted, make_fs, partitioned

pytestmark = pytest.mark.root

RUNS = 8
ROUNDS = int(os.environ.get("RACE_ROUNDS", "4"))
MODULES = "ansible_collections.diskimage.loop.plugins.modules."
COLLECTIONS_ROOT = [path for path in sys.path
                    if os.path.isdir(os.path.join(path, "ansible_collections", "diskimage", "loop"))][0]

# argv: module, args file, start-line file. With RACE_HOLD set, the run
# announces (by creating that file) that it is about to apply its plan, and
# then never does: it holds whatever it holds until it is killed.
DRIVER = r"""
import os, runpy, sys, time
import ansible.module_utils.basic
from ansible_collections.diskimage.loop.plugins.module_utils import (
    loop_state, mount_plan, mount_state, partitions_state)
module, args, start = sys.argv[1:4]
hold = os.environ.get("RACE_HOLD")
if hold:
    def apply(self):
        open(hold, "w").close()
        time.sleep(3600)
    mount_plan.MountPlan.apply = apply
while not os.path.exists(start):
    time.sleep(0.001)
sys.argv = [module, args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


class Race(object):
    """Module runs in processes of their own, released together."""

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(dir=str(workdir), prefix="race.")
        self.start = os.path.join(self.dir, "start")
        self.procs = []

    def add(self, name, env=None, **args):
        params = dict((key, value) for key, value in args.items() if value is not None)
        params.update(_ansible_check_mode=False, _ansible_diff=True)
        path = os.path.join(self.dir, "args%d.json" % len(self.procs))
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
        environ = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, **(env or {}))
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, MODULES + name, path, self.start],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                env=environ)
        self.procs.append(proc)
        return proc

    def go(self):
        open(self.start, "w").close()

    def results(self, timeout=120):
        """Every run's JSON result, with ``rc``; in the order they were added."""
        out = []
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            stdout, stderr = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            try:
                result = json.loads(stdout)
            except ValueError:
                result = {"failed": True, "msg": "no JSON: %s %s" % (stdout, stderr)}
            result["rc"] = proc.returncode
            out.append(result)
        return out

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_together(workdir, runs):
    """Start ``runs`` ([(module, args)]) at once; their results."""
    race = Race(workdir)
    try:
        for name, args in runs:
            race.add(name, **args)
        time.sleep(0.05)
        race.go()
        return race.results()
    finally:
        race.kill()


def mounts_at(path):
    """The mount stack at ``path``, from /proc/self/mountinfo: (source, fstype) each."""
    path = os.path.realpath(str(path))
    with open("/proc/self/mountinfo") as handle:
        fields = [line.split() for line in handle]
    return [(f[f.index("-") + 2], f[f.index("-") + 1]) for f in fields if f[4] == path]


def loops_of(image):
    """losetup's view of the devices backed by ``image``: {device: offset}."""
    image = os.path.realpath(image)
    return dict((dev["name"], int(dev["offset"])) for dev in losetup_json()
                if (dev.get("back-file") or "").split(" (deleted)")[0] == image)


def partitions_of(device):
    name = os.path.basename(device)
    return sorted(entry for entry in os.listdir("/sys/class/block/%s" % name) if entry.startswith(name + "p"))


def failures(results):
    return [r.get("msg") for r in results if r.get("failed") or r["rc"]]


@pytest.fixture
def disk(workdir, tmp_path):
    """A GPT image with four ext4 partitions, each labelled p<N>."""
    parts = []
    for number in range(1, 5):
        tree = tmp_path / ("tree%d" % number)
        tree.mkdir()
        (tree / "which").write_text("p%d\n" % number)
        fs = make_fs("ext4", str(tmp_path / ("p%d.fs" % number)), str(tree), label="p%d" % number, size=8 * MiB)
        parts.append((fs, {"size": 8 * MiB, "name": "p%d" % number}))
    image, _table = partitioned(workdir, "disk.img", parts)
    yield image
    release_under(str(workdir))


def mount_args(image, path, partition=1, state="mounted"):
    return ("image_mount", {"src": image, "path": str(path), "partition": partition, "state": state})


def take_down(image, paths):
    """Unmount every path and detach what image_mount attached; also after a failure."""
    for path, partition in paths:
        for _layer in range(RUNS):  # a race without locks stacks mounts: take every layer
            if not mounts_at(path):
                break
            ensure_unmounted(image, path, selector=("partition", partition))
    deadline = time.monotonic() + 5
    while loops_of(image) and time.monotonic() < deadline:
        time.sleep(0.05)  # autoclear detaches on the last close, a moment later


# --- the tests ------------------------------------------------------------------

def test_the_same_mount_eight_times_mounts_once(workdir, disk):
    mnt = workdir / "mnt"
    for _round in range(ROUNDS):
        try:
            results = run_together(workdir, [mount_args(disk, mnt)] * RUNS)
            assert not failures(results)
            assert mounts_at(mnt) == [(mounts_at(mnt)[0][0], "ext4")], mounts_at(mnt)
            assert len(loops_of(disk)) == 1, loops_of(disk)
            assert sum(r["changed"] for r in results) == 1, [r["actions"] for r in results]
            with open(str(mnt / "which")) as handle:
                assert handle.read() == "p1\n"
        finally:
            take_down(disk, [(mnt, 1)])
        assert not mounts_at(mnt) and not loops_of(disk)


def test_the_same_image_partitions_eight_times_attach_once(workdir, disk):
    for _round in range(ROUNDS):
        try:
            results = run_together(workdir, [("image_partitions", {"src": disk})] * RUNS)
            assert not failures(results)
            loops = loops_of(disk)
            assert len(loops) == 1, loops
            device = "/dev/" + os.path.basename(list(loops)[0])
            assert set(r["device"] for r in results) == set([device])
            assert partitions_of(device) == ["%sp%d" % (os.path.basename(device), n) for n in range(1, 5)]
            assert sum(r["changed"] for r in results) == 1
        finally:
            try:
                partitions_state.plan_absent(disk).apply()
            finally:
                release_under(str(workdir))
        assert not loops_of(disk)


def test_mounted_and_unmounted_racing_on_one_path(workdir, disk):
    mnt = workdir / "mnt"
    for _round in range(ROUNDS):
        try:
            runs = [mount_args(disk, mnt, state=state) for state in ("mounted", "unmounted") * (RUNS // 2)]
            results = run_together(workdir, runs)
            assert not failures(results)
            stack = mounts_at(mnt)
            # Either way one consistent state: mounted once over one loop device, or neither.
            assert len(stack) <= 1, stack
            deadline = time.monotonic() + 5
            while not stack and loops_of(disk) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(loops_of(disk)) == len(stack), (stack, loops_of(disk))
        finally:
            take_down(disk, [(mnt, 1)])
        assert not mounts_at(mnt) and not loops_of(disk)


def test_different_partitions_at_different_paths_all_mount(workdir, disk):
    paths = [(workdir / ("p%d" % number), number) for number in range(1, 5)]
    for _round in range(ROUNDS):
        try:
            results = run_together(workdir, [mount_args(disk, path, number) for path, number in paths * 2])
            assert not failures(results)
            for path, number in paths:
                assert len(mounts_at(path)) == 1, (path, mounts_at(path))
                with open(str(path / "which")) as handle:
                    assert handle.read() == "p%d\n" % number
            assert sorted(loops_of(disk).values()) == sorted(r["partition"]["start"] for r in results[:4])
            assert sum(r["changed"] for r in results) == 4
        finally:
            take_down(disk, paths)
        assert not loops_of(disk)


def test_a_run_killed_while_holding_its_locks_lets_the_next_proceed(workdir, disk):
    mnt = workdir / "mnt"
    holding = os.path.join(str(workdir), "holding")
    race = Race(workdir)
    try:
        holder = race.add("image_mount", env={"RACE_HOLD": holding}, src=disk, path=str(mnt), partition=1)
        race.go()
        deadline = time.monotonic() + 60
        while not os.path.exists(holding):
            assert holder.poll() is None and time.monotonic() < deadline, holder.communicate()
            time.sleep(0.01)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.returncode == -signal.SIGKILL
        started = time.monotonic()
        results = run_together(workdir, [mount_args(disk, mnt)] * RUNS)
        assert time.monotonic() - started < 60
        assert not failures(results)
        assert len(mounts_at(mnt)) == 1 and len(loops_of(disk)) == 1
        assert sum(r["changed"] for r in results) == 1
    finally:
        race.kill()
        take_down(disk, [(mnt, 1)])
    assert not mounts_at(mnt) and not loops_of(disk)

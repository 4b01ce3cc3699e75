# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Racing runs of the modules converge: eight processes started at once.

Each run is the module's own ``main`` in a process of its own, as Ansible runs
it (``python -m <module> ARGS.json``), with the imports done before a common
start line so that the eight really plan at the same moment. The mount table
(/proc/self/mountinfo) and ``losetup --json`` are the oracles afterwards.
Rounds repeat, because one round of a race proves little. Before the modules
took locks, one round failed this often (12 rounds each, on 2 loaded cores):
the same mount 7, the same image's partitions 5, loop_device against
image_partitions 4, mounted against unmounted 10, different partitions at
different paths 11, eight runs after a killed one 9 - with ROUNDS rounds a
test catches such a race almost always. RACE_ROUNDS overrides ROUNDS.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state

from .conftest import MiB, losetup_json, release_under
from .test_image_mount import ensure_unmounted, make_fs, partitioned

pytestmark = pytest.mark.root

RUNS = 8
ROUNDS = int(os.environ.get("RACE_ROUNDS", "6"))
MODULES = "ansible_collections.diskimage.loop.plugins.modules."
COLLECTIONS_ROOT = [path for path in sys.path
                    if os.path.isdir(os.path.join(path, "ansible_collections", "diskimage", "loop"))][0]

# argv: module, args file, race directory, index, rounds. The run waits for
# the file start<N> of each round, runs the module's main (its JSON goes to
# out<N>-<index>, its exit code to rc<N>-<index>). With RACE_HOLD set, the
# run announces (by creating that file) that it is about to apply its plan,
# and then never does: it holds whatever it holds until it is killed.
DRIVER = r"""
import os, runpy, sys, time
import ansible.module_utils.basic as basic
from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state
from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks, plan as mount_plan, state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
module, args, here, index, rounds = sys.argv[1:6]
hold = os.environ.get("RACE_HOLD")
if hold:
    def apply(self):
        open(hold, "w").close()
        time.sleep(3600)
    mount_plan.MountPlan.apply = apply
for n in range(int(rounds)):
    while not os.path.exists(os.path.join(here, "start%d" % n)):
        time.sleep(0.002)
    rc = 0
    basic._ANSIBLE_ARGS = None
    sys.argv = [module, args]
    with open(os.path.join(here, "out%d-%s" % (n, index)), "w") as out:
        sys.stdout = out
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            rc = exc.code or 0
        finally:
            sys.stdout = sys.__stdout__
    done = os.path.join(here, "rc%d-%s" % (n, index))
    with open(done + ".tmp", "w") as handle:
        handle.write(str(rc))
    os.rename(done + ".tmp", done)
"""


class Race(object):
    """Module runs, each in a process of its own, released together round by
    round: ``runs`` is [(module, args)], ``env`` extra environment."""

    def __init__(self, workdir, runs, rounds=ROUNDS, env=None):
        self.dir = tempfile.mkdtemp(dir=str(workdir), prefix="race.")
        self.procs = []
        environ = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, **(env or {}))
        for index, (name, args) in enumerate(runs):
            params = dict((key, value) for key, value in args.items() if value is not None)
            params.update(_ansible_check_mode=False, _ansible_diff=True)
            path = os.path.join(self.dir, "args%d.json" % index)
            with open(path, "w") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", DRIVER, MODULES + name, path, self.dir, str(index), str(rounds)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=environ))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def go(self, n):
        open(os.path.join(self.dir, "start%d" % n), "w").close()

    def round(self, n, timeout=120):
        """Start round ``n``; every run's JSON result with ``rc``, in order."""
        self.go(n)
        deadline = time.monotonic() + timeout
        results = []
        for index, proc in enumerate(self.procs):
            done = os.path.join(self.dir, "rc%d-%d" % (n, index))
            wait_until(lambda: os.path.exists(done) or proc.poll() is not None,
                       max(0.0, deadline - time.monotonic()), interval=0.01)
            if not os.path.exists(done):
                self.kill()
                raise AssertionError("run %d of round %d ended without a result: %s" % (
                    index, n, proc.communicate()))
            with open(os.path.join(self.dir, "out%d-%d" % (n, index))) as handle:
                stdout = handle.read()
            try:
                result = json.loads(stdout)
            except ValueError:
                result = {"failed": True, "msg": "no JSON: %s" % stdout}
            with open(done) as handle:
                result["rc"] = int(handle.read())
            results.append(result)
        return results

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


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
    wait_until(lambda: not loops_of(image), 5, interval=0.05)  # autoclear detaches on the last close, a moment later
    assert not any(mounts_at(path) for path, _partition in paths) and not loops_of(image)


def detach_all(workdir, image, plan_absent):
    try:
        plan_absent(image).apply()
    finally:
        release_under(str(workdir))
    assert not loops_of(image)


def rounds(workdir, runs, clean):
    """Race ``runs`` round after round: each round's results, after checking
    that every run succeeded; ``clean()`` after each round, however it ended."""
    with Race(workdir, runs) as race:
        for n in range(ROUNDS):
            try:
                results = race.round(n)
                assert not failures(results)
                yield results
            finally:
                clean()


def one_attachment_with_partitions(image, results):
    loops = loops_of(image)
    assert len(loops) == 1, loops
    device = list(loops)[0]
    assert set(r["device"] for r in results) == set([device])
    name = os.path.basename(device)
    assert partitions_of(device) == ["%sp%d" % (name, number) for number in range(1, 5)]


# --- the tests ------------------------------------------------------------------

def test_the_same_mount_eight_times_mounts_once(workdir, disk):
    mnt = workdir / "mnt"
    for results in rounds(workdir, [mount_args(disk, mnt)] * RUNS, lambda: take_down(disk, [(mnt, 1)])):
        stack = mounts_at(mnt)
        assert len(stack) == 1 and stack[0][1] == "ext4", stack
        assert len(loops_of(disk)) == 1, loops_of(disk)
        assert sum(r["changed"] for r in results) == 1, [r["actions"] for r in results]
        with open(str(mnt / "which")) as handle:
            assert handle.read() == "p1\n"


def test_the_same_image_partitions_eight_times_attach_once(workdir, disk):
    runs = [("image_partitions", {"src": disk})] * RUNS
    for results in rounds(workdir, runs, lambda: detach_all(workdir, disk, partitions_state.plan_absent)):
        one_attachment_with_partitions(disk, results)
        assert sum(r["changed"] for r in results) == 1


def test_loop_device_with_partscan_and_image_partitions_share_one_attachment(workdir, disk):
    runs = [("loop_device", {"file": disk, "partscan": True}), ("image_partitions", {"src": disk})] * (RUNS // 2)
    for results in rounds(workdir, runs, lambda: detach_all(workdir, disk, loop_state.plan_absent)):
        one_attachment_with_partitions(disk, results)
        # The first attaches; an image_partitions run after a loop_device run adds the partitions.
        assert 1 <= sum(r["changed"] for r in results) <= 2


def test_mounted_and_unmounted_racing_on_one_path(workdir, disk):
    mnt = workdir / "mnt"
    runs = [mount_args(disk, mnt, state=state) for state in ("mounted", "unmounted") * (RUNS // 2)]
    for _results in rounds(workdir, runs, lambda: take_down(disk, [(mnt, 1)])):
        stack = mounts_at(mnt)
        # Either way one consistent state: mounted once over one loop device, or neither.
        assert len(stack) <= 1, stack
        if not stack:
            wait_until(lambda: not loops_of(disk), 5, interval=0.05)  # autoclear, a moment after the umount
        assert len(loops_of(disk)) == len(stack), (stack, loops_of(disk))


def test_different_partitions_at_different_paths_all_mount(workdir, disk):
    paths = [(workdir / ("p%d" % number), number) for number in range(1, 5)]
    runs = [mount_args(disk, path, number) for path, number in paths * 2]
    for results in rounds(workdir, runs, lambda: take_down(disk, paths)):
        for path, number in paths:
            assert len(mounts_at(path)) == 1, (path, mounts_at(path))
            with open(str(path / "which")) as handle:
                assert handle.read() == "p%d\n" % number
        assert sorted(loops_of(disk).values()) == sorted(r["partition"]["start"] for r in results[:4])
        assert sum(r["changed"] for r in results) == 4


def test_a_run_killed_while_holding_its_locks_lets_the_next_proceed(workdir, disk):
    mnt = workdir / "mnt"
    holding = os.path.join(str(workdir), "holding")
    try:
        with Race(workdir, [mount_args(disk, mnt)], rounds=1, env={"RACE_HOLD": holding}) as holder:
            holder.go(0)
            wait_until(lambda: os.path.exists(holding) or holder.procs[0].poll() is not None, 60, interval=0.01)
            assert os.path.exists(holding) and holder.procs[0].poll() is None
            os.kill(holder.procs[0].pid, signal.SIGKILL)
            assert holder.procs[0].wait() == -signal.SIGKILL
        with Race(workdir, [mount_args(disk, mnt)] * RUNS, rounds=1) as race:
            started = time.monotonic()
            results = race.round(0)
            assert time.monotonic() - started < 100  # not the lock's 600 s wait
        assert not failures(results)
        assert len(mounts_at(mnt)) == 1 and len(loops_of(disk)) == 1
        assert sum(r["changed"] for r in results) == 1
    finally:
        take_down(disk, [(mnt, 1)])

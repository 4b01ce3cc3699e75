# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flock mechanism: order, files, check mode, waits, dead holders, settling a plan."""
import fcntl
import multiprocessing
import os
import signal
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import flock
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


@pytest.fixture
def lock_dir(tmp_path):
    return str(tmp_path / "locks")


# Ranks as a caller would define them.
PATH, IMAGE, EXTENT = 1, 3, 4


def key(rank, name, shared=False):
    return flock.Key(rank, name, shared, kind={PATH: "mount path"}.get(rank, "lock on"))


def lock_set(lock_dir, wait=5.0, **kwargs):
    return flock.Locks(lock_dir, wait, **kwargs)


def lock_files(lock_dir):
    return sorted(os.listdir(lock_dir)) if os.path.isdir(lock_dir) else []


def _hold(lock_dir, rank, name, ready):
    held = lock_set(lock_dir)
    held.take([key(rank, name)])
    ready.set()
    time.sleep(60)


@pytest.fixture
def holder(lock_dir):
    """Start a process that holds one lock until it is killed."""
    procs = []

    def start(rank, name):
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(target=_hold, args=(lock_dir, rank, name, ready))
        proc.start()
        procs.append(proc)
        assert ready.wait(30)
        return proc

    yield start
    for proc in procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()


def test_locks_are_taken_in_order_and_their_files_removed(lock_dir):
    with lock_set(lock_dir) as held:
        assert held.take([key(IMAGE, "b"), key(PATH, "/mnt/z"), None, key(PATH, "/mnt/a")])
        assert [k.order for k, _fd in held.held] == [(1, "/mnt/a"), (1, "/mnt/z"), (3, "b")]
        assert len(lock_files(lock_dir)) == 3
        assert not held.take([key(PATH, "/mnt/a")])  # held already: nothing to plan again for
        # A lock after all held ones is added; one before them means taking all again in order.
        assert held.take([key(EXTENT, "b@0")])
        assert held.take([key(PATH, "/mnt/m")])
        orders = [k.order for k, _fd in held.held]
        assert orders == [(1, "/mnt/a"), (1, "/mnt/m"), (1, "/mnt/z"), (3, "b"), (4, "b@0")]
    assert lock_files(lock_dir) == []


def test_an_exclusive_lock_after_a_shared_one_is_taken_again(lock_dir):
    with lock_set(lock_dir) as held:
        held.take([key(IMAGE, "i", shared=True)])
        assert held.take([key(IMAGE, "i")])
        assert [(k.order, k.shared) for k, _fd in held.held] == [((3, "i"), False)]


def test_shared_locks_coexist_and_the_last_removes_the_file(lock_dir):
    one = lock_set(lock_dir, 0.2)
    two = lock_set(lock_dir, 0.2)
    one.take([key(IMAGE, "i", shared=True)])
    two.take([key(IMAGE, "i", shared=True)])
    one.release()
    assert len(lock_files(lock_dir)) == 1
    two.release()
    assert lock_files(lock_dir) == []


def test_a_held_lock_times_out_with_the_holder_named(lock_dir, holder):
    proc = holder(PATH, "/mnt/x")
    held = lock_set(lock_dir, 0.3)
    with pytest.raises(DiskImageError) as caught:
        held.take([key(PATH, "/mnt/x")])
    assert "timed out after 0.3 s waiting for the mount path /mnt/x" in caught.value.message
    assert "pid %d" % proc.pid in caught.value.message
    assert held.held == []


def test_a_killed_holder_leaves_nothing_held(lock_dir, holder):
    proc = holder(PATH, "/mnt/x")
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with lock_set(lock_dir, 5) as held:
        held.take([key(PATH, "/mnt/x")])
        assert held.held[0][1] is not None


def test_check_mode_creates_nothing_and_waits_a_bounded_time(lock_dir, holder):
    with lock_set(lock_dir, check_mode=True) as held:
        held.take([key(PATH, "/mnt/x")])
        assert held.held[0][1] is None and not os.path.exists(lock_dir)
    holder(PATH, "/mnt/x")
    started = time.monotonic()
    with lock_set(lock_dir, 0.3, check_mode=True) as held:
        held.take([key(PATH, "/mnt/x")])
        assert held.held[0][1] is None
    assert time.monotonic() - started < 5
    assert "another run is changing the mount path /mnt/x" in held.warnings[0]


def test_a_lock_on_a_removed_file_is_taken_again_on_the_new_one(lock_dir):
    first = lock_set(lock_dir)
    first.take([key(PATH, "/p")])
    path = os.path.join(lock_dir, key(PATH, "/p").file_name())
    stale = os.open(path, os.O_RDONLY)
    first.release()  # removes the file
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a waiter gets: a lock on the old file
    assert not flock._is_current(stale, path)
    os.close(stale)


def test_settle_plans_again_until_the_plan_needs_nothing_new(lock_dir):
    plans = []

    def make_plan():
        plans.append(len(plans))
        return plans[-1]

    def keys_of(plan):
        return [key(PATH, "/mnt"), key(EXTENT, "e%d" % min(plan, 1))]

    with lock_set(lock_dir, keys_of=keys_of, first=[key(PATH, "/mnt")]) as held:
        assert held.settle(make_plan) == 2
        assert [k.name for k, _fd in held.held] == ["/mnt", "e0", "e1"]


def test_first_keys_may_be_listed_by_a_function_called_in_the_window(lock_dir):
    calls = []

    def first():
        calls.append(1)
        return [key(PATH, "/mnt")]

    held = lock_set(lock_dir, first=first)
    assert calls == []
    with held:
        assert held.settle(lambda: "plan") == "plan"
        assert calls == [1] and [k.name for k, _fd in held.held] == ["/mnt"]
    assert lock_files(lock_dir) == []


def test_holders_ignore_waiters_and_other_files(tmp_path):
    fd = os.open(str(tmp_path / "f"), os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        info = os.fstat(fd)
        here = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
        table = tmp_path / "locks"
        table.write_text(
            "1: FLOCK  ADVISORY  WRITE %d %s 0 EOF\n"
            "1: -> FLOCK  ADVISORY  WRITE 99999 %s 0 EOF\n"
            "2: FLOCK  ADVISORY  READ 1 00:00:1 0 EOF\n" % (os.getpid(), here, here))
        described = flock._holders(fd, str(table))
        assert described.startswith(" (pid %d: " % os.getpid())
        assert "99999" not in described and "pid 1:" not in described
    finally:
        os.close(fd)

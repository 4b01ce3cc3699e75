# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The locks that serialize racing runs: order, files, check mode, waits, dead holders."""
import fcntl
import multiprocessing
import os
import signal
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils import locks
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


@pytest.fixture
def lock_dir(tmp_path):
    return str(tmp_path / "locks")


def key(rank, name, shared=False):
    return locks.Key(rank, name, shared)


def lock_files(lock_dir):
    return sorted(os.listdir(lock_dir)) if os.path.isdir(lock_dir) else []


def _hold(lock_dir, rank, name, ready):
    held = locks.Locks(lock_dir=lock_dir)
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
    with locks.Locks(lock_dir=lock_dir) as held:
        assert held.take([key(locks.IMAGE, "b"), key(locks.PATH, "/mnt/z"), None, key(locks.PATH, "/mnt/a")])
        assert [k.order for k, _fd in held.held] == [(1, "/mnt/a"), (1, "/mnt/z"), (3, "b")]
        assert len(lock_files(lock_dir)) == 3
        assert not held.take([key(locks.PATH, "/mnt/a")])  # held already: nothing to plan again for
        # A lock after all held ones is added; one before them means taking all again in order.
        assert held.take([key(locks.EXTENT, "b@0")])
        assert held.take([key(locks.PATH, "/mnt/m")])
        orders = [k.order for k, _fd in held.held]
        assert orders == [(1, "/mnt/a"), (1, "/mnt/m"), (1, "/mnt/z"), (3, "b"), (4, "b@0")]
    assert lock_files(lock_dir) == []


def test_an_exclusive_lock_after_a_shared_one_is_taken_again(lock_dir):
    with locks.Locks(lock_dir=lock_dir) as held:
        held.take([key(locks.IMAGE, "i", shared=True)])
        assert held.take([key(locks.IMAGE, "i")])
        assert [(k.order, k.shared) for k, _fd in held.held] == [((3, "i"), False)]


def test_shared_locks_coexist_and_the_last_removes_the_file(lock_dir):
    one = locks.Locks(lock_dir=lock_dir, wait=0.2)
    two = locks.Locks(lock_dir=lock_dir, wait=0.2)
    one.take([key(locks.IMAGE, "i", shared=True)])
    two.take([key(locks.IMAGE, "i", shared=True)])
    one.release()
    assert len(lock_files(lock_dir)) == 1
    two.release()
    assert lock_files(lock_dir) == []


def test_a_held_lock_times_out_with_the_holder_named(lock_dir, holder):
    proc = holder(locks.PATH, "/mnt/x")
    held = locks.Locks(lock_dir=lock_dir, wait=0.3)
    with pytest.raises(DiskImageError) as caught:
        held.take([key(locks.PATH, "/mnt/x")])
    assert "timed out after 0.3 s waiting for the mount path /mnt/x" in caught.value.message
    assert "pid %d" % proc.pid in caught.value.message
    assert held.held == []


def test_a_killed_holder_leaves_nothing_held(lock_dir, holder):
    proc = holder(locks.PATH, "/mnt/x")
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with locks.Locks(lock_dir=lock_dir, wait=5) as held:
        held.take([key(locks.PATH, "/mnt/x")])
        assert held.held[0][1] is not None


def test_check_mode_creates_nothing_and_waits_a_bounded_time(lock_dir, holder):
    with locks.Locks(check_mode=True, lock_dir=lock_dir) as held:
        held.take([key(locks.PATH, "/mnt/x")])
        assert held.held[0][1] is None and not os.path.exists(lock_dir)
    holder(locks.PATH, "/mnt/x")
    started = time.monotonic()
    with locks.Locks(check_mode=True, lock_dir=lock_dir, wait=0.3) as held:
        held.take([key(locks.PATH, "/mnt/x")])
        assert held.held[0][1] is None
    assert time.monotonic() - started < 5
    assert "another run is changing the mount path /mnt/x" in held.warnings[0]


def test_a_lock_on_a_removed_file_is_taken_again_on_the_new_one(lock_dir):
    first = locks.Locks(lock_dir=lock_dir)
    first.take([key(locks.PATH, "/p")])
    path = os.path.join(lock_dir, key(locks.PATH, "/p").file_name())
    stale = os.open(path, os.O_RDONLY)
    first.release()  # removes the file
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a waiter gets: a lock on the old file
    assert not locks._is_current(stale, path)
    os.close(stale)


def test_settle_plans_again_until_the_plan_needs_nothing_new(lock_dir):
    plans = []

    def make_plan():
        plans.append(len(plans))
        return plans[-1]

    def keys_of(plan):
        return [key(locks.PATH, "/mnt"), key(locks.EXTENT, "e%d" % min(plan, 1))]

    with locks.Locks(keys_of, lock_dir=lock_dir) as held:
        assert held.settle(make_plan, [key(locks.PATH, "/mnt")]) == 2
        assert [k.name for k, _fd in held.held] == ["/mnt", "e0", "e1"]


def test_identity_is_the_file_not_its_name(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    os.symlink(str(image), str(tmp_path / "link.img"))
    os.link(str(image), str(tmp_path / "hard.img"))
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 512)
    names = set(locks.image_key(str(tmp_path / name)).name for name in ("disk.img", "link.img", "hard.img"))
    assert len(names) == 1
    assert locks.image_key(str(other)).name not in names
    assert locks.image_key(str(tmp_path / "missing.img")) is None
    info = os.stat(str(image))
    assert names == set(["file-%d:%d-%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)])


def test_paths_are_locked_by_their_canonical_name(tmp_path):
    (tmp_path / "mnt").mkdir()
    os.symlink(str(tmp_path / "mnt"), str(tmp_path / "via"))
    assert locks.path_key(str(tmp_path / "via")).name == locks.path_key(str(tmp_path / "mnt") + "/").name
    assert locks.path_key("relative/mnt") is None
    assert locks.fstab_key(str(tmp_path / "fstab")).rank == locks.FSTAB


def test_mount_keys_before_planning(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    keys = [k for k in locks.mount_keys("absent", str(image), str(tmp_path / "mnt")) if k]
    assert [(k.rank, k.shared) for k in keys] == [(locks.PATH, False), (locks.FSTAB, False), (locks.IMAGE, True)]
    assert keys[1].name == "/etc/fstab"
    assert [k for k in locks.mount_keys("mounted", None, str(tmp_path / "mnt")) if k][0].rank == locks.PATH


def test_loop_device_keys(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    assert locks.loop_device_keys(str(image), None)[0].name == locks.image_key(str(image)).name
    assert locks.loop_device_keys(None, "not-a-loop") == []
    assert locks.loop_device_keys(None, None) == [None]

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ordered set of flock(2) locks on small files in one directory.

This is the mechanism only: which things are locked, their ranks and where
the files live are the callers' (``_mount/locks.py`` states the order the
modules use). A ``Locks`` takes keys in (rank, name) order and never waits for
one while it holds one that sorts later: a key that sorts before what is held
makes it let go of everything and take it all again in order, so two sets
can never wait for each other.

The kernel releases a flock when its process exits, however it dies, so a
killed run never leaves a lock held. A set removes a file when it lets go of
a lock nobody else holds, and a set that gets a lock on a file removed in the
meantime opens the new one: files exist only while someone holds or waits
for them.

Check mode changes nothing, and so creates no file: it takes a shared lock
on a file that exists (someone is changing the thing), waiting at most its
``wait`` seconds, and goes on without it, with a warning, after that. A real
run waits at most ``wait`` seconds and then fails, naming the process that
holds the lock (from /proc/locks).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import os
import time

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# How many times settle() plans again when planning keeps revealing new locks.
SETTLE_TRIES = 5
PROC_LOCKS = "/proc/locks"


class Key(object):
    """One lock: its rank, a name unique within the rank, shared or exclusive,
    and what it stands for (``kind`` and ``what``, for messages)."""

    __slots__ = ("rank", "name", "shared", "what", "kind")

    def __init__(self, rank, name, shared=False, what=None, kind="lock on"):
        self.rank, self.name, self.shared, self.what, self.kind = rank, name, shared, what or name, kind

    @property
    def order(self):
        return (self.rank, self.name)

    def file_name(self):
        digest = hashlib.sha256(self.name.encode("utf-8")).hexdigest()[:32]
        return "%d-%s.lock" % (self.rank, digest)

    def describe(self):
        return "the %s %s" % (self.kind, self.what)


class Locks(object):
    """The locks one run holds: ``with Locks(...) as held:`` lets go of them all.

    ``first`` are the keys to hold before planning, or a function that lists
    them (called by ``settle``, so that its errors fail the run as planning's
    do); ``keys_of(plan)`` lists the keys a plan needs (None entries are
    skipped); ``settle(make_plan)`` plans until the plan needs nothing more
    than what is held."""

    def __init__(self, lock_dir, wait, keys_of=None, first=(), check_mode=False):
        self.lock_dir = lock_dir
        self.wait = wait
        self.keys_of = keys_of or (lambda plan: [])
        self.first = first
        self.check_mode = check_mode
        self.held = []  # (key, fd or None), in lock order
        self.warnings = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def settle(self, make_plan):
        """Take ``first``, then plan under the locks the plan needs: a plan
        made while every lock it needs was held."""
        self.take(self.first() if callable(self.first) else self.first)
        for _try in range(SETTLE_TRIES):
            plan = make_plan()
            if not self.take(self.keys_of(plan)):
                return plan
        return make_plan()

    def take(self, keys):
        """Hold ``keys`` too; True when a lock was added (plan again then)."""
        have = dict((key.order, key) for key, _fd in self.held)
        new = {}
        for key in keys:
            if key is None:
                continue
            known = have.get(key.order) or new.get(key.order)
            if known is None or (known.shared and not key.shared):
                new[key.order] = key
        if not new:
            return False
        if self.held and min(new) <= self.held[-1][0].order:
            # Out of order: let go of everything and take it all again in order.
            wanted = dict(have)
            wanted.update(new)
            self.release()
            new = wanted
        for order in sorted(new):
            self.held.append((new[order], self._acquire(new[order])))
        return True

    def release(self):
        while self.held:
            key, fd = self.held.pop()
            if fd is not None:
                self._let_go(key, fd)

    # --- one lock file

    def _path(self, key):
        return os.path.join(self.lock_dir, key.file_name())

    def _make_dir(self):
        try:
            os.makedirs(self.lock_dir, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST or not os.path.isdir(self.lock_dir):
                raise DiskImageError.from_oserror("cannot create the lock directory %s" % self.lock_dir, exc)

    def _acquire(self, key):
        """The fd holding ``key``'s lock; None in check mode when nobody is
        in the window (no file) or the wait ran out."""
        path = self._path(key)
        if not self.check_mode:
            self._make_dir()
        deadline = time.monotonic() + self.wait
        mode = fcntl.LOCK_SH if (key.shared or self.check_mode) else fcntl.LOCK_EX
        while True:
            try:
                fd = os.open(path, os.O_RDONLY | (0 if self.check_mode else os.O_CREAT), 0o600)
            except OSError as exc:
                if self.check_mode and exc.errno == errno.ENOENT:
                    return None
                raise DiskImageError.from_oserror("cannot open the lock file %s" % path, exc)
            if not wait_until(lambda: _try_lock(fd, mode), max(0.0, deadline - time.monotonic()), interval=0.05):
                holders = _holders(fd)
                os.close(fd)
                if self.check_mode:
                    self.warnings.append(
                        "another run is changing %s%s; this check reports the state as it was after %g s" % (
                            key.describe(), holders, self.wait))
                    return None
                raise DiskImageError(
                    "timed out after %g s waiting for %s, which another run holds%s" % (
                        self.wait, key.describe(), holders), errno=errno.EWOULDBLOCK,
                    hint="Let that run finish (or stop it), then run the task again")
            if _is_current(fd, path):
                return fd
            # Removed by the run that had it before us: the lock lives on in a new file.
            os.close(fd)
            if self.check_mode:
                return None

    def _let_go(self, key, fd):
        """Remove the lock file when nobody else holds it, then unlock."""
        path = self._path(key)
        try:
            # flock converts a shared lock by dropping it first: if another
            # run holds the file, this fails, and the file stays for it.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _is_current(fd, path):
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _try_lock(fd, mode):
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
            raise DiskImageError.from_oserror("cannot take a lock", exc)
        return False


def _is_current(fd, path):
    """Whether ``fd`` is still the file at ``path`` (not removed or replaced)."""
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _holders(fd, proc_locks=PROC_LOCKS):
    """' (pid N: command)' for the processes /proc/locks says lock ``fd``'s file."""
    info = os.fstat(fd)
    here = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    pids = []
    try:
        with open(proc_locks) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 6 or fields[1] == "->":
                    continue  # a waiter, not a holder
                if fields[5] == here and fields[4] not in pids:
                    pids.append(fields[4])
    except (IOError, OSError):
        return ""
    described = []
    for pid in pids:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (IOError, OSError):
            command = "?"
        described.append("pid %s: %s" % (pid, command[:120]))
    return " (%s)" % "; ".join(described) if described else ""

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Locks that make racing runs of the modules converge.

Two runs of the same task at once (two pipelines, or a play whose forks
delegate to one build host) would otherwise both plan from the same state and
both act: two mounts stacked on one path, two loop devices for one image. So
each state-changing module holds locks over its plan-and-apply window, and
plans only once it holds them: a run that waited finds what the other did.

What is locked:

* a mount path, by its canonical path (image_mount);
* an fstab file, by its canonical path (image_mount, when it edits one);
* an image, by the identity of its backing file (st_dev, st_ino), never its
  name; a loop device or partition as src stands for the file behind it.
  Exclusive for image_partitions and loop_device (they attach, scan and
  remove partitions of the whole image), shared for image_mount;
* an extent of an image, by the image and the first byte of what is mounted
  (image_mount), so that two mounts of one filesystem serialize while
  different partitions of one image mount side by side.

LOCK ORDER. A run takes locks in this order and never waits for one while it
holds one that comes later, so no two runs can wait for each other:

  1. mount paths, sorted;  2. fstab files, sorted;  3. images, sorted;
  4. extents, sorted;  5. /dev/loop-control and 6. a loop device (loopdev
  takes these two itself, inside the window, while it allocates and
  configures a device).

When planning reveals a lock the run does not hold yet (the extent of the
selected partition, the image behind what is mounted at a path), it takes it
if it comes after everything it holds, and otherwise lets go of all and takes
them again in order; either way it plans again under them.

The locks are flock(2) locks on small empty files under /run, a tmpfs: the
kernel releases them when the process exits, however it dies, so a killed run
never leaves one held. A run removes the file when it lets go of a lock that
nobody else holds, and a run that gets a lock on a file that has been removed
in the meantime opens the new one; so files exist only while runs hold or
wait for them.

Check mode changes nothing, and so creates no lock file: it takes a shared
lock on a file that exists (a real run is in its window), waiting at most
CHECK_WAIT seconds so that it does not report a half-done change, and plans
without it (with a warning) after that. Real runs wait at most WAIT seconds
and then fail naming the process that holds the lock.

The locks coordinate runs that share /run: the runs on one host, or in one
container.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import os
import random
import stat
import time

from ansible_collections.diskimage.loop.plugins.module_utils import loopdev, mountinfo, ownership
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.mount_extent import extent_of, mount_devno
from ansible_collections.diskimage.loop.plugins.module_utils.mount_fstab import DEFAULT_FSTAB

LOCK_DIR = os.path.join(ownership.RUN_DIR, "locks")
WAIT = 600.0
CHECK_WAIT = 10.0
# Ranks of the kinds of lock, in the order above.
PATH, FSTAB, IMAGE, EXTENT = 1, 2, 3, 4
_KIND = {PATH: "mount path", FSTAB: "fstab file", IMAGE: "image", EXTENT: "part of the image"}
# How many times a run plans again when planning keeps revealing new locks.
SETTLE_TRIES = 5


class Key(object):
    """One lock: its rank, a name unique within the rank, shared or exclusive,
    and what it stands for (for messages)."""

    __slots__ = ("rank", "name", "shared", "what")

    def __init__(self, rank, name, shared=False, what=None):
        self.rank, self.name, self.shared, self.what = rank, name, shared, what or name

    @property
    def order(self):
        return (self.rank, self.name)

    def file_name(self):
        digest = hashlib.sha256(self.name.encode("utf-8")).hexdigest()[:32]
        return "%d-%s.lock" % (self.rank, digest)

    def describe(self):
        return "the %s %s" % (_KIND[self.rank], self.what)


# --- the keys of what a run touches -----------------------------------------------

def path_key(path):
    """The lock of a mount path or fstab file: its canonical path."""
    if not path or not os.path.isabs(path):
        return None
    return Key(PATH, os.path.realpath(path))


def fstab_key(path):
    key = path_key(path)
    return Key(FSTAB, key.name) if key else None


def identity(path):
    """The backing object ``path`` stands for, as mount_extent keys it:
    ('file', 'MAJ:MIN', inode) for a file, the file or device behind a loop
    device, partition or map for a block device; None when ``path`` is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if stat.S_ISBLK(info.st_mode):
        extent = extent_of(os.major(info.st_rdev), os.minor(info.st_rdev))
        return extent.key if extent is not None else ("dev", os.major(info.st_rdev), os.minor(info.st_rdev))
    return ("file", "%d:%d" % (os.major(info.st_dev), os.minor(info.st_dev)), info.st_ino)


def _identity_name(ident):
    return "-".join(str(part) for part in ident)


def image_key(path, shared=False):
    """The lock of the image ``path`` names (None when it does not exist)."""
    ident = identity(path) if path else None
    return Key(IMAGE, _identity_name(ident), shared, path) if ident else None


def extent_keys(extent, shared_image=True):
    """The image lock (shared) and the extent lock of a mount_extent.Extent."""
    if extent is None:
        return []
    name = _identity_name(extent.key)
    return [Key(IMAGE, name, shared_image, extent.name),
            Key(EXTENT, "%s@%d" % (name, extent.start), False, extent.describe())]


def mount_keys(state, src, path, fstab=None):
    """What image_mount locks before it plans: the path, the fstab file it
    edits, the image (shared)."""
    if fstab is None and state in ("present", "absent"):
        fstab = DEFAULT_FSTAB
    return [path_key(path), fstab_key(fstab), image_key(src, shared=True)]


def mount_plan_keys(plan):
    """What image_mount locks for a plan: the path, the fstab file, and the
    image and extent of what it mounts or unmounts (by path alone: of what
    is mounted there)."""
    keys = [path_key(plan.target.path) if plan.target else None, fstab_key(plan.fstab)]
    if plan.selection is not None:
        keys += extent_keys(plan.selection.extent)
    elif plan.target is not None and plan.target.exists:
        for entry in mountinfo.mounts_at(plan.target.path):
            devno = mount_devno(entry)
            keys += extent_keys(extent_of(*devno) if devno else None)
    return keys


def image_keys(path):
    """What image_partitions and loop_device lock: the image, exclusively."""
    return [image_key(path)]


def loop_device_keys(path, device):
    """What loop_device locks: the image of ``path``, or the one behind ``device``."""
    if path or not device:
        return image_keys(path)
    try:
        return image_keys(loopdev.device_path(loopdev.parse_device(device)))
    except DiskImageError:
        return []  # not a loop device name: planning says so


# --- taking and releasing ------------------------------------------------------

class Locks(object):
    """The locks one run holds: ``with Locks(...) as held:`` lets go of them all.

    ``keys_of(plan)`` lists the keys a plan needs (None entries are skipped);
    ``settle`` plans until the plan needs nothing more than what is held."""

    def __init__(self, keys_of=None, check_mode=False, lock_dir=LOCK_DIR, wait=None):
        self.keys_of = keys_of or (lambda plan: [])
        self.check_mode = check_mode
        self.lock_dir = lock_dir
        self.wait = wait if wait is not None else (CHECK_WAIT if check_mode else WAIT)
        self.held = []  # (key, fd or None), in lock order
        self.warnings = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def settle(self, make_plan, first=()):
        """Take ``first``, then plan under the locks the plan needs: a plan
        made while every lock it needs was held."""
        self.take(first)
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

    def _acquire(self, key):
        """The fd holding ``key``'s lock; None in check mode when nobody is
        in the window (no file) or the wait ran out."""
        path = self._path(key)
        if not self.check_mode:
            for directory in (os.path.dirname(self.lock_dir), self.lock_dir):
                try:
                    os.mkdir(directory, 0o700)
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise DiskImageError.from_oserror("cannot create the lock directory %s" % directory, exc)
        deadline = time.monotonic() + self.wait
        mode = fcntl.LOCK_SH if (key.shared or self.check_mode) else fcntl.LOCK_EX
        while True:
            try:
                fd = os.open(path, os.O_RDONLY | (0 if self.check_mode else os.O_CREAT), 0o600)
            except OSError as exc:
                if self.check_mode and exc.errno == errno.ENOENT:
                    return None
                raise DiskImageError.from_oserror("cannot open the lock file %s" % path, exc)
            if not self._wait_for(fd, mode, deadline):
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

    @staticmethod
    def _wait_for(fd, mode, deadline):
        pause = 0.002
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                    raise DiskImageError.from_oserror("cannot take a lock", exc)
            if time.monotonic() >= deadline:
                return False
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.05)

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


def _is_current(fd, path):
    """Whether ``fd`` is still the file at ``path`` (not removed or replaced)."""
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _holders(fd):
    """' (pid N: command)' for the processes /proc/locks says lock ``fd``'s file."""
    info = os.fstat(fd)
    here = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    pids = []
    try:
        with open("/proc/locks") as handle:
            for line in handle:
                fields = line.split()
                if fields[1] == "->":
                    continue  # a waiter, not a holder
                if len(fields) > 5 and fields[5] == here and fields[4] not in pids:
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

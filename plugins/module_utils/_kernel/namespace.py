# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private mount namespaces: made with unshare(2), entered with setns(2).

Mounts made in one never appear in the host's mount table, and the kernel
unmounts them all when its last process exits, however that process ends.
``unshare_private`` moves this process into a new one; ``run_private`` runs
a function in a forked child that does, and hands back what it returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import json
import os
import signal
import sys

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, libc, mountinfo, mountsys, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = libc.load()
    return _libc


def _check(ret, what, hint=None):
    if ret != 0:
        code = ctypes.get_errno()
        raise DiskImageError("%s: %s" % (what, os.strerror(code)), errno=code, hint=hint)


def namespace_id(pid="self", proc=holders.PROC):
    """The mount namespace of ``pid`` by name ('mnt:[inode]')."""
    return holders.namespace_of(pid, "mnt", proc)


def unshare_private():
    """Move this (single-threaded) process into a new mount namespace in
    which nothing propagates back to the host, and without the copies of
    other images' mounts (drop_copied_image_mounts); returns its name."""
    outside = namespace_id()
    _check(_c().unshare(ctypes.c_int(CLONE_NEWNS)), "cannot make a mount namespace (unshare)",
           hint="Run as root (CAP_SYS_ADMIN), from a single-threaded process")
    inside = namespace_id()
    if inside is None or inside == outside:
        raise DiskImageError("unshare did not give this process a mount namespace of its own (still in %s)" % outside)
    mountsys.set_propagation("/", mountsys.MS_REC | mountsys.MS_PRIVATE)
    drop_copied_image_mounts()
    return inside


# Disks that hold images: a mount on one of them (or on one of its partitions)
# is another image's, never something this process runs from.
IMAGE_DISKS = ("loop", "dm-", "nbd")


def _image_backed(entry):
    name = sysfs.name_by_devno(entry.major, entry.minor)
    if name is None:
        return False
    disk = sysfs.parent_disk(name) if sysfs.is_partition(name) else name
    return disk.startswith(IMAGE_DISKS)


def _needed_paths():
    # What this process may still open: the interpreter, its library, this
    # collection (imports are lazy) and the working directory.
    paths = [sys.executable, sys.prefix, os.path.dirname(os.path.abspath(__file__)), os.getcwd()]
    return [os.path.realpath(path) for path in paths if path]


def drop_copied_image_mounts(entries=None, needed=None):
    """Detach, in this private namespace only, the copies unshare(2) made of
    mounts of other images (filesystems on loop, dm or nbd devices).

    Where the host's mounts are private (no propagation), a copy would keep its
    filesystem - and so its device - busy in the host for as long as this
    namespace lives: another user's umount would succeed, and then their detach
    or partition removal would fail with EBUSY. Mounts this process may still
    need (a mount point above the interpreter or the collection) are kept.
    Returns the mount points detached."""
    entries = mountinfo.read_mountinfo() if entries is None else entries
    needed = _needed_paths() if needed is None else needed
    dropped = []
    # deepest first: detaching a parent first would take its children along
    for entry in sorted(entries, key=lambda e: e.mount_point.count("/"), reverse=True):
        point = entry.mount_point
        if point == "/" or not _image_backed(entry):
            continue
        if any(path == point or path.startswith(point.rstrip("/") + "/") for path in needed):
            continue
        try:
            mountsys.umount2(point, mountsys.MNT_DETACH)
        except (DiskImageError, OSError):
            continue  # gone with a parent detached before it, or never reachable here
        dropped.append(point)
    return dropped


def die_with_parent(sig=signal.SIGKILL):
    """Send ``sig`` to this process when the thread that started it dies."""
    _c().prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), 0, 0, 0)


def setns(pid, expected=None):
    """Move this process into ``pid``'s mount namespace. For the child side
    of a fork: a process with threads cannot change its mount namespace.
    With ``expected`` (a name unshare_private() returned), refuse any other
    namespace: a pid reused after its process died must not lead this one
    into a stranger's."""
    fd = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if expected is not None and "mnt:[%d]" % os.fstat(fd).st_ino != expected:
            raise DiskImageError("process %d is no longer in the mount namespace %s" % (pid, expected),
                                 errno=errno.ESRCH, hint="The process that held it has died; run the task again")
        _check(_c().setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNS)),
               "cannot enter the mount namespace of process %d" % pid)
    finally:
        os.close(fd)


def run_private(func, *args):
    """``func(*args)`` in a forked child that first makes a private mount
    namespace; returns what it returned (anything JSON can carry).

    What the child mounts is gone when it exits, whether ``func`` returns,
    raises or the child is killed: the namespace dies with its only process.
    Its failure comes back as a DiskImageError with the child's words (and
    errno); a child that dies without a word is an error too."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                os.close(read_fd)
                _child(func, args, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        write_fd = None
        chunks = []
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        _pid, status = os.waitpid(pid, 0)
    finally:
        os.close(read_fd)
        if write_fd is not None:
            os.close(write_fd)
    try:
        report = json.loads(b"".join(chunks).decode("utf-8") or "{}")
    except ValueError:
        report = {}
    if "result" in report:
        return report["result"]
    if "error" in report:
        raise DiskImageError(report["error"], errno=report.get("errno"), hint=report.get("hint"))
    raise DiskImageError("the process working in a private mount namespace ended without a word (%s)"
                         % _ending(status))


def _child(func, args, write_fd):
    """In the forked child: the namespace, the work, the report."""
    try:
        unshare_private()
        report = {"result": func(*args)}
    except DiskImageError as exc:
        report = {"error": exc.message, "errno": exc.errno, "hint": exc.hint}
    except BaseException as exc:  # everything goes back to the parent as words
        report = {"error": "%s: %s" % (type(exc).__name__, exc)}
    os.write(write_fd, json.dumps(report).encode("utf-8"))


def _ending(status):
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    return "exit status %d" % os.WEXITSTATUS(status)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private mount namespace: made with unshare(2), entered with setns(2).

Mounts made in it never appear in the host's mount table, and the kernel
unmounts them all when its last process exits, however that process ends.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import os
import signal
import sys

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, mountinfo, mountsys, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1

# The mount namespace unshare_private() made for this process: the only one
# whose processes kill_members() may signal.
_made = []

_libc = None


def _c():
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name, use_errno=True) if name else ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret, what, hint=None):
    if ret != 0:
        code = ctypes.get_errno()
        raise DiskImageError("%s: %s" % (what, os.strerror(code)), errno=code, hint=hint)


def unshare_private():
    """Move this (single-threaded) process into a new mount namespace in
    which nothing propagates back to the host; returns that namespace's name
    ('mnt:[inode]'), the one kill_members() may empty and no other."""
    outside = namespace_id()
    _check(_c().unshare(ctypes.c_int(CLONE_NEWNS)), "cannot make a mount namespace (unshare)",
           hint="Run as root (CAP_SYS_ADMIN), from a single-threaded process")
    inside = namespace_id()
    if inside is None or inside == outside:
        raise DiskImageError("unshare did not give this process a mount namespace of its own (still in %s)" % outside)
    _made.append(inside)
    mountsys.set_propagation("/", mountsys.MS_REC | mountsys.MS_PRIVATE)
    drop_copied_image_mounts()
    return inside


# Disks that hold images: a mount on one of them (or on one of its partitions)
# is another image's, never something the holder itself runs from.
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


def enter(pid, root, expected=None):
    """setns into ``pid``'s mount namespace, then chroot to ``root`` there.
    For the child side of a fork (a subprocess' preexec_fn): a process with
    threads cannot change its mount namespace. With ``expected`` (the name
    unshare_private() returned), refuse any other namespace: a pid reused
    after the holder died must not lead a command into a stranger's."""
    fd = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if expected is not None and "mnt:[%d]" % os.fstat(fd).st_ino != expected:
            raise DiskImageError("process %d is no longer the holder of the image's mount namespace %s" % (
                pid, expected), errno=errno.ESRCH, hint="The holder has died; run the task again")
        _check(_c().setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNS)), "cannot enter the image's mount namespace")
    finally:
        os.close(fd)
    os.chroot(root)
    os.chdir("/")


def namespace_id(pid="self", proc=holders.PROC):
    return holders.namespace_of(pid, "mnt", proc)


def victims(private, own_pid=None, proc=holders.PROC, made=None):
    """The pids kill_members() may signal: the processes in mount namespace
    ``private``, which must be the one unshare_private() made (``made``), the
    caller must still be in, and must not be the one of PID 1 (the host's,
    or the container's); never PID 1, the caller or its ancestors, even if
    they were in it.

    Membership is the namespace's own name (its inode), compared for
    equality: "a namespace other than the host's" would take in every
    container and every other tool's namespace on the machine."""
    own_pid = own_pid or os.getpid()
    own = namespace_id(own_pid, proc)
    made = made if made is not None else (_made[-1] if _made else None)
    if not private or private != made or own != private or private == namespace_id(1, proc):
        raise DiskImageError("refusing to kill the processes of mount namespace %s: it is not the private one "
                             "this process made (%s; it is in %s, PID 1 in %s)" % (
                                 private, made, own, namespace_id(1, proc)))
    spared = set([1, own_pid]) | set(holders.ancestors(own_pid, proc))
    return [pid for pid in holders.processes_in_namespace(private, "mnt", proc) if pid not in spared]


def _kill_if_inside(pid, private, proc):
    """SIGKILL ``pid`` through a pidfd, after checking again that the process
    the pidfd pins is in ``private``: a pid reused between the scan and the
    signal is never hit. Returns whether it was signalled."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise DiskImageError.from_oserror("cannot open process %d" % pid, exc)
    try:
        if namespace_id(pid, proc) != private:
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise DiskImageError.from_oserror("cannot kill process %d" % pid, exc)
    finally:
        os.close(fd)


def kill_members(private, wait=2.0, proc=holders.PROC):
    """SIGKILL every other process in this process's private mount namespace
    ``private`` (what a task left running: a daemon a package started, a
    stuck command); returns the pids that would not die. See victims() for
    what it refuses and whom it spares."""
    pids = [pid for pid in victims(private, proc=proc) if _kill_if_inside(pid, private, proc)]

    def gone():
        return not [pid for pid in pids if namespace_id(pid, proc) == private]

    wait_until(gone, wait)
    return [pid for pid in pids if namespace_id(pid, proc) == private]

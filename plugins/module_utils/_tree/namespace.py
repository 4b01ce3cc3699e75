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
import time

from ansible_collections.diskimage.loop.plugins.module_utils import mountsys
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1

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
    which nothing propagates back to the host."""
    _check(_c().unshare(ctypes.c_int(CLONE_NEWNS)), "cannot make a mount namespace (unshare)",
           hint="Run as root (CAP_SYS_ADMIN), from a single-threaded process")
    mountsys.set_propagation("/", mountsys.MS_REC | mountsys.MS_PRIVATE)


def die_with_parent(sig=signal.SIGKILL):
    """Send ``sig`` to this process when the thread that started it dies."""
    _c().prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), 0, 0, 0)


def enter(pid, root):
    """setns into ``pid``'s mount namespace, then chroot to ``root`` there.
    For the child side of a fork (a subprocess' preexec_fn): a process with
    threads cannot change its mount namespace."""
    fd = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_c().setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNS)), "cannot enter the image's mount namespace")
    finally:
        os.close(fd)
    os.chroot(root)
    os.chdir("/")


def namespace_id(pid="self"):
    try:
        return os.readlink("/proc/%s/ns/mnt" % pid)
    except OSError:
        return None


def members(ns_id, exclude=()):
    """Pids of the processes in mount namespace ``ns_id``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in exclude and namespace_id(name) == ns_id:
            found.append(int(name))
    return found


def kill_members(outside, exclude=(), wait=2.0):
    """SIGKILL every other process in this process's own private mount
    namespace (what a task left running: a daemon a package started, a stuck
    command); returns the pids that would not die.

    ``outside`` is the namespace this process was in before unshare_private().
    Refuses unless the current one differs from it and from the parent's:
    anywhere else "every other process" would be the whole machine."""
    ns_id = namespace_id()
    if ns_id is None or not outside or ns_id in (outside, namespace_id(os.getppid())):
        raise DiskImageError("refusing to kill the processes of mount namespace %s: it is not a private one of "
                             "this process (it was in %s)" % (ns_id, outside))
    exclude = set(exclude) | set([os.getpid()])
    pids = members(ns_id, exclude)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if namespace_id(p) == ns_id]
        time.sleep(0.02)
    return pids

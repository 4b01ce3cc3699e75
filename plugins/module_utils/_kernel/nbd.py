# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network block device as the kernel shows it: /sys/block/nbdN and the
ioctls that end a connection.

A connected /dev/nbdN has a ``pid`` attribute: the task (a thread id) that sits
in NBD_DO_IT, which for ``qemu-nbd --connect`` is a thread of the server
process itself. A free one has no ``pid`` and size 0. No policy here: which
device to take, and whose a connection is, are ``_nbd``'s.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

NBD_MAJOR = 43
# <linux/nbd.h>: _IO(0xab, n)
NBD_CLEAR_SOCK = 0xAB04
NBD_DISCONNECT = 0xAB08
PROC = "/proc"


def device_path(number):
    return "/dev/nbd%d" % number


def parse_name(name):
    """N of 'nbdN' (a whole device, not a partition nbdNpM), else None."""
    if name.startswith("nbd") and name[3:].isdigit():
        return int(name[3:])
    return None


def numbers(root=sysfs.SYS_ROOT):
    """The nbd devices the kernel has (nbds_max of them), lowest first."""
    try:
        names = os.listdir(os.path.join(root, "block"))
    except OSError:
        return []
    return sorted(n for n in (parse_name(name) for name in names) if n is not None)


def available(root=sysfs.SYS_ROOT):
    return bool(numbers(root))


def task_of(number, root=sysfs.SYS_ROOT):
    """The task id in /sys/block/nbdN/pid (connected), or None (free)."""
    text = sysfs.read_attr(os.path.join(sysfs.block_dir("nbd%d" % number, root), "pid"))
    return int(text) if text and text.isdigit() else None


def size_bytes(number, root=sysfs.SYS_ROOT):
    return sysfs.size_bytes("nbd%d" % number, root) or 0


def read_only(number, root=sysfs.SYS_ROOT):
    return sysfs.read_only("nbd%d" % number, root)


def process_of_task(task, proc=PROC):
    """The process (thread group) a task id belongs to, or None when it is gone."""
    text = sysfs.read_attr(os.path.join(proc, str(task), "status"))
    for line in (text or "").splitlines():
        if line.startswith("Tgid:"):
            value = line.split(":", 1)[1].strip()
            return int(value) if value.isdigit() else None
    return None


def disconnect(number):
    """Flush /dev/nbdN, then ask the kernel to end its connection (the server
    sees the disconnect and exits, as after ``qemu-nbd --disconnect``)."""
    path = device_path(number)
    try:
        # read-only: the ioctls need CAP_SYS_ADMIN, not write access, and a
        # read-only connection refuses a writable open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO):
            return
        raise DiskImageError.from_oserror("cannot open %s to disconnect it" % path, exc)
    try:
        try:
            os.fsync(fd)
        except OSError:
            pass  # a connection already gone has nothing left to flush
        for request in (NBD_DISCONNECT, NBD_CLEAR_SOCK):
            try:
                fcntl.ioctl(fd, request, 0)
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOTCONN, errno.EBUSY):
                    raise DiskImageError.from_oserror("cannot disconnect %s" % path, exc)
    finally:
        os.close(fd)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who serves an nbd device, and which image: the identity of a connection.

The kernel records the task in NBD_DO_IT (``/sys/block/nbdN/pid``); for
``qemu-nbd --connect`` that is a thread of the server process, which holds the
image open. A connection is matched to an image by identity, never by name:
the image its command line names, resolved in the server's own working
directory, must be the file (st_dev, st_ino) the caller asks about, and the
server must hold that very file open.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs

SERVER = "qemu-nbd"


def identity(path):
    """(st_dev, st_ino) of a file, or None when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _cmdline(pid, proc):
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            return [arg.decode("utf-8", "surrogateescape") for arg in handle.read().split(b"\0") if arg]
    except (IOError, OSError):
        return []


def is_server(pid, number=None, proc=nbd.PROC):
    """Is ``pid`` a qemu-nbd (connecting /dev/nbdN, when ``number`` is given)?"""
    args = _cmdline(pid, proc)
    if not args or os.path.basename(args[0]) != SERVER:
        return False
    if number is None:
        return True
    device = nbd.device_path(number)
    return any(arg in ("--connect=%s" % device, "-c%s" % device) for arg in args) or any(
        args[i] in ("-c", "--connect") and args[i + 1] == device for i in range(len(args) - 1))


def image_of(pid, proc=nbd.PROC):
    """The image path a qemu-nbd serves: its last argument, resolved in its cwd."""
    args = _cmdline(pid, proc)
    if len(args) < 2:
        return None
    path = args[-1]
    if not os.path.isabs(path):
        try:
            path = os.path.join(os.readlink(os.path.join(proc, str(pid), "cwd")), path)
        except OSError:
            return None
    return os.path.normpath(path)


def holds_open(pid, ident, proc=nbd.PROC):
    """Does process ``pid`` hold the file ``ident`` (st_dev, st_ino) open?"""
    base = os.path.join(proc, str(pid), "fd")
    try:
        fds = os.listdir(base)
    except OSError:
        return False
    return any(identity(os.path.join(base, fd)) == ident for fd in fds)


class Connection(object):
    """A connected /dev/nbdN: its server process and the image that serves it."""

    def __init__(self, number, pid, image, ident, read_only, size):
        self.number = number
        self.device = nbd.device_path(number)
        self.pid = pid
        self.image = image
        self.identity = ident
        self.read_only = read_only
        self.size = size

    def __repr__(self):
        return "Connection(%s <- %s pid %s)" % (self.device, self.image, self.pid)


def connection(number, root=sysfs.SYS_ROOT, proc=nbd.PROC):
    """The Connection of /dev/nbdN, or None when it is free or not served by
    a qemu-nbd that holds its image open (another NBD client)."""
    task = nbd.task_of(number, root)
    if task is None:
        return None
    pid = nbd.process_of_task(task, proc)
    if pid is None or not is_server(pid, proc=proc):
        return None
    image = image_of(pid, proc)
    ident = identity(image) if image else None
    if ident is None or not holds_open(pid, ident, proc):
        return None
    return Connection(number, pid, image, ident, nbd.read_only(number, root), nbd.size_bytes(number, root))


def serving(ident, root=sysfs.SYS_ROOT, proc=nbd.PROC):
    """Every connected nbd device whose server serves the image ``ident``."""
    found = []
    for number in nbd.numbers(root):
        current = connection(number, root, proc)
        if current is not None and current.identity == ident:
            found.append(current)
    return found


def free_numbers(numbers, task_of, size_of, skip=()):
    """The devices a new connection may take, lowest first: no task in
    NBD_DO_IT and size 0 (a device being set up by another client has its
    size before its task), and not in ``skip`` (tried in this run already)."""
    return [n for n in numbers if n not in skip and task_of(n) is None and not size_of(n)]


def started_with(pid_path, number, proc=nbd.PROC):
    """The qemu-nbd processes started to connect /dev/nbdN with ``pid_path`` as
    their pid file: found by their command line, so a server whose pid file is
    not written yet (its starter killed a moment after starting it) is found too."""
    wanted = "--pid-file=%s" % pid_path
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []
    return [pid for pid in pids if wanted in _cmdline(pid, proc) and is_server(pid, number, proc)]

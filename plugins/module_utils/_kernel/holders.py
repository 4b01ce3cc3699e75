# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who uses a device node or a mounted tree: processes, submounts, loop devices.

One scan of /proc answers both questions the modules ask: which processes have
a device node open (before a detach), and which processes have their working
directory, root, an open file or a mapped file at or below a mount point
(before an unmount). The kernel itself holds the backing file of a loop device
open, so those are found in sysfs, not in /proc. Processes in other PID
namespaces are not seen.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

PROC = "/proc"
DELETED = " (deleted)"


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_small(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(4096).decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return ""


def _fd_links(base):
    try:
        fds = os.listdir(os.path.join(base, "fd"))
    except OSError:
        return
    for fd in sorted(fds, key=lambda x: int(x) if x.isdigit() else -1):
        link = _readlink(os.path.join(base, "fd", fd))
        if link is not None:
            yield fd, link


def _mapped_files(base):
    try:
        with open(os.path.join(base, "maps")) as handle:
            for line in handle:
                parts = line.rstrip("\n").split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    yield parts[5]
    except (IOError, OSError):
        return


def scan_processes(matches, proc=PROC, cwd_root=False, maps=False, all_fds=True, skip_self=False):
    """Processes with a link (cwd, root, fd, mapped file) that ``matches``.

    Returns a list of dicts, by pid: ``pid``, ``comm``, ``cmdline`` and
    ``uses`` (e.g. 'cwd', 'root', 'fd 3', 'mmap'). ``all_fds=False`` stops at
    a process's first matching fd. Processes that vanish or may not be
    inspected are skipped.
    """
    found = []
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return found
    own = os.getpid()
    for pid in pids:
        if skip_self and pid == own:
            continue
        base = os.path.join(proc, str(pid))
        uses = []
        if cwd_root:
            for what in ("cwd", "root"):
                link = _readlink(os.path.join(base, what))
                if link is not None and matches(link):
                    uses.append(what)
        for fd, link in _fd_links(base):
            if matches(link):
                uses.append("fd %s" % fd)
                if not all_fds:
                    break
        if maps and any(matches(path) for path in _mapped_files(base)):
            uses.append("mmap")
        if uses:
            found.append({"pid": pid, "comm": _read_small(os.path.join(base, "comm")),
                          "cmdline": _read_small(os.path.join(base, "cmdline")).replace("\0", " ").strip(),
                          "uses": uses})
    return found


def processes_using(paths, proc=PROC):
    """'pid (command)' of every other process with one of ``paths`` open."""
    targets = set(paths)
    return ["%d (%s)" % (found["pid"], found["comm"] or "?")
            for found in scan_processes(targets.__contains__, proc, all_fds=False, skip_self=True)]


def _under(path):
    """A test: is a link at or below ``path`` (a deleted file counts too)?"""
    prefix = path.rstrip("/") + "/"

    def matches(link):
        if link.endswith(DELETED):
            link = link[:-len(DELETED)]
        return link == path or link.startswith(prefix)
    return matches


def holders_of_mount(path, proc=PROC):
    """Processes using files at or below ``path`` (see scan_processes)."""
    matches = _under(os.path.realpath(path))
    return scan_processes(lambda link: link.startswith("/") and matches(link), proc, cwd_root=True, maps=True)


def loop_devices_backed_under(path, root=sysfs.SYS_ROOT):
    """Loop devices whose backing file lies at or below ``path``.

    The kernel holds such files open itself, so no process shows up for them.
    """
    matches = _under(os.path.realpath(path))
    found = []
    for number in sysfs.loop_numbers(root):
        backing = sysfs.loop_backing_file(number, root)
        if backing and matches(backing[0]):
            found.append({"device": "/dev/loop%d" % number, "backing_file": backing[0]})
    return found


def mount_users(path):
    """What keeps the mount at ``path`` busy, as phrases; empty when nothing is found."""
    real = os.path.realpath(path)
    parts = []
    holders = holders_of_mount(real)
    if holders:
        parts.append("processes %s" % ", ".join(
            "%s (pid %d: %s)" % (h["comm"] or "?", h["pid"], ", ".join(h["uses"])) for h in holders))
    try:
        children = mountinfo.mounts_under(real, include_self=False)
    except DiskImageError:
        children = []
    if children:
        parts.append("mounts below it: %s" % ", ".join(m.mount_point for m in children))
    loops = loop_devices_backed_under(real)
    if loops:
        parts.append("loop devices backed by files on it: %s" % ", ".join(
            "%s (%s)" % (lo["device"], lo["backing_file"]) for lo in loops))
    return parts


def busy_report(path):
    """A sentence naming what keeps ``path`` busy, for an EBUSY message."""
    parts = mount_users(path)
    if not parts:
        return ("No process, submount or loop device was found using it; a kernel user "
                "(swap file, NFS export, another mount namespace) may hold it. A lazy "
                "unmount (MNT_DETACH) detaches it now and frees it when released")
    return "Held by %s. Stop or move them, or unmount lazily (MNT_DETACH)" % "; ".join(parts)


def namespace_of(pid, kind="mnt", proc=PROC):
    """The namespace ``pid`` is in, as the kernel names it ('mnt:[4026531841]');
    None when the process is gone, a zombie, or may not be inspected."""
    return _readlink(os.path.join(proc, str(pid), "ns", kind))


def processes_in_namespace(namespace, kind="mnt", proc=PROC):
    """Pids of the processes in ``namespace`` (a name namespace_of returns)."""
    if not namespace:
        return []
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []
    return [pid for pid in pids if namespace_of(pid, kind, proc) == namespace]


def parent_of(pid, proc=PROC):
    """The parent pid of ``pid`` (field 4 of /proc/PID/stat), or None."""
    stat = _read_small(os.path.join(proc, str(pid), "stat"))
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 1:].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def start_time(pid, proc=PROC):
    """When ``pid`` started (field 22 of /proc/PID/stat, clock ticks after
    boot), or None when there is no such process: with the pid it names one
    process, never a later one that got the same pid."""
    stat = _read_small(os.path.join(proc, str(pid), "stat"))
    fields = stat[stat.rfind(")") + 1:].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def ancestors(pid, proc=PROC):
    """``pid``'s parent, its parent's parent, ... up to PID 1 (or what this PID namespace shows)."""
    found = []
    parent = parent_of(pid, proc)
    while parent and parent not in found:
        found.append(parent)
        parent = parent_of(parent, proc)
    return found

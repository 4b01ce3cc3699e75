# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image connection's private mount namespace: the one the holder made
(which ``kill_members`` alone may empty), entered by the commands it runs.

The mechanism - unshare(2), setns(2), dropping the copies of other images'
mounts - is ``_kernel/namespace.py``; what is the tree's is here: which
namespace this process made, who in it may be killed, and entering it
chrooted in the image's tree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import namespace as kernel_namespace
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.namespace import namespace_id
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# The mount namespace unshare_private() made for this process: the only one
# whose processes kill_members() may signal.
_made = []


def unshare_private():
    """Move this (single-threaded) process into a private mount namespace of
    its own (see _kernel/namespace.unshare_private); returns its name
    ('mnt:[inode]'), the one kill_members() may empty and no other."""
    inside = kernel_namespace.unshare_private()
    _made.append(inside)
    return inside


def enter(pid, root, expected=None):
    """setns into ``pid``'s mount namespace, then chroot to ``root`` there.
    For the child side of a fork (a subprocess' preexec_fn). With
    ``expected`` (the name unshare_private() returned), refuse any other
    namespace: a pid reused after the holder died must not lead a command
    into a stranger's."""
    kernel_namespace.setns(pid, expected)
    os.chroot(root)
    os.chdir("/")


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

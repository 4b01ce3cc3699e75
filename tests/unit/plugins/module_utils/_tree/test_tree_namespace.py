# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.namespace: the teardown's SIGKILL reaches only the processes in the
holder's own private mount namespace, never PID 1, the holder or its
ancestors, and nothing at all when the holder is not in a namespace it made
(a teardown once ran in the host's namespace and killed host processes)."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import namespace
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

HOST = "mnt:[4026531841]"
PRIVATE = "mnt:[4026532999]"
CONTAINER = "mnt:[4026532500]"


def fake_proc(tmp_path, processes):
    """processes: pid -> (parent pid, mount namespace)."""
    for pid, (parent, mnt) in processes.items():
        (tmp_path / str(pid) / "ns").mkdir(parents=True)
        os.symlink(mnt, str(tmp_path / str(pid) / "ns" / "mnt"))
        (tmp_path / str(pid) / "stat").write_text("%d (a (b) c) S %d 1 1 0 -1\n" % (pid, parent))
    return str(tmp_path)


MACHINE = {
    1: (0, HOST),
    200: (1, HOST),          # the controller
    300: (200, HOST),        # its worker
    400: (300, PRIVATE),     # the holder, after unshare
    500: (300, PRIVATE),     # a command the worker ran inside the image
    600: (1, PRIVATE),       # a daemon a package started, reparented to init
    700: (1, HOST),          # an unrelated host process
    800: (1, CONTAINER),     # another namespace: a container, another tool
}


def test_victims_are_the_private_namespace_only(tmp_path):
    proc = fake_proc(tmp_path, MACHINE)
    assert namespace.victims(PRIVATE, own_pid=400, proc=proc, made=PRIVATE) == [500, 600]


def test_pid1_and_ancestors_are_spared_even_inside(tmp_path):
    machine = dict(MACHINE)
    machine[1] = (0, CONTAINER)      # a container's init...
    machine[300] = (200, PRIVATE)    # ...and an ancestor that somehow shares the namespace
    proc = fake_proc(tmp_path, machine)
    assert namespace.victims(PRIVATE, own_pid=400, proc=proc, made=PRIVATE) == [500, 600]


@pytest.mark.parametrize("private", [HOST, CONTAINER, None, ""])
def test_refuses_a_namespace_it_is_not_in(tmp_path, private):
    """The incident: a teardown in the host's namespace. Whatever name it is
    given, a holder still in the host's namespace kills nothing."""
    machine = dict(MACHINE)
    machine[400] = (300, HOST)  # unshare never happened
    proc = fake_proc(tmp_path, machine)
    with pytest.raises(DiskImageError, match="refusing to kill"):
        namespace.victims(private, own_pid=400, proc=proc, made=PRIVATE)


def test_refuses_a_namespace_it_did_not_make(tmp_path):
    """Being in a namespace other than PID 1's is not enough: the holder may
    have been started inside a container or another tool's namespace."""
    proc = fake_proc(tmp_path, MACHINE)
    for made in (None, CONTAINER):
        with pytest.raises(DiskImageError, match="refusing to kill"):
            namespace.victims(PRIVATE, own_pid=400, proc=proc, made=made)


def test_refuses_pid1s_namespace(tmp_path):
    machine = dict(MACHINE)
    machine[1] = (0, PRIVATE)
    proc = fake_proc(tmp_path, machine)
    with pytest.raises(DiskImageError, match="refusing to kill"):
        namespace.victims(PRIVATE, own_pid=400, proc=proc, made=PRIVATE)


def test_kill_members_in_this_process_namespace_refuses_and_signals_nothing(monkeypatch):
    """On the real /proc, in a process that made no namespace: refused before
    any signal, even where this process's namespace is not PID 1's."""
    sent = []
    monkeypatch.setattr(namespace.signal, "pidfd_send_signal", lambda *a: sent.append(a))
    monkeypatch.setattr(namespace.os, "kill", lambda *a: sent.append(a))
    for private in (namespace.namespace_id(), namespace.namespace_id(1), None, "mnt:[1]"):
        with pytest.raises(DiskImageError, match="refusing to kill"):
            namespace.kill_members(private)
    assert sent == []


def test_enter_refuses_a_namespace_other_than_the_holders(monkeypatch):
    """enter() is setns (which refuses a stranger's namespace: see
    _kernel/test_namespace.py) and then the chroot, never the chroot alone."""
    chroots = []
    monkeypatch.setattr(namespace.os, "chroot", chroots.append)
    with pytest.raises(DiskImageError, match="no longer in the mount namespace mnt:\\[1\\]"):
        namespace.enter(os.getpid(), "/nonexistent", expected="mnt:[1]")
    assert chroots == []

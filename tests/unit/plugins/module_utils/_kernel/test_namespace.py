# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_kernel.namespace without root: what crosses back from run_private's child
(with the unshare left out), and setns refusing a namespace other than the
expected one. The kernel tier makes real namespaces (growth of xfs and btrfs,
the image connection's holder)."""
import errno
import os
import signal

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import namespace
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


@pytest.fixture
def no_unshare(monkeypatch):
    """The child forks as in a real run, but stays in this namespace."""
    monkeypatch.setattr(namespace, "unshare_private", lambda: "mnt:[1]")


def _refuse():
    raise DiskImageError("no room", errno=errno.ENOSPC, hint="Free some")


def test_the_child_result_comes_back(no_unshare):
    parent = os.getpid()
    assert namespace.run_private(lambda a, b: {"sum": a + b, "child": os.getpid() != parent}, 2, 3) == {
        "sum": 5, "child": True}


def test_the_child_failure_comes_back_with_errno_and_hint(no_unshare):
    with pytest.raises(DiskImageError) as caught:
        namespace.run_private(_refuse)
    assert (caught.value.message, caught.value.errno, caught.value.hint) == ("no room", errno.ENOSPC, "Free some")
    with pytest.raises(DiskImageError, match="ZeroDivisionError"):
        namespace.run_private(lambda: 1 // 0)


def test_a_child_that_dies_without_a_word_is_an_error(no_unshare):
    with pytest.raises(DiskImageError, match="ended without a word \\(killed by signal %d\\)" % signal.SIGKILL):
        namespace.run_private(lambda: os.kill(os.getpid(), signal.SIGKILL))


def test_a_failed_unshare_is_the_childs_error(monkeypatch):
    def refuse():
        raise DiskImageError("cannot make a mount namespace (unshare): Operation not permitted", errno=errno.EPERM)

    monkeypatch.setattr(namespace, "unshare_private", refuse)
    with pytest.raises(DiskImageError, match="cannot make a mount namespace") as caught:
        namespace.run_private(lambda: "never run")
    assert caught.value.errno == errno.EPERM


def test_setns_refuses_a_namespace_other_than_the_expected_one():
    """A process must never follow a reused pid into another namespace: the
    namespace file's inode is what namespace_id() names."""
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    try:
        assert "mnt:[%d]" % os.fstat(fd).st_ino == namespace.namespace_id()
    finally:
        os.close(fd)
    with pytest.raises(DiskImageError, match="no longer in the mount namespace mnt:\\[1\\]") as caught:
        namespace.setns(os.getpid(), expected="mnt:[1]")
    assert caught.value.errno == errno.ESRCH

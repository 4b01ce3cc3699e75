# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.paths and the working root: links in the image resolve inside it, so a
file written for the duration never lands on the controller's own tree."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths, workroot
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_links_resolve_inside_the_tree(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", str(root / "lib"))
    os.symlink("/usr/lib", str(root / "abs"))
    os.symlink("../../../../..", str(root / "usr" / "up"))
    assert paths.resolve_in(str(root), "/lib/x") == str(root / "usr" / "lib" / "x")
    assert paths.resolve_in(str(root), "/abs/x") == str(root / "usr" / "lib" / "x")
    assert paths.resolve_in(str(root), "/usr/up/etc") == str(root / "etc")
    assert paths.parent_in(str(root), "/lib") == str(root / "lib")
    os.symlink("loop", str(root / "loop"))
    with pytest.raises(DiskImageError, match="too many symbolic links"):
        paths.resolve_in(str(root), "/loop/x")


def test_service_guard_never_writes_through_an_absolute_link_to_the_host(tmp_path):
    host = tmp_path / "host"
    (host / "sbin").mkdir(parents=True)
    root = tmp_path / "root"
    (root / "run" / ".diskimage-loop").mkdir(parents=True)
    os.symlink(str(host), str(root / "usr"))  # the image's /usr: an absolute link
    work = workroot.WorkRoot(str(root))
    work.service_guard()
    assert not (host / "sbin" / "policy-rc.d").exists()
    assert work.done == ["left /usr/sbin/policy-rc.d alone: /usr/sbin is missing in the image"]


def test_service_guard_writes_in_the_tree_through_a_relative_link(tmp_path):
    root = tmp_path / "root"
    (root / "run" / ".diskimage-loop").mkdir(parents=True)
    (root / "real" / "sbin").mkdir(parents=True)
    os.symlink("real", str(root / "usr"))
    work = workroot.WorkRoot(str(root))
    work.service_guard()
    assert b"exit 101" in (root / "real" / "sbin" / "policy-rc.d").read_bytes()
    assert work.undo() == (["removed /real/sbin/policy-rc.d"], [])
    assert not (root / "real" / "sbin" / "policy-rc.d").exists()

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_target: what a mount point may be, and the directories to create for it."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import target as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_target_missing_directories_are_listed(tmp_path):
    target = ms.Target(str(tmp_path / "a" / "b" / "c"))
    assert target.path == str(tmp_path / "a" / "b" / "c") and not target.exists
    assert target.missing == [str(tmp_path / "a"), str(tmp_path / "a" / "b"), str(tmp_path / "a" / "b" / "c")]
    undo = []
    target.create(undo)
    assert os.path.isdir(target.path) and len(undo) == 3
    for _what, action in reversed(undo):
        action()
    assert not os.path.exists(str(tmp_path / "a"))


def test_target_refusals(tmp_path):
    with pytest.raises(DiskImageError, match="is not an absolute path"):
        ms.Target("relative/mnt")
    (tmp_path / "file").write_text("")
    with pytest.raises(DiskImageError, match="is a file, not a directory; refusing to mount over it"):
        ms.Target(str(tmp_path / "file"))
    with pytest.raises(DiskImageError, match="is not a directory"):
        ms.Target(str(tmp_path / "file" / "below"))
    with pytest.raises(DiskImageError, match="is a special file"):
        ms.Target("/dev/null")


def test_target_symlinks_are_resolved_only_when_asked(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(DiskImageError) as err:
        ms.Target(str(tmp_path / "link" / "sub"))
    assert "goes through the symlink %s -> %s" % (tmp_path / "link", tmp_path / "real") in str(err.value)
    assert "Give the resolved path %s" % (tmp_path / "real" / "sub") in str(err.value)
    target = ms.Target(str(tmp_path / "link" / "sub"), follow_symlinks=True)
    assert target.path == str(tmp_path / "real" / "sub")
    assert target.resolved_from == str(tmp_path / "link" / "sub")
    assert target.missing == [str(tmp_path / "real" / "sub")]

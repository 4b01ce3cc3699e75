# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.root: the default root is named by the image's identity; roots the system needs are refused."""
import errno
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import root as tree_root
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_default_root_is_the_identity_not_the_name(tmp_path):
    image = tmp_path / "my disk.img"
    image.write_bytes(b"\0" * 512)
    os.symlink(str(image), str(tmp_path / "alias"))
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 512)
    info = os.stat(str(image))
    named = tree_root.default_root(str(image), trees_dir="/trees")
    assert named == "/trees/my_disk.img-%d.%d-%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    assert tree_root.default_root(str(tmp_path / "alias"), trees_dir="/trees") == named
    assert tree_root.default_root(str(other), trees_dir="/trees") != named


def test_default_root_of_a_missing_image_asks_for_root(tmp_path):
    with pytest.raises(DiskImageError) as caught:
        tree_root.default_root(str(tmp_path / "gone.img"))
    assert caught.value.errno == errno.ENOENT and "Give root" in str(caught.value)


@pytest.mark.parametrize("root", ["/", "/usr", "/var", "/boot", "/proc/self", "/sys/fs", "/dev/shm", "/usr/../tmp"])
def test_roots_the_system_needs_are_refused(root):
    with pytest.raises(DiskImageError) as caught:
        tree_root.check_root(root)
    assert "the running system needs it" in str(caught.value)


def test_root_is_canonical_and_a_directory(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "via"))
    assert tree_root.check_root(str(tmp_path / "via") + "/") == str(tmp_path / "real")
    assert tree_root.root_path(None, str(tmp_path / "via")) == (str(tmp_path / "real"), False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DiskImageError) as caught:
        tree_root.check_root(str(tmp_path / "file"))
    assert caught.value.errno == errno.ENOTDIR
    with pytest.raises(DiskImageError):
        tree_root.check_root("relative/root")

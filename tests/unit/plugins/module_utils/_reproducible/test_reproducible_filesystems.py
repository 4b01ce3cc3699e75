# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_mkfs plan: refusals before anything is formatted, and what planning predicts."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import filesystems


@pytest.mark.parametrize("name,words", [
    ("missing", "does not exist"),
    ("", "is a directory, not a block device"),
    ("disk.img", "is not a block device"),
])
def test_only_a_block_device_is_formatted(tmp_path, name, words):
    (tmp_path / "disk.img").write_bytes(b"\0" * 512)
    path = str(tmp_path / name) if name else str(tmp_path)
    with pytest.raises(DiskImageError, match=words) as raised:
        filesystems.plan_filesystems([{"device": path, "fstype": "ext4"}])
    assert "/dev/loop0p1" in raised.value.to_result()["msg"]


def test_a_negative_epoch_is_refused_first():
    with pytest.raises(DiskImageError, match="must not be negative"):
        filesystems.plan_filesystems([{"device": "/nonexistent", "fstype": "ext4"}], epoch=-1)


def test_predicted_content_is_the_subtree_or_the_rest_of_the_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    specs = [{"device": "a", "fstype": "ext4", "mountpoint": "/"},
             {"device": "b", "fstype": "vfat", "mountpoint": "/boot/"},
             {"device": "c", "fstype": "swap"}]
    predict = [filesystems._predicted_content(str(tree), fs, specs) for fs in specs]
    # the root holds nothing but the other mount point: no content to copy
    assert predict == [None, os.path.join(str(tree), "boot"), None]
    (tree / "etc").mkdir()
    assert filesystems._predicted_content(str(tree), specs[0], specs) == str(tree)
    assert filesystems._predicted_content(None, specs[0], specs) is None

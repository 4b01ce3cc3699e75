# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules lock: images by identity, paths by canonical name, the keys before and after planning."""
import os

from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks


def test_identity_is_the_file_not_its_name(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    os.symlink(str(image), str(tmp_path / "link.img"))
    os.link(str(image), str(tmp_path / "hard.img"))
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 512)
    names = set(locks.image_key(str(tmp_path / name)).name for name in ("disk.img", "link.img", "hard.img"))
    assert len(names) == 1
    assert locks.image_key(str(other)).name not in names
    assert locks.image_key(str(tmp_path / "missing.img")) is None
    info = os.stat(str(image))
    assert names == set(["file-%d:%d-%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)])


def test_paths_are_locked_by_their_canonical_name(tmp_path):
    (tmp_path / "mnt").mkdir()
    os.symlink(str(tmp_path / "mnt"), str(tmp_path / "via"))
    assert locks.path_key(str(tmp_path / "via")).name == locks.path_key(str(tmp_path / "mnt") + "/").name
    assert locks.path_key("relative/mnt") is None
    assert locks.fstab_key(str(tmp_path / "fstab")).rank == locks.FSTAB


def test_mount_keys_before_planning(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    keys = [k for k in locks.mount_keys("absent", str(image), str(tmp_path / "mnt")) if k]
    assert [(k.rank, k.shared) for k in keys] == [(locks.PATH, False), (locks.FSTAB, False), (locks.IMAGE, True)]
    assert keys[1].name == "/etc/fstab"
    assert [k for k in locks.mount_keys("mounted", None, str(tmp_path / "mnt")) if k][0].rank == locks.PATH


def test_loop_device_keys(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    assert locks.loop_device_keys(str(image), None)[0].name == locks.image_key(str(image)).name
    assert locks.loop_device_keys(None, "not-a-loop") == []
    assert locks.loop_device_keys(None, None) == [None]


def test_the_lock_sets_of_the_modules(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    real = locks.for_image(str(image), check_mode=False)
    check = locks.for_mount("mounted", str(image), str(tmp_path / "mnt"), None, check_mode=True)
    assert (real.lock_dir, real.wait, real.check_mode) == (locks.LOCK_DIR, locks.WAIT, False)
    assert (check.wait, check.check_mode) == (locks.CHECK_WAIT, True)
    assert [k.name for k in real.first()] == [locks.image_key(str(image)).name]
    assert [(k.rank, k.shared) for k in check.first() if k] == [(locks.PATH, False), (locks.IMAGE, True)]
    assert locks.for_loop_device(None, "not-a-loop", check_mode=False).first() == []
    assert locks.image_key(str(image)).describe() == "the image %s" % image


class TreePlan(object):
    def __init__(self, root, extents):
        self.root = root
        self._extents = extents

    def extents(self):
        return self._extents


def test_tree_keys_root_image_then_each_filesystem(tmp_path):
    from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import file_extent
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    whole = file_extent(str(image))
    tree = locks.for_tree(str(image), lambda: str(tmp_path / "tree"), check_mode=True)
    assert [(k.rank, k.shared) for k in tree.first()] == [(locks.PATH, False), (locks.IMAGE, True)]
    keys = locks.tree_plan_keys(TreePlan(str(tmp_path / "tree"), [whole.inner(512, 1024), whole.inner(2048, 512)]))
    assert [(k.rank, k.shared) for k in keys] == [
        (locks.PATH, False), (locks.IMAGE, True), (locks.EXTENT, False), (locks.IMAGE, True), (locks.EXTENT, False)]
    assert keys[1].name == locks.image_key(str(image)).name
    assert keys[2].name != keys[4].name

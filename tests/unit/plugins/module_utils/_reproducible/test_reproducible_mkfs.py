# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mkfs recipes per filesystem, and the staged tree: clamp, split, join, copy."""

import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids, mkfs, tree

UUID = "0e7b3d5a-3b1c-5a2f-8d44-6f0e9c1b2a3d"
EPOCH = 1700000000


def _fs(fstype, **kw):
    return dict({"device": "/dev/loop9p1", "fstype": fstype}, **kw)


def test_ext4_recipe_fixes_uuid_hash_seed_clock_and_takes_the_tree():
    r = mkfs.recipe(_fs("ext4", label="root", mkfs_options=["-m", "0"]), UUID, EPOCH, has_content=True)
    assert r.argv == ["mke2fs", "-t", "ext4", "-F", "-q", "-U", UUID, "-E", "hash_seed=" + ids.hash_seed(UUID),
                      "-L", "root", "-d", "@CONTENT@", "-m", "0", "/dev/loop9p1"]
    assert r.env == {"E2FSPROGS_FAKE_TIME": str(EPOCH)}
    assert r.content == "mkfs" and r.warning is None


def test_vfat_swap_and_aliases():
    r = mkfs.recipe(_fs("fat", label="ESP"), UUID, EPOCH, has_content=True)
    assert r.argv == ["mkfs.vfat", "--invariant", "-i", UUID[:8], "-n", "ESP", "/dev/loop9p1"]
    assert r.content == "mcopy" and r.warning is None
    r = mkfs.recipe(_fs("swap", label="sw"), UUID, EPOCH)
    assert r.argv == ["mkswap", "-f", "-U", UUID, "-L", "sw", "/dev/loop9p1"] and r.warning is None


def test_vfat_on_a_device_over_the_partition_alone_is_told_its_hidden_sectors():
    r = mkfs.recipe(_fs("vfat", label="ESP"), hidden_sectors=2048)
    assert r.argv == ["mkfs.vfat", "-h", "2048", "-n", "ESP", "/dev/loop9p1"]
    assert "-h" not in mkfs.recipe(_fs("ext4"), hidden_sectors=2048).argv


@pytest.mark.parametrize("fstype,uuid_args,content", [
    ("xfs", ["-m", "uuid=" + UUID], "mount"), ("btrfs", ["-U", UUID], "mkfs"), ("f2fs", [], "mount")])
def test_unreproducible_types_get_the_uuid_and_a_warning(fstype, uuid_args, content):
    r = mkfs.recipe(_fs(fstype), UUID, EPOCH, has_content=True)
    assert r.warning and "not reproducible" in r.warning and "/dev/loop9p1" in r.warning
    assert r.argv[-1] == "/dev/loop9p1"
    assert all(a in r.argv for a in uuid_args)
    assert r.content == content


def test_without_epoch_there_is_no_clock_and_no_warning():
    r = mkfs.recipe(_fs("xfs"), None, None)
    assert r.warning is None and r.env == {} and r.argv == ["mkfs.xfs", "-f", "/dev/loop9p1"]


def test_debugfs_requests_skip_names_it_cannot_quote():
    text = mkfs.debugfs_ctime_commands("/t", EPOCH, lambda top: ["a", "b/c", 'bad"name'])
    assert text == 'sif "/a" ctime @%d\nsif "/b/c" ctime @%d\n' % (EPOCH, EPOCH)


def _staged(tmp_path):
    top = tmp_path / "tree"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hostname").write_text("x\n")
    (top / "boot" / "efi" / "EFI").mkdir(parents=True)
    (top / "boot" / "efi" / "EFI" / "x.conf").write_text("y\n")
    (top / "boot" / "vmlinuz").write_text("k\n")
    os.symlink("hostname", str(top / "etc" / "link"))
    return top


def test_clamp_sets_atime_and_mtime_to_at_most_the_epoch(tmp_path):
    top = _staged(tmp_path)
    old = tmp_path / "tree" / "etc" / "old"
    old.write_text("o")
    os.utime(str(old), (1000, 1000))
    # listed before the clamp: reading a directory afterwards would update its atime
    walked = list(os.walk(str(top)))
    paths = [entry[0] for entry in walked] + [os.path.join(entry[0], name) for entry in walked for name in entry[2]]
    assert tree.clamp_times(str(top), EPOCH) > 0
    for path in paths:
        st = os.lstat(path)
        assert st.st_mtime_ns == st.st_atime_ns, path
        assert st.st_mtime_ns in (EPOCH * 10 ** 9, 1000 * 10 ** 9)
    assert os.lstat(str(old)).st_mtime == 1000


def test_split_and_join_restore_the_tree(tmp_path):
    top = _staged(tmp_path)
    before = sorted(os.path.relpath(os.path.join(d, n), str(top)) for d, ds, fs in os.walk(str(top)) for n in ds + fs)
    parts, moved = tree.split(str(top), ["/", "/boot", "/boot/efi", "/srv"], EPOCH)
    assert parts["/"] == str(top)
    assert sorted(os.listdir(parts["/boot/efi"])) == ["EFI"]
    assert sorted(os.listdir(parts["/boot"])) == ["efi", "vmlinuz"]
    assert os.listdir(os.path.join(parts["/boot"], "efi")) == []
    assert os.listdir(parts["/srv"]) == [] and os.listdir(str(top / "srv")) == []
    tree.join(moved)
    after = sorted(os.path.relpath(os.path.join(d, n), str(top)) for d, ds, fs in os.walk(str(top)) for n in ds + fs)
    assert after == sorted(before + ["srv"])
    assert not os.path.exists(str(top) + ".split")


def test_split_refuses_a_left_over_split_and_a_file_mount_point(tmp_path):
    top = _staged(tmp_path)
    (top / "etc" / "mnt").write_text("file")
    with pytest.raises(DiskImageError, match="not a directory"):
        tree.split(str(top), ["/etc/mnt"], EPOCH)
    assert not os.path.exists(str(top) + ".split")
    os.mkdir(str(top) + ".split")
    with pytest.raises(DiskImageError, match="interrupted"):
        tree.split(str(top), ["/boot"], EPOCH)


def test_copy_into_keeps_modes_times_and_links(tmp_path):
    top = _staged(tmp_path)
    os.chmod(str(top / "etc" / "hostname"), 0o600)
    tree.clamp_times(str(top), EPOCH)
    dst = tmp_path / "dst"
    dst.mkdir()
    tree.copy_into(str(top), str(dst))
    assert os.readlink(str(dst / "etc" / "link")) == "hostname"
    assert oct(os.stat(str(dst / "etc" / "hostname")).st_mode & 0o777) == "0o600"
    assert (dst / "boot" / "efi" / "EFI" / "x.conf").read_text() == "y\n"
    assert os.stat(str(dst / "boot")).st_mtime == EPOCH

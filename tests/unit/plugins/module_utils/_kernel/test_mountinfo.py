# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mountinfo parsing and lookups, fstab editing. No root needed."""

import json
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo as mi
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# Lines shaped like a real table: optional fields (none, one, two), escapes
# in mount points and sources, a FUSE type, an overmounted directory.
FIXTURE = "\n".join([
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro",
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
    "24 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8000k,mode=755",
    "40 22 7:3 / /mnt/my\\040image rw,noatime - ext4 /dev/loop3 rw",
    "41 40 7:4 / /mnt/my\\040image/inner ro,nodev master:5 propagate_from:1 - squashfs "
    "/dev/loop4 ro,errors=continue",
    "42 22 7:3 /sub /srv/bind\\011tab\\134back rw,relatime - ext4 /dev/loop3 rw",
    "50 22 7:5 / /mnt/stack rw,relatime - xfs /dev/loop5 rw,attr2,inode64",
    "51 50 7:6 / /mnt/stack rw,relatime - btrfs /dev/loop6 rw,space_cache=v2",
    "52 51 7:7 / /mnt/stack rw,nosuid,relatime - erofs /dev/loop7 ro,user_xattr",
    "60 22 0:50 / /mnt/stackx rw - fuse.sshfs user@host:/a\\040b rw,user_id=0",
    "61 22 0:51 / /mnt/nosrc rw - tmpfs none rw",
    "",
])


@pytest.fixture
def table():
    return mi.parse_mountinfo(FIXTURE)


def test_fields_and_escapes(table):
    m = table[3]
    assert (m.mount_id, m.parent_id, m.major, m.minor) == (40, 22, 7, 3)
    assert m.mount_point == "/mnt/my image"
    assert m.mount_options == ["rw", "noatime"]
    assert m.optional_fields == []
    assert (m.fstype, m.source, m.super_options) == ("ext4", "/dev/loop3", ["rw"])
    inner = table[4]
    assert inner.optional_fields == ["master:5", "propagate_from:1"]
    assert inner.read_only and inner.device == (7, 4)
    bind = table[5]
    assert bind.root == "/sub"
    assert bind.mount_point == "/srv/bind\ttab\\back"
    assert table[9].fstype == "fuse.sshfs" and table[9].source == "user@host:/a b"
    assert table[2].super_options == ["rw", "size=8000k", "mode=755"]


def test_to_dict(table):
    d = table[4].to_dict()
    assert d["device"] == "7:4" and d["mount_options"] == "ro,nodev"
    assert d["super_options"] == "ro,errors=continue"
    json.dumps(d)


def test_mounts_at_and_top_mount(table):
    assert [m.mount_id for m in mi.mounts_at("/mnt/stack", table)] == [50, 51, 52]
    assert mi.top_mount_at("/mnt/stack", table).mount_id == 52
    assert mi.top_mount_at("/mnt/stack/", table).mount_id == 52   # trailing slash
    assert mi.top_mount_at("/mnt/stack/../stack", table).mount_id == 52
    assert mi.top_mount_at("/mnt/nothing", table) is None
    assert mi.top_mount_at("/mnt/my image", table).fstype == "ext4"


def test_top_mount_follows_parent_links_not_file_order(table):
    # Propagation can list the covering mount before the covered one.
    shuffled = [table[0], table[8], table[6], table[7]]
    assert mi.top_mount_at("/mnt/stack", shuffled).mount_id == 52


def test_mounts_of_device(table):
    assert [m.mount_id for m in mi.mounts_of_device(7, 3, table)] == [40, 42]
    assert mi.mounts_of_device(7, 99, table) == []


def test_mounts_under_respects_path_boundaries(table):
    assert [m.mount_id for m in mi.mounts_under("/mnt/stack", table)] == [50, 51, 52]
    # /mnt/stackx is a sibling, not a child
    assert all(m.mount_point != "/mnt/stackx" for m in mi.mounts_under("/mnt/stack", table))
    assert [m.mount_id for m in mi.mounts_under("/mnt/my image", table, include_self=False)] \
        == [41]
    assert len(mi.mounts_under("/", table)) == len(table)


def test_mount_containing(table):
    assert mi.mount_containing("/mnt/my image/inner/x/y", table).mount_id == 41
    assert mi.mount_containing("/mnt/stack/file", table).mount_id == 52
    assert mi.mount_containing("/etc/fstab", table).mount_id == 22


@pytest.mark.parametrize("line", [
    "",
    "1 2 3:4 / /x rw",                       # no separator
    "1 2 3:4 / /x rw shared:1 - ext4",       # no source
    "x 2 3:4 / /x rw - ext4 /dev/a rw",      # id not a number
    "1 2 34 / /x rw - ext4 /dev/a rw",       # no major:minor
])
def test_malformed_lines_raise_valueerror(line):
    with pytest.raises(ValueError):
        mi.parse_mountinfo_line(line)


def test_missing_super_options_tolerated():
    m = mi.parse_mountinfo_line("1 0 0:1 / / rw - rootfs rootfs")
    assert m.super_options == [] and m.source == "rootfs"


def test_real_table_matches_findmnt():
    if not shutil.which("findmnt"):
        pytest.skip("findmnt is not installed")
    ours = {m.mount_id: m for m in mi.read_mountinfo()}
    out = subprocess.run(["findmnt", "--json", "--list", "--output",
                          "ID,PARENT,MAJ:MIN,TARGET,FSTYPE,VFS-OPTIONS,FS-OPTIONS,FSROOT"],
                         stdout=subprocess.PIPE, check=True).stdout
    theirs = json.loads(out.decode())["filesystems"]
    compared = 0
    for fs in theirs:
        m = ours.get(int(fs["id"]))
        if m is None:        # mounted by someone else between the two reads
            continue
        compared += 1
        assert m.parent_id == int(fs["parent"])
        assert "%d:%d" % m.device == fs["maj:min"]
        assert m.mount_point == fs["target"]
        assert m.fstype == fs["fstype"]
        assert ",".join(m.mount_options) == fs["vfs-options"]
        assert ",".join(m.super_options) == (fs["fs-options"] or "")
        assert m.root == fs["fsroot"]
    assert compared > 0


def test_read_mountinfo_error_is_diskimageerror(tmp_path):
    with pytest.raises(DiskImageError) as err:
        mi.read_mountinfo(str(tmp_path / "nope"))
    assert err.value.errno == 2


def test_escape_roundtrip():
    for s in ("/plain", "/a b", "/tab\there", "/back\\slash", "/new\nline", "/ü"):
        assert mi.unescape(mi.escape(s)) == s
    assert mi.escape("/a b") == "/a\\040b"


# --- fstab -----------------------------------------------------------------

FSTAB = (
    "# /etc/fstab: static file system information.\n"
    "#\n"
    "UUID=1111-2222 /boot/efi vfat umask=0077 0 1\n"
    "/dev/sda2\t/\text4\terrors=remount-ro\t0\t1\n"
    "\n"
    "this line is not an entry at all, keep it please\n"
    "/srv/images/a\\040b.img /mnt/a\\040b ext4 loop,ro 0 0\n"
    "tmpfs /tmp tmpfs defaults\n"
    "/dev/sdb1 /data xfs defaults 0 2\n"
    "/dev/sdc1 /data xfs noauto 0 2\n"
)


def test_fstab_parse_and_roundtrip():
    lines = mi.parse_fstab(FSTAB)
    assert mi.render_fstab(lines) == FSTAB
    entries = [ln.entry for ln in lines if ln.entry]
    assert len(entries) == 6
    assert entries[1].target == "/" and entries[1].options == "errors=remount-ro"
    assert entries[2].source == "/srv/images/a b.img" and entries[2].target == "/mnt/a b"
    assert (entries[3].freq, entries[3].passno) == (0, 0)   # fields 5-6 optional


def test_fstab_find():
    assert [e.source for e in mi.find_fstab_entries(FSTAB, "/data")] == ["/dev/sdb1", "/dev/sdc1"]
    assert mi.find_fstab_entries(FSTAB, "/mnt/a b/")[0].fstype == "ext4"
    assert mi.find_fstab_entries(FSTAB, "/nowhere") == []


def test_fstab_render_escapes():
    e = mi.FstabEntry("/img/my disk.img", "/mnt/my disk", "ext4", "ro,noatime", 0, 2)
    assert e.render() == "/img/my\\040disk.img /mnt/my\\040disk ext4 ro,noatime 0 2"
    assert mi.parse_fstab_line(e.render()) == e


def test_fstab_set_replaces_in_place_and_keeps_everything_else():
    new = mi.FstabEntry("/dev/sda2", "/", "ext4", "errors=remount-ro,noatime", 0, 1)
    out = mi.set_fstab_entry(FSTAB, new)
    before, after = FSTAB.splitlines(), out.splitlines()
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [3]
    assert after[3] == "/dev/sda2 / ext4 errors=remount-ro,noatime 0 1"


def test_fstab_set_same_entry_is_a_noop_even_with_odd_spacing():
    same = mi.FstabEntry("/dev/sda2", "/", "ext4", "errors=remount-ro", 0, 1)
    assert mi.set_fstab_entry(FSTAB, same) == FSTAB


def test_fstab_set_drops_duplicates_for_the_mount_point():
    new = mi.FstabEntry("/dev/sdb1", "/data", "xfs", "defaults", 0, 2)
    out = mi.set_fstab_entry(FSTAB, new)
    assert [e.source for e in mi.find_fstab_entries(out, "/data")] == ["/dev/sdb1"]
    assert "/dev/sdc1" not in out


def test_fstab_set_appends_and_fixes_missing_newline():
    new = mi.FstabEntry("/img/x.img", "/mnt/x", "squashfs", "ro", 0, 0)
    out = mi.set_fstab_entry("# only a comment", new)
    assert out == "# only a comment\n/img/x.img /mnt/x squashfs ro 0 0\n"
    assert mi.set_fstab_entry("", new) == "/img/x.img /mnt/x squashfs ro 0 0\n"


def test_fstab_crlf_line_endings_survive():
    text = "# c\r\n/dev/a /a ext4 defaults 0 0\r\n"
    out = mi.set_fstab_entry(text, mi.FstabEntry("/dev/b", "/a", "ext4"))
    assert out == "# c\r\n/dev/b /a ext4 defaults 0 0\r\n"


def test_fstab_remove():
    out = mi.remove_fstab_entry(FSTAB, "/data")
    assert "/data" not in out
    assert out.count("\n") == FSTAB.count("\n") - 2
    assert mi.remove_fstab_entry(FSTAB, "/nowhere") == FSTAB


def test_update_fstab_writes_atomically_and_keeps_mode(tmp_path):
    path = tmp_path / "fstab"
    path.write_text(FSTAB)
    os.chmod(str(path), 0o600)
    inode = os.stat(str(path)).st_ino
    entry = mi.FstabEntry("/img/disk.img", "/mnt/disk", "ext4", "ro", 0, 0)

    res = mi.update_fstab(str(path), "/mnt/disk", entry, check_mode=True)
    assert res["changed"] and res["before"] == FSTAB and path.read_text() == FSTAB

    res = mi.update_fstab(str(path), "/mnt/disk", entry)
    assert res["changed"] and res["after"] == path.read_text()
    assert res["entries"] == [entry.to_dict()]
    st = os.stat(str(path))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_ino != inode                      # replaced by rename, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["fstab"]  # no temp file left

    again = mi.update_fstab(str(path), "/mnt/disk", entry)
    assert not again["changed"]

    gone = mi.update_fstab(str(path), "/mnt/disk", None)
    assert gone["changed"] and path.read_text() == FSTAB


def test_update_fstab_creates_missing_file_and_follows_symlinks(tmp_path):
    real = tmp_path / "real-fstab"
    link = tmp_path / "fstab"
    os.symlink(str(real), str(link))
    entry = mi.FstabEntry("/dev/x", "/x")
    res = mi.update_fstab(str(link), "/x", entry)
    assert res["before"] == "" and res["changed"]
    assert os.path.islink(str(link))
    assert real.read_text() == "/dev/x /x auto defaults 0 0\n"
    assert stat.S_IMODE(os.stat(str(real)).st_mode) == 0o644


def test_update_fstab_rejects_mismatched_target(tmp_path):
    with pytest.raises(ValueError):
        mi.update_fstab(str(tmp_path / "f"), "/a", mi.FstabEntry("/dev/x", "/b"))


def test_write_error_is_diskimageerror(tmp_path):
    with pytest.raises(DiskImageError):
        mi.write_file_atomic(str(tmp_path / "missing-dir" / "fstab"), "x\n")

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option splitting, option comparison and busy-mount reports. No root needed."""

import errno
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys as ms


# --- splitting -------------------------------------------------------------

def test_split_options_honours_quotes():
    assert ms.split_options('ro,context="system_u:object_r:a_t:s0,c1",uid=0') == \
        ["ro", 'context="system_u:object_r:a_t:s0,c1"', "uid=0"]
    assert ms.split_options("") == [] and ms.split_options(None) == []
    assert ms.split_options(" ro , ,noatime ") == ["ro", "noatime"]
    assert ms.split_options(["ro", "", "x=1"]) == ["ro", "x=1"]


def test_parse_options_like_mount8():
    mo = ms.parse_options("defaults,ro,nosuid,nodev,noatime,errors=remount-ro,commit=30,"
                          "noauto,nofail,x-systemd.automount,comment=foo,_netdev,discard")
    assert mo.flags == ms.MS_RDONLY | ms.MS_NOSUID | ms.MS_NODEV | ms.MS_NOATIME
    assert mo.data == ["errors=remount-ro", "commit=30", "discard"]
    assert mo.data_string == "errors=remount-ro,commit=30,discard"
    assert mo.userspace == ["defaults", "noauto", "nofail", "x-systemd.automount",
                            "comment=foo", "_netdev"]
    assert not mo.bind and mo.propagation == 0


def test_last_word_wins():
    mo = ms.parse_options("ro,rw")
    assert not mo.flags & ms.MS_RDONLY and mo.cleared & ms.MS_RDONLY
    mo = ms.parse_options("rw,ro")
    assert mo.flags & ms.MS_RDONLY and not mo.cleared & ms.MS_RDONLY
    mo = ms.parse_options("noexec,exec")
    assert not mo.flags & ms.MS_NOEXEC and mo.cleared & ms.MS_NOEXEC


def test_atime_policy_is_one_choice():
    assert ms.parse_options("noatime,relatime").flags == ms.MS_RELATIME
    assert ms.parse_options("relatime,strictatime").flags == ms.MS_STRICTATIME
    assert ms.parse_options("strictatime,noatime,nodiratime").flags == \
        ms.MS_NOATIME | ms.MS_NODIRATIME


@pytest.mark.parametrize("word,flag", [
    ("sync", ms.MS_SYNCHRONOUS), ("dirsync", ms.MS_DIRSYNC), ("lazytime", ms.MS_LAZYTIME),
    ("nosymfollow", ms.MS_NOSYMFOLLOW), ("mand", ms.MS_MANDLOCK), ("silent", ms.MS_SILENT),
    ("noexec", ms.MS_NOEXEC), ("nodiratime", ms.MS_NODIRATIME),
])
def test_flag_words(word, flag):
    assert ms.parse_options(word).flags == flag


def test_bind_and_propagation():
    mo = ms.parse_options("bind,ro")
    assert mo.bind and not mo.recursive
    assert mo.mount_flags == ms.MS_BIND | ms.MS_RDONLY
    mo = ms.parse_options("rbind,rslave")
    assert mo.mount_flags == ms.MS_BIND | ms.MS_REC
    assert mo.propagation == ms.MS_SLAVE | ms.MS_REC
    assert ms.parse_options("private").propagation == ms.MS_PRIVATE


def test_parse_options_passes_through_an_object():
    mo = ms.parse_options("ro")
    assert ms.parse_options(mo) is mo


def test_mount_attrs():
    assert ms.mount_attrs(ms.MS_RDONLY | ms.MS_NOSUID | ms.MS_NODEV | ms.MS_NOEXEC) == \
        ms.MOUNT_ATTR_RDONLY | ms.MOUNT_ATTR_NOSUID | ms.MOUNT_ATTR_NODEV | ms.MOUNT_ATTR_NOEXEC
    assert ms.mount_attrs(ms.MS_NOATIME | ms.MS_NODIRATIME) == \
        ms.MOUNT_ATTR_NOATIME | ms.MOUNT_ATTR_NODIRATIME
    assert ms.mount_attrs(ms.MS_STRICTATIME) == ms.MOUNT_ATTR_STRICTATIME
    assert ms.mount_attrs(ms.MS_RELATIME) == 0          # relatime is the zero value
    assert ms.mount_attrs(ms.MS_NOSYMFOLLOW) == ms.MOUNT_ATTR_NOSYMFOLLOW
    assert ms.mount_attrs(ms.MS_SYNCHRONOUS) == 0       # a superblock flag


def test_syscall_numbers():
    for machine in ("x86_64", "aarch64"):
        nums = ms.syscall_numbers(machine)
        assert (nums["move_mount"], nums["fsopen"], nums["fsconfig"], nums["fsmount"],
                nums["fspick"]) == (429, 430, 431, 432, 433)
    assert ms.syscall_numbers("mips") is None
    assert ms.syscall_numbers("alpha") is None


def test_mount_fs_refuses_bind_flags():
    with pytest.raises(ValueError):
        ms.mount_fs("/a", "/b", "ext4", ms.MS_BIND)


# --- comparing -------------------------------------------------------------

def cmp(requested, mount_opts, super_opts, fstype="ext4", **kw):
    return ms.compare_options(requested, mount_opts, super_opts, fstype, **kw)


def test_identical_mount_is_satisfied():
    d = cmp("noatime,errors=remount-ro", "rw,noatime", "rw,errors=remount-ro")
    assert d.satisfied and d.mount_flags is None and not d.needs_reconfigure
    assert d.unverifiable == []


def test_ro_requested_on_rw_mount():
    d = cmp("ro", "rw,relatime", "rw")
    assert not d.satisfied and d.mismatches == ["ro (mounted rw)"]
    assert d.mount_flags == ms.MS_RDONLY | ms.MS_RELATIME   # keeps relatime
    assert d.sb_set == ms.MS_RDONLY and d.needs_reconfigure


def test_ro_satisfied_by_either_level():
    assert cmp("ro", "ro,relatime", "rw").satisfied
    assert cmp("ro", "rw,relatime", "ro").satisfied


def test_rw_is_implied_unless_the_filesystem_is_read_only_by_nature():
    d = cmp("noatime", "ro,noatime", "ro")
    assert d.mismatches == ["rw (mounted ro)"]
    assert d.sb_clear == ms.MS_RDONLY and d.mount_flags == ms.MS_NOATIME
    assert cmp("", "ro,relatime", "ro", fstype="squashfs").satisfied
    assert cmp("", "ro,relatime", "ro", fstype="iso9660").satisfied
    assert not cmp("rw", "ro,relatime", "ro", fstype="squashfs").satisfied
    assert cmp("", "ro,relatime", "ro", implicit_defaults=False).satisfied


def test_per_mount_ro_only_needs_no_superblock_change():
    d = cmp("rw", "ro,relatime", "rw")
    assert d.mount_flags == ms.MS_RELATIME and not d.needs_reconfigure


def test_security_flags_and_their_defaults():
    d = cmp("nosuid,nodev", "rw,relatime", "rw")
    assert set(d.mismatches) == {"nosuid (not set)", "nodev (not set)"}
    assert d.mount_flags == ms.MS_NOSUID | ms.MS_NODEV | ms.MS_RELATIME
    # implied suid/dev/exec: a noexec mount does not satisfy plain defaults
    d = cmp("defaults", "rw,noexec,relatime", "rw")
    assert d.mismatches == ["exec (mounted noexec)"] and d.mount_flags == ms.MS_RELATIME
    assert cmp("defaults", "rw,noexec,relatime", "rw", implicit_defaults=False).satisfied
    assert cmp("noexec", "rw,nosuid,noexec,relatime", "rw").mismatches == \
        ["suid (mounted nosuid)"]


def test_atime_compared_only_when_asked():
    assert cmp("", "rw,noatime", "rw").satisfied
    d = cmp("relatime", "rw,noatime", "rw")
    assert d.mismatches == ["relatime (atime policy differs)"]
    assert d.mount_flags == ms.MS_RELATIME
    assert cmp("strictatime", "rw", "rw").satisfied           # neither word shown
    assert not cmp("strictatime", "rw,relatime", "rw").satisfied
    assert cmp("noatime", "rw,noatime", "rw").satisfied
    d = cmp("atime", "rw,noatime", "rw")
    assert d.mismatches == ["atime (mounted noatime)"] and d.mount_flags == ms.MS_RELATIME
    d = cmp("nodiratime", "rw,relatime", "rw")
    assert d.mount_flags == ms.MS_NODIRATIME | ms.MS_RELATIME


def test_superblock_flags():
    d = cmp("sync", "rw,relatime", "rw")
    assert d.mismatches == ["sync (not set)"] and d.sb_set == ms.MS_SYNCHRONOUS
    assert d.mount_flags is None
    assert cmp("sync,lazytime", "rw", "rw,sync,lazytime").satisfied
    d = cmp("async", "rw", "rw,sync")
    assert d.sb_clear == ms.MS_SYNCHRONOUS


def test_filesystem_options():
    d = cmp("errors=continue,commit=5,user_xattr,nobarrier", "rw,relatime",
            "rw,errors=remount-ro,barrier")
    assert "errors=continue (mounted errors=remount-ro)" in d.mismatches
    assert "nobarrier (mounted barrier)" in d.mismatches
    assert d.unverifiable == ["commit=5", "user_xattr"]
    assert d.data == ["errors=continue", "nobarrier"]
    assert d.mount_flags is None and d.needs_reconfigure
    # options not shown are taken as satisfied: the kernel hides defaults
    assert cmp("commit=5", "rw", "rw").satisfied


def test_userspace_words_are_ignored():
    assert cmp("defaults,noauto,nofail,x-systemd.automount,loop", "rw,relatime", "rw").satisfied


def test_flags_from_mountinfo():
    assert ms.flags_from_mountinfo("ro,nosuid,nodev,noexec,relatime") == \
        ms.MS_RDONLY | ms.MS_NOSUID | ms.MS_NODEV | ms.MS_NOEXEC | ms.MS_RELATIME
    assert ms.flags_from_mountinfo(["rw", "sync", "dirsync", "errors=x"]) == \
        ms.MS_SYNCHRONOUS | ms.MS_DIRSYNC


# --- errors and kernel messages ---------------------------------------------

def test_fs_context_log_parsing():
    r, w = os.pipe()
    os.write(w, b"e ext4: Unknown parameter 'bogus'\n")
    os.close(w)
    try:
        assert ms.read_fs_context_log(r) == [("e", "ext4: Unknown parameter 'bogus'")]
    finally:
        os.close(r)


def test_error_message_carries_kernel_reason_and_errno():
    err = ms._error("Cannot mount /dev/loop9 on /mnt (type ext4)",
                    ms._SysError(errno.EINVAL, "fsconfig(create)"),
                    [("i", "note"), ("e", "ext4: Unknown parameter 'x'")])
    assert err.errno == errno.EINVAL and err.errno_name == "EINVAL"
    assert str(err) == ("Cannot mount /dev/loop9 on /mnt (type ext4): Invalid argument (EINVAL)."
                        " Kernel: ext4: Unknown parameter 'x'")
    bare = ms._error("Cannot mount a on b", ms._SysError(errno.EINVAL, "mount"))
    assert "Wrong filesystem type" in str(bare)
    nodev = ms._error("Cannot mount a on b", ms._SysError(errno.ENODEV, "fsopen"))
    assert "/proc/filesystems" in str(nodev)


def test_kernel_log_tap_ignores_non_devices():
    tap = ms._KernelLogTap("/srv/image.img")
    assert tap.fd is None and tap.messages() == []
    tap.close()


# --- who holds a mount point -------------------------------------------------

@pytest.fixture
def holders_tree(tmp_path):
    root = tmp_path / "mnt"
    (root / "deep").mkdir(parents=True)
    (root / "file.txt").write_text("x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    procs = []
    try:
        procs.append(subprocess.Popen(["sleep", "300"], cwd=str(root / "deep")))
        holder = ("import sys,time\nf=open(sys.argv[1])\nsys.stdout.write('ok\\n')\n"
                  "sys.stdout.flush()\ntime.sleep(300)\n")
        p = subprocess.Popen([sys.executable, "-c", holder, str(root / "file.txt")],
                             stdout=subprocess.PIPE, cwd=str(outside))
        assert p.stdout.readline() == b"ok\n"
        procs.append(p)
        procs.append(subprocess.Popen(["sleep", "300"], cwd=str(outside)))
        yield root, procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_holders_of_mount(holders_tree):
    root, (sleeper, opener, bystander) = holders_tree
    found = {h["pid"]: h for h in holders.holders_of_mount(str(root))}
    assert found[sleeper.pid]["uses"] == ["cwd"]
    assert found[sleeper.pid]["comm"] == "sleep"
    assert "sleep 300" in found[sleeper.pid]["cmdline"]
    assert any(u.startswith("fd ") for u in found[opener.pid]["uses"])
    assert bystander.pid not in found
    # the prefix must end at a path boundary: /…/mnt is not /…/mntX
    assert holders.holders_of_mount(str(root) + "X") == []


def test_busy_report_names_processes(holders_tree):
    root, procs = holders_tree
    sleeper = procs[0]
    text = holders.busy_report(str(root))
    assert "sleep (pid %d: cwd)" % sleeper.pid in text
    assert "MNT_DETACH" in text


def test_busy_report_when_nothing_is_found(tmp_path):
    assert "lazy unmount" in holders.busy_report(str(tmp_path))


def test_loop_devices_backed_under(tmp_path):
    sysfs = tmp_path / "sys" / "block"
    for name, backing in (("loop7", "/srv/imgs/a.img\n"), ("loop8", "/srv/imgsX/b.img\n"),
                          ("sda", None)):
        d = sysfs / name
        d.mkdir(parents=True)
        if backing:
            (d / "loop").mkdir()
            (d / "loop" / "backing_file").write_text(backing)
    assert holders.loop_devices_backed_under("/srv/imgs", str(tmp_path / "sys")) == \
        [{"device": "/dev/loop7", "backing_file": "/srv/imgs/a.img"}]


def test_holders_skips_vanished_processes(tmp_path):
    fake = tmp_path / "proc"
    (fake / "123").mkdir(parents=True)     # no cwd, fd or maps: vanished mid-scan
    (fake / "self").mkdir()
    assert holders.holders_of_mount("/", str(fake)) == []


def test_holders_scan_is_quick(tmp_path):
    start = time.monotonic()
    holders.holders_of_mount(str(tmp_path))
    assert time.monotonic() - start < 10

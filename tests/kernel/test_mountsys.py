# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mountsys on this host's kernel: real loop devices, real mounts.

findmnt is the oracle for what got mounted. Loop devices come from
`losetup --find --show` (the project's own loop core is tested elsewhere).
Every test unmounts what it mounted below its tmp_path and detaches only
the loop devices it attached, in `finally`, even when it fails.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo as mi
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mounts"),
]

MiB = 1024 * 1024


def kernel_has(fstype):
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == fstype for line in f if line.strip())


def need(*tools):
    for tool in tools:
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)


def quiet(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def findmnt(path):
    """findmnt's view of the mount at ``path`` (the visible one), or None."""
    out = subprocess.run(["findmnt", "--json", "--mountpoint", path, "--output",
                          "TARGET,SOURCE,FSTYPE,VFS-OPTIONS,FS-OPTIONS"],
                         stdout=subprocess.PIPE, check=False).stdout
    if not out.strip():
        return None
    return json.loads(out.decode())["filesystems"][-1]


class Kit:
    """Images, loop devices, mount points and helper processes of one test."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.loops = []
        self.procs = []
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "hello.txt").write_text("hello from the image\n")
        self.tree = str(tree)

    def image(self, fstype, name=None):
        path = str(self.tmp / (name or "%s.img" % fstype))
        sizes = {"ext4": 32 * MiB, "xfs": 300 * MiB, "btrfs": 128 * MiB, "vfat": 32 * MiB}
        if fstype in sizes:
            with open(path, "wb") as f:
                f.truncate(sizes[fstype])
        if fstype == "ext4":
            need("mkfs.ext4")
            quiet("mkfs.ext4", "-q", "-F", "-d", self.tree, path)
        elif fstype == "xfs":
            need("mkfs.xfs")
            quiet("mkfs.xfs", "-q", "-f", path)
        elif fstype == "btrfs":
            need("mkfs.btrfs")
            quiet("mkfs.btrfs", "-q", "-f", "--rootdir", self.tree, path)
        elif fstype == "vfat":
            need("mkfs.vfat")
            quiet("mkfs.vfat", path)
        elif fstype == "squashfs":
            need("mksquashfs")
            quiet("mksquashfs", self.tree, path, "-quiet", "-noappend")
        elif fstype == "erofs":
            need("mkfs.erofs")
            quiet("mkfs.erofs", path, self.tree)
        elif fstype == "zero":
            with open(path, "wb") as f:
                f.truncate(16 * MiB)
        else:
            raise AssertionError(fstype)
        return path

    def attach(self, image, read_only=False):
        need("losetup")
        cmd = ["losetup", "--find", "--show"] + (["--read-only"] if read_only else []) + [image]
        dev = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout.decode().strip()
        assert dev.startswith("/dev/loop")
        self.loops.append(dev)
        return dev

    def mountpoint(self, name="mnt"):
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        errors = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        # Deepest first; only mounts below this test's own directory.
        for m in reversed(mi.mounts_under(str(self.tmp), include_self=True)):
            r = subprocess.run(["umount", "--lazy", m.mount_point], stderr=subprocess.PIPE,
                               check=False)
            if r.returncode:
                errors.append(r.stderr.decode())
        for dev in self.loops:
            r = subprocess.run(["losetup", "-d", dev], stderr=subprocess.PIPE, check=False)
            if r.returncode and b"No such device" not in r.stderr:
                errors.append(r.stderr.decode())
        assert not errors, errors


@pytest.fixture
def kit(tmp_path):
    k = Kit(tmp_path)
    try:
        yield k
    finally:
        k.cleanup()


def mounted(path):
    return mi.top_mount_at(path)


# --- mounting --------------------------------------------------------------

@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "squashfs", "erofs"])
def test_mount_with_new_api_matches_findmnt(kit, fstype):
    if not kernel_has(fstype):
        pytest.skip("kernel lacks %s" % fstype)
    dev = kit.attach(kit.image(fstype))
    assert fsprobe.probe_path(dev)["type"] == fstype
    mnt = kit.mountpoint()

    result = ms.mount_with_options(dev, mnt, fstype, "noatime,nodev,nosuid")

    assert result["api"] == "fsmount"
    seen = findmnt(mnt)
    ours = mounted(mnt)
    assert seen["source"] == ours.source == dev
    assert seen["fstype"] == ours.fstype == fstype
    assert seen["vfs-options"] == ",".join(ours.mount_options)
    assert seen["fs-options"] == ",".join(ours.super_options)
    for word in ("noatime", "nodev", "nosuid"):
        assert word in seen["vfs-options"].split(",")
    assert ms.compare_options("noatime,nodev,nosuid", ours.mount_options, ours.super_options,
                              fstype).satisfied
    if fstype in ("ext4", "btrfs", "squashfs", "erofs"):   # images made with content
        with open(os.path.join(mnt, "hello.txt")) as f:
            assert f.read() == "hello from the image\n"

    ms.umount2(mnt)
    assert mounted(mnt) is None and findmnt(mnt) is None


def test_legacy_mount2_path(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    result = ms.mount_with_options(dev, mnt, "ext4", "ro,noexec", new_api=False)
    assert result["api"] == "mount"
    seen = findmnt(mnt)
    assert seen["vfs-options"].startswith("ro,") and "noexec" in seen["vfs-options"]
    ms.umount2(mnt)


def test_read_only_loop_device_needs_ro(kit):
    dev = kit.attach(kit.image("ext4"), read_only=True)
    mnt = kit.mountpoint()
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(dev, mnt, "ext4")
    assert err.value.errno in (errno.EACCES, errno.EROFS)
    ms.mount_with_options(dev, mnt, "ext4", "ro")
    assert mounted(mnt).read_only
    ms.umount2(mnt)


def test_bind_mount_read_only(kit):
    src = kit.tree
    mnt = kit.mountpoint()
    ms.mount_with_options(src, mnt, None, "bind,ro")
    seen = findmnt(mnt)
    assert seen["vfs-options"].split(",")[0] == "ro"
    with pytest.raises(OSError) as err:
        open(os.path.join(mnt, "new.txt"), "w").close()
    assert err.value.errno == errno.EROFS
    ms.umount2(mnt)


# --- remounting ------------------------------------------------------------

def test_remount_ro_and_back(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_with_options(dev, mnt, "ext4", "noatime")
    now = mounted(mnt)

    diff = ms.compare_options("ro,noatime", now.mount_options, now.super_options, "ext4")
    assert diff.mismatches == ["ro (mounted rw)"]
    ms.apply_remount(mnt, diff)
    seen = findmnt(mnt)
    assert seen["vfs-options"] == "ro,noatime"
    assert seen["fs-options"].split(",")[0] == "ro"
    with pytest.raises(OSError) as err:
        open(os.path.join(mnt, "x"), "w").close()
    assert err.value.errno == errno.EROFS

    now = mounted(mnt)
    diff = ms.compare_options("noatime", now.mount_options, now.super_options, "ext4")
    assert diff.mismatches == ["rw (mounted ro)"]
    ms.apply_remount(mnt, diff)
    assert findmnt(mnt)["vfs-options"] == "rw,noatime"
    open(os.path.join(mnt, "x"), "w").close()
    now = mounted(mnt)
    assert ms.compare_options("noatime", now.mount_options, now.super_options, "ext4").satisfied

    # the same through mount(2) alone, as on kernels without fspick()
    ms.reconfigure(mnt, set_flags=ms.MS_RDONLY, new_api=False)
    assert findmnt(mnt)["vfs-options"] == "ro,noatime"
    assert findmnt(mnt)["fs-options"].split(",")[0] == "ro"
    ms.reconfigure(mnt, clear_flags=ms.MS_RDONLY, new_api=False)
    assert findmnt(mnt)["vfs-options"] == "rw,noatime"
    ms.umount2(mnt)


def test_per_mount_flags_change_with_a_bind_remount_only(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_with_options(dev, mnt, "ext4", "errors=remount-ro")
    now = mounted(mnt)
    diff = ms.compare_options("nosuid,noexec,errors=remount-ro", now.mount_options,
                              now.super_options, "ext4")
    assert not diff.needs_reconfigure and diff.mount_flags is not None
    ms.apply_remount(mnt, diff)
    after = mounted(mnt)
    assert {"nosuid", "noexec", "relatime"} <= set(after.mount_options)
    assert after.super_options == now.super_options
    assert after.mount_id == now.mount_id          # the same mount, changed in place


def test_remount_with_bad_option_reports_the_kernel(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_fs(dev, mnt, "ext4")
    with pytest.raises(DiskImageError) as err:
        ms.reconfigure(mnt, data="commit=notanumber")
    assert err.value.errno == errno.EINVAL
    assert "commit" in str(err.value) and "Kernel:" in str(err.value)
    with pytest.raises(DiskImageError) as err:
        ms.remount(mnt, ms.MS_RDONLY, data="bogusoption")   # mount(2): no message, a hint
    assert err.value.errno == errno.EINVAL


def test_going_read_only_names_the_writer(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_fs(dev, mnt, "ext4")
    writer = ("import sys,time\nf=open(sys.argv[1],'w')\nprint('ok',flush=True)\n"
              "time.sleep(300)\n")
    p = kit.spawn([sys.executable, "-c", writer, os.path.join(mnt, "open-for-write")],
                  stdout=subprocess.PIPE, cwd=str(kit.tmp))
    assert p.stdout.readline() == b"ok\n"
    now = mounted(mnt)
    diff = ms.compare_options("ro", now.mount_options, now.super_options, "ext4")
    with pytest.raises(DiskImageError) as err:
        ms.apply_remount(mnt, diff)
    assert err.value.errno == errno.EBUSY
    assert "pid %d" % p.pid in str(err.value)


# --- the kernel's reasons --------------------------------------------------

@pytest.mark.parametrize("image,fstype,said", [
    ("zero", "squashfs", "Can't find a SQUASHFS superblock"),   # fs_context log
    ("zero", "ext4", "Can't find ext4 filesystem"),              # kernel log
    ("ext4", "xfs", "Invalid superblock magic number"),
    ("zero", "erofs", "cannot find valid erofs superblock"),
])
def test_wrong_filesystem_reports_the_kernel(kit, image, fstype, said):
    if not kernel_has(fstype):
        pytest.skip("kernel lacks %s" % fstype)
    dev = kit.attach(kit.image(image))
    mnt = kit.mountpoint()
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(dev, mnt, fstype)
    assert err.value.errno == errno.EINVAL
    assert said in str(err.value)
    assert "Cannot mount %s on %s (type %s)" % (dev, mnt, fstype) in str(err.value)
    assert mounted(mnt) is None


def test_legacy_path_quotes_the_kernel_log_too(kit):
    dev = kit.attach(kit.image("zero"))
    mnt = kit.mountpoint()
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(dev, mnt, "ext4", new_api=False)
    assert "Can't find ext4 filesystem" in str(err.value)


def test_unknown_option_reports_the_kernel(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    with pytest.raises(DiskImageError) as err:
        ms.mount_with_options(dev, mnt, "ext4", "noatime,bogus_option=1")
    assert "Unknown parameter 'bogus_option'" in str(err.value)


def test_damaged_superblock(kit, tmp_path):
    path = kit.image("ext4")
    with open(path, "r+b") as f:
        f.seek(1024 + 0x300)
        f.write(b"\x55")
    assert fsprobe.probe_path(path)["csum_ok"] is False
    dev = kit.attach(path)
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(dev, kit.mountpoint(), "ext4")
    assert "checksum" in str(err.value)


def test_missing_filesystem_type(kit):
    if kernel_has("vfat"):
        pytest.skip("this kernel has vfat")
    dev = kit.attach(kit.image("vfat"))
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(dev, kit.mountpoint(), "vfat")
    assert err.value.errno == errno.ENODEV
    assert "/proc/filesystems" in str(err.value)


def test_regular_file_as_source(kit):
    with pytest.raises(DiskImageError) as err:
        ms.mount_fs(kit.image("ext4"), kit.mountpoint(), "ext4")
    assert err.value.errno == errno.ENOTBLK
    assert "loop device" in str(err.value)


def test_new_api_is_here():
    assert ms.new_api_available()


# --- unmounting ------------------------------------------------------------

def test_busy_umount_names_the_process_then_lazy_umount(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_fs(dev, mnt, "ext4")
    os.mkdir(os.path.join(mnt, "work"))
    sleeper = kit.spawn(["sleep", "300"], cwd=os.path.join(mnt, "work"))
    time.sleep(0.05)

    with pytest.raises(DiskImageError) as err:
        ms.umount2(mnt)
    assert err.value.errno == errno.EBUSY
    assert "sleep (pid %d: cwd)" % sleeper.pid in str(err.value)
    assert mounted(mnt) is not None

    ms.umount2(mnt, ms.MNT_DETACH)
    assert mounted(mnt) is None and findmnt(mnt) is None
    # detached, yet alive for its user until it lets go
    assert sleeper.poll() is None
    assert os.readlink("/proc/%d/cwd" % sleeper.pid).endswith("work")


def test_busy_umount_names_submounts(kit):
    if not kernel_has("squashfs"):
        pytest.skip("kernel lacks squashfs")
    outer = kit.attach(kit.image("ext4"))
    inner = kit.attach(kit.image("squashfs"))
    mnt = kit.mountpoint()
    ms.mount_fs(outer, mnt, "ext4")
    sub = os.path.join(mnt, "sub")
    os.mkdir(sub)
    ms.mount_fs(inner, sub, "squashfs", ms.MS_RDONLY)
    with pytest.raises(DiskImageError) as err:
        ms.umount2(mnt)
    assert "mounts below it: %s" % sub in str(err.value)
    ms.umount2(sub)
    ms.umount2(mnt)


def test_busy_umount_names_loop_devices_on_it(kit):
    dev = kit.attach(kit.image("ext4"))
    mnt = kit.mountpoint()
    ms.mount_fs(dev, mnt, "ext4")
    nested = os.path.join(mnt, "nested.img")
    with open(nested, "wb") as f:
        f.truncate(MiB)
    inner = kit.attach(nested)
    with pytest.raises(DiskImageError) as err:
        ms.umount2(mnt)
    assert "%s (%s)" % (inner, nested) in str(err.value)
    subprocess.run(["losetup", "-d", inner], check=True)
    ms.umount2(mnt)


def test_umount_of_a_plain_directory(kit):
    with pytest.raises(DiskImageError) as err:
        ms.umount2(kit.mountpoint("plain"))
    assert err.value.errno == errno.EINVAL
    assert "not a mount point" in str(err.value)

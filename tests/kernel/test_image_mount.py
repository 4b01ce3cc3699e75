# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_mount's core on this host's kernel: real images, loop devices and mounts.

findmnt, losetup and util-linux mount are the oracles. Every image, mount point
and fstab file lives in the test's workdir, whose fixture fails the test if a
loop device or a mount is left behind.
"""
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership
from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import write_layout

from .conftest import MiB

pytestmark = pytest.mark.root

FSTYPES = ("ext4", "xfs", "btrfs", "squashfs", "erofs")
# Smallest sizes the mkfs tools accept here; squashfs and erofs size themselves.
FS_SIZES = {"ext4": 16 * MiB, "xfs": 300 * MiB, "btrfs": 128 * MiB}
READ_ONLY_BY_NATURE = ("squashfs", "erofs")


# --- fixtures and helpers ---------------------------------------------------

def kernel_has(fstype):
    with open("/proc/filesystems") as handle:
        return any(line.split()[-1] == fstype for line in handle if line.strip())


def need(fstype):
    tool = {"ext4": "mkfs.ext4", "xfs": "mkfs.xfs", "btrfs": "mkfs.btrfs", "squashfs": "mksquashfs",
            "erofs": "mkfs.erofs"}[fstype]
    if not shutil.which(tool):
        pytest.skip("%s is not installed" % tool)
    if not kernel_has(fstype):
        pytest.skip("this kernel has no %s" % fstype)


def run(*cmd, **kwargs):
    check = kwargs.pop("check", True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          **kwargs)
    if check and proc.returncode:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc


def make_fs(fstype, path, tree, label=None, size=None):
    """A filesystem image of ``fstype`` holding ``tree`` (xfs: empty)."""
    size = size or FS_SIZES.get(fstype)
    if size:
        with open(path, "wb") as handle:
            handle.truncate(size)
    label_args = ["-L", label] if label else []
    if fstype == "ext4":
        run("mkfs.ext4", "-q", "-F", "-d", tree, *(label_args + [path]))
    elif fstype == "xfs":
        run("mkfs.xfs", "-q", "-f", *(label_args + [path]))
    elif fstype == "btrfs":
        run("mkfs.btrfs", "-q", "-f", "--rootdir", tree, *(label_args + [path]))
    elif fstype == "squashfs":
        run("mksquashfs", tree, path, "-quiet", "-noappend")
    elif fstype == "erofs":
        run("mkfs.erofs", "--quiet", path, tree)  # erofs-utils 1.5 has no -L
    return path


def splice(fs_path, image, offset):
    """Copy a filesystem image into a partition, keeping the image sparse."""
    with open(fs_path, "rb") as src, open(image, "r+b") as dst:
        position = 0
        while True:
            chunk = src.read(MiB)
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                os.pwrite(dst.fileno(), chunk, offset + position)
            position += len(chunk)


def partitioned(workdir, name, parts, label="gpt"):
    """A disk image with one partition per (fs image or None, layout entry), in order."""
    total = 4 * MiB + sum(spec["size"] for _fs, spec in parts) + 4 * MiB
    image = str(workdir / name)
    with open(image, "wb") as handle:
        handle.truncate(total)
    layout = {"label": label, "partitions": [dict(spec) for _fs, spec in parts]}
    with open(image, "r+b") as handle:
        table = write_layout(handle, layout, total)
    holding = [p for p in table.partitions if p.kind != "extended"]
    for index, (fs_path, _spec) in enumerate(parts):
        if fs_path:
            splice(fs_path, image, holding[index].start)
    return image, table


def fs_size(path):
    size = os.path.getsize(path)
    return size + (-size) % MiB + MiB


@pytest.fixture
def tree(workdir):
    path = workdir / "tree"
    path.mkdir()
    (path / "hello.txt").write_text("hello from the image\n")
    return str(path)


def tree_saying(workdir, name, text):
    path = workdir / name
    path.mkdir()
    (path / "hello.txt").write_text(text)
    return str(path)


def findmnt(path):
    out = run("findmnt", "--json", "--mountpoint", path, "--output", "TARGET,SOURCE,FSTYPE,VFS-OPTIONS,FS-OPTIONS",
              check=False).stdout
    return json.loads(out)["filesystems"][-1] if out.strip() else None


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def attached(image):
    return loopdev.find_associated(image)


def wait_detached(image, timeout=5.0):
    deadline = time.monotonic() + timeout
    while attached(image) and time.monotonic() < deadline:
        time.sleep(0.05)
    return attached(image)


def plan(state, src, path, **kwargs):
    return mount_state.plan(state, src, str(path), **kwargs)


def apply(state, src, path, **kwargs):
    return plan(state, src, path, **kwargs).apply()


def ensure_unmounted(src, path, **kwargs):
    """Teardown for finally blocks: lazy, so a failed assertion never leaves a mount."""
    try:
        apply("unmounted", src, path, lazy=True, **kwargs)
    except DiskImageError:
        pass


def losetup_by_hand(image, *args):
    return run("losetup", "--find", "--show", *(list(args) + [image])).stdout.strip()


# --- every filesystem, raw and inside a partitioned image ---------------------

def source_for(fstype, workdir, tree, layout):
    fs_path = make_fs(fstype, str(workdir / ("%s.fs" % fstype)), tree, label="data")
    if layout == "raw":
        return fs_path, {}, None
    size = FS_SIZES.get(fstype) or fs_size(fs_path)
    image, table = partitioned(workdir, "disk.img", [(None, {"size": 2 * MiB, "name": "spare"}),
                                                     (fs_path, {"size": size, "name": "data"})])
    return image, {"selector": ("partition", 2)}, table.partition(2)


@pytest.mark.parametrize("layout", ["raw", "partitioned"])
@pytest.mark.parametrize("fstype", FSTYPES)
def test_mount_and_unmount_cycle(workdir, tree, fstype, layout):
    need(fstype)
    src, kwargs, part = source_for(fstype, workdir, tree, layout)
    mnt = workdir / "mnt"

    check = plan("mounted", src, mnt, **kwargs)
    assert check.changed and check.created == {"path": True, "loop_device": True, "mount": True,
                                               "fstab_entry": False}
    assert check.result(True)["device"] is None
    assert not mnt.exists() and attached(src) == []           # check mode did nothing

    done = apply("mounted", src, mnt, **kwargs)
    try:
        result = done.result()
        seen = findmnt(str(mnt))
        assert seen["source"] == result["device"] == result["loop_device"]
        assert seen["fstype"] == result["fstype"] == fstype
        status = loopdev.status(result["loop_device"])
        assert status.autoclear and ownership.owner(status.name) == "image_mount"
        assert (status.offset, status.sizelimit) == ((part.start, part.size) if part else (0, 0))
        read_only = fstype in READ_ONLY_BY_NATURE
        assert status.read_only == read_only == result["read_only"]
        assert seen["vfs-options"].split(",")[0] == ("ro" if read_only else "rw")
        if fstype != "xfs":
            assert (mnt / "hello.txt").read_text() == "hello from the image\n"
        if part is not None:
            assert result["partition"]["number"] == 2 and result["partition"]["filesystem"]["type"] == fstype
        assert result["mount"]["mount_point"] == str(mnt)

        again = plan("mounted", src, mnt, **kwargs)
        assert not again.changed, again.descriptions()
        assert again.result()["device"] == result["device"]

        check = plan("unmounted", src, mnt, **kwargs)
        assert check.descriptions() == ["unmount %s from %s" % (result["device"], mnt),
                                        "detach %s, which image_mount attached" % result["device"]]
        assert findmnt(str(mnt)) is not None                   # still mounted after planning
    finally:
        ensure_unmounted(src, mnt, **kwargs)
    assert findmnt(str(mnt)) is None and wait_detached(src) == []
    assert not plan("unmounted", src, mnt, **kwargs).changed


# --- selectors ------------------------------------------------------------

@pytest.fixture
def three_partitions(workdir):
    """GPT: p1 ext4 'alpha' (linux), p2 ext4 'beta' (home), p3 squashfs (root)."""
    if not kernel_has("squashfs") or not shutil.which("mksquashfs"):
        pytest.skip("needs squashfs")
    fs1 = make_fs("ext4", str(workdir / "p1.fs"), tree_saying(workdir, "t1", "partition 1\n"), label="alpha")
    fs2 = make_fs("ext4", str(workdir / "p2.fs"), tree_saying(workdir, "t2", "partition 2\n"), label="beta")
    fs3 = make_fs("squashfs", str(workdir / "p3.fs"), tree_saying(workdir, "t3", "partition 3\n"))
    image, table = partitioned(workdir, "three.img", [
        (fs1, {"size": 16 * MiB, "name": "first", "type": "linux"}),
        (fs2, {"size": 16 * MiB, "name": "second", "type": "home"}),
        (fs3, {"size": 4 * MiB, "name": "third", "type": "root"})])
    return image, table, fsprobe.probe_path(fs1)["uuid"]


@pytest.mark.parametrize("kind,value,number", [
    ("partition", 2, 2),
    ("partlabel", "third", 3),
    ("partuuid", None, 2),
    ("label", "alpha", 1),
    ("uuid", None, 1),
    ("parttype", "home", 2),
    ("parttype", "root", 3),
    ("parttype", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", 2),
])
def test_every_selector(workdir, three_partitions, kind, value, number):
    image, table, uuid1 = three_partitions
    if kind == "partuuid":
        value = table.partition(2).uuid.upper()          # case does not matter
    if kind == "uuid":
        value = uuid1
    mnt = workdir / "mnt"
    done = apply("mounted", image, mnt, selector=(kind, value))
    try:
        assert done.result()["partition"]["number"] == number
        assert (mnt / "hello.txt").read_text() == "partition %d\n" % number
        assert not plan("mounted", image, mnt, selector=(kind, value)).changed
    finally:
        ensure_unmounted(image, mnt, selector=(kind, value))
    assert wait_detached(image) == []


def test_logical_partition_of_a_dos_table(workdir, tree):
    fs = make_fs("ext4", str(workdir / "p5.fs"), tree, label="logical")
    image, table = partitioned(workdir, "dos.img", [
        (None, {"size": 2 * MiB}), (None, {"size": 2 * MiB}), (None, {"size": 2 * MiB}),
        (None, {"size": 2 * MiB}), (fs, {"size": 16 * MiB})], label="dos")
    assert table.partition(5).kind == "logical" and table.partition(6).kind == "logical"
    part = table.partition(6)
    assert table.partition(6).size == 16 * MiB
    mnt = workdir / "mnt"
    partuuid = "%s-06" % table.disk_id[2:]
    done = apply("mounted", image, mnt, selector=("partuuid", partuuid))
    try:
        status = loopdev.status(done.device)
        assert (status.offset, status.sizelimit) == (part.start, part.size)
        assert (mnt / "hello.txt").read_text() == "hello from the image\n"
        assert not plan("mounted", image, mnt, selector=("partition", 6)).changed
        with pytest.raises(DiskImageError, match="partition 4 is an extended partition"):
            plan("mounted", image, workdir / "other", selector=("partition", 4))
        with pytest.raises(DiskImageError, match="5 partitions have parttype 'linux'"):
            plan("mounted", image, workdir / "other", selector=("parttype", "linux"))
        with pytest.raises(DiskImageError, match="partlabel selects a GPT partition name"):
            plan("mounted", image, workdir / "other", selector=("partlabel", "x"))
    finally:
        ensure_unmounted(image, mnt, selector=("partition", 6))
    assert wait_detached(image) == []


# --- options --------------------------------------------------------------

def test_changed_options_are_a_remount(workdir, tree):
    fs = make_fs("ext4", str(workdir / "a.fs"), tree)
    image, _table = partitioned(workdir, "disk.img", [(fs, {"size": 16 * MiB})])
    mnt = workdir / "mnt"
    sel = {"selector": ("partition", 1)}
    apply("mounted", image, mnt, opts="noatime,data=journal", **sel)
    try:
        first = mountinfo.top_mount_at(str(mnt))
        change = plan("mounted", image, mnt, opts="noatime,nosuid,nodev", **sel)
        assert change.descriptions() == ["remount %s: nosuid (not set), nodev (not set)" % mnt]
        assert change.created == {"path": False, "loop_device": False, "mount": False, "fstab_entry": False}
        change.apply()
        after = mountinfo.top_mount_at(str(mnt))
        assert after.mount_id == first.mount_id                      # changed in place
        assert {"nosuid", "nodev", "noatime"} <= set(findmnt(str(mnt))["vfs-options"].split(","))
        assert change.result()["remounted"] == ["nosuid (not set)", "nodev (not set)"]
        assert not plan("mounted", image, mnt, opts="noatime,nosuid,nodev", **sel).changed

        # dropping options from the task undoes them (mount(8) defaults)
        apply("mounted", image, mnt, opts="noatime", **sel)
        assert not {"nosuid", "nodev"} & set(findmnt(str(mnt))["vfs-options"].split(","))

        # ro on a writable device: remounted, with a warning that the device stays writable
        ro = plan("mounted", image, mnt, opts="noatime", read_only=True, **sel)
        assert ro.descriptions() == ["remount %s: ro (mounted rw)" % mnt]
        ro.apply()
        assert findmnt(str(mnt))["vfs-options"].startswith("ro,")
        assert any("stays writable" in w for w in ro.warnings)
        apply("mounted", image, mnt, opts="noatime", **sel)
        assert findmnt(str(mnt))["vfs-options"].startswith("rw,")

        # a filesystem option the kernel refuses to change: its reason, and the mount is unchanged
        with pytest.raises(DiskImageError, match="Cannot reconfigure .*does not change data=ordered"):
            apply("mounted", image, mnt, opts="noatime,data=ordered", **sel)
        now = mountinfo.top_mount_at(str(mnt))
        assert now.mount_id == first.mount_id and "data=journal" in now.super_options
    finally:
        ensure_unmounted(image, mnt, **sel)


def test_read_write_on_a_read_only_device_is_refused(workdir, tree):
    image = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    apply("mounted", image, mnt, read_only=True)
    try:
        with pytest.raises(DiskImageError, match="read-only device .* cannot be remounted read-write"):
            plan("mounted", image, mnt)
        assert not plan("mounted", image, mnt, opts="ro").changed
    finally:
        ensure_unmounted(image, mnt)


@pytest.mark.parametrize("layout", ["raw", "partitioned"])
def test_read_only_leaves_the_image_unchanged(workdir, tree, layout):
    src, kwargs, _part = source_for("ext4", workdir, tree, layout)
    before = sha256(src)
    mnt = workdir / "mnt"
    done = apply("mounted", src, mnt, read_only=True, **kwargs)
    try:
        assert loopdev.status(done.loop_device).read_only
        seen = findmnt(str(mnt))
        assert seen["vfs-options"].startswith("ro,") and seen["fs-options"].startswith("ro")
        assert (mnt / "hello.txt").read_text() == "hello from the image\n"
        with pytest.raises(OSError) as err:
            (mnt / "new.txt").write_text("x")
        assert err.value.errno == errno.EROFS
    finally:
        ensure_unmounted(src, mnt, **kwargs)
    assert wait_detached(src) == []
    assert sha256(src) == before


# --- fstab ----------------------------------------------------------------

@pytest.mark.parametrize("case", ["raw-ext4", "partition-ext4", "partition-squashfs"])
def test_fstab_entry_is_what_mount_acts_on(workdir, tree, case):
    fstype = case.split("-")[1]
    need(fstype)
    src, kwargs, part = source_for(fstype, workdir, tree, case.split("-")[0].replace("partition", "partitioned"))
    fstab = str(workdir / "fstab")
    with open(fstab, "w") as handle:
        handle.write("# kept as it is\n/dev/nonexistent /elsewhere ext4 defaults 0 2\n")
    before = open(fstab).read()
    mnt = workdir / "mnt"

    check = plan("present", src, mnt, fstab=fstab, opts="noatime", **kwargs)
    words = (["loop"] + (["offset=%d" % part.start, "sizelimit=%d" % part.size] if part else [])
             + (["ro"] if fstype == "squashfs" else []) + ["noatime"])
    line = "%s %s %s %s 0 0" % (src, mnt, fstype, ",".join(words))
    assert check.changed and check.diff() == {"before": {"mount": None, "fstab": None},
                                              "after": {"mount": None, "fstab": line}}
    assert open(fstab).read() == before and not mnt.exists()

    done = plan("present", src, mnt, fstab=fstab, opts="noatime", **kwargs).apply()
    assert done.result()["created"]["path"] and done.result()["created"]["fstab_entry"]
    assert open(fstab).read() == before + line + "\n"
    assert not plan("present", src, mnt, fstab=fstab, opts="noatime", **kwargs).changed
    assert findmnt(str(mnt)) is None                           # present mounts nothing

    run("mount", "--fstab", fstab, "--target", str(mnt))       # util-linux acts on the entry by itself
    try:
        seen = findmnt(str(mnt))
        assert seen["fstype"] == fstype and "noatime" in seen["vfs-options"]
        assert (mnt / "hello.txt").read_text() == "hello from the image\n"
        # what mount(8) set up is recognized as this very source: nothing to do
        same = plan("mounted", src, mnt, fstab=fstab, opts="noatime", **kwargs)
        assert not same.changed, same.descriptions()
    finally:
        run("umount", str(mnt), check=False)
        for device in attached(src):
            run("losetup", "-d", device.device, check=False)
    assert wait_detached(src) == []

    gone = plan("absent", src, mnt, fstab=fstab, **kwargs)
    assert gone.descriptions() == ["remove the entry for %s from %s" % (mnt, fstab),
                                   "remove the mount point %s if it is empty" % mnt]
    gone.apply()
    assert open(fstab).read() == before and not mnt.exists()
    assert not plan("absent", src, mnt, fstab=fstab, **kwargs).changed


def test_mounted_with_fstab_writes_both_and_absent_undoes_both(workdir, tree):
    image = make_fs("ext4", str(workdir / "a.img"), tree)
    fstab = str(workdir / "fstab")
    mnt = workdir / "mnt"
    done = apply("mounted", image, mnt, fstab=fstab)
    try:
        assert open(fstab).read() == "%s %s ext4 loop 0 0\n" % (image, mnt)
        assert done.result()["created"] == {"path": True, "loop_device": True, "mount": True, "fstab_entry": True}
        assert not plan("mounted", image, mnt, fstab=fstab).changed
        with open(fstab + ".other", "w") as handle:
            handle.write("%s %s ext4 loop 0 0\n" % (workdir / "b.img", mnt))
        with pytest.raises(DiskImageError, match="has an entry for %s that mounts something else" % mnt):
            plan("absent", image, mnt, fstab=fstab + ".other")
        check = plan("absent", image, mnt, fstab=fstab)
        check_result = check.result(True)
        assert check_result["detached"] == [done.device] and findmnt(str(mnt)) is not None
        check.apply()
        assert findmnt(str(mnt)) is None and open(fstab).read() == "" and not mnt.exists()
        assert check.result()["removed_path"]
    finally:
        ensure_unmounted(image, mnt)
    assert wait_detached(image) == []


# --- what others made -----------------------------------------------------

@pytest.mark.parametrize("how", ["raw", "offset+sizelimit", "offset only"])
def test_interop_with_mount_o_loop(workdir, tree, how):
    if how == "raw":
        src = make_fs("ext4", str(workdir / "a.img"), tree)
        kwargs, loop_opts = {}, "loop"
    else:
        fs = make_fs("ext4", str(workdir / "a.fs"), tree)
        src, table = partitioned(workdir, "disk.img", [(None, {"size": 2 * MiB}), (fs, {"size": 16 * MiB})])
        part = table.partition(2)
        kwargs = {"selector": ("partition", 2)}
        loop_opts = "loop,offset=%d" % part.start + (",sizelimit=%d" % part.size if "sizelimit" in how else "")
    mnt = workdir / "mnt"
    mnt.mkdir()
    run("mount", "-o", loop_opts, src, str(mnt))
    try:
        device = findmnt(str(mnt))["source"]
        same = plan("mounted", src, mnt, **kwargs)
        assert not same.changed, same.descriptions()
        assert same.result()["loop_device"] == device or same.result()["device"] == device
        down = plan("unmounted", src, mnt, **kwargs)
        assert down.descriptions() == ["unmount %s from %s" % (device, mnt)]   # not ours to detach
        down.apply()
        assert findmnt(str(mnt)) is None
        assert wait_detached(src) == []                        # mount's autoclear released it
    finally:
        run("umount", str(mnt), check=False)


def test_a_hand_attached_device_is_reused_and_left_attached(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    device = losetup_by_hand(src)
    mnt = workdir / "mnt"
    try:
        done = apply("mounted", src, mnt)
        assert done.device == device and not done.created["loop_device"]
        assert not loopdev.status(device).autoclear              # not ours to change
        down = apply("unmounted", src, mnt)
        assert down.detached == [] and loopdev.status(device) is not None
    finally:
        ensure_unmounted(src, mnt)
        run("losetup", "-d", device, check=False)


def test_partition_devices_of_image_partitions_are_reused(workdir, tree):
    fs = make_fs("ext4", str(workdir / "a.fs"), tree)
    image, _table = partitioned(workdir, "disk.img", [(None, {"size": 2 * MiB}), (fs, {"size": 16 * MiB})])
    parts = partitions_state.plan_present(image, backend="partscan").apply()
    mnt = workdir / "mnt"
    try:
        done = apply("mounted", image, mnt, selector=("partition", 2))
        assert done.mapped_device == parts.device + "p2" == findmnt(str(mnt))["source"]
        assert done.loop_device == parts.device and not done.created["loop_device"]
        down = apply("unmounted", image, mnt, selector=("partition", 2))
        assert down.detached == [] and loopdev.status(parts.device) is not None
    finally:
        ensure_unmounted(image, mnt, selector=("partition", 2))
        partitions_state.plan_absent(image).apply()


def test_a_second_mount_point_shares_the_device(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    one, two = workdir / "one", workdir / "two"
    first = apply("mounted", src, one)
    try:
        second = apply("mounted", src, two)
        assert second.device == first.device and not second.created["loop_device"]
        assert len(attached(src)) == 1
        with pytest.raises(DiskImageError, match="mounted read-write at %s" % one):
            plan("mounted", src, workdir / "three", read_only=True)
        down = apply("unmounted", src, two)
        assert down.detached == [] and loopdev.status(first.device) is not None
        down = apply("unmounted", src, one)
        assert down.detached == [first.device]
    finally:
        ensure_unmounted(src, two)
        ensure_unmounted(src, one)
    assert wait_detached(src) == []


# --- busy, wrong source ----------------------------------------------------

def test_busy_unmount_names_the_process_then_lazy(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    done = apply("mounted", src, mnt)
    sleeper = None
    try:
        (mnt / "work").mkdir()
        sleeper = subprocess.Popen(["sleep", "300"], cwd=str(mnt / "work"))
        time.sleep(0.05)
        with pytest.raises(DiskImageError) as err:
            plan("unmounted", src, mnt)
        assert err.value.errno == errno.EBUSY
        assert "sleep (pid %d: cwd)" % sleeper.pid in str(err.value) and "lazy: true" in str(err.value)
        assert findmnt(str(mnt)) is not None

        lazy = apply("unmounted", src, mnt, lazy=True)
        assert findmnt(str(mnt)) is None
        assert lazy.pending == [done.device] and lazy.detached == []
        assert loopdev.status(done.device) is not None          # still serving the sleeper
        sleeper.kill()
        sleeper.wait()
        sleeper = None
        assert wait_detached(src) == []                         # autoclear let it go
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        ensure_unmounted(src, mnt)
    assert wait_detached(src) == []


def test_a_different_source_at_path_is_named_and_left_alone(workdir, tree):
    mine = make_fs("ext4", str(workdir / "mine.img"), tree)
    other = make_fs("ext4", str(workdir / "other.img"), tree)
    mnt = workdir / "mnt"
    apply("mounted", other, mnt)
    try:
        for state in ("mounted", "unmounted", "absent"):
            with pytest.raises(DiskImageError) as err:
                plan(state, mine, mnt, fstab=str(workdir / "fstab"))
            assert "already has /dev/loop" in str(err.value) and other in str(err.value)
            assert "not %s" % mine in str(err.value)
        assert attached(mine) == [] and findmnt(str(mnt)) is not None
    finally:
        ensure_unmounted(other, mnt)

    (workdir / "tmp").mkdir()
    run("mount", "-t", "tmpfs", "tmpfs", str(workdir / "tmp"))
    try:
        with pytest.raises(DiskImageError, match="already has tmpfs mounted"):
            plan("mounted", mine, workdir / "tmp")
    finally:
        run("umount", str(workdir / "tmp"))
    assert wait_detached(other) == []


# --- bad input: a clear error, and nothing left behind -------------------------

def _corrupt(path):
    with open(path, "r+b") as handle:
        handle.seek(1024 + 0x38)                               # the ext4 magic
        handle.write(b"\0\0")
    return path


@pytest.mark.parametrize("case", [
    "missing image", "path is a file", "symlinked path", "raw image with a selector",
    "partitioned without a selector", "selector matches nothing", "selector matches several",
    "loop in opts", "read_only and rw", "no filesystem", "path below a file",
])
def test_bad_input_is_refused_before_anything(workdir, tree, case):
    image = make_fs("ext4", str(workdir / "a.img"), tree)
    fs = make_fs("ext4", str(workdir / "p.fs"), tree, label="p")
    disk, _table = partitioned(workdir, "disk.img", [(fs, {"size": 16 * MiB}), (fs, {"size": 16 * MiB})])
    mnt = workdir / "mnt"
    src, kwargs = image, {}
    if case == "missing image":
        src, fragment = str(workdir / "missing.img"), "src %s does not exist" % (workdir / "missing.img")
    elif case == "path is a file":
        mnt.write_text("")
        fragment = "path %s is a file, not a directory; refusing to mount over it" % mnt
    elif case == "symlinked path":
        (workdir / "real").mkdir()
        os.symlink(str(workdir / "real"), str(mnt))
        fragment = "goes through the symlink %s -> %s" % (mnt, workdir / "real")
    elif case == "raw image with a selector":
        kwargs, fragment = {"selector": ("partition", 1)}, "has no partition table, so partition cannot select"
    elif case == "partitioned without a selector":
        src, fragment = disk, "holds a gpt partition table, not a filesystem: 1: linux"
    elif case == "selector matches nothing":
        src, kwargs = disk, {"selector": ("label", "nope")}
        fragment = "no partition has label 'nope'; the gpt table has: 1: linux"
    elif case == "selector matches several":
        src, kwargs, fragment = disk, {"selector": ("label", "p")}, "2 partitions have label 'p'"
    elif case == "loop in opts":
        kwargs, fragment = {"opts": "loop,offset=4096"}, "opts must not contain 'loop'"
    elif case == "read_only and rw":
        kwargs, fragment = {"opts": "rw", "read_only": True}, "opts say rw, and read_only is true"
    elif case == "no filesystem":
        src = str(workdir / "zero.img")
        with open(src, "wb") as handle:
            handle.truncate(8 * MiB)
        fragment = "no filesystem was recognized in %s" % src
    elif case == "path below a file":
        (workdir / "afile").write_text("")
        mnt = workdir / "afile" / "mnt"
        fragment = "is not a directory"
    existed = os.path.lexists(str(mnt))
    with pytest.raises(DiskImageError) as err:
        plan("mounted", src, mnt, **kwargs)
    assert fragment in str(err.value)
    assert attached(image) == [] and attached(disk) == []
    assert os.path.lexists(str(mnt)) == existed and findmnt(str(mnt)) is None


def test_symlinked_path_when_asked(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    (workdir / "real").mkdir()
    link = workdir / "link"
    os.symlink(str(workdir / "real"), str(link))
    done = apply("mounted", src, link, follow_symlinks=True)
    try:
        assert done.result()["path"] == str(workdir / "real")
        assert done.result()["path_resolved_from"] == str(link) and done.warnings
        assert findmnt(str(workdir / "real")) is not None
    finally:
        ensure_unmounted(src, link, follow_symlinks=True)
    assert wait_detached(src) == []


@pytest.mark.parametrize("case,fragment", [
    ("unknown fstype", "(ENODEV)"),
    ("wrong fstype", "Invalid superblock magic number"),
    ("corrupt superblock", "Can't find ext4 filesystem"),
])
def test_a_failing_mount_rolls_back(workdir, tree, case, fragment):
    fs = make_fs("ext4", str(workdir / "a.fs"), tree)
    image, _table = partitioned(workdir, "disk.img", [(fs, {"size": 16 * MiB})])
    if case == "corrupt superblock":
        _corrupt(fs)
        splice(fs, image, _table.partition(1).start)
    fstype = {"unknown fstype": "nosuchfs", "wrong fstype": "xfs", "corrupt superblock": "ext4"}[case]
    mnt = workdir / "deep" / "mnt"
    todo = plan("mounted", image, mnt, selector=("partition", 1), fstype=fstype, fstab=str(workdir / "fstab"))
    assert todo.created["path"] and todo.created["loop_device"]
    with pytest.raises(DiskImageError) as err:
        todo.apply()
    assert fragment in str(err.value)
    assert attached(image) == []                               # the loop device went again
    assert not (workdir / "deep").exists()                     # and the directories this run made
    assert not os.path.exists(str(workdir / "fstab"))          # the fstab step never ran


def test_the_kernel_reason_for_a_corrupt_raw_image(workdir, tree):
    image = _corrupt(make_fs("ext4", str(workdir / "a.img"), tree))
    with pytest.raises(DiskImageError, match="no filesystem was recognized"):
        plan("mounted", image, workdir / "mnt")
    with pytest.raises(DiskImageError, match="Can't find ext4 filesystem"):
        apply("mounted", image, workdir / "mnt", fstype="ext4")
    assert attached(image) == [] and not (workdir / "mnt").exists()


def test_unmounted_and_absent_of_nothing_change_nothing(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    assert not plan("unmounted", src, mnt).changed
    assert not plan("unmounted", str(workdir / "gone.img"), mnt).changed
    assert not plan("absent", str(workdir / "gone.img"), mnt, fstab=str(workdir / "fstab")).changed
    mnt.mkdir()
    absent = plan("absent", src, mnt, fstab=str(workdir / "fstab"))
    assert absent.descriptions() == ["remove the mount point %s if it is empty" % mnt]


def test_leftover_device_of_ours_is_detached_by_unmounted(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    status = loopdev.attach(src)
    ownership.claim(status.name, "image_mount")
    try:
        down = plan("unmounted", src, workdir / "mnt")
        assert down.descriptions() == ["detach %s, which image_mount attached" % status.device]
        down.apply()
        assert attached(src) == []
    finally:
        if loopdev.status(status.number) is not None:
            loopdev.detach(status.device)


# --- by path alone (like umount PATH) --------------------------------------------

def unmount_by_path(path, **kwargs):
    return plan("unmounted", None, path, **kwargs).apply()


@pytest.mark.parametrize("how", ["image_mount", "mount -o loop", "losetup by hand", "partition device", "tmpfs"])
def test_unmounted_by_path_alone(workdir, tree, how):
    """Whatever is mounted at the path comes down; only a loop device image_mount
    attached is detached by it, one with autoclear goes by itself, any other stays."""
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    hand_device = parts = None
    if how == "image_mount":
        device = apply("mounted", src, mnt).device
    elif how == "mount -o loop":
        mnt.mkdir()
        run("mount", "-o", "loop", src, str(mnt))
        device = findmnt(str(mnt))["source"]
    elif how == "losetup by hand":
        hand_device = device = losetup_by_hand(src)
        mnt.mkdir()
        run("mount", device, str(mnt))
    elif how == "partition device":
        fs = make_fs("ext4", str(workdir / "p.fs"), tree)
        src, _table = partitioned(workdir, "disk.img", [(None, {"size": 2 * MiB}), (fs, {"size": 16 * MiB})])
        parts = partitions_state.plan_present(src, backend="partscan").apply()
        device = apply("mounted", src, mnt, selector=("partition", 2)).device
        assert device == parts.device + "p2"
    else:
        mnt.mkdir()
        run("mount", "-t", "tmpfs", "-o", "size=1m", "scratch", str(mnt))
        device = "scratch"
    try:
        check = plan("unmounted", None, mnt)
        ours = how == "image_mount"
        assert check.descriptions() == ["unmount %s from %s" % (device, mnt)] + (
            ["detach %s, which image_mount attached" % device] if ours else [])
        result = check.result(check_mode=True)
        assert result["device"] == device and result["fstype"] == ("tmpfs" if how == "tmpfs" else "ext4")
        assert result["src"] == (src if how != "tmpfs" else "scratch")
        assert result["loop_device"] == (None if how == "tmpfs" else parts.device if parts else device)
        assert result["mapped_device"] == (device if parts else None)
        assert findmnt(str(mnt)) is not None                       # planning changed nothing

        down = check.apply()
        assert findmnt(str(mnt)) is None and mnt.is_dir()
        assert down.unmounted == [check.mount_before] and down.detached == (
            [device] if ours else [])
        assert not plan("unmounted", None, mnt).changed
        if hand_device:
            assert loopdev.status(hand_device) is not None and not loopdev.status(hand_device).autoclear
        elif parts:
            assert loopdev.status(parts.device) is not None      # image_partitions' device stays
        elif how != "tmpfs":
            assert wait_detached(src) == []                        # ours detached, or autoclear
    finally:
        if findmnt(str(mnt)):
            run("umount", "-l", str(mnt), check=False)
        if hand_device:
            run("losetup", "-d", hand_device, check=False)
        if parts:
            partitions_state.plan_absent(src).apply()
    assert wait_detached(src) == []


def test_by_path_alone_every_mount_stacked_there_comes_down(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    first = apply("mounted", src, mnt)
    run("mount", "-t", "tmpfs", "-o", "size=1m", "above", str(mnt))
    try:
        # with src, the tmpfs on top is not the source: refused, nothing touched
        with pytest.raises(DiskImageError, match=r"already has above mounted \(type tmpfs\), not %s" % src):
            plan("unmounted", src, mnt)
        # fstype is checked against every mount in the stack
        with pytest.raises(DiskImageError, match="has %s mounted as ext4, not tmpfs" % first.device):
            plan("unmounted", None, mnt, fstype="tmpfs")
        down = plan("unmounted", None, mnt)
        assert down.descriptions() == ["unmount above from %s" % mnt, "unmount %s from %s" % (first.device, mnt),
                                       "detach %s, which image_mount attached" % first.device]
        down.apply()
        assert findmnt(str(mnt)) is None and not plan("unmounted", None, mnt).changed
    finally:
        while findmnt(str(mnt)):
            run("umount", "-l", str(mnt))
    assert wait_detached(src) == []


def test_absent_by_path_alone(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    fstab = str(workdir / "fstab")
    with open(fstab, "w") as handle:
        handle.write("# kept\n")
    done = apply("mounted", src, mnt, fstab=fstab)
    line = "%s %s ext4 loop 0 0" % (src, mnt)
    try:
        gone = plan("absent", None, mnt, fstab=fstab)
        assert gone.descriptions() == ["unmount %s from %s" % (done.device, mnt),
                                       "detach %s, which image_mount attached" % done.device,
                                       "remove the entry for %s from %s" % (mnt, fstab),
                                       "remove the mount point %s if it is empty" % mnt]
        assert gone.diff() == {"before": {"mount": gone.mount_before, "fstab": line},
                               "after": {"mount": None, "fstab": None}}
        gone.apply()
        assert findmnt(str(mnt)) is None and not mnt.exists() and gone.removed_path
        assert open(fstab).read() == "# kept\n" and gone.detached == [done.device]
        assert not plan("absent", None, mnt, fstab=fstab).changed
    finally:
        ensure_unmounted(src, mnt)
    assert wait_detached(src) == []


def test_busy_by_path_alone_then_lazy(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt = workdir / "mnt"
    done = apply("mounted", src, mnt)
    sleeper = subprocess.Popen(["sleep", "300"], cwd=str(mnt))
    try:
        time.sleep(0.05)
        with pytest.raises(DiskImageError, match=r"is busy: used by processes sleep \(pid %d: cwd\)" % sleeper.pid):
            plan("unmounted", None, mnt)
        lazy = unmount_by_path(mnt, lazy=True)
        assert findmnt(str(mnt)) is None and lazy.pending == [done.device] and lazy.detached == []
    finally:
        sleeper.kill()
        sleeper.wait()
        ensure_unmounted(src, mnt)
    assert wait_detached(src) == []


def test_by_path_alone_a_loop_device_of_ours_mounted_elsewhere_stays(workdir, tree):
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    one, two = workdir / "one", workdir / "two"
    first = apply("mounted", src, one)
    apply("mounted", src, two)
    try:
        down = unmount_by_path(two)
        assert down.detached == [] and findmnt(str(one)) is not None
        down = unmount_by_path(one)
        assert down.detached == [first.device]
    finally:
        ensure_unmounted(src, two)
        ensure_unmounted(src, one)
    assert wait_detached(src) == []


def test_system_mount_points_are_refused_by_path_alone(workdir):
    for path in ("/", "/proc", "/sys", "/dev", "/usr", "/tmp", "/run"):
        for state in ("unmounted", "absent"):
            with pytest.raises(DiskImageError, match="refusing to unmount %s with only path given" % path):
                plan(state, None, path, fstab=str(workdir / "fstab"))
    if os.path.ismount("/sys/kernel/security"):
        with pytest.raises(DiskImageError, match="a kernel interface the system needs"):
            plan("unmounted", None, "/sys/kernel/security")


# --- the result: the same keys in check mode and in a run ---------------------------

def run_module(check_mode=False, **args):
    """Run the image_mount module itself, as Ansible would, and return its JSON."""
    root = [p for p in sys.path if os.path.isdir(os.path.join(p, "ansible_collections", "diskimage", "loop"))][0]
    params = dict((key, value) for key, value in args.items() if value is not None)
    params.update(_ansible_check_mode=check_mode, _ansible_diff=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
        handle.flush()
        proc = run(sys.executable, "-m", "ansible_collections.diskimage.loop.plugins.modules.image_mount",
                   handle.name, env=dict(os.environ, PYTHONPATH=root), check=False)
    result = json.loads(proc.stdout)
    assert not result.get("failed"), result
    return result


def _scenario(name, src, mnt, fstab):
    """Set up what the state acts on; return the module's arguments."""
    if name in ("mounted, remount", "unmounted", "absent", "unmounted by path", "absent by path"):
        apply("mounted", src, mnt, fstab=fstab if "absent" in name else None)
    state = name.split(",")[0].split(" ")[0]
    args = {"state": state, "path": str(mnt), "src": None if "by path" in name else src}
    if state in ("present", "absent") or name == "mounted, with fstab":
        args["fstab"] = fstab
    if name == "mounted, remount":
        args["opts"] = "noatime,nodev"
    return args


@pytest.mark.parametrize("name", ["mounted", "mounted, with fstab", "mounted, remount", "present", "unmounted",
                                  "absent", "unmounted by path", "absent by path"])
def test_check_mode_and_a_run_return_the_same_keys(workdir, tree, name):
    """What the module returns for every state: the same keys whether it ran in
    check mode or not, and a diff with the mount and the fstab line before and
    after. The mount point exists in one and not the other for mounted (made)
    and absent (removed), so Ansible's file facts of a path must not leak in."""
    src = make_fs("ext4", str(workdir / "a.img"), tree)
    mnt, fstab = workdir / "mnt", str(workdir / "fstab")
    args = _scenario(name, src, mnt, fstab)
    try:
        check = run_module(check_mode=True, **args)
        run_ = run_module(**args)
        assert check["changed"] and run_["changed"], (check["actions"], run_["actions"])
        assert set(check) == set(run_), set(check) ^ set(run_)
        assert check["actions"] == run_["actions"]
        assert set(check["created"]) == set(run_["created"]) == {"path", "loop_device", "mount", "fstab_entry"}
        for result in (check, run_):
            assert set(result["diff"]) == {"before", "after"}
            assert set(result["diff"]["before"]) == set(result["diff"]["after"]) == {"mount", "fstab"}
        assert check["diff"] == run_["diff"]                       # the diff is planned, not observed
        managed = "fstab" in args
        assert (run_["diff"]["after"]["fstab"] is not None) == (managed and args["state"] in ("mounted", "present"))
        if args["state"] == "absent":
            assert run_["diff"]["before"]["fstab"] == "%s %s ext4 loop 0 0" % (src, mnt)
        if args["state"] == "mounted":
            assert run_["diff"]["after"]["mount"] and run_["mount"]["mount_point"] == str(mnt)
            assert check["mount"] is None
        if args["state"] in ("unmounted", "absent"):
            assert run_["diff"]["before"]["mount"] and run_["diff"]["after"]["mount"] is None
            assert run_["detached"] == check["detached"] and run_["detached"]
            assert run_["src"] == check["src"] == src
        again = run_module(**args)
        assert not again["changed"] and set(again) == set(run_)
        assert again["diff"]["before"] == again["diff"]["after"]
        assert set(run_module(check_mode=True, **args)) == set(again)
    finally:
        ensure_unmounted(src, mnt)
    assert wait_detached(src) == []

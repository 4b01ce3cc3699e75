# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_mount where the host kernel cannot go: ISO 9660, vfat, and device-mapper.

An ISO made with xorriso is mounted read-only and left byte for byte unchanged; the
ESP of a GPT image is found by its Discoverable Partitions type; and a partition
mapped with device-mapper (image_partitions' dm backend, kpartx-compatible) is
mounted through that map, found by the selector or named directly.
"""

import hashlib
import json
import os
import shutil

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from vm_helpers import MIB, bound_loops, run, wait_for

pytestmark = pytest.mark.vm

ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def need(*tools):
    for tool in tools:
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def findmnt(path):
    out = run("findmnt", "--json", "--mountpoint", path, "--output", "SOURCE,FSTYPE,VFS-OPTIONS", check=False).stdout
    return json.loads(out)["filesystems"][-1] if out.strip() else None


def unmount_quietly(src, path, **kwargs):
    """For finally blocks: whatever a failed assertion left mounted goes, lazily."""
    try:
        mount_state.plan("unmounted", src, path, lazy=True, **kwargs).apply()
    except DiskImageError:
        pass


def tree(directory, text):
    os.makedirs(directory)
    with open(os.path.join(directory, "hello.txt"), "w") as handle:
        handle.write(text)
    return directory


def splice(fs_path, image, offset):
    with open(fs_path, "rb") as src, open(image, "r+b") as dst:
        dst.seek(offset)
        shutil.copyfileobj(src, dst)


def partition_start(image, number):
    table = json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]
    entry = [p for p in table["partitions"] if p["node"].endswith(str(number))][0]
    return entry["start"] * 512, entry["size"] * 512


def test_iso_is_mounted_read_only_and_left_unchanged(scratch, tmp_path):
    need("xorriso")
    iso = str(tmp_path / "cd.iso")
    run("xorriso", "-as", "mkisofs", "-quiet", "-V", "DISKIMAGE", "-o", iso,
        tree(str(tmp_path / "tree"), "hello from the ISO\n"))
    before = sha256(iso)
    mnt = str(tmp_path / "cdrom")

    check = mount_state.plan("mounted", iso, mnt)
    assert check.changed and check.created["loop_device"] and check.read_only
    assert loopdev.find_associated(iso) == [] and not os.path.exists(mnt)

    done = check.apply()
    try:
        result = done.result()
        assert result["fstype"] == "iso9660" and result["read_only"] and result["opts"] == "ro"
        assert loopdev.status(result["loop_device"]).read_only
        seen = findmnt(mnt)
        assert seen["fstype"] == "iso9660" and seen["vfs-options"].startswith("ro,")
        with open(os.path.join(mnt, "hello.txt")) as handle:
            assert handle.read() == "hello from the ISO\n"
        assert not mount_state.plan("mounted", iso, mnt).changed
        down = mount_state.plan("unmounted", iso, mnt).apply()
        assert down.detached == [result["loop_device"]]
        assert not mount_state.plan("unmounted", iso, mnt).changed
    finally:
        unmount_quietly(iso, mnt)
    assert findmnt(mnt) is None and loopdev.find_associated(iso) == []
    assert sha256(iso) == before


def test_iso_fstab_entry_is_what_mount_acts_on(scratch, tmp_path):
    need("xorriso")
    iso = str(tmp_path / "cd.iso")
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, tree(str(tmp_path / "tree"), "hello\n"))
    before = sha256(iso)
    fstab = str(tmp_path / "fstab")
    mnt = str(tmp_path / "cdrom")
    present = mount_state.plan("present", iso, mnt, fstab=fstab).apply()
    assert present.fstab_line_after == "%s %s iso9660 loop,ro 0 0" % (iso, mnt)
    assert not mount_state.plan("present", iso, mnt, fstab=fstab).changed
    run("mount", "--fstab", fstab, "--target", mnt)
    try:
        assert findmnt(mnt)["vfs-options"].startswith("ro,")
        assert not mount_state.plan("mounted", iso, mnt, fstab=fstab).changed   # mount(8)'s is the same source
        gone = mount_state.plan("absent", iso, mnt, fstab=fstab).apply()
        assert gone.removed_path and gone.unmounted
    finally:
        run("umount", mnt, check=False)
    wait_for(lambda: not loopdev.find_associated(iso), what="mount's loop device to go")
    with open(fstab) as handle:
        assert handle.read() == ""
    assert sha256(iso) == before


def test_vfat_esp_inside_a_gpt_image_by_parttype(scratch, tmp_path):
    need("sfdisk", "mkfs.vfat")
    image = scratch.image("uefi.img", 64 * MIB,
                          "label: gpt\nsize=32MiB, type=%s, name=ESP\ntype=%s, name=root\n" % (ESP_GUID, LINUX_GUID))
    start, size = partition_start(image, 1)
    fat = str(tmp_path / "esp.fat")
    with open(fat, "wb") as handle:
        handle.truncate(size)
    run("mkfs.vfat", "-n", "EFI", fat)
    splice(fat, image, start)
    mnt = str(tmp_path / "esp")
    done = mount_state.plan("mounted", image, mnt, selector=("parttype", "esp")).apply()
    try:
        result = done.result()
        assert result["partition"]["number"] == 1 and result["partition"]["type_alias"] == "esp"
        assert result["fstype"] == "vfat" and not result["read_only"]
        status = loopdev.status(result["loop_device"])
        assert (status.offset, status.sizelimit) == (start, size)
        assert findmnt(mnt)["fstype"] == "vfat"
        with open(os.path.join(mnt, "hello.txt"), "w") as handle:
            handle.write("written through the ESP\n")
        assert not mount_state.plan("mounted", image, mnt, selector=("label", "EFI")).changed
        mount_state.plan("unmounted", image, mnt, selector=("parttype", "esp")).apply()

        # read back through a read-only mount: the write reached the image
        before = sha256(image)
        mount_state.plan("mounted", image, mnt, selector=("partlabel", "ESP"), read_only=True).apply()
        with open(os.path.join(mnt, "hello.txt")) as handle:
            assert handle.read() == "written through the ESP\n"
        mount_state.plan("unmounted", image, mnt, selector=("partlabel", "ESP")).apply()
        assert sha256(image) == before
    finally:
        unmount_quietly(image, mnt, selector=("parttype", "esp"))
    assert findmnt(mnt) is None


def test_mount_over_a_device_mapper_partition(scratch, tmp_path):
    need("sfdisk", "mkfs.ext4")
    image = scratch.image("disk.img", 48 * MIB, "label: dos\nsize=8MiB, type=83\ntype=83\n")
    start, size = partition_start(image, 2)
    fs = str(tmp_path / "p2.fs")
    with open(fs, "wb") as handle:
        handle.truncate(size)
    run("mkfs.ext4", "-q", "-F", "-L", "mapped", "-d", tree(str(tmp_path / "tree"), "hello from a map\n"), fs)
    splice(fs, image, start)

    parts = partitions_state.plan_present(image, backend="dm").apply()
    loops_before = bound_loops()
    mnt = str(tmp_path / "mnt")
    mapped = "/dev/mapper/%sp2" % os.path.basename(parts.device)
    try:
        assert parts.backend == "dm"
        wait_for(lambda: os.path.exists(mapped), what=mapped)

        # the selector finds the map and mounts it: no loop device of its own
        check = mount_state.plan("mounted", image, mnt, selector=("label", "mapped"))
        assert check.descriptions() == ["create the mount point %s" % mnt, "mount %s (%s partition 2) on %s as ext4 "
                                        "with defaults" % (mapped, image, mnt)]
        assert not os.path.exists(mnt)
        done = check.apply()
        result = done.result()
        assert result["mapped_device"] == result["device"] == mapped
        assert result["loop_device"] == parts.device and not result["created"]["loop_device"]
        assert bound_loops() == loops_before
        with open(os.path.join(mnt, "hello.txt")) as handle:
            assert handle.read() == "hello from a map\n"
        assert not mount_state.plan("mounted", image, mnt, selector=("partition", 2)).changed
        # the map named directly is the same source
        assert not mount_state.plan("mounted", mapped, mnt).changed
        down = mount_state.plan("unmounted", image, mnt, selector=("partition", 2)).apply()
        assert down.detached == [] and os.path.exists(mapped)   # the map is image_partitions'

        # src is the map itself
        again = mount_state.plan("mounted", mapped, mnt).apply()
        assert again.device == mapped and findmnt(mnt)["source"] == mapped
        mount_state.plan("unmounted", mapped, mnt).apply()
        assert findmnt(mnt) is None
    finally:
        unmount_quietly(image, mnt, selector=("partition", 2))
        partitions_state.plan_absent(image).apply()
    assert loopdev.find_associated(image) == []


def test_by_path_alone_an_iso_comes_down_with_its_loop_device(scratch, tmp_path):
    need("xorriso")
    iso = str(tmp_path / "cd.iso")
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, tree(str(tmp_path / "tree"), "hello\n"))
    mnt = str(tmp_path / "cdrom")
    done = mount_state.plan("mounted", iso, mnt).apply()
    try:
        check = mount_state.plan("unmounted", None, mnt)
        assert check.descriptions() == ["unmount %s from %s" % (done.device, mnt),
                                        "detach %s, which image_mount attached" % done.device]
        result = check.result(check_mode=True)
        assert (result["src"], result["fstype"], result["loop_device"]) == (iso, "iso9660", done.device)
        down = check.apply()
        assert down.detached == [done.device] and findmnt(mnt) is None
        assert not mount_state.plan("unmounted", None, mnt).changed
    finally:
        unmount_quietly(iso, mnt)
    assert loopdev.find_associated(iso) == []


def test_by_path_alone_a_device_mapper_map_is_unmounted_and_left(scratch, tmp_path):
    need("sfdisk", "mkfs.ext4")
    image = scratch.image("disk.img", 48 * MIB, "label: dos\nsize=8MiB, type=83\ntype=83\n")
    start, size = partition_start(image, 2)
    fs = str(tmp_path / "p2.fs")
    with open(fs, "wb") as handle:
        handle.truncate(size)
    run("mkfs.ext4", "-q", "-F", "-L", "mapped", fs)
    splice(fs, image, start)
    parts = partitions_state.plan_present(image, backend="dm").apply()
    mnt = str(tmp_path / "mnt")
    mapped = "/dev/mapper/%sp2" % os.path.basename(parts.device)
    try:
        wait_for(lambda: os.path.exists(mapped), what=mapped)
        mount_state.plan("mounted", image, mnt, selector=("partition", 2)).apply()
        check = mount_state.plan("unmounted", None, mnt)
        result = check.result(check_mode=True)
        assert (result["device"], result["mapped_device"], result["loop_device"]) == (mapped, mapped, parts.device)
        assert result["src"] == image
        assert check.descriptions() == ["unmount %s from %s" % (mapped, mnt)]   # the map is image_partitions'
        down = check.apply()
        assert down.detached == [] and findmnt(mnt) is None
        assert os.path.exists(mapped) and loopdev.status(parts.device) is not None
    finally:
        unmount_quietly(image, mnt, selector=("partition", 2))
        partitions_state.plan_absent(image).apply()
    assert loopdev.find_associated(image) == []

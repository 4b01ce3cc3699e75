# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_partitions makes the declared filesystems, on real loop devices.

mkfs goes through a private autoclear loop device over each partition, so
nothing stays attached; blkid, the fsck programs and the partition devices
(read after the new filesystem went in through another device) are the oracles.
"""
import hashlib
import os
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._image import present
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

from .conftest import MiB, devices_backed_under

pytestmark = pytest.mark.root

UUID = "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d"
LAYOUT = {"label": "gpt", "partitions": [
    {"size": "34MiB", "type": "esp", "fstype": "vfat", "fs_label": "ESP", "fs_uuid": "abcd1234"},
    {"size": "48MiB", "type": "root", "fstype": "ext4", "label": "root", "fs_uuid": UUID, "mkfs_options": ["-m", "0"]},
    {"type": "home"}]}


def run_command(argv, environ_update=None):
    """AnsibleModule.run_command's contract, for the core outside a module."""
    done = subprocess.run(argv, env=dict(os.environ, **(environ_update or {})), capture_output=True, text=True,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def plan(image, layout=None, **kwargs):
    kwargs.setdefault("expose", False)
    return present.plan_image(image, layout=layout or LAYOUT, run_command=run_command, **kwargs)


def blkid(path, offset=0):
    out = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(offset), path], capture_output=True,
                         text=True, check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fsck(image, part, workdir, argv):
    """fsck a copy of the partition's bytes (no device needed); its exit status."""
    copy = str(workdir / ("p%d.fsck" % part["number"]))
    with open(image, "rb") as src, open(copy, "wb") as dst:
        src.seek(part["start"])
        dst.write(src.read(part["size"]))
    try:
        return subprocess.run(argv + [copy], capture_output=True, text=True, check=False).returncode
    finally:
        os.unlink(copy)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_new_image_gets_its_filesystems_and_nothing_stays_attached(workdir):
    image = str(workdir / "new.img")
    checked = plan(image, size="128MiB", mode="0640")
    assert not os.path.exists(image)  # planning wrote nothing
    report = checked.report(check_mode=True)
    assert report["image_created"] and [m["number"] for m in report["mkfs"]] == [1, 2]
    assert report["mkfs"][1]["argv"][-1] == "@DEVICE@"

    result = plan(image, size="128MiB", mode="0640").apply().report()
    assert result["image_created"] and oct(os.stat(image).st_mode & 0o777) == "0o640"
    assert loopdev.find_associated(image) == []  # the private devices are gone
    assert os.stat(image).st_blocks * 512 < 32 * MiB  # still sparse
    parts = dict((p["number"], p) for p in result["partitions"])
    esp, root = blkid(image, parts[1]["start"]), blkid(image, parts[2]["start"])
    assert (esp["TYPE"], esp["LABEL"], esp["UUID"]) == ("vfat", "ESP", "ABCD-1234")
    assert (root["TYPE"], root["LABEL"], root["UUID"]) == ("ext4", "root", UUID)
    assert blkid(image, parts[3]["start"]) == {}
    assert parts[1]["filesystem"]["uuid"] == "ABCD-1234" and parts[2]["filesystem"]["label"] == "root"
    assert [parts[n]["dps_mount_point"] for n in (1, 2, 3)] == ["/boot", "/", "/home"]
    assert fsck(image, parts[1], workdir, ["fsck.vfat", "-n"]) == 0
    assert fsck(image, parts[2], workdir, ["e2fsck", "-f", "-n"]) == 0

    again = plan(image, size="128MiB", mode="0640")
    assert not again.changed and again.report()["mkfs"] == []


def test_another_filesystem_is_refused_then_formatted_with_force(workdir, make_image):
    image = make_image(size=128 * MiB)
    plan(image).apply()
    data = {"size": "48MiB", "type": "root", "fstype": "fat", "fs_label": "DATA"}
    other = dict(LAYOUT, partitions=[LAYOUT["partitions"][0], data, LAYOUT["partitions"][2]])
    before = digest(image)
    with pytest.raises(DiskImageError, match="partition 2 holds ext4 labelled 'root'.*force_mkfs"):
        plan(image, layout=other)
    assert digest(image) == before
    result = plan(image, layout=other, force_mkfs=True).apply().report()
    assert [m["number"] for m in result["mkfs"]] == [2]
    assert result["mkfs"][0]["replaced"] == {"type": "ext4", "label": "root", "uuid": UUID}
    start = result["partitions"][1]["start"]
    assert blkid(image, start)["TYPE"] == "vfat" and result["partitions"][1]["filesystem"]["label"] == "DATA"
    assert fsck(image, result["partitions"][1], workdir, ["fsck.vfat", "-n"]) == 0
    assert not plan(image, layout=other).changed
    assert blkid(image, result["partitions"][0]["start"])["UUID"] == "ABCD-1234"  # partition 1 untouched
    assert loopdev.find_associated(image) == []


@pytest.mark.parametrize("backend", ["partscan", "dm"])
def test_exposed_partition_devices_show_the_new_filesystem(make_image, backend):
    if backend == "dm" and not devmapper.available():
        pytest.skip("no device-mapper")
    image = make_image(size=128 * MiB)
    first = plan(image, expose=True, backend=backend).apply()
    try:
        device = dict((p["number"], p["device"]) for p in first.report()["partitions"])[2]
        assert blkid(device)["TYPE"] == "ext4"  # the device has read (and cached) the old superblock
        swap = dict(LAYOUT, partitions=[LAYOUT["partitions"][0], {"size": "48MiB", "type": "root", "fstype": "swap",
                                                                  "label": "sw"}, LAYOUT["partitions"][2]])
        second = plan(image, layout=swap, expose=True, backend=backend, force_mkfs=True).apply().report()
        assert second["backend"] == backend and [m["number"] for m in second["mkfs"]] == [2]
        assert blkid(device)["TYPE"] == "swap" and blkid(device)["LABEL"] == "sw"
        assert [d.offset for d in loopdev.find_associated(image)] == [0]  # only the exposing device
    finally:
        partitions_state.plan_absent(image).apply()


def test_a_mounted_partition_is_never_formatted(make_image, workdir):
    image = make_image(size=128 * MiB)
    plan(image).apply()
    result = plan(image, expose=True).apply().report()
    target = workdir / "root"
    target.mkdir()
    device = result["partitions"][1]["device"]
    subprocess.run(["mount", device, str(target)], check=True)
    try:
        xfs = dict(LAYOUT, partitions=[LAYOUT["partitions"][0], {"size": "48MiB", "type": "root", "fstype": "xfs"},
                                       LAYOUT["partitions"][2]])
        with pytest.raises(DiskImageError, match="partition 2: %s mounted at %s" % (device, target)):
            plan(image, layout=xfs, force_mkfs=True)
    finally:
        subprocess.run(["umount", str(target)], check=True)
        partitions_state.plan_absent(image).apply()
    # through an attachment of the partition alone, as image_mount makes them
    start = result["partitions"][1]["start"]
    loop = subprocess.run(["losetup", "-f", "--show", "-o", str(start), "--sizelimit", str(48 * MiB), image],
                          check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["mount", loop, str(target)], check=True)
        try:
            with pytest.raises(DiskImageError, match="partition 2: %s mounted at" % loop):
                plan(image, layout=xfs, force_mkfs=True)
        finally:
            subprocess.run(["umount", str(target)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    assert blkid(image, start)["TYPE"] == "ext4"


def test_a_failing_mkfs_leaves_nothing_behind(workdir):
    image = str(workdir / "fails.img")
    bad = dict(LAYOUT, partitions=[LAYOUT["partitions"][0],
                                   dict(LAYOUT["partitions"][1], mkfs_options=["--no-such-option"]), {}])
    with pytest.raises(DiskImageError, match=r"making ext4 on partition 2 failed \(mke2fs, exit status"):
        plan(image, layout=bad, size="128MiB").apply()
    assert not os.path.exists(image)  # the file this run created is removed again
    assert devices_backed_under(str(workdir)) == []

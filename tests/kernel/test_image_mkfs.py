# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_mkfs on real partitions: the same tree and seed give the same bytes.

Two images get the same seeded GPT table (image_partitions with the seeded_layout
filter's values), then ext4, vfat and swap made by image_mkfs from two copies of a
tree written at different times in different directories; the images must be
identical, and another seed must change them. debugfs, mdir and blkid are the
oracles for what went in.
"""

import hashlib
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids

from .conftest import MiB
from .test_safety import run_module

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("faketime"),
                                 reason="needs mtools and faketime")]

EPOCH = 1700000000
LAYOUT = {"label": "gpt", "partitions": [
    {"type": "esp", "size": "34MiB", "name": "esp"}, {"type": "root", "size": "12MiB", "name": "root"},
    {"type": "swap", "name": "swap"}]}


def _tree(path):
    os.makedirs(os.path.join(path, "efi", "loader"))
    os.makedirs(os.path.join(path, "etc"))
    with open(os.path.join(path, "efi", "loader", "loader.conf"), "w") as handle:
        handle.write("timeout 3\n")
    with open(os.path.join(path, "etc", "hostname"), "w") as handle:
        handle.write("repro\n")
    os.symlink("hostname", os.path.join(path, "etc", "name"))
    return path


def _snapshot(image, tree):
    """The image's bytes and every path of the tree with its mtime."""
    paths = sorted((os.path.relpath(os.path.join(d, n), tree), os.lstat(os.path.join(d, n)).st_mtime_ns)
                   for d, dirs, files in os.walk(os.path.dirname(tree)) for n in dirs + files)
    return _sha256(image), paths


def _build(image, tree, seed, check_first=False):
    layout = ids.seeded_layout(LAYOUT, seed)
    table = run_module("image_partitions", src=image, layout=layout)
    assert table["rc"] == 0, table
    try:
        devices = [p["device"] for p in table["partitions"]]
        uuids = [p["uuid"] for p in table["partitions"]]
        args = dict(tree=tree, seed=seed, source_date_epoch=EPOCH, filesystems=[
            {"device": devices[0], "fstype": "vfat", "label": "ESP", "mountpoint": "/efi", "partuuid": uuids[0]},
            {"device": devices[1], "fstype": "ext4", "label": "root", "mountpoint": "/", "partuuid": uuids[1]},
            {"device": devices[2], "fstype": "swap", "label": "swap", "partuuid": uuids[2]}])
        planned = None
        if check_first:
            before = _snapshot(image, tree)
            planned = run_module("image_mkfs", check_mode=True, **args)
            assert planned["rc"] == 0 and planned["changed"], planned
            assert _snapshot(image, tree) == before, "check mode changed the image or the tree"
            assert [fs["type"] for fs in planned["diff"]["before"]["filesystems"]] == [None, None, None]
        made = run_module("image_mkfs", **args)
        assert made["rc"] == 0, made
        if planned is not None:
            assert [fs["argv"] for fs in planned["filesystems"]] == [fs["argv"] for fs in made["filesystems"]]
            assert planned["actions"] == made["actions"]
            assert [fs["type"] for fs in made["diff"]["after"]["filesystems"]] == ["vfat", "ext4", "swap"]
        return made
    finally:
        gone = run_module("image_partitions", src=image, state="absent")
        assert gone["rc"] == 0, gone


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_same_tree_and_seed_give_the_same_bytes(workdir, make_image):
    one = make_image("one.img", 64 * MiB)
    two = make_image("two.img", 64 * MiB)
    other = make_image("other.img", 64 * MiB)
    made = _build(one, _tree(str(workdir / "a" / "tree")), "kernel-test", check_first=True)
    time.sleep(1.1)
    _build(two, _tree(str(workdir / "b" / "deeper" / "tree")), "kernel-test")
    _build(other, _tree(str(workdir / "c" / "tree")), "another-seed")
    assert _sha256(one) == _sha256(two)
    assert _sha256(one) != _sha256(other)
    assert all(fs["reproducible"] for fs in made["filesystems"])
    assert made["clamped"] > 0
    assert not made.get("warnings")
    # what went in, read by the filesystem tools
    start = 1 * MiB
    root_start = start + 34 * MiB
    listing = subprocess.run(["debugfs", "-R", "ls -l /etc", "%s?offset=%d" % (one, root_start)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=True).stdout
    assert "hostname" in listing and "14-Nov-2023" in listing
    efi = subprocess.run(["mdir", "-b", "-i", "%s@@%d" % (one, start), "::/loader"], stdout=subprocess.PIPE,
                         universal_newlines=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=True).stdout
    assert "loader.conf" in efi.lower()
    probe = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(root_start), one], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout
    assert "UUID=%s" % made["filesystems"][1]["uuid"] in probe


def test_unreproducible_types_warn(workdir, make_image):
    if not shutil.which("mkfs.xfs"):
        pytest.skip("needs xfsprogs")
    image = make_image("xfs.img", 320 * MiB)
    table = run_module("image_partitions", src=image, layout={"label": "gpt", "partitions": [{"type": "linux"}]})
    assert table["rc"] == 0, table
    try:
        made = run_module("image_mkfs", seed="s", source_date_epoch=EPOCH, filesystems=[
            {"device": table["partitions"][0]["device"], "fstype": "xfs", "partuuid": table["partitions"][0]["uuid"]}])
    finally:
        run_module("image_partitions", src=image, state="absent")
    assert made["rc"] == 0, made
    assert made["filesystems"][0]["reproducible"] is False
    assert "not reproducible" in str(made.get("warnings")), made
    assert made["filesystems"][0]["uuid"] == ids.filesystem_uuid("s", table["partitions"][0]["uuid"])


def test_a_mounted_device_is_refused(workdir, make_image):
    image = make_image("busy.img", 16 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    mnt = workdir / "mnt"
    mnt.mkdir()
    device = subprocess.run(["losetup", "-f", "--show", image], stdout=subprocess.PIPE, universal_newlines=True,
                            check=True).stdout.strip()
    try:
        subprocess.run(["mount", device, str(mnt)], check=True)
        try:
            refused = run_module("image_mkfs", filesystems=[{"device": device, "fstype": "ext4"}])
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    assert refused["rc"] != 0 and "is mounted" in refused["msg"] and "nothing was formatted" in refused["msg"]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.image_partitions through Ansible: a small dos and gpt image, present and absent."""

import hashlib
import os

import pytest

from oracles import MiB, attached, blkid, fsck, run, sfdisk, sparse

SECTOR = 512

LAYOUTS = {
    "dos": {"label": "dos", "partitions": [{"size": "2MiB"}, {"size": "rest", "type": "linux"}]},
    "gpt": {"label": "gpt", "partitions": [{"size": "2MiB", "type": "esp", "name": "ESP"},
                                           {"size": "rest", "type": "linux", "name": "data"}]},
}


def digest(path):
    with open(path, "rb") as image:
        return hashlib.sha1(image.read()).hexdigest()


@pytest.mark.parametrize("label", sorted(LAYOUTS))
def test_present_then_absent(modules, workspace, label):
    image = sparse(workspace / "disk.img", 8 * MiB)
    empty = digest(image)

    planned = modules("image_partitions", check=True, src=image, backend="partscan", layout=LAYOUTS[label])
    assert planned["changed"] is True
    assert planned["device"] is None and planned["loop_attached"] is True
    assert [part["number"] for part in planned["partitions"]] == [1, 2]
    assert digest(image) == empty, "check mode wrote the image"
    assert attached(image) == []

    made = modules("image_partitions", src=image, backend="partscan", layout=LAYOUTS[label])
    assert made["changed"] is True and made["backend"] == "partscan"
    table = sfdisk(image)
    assert table["label"] == label == made["table"]["label"]
    oracle = [(part["start"], part["size"]) for part in table["partitions"]]
    assert oracle == [(part["start_sector"], part["size_sectors"]) for part in made["partitions"]]
    assert oracle[0][1] * SECTOR == 2 * MiB
    assert [dev["name"] for dev in attached(image)] == [made["device"]]
    for part in made["partitions"]:
        assert part["device"] == "%sp%d" % (made["device"], part["number"])
        name = os.path.basename(part["device"])
        with open("/sys/class/block/%s/start" % name, encoding="ascii") as start:
            assert int(start.read()) == part["start_sector"]

    again = modules("image_partitions", src=image, backend="partscan", layout=LAYOUTS[label])
    assert again["changed"] is False and again["device"] == made["device"]
    assert sfdisk(image) == table

    down_check = modules("image_partitions", check=True, src=image, state="absent")
    assert down_check["changed"] is True
    assert [dev["name"] for dev in attached(image)] == [made["device"]], "check mode detached"

    down = modules("image_partitions", src=image, state="absent")
    assert down["changed"] is True and down["detached"] == [made["device"]]
    assert attached(image) == []
    for part in made["partitions"]:
        assert not os.path.exists("/sys/class/block/" + os.path.basename(part["device"]))
    assert sfdisk(image) == table, "absent must leave the table in the image"

    assert modules("image_partitions", src=image, state="absent")["changed"] is False


def test_a_different_table_is_refused_and_nothing_changes(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)
    assert modules("image_partitions", src=image, layout=LAYOUTS["dos"], state="present")["changed"] is True
    assert modules("image_partitions", src=image, state="absent")["changed"] is True
    written = digest(image)

    refused = modules("image_partitions", src=image, layout=LAYOUTS["gpt"])

    assert refused["failed"] is True and refused["changed"] is False
    assert "already has a different partition table: the label is dos, not gpt" in refused["msg"]
    assert digest(image) == written
    assert attached(image) == []


def test_grow_then_rerun_unchanged(modules, workspace):
    """size larger than the image: the file, the GPT, the last partition and its
    ext4 filesystem grow; the same task again changes nothing."""
    image = sparse(workspace / "grow.img", 16 * MiB)
    made = modules("image_partitions", src=image, layout=LAYOUTS["gpt"])
    run("mkfs.ext4", "-q", made["partitions"][1]["device"])
    assert modules("image_partitions", src=image, state="absent")["changed"] is True

    planned = modules("image_partitions", check=True, src=image, layout=LAYOUTS["gpt"], size="48MiB")
    assert planned["changed"] is True and os.path.getsize(image) == 16 * MiB
    assert planned["diff"]["before"]["image_size"] == 16 * MiB and planned["diff"]["after"]["image_size"] == 48 * MiB

    grown = modules("image_partitions", src=image, layout=LAYOUTS["gpt"], size="48MiB")
    assert grown["changed"] is True and os.path.getsize(image) == 48 * MiB
    assert grown["growth"]["backup_gpt_moved"] is True
    assert [fs["type"] for fs in grown["growth"]["filesystems"]] == ["ext4"]
    table = sfdisk(image)
    assert table["lastlba"] == 48 * MiB // SECTOR - 34
    last = table["partitions"][1]
    assert last["size"] * SECTOR == grown["partitions"][1]["size"] == grown["growth"]["partitions"][0]["size_after"]
    assert run("sfdisk", "--verify", image).returncode == 0
    run("e2fsck", "-fn", grown["partitions"][1]["device"])

    again = modules("image_partitions", src=image, layout=LAYOUTS["gpt"], size="48MiB")
    assert again["changed"] is False and again["growth"] is None
    assert sfdisk(image) == table

    refused = modules("image_partitions", src=image, layout=LAYOUTS["gpt"], size="32MiB")
    assert refused["failed"] is True and "shrinking an image is not supported" in refused["msg"]
    assert os.path.getsize(image) == 48 * MiB
    assert modules("image_partitions", src=image, state="absent")["changed"] is True


FILESYSTEMS = {"label": "gpt", "partitions": [
    {"size": "34MiB", "type": "esp", "fstype": "vfat", "fs_label": "ESP"},
    {"size": "rest", "type": "root", "fstype": "ext4", "label": "root",
     "fs_uuid": "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d", "mkfs_options": ["-m", "0"]}]}


def test_creates_the_image_and_its_filesystems_once(modules, workspace):
    image = str(workspace / "seed.img")
    args = dict(src=image, size="96MiB", mode="0640", expose=False, layout=FILESYSTEMS)

    planned = modules("image_partitions", check=True, **args)
    assert planned["changed"] is True and planned["image_created"] is True
    assert [(m["number"], m["fstype"]) for m in planned["mkfs"]] == [(1, "vfat"), (2, "ext4")]
    assert planned["diff"]["after"]["filesystems"]["2"]["label"] == "root"
    assert not os.path.exists(image), "check mode created the image"

    made = modules("image_partitions", **args)
    assert made["changed"] is True and made["image_created"] is True and made["device"] is None
    assert attached(image) == [], "the private loop devices must be gone"
    assert os.stat(image).st_size == 96 * MiB and oct(os.stat(image).st_mode & 0o777) == "0o640"
    table = sfdisk(image)
    assert [(p["start"], p["size"]) for p in table["partitions"]] == [
        (p["start_sector"], p["size_sectors"]) for p in made["partitions"]]
    esp, root = made["partitions"]
    assert blkid(image, esp["start"])["TYPE"] == "vfat" and blkid(image, esp["start"])["LABEL"] == "ESP"
    found = blkid(image, root["start"])
    assert (found["TYPE"], found["LABEL"], found["UUID"]) == ("ext4", "root", "6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d")
    assert root["filesystem"]["uuid"] == found["UUID"] and esp["filesystem"]["uuid"] == blkid(image, esp["start"])["UUID"]
    assert (esp["dps_mount_point"], root["dps_mount_point"]) == ("/boot", "/")
    assert made["entry_partitions"] == [1, 2]
    assert fsck(image, root["start"], root["size"], ["e2fsck", "-f", "-n"], workspace / "copy") == 0
    assert fsck(image, esp["start"], esp["size"], ["fsck.vfat", "-n"], workspace / "copy") == 0

    again = modules("image_partitions", **args)
    assert again["changed"] is False and again["mkfs"] == [] and again["image_created"] is False
    assert blkid(image, root["start"]) == found


def test_refuses_another_filesystem_and_another_size_and_changes_nothing(modules, workspace):
    image = str(workspace / "seed.img")
    assert modules("image_partitions", src=image, size="96MiB", expose=False, layout=FILESYSTEMS)["changed"]
    written = digest(image)
    other = dict(FILESYSTEMS, partitions=[FILESYSTEMS["partitions"][0],
                                          dict(FILESYSTEMS["partitions"][1], fstype="btrfs")])

    refused = modules("image_partitions", src=image, expose=False, layout=other)
    assert refused["failed"] is True and refused["changed"] is False
    assert "partition 2 holds ext4 labelled 'root'" in refused["msg"] and "force_mkfs" in refused["msg"]

    resized = modules("image_partitions", src=image, size="64MiB", layout=FILESYSTEMS)
    assert resized["failed"] is True and "shrinking an image is not supported" in resized["msg"]
    assert digest(image) == written and attached(image) == []

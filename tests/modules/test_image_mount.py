# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.image_mount through Ansible: mounted and unmounted, reruns, check mode, bad input."""

from oracles import MiB, attached, findmnt, run, sparse


def ext4(path, size, label):
    sparse(path, size)
    run("mkfs.ext4", "-q", "-F", "-L", label, str(path))
    return str(path)


def test_mounted_then_unmounted(modules, workspace):
    image = ext4(workspace / "fs.img", 16 * MiB, "data")
    target = workspace / "mnt"

    planned = modules("image_mount", check=True, src=image, path=str(target))
    assert planned["changed"] is True
    assert planned["mount"] is None and findmnt(target) is None
    assert attached(image) == []

    mounted = modules("image_mount", src=image, path=str(target))
    assert mounted["changed"] is True and mounted["fstype"] == "ext4"
    oracle = findmnt(target)
    assert oracle["source"] == mounted["device"] == mounted["loop_device"]
    assert oracle["fstype"] == "ext4" and "rw" in oracle["options"].split(",")
    assert [dev["name"] for dev in attached(image)] == [mounted["device"]]
    (target / "written").write_text("through the mount\n")

    again = modules("image_mount", src=image, path=str(target))
    assert again["changed"] is False and again["device"] == mounted["device"]
    assert findmnt(target) == oracle

    down_check = modules("image_mount", check=True, src=image, path=str(target), state="unmounted")
    assert down_check["changed"] is True and findmnt(target) == oracle

    down = modules("image_mount", src=image, path=str(target), state="unmounted")
    assert down["changed"] is True
    assert down["detached"] == [mounted["device"]]
    assert findmnt(target) is None and attached(image) == []
    assert not (target / "written").exists()
    assert run("debugfs", "-R", "cat /written", image).stdout == "through the mount\n"

    assert modules("image_mount", src=image, path=str(target), state="unmounted")["changed"] is False


def test_a_gpt_partition_by_its_label_read_only(modules, workspace):
    image = sparse(workspace / "disk.img", 24 * MiB)
    layout = {"label": "gpt", "partitions": [{"size": "2MiB", "name": "spare"}, {"size": "rest", "name": "root"}]}
    parts = modules("image_partitions", src=image, layout=layout)
    run("mkfs.ext4", "-q", "-F", "-L", "rootfs", parts["partitions"][1]["device"])
    assert modules("image_partitions", src=image, state="absent")["changed"] is True
    target = workspace / "root"

    mounted = modules("image_mount", src=image, partlabel="root", path=str(target), read_only=True)
    assert mounted["changed"] is True and mounted["read_only"] is True
    assert mounted["partition"]["number"] == 2
    oracle = findmnt(target)
    assert oracle["fstype"] == "ext4" and "ro" in oracle["options"].split(",")
    (loop,) = attached(image)
    assert loop["ro"] is True
    assert loop["offset"] == parts["partitions"][1]["start"]
    assert modules("image_mount", src=image, partlabel="root", path=str(target), read_only=True)["changed"] is False

    down = modules("image_mount", path=str(target), state="unmounted")
    assert down["changed"] is True
    assert findmnt(target) is None and attached(image) == []


def test_bad_input_fails_and_leaves_nothing(modules, workspace):
    image = ext4(workspace / "fs.img", 16 * MiB, "data")
    target = workspace / "mnt"

    relative = modules("image_mount", src=image, path="relative/mnt")
    assert relative["failed"] is True and relative["changed"] is False
    assert "'relative/mnt' is not an absolute path" in relative["msg"]

    no_such_partition = modules("image_mount", src=image, partition=3, path=str(target))
    assert no_such_partition["failed"] is True and no_such_partition["changed"] is False
    assert "has no partition table, so partition cannot select a partition in it" in no_such_partition["msg"]

    missing = modules("image_mount", src=str(workspace / "missing.img"), path=str(target))
    assert missing["failed"] is True and "missing.img" in missing["msg"]

    assert findmnt(target) is None and attached(workspace) == []

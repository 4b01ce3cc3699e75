# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.image_tree through Ansible: a Discoverable Partitions tree
mounted and taken down with foreign mounts in it, reruns, check mode, a busy
path, bad input."""

import subprocess

from oracles import MiB, attached, findmnt, mounts_below, run, sparse

ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
VAR = "4d21b016-b534-45c2-a9fb-5c16e091fd2d"


def dps_image(workspace):
    """GPT: an x86-64 root partition (ext4 with /etc and /proc) and a var partition."""
    image = sparse(workspace / "disk.img", 34 * MiB)
    subprocess.run(
        ["sfdisk", "-q", image], check=True, text=True, capture_output=True,
        input="label: gpt\nstart=2048, size=32768, type=%s\nsize=32768, type=%s\n" % (ROOT_X86_64, VAR))
    content = workspace / "content"
    for sub in ("etc", "proc", "var"):
        (content / sub).mkdir(parents=True)
    (content / "etc" / "hostname").write_text("tree\n")
    for offset, tree in ((1, content), (17, None)):
        part = workspace / "part.fs"
        run("mkfs.ext4", "-q", "-F", *(["-d", str(tree)] if tree else []), str(part), "16M")
        run("dd", "if=%s" % part, "of=%s" % image, "bs=1M", "seek=%d" % offset, "conv=notrunc", "status=none")
        part.unlink()
    return image


def test_mounted_with_foreign_mounts_then_unmounted(modules, workspace):
    image = dps_image(workspace)
    root = workspace / "tree"

    planned = modules("image_tree", check=True, src=image, root=str(root))
    assert planned["changed"] is True and planned["root_created"] is True
    assert [m["path"] for m in planned["mounts"]] == ["/", "/var"]
    assert findmnt(root) is None and attached(image) == [] and not root.exists()

    up = modules("image_tree", src=image, root=str(root))
    assert up["changed"] is True and up["root"] == str(root)
    assert findmnt(root)["fstype"] == "ext4" and findmnt(root / "var")["fstype"] == "ext4"
    assert sorted(dev["name"] for dev in attached(image)) == sorted(up["loop_devices"])
    assert sorted(int(dev["offset"]) for dev in attached(image)) == [1 * MiB, 17 * MiB]
    assert [m["device"] for m in up["mounts"]] == [findmnt(root)["source"], findmnt(root / "var")["source"]]
    assert (root / "etc" / "hostname").read_text() == "tree\n"
    assert up["diff"]["before"]["mounts"] == {} and sorted(up["diff"]["after"]["mounts"]) == ["/", "/var"]

    again = modules("image_tree", src=image, root=str(root))
    assert again["changed"] is False and again["actions"] == []
    assert again["mounts"] == [dict(m, changed=False) for m in up["mounts"]]

    run("mount", "--bind", "/proc", str(root / "proc"))
    (root / "var" / "cache").mkdir()
    run("mount", "-t", "tmpfs", "scratch", str(root / "var" / "cache"))
    down_check = modules("image_tree", check=True, src=image, root=str(root), state="unmounted")
    assert down_check["changed"] is True and len(mounts_below(workspace)) == 4

    down = modules("image_tree", src=image, root=str(root), state="unmounted")
    assert down["changed"] is True and down["left"] == []
    assert [(u["fstype"], u["foreign"]) for u in down["unmounted"]] == [
        ("tmpfs", True), ("proc", True), ("ext4", False), ("ext4", False)]
    assert sorted(down["detached"]) == sorted(up["loop_devices"])
    assert mounts_below(workspace) == [] and attached(image) == []
    assert findmnt("/proc") is not None

    assert modules("image_tree", src=image, root=str(root), state="unmounted")["changed"] is False


def test_busy_path_fails_naming_the_process_and_leaves_no_device_it_could_release(modules, workspace):
    image = dps_image(workspace)
    up = modules("image_tree", src=image)
    root = up["root"]
    holder = subprocess.Popen(["sleep", "60"], cwd=root + "/var")
    try:
        down = modules("image_tree", src=image, state="unmounted")
        assert down["failed"] is True and down["errno_name"] == "EBUSY"
        assert "sleep (pid %d: cwd)" % holder.pid in down["msg"]
        left = dict((item["target"], item) for item in down["left"])
        assert sorted(left) == [root, root + "/var"]
        assert left[root + "/var"]["holders"] == [{"pid": holder.pid, "comm": "sleep", "uses": ["cwd"]}]
        assert sorted(down["pending"]) == sorted(up["loop_devices"]) and down["root_removed"] is False
    finally:
        holder.kill()
        holder.wait()
    down = modules("image_tree", src=image, state="unmounted")
    assert down["changed"] is True and down["root_removed"] is True
    assert findmnt(root) is None and attached(image) == []


def test_bad_input_fails_and_leaves_nothing(modules, workspace):
    image = dps_image(workspace)
    root = workspace / "tree"
    refused = modules("image_tree", src=image, root="/usr")
    assert refused["failed"] is True and "the running system needs it" in refused["msg"]

    twice = modules("image_tree", src=image, root=str(root),
                    mounts=[{"path": "/", "partition": 1}, {"path": "/", "partition": 2}])
    assert twice["failed"] is True and "declared twice" in twice["msg"]

    broken = modules("image_tree", src=image, root=str(root),
                     mounts=[{"path": "/", "partition": 1}, {"path": "/var", "partition": 2, "fstype": "xfs"}])
    assert broken["failed"] is True and "xfs" in broken["msg"]
    assert mounts_below(workspace) == [] and attached(image) == [] and not root.exists()

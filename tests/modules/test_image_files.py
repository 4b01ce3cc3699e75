# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.image_files through Ansible: a copy of a golden filesystem image
personalized in one task, owners from the image's passwd, a rerun, check mode with
diff, and bad input."""

import os

from oracles import attached, mounts_below, run


def golden_fs(workspace):
    """An ext4 image without a partition table, holding a root tree with two users."""
    tree = workspace / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "home" / "alice").mkdir(parents=True)
    (tree / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    (tree / "etc" / "group").write_text("root:x:0:\nalice:x:1000:\nstaff:x:50:\n")
    (tree / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    image = workspace / "golden.img"
    run("mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "16M")
    return str(image)


def debugfs(image, command):
    return run("debugfs", "-R", command, image).stdout


FILES = [
    {"path": "/etc/hostname", "content": "web1\n"},
    {"path": "/etc/machine-id", "content": "", "mode": "0444", "create": False},
    {"path": "~alice/.ssh", "state": "directory", "owner": "alice", "mode": "0700"},
    {"path": "~alice/.ssh/authorized_keys", "content": "ssh-ed25519 KEY alice@example\n", "owner": "alice",
     "group": "staff", "mode": "0600"},
]


def test_a_copy_personalized_in_one_task(modules, workspace):
    golden = golden_fs(workspace)
    image = str(workspace / "fleet" / "web1.img")

    planned = modules("image_files", check=True, src=image, copy_from=golden, files=FILES)
    assert planned["changed"] is True and planned["copied"] is True
    assert not os.path.exists(image)

    made = modules("image_files", src=image, copy_from=golden, files=FILES)
    assert made["changed"] is True and made["copied"] is True and made["copy_method"] in ("sparse", "reflink")
    assert made["mounts"] == [{"path": "/", "device": made["loop_device"], "fstype": "ext4"}]
    assert [f["changed"] for f in made["files"]] == [True, True, True, True]
    assert attached(image) == [] and mounts_below(workspace) == []
    assert debugfs(image, "cat /etc/hostname") == "web1\n"
    assert debugfs(image, "cat /etc/machine-id") == ""
    assert debugfs(image, "cat /home/alice/.ssh/authorized_keys") == "ssh-ed25519 KEY alice@example\n"
    keys = debugfs(image, "stat /home/alice/.ssh/authorized_keys")
    assert "User:  1000   Group:    50" in keys and "Mode:  0600" in keys
    assert "Mode:  0700" in debugfs(image, "stat /home/alice/.ssh")
    assert debugfs(golden, "cat /etc/hostname") == ""  # the golden image is left alone

    again = modules("image_files", src=image, copy_from=golden, files=FILES)
    assert again["changed"] is False and again["copied"] is False and again["actions"] == []

    checked = modules("image_files", check=True, src=image, copy_from=golden,
                      files=[{"path": "/etc/hostname", "content": "web2\n"}])
    assert checked["changed"] is True and checked["actions"] == ["write /etc/hostname"]
    assert checked["diff"] == [{"before_header": "/etc/hostname", "after_header": "/etc/hostname",
                                "before": "web1\n", "after": "web2\n"}]
    assert debugfs(image, "cat /etc/hostname") == "web1\n"
    assert attached(image) == [] and mounts_below(workspace) == []


def test_bad_input_fails_with_the_fix(modules, workspace):
    golden = golden_fs(workspace)
    image = str(workspace / "web1.img")

    same = modules("image_files", src=golden, copy_from=golden, files=FILES)
    assert same["failed"] is True and "is the golden image itself" in same["msg"]

    unknown = modules("image_files", src=image, copy_from=golden, files=[{"path": "/x", "content": "", "owner": "bob"}])
    assert unknown["failed"] is True and "the image's /etc/passwd has no user bob" in unknown["msg"]
    assert debugfs(image, "cat /x") == ""

    missing = modules("image_files", src=str(workspace / "none.img"), files=FILES)
    assert missing["failed"] is True and "Give copy_from" in missing["msg"]
    assert attached(workspace) == [] and mounts_below(workspace) == []


def test_a_size_or_overlay_that_cannot_be_is_refused_with_nothing_changed(modules, workspace):
    golden = golden_fs(workspace)
    image = str(workspace / "web1.img")

    smaller = modules("image_files", src=image, copy_from=golden, size="8MiB", files=FILES)
    assert smaller["failed"] is True and "shrinking an image is not supported" in smaller["msg"]
    assert not os.path.exists(image)

    # a filesystem image has no partition to grow: refused before the copy
    whole = modules("image_files", src=image, copy_from=golden, size="32MiB", files=FILES)
    assert whole["failed"] is True and "has no partition table" in whole["msg"]
    assert not os.path.exists(image)

    lonely = modules("image_files", src=str(workspace / "web2.qcow2"), overlay=True, files=FILES)
    assert lonely["failed"] is True and "overlay needs copy_from" in lonely["msg"]
    assert attached(workspace) == [] and mounts_below(workspace) == []

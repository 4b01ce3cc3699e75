# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_files on the real kernel: a golden GPT image copied and written through
its tree, mounted in the module's own namespace (never in the host's table), a
rerun that changes nothing, check mode, and a run killed while the tree is
mounted that leaves nothing attached or mounted and converges when run again."""
import json
import os
import signal
import subprocess
import sys

import pytest

from .test_safety import COLLECTIONS_ROOT, run_module
from .test_tree_holder import MiB, host_mount_points, make_image, wait_released

from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev

pytestmark = pytest.mark.skipif(not os.path.exists("/sbin/debugfs") and not os.path.exists("/usr/sbin/debugfs"),
                                reason="needs debugfs")

FILES = [
    {"path": "/etc/hostname", "content": "web1\n", "mode": "0644"},
    {"path": "/etc/hosts", "state": "line", "regexp": r"^127\.0\.1\.1\s", "line": "127.0.1.1\tweb1"},
    {"path": "/var/lib/web1", "content": "on the var partition\n"},
    {"path": "/var/lib/mark", "state": "absent"},
]

# Runs image_files' core until the tree is mounted, says so, and waits to be killed.
PAUSED = r"""
import json, os, sys, time
from ansible_collections.diskimage.loop.plugins.module_utils._files import job, tree_files
def paused(root, entries, accounts=None, check_mode=False):
    print(json.dumps({"pid": os.getpid(), "root": root}), flush=True)
    time.sleep(60)
tree_files.run = paused
job.run(job.Request(sys.argv[1], json.loads(sys.argv[2]), copy_from=sys.argv[3]))
"""


def read_back(image, offset_mib, size_mib, path, workdir):
    """A file of one partition, read with debugfs (util-linux and e2fsprogs as oracles)."""
    part = workdir / "part.fs"
    subprocess.run(["dd", "if=%s" % image, "of=%s" % part, "bs=1M", "skip=%d" % offset_mib, "count=%d" % size_mib,
                    "status=none"], check=True)
    out = subprocess.run(["debugfs", "-R", "cat %s" % path, str(part)], capture_output=True, text=True,
                         check=False).stdout
    part.unlink()
    return out


def test_copy_write_and_rerun(workdir):
    golden = make_image(workdir)
    golden_bytes = open(golden, "rb").read()
    image = str(workdir / "out" / "web1.img")

    first = run_module("image_files", src=image, copy_from=golden, files=FILES)
    assert first["rc"] == 0, first
    assert first["changed"] is True and first["copied"] is True
    assert [m["path"] for m in first["mounts"]] == ["/", "/var"]
    assert [f["changed"] for f in first["files"]] == [True, True, True, True]
    assert first["diff"][0] == {"before_header": "/etc/hostname", "after_header": "/etc/hostname",
                                "before": "tree\n", "after": "web1\n"}
    assert not loopdev.find_associated(image) and not [p for p in host_mount_points() if p.startswith(str(workdir))]
    assert read_back(image, 1, 32, "/etc/hostname", workdir) == "web1\n"
    assert read_back(image, 1, 32, "/etc/hosts", workdir) == "127.0.1.1\tweb1\n"
    assert read_back(image, 33, 16, "/lib/web1", workdir) == "on the var partition\n"
    assert read_back(image, 33, 16, "/lib/mark", workdir) == ""
    assert os.stat(image).st_size == os.stat(golden).st_size
    assert open(golden, "rb").read() == golden_bytes

    again = run_module("image_files", src=image, copy_from=golden, files=FILES)
    assert again["rc"] == 0 and again["changed"] is False and again["actions"] == [], again

    checked = run_module("image_files", check_mode=True, src=image, copy_from=golden,
                         files=[{"path": "/etc/hostname", "content": "web2\n"}])
    assert checked["changed"] is True and checked["actions"] == ["write /etc/hostname"]
    assert read_back(image, 1, 32, "/etc/hostname", workdir) == "web1\n"
    assert not loopdev.find_associated(image)


def test_check_mode_of_a_missing_copy_makes_nothing(workdir):
    golden = make_image(workdir)
    image = workdir / "out" / "web1.img"
    checked = run_module("image_files", check_mode=True, src=str(image), copy_from=golden, files=FILES)
    assert checked["rc"] == 0 and checked["changed"] is True and checked["copied"] is True
    assert not image.parent.exists()


def test_an_attached_image_is_refused(workdir):
    golden = make_image(workdir)
    status = loopdev.attach(golden, read_only=True)
    try:
        refused = run_module("image_files", src=golden, files=FILES)
        assert refused["rc"] == 1 and "is attached to %s already" % status.device in refused["msg"], refused
    finally:
        loopdev.detach(status.device)


def test_a_run_killed_with_the_tree_mounted_leaves_nothing(workdir):
    golden = make_image(workdir)
    image = str(workdir / "web1.img")
    tmp = workdir / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", PAUSED, image, json.dumps(FILES), golden], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT, TMPDIR=str(tmp)))
    try:
        paused = json.loads(proc.stdout.readline())
        with open("/proc/%d/mountinfo" % paused["pid"]) as handle:
            inside = [line.split()[4] for line in handle if line.split()[4].startswith(paused["root"])]
        assert inside == [paused["root"], paused["root"] + "/var"]
        assert not [p for p in host_mount_points() if p.startswith(paused["root"])]
        assert len(loopdev.find_associated(image)) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_released(image) == []
    assert os.listdir(str(tmp)) == [os.path.basename(paused["root"])]  # an empty directory, swept next time

    rerun = run_module("image_files", src=image, copy_from=golden, files=FILES)
    assert rerun["rc"] == 0 and rerun["copied"] is False, rerun
    changed = [f["path"] for f in rerun["files"] if f["changed"]]
    assert changed == ["/etc/hostname", "/etc/hosts", "/var/lib/web1", "/var/lib/mark"]
    assert wait_released(image) == []


def test_bad_input_changes_nothing(workdir):
    golden = make_image(workdir)
    image = workdir / "web1.img"
    for files, message in (([{"path": "/etc/x", "state": "directory", "content": "x"}], "cannot have content"),
                           ([{"path": "~nobody/.ssh", "state": "directory"}], "/etc/passwd has no user nobody")):
        failed = run_module("image_files", src=str(image), copy_from=golden, files=files)
        assert failed["rc"] == 1 and message in failed["msg"], failed
    assert not loopdev.find_associated(str(image)) and not loopdev.find_associated(golden)
    declared = run_module("image_files", src=golden, mounts=[{"path": "/var", "partition": 2}], files=FILES)
    assert declared["rc"] == 1 and "have no root (path /)" in declared["msg"], declared


def _partitions(image):
    out = subprocess.run(["sfdisk", "--json", image], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["partitiontable"]


def test_a_per_host_size_grows_the_copy_its_last_partition_and_filesystem(workdir):
    golden = make_image(workdir)
    golden_bytes = open(golden, "rb").read()
    image = str(workdir / "web1.img")

    checked = run_module("image_files", check_mode=True, src=image, copy_from=golden, size="80MiB", files=FILES[:1])
    assert checked["rc"] == 0 and checked["changed"] is True and not os.path.exists(image), checked

    first = run_module("image_files", src=image, copy_from=golden, size="80MiB", files=FILES[:1])
    assert first["rc"] == 0 and first["copied"] is True and first["image_format"] == "raw", first
    assert first["growth"]["size_before"] == 52 * MiB and first["growth"]["size_after"] == 80 * MiB
    assert first["growth"]["backup_gpt_moved"] is True
    # the last partition ends on the last 1 MiB boundary before the backup GPT, as sfdisk's rest would
    assert first["growth"]["partitions"] == [{"number": 2, "size_before": 16 * MiB, "size_after": 46 * MiB}]
    assert os.stat(image).st_size == 80 * MiB
    table = _partitions(image)
    assert table["lastlba"] == 80 * MiB // 512 - 34
    assert [(p["start"], p["size"]) for p in table["partitions"]] == [(2048, 65536), (67584, 46 * MiB // 512)]
    verify = subprocess.run(["sfdisk", "--verify", image], capture_output=True, text=True, check=False)
    assert verify.returncode == 0 and "No errors detected" in verify.stdout, verify.stdout + verify.stderr
    var = workdir / "var.part"
    subprocess.run(["dd", "if=%s" % image, "of=%s" % var, "bs=1M", "skip=33", "count=46", "status=none"], check=True)
    fsck = subprocess.run(["e2fsck", "-fn", str(var)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    header = dict(line.split(":", 1) for line in subprocess.run(
        ["dumpe2fs", "-h", str(var)], capture_output=True, text=True, check=True).stdout.splitlines() if ":" in line)
    assert int(header["Block count"]) * int(header["Block size"]) == 46 * MiB
    assert read_back(image, 1, 32, "/etc/hostname", workdir) == "web1\n"
    assert read_back(image, 33, 46, "/lib/mark", workdir) == "var\n"
    assert open(golden, "rb").read() == golden_bytes

    again = run_module("image_files", src=image, copy_from=golden, size="80MiB", files=FILES[:1])
    assert again["rc"] == 0 and again["changed"] is False and again["growth"] is None, again

    for size, path in (("60MiB", image), ("40MiB", str(workdir / "web2.img"))):  # smaller than the image, the golden one
        refused = run_module("image_files", src=path, copy_from=golden, size=size, files=FILES[:1])
        assert refused["rc"] == 1 and "shrinking an image is not supported" in refused["msg"], refused
    assert os.stat(image).st_size == 80 * MiB and not os.path.exists(str(workdir / "web2.img"))
    assert wait_released(image) == []

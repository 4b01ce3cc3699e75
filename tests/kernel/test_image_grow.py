# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Growing images on this host's kernel, checked against the tools a user trusts.

After every growth ``sfdisk --verify`` and ``sfdisk --json`` read the table,
the filesystem's own checker reads the filesystem (``e2fsck -fn``,
``xfs_repair -n``, ``btrfs check``), and its own tool reports its size
(``dumpe2fs``, ``xfs_db``, ``btrfs inspect-internal dump-super``): all must
agree with the declaration and with what the module said it did.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_source_table
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import ImageSource
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

from .conftest import MiB

pytestmark = pytest.mark.root

MKFS = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"], "btrfs": ["mkfs.btrfs", "-q", "-f"]}


def layout(label="gpt"):
    return {"label": label, "partitions": [{"size": "8MiB", "name": "boot"} if label == "gpt" else {"size": "8MiB"},
                                           {"name": "root"} if label == "gpt" else {}]}


def present(image, **kwargs):
    return partitions_state.plan_present(image, **kwargs).apply()


def absent(image):
    partitions_state.plan_absent(image).apply()


def made_with(image, fstype, table_layout):
    """The image partitioned by the module, partition 2 formatted, nothing left attached."""
    plan = present(image, layout=table_layout)
    try:
        subprocess.run(MKFS[fstype] + ["%sp2" % plan.device], check=True, capture_output=True)
    finally:
        absent(image)


def sfdisk_json(image):
    return json.loads(subprocess.run(["sfdisk", "--json", image], check=True, capture_output=True,
                                     text=True).stdout)["partitiontable"]


def sfdisk_verify(image):
    proc = subprocess.run(["sfdisk", "--verify", image], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "No errors detected" in proc.stdout, proc.stdout + proc.stderr


class Attached(object):
    """A read-only loop device of one partition, made by losetup (the oracle's own)."""

    def __init__(self, image, start, size):
        self.argv = ["losetup", "--find", "--show", "--read-only", "--offset", str(start), "--sizelimit", str(size),
                     image]

    def __enter__(self):
        self.device = subprocess.run(self.argv, check=True, capture_output=True, text=True).stdout.strip()
        return self.device

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.device], check=False)


def ext_size(device):
    out = subprocess.run(["dumpe2fs", "-h", device], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(fields["Block count"]) * int(fields["Block size"])


def fs_check_and_size(fstype, device):
    """The filesystem checker's verdict (must be clean) and the size its own tool reports."""
    if fstype == "ext4":
        check = subprocess.run(["e2fsck", "-fn", device], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        return ext_size(device)
    if fstype == "xfs":
        check = subprocess.run(["xfs_repair", "-n", "-f", device], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        out = subprocess.run(["xfs_db", "-r", "-c", "sb 0", "-c", "p dblocks blocksize", device], check=True,
                             capture_output=True, text=True).stdout
        values = dict(line.split(" = ") for line in out.splitlines())
        return int(values["dblocks"]) * int(values["blocksize"])
    check = subprocess.run(["btrfs", "check", "--readonly", device], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    out = subprocess.run(["btrfs", "inspect-internal", "dump-super", device], check=True, capture_output=True,
                         text=True).stdout
    return int(re.search(r"^dev_item\.total_bytes\s+(\d+)", out, re.M).group(1))


def check_grown(image, size, fstype, report, plan_layout):
    """Every oracle agrees with the declaration and with the module's report."""
    assert os.path.getsize(image) == size
    sfdisk_verify(image)
    table = sfdisk_json(image)
    parts = table["partitions"]
    source = read_source_table(ImageSource(image))
    if table["label"] == "gpt":
        assert table["lastlba"] == size // 512 - 34  # the backup array and header end the disk
    last = parts[-1]
    assert (last["start"] + last["size"]) * 512 == source.partitions[-1].end
    start, part_size = last["start"] * 512, last["size"] * 512
    grown = dict((p["number"], p) for p in report["growth"]["filesystems"])
    with Attached(image, start, part_size) as device:
        fs_size = fs_check_and_size(fstype, device)
    number = source.partitions[-1].number
    assert fs_size == grown[number]["size_after"]
    # the filesystem fills its partition, up to what its tool leaves unused
    assert part_size - 64 * MiB // 16 <= fs_size <= part_size
    # a rerun grows nothing (it would only attach the image again)
    again = partitions_state.plan_present(image, layout=plan_layout, size=size)
    assert again.growth is None, again.descriptions()


@pytest.mark.parametrize("fstype,label,before,after", [
    ("ext4", "gpt", 64 * MiB, 200 * MiB),
    ("xfs", "gpt", 320 * MiB, 480 * MiB),
    ("btrfs", "dos", 128 * MiB, 320 * MiB),
])
def test_grow_the_image_the_last_partition_and_its_filesystem(make_image, fstype, label, before, after):
    image = make_image("grow.img", before)
    table_layout = layout(label)
    made_with(image, fstype, table_layout)
    # check mode: the plan, nothing changed
    planned = partitions_state.plan_present(image, layout=table_layout, size=after)
    assert planned.changed and os.path.getsize(image) == before
    assert planned.report(check_mode=True)["growth"]["size_after"] == after
    plan = present(image, layout=table_layout, size=after)
    try:
        report = plan.report()
        assert report["growth"]["size_before"] == before
        assert [p["number"] for p in report["growth"]["partitions"]] == [2]
        assert report["diff"]["after"]["image_size"] == after
        assert report["growth"]["backup_gpt_moved"] == (label == "gpt")
        kernel = blkpg.kernel_partitions(os.path.basename(plan.device))
        assert kernel[2].size == plan.table.partition(2).size
        rerun = partitions_state.plan_present(image, layout=table_layout, size=after)
        assert not rerun.changed, rerun.descriptions()
    finally:
        absent(image)
    check_grown(image, after, fstype, report, table_layout)


def test_growth_while_a_loop_device_with_partscan_is_attached(make_image):
    image = make_image("attached.img", 64 * MiB)
    table_layout = layout()
    made_with(image, "ext4", table_layout)
    # attached by hand, with partitions made by partx: the module did not make it
    device = subprocess.run(["losetup", "--find", "--show", "--partscan", image], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        subprocess.run(["partx", "-a", device], check=True, capture_output=True)
        old = blkpg.kernel_partitions(os.path.basename(device))[2].size
        plan = present(image, layout=table_layout, size=160 * MiB)
        assert plan.device == device and not plan.attached
        capacity = int(subprocess.run(["blockdev", "--getsize64", device], check=True, capture_output=True,
                                      text=True).stdout)
        assert capacity == 160 * MiB
        new = int(subprocess.run(["blockdev", "--getsize64", "%sp2" % device], check=True, capture_output=True,
                                 text=True).stdout)
        assert new > old and new == plan.table.partition(2).size
        # what the attached device shows is the grown filesystem, not a cached old superblock
        assert ext_size("%sp2" % device) == plan.report()["growth"]["filesystems"][0]["size_after"]
        assert not partitions_state.plan_present(image, layout=table_layout, size=160 * MiB).changed
    finally:
        subprocess.run(["partx", "-d", device], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", device], check=False)


def digest(image):
    with open(image, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.parametrize("change,message", [
    ({"size": 32 * MiB}, "shrinking an image is not supported"),
    ({"layout": {"label": "gpt", "partitions": [{"size": "8MiB", "name": "boot"}, {"size": "16MiB"}]}},
     "shrinking a partition is not supported"),
    ({"layout": {"label": "gpt", "partitions": [{"size": "16MiB", "name": "boot"}, {"name": "root"}]},
      "size": 128 * MiB}, "partition 1 cannot grow"),
    ({"layout": {"label": "gpt", "partitions": [{"size": "8MiB", "name": "boot"}, {"start": "20MiB"}]},
      "size": 128 * MiB}, "moving a partition is not supported"),
])
def test_shrink_and_move_are_refused_with_nothing_changed(make_image, change, message):
    image = make_image("refuse.img", 64 * MiB)
    made_with(image, "ext4", layout())
    before = digest(image)
    kwargs = dict({"layout": layout()}, **change)
    with pytest.raises(DiskImageError, match=message):
        partitions_state.plan_present(image, **kwargs)
    assert digest(image) == before and os.path.getsize(image) == 64 * MiB
    assert loopdev.find_associated(image) == []


def test_growth_of_a_mounted_image_is_refused(make_image, workdir):
    image = make_image("mounted.img", 64 * MiB)
    made_with(image, "ext4", layout())
    plan = present(image, layout=layout())
    target = str(workdir / "mnt")
    os.mkdir(target)
    subprocess.run(["mount", "%sp2" % plan.device, target], check=True)
    try:
        with pytest.raises(DiskImageError, match="in use"):
            partitions_state.plan_present(image, layout=layout(), size=128 * MiB)
        assert os.path.getsize(image) == 64 * MiB
    finally:
        subprocess.run(["umount", target], check=True)
        absent(image)


def test_relocate_gpt_moves_the_backup_of_an_image_grown_by_truncate(make_image):
    image = make_image("relocate.img", 64 * MiB)
    present(image, layout=layout())
    absent(image)
    before = sfdisk_json(image)["partitions"]
    os.truncate(image, 96 * MiB)
    plain = partitions_state.plan_present(image)
    assert any("relocate_gpt: true" in w for w in plain.table.warnings)
    assert plain.growth is None
    plan = present(image, relocate_gpt=True)
    try:
        assert plan.report()["growth"]["backup_gpt_moved"] is True
        assert plan.report()["growth"]["partitions"] == []
    finally:
        absent(image)
    sfdisk_verify(image)
    table = sfdisk_json(image)
    assert table["lastlba"] == 96 * MiB // 512 - 34 and table["partitions"] == before
    assert partitions_state.plan_present(image, relocate_gpt=True).growth is None


def test_runs_stopped_between_steps_converge(make_image):
    """The states a kill leaves between the steps: the file longer than its
    table, and the table grown around a filesystem that is not yet."""
    image = make_image("steps.img", 64 * MiB)
    made_with(image, "ext4", layout())
    os.truncate(image, 128 * MiB)  # killed after extending the file
    plan = present(image, layout=layout(), size=128 * MiB, grow_filesystem=False)  # killed before the filesystem
    absent(image)
    assert plan.report()["growth"]["filesystems"] == []
    plan = present(image, layout=layout())  # a rerun with the same rest layout finishes the filesystem
    try:
        report = plan.report()
        assert [fs["number"] for fs in report["growth"]["filesystems"]] == [2]
        assert report["growth"]["partitions"] == []
    finally:
        absent(image)
    check_grown(image, 128 * MiB, "ext4", report, layout())


def private_devices(image):
    """The loop devices of one partition (the grow step's own), not of the whole image."""
    return [found.device for found in loopdev.find_associated(image) if found.offset]


GROW_SCRIPT = """
import sys
sys.path[:0] = %r
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state
print("start", flush=True)
state.plan_present(sys.argv[1], layout=%r, size=int(sys.argv[2])).apply()
"""


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_a_growth_killed_at_any_moment_is_finished_by_a_rerun(make_image, delay):
    image = make_image("killed.img", 64 * MiB)
    made_with(image, "ext4", layout())
    script = GROW_SCRIPT % (sys.path, layout())
    proc = subprocess.Popen([sys.executable, "-c", script, image, str(256 * MiB)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"start"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    # The kernel releases the private loop device with its last user: the killed
    # process, or a resize2fs it started, which runs to its end.
    deadline = time.monotonic() + 60
    while private_devices(image) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert private_devices(image) == []
    plan = present(image, layout=layout(), size=256 * MiB)
    try:
        report = plan.report()
    finally:
        absent(image)
    if report["growth"] is None:  # the killed run had finished
        report = {"growth": {"filesystems": [{"number": 2, "size_after": _ext_size_now(image)}]}}
    check_grown(image, 256 * MiB, "ext4", report, layout())


def _ext_size_now(image):
    table = read_source_table(ImageSource(image))
    part = table.partition(2)
    with Attached(image, part.start, part.size) as device:
        return fs_check_and_size("ext4", device)


@pytest.mark.parametrize("fstype,sizes", [
    ("ext4", [40, 61, 130, 203]),
    ("xfs", [320, 333, 345]),
    ("btrfs", [300, 301]),
])
def test_a_fresh_filesystem_that_fills_its_partition_is_not_grown(make_image, fstype, sizes):
    """mkfs may leave a longer tail unused than the grow tool would: a
    rerun on a freshly made image must not take that for a growth."""
    for mib in sizes:
        image = make_image("fresh-%d.img" % mib, mib * MiB)
        made_with(image, fstype, layout())
        plan = partitions_state.plan_present(image, layout=layout(), size=mib * MiB)
        assert plan.growth is None, (mib, plan.descriptions())
        os.unlink(image)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_partitions' core on this host's kernel with the partscan+BLKPG backend.

This kernel has no partition-table parsers, so every partition device here
exists only because the core parsed the table and added it with BLKPG.
"""
import errno
import hashlib
import os
import subprocess
import threading

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

from .conftest import MiB

pytestmark = pytest.mark.root

# The seed note's image: three primaries, an extended partition, logicals p5-p8.
SEED_LAYOUT = {"label": "dos", "partitions": [{"size": "32MiB"}] * 6 + [{"size": "rest"}]}
NON_EXTENDED = (1, 2, 3, 5, 6, 7, 8)


def present(image, **kwargs):
    return partitions_state.plan_present(image, **kwargs).apply()


def partx_show(device):
    """{number: (start, sectors)} as partx parses the table itself (512-byte units)."""
    out = subprocess.run(["partx", "--raw", "--noheadings", "--output", "NR,START,SECTORS", device],
                         check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return dict((int(nr), (int(start), int(sectors))) for nr, start, sectors in rows)


def test_seed_workflow_end_to_end(make_image, workdir):
    image = make_image("seed.img", 320 * MiB)
    plan = present(image, layout=SEED_LAYOUT)
    device = plan.device
    try:
        assert plan.attached and plan.backend == "partscan"
        assert ownership.owner(os.path.basename(device)) == "image_partitions"
        kernel = blkpg.kernel_partitions(os.path.basename(device))
        assert sorted(kernel) == [1, 2, 3, 4, 5, 6, 7, 8]
        # partx reads the table itself and agrees with what we exposed
        oracle = partx_show(device)
        for number, part in kernel.items():
            assert oracle[number][0] * 512 == part.start
            if number != 4:
                assert oracle[number][1] * 512 == part.size
        assert kernel[4].size == 1024  # the extended partition is a stub, as partx and the kernel make it
        # second run: nothing to do
        assert not partitions_state.plan_present(image, layout=SEED_LAYOUT).changed
        for number in NON_EXTENDED:
            part = "%sp%d" % (device, number)
            subprocess.run(["mkfs.ext4", "-q", "-L", "seed%d" % number, part], check=True)
            target = workdir / ("p%d" % number)
            target.mkdir()
            subprocess.run(["mount", part, str(target)], check=True)
            (target / "hello.txt").write_text("partition %d\n" % number)
        with pytest.raises(DiskImageError, match="in use.*mounted at"):
            partitions_state.plan_absent(image)
        for number in NON_EXTENDED:
            subprocess.run(["umount", str(workdir / ("p%d" % number))], check=True)
    finally:
        partitions_state.plan_absent(image).apply()
    assert loopdev.find_associated(image) == []

    # map again: the data is there, and filesystems are reported
    plan = present(image)
    try:
        facts = dict((p["number"], p) for p in plan.result(False)["partitions"])
        for number in NON_EXTENDED:
            assert facts[number]["filesystem"]["type"] == "ext4"
            assert facts[number]["filesystem"]["label"] == "seed%d" % number
            target = workdir / ("p%d" % number)
            subprocess.run(["mount", "-o", "ro", facts[number]["device"], str(target)], check=True)
            try:
                assert (target / "hello.txt").read_text() == "partition %d\n" % number
            finally:
                subprocess.run(["umount", str(target)], check=True)
    finally:
        partitions_state.plan_absent(image).apply()


def test_check_mode_plan_changes_nothing(make_image):
    image = make_image()
    before = hashlib.sha256(open(image, "rb").read()).hexdigest()
    plan = partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]})
    assert plan.changed and len(plan.steps) == 3
    assert hashlib.sha256(open(image, "rb").read()).hexdigest() == before
    assert loopdev.find_associated(image) == []


def losetup_attach(image, *options):
    return subprocess.run(["losetup", "-f", "--show"] + list(options) + [image], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_reuses_a_hand_made_attachment_and_leaves_it_alone(make_image):
    image = make_image()
    partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}).apply()
    partitions_state.plan_absent(image).apply()
    device = losetup_attach(image)
    name = os.path.basename(device)
    try:
        plan = present(image)
        assert plan.device == device and not plan.attached
        assert plan.descriptions()[0] == "turn partscan on for %s" % device
        assert sorted(blkpg.kernel_partitions(name)) == [1, 2]
        # src is the image: the hand-made attachment is not this module's to take down
        absent = partitions_state.plan_absent(image)
        assert absent.descriptions() == [] and not absent.changed
        assert [(s["device"], s["attached_by"], s["partitions"]) for s in absent.skipped] == [
            (device, None, [device + "p1", device + "p2"])]
        assert "all_attachments: true removes them" in absent.skipped[0]["reason"]
        absent.apply()
        assert sorted(blkpg.kernel_partitions(name)) == [1, 2]
        # all_attachments: its partition devices go, the device stays attached
        absent = partitions_state.plan_absent(image, all_attachments=True)
        assert absent.skipped == []
        assert absent.descriptions() == ["remove the partition devices of %s (attached by hand or by another tool, "
                                         "not by this module; it stays attached)" % device]
        absent.apply()
        assert loopdev.status(device) is not None  # never detached: not ours
        assert blkpg.kernel_partitions(name) == {}
        assert not partitions_state.plan_absent(image, all_attachments=True).changed
    finally:
        loopdev.detach(device)


def test_absent_on_an_image_leaves_a_busy_hand_made_attachment_alone(make_image, workdir):
    image = make_image()
    plan = present(image, layout={"label": "dos", "partitions": [{"size": "16MiB"}, {}]})
    ours = plan.device
    theirs = losetup_attach(image, "-P")
    target = workdir / "mnt"
    target.mkdir()
    try:
        # this kernel has no partition parsers: partx adds the partitions with BLKPG
        subprocess.run(["partx", "-a", theirs], check=True)
        subprocess.run(["mkfs.ext4", "-q", theirs + "p1"], check=True)
        subprocess.run(["mount", theirs + "p1", str(target)], check=True)
        try:
            absent = partitions_state.plan_absent(image)
            assert absent.descriptions() == ["detach %s, which this module attached" % ours]
            assert [s["device"] for s in absent.skipped] == [theirs]
            absent.apply()
            assert absent.detached == [ours] and loopdev.status(ours) is None
            assert os.path.ismount(str(target)) and sorted(blkpg.kernel_partitions(os.path.basename(theirs))) == [1, 2]
            # asked to take down every attachment: refused while one of its partitions is mounted
            with pytest.raises(DiskImageError, match="partitions of %s are in use: %sp1 .*mounted at" % (theirs, theirs)):
                partitions_state.plan_absent(image, all_attachments=True)
        finally:
            subprocess.run(["umount", str(target)], check=True)
        partitions_state.plan_absent(image, all_attachments=True).apply()
        assert blkpg.kernel_partitions(os.path.basename(theirs)) == {} and loopdev.status(theirs) is not None
    finally:
        loopdev.detach(theirs)
        if loopdev.status(ours) is not None:
            partitions_state.plan_absent(ours).apply()


def test_absent_on_a_named_device_acts_on_it(make_image):
    image = make_image()
    partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}).apply()
    partitions_state.plan_absent(image).apply()
    device = losetup_attach(image, "-P")
    try:
        subprocess.run(["partx", "-a", device], check=True)
        assert sorted(blkpg.kernel_partitions(os.path.basename(device))) == [1, 2]
        absent = partitions_state.plan_absent(device)
        assert absent.descriptions() == ["remove the partition devices of %s" % device] and absent.skipped == []
        absent.apply()
        assert blkpg.kernel_partitions(os.path.basename(device)) == {}
        assert loopdev.status(device) is not None and absent.detached == []
    finally:
        loopdev.detach(device)


def test_a_partition_opened_for_a_moment_is_removed_once_closed(make_image, monkeypatch):
    """An opener the in-use check cannot see (a plain open, as udev's blkid
    probe makes after a scan) makes BLKPG_DEL_PARTITION fail with EBUSY: the
    removal waits for it to close, and reports one that stays open."""
    image = make_image()
    plan = present(image, layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]})
    disk = os.path.basename(plan.device)
    try:
        node = "/dev/%s" % blkpg.partition_name(disk, 2)
        held = os.open(node, os.O_RDONLY)
        closer = threading.Timer(0.3, os.close, (held,))
        closer.start()
        try:
            assert blkpg.remove_all(plan.device) == [1, 2]
        finally:
            closer.join()
        assert blkpg.kernel_partitions(disk) == {}
        assert partitions_state.plan_present(image).changed
        partitions_state.plan_present(image).apply()
        held = os.open(node, os.O_RDONLY)
        monkeypatch.setattr(blkpg, "OPEN_WAIT", 0.2)
        try:
            with pytest.raises(DiskImageError, match="stayed open") as failed:
                blkpg.remove_all(plan.device)
            assert failed.value.errno == errno.EBUSY
            assert sorted(blkpg.kernel_partitions(disk)) == [1, 2]  # highest first: stopped at p2, p1 left too
        finally:
            os.close(held)
    finally:
        partitions_state.plan_absent(image).apply()


def test_partition_devices_are_reconciled_with_the_table(make_image):
    image = make_image()
    plan = present(image, layout={"label": "gpt", "partitions": [{"size": "8MiB"}] * 3})
    try:
        fd = os.open(plan.device, os.O_RDONLY)
        try:  # damage the kernel's view: drop p2, add a stray p9
            blkpg._blkpg(fd, blkpg.BLKPG_DEL_PARTITION, 2)
            blkpg._blkpg(fd, blkpg.BLKPG_ADD_PARTITION, 9, 40 * MiB, MiB)
        finally:
            os.close(fd)
        again = partitions_state.plan_present(image)
        assert again.changed
        again.apply()
        assert sorted(blkpg.kernel_partitions(os.path.basename(plan.device))) == [1, 2, 3]
    finally:
        partitions_state.plan_absent(image).apply()


def test_four_kib_sector_gpt(make_image):
    image = make_image(size=64 * MiB)
    plan = present(image, sector_size=4096, layout={"label": "gpt", "partitions": [{"size": "16MiB"}, {}]})
    try:
        assert plan.table.sector_size == 4096
        assert loopdev.status(plan.device).sector_size == 4096
        kernel = blkpg.kernel_partitions(os.path.basename(plan.device))
        assert kernel[1].start == MiB and kernel[1].size == 16 * MiB
    finally:
        partitions_state.plan_absent(image).apply()


def test_read_only_mapping(make_image):
    image = make_image()
    present(image, layout={"label": "dos", "partitions": [{"size": "8MiB"}, {}]})
    partitions_state.plan_absent(image).apply()
    plan = present(image, read_only=True)
    try:
        assert loopdev.status(plan.device).read_only
        with open("/sys/class/block/%sp1/ro" % os.path.basename(plan.device)) as handle:
            assert handle.read().strip() == "1"
    finally:
        partitions_state.plan_absent(image).apply()


def test_a_different_table_needs_force(make_image):
    image = make_image()
    present(image, layout={"label": "dos", "partitions": [{"size": "8MiB"}, {}]})
    other = {"label": "dos", "partitions": [{"size": "16MiB"}, {}]}
    try:
        with pytest.raises(DiskImageError, match="different partition table.*partition 1 spans.*force"):
            partitions_state.plan_present(image, layout=other)
        plan = present(image, layout=other, force=True)
        kernel = blkpg.kernel_partitions(os.path.basename(plan.device))
        assert kernel[1].size == 16 * MiB
        assert not partitions_state.plan_present(image, layout=other).changed
    finally:
        partitions_state.plan_absent(image).apply()


@pytest.mark.parametrize("content,fragment", [
    (b"", "has no partition table"),
    (os.urandom(4096), "has no partition table"),
])
def test_not_an_image(make_image, content, fragment):
    image = make_image()
    with open(image, "r+b") as handle:
        handle.write(content)
    with pytest.raises(DiskImageError, match=fragment):
        partitions_state.plan_present(image)
    assert loopdev.find_associated(image) == []


def test_table_beyond_the_end_of_a_truncated_image(make_image):
    image = make_image()
    present(image, layout={"label": "dos", "partitions": [{"size": "8MiB"}, {}]})
    partitions_state.plan_absent(image).apply()
    with open(image, "r+b") as handle:
        handle.truncate(16 * MiB)
    with pytest.raises(DiskImageError, match="past the end"):
        partitions_state.plan_present(image)
    assert loopdev.find_associated(image) == []


@pytest.mark.parametrize("src,fragment", [
    ("missing.img", "does not exist"),
    (".", "is a directory"),
    ("/dev/null", "neither an image file nor a block device"),
])
def test_bad_sources(workdir, src, fragment):
    path = src if src.startswith("/") else str(workdir / src)
    with pytest.raises(DiskImageError, match=fragment):
        partitions_state.plan_present(path)


def test_a_partition_is_not_a_source(make_image):
    image = make_image()
    plan = present(image, layout={"label": "gpt", "partitions": [{}]})
    try:
        with pytest.raises(DiskImageError, match="is a partition"):
            partitions_state.plan_present(plan.device + "p1")
    finally:
        partitions_state.plan_absent(image).apply()


def test_layout_errors_are_clear_and_change_nothing(make_image):
    image = make_image(size=16 * MiB)
    with pytest.raises(DiskImageError, match="read_only"):
        partitions_state.plan_present(image, read_only=True, layout={"partitions": [{}]})
    with pytest.raises(DiskImageError):
        partitions_state.plan_present(image, layout={"label": "dos", "partitions": [{"size": "1GiB"}]})
    assert loopdev.find_associated(image) == []

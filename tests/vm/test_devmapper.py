# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device-mapper core against a real kernel, with kpartx and dmsetup as oracles.

The differential tests map the seed's layout (3 primaries, an extended partition,
4 logicals) once with `kpartx -a` and once with our core, and require the same
names, uuids, tables and flags; each tool must then find and remove the other's maps.
"""

import contextlib
import errno
import os
import stat

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._partition import kpartx_compat as kc
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.devmapper import DeviceMapper, Target
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_table
from vm_helpers import dm_devices, run, sfdisk_partitions, wait_for

pytestmark = pytest.mark.vm


def oracle_view():
    """{name: (uuid, table line, attr)} of every map, as dmsetup reports them."""
    out = run("dmsetup", "info", "-c", "--noheadings", "--separator", " ",
              "-o", "name,uuid,attr").stdout
    tables = {}
    for line in run("dmsetup", "table").stdout.splitlines():
        if ": " in line:  # not "No devices found"
            name, table = line.split(": ", 1)
            tables[name] = table.strip()
    view = {}
    for line in out.splitlines():
        if not line.strip() or line.startswith("No devices"):
            continue
        name, uuid, attr = line.split(" ")
        view[name] = (uuid, tables[name], attr)
    return view


def table_line(targets):
    return "\n".join("%d %d %s %s" % tuple(target) for target in targets)


def partitions_of(image):
    """The image's partitions through the project's own reader, cross-checked
    against sfdisk."""
    with open(image, "rb") as handle:
        table = read_table(handle, os.path.getsize(image))
    parts = kc.partitions_from_table(table)
    assert [tuple(p) for p in parts] == sfdisk_partitions(image)
    return parts


@contextlib.contextmanager
def short_busy_wait(dm):
    """Expected refusals need not wait the full grace period for the device to
    close; everything else keeps it, since udev probes every new or closed map."""
    saved, dm.busy_wait = dm.busy_wait, 0.3
    try:
        yield
    finally:
        dm.busy_wait = saved


@pytest.fixture
def seed_disk(scratch):
    """The seed image on a loop device: (device path, Parent, partitions)."""
    image = scratch.seed_image()
    device = scratch.attach(image)
    parent = kc.describe_parent(device)
    parts = partitions_of(image)
    for part in parts:
        scratch.track_map(kc.partition_map_name(parent.name, part.number))
    return device, parent, parts


def test_driver_version_matches_dmsetup():
    with DeviceMapper() as dm:
        version = dm.driver_version
    assert version[0] == 4
    lines = dict(line.split(":", 1) for line in run("dmsetup", "version").stdout.splitlines())
    assert lines["Driver version"].strip() == "%d.%d.%d" % version


def test_partition_maps_identical_to_kpartx_and_interoperable(seed_disk):
    device, parent, parts = seed_disk
    name = parent.name

    run("kpartx", "-a", device)
    theirs = oracle_view()
    assert sorted(theirs) == ["%sp%d" % (name, n) for n in range(1, 9)]
    extended = theirs["%sp4" % name]
    assert extended[1] == "0 2 linear %d:%d 51200" % (parent.major, parent.minor)

    with DeviceMapper() as dm:
        # our reading of kpartx's maps agrees with dmsetup's
        found = kc.find_partition_maps(dm, parent)
        assert [f.number for f in found] == list(range(1, 9))
        for item in found:
            assert (item.uuid, table_line(item.targets)) == theirs[item.name][:2]
        listed = {d.name: d for d in dm.list_devices()}
        assert {n: d.uuid for n, d in listed.items()} == {n: v[0] for n, v in theirs.items()}

    run("kpartx", "-d", device)
    assert oracle_view() == {}

    with DeviceMapper() as dm:
        result = kc.add_partition_maps(dm, parent, parts)
        assert [p.number for p in result.created] == list(range(1, 9))
        assert oracle_view() == theirs
        for number in range(1, 9):
            path = "/dev/mapper/%sp%d" % (name, number)
            assert stat.S_ISBLK(os.stat(path).st_mode)
        again = kc.add_partition_maps(dm, parent, parts)
        assert not again.created and len(again.unchanged) == 8

    # kpartx removes what we made
    run("kpartx", "-d", device)
    assert oracle_view() == {}
    wait_for(lambda: os.listdir("/dev/mapper") == ["control"], what="udev to drop the map names")


def test_read_only_maps_identical_to_kpartx_r(seed_disk):
    device, parent, parts = seed_disk
    run("kpartx", "-a", "-r", device)
    theirs = oracle_view()
    run("kpartx", "-d", device)
    assert all(attr[3] == "r" for _uuid, _table, attr in theirs.values())

    with DeviceMapper() as dm:
        kc.add_partition_maps(dm, parent, parts, read_only=True)
        assert oracle_view() == theirs
        first = "/dev/mapper/%sp1" % parent.name
        assert run("blockdev", "--getro", first).stdout.strip() == "1"
        assert dm.info("%sp1" % parent.name).read_only
        # the writable version of the same maps is a different state: refused, not changed
        with pytest.raises(DiskImageError, match="already exists with read-only"):
            kc.add_partition_maps(dm, parent, parts)
        removed = kc.remove_partition_maps(dm, parent)
    assert removed == ["%sp%d" % (parent.name, n) for n in range(8, 0, -1)]
    assert oracle_view() == {}


def test_remove_refuses_an_open_map(scratch):
    device = scratch.attach(scratch.image(size=8 * 1024 * 1024))
    parent = kc.describe_parent(device)
    scratch.track_map("vmtier-open")
    with DeviceMapper() as dm:
        info = dm.create("vmtier-open", kc.partition_targets(parent.major, parent.minor, 2048, 4096, False))
        fd = os.open("/dev/mapper/vmtier-open", os.O_RDONLY)
        try:
            with short_busy_wait(dm), pytest.raises(DiskImageError) as caught:
                dm.remove("vmtier-open")
        finally:
            os.close(fd)
        assert caught.value.errno == errno.EBUSY
        assert "'vmtier-open' (/dev/mapper/vmtier-open) is in use, open count 1" in str(caught.value)
        assert "vmtier-open" in dm_devices()
        assert dm.remove("vmtier-open") is True
        assert dm.remove("vmtier-open") is False
    assert "vmtier-open" not in dm_devices()
    wait_for(lambda: not os.path.lexists(info.path), what="the node to go")


def test_ext4_on_a_mapped_partition(scratch, seed_disk):
    device, parent, parts = seed_disk
    with DeviceMapper() as dm:
        kc.add_partition_maps(dm, parent, parts)
        node = "/dev/mapper/%sp5" % parent.name
        run("mkfs.ext4", "-q", "-F", node)
        target = scratch.mount(node, os.path.join(scratch.directory, "mnt"))
        with open(os.path.join(target, "hello.txt"), "w") as handle:
            handle.write("written through a map made by ioctl\n")

        # removal refuses while p5 is mounted, and removes none of the maps
        with short_busy_wait(dm), pytest.raises(DiskImageError,
                                                match="%sp5.*mounted at %s" % (parent.name, target)):
            kc.remove_partition_maps(dm, parent)
        assert len(kc.find_partition_maps(dm, parent)) == 8

        scratch.undo("unmount " + target)
        run("mount", "-o", "ro", node, target)
        try:
            with open(os.path.join(target, "hello.txt")) as handle:
                assert handle.read() == "written through a map made by ioctl\n"
        finally:
            run("umount", target)
        assert len(kc.remove_partition_maps(dm, parent)) == 8
    # the data is in the image at p5's offset: the partition scan of a fresh loop sees it
    check = scratch.attach(scratch.directory + "/seed.img", partscan=True, read_only=True)
    part5 = "%sp5" % check
    wait_for(lambda: os.path.exists(part5), what=part5)
    assert "TYPE=\"ext4\"" in run("blkid", "-p", part5).stdout


def test_failed_create_leaves_nothing_behind(scratch):
    with DeviceMapper() as dm:
        # no such device (blkext, highest minor): a step after DEV_CREATE fails
        with pytest.raises(DiskImageError, match="rejected the table of device-mapper device 'vmtier-bad'"):
            dm.create("vmtier-bad", [(0, 8, "linear", "259:1048575 0")])
        assert dm.info("vmtier-bad") is None
        assert not os.path.lexists("/dev/mapper/vmtier-bad")

        device = scratch.attach(scratch.image(size=4 * 1024 * 1024))
        parent = kc.describe_parent(device)
        scratch.track_map("vmtier-dup")
        good = [Target(0, 8, "linear", "%d:%d 0" % (parent.major, parent.minor))]
        dm.create("vmtier-dup", good)
        with pytest.raises(DiskImageError, match="already exists") as caught:
            dm.create("vmtier-dup", [(0, 16, "zero", "")])
        assert caught.value.errno == errno.EBUSY
        assert dm.table("vmtier-dup") == good  # the existing device was not touched
        with pytest.raises(DiskImageError, match="rejected the table"):
            dm.create("vmtier-toolong", [(0, 8 * 1024 * 1024, "linear", "%d:%d 0" % (parent.major, parent.minor))])
        assert dm.info("vmtier-toolong") is None
        assert dm.remove("vmtier-dup")


def test_list_devices_survives_buffer_full(scratch):
    device = scratch.attach(scratch.image(size=4 * 1024 * 1024))
    parent = kc.describe_parent(device)
    names = ["vmtier-%02d-%s" % (i, "x" * 100) for i in range(12)]
    for name in names:
        scratch.track_map(name)
    with DeviceMapper() as dm:
        for index, name in enumerate(names):
            dm.create(name, [(0, 8, "linear", "%d:%d %d" % (parent.major, parent.minor, index * 8))],
                      uuid="vmtier-uuid-%d" % index)
        listed = dm.list_devices(buffer_size=512)  # far too small: the kernel says BUFFER_FULL
        assert [d.name for d in listed] == sorted(names)
        assert {d.name: d.uuid for d in listed} == {n: v[0] for n, v in oracle_view().items()}
        for name in names:
            assert dm.remove(name)


def test_nodes_made_where_no_udev_makes_them(scratch, tmp_path):
    """Without udev (containers) the core makes the control node from sysfs and
    /dev/mapper/NAME itself: a 0600 block node, unlinked again on removal."""
    device = scratch.attach(scratch.image(size=4 * 1024 * 1024))
    parent = kc.describe_parent(device)
    private = tmp_path / "mapper"  # a directory no udev rule writes to
    scratch.track_map("vmtier-node")
    with DeviceMapper(control=str(private / "control"), dev_dir=str(private), udev_wait=0) as dm:
        control = os.stat(str(private / "control"))
        assert stat.S_ISCHR(control.st_mode) and control.st_rdev == os.stat("/dev/mapper/control").st_rdev
        info = dm.create("vmtier-node", [(0, 8, "linear", "%d:%d 0" % (parent.major, parent.minor))])
        node = os.stat(str(private / "vmtier-node"))
        assert stat.S_ISBLK(node.st_mode) and stat.S_IMODE(node.st_mode) == 0o600
        assert node.st_rdev == os.makedev(info.major, info.minor)
        assert dm.remove("vmtier-node")
    assert not os.path.lexists(str(private / "vmtier-node"))


def test_image_partitions_absent_leaves_maps_of_other_attachments(scratch):
    """state=absent on an image file takes down the maps and the loop device the
    module made; kpartx's maps on a device attached by hand stay until
    all_attachments asks for them, and that device is never detached."""
    from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
    from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state

    image = scratch.seed_image()
    ours = partitions_state.plan_present(image, backend="dm").apply()
    try:
        assert ours.attached and ours.backend == "dm"
        ours_name = os.path.basename(ours.device)
        theirs = scratch.attach(image)
        theirs_name = os.path.basename(theirs)
        for number in range(1, 9):
            scratch.track_map("%sp%d" % (theirs_name, number))
        run("kpartx", "-a", theirs)
        their_maps = ["/dev/mapper/%sp%d" % (theirs_name, n) for n in range(1, 9)]
        assert sorted(oracle_view()) == sorted(["%sp%d" % (ours_name, n) for n in range(1, 9)]
                                               + [os.path.basename(m) for m in their_maps])

        absent = partitions_state.plan_absent(image)
        assert absent.descriptions() == ["remove the device-mapper maps of %s" % ours.device,
                                         "detach %s, which this module attached" % ours.device]
        assert [(s["device"], s["attached_by"], s["partitions"]) for s in absent.skipped] == [
            (theirs, None, their_maps)]
        absent.apply()
        assert absent.detached == [ours.device]
        assert sorted(oracle_view()) == sorted(os.path.basename(m) for m in their_maps)

        every = partitions_state.plan_absent(image, all_attachments=True)
        assert every.skipped == []
        assert every.descriptions() == ["remove the device-mapper maps of %s (attached by hand or by another tool, "
                                        "not by this module; it stays attached)" % theirs]
        every.apply()
        assert oracle_view() == {} and every.detached == []
        assert loopdev.status(theirs) is not None
        assert not partitions_state.plan_absent(image, all_attachments=True).changed
    finally:
        if loopdev.status(ours.device) is not None and partitions_state.ownership.owner(
                os.path.basename(ours.device)) == partitions_state.OWNER:
            partitions_state.plan_absent(ours.device).apply()

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Growing an image in place: the steps, in the order that survives a kill.

``plan_growth`` decides (reading only) and adds its steps to a plan:

1. extend the file (sparse) to the declared size;
2. refresh the capacity of the loop devices attached to it (LOOP_SET_CAPACITY);
3. rewrite the table: the GPT backup at the new end, the usable area up to
   it, the grown partitions (dos: the MBR entry or EBR of the grown one);
   an old backup header left in what is now free space is erased;
4. resize the kernel partition devices of those loop devices (BLKPG), and
   load the new table into a grown partition's device-mapper maps (as
   ``kpartx -u``);
5. grow the filesystem of each grown partition, on a private loop device;
6. drop the attached devices' caches, which still hold the old superblock.

Each step leaves a state the next run reads and finishes: a file longer than
its table is a disk to grow, a GPT whose backup is not at the end is
relocated, a filesystem smaller than its partition is grown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, blockdev, devmapper, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import grow, growfs, kpartx_compat
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import write_table
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import gpt_backup_lba
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe, fssize
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size


class Growth(object):
    """What one run grows: the disk, the table, the filesystems."""

    def __init__(self, source, table, new, backup_lba):
        self.source = source
        self.table = table
        self.new = new
        self.backup_lba = backup_lba
        self.extend = new.size > source.size
        self.rewrite = grow.table_needs_rewrite(table, new, backup_lba)
        self.filesystems = []  # (partition, fstype, FsGeometry before, size after)
        self._attached = None

    def attachments(self):
        """The loop devices of the image, looked up once per run: the steps
        run under the image lock, so only the private devices of the
        filesystem step come and go meanwhile, and they are not wanted here."""
        if self._attached is None:
            self._attached = _attachments(self.source)
        return self._attached

    @property
    def needed(self):
        return self.extend or self.rewrite or bool(self.filesystems)

    def result(self):
        old = dict((p.number, p) for p in self.table.partitions)
        return {
            "size_before": self.source.size,
            "size_after": self.new.size,
            "backup_gpt_moved": bool(self.new.label == "gpt" and self.rewrite
                                     and self.backup_lba != self.new.total_sectors - 1),
            "partitions": [{"number": p.number, "size_before": old[p.number].size, "size_after": p.size}
                           for p in self.new.partitions if p.size != old[p.number].size],
            "filesystems": [{"number": part.number, "type": fstype, "size_before": before.size, "size_after": after}
                            for part, fstype, before, after in self.filesystems],
        }

    def diff(self):
        before = {"image_size": self.source.size,
                  "partition_sizes": dict((p.number, p.size) for p in self.table.partitions)}
        after = {"image_size": self.new.size,
                 "partition_sizes": dict((p.number, p.size) for p in self.new.partitions)}
        if self.filesystems:
            before["filesystem_sizes"] = dict((part.number, fs.size) for part, _t, fs, _a in self.filesystems)
            after["filesystem_sizes"] = dict((part.number, size) for part, _t, _fs, size in self.filesystems)
        return before, after


def requested_size(source, size, sector_size):
    """The disk size ``size`` (bytes or a unit) declares; refuses a shrink or a block device."""
    if size is None:
        return source.size
    wanted = parse_size(size, "size")
    if source.is_block and wanted != source.size:
        raise DiskImageError("size %d differs from the %d bytes of the block device %s" % (
            wanted, source.size, source.path), hint="Grow the device itself (or name the image file as src)")
    grow.check_disk_size(source.size, wanted, sector_size)
    return wanted


def last_data_partition(table):
    """The partition that ends last on the disk (not an extended one), or None."""
    data = [p for p in table.partitions if p.kind != "extended"]
    return max(data, key=lambda p: p.end_sector) if data else None


def plan_growth(source, table, disk_size, grown, relocate, fill_last, grow_filesystem):
    """A Growth of ``table`` onto ``disk_size`` bytes with ``grown``
    ({number: sectors}) resized, or None when nothing needs doing.

    ``relocate``: the GPT may be rewritten even when no partition grows (the
    backup moved to the end). ``fill_last``: the filesystem of the last
    partition must fill it, whether or not it grows in this run."""
    new = grow.grow_table(table, disk_size, grown)
    backup = gpt_backup_lba_of(source, table) if table.label == "gpt" else None
    growth = Growth(source, table, new, backup)
    if not (relocate or grown):
        growth.rewrite = False
    if growth.rewrite:
        grow.check_rewritable(table)
    if grow_filesystem:
        numbers = set(grown)
        last = last_data_partition(new)
        if fill_last and last is not None:
            numbers.add(last.number)
        for number in sorted(numbers):
            _plan_filesystem(growth, new.partition(number), number in grown)
    return growth if growth.needed else None


def gpt_backup_lba_of(source, table):
    try:
        with open(source.path, "rb") as handle:
            return gpt_backup_lba(handle, source.size, table.sector_size)
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot read %s" % source.path, exc)


def _plan_filesystem(growth, part, partition_grows):
    """Grow the filesystem of ``part`` when its tool would make it larger. A
    partition that does not grow in this run is left alone while its
    filesystem fills it as its mkfs would have made it (a few blocks less
    than the grow tool might use): a fresh image is not "grown" on its
    first rerun."""
    found = fsprobe.probe_path(growth.source.path, offset=part.start, size=min(
        part.size, max(0, growth.source.size - part.start)))
    fstype = (found or {}).get("type")
    if fstype not in fssize.GROWABLE:
        return
    before = fssize.geometry(growth.source.path, part.start, fstype)
    if before is None:
        return
    if before.size > part.size:
        raise DiskImageError("the %s filesystem of partition %d is %d bytes, larger than the %d bytes of the "
                             "partition" % (fstype, part.number, before.size, part.size),
                             hint="Check the layout: the partition must be at least as large as its filesystem")
    after = before.grown_size(part.size)
    if after > before.size and (partition_grows or not before.fills(part.size)):
        for name in growfs.tools_for(fstype):
            growfs.tool(name)
        growth.filesystems.append((part, fstype, before, after))


def describe(growth):
    """The plan's step descriptions, in order."""
    steps = []
    if growth.extend:
        steps.append("extend %s from %d to %d bytes (sparse)" % (growth.source.path, growth.source.size,
                                                                 growth.new.size))
    if growth.rewrite:
        grown = ["partition %d to %d bytes" % (p["number"], p["size_after"]) for p in growth.result()["partitions"]]
        what = "grow " + ", ".join(grown) if grown else "move the backup GPT header to the end of the disk"
        steps.append("%s in the partition table of %s" % (what, growth.source.path))
    for part, fstype, before, after in growth.filesystems:
        steps.append("grow the %s filesystem of partition %d from %d to %d bytes" % (
            fstype, part.number, before.size, after))
    return steps


def add_steps(plan, growth, target):
    """Add the growth's steps to ``plan``; ``target`` is what the table is written to."""
    descriptions = describe(growth)
    index = 0
    if growth.extend:
        plan.add(descriptions[index], lambda: _extend(growth))
        index += 1
    if growth.rewrite:
        plan.add(descriptions[index], lambda: _rewrite(growth, target()))
        index += 1
    for entry in growth.filesystems:
        plan.add(descriptions[index], lambda entry=entry: _grow_filesystem(growth, entry))
        index += 1


def _attachments(source):
    """The loop devices showing the image: src itself when it is one, else every attachment of the file."""
    if source.is_block:
        number = source.loop_number
        found = loopdev.status(number) if number is not None else None
        return [found] if found is not None else []
    return loopdev.find_associated(source.path)


def _extend(growth):
    extend_file(growth.source, growth.new.size, growth.attachments())


def extend_file(source, size, attached=None):
    """Make the image file ``size`` bytes long (a hole, no data written) and
    let the loop devices attached to it (``attached``, else looked up) see the new end."""
    try:
        fd = os.open(source.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot extend %s to %d bytes" % (source.path, size),
                                          exc, hint="Check the free space of its filesystem")
    for found in _attachments(source) if attached is None else attached:
        if not found.sizelimit:
            loopdev.refresh_capacity(found.device)


def _rewrite(growth, target):
    try:
        with open(target, "r+b") as handle:
            stale = grow.stale_backup_lba(growth.table, growth.backup_lba, growth.new)
            write_table(handle, growth.new)
            if stale is not None:
                handle.seek(stale * growth.new.sector_size)
                handle.write(b"\0" * growth.new.sector_size)
            handle.flush()
            os.fsync(handle.fileno())
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot write the partition table to %s" % target, exc)
    _resize_kernel_partitions(growth)
    _reload_grown_maps(growth)


def _resize_kernel_partitions(growth):
    """The partition devices of the whole-image attachments follow the grown table."""
    want = blkpg.wanted_geometry(growth.new)
    for attached in growth.attachments():
        if attached.offset or attached.sizelimit:
            continue
        for number, part in blkpg.kernel_partitions(attached.name).items():
            if number in want and part.start == want[number][0] and part.size != want[number][1]:
                blkpg.resize(attached.device, number, *want[number])


def _reload_grown_maps(growth):
    """Device-mapper maps (kpartx's or the dm backend's) of a grown partition
    still end at the old size: load the new table into each (``kpartx -u``),
    so it keeps its name and number. Nothing of the image is in use (refused
    before planning), and the loop devices below already have their new
    capacity, or the kernel would refuse the longer table."""
    if not devmapper.available():
        return
    partitions = kpartx_compat.partitions_from_table(growth.new)
    with devmapper.DeviceMapper() as dm:
        for attached in growth.attachments():
            if not (attached.offset or attached.sizelimit):
                kpartx_compat.reload_partition_maps(dm, kpartx_compat.describe_parent(attached.device), partitions)


def _grow_filesystem(growth, entry):
    part, fstype, _before, expected = entry
    for attached in growth.attachments():
        _flush(attached)
    after = growfs.grow(growth.source.path, part.start, part.size, fstype)
    for attached in growth.attachments():
        _flush(attached)
    if after is None or after.size != expected:
        raise DiskImageError("the %s filesystem of partition %d is %s bytes after growing, not %d" % (
            fstype, part.number, after.size if after else "an unreadable number of", expected),
            hint="Check it (fsck) and report this with the filesystem's geometry")


def _flush(attached):
    """Drop the page caches of a loop device of the image, its partitions and
    its partition maps: they must not keep a superblock that the private
    device has rewritten."""
    name = attached.name
    blockdev.flush_buffers([attached.device] + ["/dev/%s" % part for part, _n in sysfs.partitions(name)]
                           + ["/dev/%s" % holder for holder in sysfs.holders(name) if holder.startswith("dm-")])

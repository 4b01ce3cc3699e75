# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Partition maps exactly as kpartx makes them, so each tool sees the other's.

kpartx names a partition map after its parent ("loop0" -> "loop0p1", "sda" ->
"sda1"), tags it with a uuid "part<N>-<parent id>", and maps it linearly over the
PARENT device at the partition's absolute start; an extended partition gets only
its first two sectors. Maps made here are indistinguishable from kpartx's:
`kpartx -d` removes them, and find_partition_maps() finds kpartx's.

All starts and sizes are in 512-byte sectors, the unit of device-mapper tables.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import stat
from collections import namedtuple

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.devmapper import (
    Target, linear_params, parse_linear_params)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# kpartx's uuid for a parent that is not itself a dm device (multipath-tools,
# kpartx/kpartx.c: "devnode_<MAJ>:<MIN>_Wh5pYvM")
NONDM_UUID_FORMAT = "devnode_%d:%d_Wh5pYvM"
UUID_FORMAT = "part%d-%s"
_UUID = re.compile(r"^part([0-9]+)-(.+)$")

# Like the kernel's own partition scan, kpartx exposes only the start of an
# extended partition (room for a boot loader), never the logical partitions in it:
# two of the parent's sectors, even when the partition is smaller (the kernel
# takes min(size, 2) there; kpartx 0.9.4 maps 2 for a 1-sector extended entry).
EXTENDED_MAP_SECTORS = 2

Partition = namedtuple("Partition", "number start size is_extended")
Parent = namedtuple("Parent", "path name major minor uuid_suffix")
MapSpec = namedtuple("MapSpec", "number name uuid targets read_only")
FoundMap = namedtuple("FoundMap", "number name uuid major minor targets")
MapResult = namedtuple("MapResult", "created unchanged")


def partition_map_name(parent_name, number, delimiter=None):
    """'loop0', 1 -> 'loop0p1'; 'sda', 1 -> 'sda1' (kpartx's default delimiter
    is 'p' only when the parent name ends in a digit)."""
    if delimiter is None:
        delimiter = "p" if parent_name[-1:].isdigit() else ""
    return "%s%s%d" % (parent_name, delimiter, number)


def parent_uuid_suffix(major, minor, dm_uuid=None):
    """What follows 'part<N>-': the parent's own dm uuid, or kpartx's devnode form."""
    return dm_uuid if dm_uuid else NONDM_UUID_FORMAT % (major, minor)


def partition_map_uuid(number, uuid_suffix):
    return UUID_FORMAT % (number, uuid_suffix)


def parse_partition_map_uuid(uuid):
    """'part3-devnode_7:0_Wh5pYvM' -> (3, 'devnode_7:0_Wh5pYvM'); None otherwise."""
    match = _UUID.match(uuid or "")
    if not match:
        return None
    return int(match.group(1)), match.group(2)


def partition_targets(parent_major, parent_minor, start, size, is_extended, sector_size=512):
    """The table of one partition map: one linear target over the parent.

    An extended partition maps 2 sectors of the parent's sector size whatever its
    size, exactly as kpartx does (2 x 512 bytes on an ordinary disk), so that the
    tables of both tools compare equal.
    """
    length = size
    if is_extended:
        length = EXTENDED_MAP_SECTORS * max(sector_size // 512, 1)
    return [Target(0, length, "linear", linear_params(parent_major, parent_minor, start))]


def describe_parent(path, sys_root=sysfs.SYS_ROOT):
    """The Parent behind a block device path: kernel or dm name, numbers, uuid suffix."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot open %s" % path, exc)
    if not stat.S_ISBLK(info.st_mode):
        raise DiskImageError("%s is not a block device" % path,
                             hint="Attach the image to a loop device first")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    kernel_name = sysfs.name_by_devno(major, minor, sys_root) or os.path.basename(os.path.realpath(path))
    dm_name = sysfs.dm_name(kernel_name, sys_root)
    dm_uuid = None
    if dm_name:
        dm_uuid = sysfs.dm_uuid(kernel_name, sys_root)
    return Parent(path=path, name=dm_name or kernel_name, major=major, minor=minor,
                  uuid_suffix=parent_uuid_suffix(major, minor, dm_uuid))


def partitions_from_table(table):
    """[Partition] in 512-byte sectors from a partition_table.PartitionTable, or
    anything whose ``partitions`` have number, start and size in bytes, and kind."""
    return [Partition(part.number, part.start // 512, part.size // 512, part.kind == "extended")
            for part in table.partitions]


def plan_maps(parent, partitions, read_only=False, delimiter=None, sector_size=512):
    """[MapSpec] for ``partitions``, an iterable of (number, start, size,
    is_extended) in 512-byte sectors. Empty slots (size 0) get no map."""
    plans = []
    for part in partitions:
        number, start, size, is_extended = part
        if size <= 0:
            continue
        plans.append(MapSpec(
            number=number,
            name=partition_map_name(parent.name, number, delimiter),
            uuid=partition_map_uuid(number, parent.uuid_suffix),
            targets=partition_targets(parent.major, parent.minor, start, size, is_extended,
                                      sector_size),
            read_only=read_only))
    return sorted(plans, key=lambda plan: plan.number)


def find_partition_maps(dm, parent):
    """The partition maps of ``parent`` that exist, whoever made them: a uuid
    'part<N>-<parent suffix>' and one linear target over the parent."""
    found = []
    for device in dm.list_devices():
        parsed = parse_partition_map_uuid(device.uuid)
        if parsed is None or parsed[1] != parent.uuid_suffix:
            continue
        try:
            targets = dm.table(device.name)
        except DiskImageError as exc:
            if exc.errno == errno.ENXIO:
                continue  # removed meanwhile
            raise
        if len(targets) != 1 or targets[0].target_type != "linear":
            continue
        linear = parse_linear_params(targets[0].params)
        if linear is None or linear[0] != (parent.major, parent.minor):
            continue
        found.append(FoundMap(parsed[0], device.name, device.uuid, device.major,
                              device.minor, targets))
    return sorted(found, key=lambda item: item.number)


def add_partition_maps(dm, parent, partitions, read_only=False, delimiter=None, sector_size=512):
    """Map every partition, as `kpartx -a` does; idempotent.

    A map that already exists with the same uuid, table and read-only state is
    left as it is. One that differs is an error (its table would be changed under
    whoever uses it). On any failure the maps made by this call are removed again.
    """
    created, unchanged = [], []
    try:
        for plan in plan_maps(parent, partitions, read_only, delimiter, sector_size):
            info = dm.info(plan.name)
            if info is None:
                dm.create(plan.name, plan.targets, uuid=plan.uuid, read_only=plan.read_only)
                created.append(plan)
                continue
            problems = []
            if info.uuid != plan.uuid:
                problems.append("uuid %r, not %r" % (info.uuid, plan.uuid))
            current = dm.table(plan.name)
            if current != plan.targets:
                problems.append("table %s, not %s" % (_show(current), _show(plan.targets)))
            if info.read_only != plan.read_only:
                problems.append("read-only" if info.read_only else "writable")
            if problems:
                raise DiskImageError(
                    "device-mapper device %r already exists with %s" % (plan.name, "; ".join(problems)),
                    errno=errno.EEXIST,
                    hint="Remove the partition maps of %s first, then map them again" % parent.path)
            unchanged.append(plan)
    except BaseException:
        for plan in reversed(created):
            try:
                dm.remove(plan.name)
            except DiskImageError:
                pass
        raise
    return MapResult(created, unchanged)


def stale_partition_maps(dm, parent, partitions, delimiter=None, sector_size=512):
    """[(FoundMap, MapSpec)]: the maps of ``parent`` whose table is not the one
    ``partitions`` give them (a partition that grew since it was mapped)."""
    wanted = dict((spec.name, spec) for spec in plan_maps(parent, partitions, delimiter=delimiter,
                                                          sector_size=sector_size))
    return [(found, wanted[found.name]) for found in find_partition_maps(dm, parent)
            if found.name in wanted and found.targets != wanted[found.name].targets]


def reload_partition_maps(dm, parent, partitions, delimiter=None, sector_size=512):
    """Load the new table into every stale map of ``parent``, as `kpartx -u`
    does: each keeps its name, number and read-only state. Returns the names
    reloaded. Missing maps are add_partition_maps()' business."""
    reloaded = []
    for found, spec in stale_partition_maps(dm, parent, partitions, delimiter, sector_size):
        info = dm.info(found.name)
        if info is None:
            continue  # removed meanwhile
        dm.reload(found.name, spec.targets, read_only=info.read_only)
        reloaded.append(found.name)
    return reloaded


def remove_partition_maps(dm, parent):
    """Remove every partition map of ``parent`` (kpartx's or ours), highest
    number first, as `kpartx -d` does. Returns the removed names.

    When any of them is in use nothing is removed: the EBUSY error names it.
    """
    maps = find_partition_maps(dm, parent)
    for found in maps:
        dm.wait_unused(found.name)
    removed = []
    for found in reversed(maps):
        if dm.remove(found.name):
            removed.append(found.name)
    return removed


def _show(targets):
    return ", ".join("%d %d %s %s" % tuple(target) for target in targets)

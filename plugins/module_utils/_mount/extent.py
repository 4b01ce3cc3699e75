# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What bytes a block device shows, and which block devices show given bytes.

image_mount never compares the strings mount(8) or /proc show to decide whether
a mount is of the source asked for: a loop device, a kernel partition of one and
a device-mapper map over one all resolve to an *extent*, a byte range of a
backing object (a file by device and inode, or a block device by number), and
extents are compared. This module reads sysfs, the loop and device-mapper
ioctls for that, finds the devices (*exposures*) that show an extent already,
and chooses the one to reuse. It plans nothing and changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._loop import query as loop_query
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class Extent(object):
    """``size`` bytes at ``start`` of a backing object ``key``.

    ``key`` is ('file', 'MAJ:MIN', inode) for a file, ('dev', major, minor) for
    a block device that is not itself a window on something else. ``name``
    (the file's path, or the device) is for messages only.
    """

    __slots__ = ("key", "start", "size", "name")

    def __init__(self, key, start, size, name=None):
        self.key = key
        self.start = start
        self.size = size
        self.name = name

    @property
    def end(self):
        return self.start + self.size

    def inner(self, start, size):
        """The extent of a window ``start`` bytes into this one."""
        return Extent(self.key, self.start + start, size, self.name)

    def covers(self, other):
        return other is not None and self.key == other.key and \
            self.start <= other.start and other.end <= self.end

    def shows(self, other):
        """Starts where ``other`` starts and covers it: the same filesystem,
        as mount -o loop,offset=N without a sizelimit shows a partition."""
        return self.covers(other) and self.start == other.start

    def __eq__(self, other):
        return isinstance(other, Extent) and (self.key, self.start, self.size) == (other.key, other.start, other.size)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def describe(self):
        return "%s bytes at offset %d of %s" % (self.size, self.start, self.name or str(self.key))

    def __repr__(self):
        return "Extent(%r, %d, %d)" % (self.key, self.start, self.size)


# --- what sysfs says about a kernel block device ------------------------------

def is_loop_name(name):
    return name.startswith("loop") and name[4:].isdigit()


def dm_linear(kernel_name):
    """((major, minor), start, size) in bytes of a one-target linear map, else None."""
    dm_name = sysfs.dm_name(kernel_name)
    if not dm_name:
        return None
    # Imported here: only device-mapper sources need it, and every module pays
    # for each line it imports (see _loop/query.py).
    from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper
    if not devmapper.available():
        return None
    try:
        with devmapper.DeviceMapper() as dm:
            targets = dm.table(dm_name)
    except DiskImageError:
        return None
    if len(targets) != 1 or targets[0].target_type != "linear" or targets[0].start != 0:
        return None
    parsed = devmapper.parse_linear_params(targets[0].params)
    if parsed is None:
        return None
    return parsed[0], parsed[1] * 512, targets[0].length * 512


def device_path(name):
    """The /dev path of a kernel block device; dm maps by their /dev/mapper name."""
    dm_name = sysfs.dm_name(name) if name.startswith("dm-") else None
    if dm_name and os.path.exists("/dev/mapper/%s" % dm_name):
        return "/dev/mapper/%s" % dm_name
    return blockdev.node_for(name)


# --- extents ------------------------------------------------------------------

def _loop_backing_block(current):
    """(major, minor) when a loop device's backing file is a block device node."""
    try:
        info = os.stat(current.backing_file)
    except (OSError, TypeError):
        return None
    if not stat.S_ISBLK(info.st_mode):
        return None
    if "%d:%d" % (os.major(info.st_dev), os.minor(info.st_dev)) != current.backing_device or \
            info.st_ino != current.backing_inode:
        return None
    return os.major(info.st_rdev), os.minor(info.st_rdev)


def extent_of(major, minor, _depth=0):
    """The Extent block device ``major:minor`` shows, or None when it has none."""
    name = sysfs.name_by_devno(major, minor)
    if name is None or _depth > 8:
        return None
    if sysfs.is_partition(name):
        parent = sysfs.parent_disk(name)
        parent_devno = sysfs.devno(parent)
        outer = extent_of(parent_devno[0], parent_devno[1], _depth + 1) if parent_devno else None
        if outer is None:
            return None
        start, size = sysfs.partition_geometry(parent, name)
        return outer.inner(start, size)
    if is_loop_name(name):
        current = loop_query.status(int(name[4:]))
        if current is None:
            return None
        below = _loop_backing_block(current)
        if below is not None:
            outer = extent_of(below[0], below[1], _depth + 1)
            return outer.inner(current.offset, current.size) if outer is not None else None
        return Extent(("file", current.backing_device, current.backing_inode), current.offset, current.size,
                      current.backing_file)
    if name.startswith("dm-"):
        linear = dm_linear(name)
        if linear is not None:
            outer = extent_of(linear[0][0], linear[0][1], _depth + 1)
            if outer is not None:
                return outer.inner(linear[1], linear[2])
    return Extent(("dev", major, minor), 0, sysfs.size_bytes(name), "/dev/%s" % name)


def file_extent(path, size=None):
    """The Extent of a whole image file (whole 512-byte sectors, as a loop device shows it)."""
    device, inode = loop_query.file_identity(path)
    if size is None:
        size = blockdev.file_size(path)
    return Extent(("file", device, inode), 0, size - size % 512, path)


def describe_device(devno):
    """'/dev/loop4 (N bytes at offset M of FILE)' for messages."""
    name = sysfs.name_by_devno(*devno) if devno else None
    if name is None:
        return "device %s" % ("%d:%d" % tuple(devno) if devno else "?")
    extent = extent_of(*devno)
    if extent is None or extent.key[0] == "dev" and extent.start == 0:
        return "/dev/%s" % name
    return "/dev/%s (%s)" % (name, extent.describe())


# --- mounts of a device -------------------------------------------------------

def mount_devno(entry):
    """(major, minor) of the block device behind a mountinfo entry, or None.

    btrfs shows an anonymous 0:N there; its source field names the device."""
    if entry.major != 0:
        return entry.major, entry.minor
    if entry.source.startswith("/dev/"):
        try:
            return blockdev.devno_of(entry.source)
        except DiskImageError:
            return None
    return None


def mounts_of(devno, table):
    return [m for m in table if mount_devno(m) == tuple(devno)]


def serves(entry, wanted):
    """Does mountinfo ``entry`` show the filesystem of the Extent ``wanted``?"""
    devno = mount_devno(entry)
    if devno is None:
        return False
    extent = extent_of(*devno)
    if extent is None or not extent.shows(wanted):
        return False
    # A bind mount of a subdirectory is not the filesystem (btrfs shows its subvolume here).
    return entry.root == "/" or entry.fstype == "btrfs"


def wrong_source(path, entry, wanted):
    """The error for a mount at ``path`` that is not of ``wanted`` (a description)."""
    devno = mount_devno(entry)
    what = describe_device(devno) if devno else entry.source
    if devno and entry.root != "/" and entry.fstype != "btrfs":
        what += ", its directory %s" % entry.root
    return DiskImageError(
        "%s already has %s mounted (type %s), not %s" % (path, what, entry.fstype, wanted),
        errno=errno.EBUSY, hint="Unmount it first, or choose another path")


def chain_of(entry):
    """The devices under a mount: a dict of ``device`` (what is mounted, as a
    path where there is one), ``loop_device`` (the loop device under it, or
    None) and ``mapped_device`` (a partition or dm map in between, or None)."""
    devno = mount_devno(entry)
    name = sysfs.name_by_devno(*devno) if devno else None
    chain = {"device": entry.source if entry.source.startswith("/dev/") else (
        "/dev/%s" % name if name else entry.source), "loop_device": None, "mapped_device": None}
    if name is None:
        return chain
    if is_loop_name(name):
        chain["loop_device"] = "/dev/%s" % name
    elif sysfs.is_partition(name):
        parent = sysfs.parent_disk(name)
        chain["mapped_device"] = "/dev/%s" % name
        chain["loop_device"] = "/dev/%s" % parent if is_loop_name(parent) else None
    elif name.startswith("dm-"):
        chain["mapped_device"] = device_path(name)
        linear = dm_linear(name)
        below = sysfs.name_by_devno(*linear[0]) if linear else None
        chain["loop_device"] = "/dev/%s" % below if below and is_loop_name(below) else None
    return chain


# --- devices that show an extent ----------------------------------------------

class Exposure(object):
    """A block device showing (part of) the wanted extent.

    ``kind``: 'partition' (of a loop device), 'map' (device-mapper), 'loop' or
    'device'. ``loop``: the loop device underneath (or itself), ``exact``:
    shows exactly the wanted bytes, ``mounts``: where it is mounted now.
    """

    def __init__(self, name, kind, extent, loop=None, exact=True):
        self.name = name
        self.kind = kind
        self.extent = extent
        self.loop = loop
        self.exact = exact
        self.devno = sysfs.devno(name)
        self.read_only = sysfs.read_only(name)
        self.mounts = []
        self._path = None

    @property
    def device(self):
        if self._path is None:
            self._path = device_path(self.name)
        return self._path

    @property
    def mapped(self):
        return self.kind in ("partition", "map")

    def __repr__(self):
        return "Exposure(%s, %s, exact=%s)" % (self.name, self.kind, self.exact)


def _holders_and_partitions(name, extent, wanted, found, loop):
    from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg  # only when looking for exposures
    for part in blkpg.kernel_partitions(name).values():
        inner = extent.inner(part.start, part.size)
        if inner.shows(wanted):
            found.append(Exposure(part.name, "partition", inner, loop, exact=inner == wanted))
    for holder in sysfs.holders(name):
        linear = dm_linear(holder)
        if linear is None or linear[0] != sysfs.devno(name):
            continue
        inner = extent.inner(linear[1], linear[2])
        if inner.shows(wanted):
            found.append(Exposure(holder, "map", inner, loop, exact=inner == wanted))


def find_exposures(source, wanted, table):
    """Every block device that shows ``wanted`` from its first byte, with its mounts."""
    found = []
    if source.is_block:
        roots = [(source.kernel_name, extent_of(*source.devno))]
    else:
        roots = [(current.name, Extent(("file", current.backing_device, current.backing_inode),
                                       current.offset, current.size, current.backing_file))
                 for current in loop_query.find_associated(source.path)]
    for name, extent in roots:
        if extent is None or not extent.covers(wanted):
            continue
        loop = "/dev/%s" % name if is_loop_name(name) else None
        if extent.shows(wanted):
            found.append(Exposure(name, "loop" if loop else "device", extent, loop, exact=extent == wanted))
        _holders_and_partitions(name, extent, wanted, found, loop)
    for exposure in found:
        if exposure.devno is not None:
            exposure.mounts = mounts_of(exposure.devno, table)
    return found


def loop_exposure(devno, table):
    """The Exposure of a loop device that is mounted as a whole (no partition
    or map in between), with its mounts; None for any other device."""
    name = sysfs.name_by_devno(*devno) if devno else None
    if name is None or not is_loop_name(name):
        return None
    extent = extent_of(*devno)
    if extent is None:
        return None  # detached while we looked
    exposure = Exposure(name, "loop", extent, "/dev/%s" % name)
    exposure.mounts = mounts_of(devno, table)
    return exposure


_KIND_ORDER = {"partition": 0, "map": 1, "loop": 2, "device": 3}


def choose_exposure(exposures, read_only, strict_read_only):
    """The device to mount, or None when a new loop device is needed.

    One that is mounted already comes first: mounting it again shares the
    kernel's superblock, where a second device would give the same filesystem
    two (and corrupt it). Otherwise an exact one of the right read-only mode:
    with ``strict_read_only`` only a read-only device will do.
    """
    mounted = [e for e in exposures if e.mounts]
    if mounted:
        return sorted(mounted, key=lambda e: (not e.exact, _KIND_ORDER[e.kind]))[0]
    usable = [e for e in exposures if e.exact and (e.read_only or not strict_read_only)
              and (read_only or not e.read_only)]
    if not usable:
        return None
    return sorted(usable, key=lambda e: (e.read_only != read_only, _KIND_ORDER[e.kind]))[0]

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for mounts of images, partitions inside images, ISOs and devices.

``plan(state, ...)`` only reads the system and returns a MountPlan (steps and the
predicted result), so check mode and diff come from the code that acts;
``MountPlan.apply`` performs the steps and, when one fails, undoes what the run
did before it (unmount, detach, remove the directories it made).

What a source is, whatever shows it: an *extent*, a byte range of a backing
object (a file by device and inode, or a block device by number). A loop
device, a kernel partition of one and a device-mapper map over one all resolve
to an extent, so "is this mount the source asked for" compares extents, never
the strings mount(8) or /proc show.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import time

from ansible_collections.diskimage.loop.plugins.module_utils import (
    blkpg,
    blockdev,
    fsprobe,
    loopdev,
    mountinfo,
    mountsys,
    ownership,
    partition_types,
    sysfs,
)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.loop_state import Plan
from ansible_collections.diskimage.loop.plugins.module_utils.partition_table import read_table
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import format_size

OWNER = "image_mount"
STATES = ("mounted", "unmounted", "present", "absent")
SELECTORS = ("partition", "partlabel", "partuuid", "label", "uuid", "parttype")
DEFAULT_FSTAB = "/etc/fstab"
# The kernel never writes these, and refuses rw for most of them.
READ_ONLY_FSTYPES = mountsys.READ_ONLY_FSTYPES
# Words that would make mount(8) or the kernel do what this module does itself.
_MANAGED_WORDS = ("loop", "bind", "rbind", "remount", "move")
_MANAGED_PREFIXES = ("loop=", "offset=", "sizelimit=", "encryption=")
ISO_MAGIC_OFFSET = 32769  # "CD001" of the first volume descriptor at 32 KiB
ISO_MAGIC = b"CD001"
AUTOCLEAR_WAIT = 3.0


# --- extents --------------------------------------------------------------

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


def _is_loop_name(name):
    return name.startswith("loop") and name[4:].isdigit()


def _class_dir(name):
    return os.path.join(sysfs.SYS_ROOT, "class", "block", name)


def _is_partition(name):
    return sysfs.read_attr(os.path.join(_class_dir(name), "partition")) is not None


def _parent_disk(name):
    return os.path.basename(os.path.dirname(os.path.realpath(_class_dir(name))))


def _device_read_only(name):
    return sysfs.read_attr(os.path.join(_class_dir(name), "ro")) == "1"


def _device_size(name):
    text = sysfs.read_attr(os.path.join(_class_dir(name), "size")) or "0"
    return int(text) * 512 if text.isdigit() else 0


def dm_available():
    return os.path.exists("/dev/mapper/control") or sysfs.misc_devno("device-mapper") is not None


def _dm_linear(kernel_name):
    """((major, minor), start, size) in bytes of a one-target linear map, else None."""
    dm_name = sysfs.dm_name(kernel_name)
    if not dm_name or not dm_available():
        return None
    # Imported late: hosts without device-mapper never need it.
    from ansible_collections.diskimage.loop.plugins.module_utils import devmapper
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
    if _is_partition(name):
        parent = _parent_disk(name)
        parent_devno = sysfs.devno(parent)
        outer = extent_of(parent_devno[0], parent_devno[1], _depth + 1) if parent_devno else None
        if outer is None:
            return None
        start, size = sysfs.partition_geometry(parent, name)
        return outer.inner(start, size)
    if _is_loop_name(name):
        current = loopdev.status(int(name[4:]))
        if current is None:
            return None
        below = _loop_backing_block(current)
        if below is not None:
            outer = extent_of(below[0], below[1], _depth + 1)
            return outer.inner(current.offset, current.size) if outer is not None else None
        return Extent(("file", current.backing_device, current.backing_inode), current.offset, current.size,
                      current.backing_file)
    if name.startswith("dm-"):
        linear = _dm_linear(name)
        if linear is not None:
            outer = extent_of(linear[0][0], linear[0][1], _depth + 1)
            if outer is not None:
                return outer.inner(linear[1], linear[2])
    return Extent(("dev", major, minor), 0, _device_size(name), "/dev/%s" % name)


def file_extent(path, size=None):
    """The Extent of a whole image file (whole 512-byte sectors, as a loop device shows it)."""
    device, inode = loopdev.file_identity(path)
    if size is None:
        size = blockdev.file_size(path)
    return Extent(("file", device, inode), 0, size - size % 512, path)


# --- devices that show an extent ------------------------------------------

def device_path(name):
    """The /dev path of a kernel block device; dm maps by their /dev/mapper name."""
    dm_name = sysfs.dm_name(name) if name.startswith("dm-") else None
    if dm_name and os.path.exists("/dev/mapper/%s" % dm_name):
        return "/dev/mapper/%s" % dm_name
    return blockdev.node_for(name)


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
        self.read_only = _device_read_only(name)
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


def _holders_and_partitions(name, extent, wanted, found, loop):
    for part in blkpg.kernel_partitions(name).values():
        inner = extent.inner(part.start, part.size)
        if inner.shows(wanted):
            found.append(Exposure(part.name, "partition", inner, loop, exact=inner == wanted))
    for holder in sysfs.holders(name):
        linear = _dm_linear(holder)
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
                 for current in loopdev.find_associated(source.path)]
    for name, extent in roots:
        if extent is None or not extent.covers(wanted):
            continue
        loop = "/dev/%s" % name if _is_loop_name(name) else None
        if extent.shows(wanted):
            found.append(Exposure(name, "loop" if loop else "device", extent, loop, exact=extent == wanted))
        _holders_and_partitions(name, extent, wanted, found, loop)
    for exposure in found:
        if exposure.devno is not None:
            exposure.mounts = mounts_of(exposure.devno, table)
    return found


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


# --- the source -----------------------------------------------------------

class Source(object):
    """What ``src`` names: an image file (raw, partitioned, ISO) or a block device."""

    def __init__(self, src):
        self.given = src
        self.path = os.path.abspath(src)
        try:
            info = os.stat(self.path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise DiskImageError("src %s does not exist" % self.path, errno=exc.errno,
                                     hint="Create the image first, or fix src")
            raise DiskImageError.from_oserror("cannot read %s" % self.path, exc)
        if stat.S_ISDIR(info.st_mode):
            raise DiskImageError("src %s is a directory, not an image or a block device" % self.path,
                                 errno=errno.EISDIR, hint="Name the image file or the device")
        self.is_block = stat.S_ISBLK(info.st_mode)
        if not (self.is_block or stat.S_ISREG(info.st_mode)):
            raise DiskImageError("src %s is neither an image file nor a block device" % self.path)
        self.devno = (os.major(info.st_rdev), os.minor(info.st_rdev)) if self.is_block else None
        self.kernel_name = sysfs.name_by_devno(*self.devno) if self.is_block else None
        if self.is_block and self.kernel_name is None:
            raise DiskImageError("the kernel has no block device %d:%d (%s)" % (self.devno + (self.path,)))
        try:
            self.size = blockdev.file_size(self.path)
        except OSError as exc:
            raise DiskImageError.from_oserror("cannot read %s" % self.path, exc)
        if self.is_block:
            self.extent = extent_of(*self.devno)
        else:
            self.extent = file_extent(self.path, self.size)
        if self.extent is None or self.extent.size < 512:
            raise DiskImageError("src %s is empty" % self.path, hint="Give an image that holds a filesystem")

    def probe(self, offset=0, size=None):
        try:
            return fsprobe.probe_path(self.path, offset=offset, size=size)
        except DiskImageError:
            return None

    def read_table(self):
        try:
            with open(self.path, "rb") as handle:
                return read_table(handle, self.size)
        except (IOError, OSError) as exc:
            raise DiskImageError.from_oserror("cannot read %s" % self.path, exc)

    def is_optical(self, offset=0):
        """An ISO 9660 volume descriptor at 32 KiB: an ISO (also a UDF bridge one)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset + ISO_MAGIC_OFFSET)
                return handle.read(len(ISO_MAGIC)) == ISO_MAGIC
        except (IOError, OSError):
            return False


def _fs_words(fs):
    if not fs:
        return "no filesystem"
    words = [fs.get("type") or "?"]
    if fs.get("label"):
        words.append("label %r" % fs["label"])
    if fs.get("uuid"):
        words.append("uuid %s" % fs["uuid"])
    return " ".join(words)


def describe_partition(part, fs=None):
    words = ["%d:" % part.number, part.kind if part.kind == "extended" else (part.type_alias or part.type)]
    if part.name:
        words.append("partlabel %r" % part.name)
    if part.uuid:
        words.append("partuuid %s" % part.uuid)
    words.append(format_size(part.size))
    if part.kind != "extended":
        words.append("(%s)" % _fs_words(fs))
    return " ".join(words)


def _norm_id(value):
    return str(value).strip().strip("{}").lower()


def select_partition(table, kind, value, probe, arch=None):
    """The partition of ``table`` that selector ``kind`` = ``value`` names.

    ``probe(part)`` returns the filesystem facts of a partition (fsprobe's
    dict) or None; it is asked only for the label and uuid selectors.
    Returns (partition, filesystem or None). Raises DiskImageError naming
    every partition when none or several match.
    """
    parts = list(table.partitions)
    usable = [p for p in parts if p.kind != "extended"]
    facts = {}

    def fs_of(part):
        if part.number not in facts:
            facts[part.number] = probe(part) if part.kind != "extended" else None
        return facts[part.number]

    if kind == "partition":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise DiskImageError("partition %r is not a partition number" % (value,))
        matches = [p for p in parts if p.number == number]
        if matches and matches[0].kind == "extended":
            raise DiskImageError("partition %d is an extended partition, a container for logical ones; it "
                                 "holds no filesystem" % number,
                                 hint="Select a logical partition (5 and up) instead")
    elif kind == "partlabel":
        if table.label != "gpt":
            raise DiskImageError("partlabel selects a GPT partition name, and this is a %s partition table, "
                                 "which has no names" % table.label,
                                 hint="Use partition (the number) or partuuid instead")
        matches = [p for p in usable if p.name == value]
    elif kind == "partuuid":
        matches = [p for p in usable if p.uuid and _norm_id(p.uuid) == _norm_id(value)]
    elif kind == "parttype":
        wanted = partition_types.resolve_type(value, table.label, arch)
        if table.label == "dos" and partition_types.is_extended(wanted):
            raise DiskImageError("parttype %r selects extended partitions, which hold no filesystem" % value)
        matches = [p for p in usable if _norm_id(p.type) == _norm_id(wanted)]
    elif kind == "label":
        matches = [p for p in usable if (fs_of(p) or {}).get("label") == value]
    elif kind == "uuid":
        matches = [p for p in usable if (fs_of(p) or {}).get("uuid") and _norm_id(fs_of(p)["uuid"]) == _norm_id(value)]
    else:
        raise DiskImageError("unknown partition selector %r" % (kind,), hint="Use one of %s" % ", ".join(SELECTORS))

    if len(matches) == 1:
        return matches[0], fs_of(matches[0])
    listing = "; ".join(describe_partition(p, fs_of(p)) for p in parts) or "none"
    if not matches:
        raise DiskImageError("no partition has %s %r; the %s table has: %s" % (kind, value, table.label, listing),
                             errno=errno.ENOENT, hint="Fix %s, or select the partition another way" % kind)
    found = "; ".join(describe_partition(p, fs_of(p)) for p in matches)
    raise DiskImageError(
        "%d partitions have %s %r: %s" % (len(matches), kind, value, found),
        hint="Select exactly one, for example with partition: %d" % matches[0].number)


class Selection(object):
    """The part of the source to mount: the whole of it, or one partition."""

    def __init__(self, source, extent, partition=None, filesystem=None, table=None):
        self.source = source
        self.extent = extent
        self.partition = partition
        self.filesystem = filesystem
        self.table = table

    @property
    def offset(self):
        return self.partition.start if self.partition is not None else 0

    def describe(self):
        if self.partition is None:
            return self.source.path
        return "%s partition %d" % (self.source.path, self.partition.number)

    def to_dict(self):
        if self.partition is None:
            return None
        entry = self.partition.to_dict()
        entry["filesystem"] = self.filesystem
        return entry


def select(source, kind=None, value=None):
    """Resolve a selector on ``source`` to a Selection."""
    whole_fs = source.probe()
    if kind is None:
        if whole_fs is not None and whole_fs.get("usage") == fsprobe.USAGE_FILESYSTEM:
            return Selection(source, source.extent, filesystem=whole_fs)
        table = source.read_table()
        if table is not None:
            listing = "; ".join(describe_partition(p, _probe_part(source, p)) for p in table.partitions)
            raise DiskImageError(
                "%s holds a %s partition table, not a filesystem: %s" % (source.path, table.label, listing),
                hint="Select the partition to mount with one of %s" % ", ".join(SELECTORS))
        return Selection(source, source.extent, filesystem=whole_fs)
    if kind in ("label", "uuid") and whole_fs is not None and whole_fs.get("usage") == fsprobe.USAGE_FILESYSTEM:
        got = whole_fs.get(kind)
        if got is not None and (got == value if kind == "label" else _norm_id(got) == _norm_id(value)):
            return Selection(source, source.extent, filesystem=whole_fs)
        raise DiskImageError("%s holds %s, whose %s is %r, not %r" % (source.path, _fs_words(whole_fs), kind, got, value),
                             errno=errno.ENOENT, hint="Fix %s, or check that src is the right image" % kind)
    table = source.read_table()
    if table is None:
        raise DiskImageError("%s has no partition table, so %s cannot select a partition in it (%s)" % (
            source.path, kind, _fs_words(whole_fs)),
            hint="Drop %s to mount the whole of it, or check that src is the right image" % kind)
    part, fs = select_partition(table, kind, value, lambda p: _probe_part(source, p))
    extent = source.extent.inner(part.start, part.size)
    if part.end > source.size:
        raise DiskImageError("partition %d of %s ends past the end of the image" % (part.number, source.path),
                             hint="The image was truncated; restore it")
    return Selection(source, extent, partition=part, filesystem=fs, table=table)


def _probe_part(source, part):
    if part.kind == "extended":
        return None
    return source.probe(part.start, part.size)


def filesystem_type(selection, fstype=None):
    """The fstype to mount: given, or read from the superblock."""
    fs = selection.filesystem
    if fstype:
        if any(c in fstype for c in ", \t\n/") or fstype.startswith("-"):
            raise DiskImageError("fstype %r is not a filesystem type name" % fstype,
                                 hint="Give the type as /proc/filesystems lists it, such as ext4 or squashfs")
        return fstype
    if fs is None:
        raise DiskImageError("no filesystem was recognized in %s" % selection.describe(),
                             hint="Give fstype if the kernel knows this filesystem, or check that src is right")
    if fs.get("usage") == fsprobe.USAGE_CRYPTO:
        raise DiskImageError("%s holds an encrypted %s container, not a filesystem" % (selection.describe(), fs["type"]),
                             hint="Open it first (for example with community.crypto.luks_device) and mount "
                                  "the opened device")
    if fs.get("usage") != fsprobe.USAGE_FILESYSTEM or fs.get("type") in ("swap", "jbd"):
        raise DiskImageError("%s holds %s, not a mountable filesystem" % (selection.describe(), fs.get("type")))
    return fs["type"]


# --- options --------------------------------------------------------------

class Options(object):
    """What the user asked for, split once: the words for the kernel and fstab,
    and whether the mount (and the loop device under it) must be read-only."""

    def __init__(self, opts, read_only, fstype, optical=False):
        if isinstance(opts, (list, tuple)):
            words = [str(w).strip() for w in opts if str(w).strip()]
        else:
            words = mountsys.split_options(opts or "")
        for word in words:
            key = word.split("=", 1)[0]
            if word in _MANAGED_WORDS or word.startswith(_MANAGED_PREFIXES):
                raise DiskImageError(
                    "opts must not contain %r: image_mount attaches loop devices itself" % key,
                    hint="Drop it; the partition is chosen with partition, partlabel, partuuid, label, "
                         "uuid or parttype")
        parsed = mountsys.parse_options(words)
        self.explicit_ro = bool(read_only) or bool(parsed.flags & mountsys.MS_RDONLY)
        if self.explicit_ro and parsed.cleared & mountsys.MS_RDONLY:
            raise DiskImageError("opts say rw, and %s" % ("read_only is true" if read_only else "also ro"),
                                 hint="Drop rw from opts, or set read_only: false")
        self.by_nature = fstype in READ_ONLY_FSTYPES or (optical and fstype == "udf")
        if self.by_nature and parsed.cleared & mountsys.MS_RDONLY:
            raise DiskImageError("opts say rw, but %s is read-only by nature" % (
                "this ISO" if optical else fstype), hint="Drop rw from opts")
        self.read_only = self.explicit_ro or self.by_nature
        if self.read_only and not parsed.flags & mountsys.MS_RDONLY:
            words = ["ro"] + words
        self.words = words
        self.parsed = mountsys.parse_options(words)

    @property
    def string(self):
        return ",".join(self.words)

    def kernel_words(self):
        """The words mount(2) acts on (without fstab-only ones like noauto)."""
        userspace = set(self.parsed.userspace)
        return [w for w in self.words if w not in userspace]


def fstab_options(selection, options):
    """The fstab options through which mount(8) sets up the same thing."""
    words = []
    if not selection.source.is_block or selection.partition is not None:
        words.append("loop")
    if selection.partition is not None:
        words += ["offset=%d" % selection.partition.start, "sizelimit=%d" % selection.partition.size]
    words += [w for w in options.words if w != "defaults"]
    return ",".join(words) or "defaults"


def fstab_entry(selection, target, fstype, options):
    return mountinfo.FstabEntry(selection.source.path, target, fstype, fstab_options(selection, options), 0, 0)


def _entry_offset(entry):
    for word in mountsys.split_options(entry.options):
        if word.startswith("offset="):
            try:
                return int(word[len("offset="):], 0)
            except ValueError:
                return None
    return 0


def entry_refers_to(entry, source_path, offset):
    """Does fstab ``entry`` mount ``source_path`` (at ``offset``)?"""
    if os.path.abspath(entry.source) != source_path:
        try:
            if not os.path.samefile(entry.source, source_path):
                return False
        except (OSError, TypeError):
            return False
    return offset is None or _entry_offset(entry) == offset


# --- the mount point ------------------------------------------------------

def _first_symlink(path):
    parts = path.split("/")
    for index in range(2, len(parts) + 1):
        here = "/".join(parts[:index])
        if os.path.islink(here):
            return here
    return None


class Target(object):
    """The mount point: absolute, symlinks resolved only when asked, a directory."""

    def __init__(self, path, follow_symlinks=False):
        if not path or not os.path.isabs(path):
            raise DiskImageError("path %r is not an absolute path" % (path,), hint="Give the mount point as /some/dir")
        self.requested = os.path.normpath(path)
        self.path = os.path.realpath(self.requested)
        self.resolved_from = None
        if self.path != self.requested:
            link = _first_symlink(self.requested) or self.requested
            if not follow_symlinks:
                raise DiskImageError(
                    "path %s goes through the symlink %s -> %s; the mount would land on %s" % (
                        self.requested, link, os.readlink(link) if os.path.islink(link) else "?", self.path),
                    errno=errno.ELOOP,
                    hint="Give the resolved path %s, or set follow_symlinks: true to mount there" % self.path)
            self.resolved_from = self.requested
        self.missing = []
        here = self.path
        while not os.path.lexists(here):
            self.missing.insert(0, here)
            here = os.path.dirname(here)
        if not os.path.isdir(here):
            if here == self.path:
                raise DiskImageError("path %s is a %s, not a directory; refusing to mount over it" % (
                    self.path, "file" if os.path.isfile(here) else "special file"), errno=errno.ENOTDIR,
                    hint="Remove it, or choose another mount point")
            raise DiskImageError("cannot create %s: %s is not a directory" % (self.path, here), errno=errno.ENOTDIR)

    @property
    def exists(self):
        return not self.missing

    def create(self, undo):
        for directory in self.missing:
            try:
                os.mkdir(directory, 0o755)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise DiskImageError.from_oserror("cannot create the mount point %s" % directory, exc)
                continue
            undo.append(("remove %s" % directory, lambda d=directory: os.rmdir(d)))


# --- the plan -------------------------------------------------------------

class MountPlan(Plan):
    """Steps, predicted result, and an undo list filled while applying."""

    def __init__(self, state):
        super(MountPlan, self).__init__()
        self.state = state
        self.source = None
        self.selection = None
        self.target = None
        self.fstype = None
        self.options = None
        self.device = None
        self.loop_device = None
        self.mapped_device = None
        self.read_only = None
        self.fstab = None
        self.fstab_line_before = None
        self.fstab_line_after = None
        self.mount_before = None
        self.mount_after = None
        self.created = {"path": False, "loop_device": False, "mount": False, "fstab_entry": False}
        self.remounted = []
        self.unmounted = []
        self.detached = []
        self.pending = []
        self.removed_path = False
        self.undo = []
        self.messages = []

    def apply(self):
        """Run the steps; when one fails, undo what this run did, newest first."""
        try:
            for _description, action in self.steps:
                action()
        except BaseException as exc:
            problems = []
            while self.undo:
                what, action = self.undo.pop()
                try:
                    action()
                except Exception as undo_exc:  # keep undoing: every later step still has to run
                    problems.append("%s: %s" % (what, undo_exc))
            if problems and isinstance(exc, DiskImageError):
                exc.args = ("%s. Rolling back also failed: %s" % (exc.args[0], "; ".join(problems)),)
            raise
        self.undo = []
        return self

    def result(self, check_mode=False):
        live = not check_mode or not self.changed
        if live and self.state in ("mounted",) and self.target is not None:
            current = mountinfo.top_mount_at(self.target.path)
            mount = current.to_dict() if current is not None else None
        else:
            mount = None
        return {
            "src": self.source.path if self.source else None,
            "path": self.target.path if self.target else None,
            "path_resolved_from": self.target.resolved_from if self.target else None,
            "partition": self.selection.to_dict() if self.selection else None,
            "device": self.device,
            "loop_device": self.loop_device,
            "mapped_device": self.mapped_device,
            "fstype": self.fstype,
            "opts": (self.options.string or "defaults") if self.options else None,
            "read_only": self.read_only,
            "mount": mount,
            "fstab": self.fstab,
            "fstab_entry": self.fstab_line_after,
            "created": dict(self.created),
            "remounted": list(self.remounted),
            "unmounted": list(self.unmounted),
            "detached": list(self.detached),
            "pending": list(self.pending),
            "removed_path": self.removed_path,
            "actions": self.descriptions(),
        }

    def diff(self):
        before = {"mount": self.mount_before}
        after = {"mount": self.mount_after}
        if self.fstab is not None:
            before["fstab"] = self.fstab_line_before
            after["fstab"] = self.fstab_line_after
        return {"before": before, "after": after}


def describe_mount(entry):
    return "%s on %s type %s (%s)" % (entry.source, entry.mount_point, entry.fstype, ",".join(entry.mount_options))


def describe_device(devno):
    """'/dev/loop4 (N bytes at offset M of FILE)' for messages."""
    name = sysfs.name_by_devno(*devno) if devno else None
    if name is None:
        return "device %s" % ("%d:%d" % tuple(devno) if devno else "?")
    extent = extent_of(*devno)
    if extent is None or extent.key[0] == "dev" and extent.start == 0:
        return "/dev/%s" % name
    return "/dev/%s (%s)" % (name, extent.describe())


def _serves(entry, wanted, fstype_given=None):
    """Does mountinfo ``entry`` show the filesystem of ``wanted``?"""
    devno = mount_devno(entry)
    if devno is None:
        return False
    extent = extent_of(*devno)
    if extent is None or not extent.shows(wanted):
        return False
    # A bind mount of a subdirectory is not the filesystem (btrfs shows its subvolume here).
    return entry.root == "/" or entry.fstype == "btrfs"


def _wrong_source(target, entry, selection):
    devno = mount_devno(entry)
    what = describe_device(devno) if devno else entry.source
    if devno and entry.root != "/" and entry.fstype != "btrfs":
        what += ", its directory %s" % entry.root
    return DiskImageError(
        "%s already has %s mounted (type %s), not %s" % (target.path, what, entry.fstype, selection.describe()),
        errno=errno.EBUSY, hint="Unmount it first, or choose another path")


def _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks):
    kind, value = selector if selector else (None, None)
    plan.target = Target(path, follow_symlinks)
    if plan.target.resolved_from:
        plan.warnings.append("path %s resolves to %s through a symlink; using %s" % (
            plan.target.resolved_from, plan.target.path, plan.target.path))
    plan.source = Source(src)
    plan.selection = select(plan.source, kind, value)
    plan.fstype = filesystem_type(plan.selection, fstype)
    optical = not plan.source.is_block and plan.source.is_optical(plan.selection.offset)
    plan.options = Options(opts, read_only, plan.fstype, optical)
    plan.read_only = plan.options.read_only


def _plan_fstab(plan, fstab, entry):
    """Make ``fstab`` hold ``entry`` for the target (None: hold nothing for it)."""
    plan.fstab = fstab
    text = mountinfo.read_text(fstab)
    existing = mountinfo.find_fstab_entries(text, plan.target.path)
    plan.fstab_line_before = existing[0].render() if existing else None
    update = mountinfo.update_fstab(fstab, plan.target.path, entry, check_mode=True)
    plan.fstab_line_after = entry.render() if entry is not None else None
    if not update["changed"]:
        return
    if entry is not None:
        plan.created["fstab_entry"] = not existing

    def write():
        old = mountinfo.read_text(fstab)
        mountinfo.update_fstab(fstab, plan.target.path, entry)
        plan.undo.append(("restore %s" % fstab, lambda: mountinfo.write_file_atomic(fstab, old)))

    plan.add(("write %s to %s" % (entry.render(), fstab)) if entry is not None
             else "remove the entry for %s from %s" % (plan.target.path, fstab), write)


# --- mounted --------------------------------------------------------------

def _plan_mount_new(plan, table):
    selection = plan.selection
    exposures = find_exposures(plan.source, selection.extent, table)
    chosen = choose_exposure(exposures, plan.read_only, plan.options.explicit_ro)
    if chosen is not None and chosen.mounts:
        sb_ro = any("ro" in m.super_options for m in chosen.mounts)
        elsewhere = ", ".join(m.mount_point for m in chosen.mounts)
        if sb_ro and not plan.read_only:
            raise DiskImageError(
                "%s is mounted read-only at %s; the kernel keeps one superblock per filesystem, so it cannot "
                "be mounted read-write here at the same time" % (selection.describe(), elsewhere),
                errno=errno.EBUSY, hint="Set read_only: true, or remount %s read-write first" % elsewhere)
        if not sb_ro and plan.options.explicit_ro:
            raise DiskImageError(
                "%s is mounted read-write at %s, so a read-only mount here cannot keep it unchanged" % (
                    selection.describe(), elsewhere),
                errno=errno.EBUSY, hint="Unmount %s first, or drop read_only" % elsewhere)
    if chosen is not None:
        plan.device = chosen.device
        plan.loop_device = chosen.loop
        plan.mapped_device = chosen.device if chosen.mapped else None
        reuse_ours = chosen.kind == "loop" and ownership.owner(chosen.name) == OWNER
    else:
        reuse_ours = False

    if not plan.target.exists:
        plan.created["path"] = True
        plan.add("create the mount point %s" % plan.target.path, lambda: plan.target.create(plan.undo))

    if chosen is None:
        if plan.source.is_block and selection.partition is None:
            plan.device = plan.source.path
        else:
            _plan_attach(plan)

    words = plan.options.kernel_words()

    def mount():
        mountsys.mount_with_options(plan.device, plan.target.path, plan.fstype, words)
        plan.undo.append(("unmount %s" % plan.target.path, lambda: mountsys.umount2(plan.target.path)))
        if plan.created["loop_device"] or reuse_ours:
            # Like mount -o loop: the device goes away with its last mount, even
            # one unmounted by hand.
            loopdev.set_autoclear(plan.loop_device, True)

    plan.created["mount"] = True
    plan.add("mount %s (%s) on %s as %s with %s" % (
        plan.device or "a new loop device", selection.describe(), plan.target.path, plan.fstype,
        plan.options.string or "defaults"), mount)
    plan.mount_after = "%s on %s type %s (%s)" % (
        plan.device or selection.describe(), plan.target.path, plan.fstype, plan.options.string or "defaults")


def _plan_attach(plan):
    selection = plan.selection
    offset = selection.partition.start if selection.partition is not None else 0
    sizelimit = selection.partition.size if selection.partition is not None else 0
    read_only = plan.read_only
    request = loopdev.AttachRequest(plan.source.path, offset=offset, sizelimit=sizelimit, read_only=read_only)
    request.validate()
    plan.created["loop_device"] = True

    def attach():
        status = loopdev.attach(plan.source.path, offset=offset, sizelimit=sizelimit, read_only=read_only)
        name = status.name

        def undo():
            try:
                loopdev.detach(status.device, force=True)
            finally:
                ownership.release(name)

        plan.undo.append(("detach %s" % status.device, undo))
        ownership.claim(name, OWNER)
        plan.device = plan.loop_device = status.device

    plan.add("attach %s%s to a new %sloop device" % (
        plan.source.path, " at offset %d with sizelimit %d" % (offset, sizelimit) if selection.partition else "",
        "read-only " if read_only else ""), attach)


def _plan_remount(plan, current, fstype_given):
    if fstype_given and current.fstype != plan.fstype:
        raise DiskImageError(
            "%s has %s mounted as %s, not %s; the type of a mount cannot change in place" % (
                plan.target.path, plan.selection.describe(), current.fstype, plan.fstype),
            hint="Unmount it first (state: unmounted), or set fstype: %s" % current.fstype)
    diff = mountsys.compare_options(plan.options.parsed, current.mount_options, current.super_options,
                                    fstype=current.fstype)
    devno = mount_devno(current)
    name = sysfs.name_by_devno(*devno)
    device_ro = _device_read_only(name)
    if diff.satisfied:
        return
    if any(m.startswith("rw ") for m in diff.mismatches) and device_ro:
        raise DiskImageError(
            "%s is mounted from the read-only device /dev/%s; it cannot be remounted read-write" % (
                plan.target.path, name),
            errno=errno.EROFS,
            hint="Unmount it (state: unmounted) and mount it again without read_only, or keep read_only: true")
    if any(m.startswith("ro ") for m in diff.mismatches) and not device_ro:
        plan.warnings.append("%s is remounted read-only, but /dev/%s under it stays writable; unmount and mount "
                             "again for a read-only device" % (plan.target.path, name))
    plan.remounted = list(diff.mismatches)
    path = plan.target.path

    def remount():
        try:
            plan.messages.extend(mountsys.apply_remount(path, diff))
        except DiskImageError as exc:
            if exc.errno in (errno.EBUSY, errno.EROFS, errno.EACCES):
                raise
            raise DiskImageError(exc.message, errno=exc.errno,
                                 hint="The kernel does not change %s of this filesystem in place; unmount it "
                                      "(state: unmounted) and mount it again" % ", ".join(diff.mismatches))

    plan.add("remount %s: %s" % (path, ", ".join(diff.mismatches)), remount)
    plan.mount_after = "%s on %s type %s (%s)" % (current.source, path, current.fstype,
                                                  plan.options.string or "defaults")


def _describe_current(plan, current):
    devno = mount_devno(current)
    name = sysfs.name_by_devno(*devno) if devno else None
    plan.device = current.source if current.source.startswith("/dev/") else (
        "/dev/%s" % name if name else current.source)
    if name is None:
        return
    if _is_loop_name(name):
        plan.loop_device = "/dev/%s" % name
        return
    if _is_partition(name):
        parent = _parent_disk(name)
        plan.mapped_device = "/dev/%s" % name
        plan.loop_device = "/dev/%s" % parent if _is_loop_name(parent) else None
        return
    if name.startswith("dm-"):
        plan.mapped_device = device_path(name)
        linear = _dm_linear(name)
        below = sysfs.name_by_devno(*linear[0]) if linear else None
        plan.loop_device = "/dev/%s" % below if below and _is_loop_name(below) else None


def plan_mounted(src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None,
                 follow_symlinks=False):
    """Plan: ``path`` holds the selected filesystem of ``src`` with ``opts``."""
    plan = MountPlan("mounted")
    _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks)
    table = mountinfo.read_mountinfo()
    current = mountinfo.top_mount_at(plan.target.path, table) if plan.target.exists else None
    plan.mount_before = describe_mount(current) if current is not None else None
    if current is not None:
        if not _serves(current, plan.selection.extent):
            raise _wrong_source(plan.target, current, plan.selection)
        _describe_current(plan, current)
        plan.mount_after = plan.mount_before
        _plan_remount(plan, current, bool(fstype))
    else:
        _plan_mount_new(plan, table)
    if fstab:
        _plan_fstab(plan, fstab, fstab_entry(plan.selection, plan.target.path, plan.fstype, plan.options))
    return plan


# --- unmounted and absent -------------------------------------------------

def _stack_at(path, table):
    """The mounts at ``path``, visible one first, each the one it covers next."""
    here = dict((m.mount_id, m) for m in mountinfo.mounts_at(path, table))
    top = mountinfo.top_mount_at(path, table)
    stack = []
    while top is not None and top.mount_id in here and top not in stack:
        stack.append(top)
        top = here.get(top.parent_id)
    return stack


def _refuse_busy(path):
    children = mountinfo.mounts_under(path, include_self=False)
    holders = mountsys.holders_of_mount(path)
    loops = mountsys.loop_devices_backed_under(path)
    if not (children or holders or loops):
        return
    what = []
    if holders:
        what.append("processes %s" % ", ".join(
            "%s (pid %d: %s)" % (h["comm"] or "?", h["pid"], ", ".join(h["uses"])) for h in holders))
    if children:
        what.append("mounts below it: %s" % ", ".join(m.mount_point for m in children))
    if loops:
        what.append("loop devices backed by files on it: %s" % ", ".join(
            "%s (%s)" % (lo["device"], lo["backing_file"]) for lo in loops))
    raise DiskImageError("%s is busy: used by %s" % (path, "; ".join(what)), errno=errno.EBUSY,
                         hint="Stop or move them first, or set lazy: true to detach the mount now and let the "
                              "kernel release it when they are done")


def _plan_teardown(plan, table, unmounting, lazy):
    """Detach the loop devices image_mount attached for this source, once unused."""
    exposures = find_exposures(plan.source, plan.selection.extent, table)
    ids = set(m.mount_id for m in unmounting)
    for exposure in exposures:
        if exposure.kind != "loop" or ownership.owner(exposure.name) != OWNER:
            continue
        others = [m for m in exposure.mounts if m.mount_id not in ids]
        if others or sysfs.holders(exposure.name) or blkpg.kernel_partitions(exposure.name):
            continue
        if not exposure.mounts and blockdev.busy_reasons(exposure.name, dev_path=exposure.device):
            continue  # open by someone else right now: not unused
        plan.loop_device = plan.loop_device or exposure.device

        def detach(exposure=exposure):
            _release_loop(plan, exposure, lazy)

        plan.add("detach %s, which image_mount attached" % exposure.device, detach)
        plan.detached.append(exposure.device)


def _release_loop(plan, exposure, lazy):
    device, name = exposure.device, exposure.name
    number = int(name[4:])
    current = loopdev.status(number)
    if current is not None and lazy and _busy(name, device):
        # The lazily unmounted filesystem still holds it: the kernel detaches it then.
        if not current.autoclear:
            loopdev.set_autoclear(device, True)
        plan.detached.remove(device)
        plan.pending.append(device)
        return
    # With autoclear the kernel detaches on the last close, which the unmount
    # just was; it may take a moment to show.
    deadline = time.monotonic() + AUTOCLEAR_WAIT
    while current is not None and current.autoclear and time.monotonic() < deadline:
        time.sleep(0.02)
        current = loopdev.status(number)
    if current is not None:
        reasons = _busy(name, device)
        if reasons:
            raise DiskImageError("%s is still busy after the unmount: %s" % (device, "; ".join(reasons)),
                                 errno=errno.EBUSY, hint="Release it, then run the task again")
        if loopdev.detach(device) == "pending":
            plan.detached.remove(device)
            plan.pending.append(device)
    ownership.release(name)


def _busy(name, device):
    try:
        return blockdev.busy_reasons(name, dev_path=device)
    except DiskImageError:
        return []  # gone while we looked


def _plan_unmount(plan, lazy, table):
    if not plan.target.exists:
        return []
    stack = _stack_at(plan.target.path, table)
    unmounting = []
    for entry in stack:
        if not _serves(entry, plan.selection.extent):
            break
        unmounting.append(entry)
    if stack and not unmounting:
        raise _wrong_source(plan.target, stack[0], plan.selection)
    if not unmounting:
        return []
    plan.mount_before = describe_mount(stack[0])
    rest = stack[len(unmounting):]
    plan.mount_after = describe_mount(rest[0]) if rest else None
    _describe_current(plan, unmounting[0])
    if not lazy:
        _refuse_busy(plan.target.path)
    path = plan.target.path
    flags = mountsys.MNT_DETACH if lazy else 0
    for entry in unmounting:
        def umount(entry=entry):
            mountsys.umount2(path, flags)
            plan.unmounted.append(describe_mount(entry))

        plan.add("unmount %s from %s%s" % (entry.source, path, " lazily" if lazy else ""), umount)
    return unmounting


def _missing_source(plan, src, table):
    """The Source of ``src``, or None when it does not exist and nothing is
    mounted at the target (then nothing can show it)."""
    try:
        return Source(src)
    except DiskImageError as exc:
        if exc.errno != errno.ENOENT:
            raise
        if plan.target.exists and _stack_at(plan.target.path, table):
            raise DiskImageError("%s is mounted, and src %s does not exist, so it cannot be told whether the mount "
                                 "is of src" % (plan.target.path, os.path.abspath(src)), errno=errno.ENOENT,
                                 hint="Restore src, or unmount %s yourself" % plan.target.path)
        return None


def plan_unmounted(src, path, selector=None, lazy=False, follow_symlinks=False, fstype=None):
    """Plan: ``path`` does not hold the source, and no loop device image_mount
    attached for it is left. A different source at ``path`` is an error."""
    plan = MountPlan("unmounted")
    plan.target = Target(path, follow_symlinks)
    table = mountinfo.read_mountinfo()
    plan.source = _missing_source(plan, src, table)
    if plan.source is None:
        return plan
    kind, value = selector if selector else (None, None)
    plan.selection = select(plan.source, kind, value)
    plan.fstype = plan.selection.filesystem.get("type") if plan.selection.filesystem else fstype
    unmounting = _plan_unmount(plan, lazy, table)
    _plan_teardown(plan, table, unmounting, lazy)
    return plan


def plan_absent(src, path, selector=None, lazy=False, follow_symlinks=False, fstab=None, fstype=None):
    """Plan: unmounted, no fstab entry for ``path``, and an empty mount point removed."""
    fstab = fstab or DEFAULT_FSTAB
    plan = MountPlan("absent")
    plan.target = Target(path, follow_symlinks)
    table = mountinfo.read_mountinfo()
    plan.source = _missing_source(plan, src, table)
    if plan.source is None:
        _plan_fstab_absent(plan, fstab, os.path.abspath(src), None)
        _plan_rmdir(plan)
        return plan
    kind, value = selector if selector else (None, None)
    plan.selection = select(plan.source, kind, value)
    plan.fstype = plan.selection.filesystem.get("type") if plan.selection.filesystem else fstype
    unmounting = _plan_unmount(plan, lazy, table)
    _plan_teardown(plan, table, unmounting, lazy)
    _plan_fstab_absent(plan, fstab, plan.source.path, plan.selection.offset)
    # After a lazy unmount the directory may still be in use: leave it.
    if not lazy:
        _plan_rmdir(plan, unmounting)
    return plan


def _plan_fstab_absent(plan, fstab, source_path, offset):
    entries = mountinfo.find_fstab_entries(mountinfo.read_text(fstab), plan.target.path)
    others = [e for e in entries if not entry_refers_to(e, source_path, offset)]
    if others:
        raise DiskImageError("%s has an entry for %s that mounts something else: %s" % (
            fstab, plan.target.path, others[0].render()),
            hint="Fix src or the selector, or edit that entry yourself")
    _plan_fstab(plan, fstab, None)


def _plan_rmdir(plan, unmounting=()):
    """Remove the mount point when it is an empty directory (rmdir, never more)."""
    path = plan.target.path
    if not plan.target.exists:
        return
    if not unmounting:
        # Nothing of ours is mounted there: act only on what can be seen now.
        try:
            if os.path.ismount(path) or os.listdir(path):
                return
        except OSError:
            return

    def rmdir():
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                return  # files under the unmounted filesystem, or another mount: keep it
            raise DiskImageError.from_oserror("cannot remove the mount point %s" % path, exc)
        plan.removed_path = True

    plan.add("remove the mount point %s if it is empty" % path, rmdir)


# --- present --------------------------------------------------------------

def plan_present(src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None,
                 follow_symlinks=False):
    """Plan: an fstab entry through which mount(8) mounts the source at ``path``
    by itself, and the mount point it needs. Nothing is mounted."""
    plan = MountPlan("present")
    _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks)
    table = mountinfo.read_mountinfo()
    current = mountinfo.top_mount_at(plan.target.path, table) if plan.target.exists else None
    plan.mount_before = plan.mount_after = describe_mount(current) if current is not None else None
    if not plan.target.exists:
        plan.created["path"] = True
        plan.add("create the mount point %s" % plan.target.path, lambda: plan.target.create(plan.undo))
    _plan_fstab(plan, fstab or DEFAULT_FSTAB, fstab_entry(plan.selection, plan.target.path, plan.fstype,
                                                          plan.options))
    return plan


def selector_of(params):
    """(kind, value) of the one selector set in ``params``, or None."""
    given = [(kind, params.get(kind)) for kind in SELECTORS if params.get(kind) not in (None, "")]
    if len(given) > 1:
        raise DiskImageError("%s select a partition in different ways" % " and ".join(k for k, _v in given),
                             hint="Give only one of %s" % ", ".join(SELECTORS))
    return given[0] if given else None


def plan(state, src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None, lazy=False,
         follow_symlinks=False):
    if state == "mounted":
        return plan_mounted(src, path, selector, fstype, opts, read_only, fstab, follow_symlinks)
    if state == "present":
        return plan_present(src, path, selector, fstype, opts, read_only, fstab, follow_symlinks)
    if state == "unmounted":
        return plan_unmounted(src, path, selector, lazy, follow_symlinks, fstype)
    if state == "absent":
        return plan_absent(src, path, selector, lazy, follow_symlinks, fstab, fstype)
    raise DiskImageError("state %r is not one of %s" % (state, ", ".join(STATES)))

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_mount's ``src`` and partition selector name.

``MountSource`` checks that src is an image file or a block device and knows its
extent; ``select`` resolves a selector (partition, partlabel, partuuid, label,
uuid, parttype) to a ``Selection``: the whole source or one partition of its
MBR or GPT, with the filesystem fsprobe found in it; ``filesystem_type`` says
what to mount it as. All of it only reads the image, so that a wrong src or a
selector that matches nothing or several partitions fails with every partition
named before anything is attached or mounted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import ImageSource
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import extent_of, file_extent
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import format_size

# The ways to name one filesystem of an image, as module options (image_mount,
# image_tree's and image_files' mounts); at most one is given.
SELECTOR_SPEC = dict(partition=dict(type="int"), partlabel=dict(type="str"), partuuid=dict(type="str"),
                     label=dict(type="str"), uuid=dict(type="str"), parttype=dict(type="str"))
SELECTORS = tuple(SELECTOR_SPEC)
ISO_MAGIC_OFFSET = 32769  # "CD001" of the first volume descriptor at 32 KiB
ISO_MAGIC = b"CD001"


class MountSource(ImageSource):
    """What ``src`` names (an image file, raw, partitioned or an ISO, or a block
    device), and the extent of bytes it shows."""

    def __init__(self, src):
        super(MountSource, self).__init__(src)
        self.extent = extent_of(*self.devno) if self.is_block else file_extent(self.path, self.size)
        if self.extent is None or self.extent.size < 512:
            raise DiskImageError("src %s is empty" % self.path, hint="Give an image that holds a filesystem")

    def probe(self, offset=0, size=None):
        try:
            return fsprobe.probe_path(self.path, offset=offset, size=size)
        except DiskImageError:
            return None

    def read_table(self):
        # Imported here, like the partition types below: a filesystem image
        # without a table never needs them, and modules pay for every line
        # they import (module_utils ship as source, compiled on every task).
        from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_source_table
        return read_source_table(self)

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
        from ansible_collections.diskimage.loop.plugins.module_utils._partition import types as partition_types
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


def selector_of(params):
    """(kind, value) of the one selector set in ``params``, or None."""
    given = [(kind, params.get(kind)) for kind in SELECTORS if params.get(kind) not in (None, "")]
    if len(given) > 1:
        raise DiskImageError("%s select a partition in different ways" % " and ".join(k for k, _v in given),
                             hint="Give only one of %s" % ", ".join(SELECTORS))
    return given[0] if given else None

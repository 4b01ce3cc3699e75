# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystems of a layout's partitions: made where they are not yet.

A layout entry may declare the filesystem its partition holds (``fstype``,
``fs_label`` or ``label``, ``fs_uuid``, ``mkfs_options``, ``mkfs_program``).
``split_entries`` takes those keys out, so the table planner sees only table
keys. ``plan_mkfs`` compares each declaration with what the partition holds
(the superblock, read from the image) and decides: nothing to do, make it
(the partition holds no signature, or ``force_mkfs``), or refuse - before
anything is written - a partition that holds something else, or whose bytes
are in use.

mkfs runs on a private loop device that covers the partition alone, attached
with autoclear and held open by this process (loopdev.attach_held): it works
whatever exposes the partitions (partscan, dm, nothing yet), and the kernel
releases it when the descriptor is closed - after mkfs, on a failure, or when
the process is killed. The commands are those of ``_reproducible/mkfs.py``,
shared with image_mkfs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import uuid

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, blockdev, devmapper, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import kpartx_compat
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import _PART_KEYS as TABLE_KEYS
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids, mkfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

FS_KEYS = ("fstype", "fs_label", "label", "fs_uuid", "mkfs_options", "mkfs_program")
# Types whose mkfs takes a UUID (mkfs.recipe knows how).
UUID_TYPES = mkfs.EXT + ("vfat", "swap", "xfs", "btrfs")
DEVICE = "@DEVICE@"


def split_entries(layout):
    """(the layout with only table keys in its entries, [filesystem declaration
    or None per entry]) - each declaration checked."""
    if not layout or not isinstance(layout.get("partitions"), list):
        return layout, []
    table_entries = []
    declared = []
    for index, raw in enumerate(layout["partitions"]):
        if not isinstance(raw, dict):
            table_entries.append(raw)
            declared.append(None)
            continue
        unknown = sorted(str(k) for k in raw if k not in TABLE_KEYS and k not in FS_KEYS)
        if unknown:
            raise DiskImageError("partition entry %d has unknown key%s %s" % (
                index + 1, "s" if len(unknown) > 1 else "", ", ".join(unknown)),
                hint="Known keys: %s" % ", ".join(TABLE_KEYS + FS_KEYS))
        table_entries.append(dict((k, v) for k, v in raw.items() if k not in FS_KEYS))
        declared.append(parse_declaration(raw, index))
    out = dict(layout)
    out["partitions"] = table_entries
    return out, declared


def parse_declaration(raw, index):
    """The filesystem an entry declares, as mkfs.recipe takes it, or None."""
    where = "partition entry %d" % (index + 1)
    # A role passes its defaults along: an empty value declares nothing.
    given = dict((k, raw[k]) for k in FS_KEYS if raw.get(k) is not None and raw.get(k) != "" and raw.get(k) != [])
    if not given:
        return None
    if not given.get("fstype"):
        raise DiskImageError("%s has %s but no fstype" % (where, ", ".join(sorted(given))),
                             hint="Declare the filesystem type, such as fstype: ext4")
    fstype = str(given["fstype"]).strip()
    if not fstype or "/" in fstype or fstype.startswith("-"):
        raise DiskImageError("%s has fstype %r, which is not a filesystem type" % (where, given["fstype"]))
    if "fs_label" in given and "label" in given and str(given["fs_label"]) != str(given["label"]):
        raise DiskImageError("%s has fs_label %r and label %r" % (where, given["fs_label"], given["label"]),
                             hint="Give the filesystem label once (fs_label)")
    label = given.get("fs_label", given.get("label"))
    options = given.get("mkfs_options", [])
    if not isinstance(options, list) or not all(isinstance(o, (str, int, float)) for o in options):
        raise DiskImageError("%s: mkfs_options must be a list of arguments, not %r" % (where, options),
                             hint='Write one argument per item, such as [-m, "0"]')
    fs_uuid = given.get("fs_uuid")
    if fs_uuid is not None:
        fs_uuid = _check_uuid(mkfs.ALIASES.get(fstype, fstype), str(fs_uuid).strip(), where)
    return {"fstype": fstype, "label": None if label is None else str(label), "uuid": fs_uuid,
            "mkfs_options": [str(o) for o in options], "mkfs_program": given.get("mkfs_program")}


def _check_uuid(fstype, value, where):
    if fstype not in UUID_TYPES:
        raise DiskImageError("%s: fs_uuid cannot be set on %s" % (where, fstype),
                             hint="Set it with mkfs_options, or drop fs_uuid; it works for %s" % ", ".join(UUID_TYPES))
    if fstype == "vfat":
        digits = value.replace("-", "")
        if len(digits) == 8 and all(c in "0123456789abcdefABCDEF" for c in digits):
            return "%s-%s" % (digits[:4].upper(), digits[4:].upper())
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise DiskImageError("%s: fs_uuid %r is not a UUID" % (where, value),
                             hint="Write it as 8-4-4-4-12 hex digits (vfat takes ABCD-1234 too)")


def same_uuid(fstype, declared, found):
    """Whether a probed UUID is the declared one; a vfat volume id is 8 hex digits."""
    if found is None:
        return False
    if fstype == "vfat":
        return ids.volume_id(declared).lower() == found.replace("-", "").lower()
    return declared.lower() == found.lower()


def holds(found, fs):
    """Whether ``found`` (a probe result or None) is the declared filesystem."""
    if not found:
        return False
    fstype = mkfs.ALIASES.get(fs["fstype"], fs["fstype"])
    if found.get("type") != fstype:
        return False
    if fs["label"] is not None and (found.get("label") or "") != fs["label"]:
        return False
    return fs["uuid"] is None or same_uuid(fstype, fs["uuid"], found.get("uuid"))


def describe(found):
    """A probe result in words: 'ext4 labelled "root"'."""
    text = found.get("type") or "a %s signature" % (found.get("usage") or "unknown")
    if found.get("label"):
        text += " labelled %r" % found["label"]
    if found.get("uuid"):
        text += " (UUID %s)" % found["uuid"]
    return text


def declared_words(fs):
    text = fs["fstype"]
    if fs["label"] is not None:
        text += " labelled %r" % fs["label"]
    if fs["uuid"] is not None:
        text += " (UUID %s)" % fs["uuid"]
    return text


def pair(table, planned, declared):
    """[(partition, declaration)] for the declared partitions of ``table``, by
    the entry each planned partition came from (``spec_index``)."""
    parts = dict((p.number, p) for p in table.partitions)
    out = []
    for planned_part in planned.partitions:
        index = getattr(planned_part, "spec_index", None)
        fs = declared[index] if index is not None and 0 <= index < len(declared) else None
        if fs is None:
            continue
        part = parts.get(planned_part.number)
        if part is None or part.kind == "extended":
            raise DiskImageError("partition %d is an extended partition; it cannot hold %s" % (
                planned_part.number, fs["fstype"]), hint="Declare the filesystems on the logical partitions")
        out.append((part, fs))
    return out


def _probe(path, part, exists):
    if not exists:
        return None
    try:
        return fsprobe.probe_path(path, offset=part.start, size=part.size)
    except DiskImageError:
        return None


class MkfsStep(object):
    """One filesystem to make: the partition, the declaration, what it holds."""

    def __init__(self, source, table, part, fs, found):
        self.source = source
        self.table = table
        self.part = part
        self.fs = fs
        self.found = found
        hidden = part.start // table.sector_size if mkfs.ALIASES.get(fs["fstype"], fs["fstype"]) == "vfat" \
            and "-h" not in fs["mkfs_options"] else None
        spec = dict(fs, device=DEVICE)
        self.recipe = mkfs.recipe(spec, fs["uuid"], hidden_sectors=hidden)

    def report(self, device=DEVICE):
        found = self.found
        return {"number": self.part.number, "fstype": self.fs["fstype"], "label": self.fs["label"],
                "uuid": self.fs["uuid"],
                "replaced": dict((k, found.get(k)) for k in ("type", "label", "uuid")) if found else None,
                "argv": [device if a == DEVICE else a for a in self.recipe.argv]}

    def run(self, plan, run_command):
        options = {"offset": self.part.start, "sizelimit": self.part.size}
        if self.table.sector_size != 512:
            options["sector_size"] = self.table.sector_size
        held, fd = loopdev.attach_held(self.source.path, **options)
        try:
            if not os.path.exists(held.device):
                blockdev.node_for(os.path.basename(held.device))
            report = self.report(held.device)
            rc, out, err = run_command(report["argv"], environ_update=self.recipe.env)
            if rc != 0:
                raise DiskImageError("making %s on partition %d failed (%s, exit status %d): %s" % (
                    self.fs["fstype"], self.part.number, report["argv"][0], rc, _first_lines(err or out)),
                    hint="Check mkfs_options and mkfs_program; the partition may now hold a damaged filesystem")
            plan.mkfs_made.append(report)
        finally:
            os.close(fd)  # the kernel releases the private loop device


def _first_lines(text, count=4):
    """The start of a program's message: a usage text would bury the one line that matters."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " / ".join(lines[:count]) + (" ..." if len(lines) > count else "") if lines else "no message"


def plan_mkfs(source, table, planned, declared, force_mkfs, exists=True):
    """The MkfsSteps for ``table`` (the table the image has or will have),
    every refusal raised before anything is done."""
    steps = []
    conflicts = []
    for part, fs in pair(table, planned, declared):
        found = _probe(source.path, part, exists)
        if holds(found, fs):
            continue
        if found and not force_mkfs:
            conflicts.append("partition %d holds %s, not the declared %s" % (
                part.number, describe(found), declared_words(fs)))
            continue
        steps.append(MkfsStep(source, table, part, fs, found))
    if conflicts:
        raise DiskImageError("%s: %s" % (source.path, "; ".join(conflicts)),
                             hint="Set force_mkfs: true to format over it (its data is lost), or change the declaration")
    if steps and exists and not getattr(source, "planned", False):
        in_use = []
        for step in steps:
            in_use += ["partition %d: %s" % (step.part.number, r) for r in _users(source, step.part)]
        if in_use:
            raise DiskImageError("%s: cannot make filesystems on partitions in use: %s" % (
                source.path, "; ".join(in_use)), hint="Unmount them first; nothing was formatted")
    return steps


def _attachments(source):
    """The loop (or block) devices that show bytes of the image, as
    (device path, kernel name, offset, sizelimit)."""
    if not source.is_block:
        return [(d.device, d.name, d.offset, d.sizelimit) for d in loopdev.find_associated(source.path)]
    return [(source.path, source.kernel_name, 0, 0)]


def _users(source, part):
    """What uses the bytes of ``part``, in words: a partition device or map of
    it that is mounted or held, or a loop device over it that is."""
    reasons = []
    end = part.start + part.size
    for device, name, offset, sizelimit in _attachments(source):
        if offset >= end or (sizelimit and offset + sizelimit <= part.start):
            continue
        if offset or sizelimit:
            reasons += ["%s %s" % (device, r) for r in blockdev.busy_reasons(name, dev_path=device)]
            continue
        kernel = blkpg.kernel_partitions(name).get(part.number)
        if kernel is not None:
            reasons += ["%s %s" % (kernel.device, r)
                        for r in blockdev.busy_reasons(kernel.name, dev_path=kernel.device)]
        if devmapper.available():
            with devmapper.DeviceMapper() as dm:
                maps = kpartx_compat.find_partition_maps(dm, kpartx_compat.describe_parent(device))
            for found in maps:
                if found.number == part.number and sysfs.devno("dm-%d" % found.minor):
                    reasons += ["/dev/mapper/%s %s" % (found.name, r)
                                for r in blockdev.busy_reasons("dm-%d" % found.minor)]
    return reasons

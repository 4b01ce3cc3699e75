# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for the partitions of an image: a table, and a block device
for every partition.

``plan_present`` / ``plan_absent`` read the system and return a Plan of steps
(the plan protocol of plan.py), so check mode, diff and the real run share one
decision. Partitions are exposed by one of two backends:

* ``partscan``: kernel partition devices (/dev/loopNpM), reconciled with our
  own parse through BLKPG, so a kernel without partition parsers works too;
* ``dm``: device-mapper linear maps named and tabled exactly as ``kpartx -a``
  makes them (/dev/mapper/loopNpM).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, blockdev, devmapper, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import ImageSource
from ansible_collections.diskimage.loop.plugins.module_utils._partition import grow, growth, kpartx_compat
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout, write_table
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_source_table

OWNER = "image_partitions"
BACKENDS = ("auto", "partscan", "dm")


def _whole_disk(src):
    """The ImageSource of ``src``; a partition is refused: the table is the disk's."""
    source = ImageSource(src)
    if source.is_block and sysfs.is_partition(source.kernel_name):
        raise DiskImageError("%s is a partition, not a whole disk or image" % source.path,
                             hint="Name the disk or the image that holds the partition table")
    return source


def _layout_differences(table, planned, layout):
    """Ways ``table`` fails to be ``planned``; only what the layout pins counts."""
    if table.label != planned.label:
        return ["the label is %s, not %s" % (table.label, planned.label)]
    problems = []
    if layout.get("disk_id") is not None and str(table.disk_id).lower() != str(planned.disk_id).lower():
        problems.append("the disk id is %s, not %s" % (table.disk_id, planned.disk_id))
    have = dict((p.number, p) for p in table.partitions)
    want = dict((p.number, p) for p in planned.partitions)
    if sorted(have) != sorted(want):
        problems.append("partitions %s, not %s" % (sorted(have), sorted(want)))
        return problems
    specs = layout_specs(planned, layout)
    for number in sorted(want):
        old, new = have[number], want[number]
        if (old.start, old.size) != (new.start, new.size):
            problems.append("partition %d spans %d+%d bytes, not %d+%d" % (
                number, old.start, old.size, new.start, new.size))
        if old.type != new.type:
            problems.append("partition %d has type %s, not %s" % (number, old.type, new.type))
        spec = specs.get(number) or {}
        for key in ("name", "uuid", "bootable"):
            if key in spec and spec[key] is not None and getattr(old, key) != getattr(new, key):
                problems.append("partition %d has %s %r, not %r" % (number, key, getattr(old, key), getattr(new, key)))
        if spec.get("attributes") is not None and old.attributes != new.attributes:
            problems.append("partition %d has attributes %s, not %s" % (
                number, _show_attributes(old.attributes), _show_attributes(new.attributes)))
    return problems


def layout_specs(planned, layout):
    """{partition number: the layout entry it was planned from}.

    The planner records each partition's entry, so an explicit ``type: extended``
    entry and the extended partition the planner adds for more than four dos
    entries (which has no entry) both pair up right."""
    raw = layout.get("partitions") or []
    specs = {}
    for part in planned.partitions:
        index = getattr(part, "spec_index", None)
        if index is not None and 0 <= index < len(raw):
            specs[part.number] = raw[index] if raw[index] is not None else {}
    return specs


def attribute_bits(attributes):
    """The numbers of the bits set in a GPT attribute field, lowest first."""
    return [bit for bit in range(64) if (attributes or 0) >> bit & 1]


def _show_attributes(attributes):
    return "0x%016x (bits: %s)" % (attributes, ", ".join(str(bit) for bit in attribute_bits(attributes)) or "none")


def _pick_backend(requested, source, device_number, read_only):
    if requested != "auto":
        if requested == "dm" and not devmapper.available():
            raise DiskImageError("this kernel has no device-mapper (%s is missing)" % devmapper.DM_CONTROL,
                                 hint="Load dm_mod (modprobe dm_mod), or use backend: partscan")
        return requested
    if devmapper.available() and device_number is not None and _existing_maps("/dev/loop%d" % device_number):
        return "dm"  # keep what kpartx (or an earlier run) made
    if device_number is not None or not devmapper.available():
        return "partscan"
    return "dm"


def _existing_maps(device):
    with devmapper.DeviceMapper() as dm:
        return kpartx_compat.find_partition_maps(dm, kpartx_compat.describe_parent(device))


def partition_facts(table, devices, image_path, fs_offset=0):
    """The result's partition list: the table's facts, the device of each, and
    what filesystem it holds (read from the image, so check mode has it too)."""
    facts = []
    for part in table.partitions:
        entry = part.to_dict()
        entry["attribute_bits"] = attribute_bits(part.attributes)
        entry["device"] = devices.get(part.number)
        entry["filesystem"] = None
        if part.kind != "extended" and image_path:
            try:
                entry["filesystem"] = fsprobe.probe_path(image_path, offset=fs_offset + part.start, size=part.size)
            except DiskImageError:
                entry["filesystem"] = None
        facts.append(entry)
    return facts


def _exposed_devices(backend, device, table):
    """{number: device path} the backend exposes for ``device`` right now."""
    if device is None or table is None:
        return {}
    if backend == "dm":
        if not devmapper.available():
            return {}
        return dict((found.number, "/dev/mapper/%s" % found.name) for found in _existing_maps(device))
    disk = os.path.basename(device)
    return dict((number, part.device) for number, part in blkpg.kernel_partitions(disk).items())


class PartitionsPlan(Plan):
    def __init__(self, state):
        super(PartitionsPlan, self).__init__()
        self.state = state
        self.before = []
        self.after = []
        self.device = None
        self.backend = None
        self.table = None
        self.attached = False
        self.attach_planned = False
        self.detached = []
        self.skipped = []
        self.source = None
        self.predicted_devices = {}
        self.growth = None
        self.extensions = []  # objects with result(plan, result, check_mode) and diff(plan, diff)

    def result(self, check_mode=False):
        if self.state == "absent":
            return {"src": self.source.path, "detached": self.detached, "skipped_devices": self.skipped}
        devices = _exposed_devices(self.backend, self.device, self.table) if not check_mode or not self.changed \
            else self.predicted_devices
        result = {
            "src": self.source.path,
            "device": self.device,
            "backend": self.backend,
            "loop_attached": self.attached or bool(check_mode and self.attach_planned),
            "table": self.table.to_dict() if self.table is not None else None,
            "partitions": partition_facts(self.table, devices, self.source.path) if self.table else [],
            "growth": self.growth.result() if self.growth is not None else None,
        }
        for extension in self.extensions:
            extension.result(self, result, check_mode)
        return result

    def diff(self):
        before = self.before[0] if len(self.before) == 1 else {"devices": self.before}
        after = self.after[0] if len(self.after) == 1 else {"devices": self.after}
        if self.growth is not None:
            grown_before, grown_after = self.growth.diff()
            before = dict(before, **grown_before)
            after = dict(after, **grown_after)
        diff = {"before": before, "after": after}
        for extension in self.extensions:
            extension.diff(self, diff)
        return diff


def _take_down(device):
    """Undo an attach of this run: what it exposed, the attachment, the claim."""
    try:
        if devmapper.available() and _existing_maps(device):
            _remove_maps(device)
        loopdev.detach(device, force=True)
    finally:
        ownership.release(os.path.basename(device))


def _predicted_names(backend, device, table):
    if device is None:
        return {}
    disk = os.path.basename(device)
    if backend == "dm":
        return dict((p.number, "/dev/mapper/%s" % blkpg.partition_name(disk, p.number)) for p in table.partitions)
    return dict((p.number, "/dev/%s" % blkpg.partition_name(disk, p.number)) for p in table.partitions)


def _last_takes_rest(layout):
    """Whether the layout's last partition grows with the disk (no size, rest, or a percentage)."""
    parts = (layout or {}).get("partitions") or []
    last = parts[-1] if parts and isinstance(parts[-1], dict) else {}
    size = last.get("size") if parts else 0
    return size is None or (isinstance(size, str) and (size.strip().lower() == "rest" or size.strip().endswith("%")))


def plan_present(src, backend="auto", read_only=False, layout=None, force=False, sector_size=None,
                 source=None, expose=True, size=None, relocate_gpt=False, grow_filesystem=True):
    """Plan: a partition table on ``src`` and a block device for every partition.

    ``source``: what ``src`` is, when the caller knows better than the file
    system does (an image file the run will create: no table yet, nothing
    attached). ``expose`` False: the table only - nothing is attached.
    ``size`` (bytes or a unit) is the disk size the image must have: a larger
    one grows the file, the table and - with ``grow_filesystem`` - the
    filesystem of the last partition (see growth.py); a smaller one is refused.
    ``relocate_gpt`` moves a GPT backup header that is not at the end of the
    disk there, also when nothing else grows."""
    if backend not in BACKENDS:
        raise DiskImageError("backend %r is not one of %s" % (backend, ", ".join(BACKENDS)))
    plan = PartitionsPlan("present")
    source = plan.source = source or _whole_disk(src)
    planned_file = getattr(source, "planned", False)
    table = None if planned_file else read_source_table(source, sector_size)

    # The loop device: reuse one that shows the whole image the same way.
    device_number = source.loop_number
    if not source.is_block and not planned_file:
        matches = [d for d in loopdev.find_associated(source.path, offset=0)
                   if d.sizelimit == 0 and d.read_only == bool(read_only)]
        if matches:
            device_number = matches[0].number
    plan.device = loopdev.device_path(device_number) if device_number is not None else (
        source.path if source.is_block else None)

    # The table: keep it, grow it, create it, or (with force) replace it.
    if layout and read_only:
        raise DiskImageError("a layout cannot be written with read_only: true",
                             hint="Drop read_only, or drop layout to map the table the image has")
    if (size is not None or relocate_gpt) and read_only:
        raise DiskImageError("size and relocate_gpt change the image and cannot be used with read_only: true",
                             hint="Drop read_only, or drop size and relocate_gpt to map the image as it is")
    disk_size = growth.requested_size(source, size, sector_size or (table.sector_size if table else 512))
    grown = {}
    replaced = False
    if layout:
        planned = plan_layout(layout, disk_size, sector_size or (table.sector_size if table else 512))
        problems = None
        if table is not None:
            grown = _grown_partitions(source, table, planned, layout, force)
            compare = grow.grow_table(table, disk_size, grown) if grown else table
            problems = _layout_differences(compare, planned, layout)
        if table is None or problems:
            if problems and not force:
                raise DiskImageError(
                    "%s already has a different partition table: %s" % (source.path, "; ".join(problems)),
                    hint="Set force: true to replace it (its partitions must not be in use), or change layout")
            if table is None and not force:
                _refuse_if_signature(source)
            _refuse_if_in_use(plan.device, source)
            if disk_size > source.size:
                plan.add("extend %s from %d to %d bytes (sparse)" % (source.path, source.size, disk_size),
                         lambda: growth.extend_file(source, disk_size))
            previous = table
            plan.add("write a %s partition table to %s" % (planned.label, source.path),
                     lambda: _write_table(plan, source, planned, previous))
            table = planned
            replaced = True
    if table is not None and not replaced:
        table = _plan_growth(plan, source, table, disk_size, grown or {},
                             relocate=relocate_gpt or size is not None or bool(grown),
                             fill_last=size is not None or (bool(layout) and _last_takes_rest(layout)),
                             grow_filesystem=grow_filesystem)
    if table is None:
        raise DiskImageError("%s has no partition table" % source.path,
                             hint="Give layout to create one, or check that src is the right image")
    plan.table = table

    backend = plan.backend = _pick_backend(backend, source, device_number, read_only)
    if not expose:
        current = _exposed_devices(backend, plan.device, table) if plan.device is not None else {}
        plan.before = plan.after = [{"device": plan.device, "partitions": current}]
        plan.predicted_devices = current
        return plan

    if plan.device is None:
        options = dict(read_only=read_only, partscan=(backend == "partscan"),
                       sector_size=table.sector_size if table.sector_size != 512 else 0)

        def attach():
            status = loopdev.attach(source.path, **options)
            # Whatever fails later in this run, this attachment does not stay.
            plan.undo.append(("detach %s" % status.device, lambda: _take_down(status.device)))
            ownership.claim(status.name, OWNER)
            plan.device = status.device
            plan.attached = True

        plan.add("attach %s to a loop device" % source.path, attach)
        plan.attach_planned = True
    elif backend == "partscan" and device_number is not None and not loopdev.status(device_number).partscan:
        number = device_number
        plan.add("turn partscan on for %s" % plan.device, lambda: loopdev.set_partscan(number, True))

    current = _exposed_devices(backend, plan.device, table) if plan.device is not None else {}
    plan.before = [{"device": plan.device, "partitions": current}]
    _plan_exposure(plan, backend, table, read_only, current)
    plan.predicted_devices = _predicted_names(backend, plan.device, table)
    plan.after = [{"device": plan.device, "partitions": plan.predicted_devices}]
    return plan


def _grown_partitions(source, table, planned, layout, force):
    """{number: sectors} the layout grows; a shrink or a move is refused, or
    with ``force`` left to the comparison (which then replaces the table)."""
    try:
        return grow.grown_partitions(table, planned)
    except grow.GrowthRefused as exc:
        if force:
            return None
        raise DiskImageError("%s already has a different partition table: %s; %s" % (
            source.path, "; ".join(_layout_differences(table, planned, layout)), exc.message),
            hint="%s. Set force: true to replace it (its partitions must not be in use), or change layout - with "
                 "force, what moves or shrinks loses its data" % exc.hint)


def _plan_growth(plan, source, table, disk_size, grown, relocate, fill_last, grow_filesystem):
    """Add the steps that grow the image, the table and the last filesystem; the table afterwards."""
    if not (grown or relocate or fill_last or disk_size != source.size):
        return table
    found = growth.plan_growth(source, table, disk_size, grown, relocate, fill_last, grow_filesystem)
    if found is None:
        return table
    _refuse_if_in_use(plan.device, source)
    plan.growth = found
    growth.add_steps(plan, found, lambda: plan.device if plan.device is not None and source.is_block
                     else source.path)
    return found.new


def _refuse_if_in_use(device, source):
    """Refuse to write a table while anything uses the image: the device the
    plan works on and every loop device attached to the same file (the image
    file, or the file behind a loop device given as src) - at any offset,
    read-only or not, whoever attached it: a partition mounted through an
    offset attachment, or a filesystem mounted read-only, sits in the bytes
    the new table moves or overwrites."""
    devices = [device] if device is not None else []
    if getattr(source, "planned", False):
        return  # a file this run creates: nothing can use it yet
    if not source.is_block:
        devices += [found.device for found in loopdev.find_associated(source.path)]
    elif source.loop_number is not None:
        # a loop device as src: the other attachments of the file behind it
        named = loopdev.status(source.loop_number)
        if named is not None:
            devices += [other.device for other in loopdev.list_attached()
                        if (other.backing_device, other.backing_inode) == (named.backing_device, named.backing_inode)]
    seen = set()
    for current in devices:
        if current in seen:
            continue
        seen.add(current)
        maps = _existing_maps(current) if devmapper.available() else []
        reasons = blockdev.busy_reasons(os.path.basename(current), dev_path=current,
                                        expected_holders=["dm-%d" % found.minor for found in maps])
        for found in maps:  # the image's own maps hold the device; in use is what uses them
            reasons += ["/dev/mapper/%s %s" % (found.name, reason) for reason in _map_users(found)]
        if reasons:
            raise DiskImageError("%s is in use: %s" % (current, "; ".join(reasons)), errno=errno.EBUSY,
                                 hint="Unmount its partitions, or whatever uses it, before writing a table to %s"
                                      % source.path)


def _refuse_if_signature(source):
    """Refuse to write a first table over a filesystem (or swap, LUKS...) that
    fills the image: the table and its GPT entries would overwrite its
    superblock."""
    try:
        found = fsprobe.probe_path(source.path)
    except DiskImageError:
        found = None
    if found:
        what = found.get("type") or "a signature"
        if found.get("label"):
            what += " (label %r)" % found["label"]
        raise DiskImageError(
            "%s has no partition table but holds %s from its first byte; writing a table would destroy it" % (
                source.path, what),
            hint="Check that src is the right image, or set force: true to write the table over it")


def _write_table(plan, source, planned, previous):
    # Take down what shows the old table before the new one goes in.
    if plan.device is not None and previous is not None:
        if devmapper.available():
            with devmapper.DeviceMapper() as dm:
                kpartx_compat.remove_partition_maps(dm, kpartx_compat.describe_parent(plan.device))
        if os.path.isdir(sysfs.block_dir(os.path.basename(plan.device))):
            blkpg.remove_all(plan.device)
    target = plan.device if plan.device is not None and source.is_block else source.path
    try:
        with open(target, "r+b") as handle:
            write_table(handle, planned)
            handle.flush()
            os.fsync(handle.fileno())
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot write the partition table to %s" % target, exc)


def _plan_exposure(plan, backend, table, read_only, current):
    if backend == "partscan":
        if plan.device is not None and not plan.steps:
            add, replace, remove = blkpg.plan(os.path.basename(plan.device), table)
            if not (add or replace or remove):
                return
        plan.add("expose the partitions of the table as kernel partition devices",
                 lambda: blkpg.apply(plan.device, table))
        return
    partitions = kpartx_compat.partitions_from_table(table)
    what = "map the partitions with device-mapper (as kpartx -a)"
    if plan.device is not None and not plan.steps:
        with devmapper.DeviceMapper() as dm:
            parent = kpartx_compat.describe_parent(plan.device)
            specs = kpartx_compat.plan_maps(parent, partitions, read_only)
            existing = [found.name for found in kpartx_compat.find_partition_maps(dm, parent)]
            stale = kpartx_compat.stale_partition_maps(dm, parent, partitions)
            if stale:
                # what a growth killed before it reloaded them left behind, say
                _refuse_moving_used_maps(dm, stale)
        if sorted(existing) == sorted(spec.name for spec in specs) and not stale:
            return
        if stale:
            what = "load the table into the device-mapper maps of partition%s %s (as kpartx -u)" % (
                "s" if len(stale) > 1 else "", ", ".join(str(found.number) for found, _spec in stale))
            if set(spec.name for spec in specs) - set(existing):
                what += ", and map the others (as kpartx -a)"

    def expose():
        with devmapper.DeviceMapper() as dm:
            parent = kpartx_compat.describe_parent(plan.device)
            kpartx_compat.reload_partition_maps(dm, parent, partitions)
            kpartx_compat.add_partition_maps(dm, parent, partitions, read_only)

    plan.add(what, expose)


def _refuse_moving_used_maps(dm, stale):
    """A map that only gets longer may be reloaded under its users (what
    ``kpartx -u`` does after a partition grew); one whose start moves or that
    gets shorter would move its data under them - a mount, a map on it, or
    any program that has it open."""
    for found, spec in stale:
        old, new = found.targets[0], spec.targets[0]
        if len(spec.targets) == 1 and old.params == new.params and new.length > old.length:
            continue
        info = dm.info(found.name)
        users = _map_users(found) + (["held open (open count %d)" % info.open_count] if info and info.open_count else [])
        if users:
            raise DiskImageError("/dev/mapper/%s is in use (%s), and the partition table moves or shrinks it" % (
                found.name, "; ".join(users)), errno=errno.EBUSY,
                hint="Unmount it, then run the task again")


def plan_absent(src, all_attachments=False):
    """Plan: no maps or partition devices for ``src``, and no loop device this
    module attached for it. Refuses, before any change, while one is in use.

    ``src`` a block device: that device is what the user asked about, so its
    maps and partition devices go, and it is detached if this module attached it.
    ``src`` an image file: only the attachments this module made (its ownership
    claims) are taken down and detached. Other attachments of the image - one
    made by hand with losetup, say, and perhaps in use - are left alone and
    listed in ``plan.skipped``; with ``all_attachments`` their maps and partition
    devices go too, but they stay attached: they are not ours to detach.
    """
    plan = PartitionsPlan("absent")
    source = plan.source = _whole_disk(src)
    plan.table = None
    plan.backend = None
    if source.is_block:
        devices = [source.path] if source.loop_number is None else [loopdev.device_path(source.loop_number)]
    else:
        devices = [d.device for d in loopdev.find_associated(source.path)]
    for device in devices:
        name = os.path.basename(device)
        maps = _existing_maps(device) if devmapper.available() else []
        partitions = blkpg.kernel_partitions(name)
        owner = ownership.owner(name) if name.startswith("loop") else None
        owned = owner == OWNER
        exposed = ["/dev/mapper/%s" % m.name for m in maps] + [p.device for p in partitions.values()]
        before = {"device": device, "maps": ["/dev/mapper/%s" % m.name for m in maps],
                  "partitions": [p.device for p in partitions.values()], "attached_by_module": owned}
        plan.before.append(before)
        if not source.is_block and not owned and not all_attachments:
            plan.skipped.append(_skipped(device, owner, exposed))
            plan.after.append(dict(before))
            continue
        plan.after.append({"device": device, "maps": [], "partitions": [], "attached_by_module": False})
        if not (maps or partitions or owned):
            continue
        in_use = []
        for part in partitions.values():
            in_use += ["%s %s" % (part.device, reason)
                       for reason in blockdev.busy_reasons(part.name, dev_path=part.device)]
        for found in maps:
            in_use += ["/dev/mapper/%s %s" % (found.name, r) for r in _map_users(found)]
        if in_use:
            raise DiskImageError("partitions of %s are in use: %s" % (device, "; ".join(in_use)), errno=errno.EBUSY,
                                 hint="Unmount them first")
        whose = "" if owned or source.is_block else " (%s; it stays attached)" % _attached_by(owner)
        if maps:
            plan.add("remove the device-mapper maps of %s%s" % (device, whose),
                     lambda device=device: _remove_maps(device))
        if partitions and not owned:
            plan.add("remove the partition devices of %s%s" % (device, whose),
                     lambda device=device: blkpg.remove_all(device))
        if owned:
            def detach(device=device, name=name):
                loopdev.detach(device)
                ownership.release(name)
                plan.detached.append(device)
            plan.add("detach %s, which this module attached" % device, detach)
    return plan


def _attached_by(owner):
    if owner is None:
        return "attached by hand or by another tool, not by this module"
    return "attached by %s, not by this module" % owner


def _skipped(device, owner, exposed):
    """What the result says of an attachment of the image that was left alone."""
    reason = _attached_by(owner)
    if exposed:
        reason += "; its partition devices were left as they are (all_attachments: true removes them)"
    return {"device": device, "attached_by": owner, "partitions": exposed,
            "reason": reason + "; it stays attached"}


def _map_users(found):
    """What uses a partition map: mounts, maps stacked on it, an exclusive opener."""
    name = "dm-%d" % found.minor
    if not sysfs.devno(name):
        return []
    path = "/dev/mapper/%s" % found.name
    return blockdev.busy_reasons(name, dev_path=path if os.path.exists(path) else None)


def _remove_maps(device):
    with devmapper.DeviceMapper() as dm:
        return kpartx_compat.remove_partition_maps(dm, kpartx_compat.describe_parent(device))

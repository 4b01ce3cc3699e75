# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_partitions with state=present, whole: the image file, its table, the
partition devices, the filesystems, and what the result says of each.

The order of the steps: create the file (sparse, declared size, mode), write
the table, attach and expose (``state.plan_present``), make the filesystems
through private loop devices, each followed by dropping what the exposed
devices had cached of the old bytes. Every refusal comes from planning, before the first step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._image import dps, filesystems, image_file
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import mkfs


class FilesystemFacts(object):
    """What image_partitions adds to the result and diff of PartitionsPlan:
    the file it created, the filesystems it made, and per partition its
    Discoverable Partitions mount point (and in check mode, the filesystem a
    planned mkfs would make)."""

    def __init__(self, mkfs_steps, file_planned, entries):
        self.mkfs_steps = mkfs_steps
        self.file_planned = file_planned
        self.entries = entries  # the partition number of each layout entry, in order

    def result(self, plan, result, check_mode):
        result["image_created"] = bool(getattr(plan, "image_created", False) or (check_mode and self.file_planned))
        result["entry_partitions"] = self.entries
        result["mkfs"] = [step.report() for step in self.mkfs_steps] if check_mode else list(plan.mkfs_made)
        planned = dict((step.part.number, step.fs) for step in self.mkfs_steps) if check_mode else {}
        places = dps.mount_points(plan.table.partitions) if plan.table is not None else {}
        for entry in result["partitions"]:
            entry["dps_mount_point"] = places.get(entry["number"])
            fs = planned.get(entry["number"])
            if fs is not None:
                entry["filesystem"] = {"type": mkfs.ALIASES.get(fs["fstype"], fs["fstype"]),
                                       "usage": "filesystem", "uuid": fs["uuid"], "label": fs["label"],
                                       "version": None, "uuid_sub": None, "csum_ok": None}

    def diff(self, plan, diff):
        """The filesystems of the partitions formatted, before and after (by partition number)."""
        if not self.mkfs_steps:
            return
        diff["before"] = dict(diff["before"], filesystems=dict(
            (str(step.part.number), _fs_words(step.found)) for step in self.mkfs_steps))
        diff["after"] = dict(diff["after"], filesystems=dict(
            (str(step.part.number), {"type": step.fs["fstype"], "label": step.fs["label"], "uuid": step.fs["uuid"]})
            for step in self.mkfs_steps))


def _fs_words(found):
    return dict((k, (found or {}).get(k)) for k in ("type", "label", "uuid")) if found else None


def plan_image(src, backend="auto", read_only=False, layout=None, force=False, sector_size=None, size=None,
               mode=None, force_mkfs=False, expose=True, run_command=None, relocate_gpt=False,
               grow_filesystem=True):
    """The Plan of image_partitions, state=present. A ``size`` larger than the
    image file grows it (``state.plan_present`` and ``_partition/growth.py``)."""
    planned_file, file_steps = image_file.plan_file(src, size, mode)
    table_layout, declared = filesystems.split_entries(layout)
    plan = partitions_state.plan_present(src, backend=backend, read_only=read_only, layout=table_layout,
                                         force=force, sector_size=sector_size, source=planned_file,
                                         expose=expose, size=size, relocate_gpt=relocate_gpt,
                                         grow_filesystem=grow_filesystem)
    plan.mkfs_made = []
    steps = []
    entries = []
    if table_layout:
        # The table the layout plans, for the entry each partition comes from
        # (a table read from the image does not know).
        planned = plan_layout(table_layout, plan.table.size, plan.table.sector_size)
        numbers = dict((p.spec_index, p.number) for p in planned.partitions
                       if getattr(p, "spec_index", None) is not None)
        entries = [numbers.get(index) for index in range(len(table_layout["partitions"]))]
        if any(declared):
            steps = filesystems.plan_mkfs(plan.source, plan.table, planned, declared, force_mkfs,
                                          exists=planned_file is None)
    plan.extensions.append(FilesystemFacts(steps, planned_file is not None, entries))

    plan.steps[0:0] = [(what, lambda action=action: action(plan)) for what, action in file_steps]
    for step in steps:
        plan.add("make %s on partition %d" % (filesystems.declared_words(step.fs), step.part.number),
                 lambda step=step: _make(plan, step, run_command))
    return plan


def _make(plan, step, run_command):
    step.run(plan, run_command)
    # The filesystem went in through the private device: what the partition
    # devices (and the disk) cached of the old bytes must not be read again.
    blockdev.flush_buffers(_exposed(plan))


def _exposed(plan):
    devices = list(partitions_state._exposed_devices(plan.backend, plan.device, plan.table).values()) \
        if plan.device is not None else []
    return devices + ([plan.device] if plan.device is not None else [])

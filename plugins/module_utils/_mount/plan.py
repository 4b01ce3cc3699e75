# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan image_mount acts on: steps, the predicted result, and rollback.

Planning only reads the system and fills a ``MountPlan``; check mode reports
it, a real run applies it (the plan protocol of plan.py: steps, their undo,
``result``, ``diff`` and ``report``), so the keys a task returns are the same
whether it ran in check mode or not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan

# The owner recorded in the ownership claims of the loop devices image_mount
# attaches: only those does it ever detach.
OWNER = "image_mount"


def describe_mount(entry):
    return "%s on %s type %s (%s)" % (entry.source, entry.mount_point, entry.fstype, ",".join(entry.mount_options))


class MountPlan(Plan):
    """Steps, predicted result, and an undo list filled while applying."""

    def __init__(self, state):
        super(MountPlan, self).__init__()
        self.state = state
        self.source = None
        self.found_source = None  # what was mounted at path, when no src was given
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
        self.messages = []

    def describe_chain(self, chain):
        """Take device, loop_device and mapped_device from mount_extent.chain_of."""
        self.device = chain["device"]
        self.loop_device = chain["loop_device"]
        self.mapped_device = chain["mapped_device"]

    def result(self, check_mode=False):
        live = not check_mode or not self.changed
        if live and self.state in ("mounted",) and self.target is not None:
            current = mountinfo.top_mount_at(self.target.path)
            mount = current.to_dict() if current is not None else None
        else:
            mount = None
        return {
            "src": self.source.path if self.source else self.found_source,
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
        """The mount at the target and the fstab line for it, before and after
        (the fstab line is None when the task does not manage fstab)."""
        return {"before": {"mount": self.mount_before, "fstab": self.fstab_line_before},
                "after": {"mount": self.mount_after, "fstab": self.fstab_line_after}}

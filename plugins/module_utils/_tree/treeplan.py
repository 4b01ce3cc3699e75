# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan image_tree acts on: a tree of image_mount plans under one root.

Each filesystem of the tree is planned by image_mount's own code (a
``MountPlan`` per entry, at a target resolved in the tree), so a tree is
exactly as idempotent as image_mount. ``TreePlan`` adopts their steps, and
moves the undo each step records into its own undo list, so that a failure in
the middle takes back the whole run newest first. A filesystem whose mount
point lies in a filesystem this run mounts is planned again once that one is
mounted: only then can its mount point be seen.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


class TreeEntry(object):
    """One filesystem of the tree: what was asked (a _tree/plan.py entry) and
    the MountPlan that brings it about (replaced when planned again)."""

    def __init__(self, entry, sub):
        self.entry = entry
        self.sub = sub

    @property
    def changed(self):
        return bool(self.sub.steps)

    def to_dict(self):
        sub = self.sub
        return {
            "path": self.entry["path"],
            "target": sub.target.path,
            "device": sub.device,
            "loop_device": sub.loop_device,
            "fstype": sub.fstype,
            "opts": (sub.options.string or "defaults") if sub.options else None,
            "read_only": bool(sub.read_only),
            "kind": self.entry.get("kind") or "",
            "selector": dict(self.entry["selector"]),
            "partition": sub.selection.to_dict() if sub.selection else None,
            "changed": self.changed,
        }


def run_into(plan, sub):
    """Run the steps of ``sub`` as part of ``plan``: what each one records to
    undo becomes ``plan``'s to undo, also when the step fails half way."""
    for _description, action in sub.steps:
        try:
            action()
        finally:
            plan.undo.extend(sub.undo)
            del sub.undo[:]


class TreePlan(Plan):
    """Steps, the filesystems of the tree, and what a teardown did and left."""

    def __init__(self, state):
        super(TreePlan, self).__init__()
        self.state = state
        self.source = None
        self.root = None
        self.default_root = False
        self.root_created = False
        self.entries = []        # TreeEntry, in mount order
        self.mounts_before = []  # state=unmounted: the image's mounts as they were
        self.unmounted = []
        self.detached = []
        self.pending = []
        self.left = []
        self.root_removed = False
        self.loop_device = None  # the first loop device detached (image_mount's teardown sets it)
        self.diff_before = {}
        self.diff_after = {}

    def adopt(self, sub):
        """Add the steps of the MountPlan ``sub``, their undo moved to this plan."""
        for description, action in sub.steps:
            self.add(description, lambda action=action: run_into(self, _Single(sub, action)))

    def extents(self):
        """The bytes of the image this plan mounts or unmounts (for the locks)."""
        found = [e.sub.selection.extent for e in self.entries if e.sub.selection is not None]
        return found + [m["extent"] for m in self.mounts_before if m.get("extent") is not None]

    def apply(self):
        super(TreePlan, self).apply()
        if self.left:
            raise DiskImageError(
                "%s stays mounted: %s" % (
                    "the tree under %s" % self.root if len(self.left) > 1 else self.left[0]["target"],
                    "; ".join("%s (%s)" % (item["target"], item["reason"]) for item in self.left)),
                errno=errno.EBUSY,
                hint="Everything else was taken down. Stop what holds it, then run the task again; or set "
                     "lazy: true to detach it now and let the kernel release it when they are done",
                details=self.report())
        return self

    def result(self, check_mode=False):
        mounts = [e.to_dict() for e in self.entries] if self.state == "mounted" else [
            dict((k, v) for k, v in m.items() if k != "extent") for m in self.mounts_before]
        return {
            "src": self.source.path if self.source is not None else None,
            "root": self.root,
            "root_created": self.root_created,
            "mounts": mounts,
            "loop_devices": sorted(set(m["loop_device"] for m in mounts if m["loop_device"]))
            if self.state == "mounted" else [],
            "unmounted": [dict((k, v) for k, v in u.items() if k != "mount_id") for u in self.unmounted],
            "detached": list(self.detached),
            "pending": list(self.pending),
            "root_removed": self.root_removed,
            "left": list(self.left),
        }

    def diff(self):
        """The mounts under the root, one line each by mount point, before and after."""
        return {"before": {"root": self.root, "mounts": dict(self.diff_before)},
                "after": {"root": self.root, "mounts": dict(self.diff_after)}}


class _Single(object):
    """One step of a MountPlan, with that plan's undo list, for run_into."""

    def __init__(self, sub, action):
        self.steps = [("", action)]
        self.undo = sub.undo

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=mounted of image_tree: every filesystem of an image under one root.

The entries come from _tree/plan.py (declared, or the Discoverable Partitions
rules), shortest mount point first. Each is planned by image_mount's
``plan_mounted`` at its mount point resolved in the tree as a chroot sees it
(_tree/paths.py), so reuse, exactness and remounts are image_mount's. An
entry whose mount point lies in a filesystem this run mounts is planned once
that filesystem is mounted, and so is the ESP's place (/boot or /efi) when
the root filesystem is mounted by this run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import serves
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import MountSource, select
from ansible_collections.diskimage.loop.plugins.module_utils._mount.target import Target
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan
from ansible_collections.diskimage.loop.plugins.module_utils._tree.root import root_path
from ansible_collections.diskimage.loop.plugins.module_utils._tree.treeplan import TreeEntry, TreePlan, run_into
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

ESP_PLACES = ("/boot", "/efi")


def wanted_entries(source, mounts=None, auto_exclude=()):
    """The declared entries, or the Discoverable Partitions ones for ``source``
    (an image that is a filesystem as a whole goes at /)."""
    if mounts:
        return tree_plan.declared_plan(mounts)
    whole = source.probe()
    is_fs = whole is not None and whole.get("usage") == fsprobe.USAGE_FILESYSTEM
    return tree_plan.auto_plan(None if is_fs else source.read_table(), auto_exclude)


def _parent_mounted_now(path, mounting):
    """The mount point (in the image) of a filesystem this run mounts that
    holds ``path``, or None."""
    holding = [p for p in mounting if p == "/" or path.startswith(p + "/")]
    return max(holding, key=len) if holding else None


class _TreeRun(object):
    """What planning one tree needs at hand."""

    def __init__(self, plan, source, read_only):
        self.plan = plan
        self.source = source
        self.read_only = read_only
        self.mounting = []  # paths in the image of the filesystems this run mounts

    def sub_plan(self, entry, where):
        """image_mount's plan for ``entry`` at the host path ``where``."""
        selector = next(iter(entry["selector"].items()), None)
        return mount_state.plan_mounted(
            self.source.path, where, selector, fstype=entry["fstype"] or None, opts=entry["opts"] or None,
            read_only=self.read_only or entry["read_only"], source=self.source, target=Target(where))

    def plan_now(self, entry, table):
        """Plan ``entry`` in the tree as it is now: its steps join the plan."""
        where = paths.resolve_in(self.plan.root, entry["path"])
        sub = self.sub_plan(entry, where)
        if sub.created["mount"]:
            below = mountinfo.mounts_under(where, table, include_self=False)
            if below:
                raise DiskImageError(
                    "%s is mounted inside %s, whose filesystem (%s) is not mounted yet; mounting it would hide "
                    "them" % (", ".join(m.mount_point for m in below), where, sub.selection.describe()),
                    errno=errno.EBUSY, hint="Take the tree down first (state: unmounted), then mount it again")
            self.mounting.append(entry["path"])
        if entry["path"] == "/" and sub.created["path"]:
            self.plan.root_created = True
        self.plan.adopt(sub)
        self.record(entry, sub)

    def plan_later(self, entry, parent):
        """Plan ``entry`` once ``parent`` is mounted; until then predict its steps
        from the path it will have."""
        sub = self.sub_plan(entry, tree_plan.where(self.plan.root, entry["path"]))
        record = self.record(entry, sub)
        self.mounting.append(entry["path"])

        def mount_later():
            record.sub = self.sub_plan(entry, paths.resolve_in(self.plan.root, entry["path"]))
            run_into(self.plan, record.sub)

        self.plan.add("once %s is mounted: %s" % (parent, "; ".join(sub.descriptions())), mount_later)

    def record(self, entry, sub):
        record = TreeEntry(entry, sub)
        self.plan.entries.append(record)
        if sub.mount_before:
            self.plan.diff_before[entry["path"]] = sub.mount_before
        self.plan.diff_after[entry["path"]] = sub.mount_after
        return record

    def plan_entry(self, entry, table):
        parent = _parent_mounted_now(entry["path"], self.mounting)
        if parent is None:
            self.plan_now(entry, table)
        else:
            self.plan_later(entry, parent)

    def esp_mounted_at(self, entry, table):
        """Where under the root the ESP of ``entry`` is mounted already, or None."""
        (kind, value), = entry["selector"].items()
        extent = select(self.source, kind, value).extent
        for path in ESP_PLACES:
            current = mountinfo.top_mount_at(paths.resolve_in(self.plan.root, path), table)
            if current is not None and serves(current, extent):
                return path
        return None

    def place_esp(self, entries, esp, esp_path):
        """``esp`` with the path the rules give it in the tree as it is now."""
        boot = paths.resolve_in(self.plan.root, "/boot")
        boot_empty = os.path.isdir(boot) and not os.listdir(boot)
        return [e for e in tree_plan.place_esp(entries + [esp], boot_empty, esp_path) if e["kind"] == "esp"][0]

    def plan_esp(self, entries, esp, esp_path, table):
        if esp_path or "/" not in self.mounting:
            placed = dict(esp, path=self.esp_mounted_at(esp, table)) if not esp_path else None
            if placed is None or placed["path"] is None:
                placed = self.place_esp(entries, esp, esp_path)
            self.plan_entry(placed, table)
            return
        # Its place depends on the root filesystem's /boot, which this run mounts.
        predicted = dict(esp, path="/efi")
        sub = self.sub_plan(predicted, tree_plan.where(self.plan.root, "/efi"))
        record = self.record(predicted, sub)

        def mount_esp():
            placed = self.place_esp(entries, esp, esp_path)
            record.entry = placed
            record.sub = self.sub_plan(placed, paths.resolve_in(self.plan.root, placed["path"]))
            run_into(self.plan, record.sub)

        self.plan.add("once / is mounted: mount the ESP (%s) at /boot when the image's /boot is an empty directory "
                      "and no XBOOTLDR partition takes it, else at /efi" % sub.selection.describe(), mount_esp)


def plan_mounted(src, root=None, mounts=None, auto_exclude=(), esp_path="", read_only=False, device=None):
    """Plan: the filesystems of ``src`` mounted under ``root``, as declared
    or by the Discoverable Partitions rules. ``device``, when given, is what
    shows ``src`` (the nbd device that serves an image that is not raw): the
    filesystems come from it, the default root is named after ``src``."""
    plan = TreePlan("mounted")
    plan.root, plan.default_root = root_path(src, root)
    plan.source = MountSource(device or src)
    entries = wanted_entries(plan.source, mounts, auto_exclude)
    table = mountinfo.read_mountinfo()
    run = _TreeRun(plan, plan.source, read_only)
    placed = tree_plan.mount_order(entries)
    if not any(e["path"] == "/" for e in placed):
        root_target = Target(plan.root)
        if not root_target.exists:
            plan.root_created = True
            plan.add("create the root %s" % plan.root, lambda: root_target.create(plan.undo))
    for entry in placed:
        run.plan_entry(entry, table)
    for esp in (e for e in entries if e["path"] is None):
        run.plan_esp(placed, esp, esp_path, table)
    return plan

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fstab entry image_mount writes, recognizes and removes.

The entry is one mount(8) acts on by itself (``loop,offset=N,sizelimit=M`` for
a partition inside an image), so a mount made from it at boot is the same
source image_mount mounts. ``plan_fstab`` adds the step that makes the file
hold that entry (or none) for the mount point, with an undo that restores the
file; ``plan_fstab_absent`` refuses to remove an entry that mounts something
other than the source the task named.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo, mountopts
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

DEFAULT_FSTAB = "/etc/fstab"


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
    for word in mountopts.split_options(entry.options):
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


def plan_fstab(plan, fstab, entry):
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


def plan_fstab_absent(plan, fstab, source_path, offset):
    """Remove the entry for the target, which must mount ``source_path`` (at
    ``offset``; None: at any offset). With ``source_path`` None, whatever
    the entry mounts: the task named only the mount point."""
    if source_path is not None:
        entries = mountinfo.find_fstab_entries(mountinfo.read_text(fstab), plan.target.path)
        others = [e for e in entries if not entry_refers_to(e, source_path, offset)]
        if others:
            raise DiskImageError("%s has an entry for %s that mounts something else: %s" % (
                fstab, plan.target.path, others[0].render()),
                hint="Fix src or the selector, or edit that entry yourself")
    plan_fstab(plan, fstab, None)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for mounts of images, partitions inside images, ISOs and devices.

``plan(state, src, path, ...)`` only reads the system and returns a MountPlan
(plan: steps and the predicted result), so check mode and diff come from
the code that acts; ``MountPlan.apply`` performs the steps and, when one fails,
undoes what the run did before it (unmount, detach, remove the directories it
made). This module decides, per state, which steps a plan needs; the parts live
in modules of their own:

* source: what ``src`` and the partition selector name;
* extent: which bytes a device shows, and which devices show them;
* options, target: the options and the mount point asked for;
* fstab: the fstab entry;
* setup: the steps of state=mounted (reuse or attach, mount, remount);
* teardown: the steps of state=unmounted and absent, by source or by
  path alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import chain_of, serves, wrong_source
from ansible_collections.diskimage.loop.plugins.module_utils._mount.fstab import (
    DEFAULT_FSTAB,
    fstab_entry,
    plan_fstab,
    plan_fstab_absent,
)
from ansible_collections.diskimage.loop.plugins.module_utils._mount.options import requested_options
from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER, MountPlan, describe_mount
from ansible_collections.diskimage.loop.plugins.module_utils._mount.setup import plan_mount_new, plan_remount
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import MountSource, filesystem_type, select
from ansible_collections.diskimage.loop.plugins.module_utils._mount.target import (
    Target,
    refuse_root_path,
    refuse_system_path,
)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

STATES = ("mounted", "unmounted", "present", "absent")
# The states that may name the mount point alone; the others need src.
PATH_ONLY_STATES = ("unmounted", "absent")


def _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks, source=None, target=None):
    kind, value = selector if selector else (None, None)
    plan.target = target or Target(path, follow_symlinks)
    if plan.target.resolved_from:
        plan.warnings.append("path %s resolves to %s through a symlink; using %s" % (
            plan.target.resolved_from, plan.target.path, plan.target.path))
    plan.source = source or MountSource(src)
    plan.selection = select(plan.source, kind, value)
    plan.fstype = filesystem_type(plan.selection, fstype)
    optical = not plan.source.is_block and plan.source.is_optical(plan.selection.offset)
    plan.options = requested_options(opts, read_only, plan.fstype, optical)
    plan.read_only = plan.options.read_only


# --- mounted and present ------------------------------------------------------

def plan_mounted(src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None,
                 follow_symlinks=False, source=None, target=None):
    """Plan: ``path`` holds the selected filesystem of ``src`` with ``opts``.

    ``source`` (a MountSource of ``src``) and ``target`` (a Target of
    ``path``) may be given when the caller has them already: image_tree
    mounts several filesystems of one source, at targets it resolved in
    the image's tree."""
    plan = MountPlan("mounted")
    _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks, source, target)
    refuse_root_path(plan.target.path, "mount over")
    table = mountinfo.read_mountinfo()
    current = mountinfo.top_mount_at(plan.target.path, table) if plan.target.exists else None
    plan.mount_before = describe_mount(current) if current is not None else None
    if current is not None:
        if not serves(current, plan.selection.extent):
            raise wrong_source(plan.target.path, current, plan.selection.describe())
        plan.describe_chain(chain_of(current))
        plan.mount_after = plan.mount_before
        plan_remount(plan, current, bool(fstype))
    else:
        plan_mount_new(plan, table)
    if fstab:
        plan_fstab(plan, fstab, fstab_entry(plan.selection, plan.target.path, plan.fstype, plan.options))
    return plan


def plan_present(src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None,
                 follow_symlinks=False):
    """Plan: an fstab entry through which mount(8) mounts the source at ``path``
    by itself, and the mount point it needs. Nothing is mounted."""
    plan = MountPlan("present")
    _resolve(plan, src, path, selector, fstype, opts, read_only, follow_symlinks)
    refuse_root_path(plan.target.path, "add an fstab entry for")
    table = mountinfo.read_mountinfo()
    current = mountinfo.top_mount_at(plan.target.path, table) if plan.target.exists else None
    plan.mount_before = plan.mount_after = describe_mount(current) if current is not None else None
    if not plan.target.exists:
        plan.created["path"] = True
        plan.add("create the mount point %s" % plan.target.path, lambda: plan.target.create(plan.undo))
    plan_fstab(plan, fstab or DEFAULT_FSTAB, fstab_entry(plan.selection, plan.target.path, plan.fstype,
                                                         plan.options))
    return plan


# --- unmounted and absent -------------------------------------------------------

def _take_down(state, src, path, selector, lazy, follow_symlinks, fstype):
    """What unmounted and absent share: unmount what ``path`` holds (of ``src``,
    or whatever it is with ``src`` None) and take down what image_mount set up
    under it. Returns the plan and the mounts unmounted; plan.source is None
    when ``src`` does not exist and nothing shows it."""
    # Imported here: a mounted run does not need the teardown machinery, and
    # modules pay for every line they import (module_utils ship as source).
    from ansible_collections.diskimage.loop.plugins.module_utils._mount.teardown import (
        missing_source, plan_teardown, plan_teardown_path, plan_unmount, plan_unmount_path)
    from ansible_collections.diskimage.loop.plugins.module_utils._mount.disconnect import plan_disconnect
    plan = MountPlan(state)
    plan.target = Target(path, follow_symlinks)
    table = mountinfo.read_mountinfo()
    if src is None:
        refuse_system_path(plan.target.path)
        unmounting = plan_unmount_path(plan, lazy, table, fstype)
        plan_teardown_path(plan, table, unmounting, lazy)
        plan_disconnect(plan, unmounting, table, OWNER)
        return plan, unmounting
    refuse_root_path(plan.target.path)
    plan.source = missing_source(plan, src, table)
    if plan.source is None:
        return plan, []
    kind, value = selector if selector else (None, None)
    plan.selection = select(plan.source, kind, value)
    plan.fstype = plan.selection.filesystem.get("type") if plan.selection.filesystem else fstype
    unmounting = plan_unmount(plan, lazy, table)
    plan_teardown(plan, table, unmounting, lazy)
    return plan, unmounting


def plan_unmounted(src, path, selector=None, lazy=False, follow_symlinks=False, fstype=None):
    """Plan: ``path`` does not hold the source, and no loop device image_mount
    attached for it is left. A different source at ``path`` is an error.

    With ``src`` None: nothing is mounted at ``path``, and the loop device
    image_mount attached for what was is detached; ``fstype``, when given,
    must be the type of what is mounted there."""
    return _take_down("unmounted", src, path, selector, lazy, follow_symlinks, fstype)[0]


def plan_absent(src, path, selector=None, lazy=False, follow_symlinks=False, fstab=None, fstype=None):
    """Plan: unmounted, no fstab entry for ``path``, and an empty mount point removed.

    With ``src`` None: as plan_unmounted by path, and the fstab entry for
    ``path`` is removed whatever it mounts."""
    from ansible_collections.diskimage.loop.plugins.module_utils._mount.teardown import plan_rmdir
    fstab = fstab or DEFAULT_FSTAB
    plan, unmounting = _take_down("absent", src, path, selector, lazy, follow_symlinks, fstype)
    if src is None:
        plan_fstab_absent(plan, fstab, None, None)
    elif plan.source is None:
        plan_fstab_absent(plan, fstab, os.path.abspath(src), None)
        plan_rmdir(plan)
        return plan
    else:
        plan_fstab_absent(plan, fstab, plan.source.path, plan.selection.offset)
    # After a lazy unmount the directory may still be in use: leave it.
    if not lazy:
        plan_rmdir(plan, unmounting)
    return plan


def plan(state, src, path, selector=None, fstype=None, opts=None, read_only=False, fstab=None, lazy=False,
         follow_symlinks=False):
    """The MountPlan for ``state``. ``src`` may be None for unmounted and absent:
    then the mount at ``path`` is taken down, whatever it is of."""
    if state not in STATES:
        raise DiskImageError("state %r is not one of %s" % (state, ", ".join(STATES)))
    if src is None:
        if state not in PATH_ONLY_STATES:
            raise DiskImageError("state %s needs src, the image or device to mount" % state,
                                 hint="Give src; only state unmounted and absent work with path alone")
        if selector:
            raise DiskImageError("%s selects a partition of src, and no src is given" % selector[0],
                                 hint="Give src too, or drop %s to take down whatever is mounted at path"
                                      % selector[0])
    if state == "mounted":
        return plan_mounted(src, path, selector, fstype, opts, read_only, fstab, follow_symlinks)
    if state == "present":
        return plan_present(src, path, selector, fstype, opts, read_only, fstab, follow_symlinks)
    if state == "unmounted":
        return plan_unmounted(src, path, selector, lazy, follow_symlinks, fstype)
    return plan_absent(src, path, selector, lazy, follow_symlinks, fstab, fstype)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=unmounted of image_tree: everything under the root, newest first.

Whatever is mounted at or below the root comes down, children before their
parents and the top of a stack before what it covers: mounts other tasks
added inside the tree (binds of /proc, /sys, /dev, a tmpfs) as well as the
image's own. The mounts are first made slaves of their peers, so that taking
down a bind of a shared mount (an rbind of /dev) never takes the host's own
submounts with it. Then the loop devices image_mount's core attached for the
image's mounts are detached (image_mount's teardown), then the default root
is removed.

A mount that stays busy does not stop the rest: it is recorded in ``left``
with the processes that hold it (one /proc scan, _kernel/holders.py), the
mounts that contain it stay too, a loop device it still needs is set to
detach itself when it goes (autoclear), and the run fails at the end naming
all of it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, mountinfo, mountsys
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._mount.disconnect import plan_disconnect
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import chain_of, extent_of, mount_devno
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import loop_exposure
from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER, describe_mount
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import MountSource
from ansible_collections.diskimage.loop.plugins.module_utils._mount.teardown import plan_detach_unused, release_loop
from ansible_collections.diskimage.loop.plugins.module_utils._tree.root import root_path
from ansible_collections.diskimage.loop.plugins.module_utils._tree.treeplan import TreePlan
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def newest_first(mounts):
    """``mounts`` (in mountinfo order) in an order they can be unmounted in:
    newest first, and never a mount before one that sits on it or below it."""
    pending = list(reversed(mounts))
    ordered = []
    while pending:
        ready = [m for m in pending if not any(o.parent_id == m.mount_id for o in pending if o is not m)]
        chosen = (ready or pending)[0]  # a mount tree has no cycles; keep going if one seems to
        ordered.append(chosen)
        pending.remove(chosen)
    return ordered


def _source(src):
    """The MountSource of ``src``, or None when it is not given or gone."""
    if not src:
        return None
    try:
        return MountSource(src)
    except DiskImageError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def image_extent(entry, source):
    """The extent an image's own mount shows, or None for a foreign mount
    (not of ``source``; without a source, not of an image file at all)."""
    devno = mount_devno(entry)
    extent = extent_of(*devno) if devno else None
    if extent is None or (entry.root != "/" and entry.fstype != "btrfs"):
        return None
    if source is not None:
        return extent if extent.key == source.extent.key else None
    return extent if extent.key[0] == "file" else None


def _describe_own(plan, entry, extent):
    chain = chain_of(entry)
    path = entry.mount_point[len(plan.root):] or "/"
    return {"path": path, "target": entry.mount_point, "device": chain["device"],
            "loop_device": chain["loop_device"], "fstype": entry.fstype,
            "opts": ",".join(entry.mount_options), "read_only": entry.read_only, "kind": "", "selector": {},
            "partition": None, "changed": True, "extent": extent}


def _stays_above(plan, target):
    """Why ``target`` cannot come down: a mount at or below it stays (or None)."""
    for item in plan.left:
        if item["target"] == target or item["target"].startswith(target.rstrip("/") + "/"):
            return "%s stays mounted %s it" % (item["target"], "on" if item["target"] == target else "below")
    return None


def _leave(plan, entry, reason, holding=()):
    plan.left.append({"target": entry.mount_point, "reason": reason,
                      "holders": [{"pid": h["pid"], "comm": h["comm"], "uses": h["uses"]} for h in holding]})
    plan.unmounted[:] = [u for u in plan.unmounted if u["mount_id"] != entry.mount_id]


def _unmount(plan, entry, lazy):
    because = _stays_above(plan, entry.mount_point)
    if because:
        _leave(plan, entry, because)
        return
    try:
        mountsys.umount2(entry.mount_point, mountsys.MNT_DETACH if lazy else 0)
    except DiskImageError as exc:
        if exc.errno == errno.EBUSY:
            held = holders.holders_of_mount(entry.mount_point)
            _leave(plan, entry, "busy: held by %s" % ", ".join("%s (pid %d: %s)" % (
                h["comm"] or "?", h["pid"], ", ".join(h["uses"])) for h in held) if held else str(exc), held)
        elif exc.errno == errno.EINVAL and not mountinfo.mounts_at(entry.mount_point):
            return  # gone already, with a mount it was propagated from
        else:
            _leave(plan, entry, str(exc))


def _release(plan, exposure, lazy):
    """Detach a loop device of the image once its mounts are gone; one that a
    mount which stays still needs detaches itself when that one goes."""
    try:
        release_loop(plan, exposure, lazy or bool(plan.left))
    except DiskImageError as exc:
        if exposure.device in plan.detached:
            plan.detached.remove(exposure.device)
        plan.left.append({"target": exposure.device, "reason": str(exc), "holders": []})


def _loop_devnos(source, own):
    """The loop devices that may have served the image: those under its
    mounts, and with a source file every other one of that file - a run
    killed between attaching and mounting leaves one mounted nowhere."""
    devnos = [mount_devno(entry) for entry in own]
    if source is not None and not source.is_block:
        devnos += [(status.major, status.minor) for status in loopdev.find_associated(source.path)]
    return devnos


def _stop_propagation(tops):
    for target in tops:
        try:
            mountsys.set_propagation(target, mountsys.MS_SLAVE | mountsys.MS_REC)
        except DiskImageError as exc:
            if exc.errno != errno.EINVAL:  # gone meanwhile
                raise


def plan_unmounted(src=None, root=None, lazy=False, device=None):
    """Plan: nothing mounted at or below the root, no loop device left that
    served the image's mounts, and the default root removed. ``device``, when
    given, is what shows ``src`` (the nbd device that serves it), and tells
    the image's own mounts from the others.

    The nbd connections under the mounts that image_mount's core made are
    disconnected too, once nothing else uses them - found from the mounts,
    unless ``device`` is the nbd device that serves ``src``: then the caller
    (_nbd/source.RunConnections.release) disconnects every connection of the
    image, mounted or not. From the mounts, a connection of an image file
    that was replaced or renamed since (no device serves ``src`` any more)
    goes too."""
    plan = TreePlan("unmounted")
    plan.root, plan.default_root = root_path(src, root)
    plan.source = _source(device or src)
    if not os.path.isdir(plan.root):
        return plan
    table = mountinfo.read_mountinfo()
    under = mountinfo.mounts_under(plan.root, table)
    order = newest_first(under)
    own = []
    for entry in under:
        extent = image_extent(entry, plan.source)
        if extent is not None:
            own.append(entry)
            plan.mounts_before.append(_describe_own(plan, entry, extent))
        plan.diff_before[entry.mount_point] = describe_mount(entry)
    ids = set(m.mount_id for m in under)
    tops = [m.mount_point for m in under if m.parent_id not in ids]
    if any(f.startswith("shared:") for m in under for f in m.optional_fields):
        plan.add("make the mounts under %s slaves of their peers, so that no unmount propagates out of the tree"
                 % plan.root, lambda: _stop_propagation(tops))
    for entry in order:
        plan.unmounted.append({"target": entry.mount_point, "source": entry.source, "fstype": entry.fstype,
                               "foreign": entry not in own, "mount_id": entry.mount_id})
        plan.add("unmount %s (%s) from %s%s" % (entry.source, entry.fstype, entry.mount_point,
                                                " lazily" if lazy else ""),
                 lambda entry=entry: _unmount(plan, entry, lazy))
    loops, seen = [], set()
    for devno in _loop_devnos(plan.source, own):
        exposure = loop_exposure(devno, table)
        if exposure is not None and exposure.name not in seen:
            seen.add(exposure.name)
            loops.append(exposure)
    plan_detach_unused(plan, loops, under, lazy, release=_release)
    if device is None or device == src:
        plan_disconnect(plan, under, table, OWNER)
    if plan.default_root:
        plan.add("remove the root %s" % plan.root, lambda: _remove_root(plan))
    return plan


def _remove_root(plan):
    if plan.left:
        return
    try:
        os.rmdir(plan.root)
    except OSError as exc:
        if exc.errno in (errno.ENOENT,):
            return
        raise DiskImageError.from_oserror("cannot remove the root %s" % plan.root, exc,
                                          hint="Something was written to it outside the image's filesystems; "
                                               "look, and remove it yourself")
    plan.root_removed = True

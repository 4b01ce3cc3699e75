# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps that bring a source up at the mount point (state=mounted).

``plan_mount_new`` reuses a device that already shows the selected bytes (a
mounted one first, so the filesystem keeps one superblock) or plans to attach
a new loop device, claimed for image_mount so that only image_mount detaches
it again; then the mount. ``plan_remount`` changes the options of a mount that
is already the source, in place where the kernel allows it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.diskimage.loop.plugins.module_utils._loop import ownership
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountopts, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import (
    choose_exposure,
    find_exposures,
    mount_devno,
)
from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER

# The loop and mount system calls are imported by the steps that make them: a
# run that finds everything in place plans only, and modules pay for every
# line they import (Ansible ships module_utils as source, compiled per task).


def plan_mount_new(plan, table):
    """Mount the selection at the target, which has nothing of it mounted."""
    selection = plan.selection
    exposures = find_exposures(plan.source, selection.extent, table)
    chosen = choose_exposure(exposures, plan.read_only, plan.options.explicit_ro)
    if chosen is not None and chosen.mounts:
        sb_ro = any("ro" in m.super_options for m in chosen.mounts)
        elsewhere = ", ".join(m.mount_point for m in chosen.mounts)
        if sb_ro and not plan.read_only:
            raise DiskImageError(
                "%s is mounted read-only at %s; the kernel keeps one superblock per filesystem, so it cannot "
                "be mounted read-write here at the same time" % (selection.describe(), elsewhere),
                errno=errno.EBUSY, hint="Set read_only: true, or remount %s read-write first" % elsewhere)
        if not sb_ro and plan.options.explicit_ro:
            raise DiskImageError(
                "%s is mounted read-write at %s, so a read-only mount here cannot keep it unchanged" % (
                    selection.describe(), elsewhere),
                errno=errno.EBUSY, hint="Unmount %s first, or drop read_only" % elsewhere)
    if chosen is not None:
        plan.device = chosen.device
        plan.loop_device = chosen.loop
        plan.mapped_device = chosen.device if chosen.mapped else None
        reuse_ours = chosen.kind == "loop" and ownership.owner(chosen.name) == OWNER
    else:
        reuse_ours = False

    if not plan.target.exists:
        plan.created["path"] = True
        plan.add("create the mount point %s" % plan.target.path, lambda: plan.target.create(plan.undo))

    if chosen is None:
        if plan.source.is_block and selection.partition is None:
            plan.device = plan.source.path
        else:
            plan_attach(plan)

    words = plan.options.kernel_words()

    def mount():
        from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys
        from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
        mountsys.mount_with_options(plan.device, plan.target.path, plan.fstype, words)
        plan.undo.append(("unmount %s" % plan.target.path, lambda: mountsys.umount2(plan.target.path)))
        if plan.created["loop_device"] or reuse_ours:
            # Like mount -o loop: the device goes away with its last mount, even
            # one unmounted by hand.
            loopdev.set_autoclear(plan.loop_device, True)

    plan.created["mount"] = True
    plan.add("mount %s (%s) on %s as %s with %s" % (
        plan.device or "a new loop device", selection.describe(), plan.target.path, plan.fstype,
        plan.options.string or "defaults"), mount)
    plan.mount_after = "%s on %s type %s (%s)" % (
        plan.device or selection.describe(), plan.target.path, plan.fstype, plan.options.string or "defaults")


def plan_attach(plan):
    """Attach a new loop device for the selection, claimed for image_mount."""
    from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
    selection = plan.selection
    offset = selection.partition.start if selection.partition is not None else 0
    sizelimit = selection.partition.size if selection.partition is not None else 0
    read_only = plan.read_only
    request = loopdev.AttachRequest(plan.source.path, offset=offset, sizelimit=sizelimit, read_only=read_only)
    request.validate()
    plan.created["loop_device"] = True

    def attach():
        status = loopdev.attach(plan.source.path, offset=offset, sizelimit=sizelimit, read_only=read_only)
        name = status.name

        def undo():
            try:
                loopdev.detach(status.device, force=True)
            finally:
                ownership.release(name)

        plan.undo.append(("detach %s" % status.device, undo))
        ownership.claim(name, OWNER)
        plan.device = plan.loop_device = status.device

    plan.add("attach %s%s to a new %sloop device" % (
        plan.source.path, " at offset %d with sizelimit %d" % (offset, sizelimit) if selection.partition else "",
        "read-only " if read_only else ""), attach)


def plan_remount(plan, current, fstype_given):
    """Bring the options of ``current``, a mount of the source, to those asked for."""
    if fstype_given and current.fstype != plan.fstype:
        raise DiskImageError(
            "%s has %s mounted as %s, not %s; the type of a mount cannot change in place" % (
                plan.target.path, plan.selection.describe(), current.fstype, plan.fstype),
            hint="Unmount it first (state: unmounted), or set fstype: %s" % current.fstype)
    diff = mountopts.compare_options(plan.options, current.mount_options, current.super_options,
                                     fstype=current.fstype)
    devno = mount_devno(current)
    name = sysfs.name_by_devno(*devno)
    device_ro = sysfs.read_only(name)
    if diff.satisfied:
        return
    if any(m.startswith("rw ") for m in diff.mismatches) and device_ro:
        raise DiskImageError(
            "%s is mounted from the read-only device /dev/%s; it cannot be remounted read-write" % (
                plan.target.path, name),
            errno=errno.EROFS,
            hint="Unmount it (state: unmounted) and mount it again without read_only, or keep read_only: true")
    if any(m.startswith("ro ") for m in diff.mismatches) and not device_ro:
        plan.warnings.append("%s is remounted read-only, but /dev/%s under it stays writable; unmount and mount "
                             "again for a read-only device" % (plan.target.path, name))
    plan.remounted = list(diff.mismatches)
    path = plan.target.path

    def remount():
        from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys
        try:
            plan.messages.extend(mountsys.apply_remount(path, diff))
        except DiskImageError as exc:
            if exc.errno in (errno.EBUSY, errno.EROFS, errno.EACCES):
                raise
            raise DiskImageError(exc.message, errno=exc.errno,
                                 hint="The kernel does not change %s of this filesystem in place; unmount it "
                                      "(state: unmounted) and mount it again" % ", ".join(diff.mismatches))

    plan.add("remount %s: %s" % (path, ", ".join(diff.mismatches)), remount)
    plan.mount_after = "%s on %s type %s (%s)" % (current.source, path, current.fstype,
                                                  plan.options.string or "defaults")

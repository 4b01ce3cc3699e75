# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps that take a mount down again (state=unmounted and state=absent).

Two ways to say what comes down. With ``src``, the mounts at the path must be
of that source (a different filesystem there is an error, and nothing is
touched); every loop device image_mount attached for the source is detached
once nothing uses it. With the path alone (like ``umount PATH``), whatever is
mounted there is unmounted, except mount points and kernel filesystems the
running system needs; the loop device under it is detached only when it is a
whole loop device that image_mount attached (its ownership claim says so).

Either way a loop device that someone else attached is never detached: one
with autoclear (mount -o loop) goes away by itself with its last mount, any
other stays as it is. A busy mount is refused with what holds it, unless
``lazy``. Removing the mount point is an rmdir, never more.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import (
    blkpg,
    blockdev,
    holders,
    mountinfo,
    mountsys,
    sysfs,
)
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import (
    chain_of,
    extent_of,
    find_exposures,
    loop_exposure,
    mount_devno,
    serves,
    wrong_source,
)
from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER, describe_mount
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import MountSource
from ansible_collections.diskimage.loop.plugins.module_utils._mount.target import (  # noqa: F401  # pylint: disable=unused-import
    ALWAYS_REFUSED, SYSTEM_MOUNT_POINTS, SYSTEM_TREES, refuse_root_path, refuse_system_path)

AUTOCLEAR_WAIT = 3.0
# Kernel interface filesystems: never an image, and the system needs them where they are.
API_FSTYPES = frozenset(("autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
                         "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
                         "rootfs", "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs"))


# --- what is mounted at the path --------------------------------------------

def stack_at(path, table):
    """The mounts at ``path``, visible one first, each the one it covers next."""
    here = dict((m.mount_id, m) for m in mountinfo.mounts_at(path, table))
    top = mountinfo.top_mount_at(path, table)
    stack = []
    while top is not None and top.mount_id in here and top not in stack:
        stack.append(top)
        top = here.get(top.parent_id)
    return stack


def refuse_busy(path):
    what = holders.mount_users(path)
    if what:
        raise DiskImageError("%s is busy: used by %s" % (path, "; ".join(what)), errno=errno.EBUSY,
                             hint="Stop or move them first, or set lazy: true to detach the mount now and let the "
                                  "kernel release it when they are done")


def _plan_umount_steps(plan, unmounting, rest, lazy):
    """Unmount ``unmounting`` (the top of the stack at the target), leaving ``rest``."""
    plan.mount_before = describe_mount(unmounting[0])
    plan.mount_after = describe_mount(rest[0]) if rest else None
    plan.describe_chain(chain_of(unmounting[0]))
    if not lazy:
        refuse_busy(plan.target.path)
    path = plan.target.path
    flags = mountsys.MNT_DETACH if lazy else 0
    for entry in unmounting:
        def umount(entry=entry):
            mountsys.umount2(path, flags)
            plan.unmounted.append(describe_mount(entry))

        plan.add("unmount %s from %s%s" % (entry.source, path, " lazily" if lazy else ""), umount)


def plan_unmount(plan, lazy, table):
    """Unmount the mounts of the selection at the target; another source there
    is an error. Returns the mountinfo entries to be unmounted."""
    if not plan.target.exists:
        return []
    stack = stack_at(plan.target.path, table)
    unmounting = []
    for entry in stack:
        if not serves(entry, plan.selection.extent):
            break
        unmounting.append(entry)
    if stack and not unmounting:
        raise wrong_source(plan.target.path, stack[0], plan.selection.describe())
    if not unmounting:
        return []
    _plan_umount_steps(plan, unmounting, stack[len(unmounting):], lazy)
    return unmounting


def _mounted_source(entry):
    """What a mount is of, for RV(src): the image file behind the loop device,
    else the source mountinfo shows (a device, or a name such as tmpfs)."""
    devno = mount_devno(entry)
    extent = extent_of(*devno) if devno else None
    if extent is not None and extent.key[0] == "file" and extent.name:
        return extent.name
    return entry.source


def plan_unmount_path(plan, lazy, table, fstype=None):
    """Unmount whatever is mounted at the target: the whole stack, so that
    nothing is left mounted there. ``fstype``, when given, must be the type
    of each of those mounts. Returns the mountinfo entries to be unmounted."""
    if not plan.target.exists:
        return []
    stack = stack_at(plan.target.path, table)
    if not stack:
        return []
    for entry in stack:
        if entry.fstype in API_FSTYPES:
            raise DiskImageError(
                "refusing to unmount %s: it is a %s, a kernel interface the system needs, not an image or a "
                "device" % (plan.target.path, entry.fstype), hint="Unmount it yourself if you mean it")
        if fstype and entry.fstype != fstype:
            raise DiskImageError(
                "%s has %s mounted as %s, not %s; nothing was unmounted" % (
                    plan.target.path, entry.source, entry.fstype, fstype),
                hint="Fix fstype, or drop it to unmount whatever is mounted at %s" % plan.target.path)
    plan.found_source = _mounted_source(stack[0])
    plan.fstype = stack[0].fstype
    _plan_umount_steps(plan, stack, [], lazy)
    return stack


# --- the loop devices under it ------------------------------------------------

def plan_teardown(plan, table, unmounting, lazy):
    """Detach the loop devices image_mount attached for the source, once unused."""
    exposures = find_exposures(plan.source, plan.selection.extent, table)
    plan_detach_unused(plan, [e for e in exposures if e.kind == "loop"], unmounting, lazy)


def plan_teardown_path(plan, table, unmounting, lazy):
    """Detach the loop devices mounted whole at the target, where image_mount
    attached them, once unused."""
    candidates, seen = [], set()
    for entry in unmounting:
        exposure = loop_exposure(mount_devno(entry), table)
        if exposure is not None and exposure.name not in seen:
            seen.add(exposure.name)
            candidates.append(exposure)
    plan_detach_unused(plan, candidates, unmounting, lazy)


def plan_detach_unused(plan, loops, unmounting, lazy, release=None):
    """Detach each loop device of ``loops`` that image_mount attached and that
    nothing uses once ``unmounting`` is unmounted; ``release(plan, exposure,
    lazy)`` does it (release_loop when None)."""
    release = release or release_loop
    ids = set(m.mount_id for m in unmounting)
    for exposure in loops:
        if ownership.owner(exposure.name) != OWNER:
            continue
        others = [m for m in exposure.mounts if m.mount_id not in ids]
        if others or sysfs.holders(exposure.name) or blkpg.kernel_partitions(exposure.name):
            continue
        if not exposure.mounts and blockdev.busy_reasons(exposure.name, dev_path=exposure.device):
            continue  # open by someone else right now: not unused
        plan.loop_device = plan.loop_device or exposure.device

        def detach(exposure=exposure):
            release(plan, exposure, lazy)

        plan.add("detach %s, which image_mount attached" % exposure.device, detach)
        plan.detached.append(exposure.device)


def _still(exposure, current):
    """``current`` (the loop device's status now) if it is still the device
    ``exposure`` was, else None: once autoclear has released it, another run
    may have attached its number to something else."""
    if current is None:
        return None
    key = exposure.extent.key
    if key[0] == "file" and (("file", current.backing_device, current.backing_inode) != key
                             or current.offset != exposure.extent.start):
        return None
    return current


def release_loop(plan, exposure, lazy):
    device, name = exposure.device, exposure.name
    number = int(name[4:])
    current = _still(exposure, loopdev.status(number))
    if current is not None and lazy and _busy(name, device):
        # The lazily unmounted filesystem still holds it: the kernel detaches it then.
        if not current.autoclear:
            loopdev.set_autoclear(device, True)
        plan.detached.remove(device)
        plan.pending.append(device)
        return
    # With autoclear the kernel detaches on the last close, which the unmount
    # just was; it may take a moment to show.
    if current is not None and current.autoclear:
        seen = [current]

        def released():
            seen[0] = _still(exposure, loopdev.status(number))
            return seen[0] is None or not seen[0].autoclear
        wait_until(released, AUTOCLEAR_WAIT)
        current = seen[0]
    if current is not None:
        reasons = _busy(name, device)
        if reasons:
            raise DiskImageError("%s is still busy after the unmount: %s" % (device, "; ".join(reasons)),
                                 errno=errno.EBUSY, hint="Release it, then run the task again")
        if loopdev.detach(device) == "pending":
            plan.detached.remove(device)
            plan.pending.append(device)
    now = loopdev.status(number)
    if now is None or _still(exposure, now) is not None:
        ownership.release(name)  # not when the number is another run's device by now


def _busy(name, device):
    try:
        return blockdev.busy_reasons(name, dev_path=device)
    except DiskImageError:
        return []  # gone while we looked


# --- the source and the mount point -------------------------------------------

def missing_source(plan, src, table):
    """The MountSource of ``src``, or None when it does not exist and nothing is
    mounted at the target (then nothing can show it)."""
    try:
        return MountSource(src)
    except DiskImageError as exc:
        if exc.errno != errno.ENOENT:
            raise
        if plan.target.exists and stack_at(plan.target.path, table):
            raise DiskImageError("%s is mounted, and src %s does not exist, so it cannot be told whether the mount "
                                 "is of src" % (plan.target.path, os.path.abspath(src)), errno=errno.ENOENT,
                                 hint="Restore src, or unmount %s yourself" % plan.target.path)
        return None


def plan_rmdir(plan, unmounting=()):
    """Remove the mount point when it is an empty directory (rmdir, never more)."""
    path = plan.target.path
    if not plan.target.exists:
        return
    if not unmounting:
        # Nothing of ours is mounted there: act only on what can be seen now.
        try:
            if os.path.ismount(path) or os.listdir(path):
                return
        except OSError:
            return

    def rmdir():
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                return  # files under the unmounted filesystem, or another mount: keep it
            raise DiskImageError.from_oserror("cannot remove the mount point %s" % path, exc)
        plan.removed_path = True

    plan.add("remove the mount point %s if it is empty" % path, rmdir)

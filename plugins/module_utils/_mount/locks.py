# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The locks that make racing runs of the modules converge, and their order.

Two runs of the same task at once (two pipelines, or a play whose forks
delegate to one build host) would otherwise both plan from the same state and
both act: two mounts stacked on one path, two loop devices for one image. So
each state-changing module holds locks over its plan-and-apply window
(``plan.run(module, make_plan, locks)``), and plans only once it holds them:
a run that waited finds what the other did. ``_kernel/flock.py`` is the
mechanism; this module says what is locked and in which order.

What is locked:

* a mount path, by its canonical path (image_mount);
* an fstab file, by its canonical path (image_mount, when it edits one);
* an image, by the identity of its backing file (st_dev, st_ino), never its
  name; a loop device, partition or map as src stands for the file behind
  it (the extent resolution in ``extent.py``, which is why the keys live in
  this layer). Exclusive for image_partitions and loop_device (they attach,
  scan and remove partitions of the whole image), shared for image_mount;
* an extent of an image, by the image and the first byte of what is mounted
  (image_mount), so that two mounts of one filesystem serialize while
  different partitions of one image mount side by side.

LOCK ORDER. A run takes locks in this order and never waits for one while it
holds one that comes later, so no two runs can wait for each other:

  1. mount paths, sorted;  2. fstab files, sorted;  3. images, sorted;
  4. extents, sorted;  5. /dev/loop-control and 6. a loop device (loopdev
  takes these two itself, inside the window, while it allocates and
  configures a device).

When planning reveals a lock the run does not hold yet (the extent of the
selected partition, the image behind what is mounted at a path), it takes it
if it comes after everything it holds, and otherwise lets go of all and takes
them again in order; either way it plans again under them.

The lock files live under /run (a tmpfs, so the kernel's release on exit and
a reboot clean them up). Check mode creates none and waits at most
CHECK_WAIT seconds; a real run waits at most WAIT seconds. The locks
coordinate runs that share /run: the runs on one host, or in one container.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.flock import Key, Locks
from ansible_collections.diskimage.loop.plugins.module_utils._loop import ownership
from ansible_collections.diskimage.loop.plugins.module_utils._loop import query as loop_query
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import extent_of, mount_devno
from ansible_collections.diskimage.loop.plugins.module_utils._mount.fstab import DEFAULT_FSTAB
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

LOCK_DIR = os.path.join(ownership.RUN_DIR, "locks")
WAIT = 600.0
CHECK_WAIT = 10.0
# Ranks of the kinds of lock, in the order above.
PATH, FSTAB, IMAGE, EXTENT = 1, 2, 3, 4


# --- the keys of what a run touches -----------------------------------------------

def path_key(path):
    """The lock of a mount path: its canonical path."""
    if not path or not os.path.isabs(path):
        return None
    return Key(PATH, os.path.realpath(path), kind="mount path")


def fstab_key(path):
    key = path_key(path)
    return Key(FSTAB, key.name, kind="fstab file") if key else None


def identity(path):
    """The backing object ``path`` stands for, as extent.Extent keys it:
    ('file', 'MAJ:MIN', inode) for a file, the file or device behind a loop
    device, partition or map for a block device; None when ``path`` is missing."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if stat.S_ISBLK(info.st_mode):
        major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
        extent = extent_of(major, minor)
        return extent.key if extent is not None else ("dev", major, minor)
    try:
        return ("file",) + loop_query.file_identity(path)
    except DiskImageError:
        return None  # removed between the two stats


def _identity_name(ident):
    return "-".join(str(part) for part in ident)


def image_key(path, shared=False):
    """The lock of the image ``path`` names (None when it does not exist)."""
    ident = identity(path) if path else None
    return Key(IMAGE, _identity_name(ident), shared, path, kind="image") if ident else None


def extent_keys(extent, shared_image=True):
    """The image lock (shared) and the extent lock of an extent.Extent."""
    if extent is None:
        return []
    name = _identity_name(extent.key)
    return [Key(IMAGE, name, shared_image, extent.name, kind="image"),
            Key(EXTENT, "%s@%d" % (name, extent.start), False, extent.describe(), kind="part of the image")]


def mount_keys(state, src, path, fstab=None):
    """What image_mount locks before it plans: the path, the fstab file it
    edits, the image (shared)."""
    if fstab is None and state in ("present", "absent"):
        fstab = DEFAULT_FSTAB
    return [path_key(path), fstab_key(fstab), image_key(src, shared=True)]


def mount_plan_keys(plan):
    """What image_mount locks for a plan: the path, the fstab file, and the
    image and extent of what it mounts or unmounts (by path alone: of what
    is mounted there)."""
    keys = [path_key(plan.target.path) if plan.target else None, fstab_key(plan.fstab)]
    if plan.selection is not None:
        keys += extent_keys(plan.selection.extent)
    elif plan.target is not None and plan.target.exists:
        for entry in mountinfo.mounts_at(plan.target.path):
            devno = mount_devno(entry)
            keys += extent_keys(extent_of(*devno) if devno else None)
    return keys


def tree_keys(src, root):
    """What image_tree locks before it plans: the root, the image (shared)."""
    return [path_key(root), image_key(src, shared=True)]


def tree_plan_keys(plan):
    """What image_tree locks for a plan: the root, and the image and extent of
    each filesystem it mounts or unmounts."""
    keys = [path_key(plan.root)]
    for extent in plan.extents():
        keys += extent_keys(extent)
    return keys


def image_keys(path):
    """What image_partitions and loop_device lock: the image, exclusively."""
    return [image_key(path)]


def loop_device_keys(path, device):
    """What loop_device locks: the image of ``path``, or the one behind ``device``."""
    if path or not device:
        return image_keys(path)
    try:
        return image_keys(loop_query.device_path(loop_query.parse_device(device)))
    except DiskImageError:
        return []  # not a loop device name: planning says so


# --- the lock sets the modules hand to plan.run ------------------------------------

def _locks(check_mode, keys_of=None, first=(), lock_dir=LOCK_DIR):
    return Locks(lock_dir, CHECK_WAIT if check_mode else WAIT, keys_of=keys_of, first=first, check_mode=check_mode)


def for_mount(state, src, path, fstab, check_mode):
    """image_mount: the path, the fstab file and the image first, then what the plan mounts."""
    return _locks(check_mode, mount_plan_keys, lambda: mount_keys(state, src, path, fstab))


def for_tree(src, root_of, check_mode):
    """image_tree: the root (``root_of()`` names it) and the image first, then
    the bytes of each filesystem the plan mounts or unmounts."""
    return _locks(check_mode, tree_plan_keys, lambda: tree_keys(src, root_of()))


def for_image(path, check_mode):
    """image_partitions: the image, exclusively."""
    return _locks(check_mode, first=lambda: image_keys(path))


def for_loop_device(path, device, check_mode):
    """loop_device: the image of the file, or of the device given by number."""
    return _locks(check_mode, first=lambda: loop_device_keys(path, device))

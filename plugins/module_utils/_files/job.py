# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_files from start to end, in the module's own process.

1. check the declared files, mounts and size (nothing touched yet);
2. under the image's lock, make the image from the golden one when it is
   missing: a copy (golden.py) or a qcow2 overlay (_nbd/overlay.py);
3. grow it to its size (image_size.py); a qcow2 image is connected to an
   nbd device first (_nbd/held.py), and grows and is written through it;
4. move this process into a mount namespace of its own, attach the image
   (or its nbd device) to a loop device with autoclear and mount its tree
   there (_tree/mount.py, the plan of _tree/plan.py);
5. write the files (tree_files.py), unmount, let the devices go.

The mounts exist only in this process's namespace: the host never sees them,
and if the process is killed the kernel drops the namespace with its mounts,
and the loop device (autoclear, held open by this process only) with them.
The one thing a killed run can leave is an empty directory in the temporary
directory, which the next run sweeps (as the image connection's holder does),
and for a qcow2 image an nbd device whose holder is dead, which the next
connect takes down (_nbd/held.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._files import entries as files_entries
from ansible_collections.diskimage.loop.plugins.module_utils._files import golden as golden_copy
from ansible_collections.diskimage.loop.plugins.module_utils._files import image_size
from ansible_collections.diskimage.loop.plugins.module_utils._files import tree_files
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.flock import Key, Locks
from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import held as nbd_held
from ansible_collections.diskimage.loop.plugins.module_utils._nbd.connect import settled as connect_settled
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import overlay as qcow2_overlay
from ansible_collections.diskimage.loop.plugins.module_utils._tree import holder, namespace
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan
from ansible_collections.diskimage.loop.plugins.module_utils._tree.mount import TreeMount
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

OWNER = "image_files"  # the module a connection's record names


class Request(object):
    """The module's parameters, checked."""

    def __init__(self, src, files=(), copy_from=None, force_copy=False, mounts=(), auto_exclude=(), esp_path="",
                 overlay=False, size=None):
        if not src:
            raise DiskImageError("src names no image", hint="Give the path of the image to write to")
        self.src = os.path.abspath(src)
        self.copy_from = os.path.abspath(copy_from) if copy_from else None
        self.force_copy = bool(force_copy)
        if self.force_copy and not self.copy_from:
            raise DiskImageError("force_copy needs copy_from", hint="Name the golden image to copy again")
        self.overlay = bool(overlay)
        if self.overlay and not self.copy_from:
            raise DiskImageError("overlay needs copy_from", hint="Name the golden image the overlay is backed by")
        self.size = size
        self.mounts = list(mounts or ())
        if self.mounts:
            declared = tree_plan.declared_plan(self.mounts)
            if not any(entry["path"] == "/" for entry in declared):
                raise DiskImageError("the declared mounts have no root (path /): %s"
                                     % ", ".join(entry["path"] for entry in declared),
                                     hint="Declare the root filesystem too, such as {path: /, partition: 1}")
        self.auto_exclude = list(auto_exclude or ())
        self.esp_path = esp_path or ""
        self.entries = files_entries.normalize_all(files)


def _image_exists(path):
    try:
        return os.path.isfile(path)
    except OSError:
        return False


def _check_size(req, exists):
    """``size`` in bytes (or None), refused before anything changes when it is
    smaller than the golden image or than the image (unless made again)."""
    images = [req.copy_from] if req.copy_from else []
    if exists and not req.force_copy:
        images.append(req.src)
    return image_size.wanted(req.size, images)


def _overlay_step(req, size, check_mode, result):
    """Make ``src`` a qcow2 overlay of the golden image when needed; True
    when it exists afterwards. Another file at ``src`` (a raw copy, an
    overlay of another golden image) is refused, unless ``force_copy``."""
    golden_copy.check_golden(req.copy_from, req.src)
    state = qcow2_overlay.overlay_state(req.copy_from, req.src)
    if state not in ("missing", "current") and not req.force_copy:
        raise DiskImageError(state, hint="Remove it, correct src or copy_from, or set force_copy: true to make "
                                         "a new overlay in its place (losing what was written to it)")
    if state == "current" and not req.force_copy:
        return True
    made = qcow2_overlay.ensure_overlay(req.copy_from, req.src, force=True, check_mode=check_mode, size=size,
                                        remake=True)
    result["copied"] = made
    result["copy_method"] = "overlay"
    result["actions"].append("make %s a qcow2 overlay of %s%s" % (
        req.src, req.copy_from, "" if size is None else " of %d bytes" % size))
    return not check_mode  # in check mode the new overlay is not there to read


def _copy_step(req, size, check_mode, result, warnings):
    """Make the image from the golden one when needed; True when it exists afterwards."""
    exists = _image_exists(req.src)
    if req.copy_from is None:
        if not exists:
            raise DiskImageError("the image %s does not exist" % req.src,
                                 hint="Give copy_from to make it from a golden image, or correct src")
        return True
    if req.overlay:
        if not os.path.isdir(os.path.dirname(req.src)) and not check_mode:
            _make_directory(os.path.dirname(req.src), result)
        return _overlay_step(req, size, check_mode, result)
    info = golden_copy.check_golden(req.copy_from, req.src)
    if exists and not req.force_copy:
        record = golden_copy.recorded_origin(req.src)
        if record is not None and record != golden_copy.origin_of(info):
            warnings.append("the golden image %s has changed since %s was copied from it; the copy is kept "
                            "(force_copy makes it again)" % (req.copy_from, req.src))
        return True
    if not check_mode and not os.path.isdir(os.path.dirname(req.src)):
        _make_directory(os.path.dirname(req.src), result)
    result["copied"] = True
    result["actions"].append("copy %s to %s" % (req.copy_from, req.src))
    if check_mode:
        return exists
    result["copy_method"] = golden_copy.copy(req.copy_from, req.src, info)
    return True


def _make_directory(directory, result):
    try:
        os.makedirs(directory, 0o755, exist_ok=True)  # another host's run may make it at the same time
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot create the directory %s" % directory, exc)
    result["actions"].append("create directory %s" % directory)


def _tree_dir():
    base = tempfile.gettempdir()
    holder.sweep_stale_dirs(base)
    path = os.path.join(base, "%s%d.%s" % (holder.TMP_PREFIX, os.getpid(), os.urandom(3).hex()))
    os.mkdir(path, 0o700)
    return path


def _grow(path, size, check_mode, result):
    """Grow the image file or the nbd device ``path`` serves to ``size`` bytes:
    its table, the partition that ends last and its filesystem."""
    if size is None:
        return
    found = image_size.plan(path, size)
    if found is None:
        return
    result["growth"] = found.result()
    result["actions"].extend(found.descriptions())
    if not check_mode:
        found.apply()


def _resize_virtual(path, size, check_mode, result):
    """A qcow2 image shows ``size`` bytes (its virtual size); True when it grows."""
    if size is None:
        return False
    _fmt, current = image_size.disk_size(path)
    if current >= size:
        return False
    result["actions"].append("resize the qcow2 image %s from %d to %d bytes" % (path, current, size))
    if not check_mode:
        qcow2_overlay.resize(path, size)
    return True


def _through_nbd(req, fmt, size, check_mode, result):
    """A qcow2 (or other non-raw) image: resized, connected, grown and written
    through its nbd device, disconnected; the file changes."""
    with connect_settled(check_mode=check_mode):
        nbd_held.refuse_served(req.src)  # after the reaping: a killed run's device is gone now
    resized = _resize_virtual(req.src, size, check_mode, result)
    with nbd_held.Held(req.src, fmt, OWNER, read_only=check_mode, check_mode=check_mode) as connection:
        result["nbd_device"] = connection.device
        if resized and check_mode:
            result["actions"].append("grow the partition that ends last and its filesystem to fill %d bytes" % size)
        else:
            _grow(connection.device, size, check_mode, result)
        return _write_files(req, connection.device, check_mode, result) if req.entries else []


def _write_files(req, image, check_mode, result):
    """Mount the tree of ``image`` (the image file, or the nbd device that
    serves it) in a private namespace, write the files, take it down."""
    root = _tree_dir()
    tree = None
    problems = []
    try:
        namespace.unshare_private()
        tree = TreeMount(image, root, read_only=check_mode)
        plan = tree.plan(req.mounts, req.auto_exclude)
        tree.attach()
        mounted = tree.mount(plan, req.esp_path)
        result["loop_device"] = tree.loop.device
        result["mounts"] = [{"path": m["path"], "device": m["device"], "fstype": m["fstype"]} for m in mounted]
        changes = tree_files.run(root, req.entries, check_mode=check_mode)
    finally:
        if tree is not None:
            _done, problems = tree.close()
        try:
            os.rmdir(root)
        except OSError as exc:
            problems.append("could not remove %s: %s" % (root, exc))
    if problems:
        raise DiskImageError("the files were written, but the teardown left something behind: %s" % "; ".join(problems))
    return changes


def run(req, check_mode=False):
    """Everything; returns (result, warnings)."""
    result = {"src": req.src, "copied": False, "actions": [], "files": [], "mounts": [], "loop_device": None,
              "image_format": None, "nbd_device": None, "growth": None}
    warnings = []
    first = [Key(locks.PATH, os.path.realpath(req.src), what=req.src, kind="image file")]
    if req.copy_from:
        first.append(locks.image_key(req.copy_from, shared=True))
    wait = locks.CHECK_WAIT if check_mode else locks.WAIT
    with Locks(locks.LOCK_DIR, wait, check_mode=check_mode) as held:
        held.take(first)
        size = _check_size(req, _image_exists(req.src))
        exists = _copy_step(req, size, check_mode, result, warnings)
        diffs = []
        if exists:
            result["image_format"] = formats.resolve(req.src)
        if exists and (req.entries or size is not None):
            held.take([locks.image_key(req.src)])
            holder.refuse_in_use(req.src)
            if result["image_format"] == formats.RAW:
                _grow(req.src, size, check_mode, result)
                changes = _write_files(req, req.src, check_mode, result) if req.entries else []
            else:
                changes = _through_nbd(req, result["image_format"], size, check_mode, result)
            for change in changes:
                result["files"].append(change.result())
                result["actions"].extend(change.actions)
                if change.diff:
                    diffs.append(change.diff)
        elif not exists:
            if size is not None:
                result["actions"].append("grow the new image to %d bytes, the partition that ends last and its "
                                         "filesystem with it" % size)
            if req.entries:
                result["actions"].append("write %d files into the new copy" % len(req.entries))
        warnings = held.warnings + warnings
    result["changed"] = bool(result["actions"])
    result["diff"] = diffs
    return result, warnings

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_files from start to end, in the module's own process.

1. check the declared files and mounts (nothing touched yet);
2. under the image's lock, make the image from the golden one when it is
   missing (golden.py);
3. move this process into a mount namespace of its own, attach the image with
   autoclear and mount its tree there (_tree/mount.py, the plan of
   _tree/plan.py);
4. write the files (tree_files.py), unmount, let the device go.

The mounts exist only in this process's namespace: the host never sees them,
and if the process is killed the kernel drops the namespace with its mounts,
and the loop device (autoclear, held open by this process only) with them.
The one thing a killed run can leave is an empty directory in the temporary
directory, which the next run sweeps (as the image connection's holder does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._files import entries as files_entries
from ansible_collections.diskimage.loop.plugins.module_utils._files import golden as golden_copy
from ansible_collections.diskimage.loop.plugins.module_utils._files import tree_files
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.flock import Key, Locks
from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks
from ansible_collections.diskimage.loop.plugins.module_utils._tree import holder, namespace
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan
from ansible_collections.diskimage.loop.plugins.module_utils._tree.mount import TreeMount
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class Request(object):
    """The module's parameters, checked."""

    def __init__(self, src, files=(), copy_from=None, force_copy=False, mounts=(), auto_exclude=(), esp_path=""):
        if not src:
            raise DiskImageError("src names no image", hint="Give the path of the image to write to")
        self.src = os.path.abspath(src)
        self.copy_from = os.path.abspath(copy_from) if copy_from else None
        self.force_copy = bool(force_copy)
        if self.force_copy and not self.copy_from:
            raise DiskImageError("force_copy needs copy_from", hint="Name the golden image to copy again")
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


def _copy_step(req, check_mode, result, warnings):
    """Make the image from the golden one when needed; True when it exists afterwards."""
    exists = _image_exists(req.src)
    if req.copy_from is None:
        if not exists:
            raise DiskImageError("the image %s does not exist" % req.src,
                                 hint="Give copy_from to make it from a golden image, or correct src")
        return True
    info = golden_copy.check_golden(req.copy_from, req.src)
    if exists and not req.force_copy:
        record = golden_copy.recorded_origin(req.src)
        if record is not None and record != golden_copy.origin_of(info):
            warnings.append("the golden image %s has changed since %s was copied from it; the copy is kept "
                            "(force_copy makes it again)" % (req.copy_from, req.src))
        return True
    result["copied"] = True
    result["actions"].append("copy %s to %s" % (req.copy_from, req.src))
    if check_mode:
        return exists
    directory = os.path.dirname(req.src)
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o755, exist_ok=True)  # another host's run may make it at the same time
        except OSError as exc:
            raise DiskImageError.from_oserror("cannot create the directory %s" % directory, exc)
        result["actions"].insert(len(result["actions"]) - 1, "create directory %s" % directory)
    result["copy_method"] = golden_copy.copy(req.copy_from, req.src, info)
    return True


def _tree_dir():
    base = tempfile.gettempdir()
    holder.sweep_stale_dirs(base)
    path = os.path.join(base, "%s%d.%s" % (holder.TMP_PREFIX, os.getpid(), os.urandom(3).hex()))
    os.mkdir(path, 0o700)
    return path


def _write_files(req, check_mode, result):
    """Mount the tree in a private namespace, write the files, take it down."""
    holder.refuse_in_use(req.src)
    root = _tree_dir()
    tree = None
    problems = []
    try:
        namespace.unshare_private()
        tree = TreeMount(req.src, root, read_only=check_mode)
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
    result = {"src": req.src, "copied": False, "actions": [], "files": [], "mounts": [], "loop_device": None}
    warnings = []
    first = [Key(locks.PATH, os.path.realpath(req.src), what=req.src, kind="image file")]
    if req.copy_from:
        first.append(locks.image_key(req.copy_from, shared=True))
    wait = locks.CHECK_WAIT if check_mode else locks.WAIT
    with Locks(locks.LOCK_DIR, wait, check_mode=check_mode) as held:
        held.take(first)
        exists = _copy_step(req, check_mode, result, warnings)
        diffs = []
        if exists and req.entries:
            held.take([locks.image_key(req.src)])
            changes = _write_files(req, check_mode, result)
            for change in changes:
                result["files"].append(change.result())
                result["actions"].extend(change.actions)
                if change.diff:
                    diffs.append(change.diff)
        elif req.entries:
            result["actions"].append("write %d files into the new copy" % len(req.entries))
        warnings = held.warnings + warnings
    result["changed"] = bool(result["actions"])
    result["diff"] = diffs
    return result, warnings

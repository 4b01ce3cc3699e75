# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_mkfs plan: check every device, split the tree at the mount points,
make each filesystem with its content, put the tree back.

Planning refuses, before anything is formatted, a device that is not a block
device or is in use (mounted, held by a device-mapper map, opened exclusively).
The split of the tree records its undo, so a failed mkfs leaves the tree as it
was; a rerun makes every filesystem again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat
import tempfile
import time

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, image, mountsys
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids, mkfs, tree as trees

# A filesystem's device: a partition, never an image file.
DEVICE = image.Words(missing="%s does not exist", missing_hint="Give the partition's device, such as /dev/loop0p1",
                     directory="%s is a directory, not a block device",
                     directory_hint="Give the partition's device, such as /dev/loop0p1",
                     neither="%s is not a block device", neither_hint="Give the partition's device, such as /dev/loop0p1")


def _utc(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _relative_paths(top):
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            yield os.path.relpath(os.path.join(dirpath, name), top)


def _mountpoint(fs):
    """The filesystem's mount point as the split names it ('/' for the root), or None."""
    if not fs.get("mountpoint"):
        return None
    return fs["mountpoint"].rstrip("/") or "/"


def check_device(path):
    """Refuse a path that is not an unused block device, before anything is formatted."""
    name = path[len("/dev/"):] if path.startswith("/dev/") else ""
    if name and "/" not in name and not os.path.exists(path):
        # The kernel has the partition but /dev has no node (yet): a container's
        # snapshot of /dev, or devtmpfs catching up after a loop device was reused.
        blockdev.node_for(name)
    info = image.stat_image(path, DEVICE)
    if not stat.S_ISBLK(info.st_mode):
        raise DiskImageError(DEVICE.neither % path, hint=DEVICE.neither_hint)
    kernel_name = os.path.basename(os.path.realpath(path))
    reasons = blockdev.busy_reasons(kernel_name, dev_path=path)
    if reasons:
        raise DiskImageError("%s is mounted or in use: %s" % (path, "; ".join(reasons)),
                             hint="Unmount it first; nothing was formatted")


class MkfsPlan(Plan):
    """The filesystems to make, the commands that make them, and the tree's split."""

    def __init__(self, filesystems, tree, seed, epoch, run_command):
        super(MkfsPlan, self).__init__()
        self.filesystems = filesystems
        self.tree = tree
        self.seed = seed
        self.epoch = epoch
        self.run_command = run_command   # AnsibleModule.run_command's signature
        self.before = []                 # what each device held (fsprobe), in order
        self.made = []                   # the report of each filesystem, as planned then as made
        self.parts = {}                  # mount point -> its directory, once split
        self.clamped = 0

    def result(self, check_mode=False):
        return {"filesystems": self.made, "clamped": self.clamped}

    def diff(self):
        return {"before": {"filesystems": self.before},
                "after": {"filesystems": [{"device": fs["device"], "type": fs["fstype"], "uuid": fs["uuid"],
                                           "label": spec.get("label")}
                                          for fs, spec in zip(self.made, self.filesystems)]}}

    def run(self, argv, env=None, what=None):
        rc, out, err = self.run_command(argv, environ_update=env or {})
        if rc != 0:
            raise DiskImageError("%s failed (exit status %d): %s" % (what or argv[0], rc, (err or out).strip() or "no message"))

    def fs_uuid(self, fs):
        if not fs.get("uuid") and self.seed is not None and fs.get("partuuid"):
            return ids.filesystem_uuid(self.seed, fs["partuuid"])
        return fs.get("uuid")

    def recipe(self, fs, content):
        has_content = content is not None and os.path.isdir(content) and bool(os.listdir(content))
        return mkfs.recipe(fs, self.fs_uuid(fs), self.epoch, has_content)

    def describe(self, fs, recipe, content):
        argv = [content if a == "@CONTENT@" else a for a in recipe.argv]
        fs_uuid = self.fs_uuid(fs)
        return {"device": fs["device"], "fstype": fs["fstype"], "uuid": fs_uuid, "argv": argv,
                "reproducible": self.epoch is not None and fs_uuid is not None and not recipe.warning}

    def apply(self):
        try:
            return super(MkfsPlan, self).apply()
        except (IOError, OSError) as exc:
            raise DiskImageError.from_oserror("making the filesystems", exc)

    # steps

    def split(self):
        if self.epoch is not None:
            self.clamped = trees.clamp_times(self.tree, self.epoch)
        mountpoints = [m for m in (_mountpoint(fs) for fs in self.filesystems) if m]
        self.parts, moved = trees.split(self.tree, mountpoints, self.epoch or 2 ** 40)
        self.undo.append(("put the tree %s back together" % self.tree, lambda: trees.join(moved)))

    def join(self):
        _what, action = self.undo.pop()
        action()

    def make(self, index):
        fs = self.filesystems[index]
        content = self.parts.get(_mountpoint(fs))
        recipe = self.recipe(fs, content)
        self.made[index] = self.describe(fs, recipe, content)
        self.run(self.made[index]["argv"], recipe.env, "making %s on %s" % (fs["fstype"], fs["device"]))
        if recipe.content == "mkfs" and self.epoch is not None and fs["fstype"] in mkfs.EXT:
            self.fix_ext_ctimes(fs, content)
        elif recipe.content == "mcopy":
            self.mcopy(fs, content)
        elif recipe.content == "mount":
            self.mount_copy(fs, content, mkfs.ALIASES.get(fs["fstype"], fs["fstype"]))

    def mcopy(self, fs, content):
        names = sorted(os.listdir(content))
        if not names:
            return
        argv = ["mcopy", "-s", "-p", "-m", "-Q", "-i", fs["device"]] + [os.path.join(content, n) for n in names] + ["::/"]
        env = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
        if self.epoch is not None:
            faketime = shutil.which("faketime")
            if faketime:
                argv = [faketime, "-f", _utc(self.epoch)] + argv
            else:
                self.warnings.append("vfat on %s: mcopy stamps creation dates with the time of the build; install "
                                     "faketime to make them %s" % (fs["device"], _utc(self.epoch)))
        self.run(argv, env, "mcopy into %s" % fs["device"])

    def mount_copy(self, fs, content, fstype):
        where = tempfile.mkdtemp(prefix="image_mkfs.")
        try:
            mountsys.mount(fs["device"], where, fstype)
            try:
                trees.copy_into(content, where)
                if self.epoch is not None:
                    trees.clamp_times(where, self.epoch)
            finally:
                mountsys.umount2(where)
        finally:
            os.rmdir(where)

    def fix_ext_ctimes(self, fs, content):
        requests = mkfs.debugfs_ctime_commands(content, self.epoch, _relative_paths)
        if not requests:
            return
        with tempfile.NamedTemporaryFile("w", prefix="image_mkfs.", suffix=".debugfs") as cmds:
            cmds.write(requests)
            cmds.flush()
            self.run(["debugfs", "-w", "-f", cmds.name, fs["device"]], {"E2FSPROGS_FAKE_TIME": str(self.epoch)},
                     "setting the ctimes on %s with debugfs" % fs["device"])


def _predicted_content(tree, fs, filesystems):
    """The directory a filesystem will be made from, as far as planning can tell
    without splitting the tree: its subtree, or the tree itself for '/'."""
    mnt = _mountpoint(fs)
    if tree is None or mnt is None:
        return None
    if mnt == "/":
        others = set(m.lstrip("/").split("/", 1)[0] for m in (_mountpoint(f) for f in filesystems) if m and m != "/")
        return tree if [n for n in os.listdir(tree) if n not in others] else None
    return os.path.join(tree, mnt.lstrip("/"))


def plan_filesystems(filesystems, tree=None, seed=None, epoch=None, run_command=None):
    """An MkfsPlan: every device checked, a step per filesystem, the tree split around them."""
    if epoch is not None and epoch < 0:
        raise DiskImageError("source_date_epoch must not be negative")
    for fs in filesystems:
        check_device(fs["device"])
    if tree is not None and not os.path.isdir(tree):
        raise DiskImageError("the tree %s is not a directory" % tree)
    plan = MkfsPlan(filesystems, tree, seed, epoch, run_command)
    if tree is not None and filesystems:
        plan.add("clamp the times in %s and move the mount points' subtrees aside" % tree, plan.split)
    for index, fs in enumerate(filesystems):
        content = _predicted_content(tree, fs, filesystems)
        recipe = plan.recipe(fs, content)
        if recipe.warning:
            plan.warnings.append(recipe.warning)
        plan.made.append(plan.describe(fs, recipe, content))
        found = fsprobe.probe_path(fs["device"]) or {}
        plan.before.append({"device": fs["device"], "type": found.get("type"), "uuid": found.get("uuid"),
                            "label": found.get("label")})
        plan.add("make %s on %s" % (fs["fstype"], fs["device"]), lambda index=index: plan.make(index))
    if tree is not None and filesystems:
        plan.add("put the tree %s back together" % tree, plan.join)
    return plan

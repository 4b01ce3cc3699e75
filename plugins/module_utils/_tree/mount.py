# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount an image's tree from a plan (see plan.py) and take it down again.

One loop device for the whole image, with partscan, its partitions exposed with
BLKPG (the host kernel may have no partition parsers), each filesystem mounted
from its partition device. The loop device is opened before it is configured
and attached with autoclear, and that descriptor is held until teardown: when
the process dies, or its mount namespace with the mounts in it, the kernel's
last close clears the device, so nothing leaks even on SIGKILL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, mountsys
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._mount import source as mount_source
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan

RELEASE_WAIT_SECONDS = 5.0


class TreeMount(object):
    """The filesystems of ``image`` mounted under ``root`` by a plan."""

    def __init__(self, image, root, read_only=False):
        self.source = mount_source.MountSource(image)
        self.root = root.rstrip("/") or "/"
        self.read_only = read_only
        self.table = self.source.read_table()
        self.loop = None
        self._fd = None
        self.mounted = []  # entries, in the order they were mounted, with 'where' and 'device'

    def plan(self, mounts=(), exclude=()):
        """The declared mounts, or the Discoverable Partitions ones."""
        if mounts:
            return tree_plan.declared_plan(mounts)
        return tree_plan.auto_plan(self.table, exclude)

    def attach(self):
        self.loop, self._fd = loopdev.attach_held(self.source.path, read_only=self.read_only,
                                                  partscan=self.table is not None)
        if self.table is not None:
            blkpg.apply(self.loop.device, self.table)

    def _device(self, selection):
        if selection.partition is None:
            return self.loop.device
        return "/dev/" + blkpg.partition_name(os.path.basename(self.loop.device), selection.partition.number)

    def _select(self, entry):
        selector = entry["selector"]
        if not selector:
            return mount_source.select(self.source)
        (kind, value), = selector.items()
        return mount_source.select(self.source, kind, value)

    def _mount_one(self, entry):
        selection = self._select(entry)
        fstype = mount_source.filesystem_type(selection, entry["fstype"] or None)
        target = paths.resolve_in(self.root, entry["path"])
        if not os.path.isdir(target):
            if self.read_only or entry["path"] == "/":
                raise DiskImageError("the mount point %s does not exist in the image" % entry["path"],
                                     errno=errno.ENOENT, hint="Create it, or mount the tree writable")
            os.makedirs(target, 0o755)
        opts = [o for o in (entry["opts"] or "").split(",") if o]
        if (self.read_only or entry["read_only"] or fstype in mountsys.READ_ONLY_FSTYPES) and "ro" not in opts:
            opts.append("ro")
        device = self._device(selection)
        mountsys.mount_with_options(device, target, fstype, ",".join(opts) or None)
        done = dict(entry, where=target, device=device, fstype=fstype)
        self.mounted.append(done)
        return done

    def mount(self, plan, esp_path=""):
        """Mount ``plan`` parents first; the ESP goes last, once /boot is known."""
        for entry in tree_plan.mount_order(plan):
            self._mount_one(entry)
        if any(e["path"] is None for e in plan):
            boot = tree_plan.where(self.root, "/boot")  # a link there counts as not empty
            boot_empty = os.path.isdir(boot) and not os.path.islink(boot) and not os.listdir(boot)
            placed = tree_plan.place_esp(plan, boot_empty, esp_path)
            for entry in placed:
                if entry["kind"] == "esp":
                    self._mount_one(entry)
        return self.mounted

    def close(self):
        """Unmount newest first, then release the loop device. Returns
        (done, problems): sentences of what was undone and of what was not."""
        done, problems = [], []
        for entry in tree_plan.teardown_order(self.mounted):
            try:
                mountsys.umount2(entry["where"])
                done.append("unmounted %s" % entry["path"])
            except DiskImageError as exc:
                try:
                    mountsys.umount2(entry["where"], mountsys.MNT_DETACH)
                    problems.append("%s was busy and was detached lazily: %s" % (entry["path"], exc))
                except DiskImageError as again:
                    problems.append("could not unmount %s: %s" % (entry["path"], again))
        self.mounted = []
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._wait_released():
                done.append("released %s" % self.loop.device)
            else:
                problems.append("%s is still attached; the kernel clears it (autoclear) when its last user "
                                "closes it" % self.loop.device)
        return done, problems

    def _wait_released(self):
        def released():
            now = loopdev.status(self.loop.device)
            return now is None or now.identity() != self.loop.identity()

        return wait_until(released, RELEASE_WAIT_SECONDS)

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_mkfs
short_description: Make filesystems on partitions from a directory tree, reproducibly
version_added: 0.1.0
description:
  - Makes a filesystem on each partition device given, with the content of its part of a
    directory tree - the tree is split at the mount points, so C(/boot) goes to the partition
    mounted there and the root filesystem keeps an empty C(/boot) directory.
  - With O(source_date_epoch), the result is the same bytes every time for the same tree and
    identifiers. Times in the tree are clamped to the epoch (atime and mtime set to
    C(min(mtime, epoch))); ext2/3/4 are made with C(mke2fs -d) under C(E2FSPROGS_FAKE_TIME), a
    fixed UUID and directory hash seed, and the copied files' ctimes set afterwards with
    C(debugfs); vfat with C(mkfs.vfat --invariant -i) and C(mcopy) (under C(faketime) when it is
    installed); swap with C(mkswap -U).
  - xfs, btrfs and other types get the UUID, but their tools write random values and the time
    of the build; the module warns that such a filesystem is not reproducible. Their content is
    copied with C(mkfs.btrfs --rootdir), or by mounting the new filesystem.
  - Formats every device given, whatever it holds - the caller decides what may be formatted.
    A device that is mounted is refused before anything is changed.
  - Used by the C(diskimage.loop.image_build) role for reproducible builds (C(image_build_reproducible)).
author:
  - diskimage.loop contributors (@diskimage)
attributes:
  check_mode:
    support: full
    description: Reports the commands it would run, and runs none.
  diff_mode:
    support: none
    description: A new filesystem has no before to compare with.
options:
  filesystems:
    description: The filesystems to make, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      device:
        description: The partition's block device, such as C(/dev/loop0p2).
        type: path
        required: true
      fstype:
        description: C(ext2), C(ext3), C(ext4), C(vfat), C(swap), C(xfs), C(btrfs), or another type with a C(mkfs.<type>).
        type: str
        required: true
      label:
        description: Filesystem label.
        type: str
      mountpoint:
        description: Where the partition goes in O(tree); its content is that part of the tree.
        type: str
      uuid:
        description: Filesystem UUID. Derived from O(seed) and O(filesystems[].partuuid) when omitted and a seed is given.
        type: str
      partuuid:
        description: The partition's PARTUUID, that the derived UUID is named by.
        type: str
      mkfs_options:
        description: Extra arguments for mkfs, before the device.
        type: list
        elements: str
        default: []
      mkfs_program:
        description: The program that makes the filesystem, when not the usual one.
        type: str
  tree:
    description:
      - A directory with the image's content, laid out as the mounted image would be. It is split
        for the time of the call and put back together afterwards.
      - Without it, empty filesystems are made.
    type: path
  seed:
    description:
      - Derive each filesystem UUID from this seed and the partition's PARTUUID (a version 5 UUID)
        instead of letting mkfs draw one.
    type: str
  source_date_epoch:
    description:
      - Build reproducibly, with every time in the filesystems at most this many seconds since
        1970 (the convention of C(SOURCE_DATE_EPOCH)).
    type: int
notes:
  - Needs root, C(mke2fs) and C(debugfs) (e2fsprogs) for ext, C(mkfs.vfat) (dosfstools) and
    C(mcopy) (mtools) for vfat with content.
"""

EXAMPLES = r"""
- name: Make ext4 root and a vfat ESP from a staged tree, reproducibly
  diskimage.loop.image_mkfs:
    tree: /var/tmp/staging
    seed: fleet-image-v3
    source_date_epoch: 1700000000
    filesystems:
      - {device: /dev/loop0p1, fstype: vfat, label: ESP, mountpoint: /efi, partuuid: 3c1c0d0e-7f6a-5d8e-9b1a-0a1b2c3d4e5f}
      - {device: /dev/loop0p2, fstype: ext4, label: root, mountpoint: /, partuuid: 0e7b3d5a-3b1c-5a2f-8d44-6f0e9c1b2a3d}

- name: An empty xfs with a chosen UUID
  diskimage.loop.image_mkfs:
    filesystems:
      - {device: /dev/loop0p3, fstype: xfs, uuid: 6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d}
"""

RETURN = r"""
filesystems:
  description: What was made on each device.
  returned: success
  type: list
  elements: dict
  contains:
    device: {description: The device., type: str}
    fstype: {description: The filesystem type., type: str}
    uuid: {description: "The UUID given to it, or null when mkfs chose one.", type: str}
    argv: {description: The mkfs command., type: list, elements: str}
    reproducible: {description: "Whether the bytes are the same from build to build (false without O(source_date_epoch)).", type: bool}
  sample: [{device: /dev/loop0p2, fstype: ext4, uuid: 0e7b3d5a-..., argv: [mke2fs, -t, ext4], reproducible: true}]
clamped:
  description: How many paths in O(tree) had their times clamped.
  returned: success
  type: int
  sample: 12
"""

import os
import shutil
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils import blockdev
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids, mkfs, tree as trees


def _mounted(device):
    """Whether the block device is mounted anywhere (its numbers in /proc/self/mountinfo)."""
    st = os.stat(device)
    wanted = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    with open("/proc/self/mountinfo") as handle:
        return any(line.split(" ")[2] == wanted for line in handle)


def _relative_paths(top):
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            yield os.path.relpath(os.path.join(dirpath, name), top)


def _utc(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


class Maker(object):
    def __init__(self, module):
        self.module = module
        self.epoch = module.params["source_date_epoch"]

    def run(self, argv, env=None, what=None):
        rc, out, err = self.module.run_command(argv, environ_update=env or {})
        if rc != 0:
            raise DiskImageError("%s failed (exit status %d): %s" % (what or argv[0], rc, (err or out).strip() or "no message"))

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
                self.module.warn("vfat on %s: mcopy stamps creation dates with the time of the build; install "
                                 "faketime to make them %s" % (fs["device"], _utc(self.epoch)))
        self.run(argv, env, "mcopy into %s" % fs["device"])

    def mount_copy(self, fs, content, fstype):
        from ansible_collections.diskimage.loop.plugins.module_utils import mountsys
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

    def make(self, fs, content):
        fs_uuid = fs.get("uuid")
        seed = self.module.params["seed"]
        if not fs_uuid and seed is not None and fs.get("partuuid"):
            fs_uuid = ids.filesystem_uuid(seed, fs["partuuid"])
        has_content = content is not None and bool(os.listdir(content))
        recipe = mkfs.recipe(fs, fs_uuid, self.epoch, has_content)
        argv = [content if a == "@CONTENT@" else a for a in recipe.argv]
        if recipe.warning:
            self.module.warn(recipe.warning)
        report = {"device": fs["device"], "fstype": fs["fstype"], "uuid": fs_uuid, "argv": argv,
                  "reproducible": self.epoch is not None and fs_uuid is not None and not recipe.warning}
        if self.module.check_mode:
            return report
        self.run(argv, recipe.env, "making %s on %s" % (fs["fstype"], fs["device"]))
        if recipe.content == "mkfs" and self.epoch is not None and fs["fstype"] in mkfs.EXT:
            self.fix_ext_ctimes(fs, content)
        elif recipe.content == "mcopy":
            self.mcopy(fs, content)
        elif recipe.content == "mount":
            self.mount_copy(fs, content, mkfs.ALIASES.get(fs["fstype"], fs["fstype"]))
        return report

    def fix_ext_ctimes(self, fs, content):
        requests = mkfs.debugfs_ctime_commands(content, self.epoch, _relative_paths)
        if not requests:
            return
        with tempfile.NamedTemporaryFile("w", prefix="image_mkfs.", suffix=".debugfs") as cmds:
            cmds.write(requests)
            cmds.flush()
            self.run(["debugfs", "-w", "-f", cmds.name, fs["device"]], {"E2FSPROGS_FAKE_TIME": str(self.epoch)},
                     "setting the ctimes on %s with debugfs" % fs["device"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            filesystems=dict(type="list", elements="dict", required=True, options=dict(
                device=dict(type="path", required=True),
                fstype=dict(type="str", required=True),
                label=dict(type="str"),
                mountpoint=dict(type="str"),
                uuid=dict(type="str"),
                partuuid=dict(type="str"),
                mkfs_options=dict(type="list", elements="str", default=[]),
                mkfs_program=dict(type="str"),
            )),
            tree=dict(type="path"),
            seed=dict(type="str", no_log=False),
            source_date_epoch=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": True, "filesystems": [], "clamped": 0}
    maker = Maker(module)
    moved = []
    try:
        if p["source_date_epoch"] is not None and p["source_date_epoch"] < 0:
            raise DiskImageError("source_date_epoch must not be negative")
        for fs in p["filesystems"]:
            name = fs["device"][len("/dev/"):] if fs["device"].startswith("/dev/") else ""
            if name and "/" not in name and not os.path.exists(fs["device"]):
                # The kernel has the partition but /dev has no node (yet): a container's
                # snapshot of /dev, or devtmpfs catching up after a loop device was reused.
                blockdev.node_for(name)
            try:
                st = os.stat(fs["device"])
            except OSError as exc:
                raise DiskImageError.from_oserror("cannot use %s" % fs["device"], exc)
            if not stat.S_ISBLK(st.st_mode):
                raise DiskImageError("%s is not a block device" % fs["device"], hint="Give the partition's device, such as /dev/loop0p1")
            if _mounted(fs["device"]):
                raise DiskImageError("%s is mounted" % fs["device"], hint="Unmount it first; nothing was formatted")
        if p["tree"] is not None and not os.path.isdir(p["tree"]):
            raise DiskImageError("the tree %s is not a directory" % p["tree"])
        parts = {}
        if p["tree"] is not None and not module.check_mode:
            if p["source_date_epoch"] is not None:
                result["clamped"] = trees.clamp_times(p["tree"], p["source_date_epoch"])
            mountpoints = [fs["mountpoint"].rstrip("/") or "/" for fs in p["filesystems"] if fs.get("mountpoint")]
            parts, moved = trees.split(p["tree"], mountpoints, p["source_date_epoch"] or 2 ** 40)
        for fs in p["filesystems"]:
            mnt = (fs.get("mountpoint") or "").rstrip("/") or ("/" if fs.get("mountpoint") else None)
            result["filesystems"].append(maker.make(fs, parts.get(mnt)))
    except DiskImageError as exc:
        module.fail_json(**dict(result, **exc.to_result()))
    except (IOError, OSError) as exc:
        module.fail_json(**dict(result, **DiskImageError.from_oserror("making the filesystems", exc).to_result()))
    finally:
        if moved:
            trees.join(moved)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

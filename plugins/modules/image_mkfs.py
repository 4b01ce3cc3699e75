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
    A device that is mounted or otherwise in use (held by a device-mapper map, opened
    exclusively) is refused before anything is changed.
  - Used by the C(diskimage.loop.image_build) role for reproducible builds (C(image_build_reproducible)).
author:
  - diskimage.loop contributors (@diskimage)
attributes:
  check_mode:
    support: full
    description: Reports the commands it would run, and runs none.
  diff_mode:
    support: full
    description: What each device held before (type, UUID, label, as probed) and the filesystem made on it.
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
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["make ext4 on /dev/loop0p2"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils.plan import run
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible.filesystems import plan_filesystems


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
    run(module, lambda: plan_filesystems(p["filesystems"], p["tree"], p["seed"], p["source_date_epoch"],
                                         module.run_command))


if __name__ == "__main__":
    main()

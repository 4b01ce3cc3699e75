# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: partition_layout
short_description: The layout for image_partitions from a role's partition entries
version_added: 0.2.0
description:
  - Builds the O(diskimage.loop.image_partitions#module:layout) of M(diskimage.loop.image_partitions) from
    partition entries that say more than the table (a mount point, mount options, as the
    C(diskimage.loop.image_build) role's C(image_build_partitions) do) - each entry keeps only the keys the
    module reads (C(size), C(start), C(type), C(name), C(uuid), C(bootable), C(attributes), C(fstype),
    C(fs_label), C(label), C(fs_uuid), C(mkfs_options), C(mkfs_program)); null values are dropped.
  - With O(seed), the disk identifier and GPT partition UUIDs are derived from it, as
    P(diskimage.loop.seeded_layout#filter) does.
options:
  _input:
    description: The partition entries, in table order.
    type: list
    elements: dict
    required: true
  label:
    description: The table type.
    type: str
    choices: [dos, gpt]
    default: gpt
  disk_id:
    description: The disk identifier; empty or null means none (random, or from O(seed)).
    type: str
  seed:
    description: Derive the identifiers from this seed; empty or null means not.
    type: str
  filesystems:
    description:
      - Keep the filesystem keys. With C(false), the layout holds the table alone - for a build that makes
        the filesystems later, from a tree, with M(diskimage.loop.image_mkfs).
    type: bool
    default: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Lay down the table and the filesystems of the declared partitions
  diskimage.loop.image_partitions:
    src: /srv/images/seed.img
    size: 2GiB
    layout: "{{ image_build_partitions | diskimage.loop.partition_layout('gpt', seed='fleet-v3') }}"
  vars:
    image_build_partitions:
      - {size: 256MiB, type: esp, fstype: vfat, label: ESP, mountpoint: /boot}
      - {type: root, fstype: ext4, label: root, mountpoint: /, mount_options: noatime}
"""

RETURN = r"""
_value:
  description: The layout, a dict with C(label), C(partitions) and, when given or seeded, C(disk_id).
  type: dict
"""

from ansible_collections.diskimage.loop.plugins.module_utils._image.entries import partition_layout as build
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def partition_layout(partitions, label="gpt", disk_id=None, seed=None, filesystems=True):
    return call("partition_layout", build, partitions, label, disk_id, seed, filesystems)


class FilterModule(object):
    def filters(self):
        return {"partition_layout": partition_layout}

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: tree_mounts
short_description: The mounts of an image tree from a role's partition entries
version_added: 0.2.0
description:
  - Pairs each partition entry that has a C(mountpoint) with the number of its partition, as
    M(diskimage.loop.image_partitions) returned it (RV(diskimage.loop.image_partitions#module:entry_partitions)
    says which partition each entry became, so logical partitions of a C(dos) table are found too),
    and returns the mounts shortest path first - C(path), C(partition), and C(fstype) and C(opts)
    (from C(mount_options)) where the entry has them.
options:
  _input:
    description: The partition entries, in the order they were given to image_partitions.
    type: list
    elements: dict
    required: true
  partitions:
    description:
      - The registered result of the image_partitions run with those entries as its layout, or its
        RV(diskimage.loop.image_partitions#module:entry_partitions).
    type: raw
    required: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: The mounts of the declared partitions
  ansible.builtin.debug:
    msg: "{{ image_build_partitions | diskimage.loop.tree_mounts(table) }}"
  # [{path: /, partition: 2, fstype: ext4, opts: noatime}, {path: /boot, partition: 1, fstype: vfat}]
"""

RETURN = r"""
_value:
  description: The mounts, each a dict with C(path), C(partition), and C(fstype) and C(opts) where declared.
  type: list
  elements: dict
"""

from ansible_collections.diskimage.loop.plugins.module_utils._image.entries import tree_mounts as build
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def tree_mounts(entries, partitions):
    return call("tree_mounts", build, entries, partitions)


class FilterModule(object):
    def filters(self):
        return {"tree_mounts": tree_mounts}

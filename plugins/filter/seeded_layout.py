# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: seeded_layout
short_description: Fill a partition layout's disk identifier and partition UUIDs from a seed
version_added: 0.1.0
description:
  - Returns the layout (as M(diskimage.loop.image_partitions) takes it) with C(disk_id) and, on
    gpt, each partition's C(uuid) set wherever none is declared, derived from the seed instead of
    drawn at random - so two builds of the same declaration write the same table.
  - Each is a version 5 UUID in the seed's namespace. A partition is named by its type and its
    rank among partitions of that type (C(root#1), C(esp#1), C(linux#2)), as systemd-repart does,
    so adding a partition of another type leaves the others' UUIDs alone. On dos, C(disk_id) is
    8 hex digits, and PARTUUIDs follow from it.
options:
  _input:
    description: The layout, a dict with C(label), C(partitions) and optionally C(disk_id).
    type: dict
    required: true
  seed:
    description: Any text; images that must differ need different seeds.
    type: str
    required: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: A GPT layout with identifiers from the seed
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    layout: "{{ {'label': 'gpt', 'partitions': [{'type': 'esp', 'size': '64MiB'}, {'type': 'root'}]}
                | diskimage.loop.seeded_layout('fleet-image-v3') }}"
"""

RETURN = r"""
_value:
  description: The layout with C(disk_id) and partition C(uuid)s filled in.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids


def seeded_layout(layout, seed):
    if not isinstance(layout, dict):
        raise AnsibleFilterError("seeded_layout expects a layout dict (label, partitions), got %s" % type(layout).__name__)
    if seed is None or str(seed) == "":
        raise AnsibleFilterError("seeded_layout needs a non-empty seed")
    return ids.seeded_layout(layout, str(seed))


class FilterModule(object):
    def filters(self):
        return {"seeded_layout": seeded_layout}

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: partition_type_alias
short_description: The friendly name of a partition type
version_added: 0.2.0
description:
  - Returns the alias M(diskimage.loop.image_partitions) returns as RV(diskimage.loop.image_partitions#module:partitions[].type_alias)
    for a type given in any form it reads - C(0fc63daf-8483-4772-8e79-3d69d8477de4) is C(linux), C(efi) is
    C(esp), C(root) is C(root-x86-64) on an x86-64 controller.
  - Null for a valid type without an alias. An unreadable type fails the template.
options:
  _input:
    description: The type, an alias, an MBR id or a GUID.
    type: raw
    required: true
  label:
    description: The table type.
    type: str
    choices: [dos, gpt]
    default: gpt
  arch:
    description: The architecture of C(root) and C(usr); default the controller's.
    type: str
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Name the types of an image's partitions
  ansible.builtin.debug:
    msg: "{{ parts.table.partitions | map(attribute='type') | map('diskimage.loop.partition_type_alias') | list }}"

- name: Check that a declared type is the extended partition of a dos table
  ansible.builtin.debug:
    msg: "{{ ('0x05' | diskimage.loop.partition_type_alias('dos')) == 'extended' }}"
"""

RETURN = r"""
_value:
  description: The alias, such as C(linux), C(esp) or C(root-x86-64), or null.
  type: str
"""

from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import resolve_type, type_alias
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def partition_type_alias(value, label="gpt", arch=None):
    return type_alias(call("partition_type_alias", resolve_type, value, label, arch), label)


class FilterModule(object):
    def filters(self):
        return {"partition_type_alias": partition_type_alias}

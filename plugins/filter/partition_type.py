# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: partition_type
short_description: A partition type alias, MBR id or GUID, as a partition table stores it
version_added: 0.2.0
description:
  - Resolves a partition type the way M(diskimage.loop.image_partitions) reads C(type) in a layout, and
    returns it as the table stores it and the module returns it - C(0x83)-style for C(dos), a lowercase
    GUID for C(gpt).
  - Aliases are those of the module (C(linux), C(swap), C(esp), C(xbootldr), C(bios-boot), C(lvm),
    C(raid), C(extended), the Discoverable Partitions types C(root), C(usr), C(home), C(srv), C(var),
    C(tmp), C(root-arm64)...). An MBR id or GUID of the other label is translated where both have the
    type (C(0x82) on gpt is swap).
  - An unknown type, or one the label does not have, fails the template with the reason.
options:
  _input:
    description: The type, an alias, an MBR id (C(0x83), C(83), C(131)) or a GUID.
    type: raw
    required: true
  label:
    description: The table type.
    type: str
    choices: [dos, gpt]
    default: gpt
  arch:
    description:
      - The architecture of C(root) and C(usr) (C(x86-64), C(arm64), or a machine name such as C(aarch64)).
        Default the architecture of the controller, where the template is rendered.
    type: str
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Compare a partition's type with the one declared
  ansible.builtin.assert:
    that:
      - parts.partitions[0].type == ('esp' | diskimage.loop.partition_type)
      - parts.partitions[1].type == ('root' | diskimage.loop.partition_type(arch='arm64'))

- name: The MBR id of a Linux swap partition
  ansible.builtin.debug:
    msg: "{{ 'swap' | diskimage.loop.partition_type('dos') }}"  # 0x82
"""

RETURN = r"""
_value:
  description: The type, C(0x83)-style on dos, a lowercase GUID on gpt.
  type: str
"""

from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import resolve_type
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def partition_type(value, label="gpt", arch=None):
    return call("partition_type", resolve_type, value, label, arch)


class FilterModule(object):
    def filters(self):
        return {"partition_type": partition_type}

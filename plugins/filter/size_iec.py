# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: size_iec
short_description: A size in its shortest exact binary form, such as 8MiB
version_added: 0.2.0
description:
  - Returns a size (bytes, or any size the modules read - see P(diskimage.loop.size_bytes#filter)) as the
    largest binary unit that divides it exactly - C(8388608) is C(8MiB), C(1.5GiB) is C(1536MiB), and
    C(1000) stays C(1000B). The modules read the result back to the same number of bytes.
options:
  _input:
    description: The size.
    type: raw
    required: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Say how big a partition is
  ansible.builtin.debug:
    msg: "partition 2 has {{ parts.partitions[1].size | diskimage.loop.size_iec }}"
"""

RETURN = r"""
_value:
  description: The size, such as C(8MiB) or C(1000B).
  type: str
"""

from ansible_collections.diskimage.loop.plugins.module_utils.sizes import format_size, parse_size
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def size_iec(value):
    return format_size(call("size_iec", parse_size, value))


class FilterModule(object):
    def filters(self):
        return {"size_iec": size_iec}

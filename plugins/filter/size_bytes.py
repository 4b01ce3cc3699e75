# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: size_bytes
short_description: A size as the modules read it, in bytes
version_added: 0.2.0
description:
  - Returns the number of bytes a size means, with exactly the grammar the modules of this collection
    read (O(diskimage.loop.image_partitions#module:size), partition sizes, offsets).
  - A bare number is bytes; C(K), C(M), C(G), C(T), C(P), C(E) and their C(KiB) forms are powers of 1024,
    the C(KB) forms powers of 1000 (as util-linux reads them); C(s) counts 512-byte sectors. A fraction
    must come out as whole bytes (C(1.5GiB) does, C(1.1B) does not).
  - An unreadable or negative size fails the template with the reason.
options:
  _input:
    description: The size, a number of bytes or a string such as C(8MiB), C(1.5GiB), C(100MB) or C(2048s).
    type: raw
    required: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: The image size in bytes, for a comparison or a stamp
  ansible.builtin.debug:
    msg: "{{ '1.5GiB' | diskimage.loop.size_bytes }}"  # 1610612736

- name: Sectors and decimal units
  ansible.builtin.assert:
    that:
      - "'2048s' | diskimage.loop.size_bytes == 1048576"
      - "'100MB' | diskimage.loop.size_bytes == 100000000"
"""

RETURN = r"""
_value:
  description: The size in bytes.
  type: int
"""

from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def size_bytes(value):
    return call("size_bytes", parse_size, value)


class FilterModule(object):
    def filters(self):
        return {"size_bytes": size_bytes}

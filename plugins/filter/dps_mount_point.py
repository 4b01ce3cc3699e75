# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: dps_mount_point
short_description: Where the Discoverable Partitions rules mount a partition type
version_added: 0.2.0
description:
  - Returns the mount point C(systemd-dissect --mount) gives a partition of this type - C(/) for a root
    partition of any architecture, C(/usr), C(/home), C(/srv), C(/var), C(/var/tmp), C(/boot) for
    XBOOTLDR, and C(/boot) for the ESP (C(/efi) with O(xbootldr=true)) - or null for a type the rules do
    not mount (C(linux), C(swap), verity partitions...).
  - The same rules as
    RV(diskimage.loop.image_partitions#module:partitions[].dps_mount_point) applies them; that one also knows the
    partition's neighbours (two partitions of one type are mounted by neither).
options:
  _input:
    description:
      - A type (alias, MBR id or GUID, read as a GPT type), or a partition as
        M(diskimage.loop.image_partitions) returns it, whose C(attributes) count too (the C(no_auto) bit
        63 means no mount point).
    type: raw
    required: true
  arch:
    description: The architecture of C(root) and C(usr) given as aliases; default the controller's.
    type: str
  xbootldr:
    description: Whether the image has an XBOOTLDR partition, which takes C(/boot) from the ESP.
    type: bool
    default: false
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Where the declared partitions will be mounted
  ansible.builtin.debug:
    msg: "{{ ['esp', 'root', 'home', 'swap'] | map('diskimage.loop.dps_mount_point') | list }}"  # ['/boot', '/', '/home', None]
"""

RETURN = r"""
_value:
  description: The mount point, or null.
  type: str
"""

from ansible_collections.diskimage.loop.plugins.module_utils._image.dps import mount_point_of
from ansible_collections.diskimage.loop.plugins.plugin_utils.filter_errors import call


def dps_mount_point(value, arch=None, xbootldr=False):
    return call("dps_mount_point", mount_point_of, value, arch, xbootldr)


class FilterModule(object):
    def filters(self):
        return {"dps_mount_point": dps_mount_point}

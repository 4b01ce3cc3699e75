#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: loop_device_info
short_description: Facts about loop devices, as losetup -a, -j, -f and --list show them
version_added: 0.1.0
description:
  - Lists every attached loop device (C(losetup -a)), the devices attached to one file
    (C(losetup -j FILE [-o OFFSET]), matched by device and inode rather than by the
    64-byte name the kernel truncates), or the status of one device (C(losetup DEVICE)).
  - Optionally reports the first free device (C(losetup -f)) without creating one.
  - Reads sysfs and the loop ioctls directly; no C(losetup) binary is needed on the target.
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reads only; it runs the same in check mode.
options:
  file:
    description:
      - Only devices attached to this file.
      - A file that does not exist, a directory, or anything else that cannot back a loop
        device is refused with an error.
    type: path
    aliases: [src, image]
  offset:
    description: With O(file), only devices at this offset (bytes or a unit such as C(1MiB)).
    type: raw
  device:
    description: Only this device, such as C(/dev/loop3). A device that is not a loop device is refused.
    type: str
  find_free:
    description:
      - Also report the first free loop device in RV(free_device).
      - Nothing is created; when every existing device is bound, RV(free_device) names the
        device the next attach would create and RV(free_device_exists) is false.
    type: bool
    default: false
notes:
  - Needs read access to the loop devices; root in practice.
seealso:
  - module: diskimage.loop.loop_device
"""

EXAMPLES = r"""
- name: All attached loop devices (losetup -a)
  diskimage.loop.loop_device_info:
  register: loops

- name: Devices attached to one image (losetup -j IMAGE)
  diskimage.loop.loop_device_info:
    file: /srv/images/disk.img
  register: image_loops

- name: Is anything attached at the second partition's offset? (losetup -j IMAGE -o 1MiB)
  diskimage.loop.loop_device_info:
    file: /srv/images/disk.img
    offset: 1MiB

- name: The first free device (losetup -f)
  diskimage.loop.loop_device_info:
    find_free: true
  register: free

- name: Show it
  ansible.builtin.debug:
    msg: "next free device: {{ free.free_device }}"
"""

RETURN = r"""
devices:
  description:
    - The matching attached devices, ordered by number; each entry has the same fields as
      RV(diskimage.loop.loop_device#module:status).
  returned: always
  type: list
  elements: dict
  sample:
    - device: /dev/loop0
      name: loop0
      number: 0
      major: 7
      minor: 0
      backing_file: /srv/images/disk.img
      backing_file_deleted: false
      backing_inode: 1234
      backing_device: "254:1"
      offset: 0
      sizelimit: 0
      size: 67108864
      sector_size: 512
      read_only: false
      autoclear: false
      partscan: false
      direct_io: false
free_device:
  description: The first free loop device.
  returned: when find_free is true
  type: str
  sample: /dev/loop1
free_device_exists:
  description: Whether RV(free_device) exists already (false means an attach would create it).
  returned: when find_free is true
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._loop import query
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            file=dict(type="path", aliases=["src", "image"]),
            offset=dict(type="raw"),
            device=dict(type="str"),
            find_free=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("file", "device")],
        required_by={"offset": "file"},
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False)
    try:
        if params["device"]:
            current = query.status(query.check_loop_device(params["device"]))
            devices = [current] if current else []
        elif params["file"]:
            offset = parse_size(params["offset"], "offset") if params["offset"] is not None else None
            query.check_lookup_file(params["file"])
            devices = query.find_associated(params["file"], offset=offset)
        else:
            devices = query.list_attached()
        result["devices"] = [dev.to_dict() for dev in devices]
        if params["find_free"]:
            # read from sysfs: nothing is created, unlike LOOP_CTL_GET_FREE
            free, exists = query.next_free()
            result["free_device"] = query.device_path(free)
            result["free_device_exists"] = exists
    except DiskImageError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()

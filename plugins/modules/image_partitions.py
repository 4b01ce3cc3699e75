#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_partitions
short_description: Read and write the partition table of a disk image, and expose its partitions
version_added: 0.1.0
description:
  - Makes every partition of a disk image (or of a loop or block device) a block device,
    the job C(losetup) plus C(kpartx -a) or C(partx -a) do by hand, and takes them away
    again with I(state=absent), the job of C(kpartx -d), C(dmsetup remove) and C(losetup -d).
  - Reads MBR (with extended and logical partitions) and GPT tables itself, in Python, with
    CRC checks and the backup GPT header as a fallback; a damaged table is a clear error.
  - With O(layout), writes a partition table first when the image has none, 1 MiB aligned;
    more than four partitions on a C(dos) label get an extended partition holding logical
    ones. An image whose table differs from O(layout) is an error unless O(force) is set.
  - An image file is attached to a loop device for you, reusing an existing attachment of
    the whole image (also one made by hand). With I(state=absent) the module detaches only
    loop devices it attached itself.
  - No C(losetup), C(kpartx), C(partx), C(sfdisk) or C(dmsetup) binary is needed on the target.
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Plans and reports the changes without writing, attaching or mapping anything.
  diff_mode:
    support: full
    description: Shows the exposed partition devices before and after.
options:
  src:
    description:
      - The disk image file, or a whole-disk block device such as C(/dev/loop3).
      - A partition (C(/dev/sda1)) is refused.
    type: path
    required: true
    aliases: [image, device]
  state:
    description:
      - C(present) makes every partition a block device.
      - C(absent) removes the maps or partition devices of O(src) and detaches the loop device
        this module attached. A partition that is still mounted or open is an error that names
        what holds it, and nothing is changed.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - How partitions become block devices.
      - C(partscan) gives kernel partition devices C(/dev/loopNpM). The module sets the loop
        device's partscan flag and then adds, fixes or removes partitions with BLKPG so they
        match the table it read, so it works on kernels without partition-table parsers too.
      - C(dm) gives device-mapper maps C(/dev/mapper/loopNpM) with the names, UUIDs and tables
        C(kpartx -a) makes, including the two-sector map of an extended partition.
      - C(auto) keeps device-mapper maps that exist already, and otherwise uses C(partscan) for
        loop devices and C(dm) for other block devices. The result says which was used.
    type: str
    choices: [auto, partscan, dm]
    default: auto
  read_only:
    description: Attach and map read-only. Cannot be combined with O(layout).
    type: bool
    default: false
  sector_size:
    description:
      - Logical sector size of the image. GPT images are probed (512 to 4096); give C(4096)
        for a C(dos) table written with 4 KiB sectors, or to lay out a new 4 KiB table.
    type: int
    choices: [512, 1024, 2048, 4096]
  layout:
    description:
      - The partition table the image must have. It is written when the image has no table.
      - When the image has a table, each partition's start, size and type must match, and
        C(name), C(uuid) and C(bootable) where given.
    type: dict
    suboptions:
      label:
        description: The table type.
        type: str
        choices: [dos, gpt]
        default: gpt
      disk_id:
        description: Disk identifier, C(0x1234abcd) for dos or a GUID for gpt. Random when omitted.
        type: str
      alignment:
        description: Alignment of partition starts, in bytes or with a unit.
        type: raw
        default: 1MiB
      partitions:
        description:
          - The partitions, in order. Each has C(size) (bytes, a unit such as C(512MiB), a
            percentage of the disk such as C(25%), or C(rest); the last one may omit it),
            C(type) (a hex id such as C(0x83), a GUID, or an alias - C(linux), C(swap), C(esp),
            C(extended), C(lvm), C(raid), C(bios-boot), C(xbootldr), and the Discoverable
            Partitions types C(root), C(usr), C(home), C(srv), C(var), C(tmp)), and for gpt
            optionally C(name) and C(uuid); C(bootable) sets the dos boot flag.
        type: list
        elements: dict
        required: true
  force:
    description: With O(layout), replace a different table. Its partitions must not be in use.
    type: bool
    default: false
notes:
  - Needs root. The C(dm) backend needs the C(dm_mod) kernel module.
  - In containers whose C(/dev) is a snapshot, device nodes for new loop devices, partitions
    and maps are created from the numbers in sysfs; udev is not required.
seealso:
  - module: diskimage.loop.loop_device
  - name: kpartx(8)
    description: The multipath-tools tool the C(dm) backend is compatible with.
    link: https://man7.org/linux/man-pages/man8/kpartx.8.html
"""

EXAMPLES = r"""
- name: Create the layout of the classic eight-partition image and expose every partition
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    layout:
      label: dos
      partitions:
        - {size: 64MiB}
        - {size: 64MiB}
        - {size: 64MiB}
        - {size: 64MiB}
        - {size: 64MiB}
        - {size: 64MiB}
        - {size: rest}
  register: parts

- name: Format every partition that can hold a filesystem
  community.general.filesystem:
    dev: "{{ item.device }}"
    fstype: ext4
  loop: "{{ parts.partitions | rejectattr('kind', 'eq', 'extended') }}"
  loop_control:
    label: "{{ item.device }}"

- name: A GPT image with an ESP and a root partition, mapped like kpartx -a
  diskimage.loop.image_partitions:
    src: /srv/images/uefi.img
    backend: dm
    layout:
      label: gpt
      partitions:
        - {size: 256MiB, type: esp, name: ESP}
        - {type: root, name: root}

- name: Inspect an existing image read-only
  diskimage.loop.image_partitions:
    src: /srv/images/vendor.img
    read_only: true
  register: vendor

- name: Take the partitions away again and detach the loop device
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    state: absent
"""

RETURN = r"""
device:
  description: The loop or block device holding the partitions (null in check mode before a first attach).
  returned: when state is present
  type: str
  sample: /dev/loop0
backend:
  description: The backend used, C(partscan) or C(dm).
  returned: when state is present
  type: str
  sample: partscan
loop_attached:
  description: Whether this run attached O(src) to a new loop device.
  returned: when state is present
  type: bool
table:
  description: The partition table.
  returned: when state is present
  type: dict
  contains:
    label: {description: C(dos) or C(gpt)., type: str, returned: always, sample: dos}
    disk_id: {description: Disk identifier., type: str, returned: always, sample: "0x1b2c3d4e"}
    sector_size: {description: Logical sector size of the table., type: int, returned: always, sample: 512}
    size: {description: Size of the disk in bytes., type: int, returned: always}
partitions:
  description: Every partition, by number, with its block device.
  returned: when state is present
  type: list
  elements: dict
  contains:
    number: {description: Partition number; logical partitions of a dos table start at 5., type: int, returned: always}
    kind: {description: "C(primary), C(extended) or C(logical) (dos), or C(gpt).", type: str, returned: always}
    start: {description: First byte., type: int, returned: always}
    size: {description: Size in bytes., type: int, returned: always}
    end: {description: The byte after the last one (start + size)., type: int, returned: always}
    type: {description: "Type: C(0x83)-style for dos, a GUID for gpt.", type: str, returned: always}
    type_alias: {description: "Friendly name of the type, if it has one.", type: str, returned: always, sample: linux}
    name: {description: GPT partition name., type: str, returned: always}
    uuid: {description: PARTUUID as blkid shows it., type: str, returned: always, sample: 1b2c3d4e-01}
    bootable: {description: Boot flag (dos) or legacy-BIOS-bootable attribute (gpt)., type: bool, returned: always}
    device: {description: The block device of the partition., type: str, returned: always, sample: /dev/loop0p1}
    filesystem:
      description: The filesystem found in the partition (type, uuid, label), or null.
      type: dict
      returned: always
detached:
  description: Loop devices detached by I(state=absent).
  returned: when state is absent
  type: list
  elements: str
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils import partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True, aliases=["image", "device"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            backend=dict(type="str", choices=["auto", "partscan", "dm"], default="auto"),
            read_only=dict(type="bool", default=False),
            sector_size=dict(type="int", choices=[512, 1024, 2048, 4096]),
            layout=dict(type="dict", options=dict(
                label=dict(type="str", choices=["dos", "gpt"], default="gpt"),
                disk_id=dict(type="str"),
                alignment=dict(type="raw", default="1MiB"),
                partitions=dict(type="list", elements="dict", required=True),
            )),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    layout = None
    if params["layout"]:
        layout = dict((key, value) for key, value in params["layout"].items() if value is not None)
    try:
        if params["state"] == "present":
            plan = partitions_state.plan_present(
                params["src"], backend=params["backend"], read_only=params["read_only"], layout=layout,
                force=params["force"], sector_size=params["sector_size"])
        else:
            plan = partitions_state.plan_absent(params["src"])
        if not module.check_mode:
            plan.apply()
        result = dict(changed=plan.changed, actions=plan.descriptions())
        if params["state"] == "present":
            result.update(plan.result(module.check_mode))
        else:
            result["detached"] = plan.detached
        result["diff"] = dict(before=plan.before[0] if len(plan.before) == 1 else {"devices": plan.before},
                              after=plan.after[0] if len(plan.after) == 1 else {"devices": plan.after})
    except DiskImageError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()

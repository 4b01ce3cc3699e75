#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: loop_device
short_description: Attach image files to loop devices, change and detach them
version_added: 0.1.0
description:
  - Declares that an image file is (or is not) attached to a loop device, with everything
    C(losetup) can set up - offset, size limit, read-only, partition scanning, direct I/O,
    logical sector size and autoclear - through the kernel's loop ioctls. No C(losetup) binary
    is needed on the target.
  - I(state=present) is satisfied by any existing attachment of the same file (matched by
    device and inode, not by name) with the same O(offset), O(sizelimit) and O(read_only),
    including one made by hand with C(losetup), so no second device appears.
    Other properties that differ are changed in place where the kernel allows it.
  - I(state=absent) detaches the named O(device), or every device attached to O(file).
    A busy device (mounted, held by a mapping, or with a partition in use) is refused with
    an error naming what holds it, unless O(force) asks for the kernel's lazy detach.
  - A O(device) that is not a loop block device is refused before anything is touched.
  - In containers whose C(/dev) is a snapshot, missing device nodes are created from the
    numbers in sysfs; udev is not required.
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description:
      - Reports what would change without attaching, changing or detaching anything.
      - For a new attachment without O(device), the predicted device is the first free one,
        read from sysfs without creating a device; another process may take it first, and the
        real run reports the device it got.
  diff_mode:
    support: full
    description: Shows the device status before and after.
options:
  file:
    description:
      - The image file (or block device) to attach.
      - Required for I(state=present). For I(state=absent), detaches every device attached to it.
    type: path
    aliases: [src, image]
  device:
    description:
      - The loop device to use, such as C(/dev/loop3). That device and only that one is used;
        it is created through C(/dev/loop-control) when the kernel does not have it yet.
      - Without it, I(state=present) reuses a matching attachment or takes the first free device.
      - The same image can be attached several times by naming different devices.
    type: str
  state:
    description: Whether the file is attached.
    type: str
    choices: [present, absent]
    default: present
  offset:
    description:
      - Where the device starts inside the file, in bytes or with a unit (C(1MiB)).
      - Must be a multiple of 512 bytes, or of O(sector_size) when that is larger.
      - With I(state=absent) and O(file), only devices at this offset are detached.
    type: raw
  sizelimit:
    description:
      - The most bytes of the file the device exposes, from O(offset) on; C(0) means up to
        the end of the file. Bytes or a unit (C(8MiB)); a multiple of the sector size.
    type: raw
  read_only:
    description: Attach read-only. The kernel cannot change this on an attached device.
    type: bool
    default: false
  partscan:
    description:
      - Let the kernel create partition devices (C(/dev/loopNpM)).
      - The kernel can turn this on for an attached device but not off.
      - When omitted, an existing attachment keeps what it has; a new one gets it off.
    type: bool
  direct_io:
    description:
      - Use direct I/O to the backing file, bypassing the page cache twice over.
      - When omitted, an existing attachment keeps what it has; a new one gets it off.
    type: bool
  sector_size:
    description:
      - Logical sector size of the device. C(4096) for images with 4 KiB sectors.
      - When omitted, an existing attachment keeps what it has; a new one gets 512.
    type: int
    choices: [512, 1024, 2048, 4096]
  autoclear:
    description:
      - Let the kernel detach the device when its last user closes it (what C(mount -o loop)
        does).
      - A new attachment that nothing else holds is released as soon as this module closes it;
        a warning says so, RV(released) is true and RV(status) shows the attachment as it was made.
      - On an existing attachment, C(true) is refused unless something holds the device open
        (a mount, a mapping or a process), because setting it would detach the device at once.
        Set it once the device is in use, or use I(state=absent) to detach it.
      - When omitted, an existing attachment keeps what it has.
    type: bool
  resize:
    description:
      - Make an attached device follow its backing file's current size (C(losetup -c)).
        Reports a change only when the size differs.
    type: bool
    default: false
  force:
    description:
      - With I(state=absent), detach a busy device lazily - the kernel detaches it when the
        last user closes it - instead of failing.
    type: bool
    default: false
notes:
  - Needs root (C(CAP_SYS_ADMIN)) and the C(loop) kernel module.
  - Concurrent runs on one host are safe; allocation is locked and retried the way
    C(losetup) and systemd do.
seealso:
  - module: diskimage.loop.loop_device_info
  - name: losetup(8)
    description: The util-linux tool this module replaces.
    link: https://man7.org/linux/man-pages/man8/losetup.8.html
"""

EXAMPLES = r"""
- name: Attach an image to the first free loop device (losetup -f --show IMAGE)
  diskimage.loop.loop_device:
    file: /srv/images/disk.img
  register: loop

- name: Attach a partition inside an image, read-only (losetup -r -o 1MiB --sizelimit 64MiB)
  diskimage.loop.loop_device:
    file: /srv/images/disk.img
    offset: 1MiB
    sizelimit: 64MiB
    read_only: true

- name: Attach to a named device with partition scanning and 4 KiB sectors
  diskimage.loop.loop_device:
    file: /srv/images/disk-4k.img
    device: /dev/loop7
    partscan: true
    sector_size: 4096

- name: Refresh the size after the image grew (losetup -c)
  diskimage.loop.loop_device:
    file: /srv/images/disk.img
    resize: true

- name: Detach every device attached to an image (losetup -j IMAGE, then -d each)
  diskimage.loop.loop_device:
    file: /srv/images/disk.img
    state: absent

- name: Detach one device, lazily if it is still in use
  diskimage.loop.loop_device:
    device: /dev/loop7
    state: absent
    force: true
"""

RETURN = r"""
device:
  description:
    - The loop device the result is about (for I(state=present)).
    - In check mode, for a new attachment without O(device), the device the attach would most
      likely take (best effort).
  returned: when state is present
  type: str
  sample: /dev/loop0
released:
  description:
    - Whether autoclear let go of the device as soon as this task closed it, because nothing
      else held it open; the device is then no longer attached, and RV(status) describes the
      attachment as it was made. A warning says so too.
    - In check mode, true for a new attachment with O(autoclear).
  returned: when state is present
  type: bool
  sample: false
created:
  description: Whether a new attachment was made (rather than an existing one reused).
  returned: when state is present
  type: bool
  sample: true
status:
  description: Status of the device after the task (predicted in check mode).
  returned: when state is present
  type: dict
  contains:
    device: {description: Device path., type: str, returned: always, sample: /dev/loop0}
    name: {description: Kernel name., type: str, returned: always, sample: loop0}
    number: {description: Device number N of loopN., type: int, returned: always, sample: 0}
    major: {description: Block major number., type: int, returned: always, sample: 7}
    minor: {description: Block minor number., type: int, returned: always, sample: 0}
    backing_file: {description: Full path of the backing file., type: str, returned: always, sample: /srv/images/disk.img}
    backing_file_deleted: {description: Whether the backing file was deleted while attached., type: bool, returned: always}
    backing_inode: {description: Inode of the backing file., type: int, returned: always}
    backing_device: {description: "MAJ:MIN of the filesystem holding the backing file.", type: str, returned: always, sample: "254:1"}
    offset: {description: Offset into the file in bytes., type: int, returned: always, sample: 0}
    sizelimit: {description: Size limit in bytes (0 is none)., type: int, returned: always, sample: 0}
    size: {description: Size of the device in bytes., type: int, returned: always, sample: 67108864}
    sector_size: {description: Logical sector size., type: int, returned: always, sample: 512}
    read_only: {description: Read-only attachment., type: bool, returned: always}
    autoclear: {description: Detach on last close., type: bool, returned: always}
    partscan: {description: Kernel partition scanning., type: bool, returned: always}
    direct_io: {description: Direct I/O to the backing file., type: bool, returned: always}
devices:
  description: Status of every device the task acted on or found (for I(state=absent), before detaching).
  returned: always
  type: list
  elements: dict
detached:
  description: Devices detached by this task.
  returned: when state is absent
  type: list
  elements: str
  sample: [/dev/loop0]
pending:
  description: Devices that O(force) released lazily; the kernel detaches them on last close.
  returned: when state is absent
  type: list
  elements: str
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["attach /srv/images/disk.img"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state
from ansible_collections.diskimage.loop.plugins.module_utils.plan import run
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size


def main():
    module = AnsibleModule(
        argument_spec=dict(
            file=dict(type="path", aliases=["src", "image"]),
            device=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            offset=dict(type="raw"),
            sizelimit=dict(type="raw"),
            read_only=dict(type="bool", default=False),
            partscan=dict(type="bool"),
            direct_io=dict(type="bool"),
            sector_size=dict(type="int", choices=[512, 1024, 2048, 4096]),
            autoclear=dict(type="bool"),
            resize=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["file"])],
        required_one_of=[("file", "device")],
        supports_check_mode=True,
    )
    params = module.params

    def make_plan():
        offset = parse_size(params["offset"], "offset") if params["offset"] is not None else None
        sizelimit = parse_size(params["sizelimit"], "sizelimit") if params["sizelimit"] is not None else 0
        if params["state"] == "present":
            return loop_state.plan_present(
                params["file"], device=params["device"], offset=offset or 0, sizelimit=sizelimit,
                read_only=params["read_only"], partscan=params["partscan"], direct_io=params["direct_io"],
                sector_size=params["sector_size"], autoclear=params["autoclear"], resize=params["resize"])
        return loop_state.plan_absent(params["file"], device=params["device"], offset=offset, force=params["force"])

    run(module, make_plan)


if __name__ == "__main__":
    main()

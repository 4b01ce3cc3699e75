#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_tree
short_description: Mount every filesystem of a disk image as one tree, and take the whole tree down again
version_added: 0.2.0
description:
  - Mounts the filesystems of a disk image under one root directory in a single task, the way
    C(systemd-dissect --mount) does, and takes everything under that root down again in a single task.
  - The filesystems come from a declared list (O(mounts)) or, when it is left out, from the
    Discoverable Partitions rules of a GPT image - the root partition at C(/), then C(/usr),
    C(/home), C(/srv), C(/var), C(/var/tmp), XBOOTLDR at C(/boot), the ESP at C(/boot) when XBOOTLDR
    did not take it and the image's C(/boot) is an empty directory, else at C(/efi). Partitions
    marked no-auto (GPT attribute 63) are skipped, those marked read-only (attribute 60) are mounted
    read-only. An image without a partition table is mounted whole at C(/).
  - O(state=mounted) mounts shortest mount point first, so each filesystem lands inside its parent,
    and creates a missing mount point (mode 0755) inside the parent filesystem. Paths are resolved
    in the image as a chroot into it sees them, so a symbolic link in the image never leads a mount
    out of the tree. Each filesystem is mounted the way M(diskimage.loop.image_mount) mounts it, by
    the same code - the same exactness (a mount counts only when it shows the same bytes of the same
    image), reuse of a loop device or partition device that already shows a partition, options
    changed with a remount, and a read-only source mounted C(ro). A run that finds the tree mounted
    as asked changes nothing.
  - A mount that fails in the middle takes back everything the run did, newest first (mounts, loop
    devices, mount points and the root it made), and reports the kernel's reason.
  - O(state=unmounted) takes down everything mounted at or below the root, newest first and children
    before parents - mounts added inside the tree by other tasks (binds of C(/proc), C(/sys), C(/dev),
    a tmpfs, anything) as well as the image's own - then detaches the loop devices that served the
    image's mounts and that this collection attached, then removes the default root directory.
    A mount that stays busy is reported in RV(left) with the processes that hold it, and the task
    fails naming them, after it has taken down everything else. A loop device that cannot be
    detached yet because a mount that stays still needs it is set to detach itself (autoclear) when
    that mount goes.
  - An image that is not raw (qcow2, VMDK, VHDX; see O(image_format)) is served by C(qemu-nbd) on a
    free C(/dev/nbdN), and its tree is mounted from that device's partitions; O(state=unmounted)
    disconnects it again once nothing of it is mounted.
  - No C(losetup), C(mount), C(umount), C(systemd-dissect) or C(blkid) binary is needed on the target
    (C(qemu-nbd) only for an image that is not raw).
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Plans and reports every mount, unmount and detach without changing anything.
      Where a mount point lies inside a filesystem that is not mounted yet, whether it must be
      created is known only when it is, and where the ESP goes (C(/boot) or C(/efi)) too.
  diff_mode:
    support: full
    description: Shows the mounts under the root before and after, one line each.
options:
  src:
    description:
      - The disk image (or filesystem image, or block device) whose tree to mount.
      - Required with O(state=mounted). With O(state=unmounted) it names the default root and tells
        the image's own mounts from the others; it may be left out when O(root) is given.
    type: path
    aliases: [image]
  state:
    description:
      - C(mounted) mounts the tree under O(root).
      - C(unmounted) takes down everything mounted at or below O(root) and the loop devices that
        served the image's mounts, and removes the default root.
    type: str
    choices: [mounted, unmounted]
    default: mounted
  root:
    description:
      - The directory the tree is mounted under. It is created (mode 0755) when it is missing.
      - Default a directory named after the image's identity (the device and inode of the backing
        file, not its name) under C(/run/diskimage-loop/trees), the same for every task that names the
        same image; O(state=unmounted) removes it again. A root that was given is left in place.
      - C(/), C(/usr), other mount points the running system needs and anything in C(/dev), C(/proc)
        or C(/sys) are refused.
    type: path
  mounts:
    description:
      - The filesystems to mount, in any order; they are mounted shortest O(mounts[].path) first.
      - Left out or empty, the Discoverable Partitions rules decide (see the description).
    type: list
    elements: dict
    suboptions:
      path:
        description: The mount point inside the image, such as C(/), C(/boot/efi) or C(/var).
        type: str
        required: true
      partition:
        description: The partition with this number.
        type: int
      partlabel:
        description: The GPT partition with this name.
        type: str
      partuuid:
        description: The partition with this PARTUUID.
        type: str
      label:
        description: The partition whose filesystem has this label.
        type: str
      uuid:
        description: The partition whose filesystem has this UUID.
        type: str
      parttype:
        description: The one partition of this type (a Discoverable Partitions alias such as C(root),
          C(esp), C(var), an MBR id such as C(0x83), or a type GUID).
        type: str
      fstype:
        description: The filesystem type; read from the superblock when omitted.
        type: str
      opts:
        description: Mount options, comma-separated, as in fstab (C(loop), C(offset) and C(sizelimit) are
          set by the module and may not be given).
        type: str
      read_only:
        description: Mount this filesystem read-only (attached read-only too).
        type: bool
        default: false
  auto_exclude:
    description:
      - Discoverable Partitions kinds to leave out of the automatic tree (C(usr), C(home), C(srv),
        C(var), C(tmp), C(xbootldr), C(esp)); never C(root). Ignored with O(mounts).
    type: list
    elements: str
    default: []
  esp_path:
    description:
      - Where the Discoverable Partitions rules mount the ESP, instead of C(/boot) or C(/efi).
        Ignored with O(mounts).
    type: str
  read_only:
    description:
      - Mount the whole tree read-only; every loop device is attached read-only and the image file
        is left unchanged. Mount points must exist in the image then.
    type: bool
    default: false
  image_format:
    description:
      - The container format of the image file O(src). C(auto) reads it from the header (qcow2, VMDK,
        VHDX); anything else is raw, and raw images use loop devices.
      - An image that is not raw is connected once per run to a free C(/dev/nbdN) by C(qemu-nbd)
        (package C(qemu-utils)), read-only with O(read_only), and the tree is mounted from that
        device's partitions; a device that serves the image already (connected by
        M(diskimage.loop.image_partitions) or M(diskimage.loop.image_mount), say) is reused, and a
        rerun finds the tree on it and changes nothing. A run that fails disconnects what it
        connected.
      - The connection is recorded as M(diskimage.loop.image_mount)'s, as the tree's loop devices are.
        O(state=unmounted) disconnects it once nothing of it is mounted any more, also when only
        O(root) is given; a device connected by hand or by M(diskimage.loop.image_partitions) is
        left connected. In check mode the image is connected read-only for the time of the run, to
        read it.
    type: str
    choices: [auto, raw, qcow2, vmdk, vhdx]
    default: auto
  lazy:
    description:
      - With O(state=unmounted), detach a busy mount lazily (MNT_DETACH) instead of leaving it and
        failing. The loop device under it is detached by the kernel when its last user lets go, and
        reported in RV(pending).
    type: bool
    default: false
notes:
  - Needs root. Which filesystems can be mounted depends on the kernel's drivers (an ESP needs vfat).
  - Loop devices are attached per partition, with the partition's offset and size limit, as
    M(diskimage.loop.image_mount) attaches them, and detach themselves when their filesystem is
    unmounted (autoclear), so a tree unmounted by hand leaves no device behind either.
  - Concurrent runs converge. A run plans and acts while it holds locks on the root, the image
    (shared, by the identity of its backing file) and the bytes of each filesystem it mounts - the
    locks of M(diskimage.loop.image_mount), taken in the same order.
seealso:
  - module: diskimage.loop.image_mount
  - module: diskimage.loop.image_partitions
  - name: systemd-dissect(1)
    description: The C(--mount) mode, whose Discoverable Partitions placement this module follows.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-dissect.html
  - name: Discoverable Partitions Specification
    description: The partition types and where they are mounted.
    link: https://uapi-group.org/specifications/specs/discoverable_partitions_specification/
"""

EXAMPLES = r"""
- name: Mount a GPT image by the Discoverable Partitions rules under a root of the module's choosing
  diskimage.loop.image_tree:
    src: /srv/images/disk.img
  register: tree

- name: Write a file into the mounted image
  ansible.builtin.copy:
    content: "seed\n"
    dest: "{{ tree.root }}/etc/hostname"
    mode: "0644"

- name: Take the whole tree down again (binds other tasks added inside it too)
  diskimage.loop.image_tree:
    src: /srv/images/disk.img
    state: unmounted

- name: Mount a declared tree at a root of your own
  diskimage.loop.image_tree:
    src: /srv/images/vendor.img
    root: /mnt/vendor
    mounts:
      - {path: /, partlabel: rootfs}
      - {path: /boot, partition: 1, opts: "nodev,nosuid"}
      - {path: /var, label: var, fstype: ext4}

- name: Inspect an image read-only, without its /home
  diskimage.loop.image_tree:
    src: /srv/images/disk.img
    root: /mnt/inspect
    read_only: true
    auto_exclude: [home]

- name: Mount the tree of a qcow2 cloud image (qemu-nbd serves it on a free /dev/nbdN)
  diskimage.loop.image_tree:
    src: /srv/images/debian-12-genericcloud-amd64.qcow2
    root: /mnt/cloud
    mounts:
      - {path: /, partition: 1}
      - {path: /boot/efi, partition: 15}

- name: Take it down; the NBD device goes with the last mount
  diskimage.loop.image_tree:
    src: /srv/images/debian-12-genericcloud-amd64.qcow2
    root: /mnt/cloud
    state: unmounted

- name: Unmount it, lazily where a process still holds a path
  diskimage.loop.image_tree:
    root: /mnt/inspect
    state: unmounted
    lazy: true
"""

RETURN = r"""
src:
  description: The image, as an absolute path (null when O(state=unmounted) was given O(root) alone).
  returned: always
  type: str
  sample: /srv/images/disk.img
image_format:
  description: The format O(src) was served as; C(raw) for raw images, devices, and without O(src).
  returned: always
  type: str
  sample: qcow2
nbd_device:
  description: The C(/dev/nbdN) that serves an image that is not raw; null otherwise.
  returned: always
  type: str
  sample: /dev/nbd0
root:
  description: The root directory of the tree.
  returned: always
  type: str
  sample: /run/diskimage-loop/trees/disk.img-2049-1835010
root_created:
  description: Whether the task created the root directory (or would in check mode).
  returned: always
  type: bool
mounts:
  description:
    - The image's filesystems in the tree, in mount order, as they are after the task (with
      O(state=unmounted), as they were before it). In check mode a device is null where a new loop
      device would be attached.
  returned: always
  type: list
  elements: dict
  contains:
    path: {description: The mount point inside the image., type: str, returned: always, sample: /var}
    target: {description: The mount point on the host., type: str, returned: always,
             sample: /run/diskimage-loop/trees/disk.img-2049-1835010/var}
    device: {description: The block device mounted there., type: str, returned: always, sample: /dev/loop4}
    loop_device: {description: The loop device under it., type: str, returned: always, sample: /dev/loop4}
    fstype: {description: The filesystem type., type: str, returned: always, sample: ext4}
    opts: {description: The options asked for (C(ro) added for read-only ones)., type: str, returned: always}
    read_only: {description: Whether it is mounted read-only., type: bool, returned: always}
    kind: {description: "The Discoverable Partitions kind (C(root), C(usr), C(esp)...), empty for a declared mount.",
           type: str, returned: always}
    selector: {description: "The selector that chose it, such as C({partition: 2}); empty for a whole image.",
               type: dict, returned: always}
    partition: {description: "The partition: number, start, size, type, type_alias, name, uuid, filesystem; null for a
                whole image.", type: dict, returned: always}
    changed: {description: Whether the task mounted or remounted it., type: bool, returned: always}
loop_devices:
  description: The loop devices under the tree's mounts after the task (O(state=mounted)).
  returned: always
  type: list
  elements: str
  sample: [/dev/loop4, /dev/loop5]
unmounted:
  description: What O(state=unmounted) took down (or would in check mode), newest first.
  returned: always
  type: list
  elements: dict
  contains:
    target: {description: The mount point on the host., type: str, returned: always}
    source: {description: "What was mounted there (a device, or a name such as proc or tmpfs).", type: str,
             returned: always}
    fstype: {description: Its filesystem type., type: str, returned: always}
    foreign: {description: "True for a mount that is not one of the image's filesystems (a bind of /proc,
              a tmpfs...).", type: bool, returned: always}
detached:
  description: Loop devices detached, and NBD devices disconnected (or to be, in check mode).
  returned: always
  type: list
  elements: str
pending:
  description: Loop devices left to detach themselves when their last user lets go (after a lazy unmount,
    or under a mount that stays busy).
  returned: always
  type: list
  elements: str
root_removed:
  description: Whether O(state=unmounted) removed the default root directory.
  returned: always
  type: bool
left:
  description:
    - What O(state=unmounted) could not take down; the task fails when this is not empty.
  returned: always
  type: list
  elements: dict
  contains:
    target: {description: The mount point that stays mounted., type: str, returned: always}
    reason: {description: "Why, in words.", type: str, returned: always}
    holders:
      description: The processes that hold it.
      type: list
      elements: dict
      returned: always
      contains:
        pid: {description: Process id., type: int, returned: always}
        comm: {description: Command name., type: str, returned: always}
        uses: {description: "How it holds the path (C(cwd), C(root), C(fd 3), C(mmap)).", type: list,
               elements: str, returned: always}
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks, source as mount_source
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils._tree import root as tree_root, state as tree_state
from ansible_collections.diskimage.loop.plugins.module_utils.plan import run

MOUNT_SPEC = dict(
    path=dict(type="str", required=True),
    fstype=dict(type="str"),
    opts=dict(type="str"),
    read_only=dict(type="bool", default=False),
    **mount_source.SELECTOR_SPEC
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", aliases=["image"]),
            state=dict(type="str", choices=list(tree_state.STATES), default="mounted"),
            root=dict(type="path"),
            mounts=dict(type="list", elements="dict", options=MOUNT_SPEC),
            auto_exclude=dict(type="list", elements="str", default=[]),
            esp_path=dict(type="str"),
            read_only=dict(type="bool", default=False),
            lazy=dict(type="bool", default=False),
            image_format=dict(type="str", choices=list(formats.FORMATS), default="auto"),
        ),
        required_if=[("state", "mounted", ["src"]), ("state", "unmounted", ["src", "root"], True)],
        supports_check_mode=True,
    )
    params = module.params
    run(module, tree_state.planner(
        params["state"], params["src"], root=params["root"], mounts=params["mounts"],
        auto_exclude=params["auto_exclude"], esp_path=params["esp_path"], read_only=params["read_only"],
        lazy=params["lazy"], image_format=params["image_format"], check_mode=module.check_mode),
        locks.for_tree(params["src"], lambda: tree_root.root_path(params["src"], params["root"])[0], module.check_mode))


if __name__ == "__main__":
    main()

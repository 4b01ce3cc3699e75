#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_mount
short_description: Mount filesystem images, partitions inside disk images, ISOs and block devices
version_added: 0.1.0
description:
  - Mounts the filesystem of an image file, of one partition inside a partitioned disk image,
    of an ISO, or of a block device, and takes it all down again. It owns the whole chain that
    C(losetup), C(kpartx) and C(mount -o loop,offset=N,sizelimit=M) build by hand, and its exact
    reverse.
  - O(state=mounted) is satisfied only when O(path) holds exactly this source (the same backing
    file and byte range, not just a similar name) with compatible options. An existing loop
    device, kernel partition device or device-mapper map that shows the source is reused, also one
    made by hand or by C(mount -o loop). A different filesystem at O(path) is an error that names
    it. Changed options are applied with a remount where the kernel allows it.
  - A partition is found by reading the MBR or GPT of the image; a new loop device is attached
    with the partition's offset and size limit. ISOs, read-only filesystems (squashfs, erofs) and
    O(read_only=true) are attached read-only and mounted C(ro), so the image file cannot change.
  - A mount that fails leaves nothing behind (no loop device, no directory this task made) and
    reports the kernel's own reason, read through the new mount API (fsopen, fsconfig) where the
    kernel has it.
  - No C(losetup), C(mount), C(umount) or C(blkid) binary is needed on the target.
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Plans and reports every change without attaching, mounting or writing anything.
  diff_mode:
    support: full
    description: Shows the mount at O(path) and the fstab line before and after.
options:
  src:
    description:
      - The filesystem image, partitioned disk image, ISO or block device to mount.
      - An image that holds a partition table needs a selector (O(partition), O(partlabel),
        O(partuuid), O(label), O(uuid) or O(parttype)) unless the whole image is a filesystem.
      - Required with O(state=mounted) and O(state=present), and by every selector.
      - With O(state=unmounted) or O(state=absent) it may be left out, like C(umount PATH) - then
        whatever is mounted at O(path) is taken down (see O(state)). When it is given, the mount at
        O(path) must be of this source, or the task fails naming what is mounted there.
    type: path
    aliases: [image]
  path:
    description:
      - The mount point. It is created (mode 0755) when it is missing.
      - A path that is a file is refused. A path that goes through a symlink is refused unless
        O(follow_symlinks=true), so a mount never lands somewhere other than where the task says.
      - C(/), C(/usr) and anything in C(/dev), C(/proc) or C(/sys) are refused in every state, even
        when O(src) names the device mounted there; the running system needs them.
    type: path
    required: true
    aliases: [name, mount_point]
  state:
    description:
      - C(mounted) mounts the source at O(path) now, reusing what already shows it; with O(fstab)
        it also writes the fstab entry.
      - C(unmounted) unmounts it, then detaches the loop device this module attached for it once
        nothing else uses it. A busy mount is an error naming the processes that hold it, unless
        O(lazy=true). A different filesystem at O(path) is an error, and nothing is unmounted.
      - C(unmounted) without O(src) unmounts whatever is mounted at O(path) (every mount stacked
        there), also a real disk or a tmpfs. The loop device under it is detached only when this
        module attached it and nothing else uses it; a loop device with autoclear (C(mount -o loop))
        goes away by itself, and any other loop device, partition device or device-mapper map is
        left as it is. An NBD device under it (a partition of C(/dev/nbdN)) is disconnected when
        this module or M(diskimage.loop.image_tree) connected it and nothing else of it stays
        mounted; one connected by hand or by M(diskimage.loop.image_partitions) stays. The mount
        points the system needs (C(/), C(/usr), C(/var), C(/home), C(/tmp), C(/run), C(/boot) and
        others, anything below C(/proc), C(/sys) and C(/dev)) and kernel filesystems such as proc,
        sysfs or cgroup2 are refused.
      - C(present) writes an fstab entry that mount(8) can act on by itself (C(loop,offset=N,sizelimit=M)
        for a partition inside an image) and creates the mount point. Nothing is mounted.
      - C(absent) unmounts and tears down as C(unmounted) does, removes the fstab entry for O(path)
        and removes the mount point when it is an empty directory. An fstab entry for O(path) that
        mounts something other than O(src) is an error; without O(src) the entry for O(path) is
        removed whatever it mounts.
    type: str
    choices: [mounted, unmounted, present, absent]
    default: mounted
  partition:
    description: Select the partition with this number (logical partitions of a dos table start at 5).
    type: int
  partlabel:
    description: Select the GPT partition with this name.
    type: str
  partuuid:
    description: Select the partition with this PARTUUID (a GUID on gpt, C(<disk id>-<nn>) on dos).
    type: str
  label:
    description: Select the partition whose filesystem has this label (or check that the whole image has it).
    type: str
  uuid:
    description: Select the partition whose filesystem has this UUID (or check that the whole image has it).
    type: str
  parttype:
    description:
      - Select the partition of this type, a Discoverable Partitions alias (C(root), C(usr), C(esp),
        C(home), C(srv), C(var), C(tmp), C(xbootldr), C(linux), C(swap)...), an MBR id such as C(0x83)
        or a type GUID. C(root) and C(usr) mean the types of the target's architecture.
      - Exactly one partition must have it.
    type: str
  fstype:
    description:
      - The filesystem type. Read from the superblock when omitted (ext2/3/4, xfs, btrfs, vfat,
        iso9660, udf, squashfs, erofs).
      - With O(state=unmounted) or O(state=absent) and no O(src), a check - the mount at O(path)
        must be of this type, or the task fails and nothing is unmounted.
    type: str
  opts:
    description:
      - Mount options, comma-separated, as in fstab (C(noatime,nodev), C(errors=remount-ro)...).
        Defaults of mount(8) apply, so dropping an option from the task undoes it with a remount.
      - C(loop), C(offset) and C(sizelimit) are set by the module and may not be given.
    type: str
  read_only:
    description:
      - Attach the image read-only and mount it C(ro). The image file is left unchanged.
      - Implied for ISOs, squashfs and erofs, and by C(ro) in O(opts).
    type: bool
    default: false
  image_format:
    description:
      - The container format of the image file O(src). C(auto) reads it from the header
        (qcow2, VMDK, VHDX); anything else is raw, and raw images use loop devices.
      - An image that is not raw is served by C(qemu-nbd) (package C(qemu-utils)) on a free
        C(/dev/nbdN), read-only with O(read_only), and its partitions are selected and mounted
        from that device; a device that serves the image already (connected by
        M(diskimage.loop.image_partitions), say) is reused. O(state=unmounted) and
        O(state=absent) disconnect the NBD device this module connected once nothing of it is
        mounted. In check mode the image is connected read-only for the time of the run, to
        read it.
      - Such an image cannot have an fstab entry (O(fstab), O(state=present)), since mount(8)
        cannot connect it.
    type: str
    choices: [auto, raw, qcow2, vmdk, vhdx]
    default: auto
  fstab:
    description:
      - The fstab file to edit. With I(state=present) or I(state=absent) it defaults to C(/etc/fstab);
        with I(state=mounted) an entry is written only when this is given. I(state=unmounted) never
        edits it.
    type: path
  lazy:
    description:
      - Unmount a busy mount lazily (MNT_DETACH) instead of failing. The loop device under it is
        detached by the kernel when the last user lets go, and reported in RV(pending).
    type: bool
    default: false
  follow_symlinks:
    description: Accept a O(path) through a symlink and mount on the resolved directory (reported in RV(path)).
    type: bool
    default: false
notes:
  - Needs root. ISO, vfat and udf mounts need the kernel's isofs, vfat and udf drivers.
  - The module never creates device-mapper maps or kernel partition devices; it reuses them when
    they exist (for example made by M(diskimage.loop.image_partitions) or C(kpartx -a)) and leaves
    them as they are.
  - Concurrent runs converge. A run plans and acts while it holds locks on the mount path, the
    fstab file it edits, and the image (by the identity of its backing file, not its name) and
    the bytes it mounts, so that of two runs of the same task started at once the second waits,
    finds the first one's mount and reports C(changed=false), and a mounted and an unmounted
    run on one path leave one consistent state. Different paths, images, and partitions of one
    image at different paths proceed side by side. The locks are C(flock) locks on small files
    under C(/run/diskimage-loop/locks), removed again when the last run lets go; the kernel
    releases them when a run dies, however it dies. They coordinate runs that share C(/run)
    (one host, or one container).
  - In check mode the module creates no lock file; it waits up to 10 seconds for a run that is
    changing the same path or image, and then reports with a warning. A real run waits up to
    10 minutes and then fails, naming the process that holds the lock.
seealso:
  - module: diskimage.loop.image_partitions
  - module: diskimage.loop.loop_device
  - module: ansible.posix.mount
  - name: mount(8)
    description: The fstab options C(loop), C(offset) and C(sizelimit) this module writes.
    link: https://man7.org/linux/man-pages/man8/mount.8.html
"""

EXAMPLES = r"""
- name: Mount the root partition of a GPT disk image (Discoverable Partitions type)
  diskimage.loop.image_mount:
    src: /srv/images/disk.img
    parttype: root
    path: /mnt/image-root

- name: Mount the root partition of a qcow2 cloud image (served by qemu-nbd on a free /dev/nbdN)
  diskimage.loop.image_mount:
    src: /srv/images/debian-12-genericcloud-amd64.qcow2
    partition: 1
    path: /mnt/cloud-root

- name: Mount an ISO; it is attached read-only and the file stays unchanged
  diskimage.loop.image_mount:
    src: /srv/iso/debian.iso
    path: /mnt/iso

- name: The second partition, read-only, with options
  diskimage.loop.image_mount:
    src: /srv/images/vendor.img
    partition: 2
    path: /mnt/vendor
    opts: noatime,nodev,nosuid
    read_only: true

- name: Mount the ESP of an image at every boot (fstab entry with loop,offset,sizelimit)
  diskimage.loop.image_mount:
    src: /srv/images/uefi.img
    parttype: esp
    path: /mnt/esp
    state: present

- name: Unmount it and detach the loop device, lazily if something still uses it
  diskimage.loop.image_mount:
    src: /srv/images/disk.img
    parttype: root
    path: /mnt/image-root
    state: unmounted
    lazy: true

- name: Unmount whatever is mounted at /mnt/scratch (umount /mnt/scratch); a loop device this module attached goes too
  diskimage.loop.image_mount:
    path: /mnt/scratch
    state: unmounted

- name: The same, only if what is mounted there is a squashfs
  diskimage.loop.image_mount:
    path: /mnt/scratch
    fstype: squashfs
    state: unmounted

- name: Take everything down, including the fstab entry and the empty mount point
  diskimage.loop.image_mount:
    src: /srv/images/uefi.img
    parttype: esp
    path: /mnt/esp
    state: absent

- name: Take down the mount, the fstab entry and the empty mount point of /mnt/old by path alone
  diskimage.loop.image_mount:
    path: /mnt/old
    state: absent
"""

RETURN = r"""
src:
  description:
    - The source, as an absolute path.
    - Without O(src) (O(state=unmounted) or O(state=absent)), what was mounted at O(path) - the image
      file behind its loop device, else the source the mount table shows (a device, or a name such as
      C(tmpfs)); null when nothing was mounted there.
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
path:
  description: The mount point (symlinks resolved when O(follow_symlinks) allowed it).
  returned: always
  type: str
  sample: /mnt/image-root
path_resolved_from:
  description: The O(path) given, when it went through a symlink; else null.
  returned: always
  type: str
partition:
  description: The selected partition, or null when the whole source is the filesystem (and without O(src)).
  returned: always
  type: dict
  contains:
    number: {description: Partition number., type: int, returned: always, sample: 2}
    kind: {description: "C(primary), C(logical) (dos) or C(gpt).", type: str, returned: always}
    start: {description: First byte in the image., type: int, returned: always, sample: 1048576}
    size: {description: Size in bytes., type: int, returned: always, sample: 67108864}
    end: {description: The byte after the last one., type: int, returned: always}
    type: {description: "Type: C(0x83)-style or a GUID.", type: str, returned: always}
    type_alias: {description: Friendly name of the type., type: str, returned: always, sample: root-x86-64}
    name: {description: GPT partition name., type: str, returned: always}
    uuid: {description: PARTUUID., type: str, returned: always}
    filesystem: {description: "The filesystem found in it (type, uuid, label).", type: dict, returned: always}
device:
  description: The block device that is mounted (null in check mode when a new loop device would be attached).
  returned: always
  type: str
  sample: /dev/loop3
loop_device:
  description: The loop device under the mount, if any.
  returned: always
  type: str
  sample: /dev/loop3
mapped_device:
  description: The kernel partition device or device-mapper map that is mounted, when one was reused.
  returned: always
  type: str
  sample: /dev/mapper/loop0p2
fstype:
  description: The filesystem type, as given or as read from the superblock.
  returned: always
  type: str
  sample: ext4
opts:
  description: The options asked for, with C(ro) added for read-only sources.
  returned: always
  type: str
  sample: ro,noatime
read_only:
  description: Whether the source is attached and mounted read-only.
  returned: always
  type: bool
mount:
  description: The mount at O(path) after the task, as /proc/self/mountinfo shows it (I(state=mounted); null in check mode).
  returned: always
  type: dict
  contains:
    source: {description: The mounted device., type: str, returned: always}
    mount_point: {description: Where., type: str, returned: always}
    fstype: {description: The filesystem type., type: str, returned: always}
    mount_options: {description: Per-mount options., type: str, returned: always}
    super_options: {description: Filesystem options., type: str, returned: always}
fstab:
  description: The fstab file the task looked at, or null.
  returned: always
  type: str
fstab_entry:
  description: The fstab line for O(path) after the task (null when there is none or fstab is not managed).
  returned: always
  type: str
  sample: /srv/images/uefi.img /mnt/esp vfat loop,offset=1048576,sizelimit=268435456 0 0
created:
  description: What the task created (or would create in check mode).
  returned: always
  type: dict
  contains:
    path: {description: The mount point directory., type: bool, returned: always}
    loop_device: {description: A new loop device., type: bool, returned: always}
    mount: {description: A new mount., type: bool, returned: always}
    fstab_entry: {description: A new fstab line., type: bool, returned: always}
remounted:
  description: The option differences a remount changed.
  returned: always
  type: list
  elements: str
  sample: ["nosuid (not set)"]
unmounted:
  description: The mounts taken off O(path).
  returned: always
  type: list
  elements: str
detached:
  description: Loop devices detached, and NBD devices disconnected (or to be, in check mode).
  returned: always
  type: list
  elements: str
pending:
  description: Loop devices a lazy unmount left to the kernel to detach when their last user lets go.
  returned: always
  type: list
  elements: str
removed_path:
  description: Whether I(state=absent) removed the empty mount point.
  returned: always
  type: bool
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks, source as mount_source, state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats, source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils.plan import run


class ImageMountModule(AnsibleModule):
    """AnsibleModule without the file facts it adds to any result that has a
    ``path`` (uid, gid, owner, group, mode, state, size): here they would
    describe the mount point directory, appear only while it exists, and so
    give check mode and a real run different keys (and a ``state`` that is
    not the module's)."""

    def add_path_info(self, kwargs):
        return kwargs


def main():
    module = ImageMountModule(
        argument_spec=dict(
            src=dict(type="path", aliases=["image"]),
            path=dict(type="path", required=True, aliases=["name", "mount_point"]),
            state=dict(type="str", choices=list(mount_state.STATES), default="mounted"),
            fstype=dict(type="str"),
            opts=dict(type="str"),
            read_only=dict(type="bool", default=False),
            fstab=dict(type="path"),
            lazy=dict(type="bool", default=False),
            follow_symlinks=dict(type="bool", default=False),
            image_format=dict(type="str", choices=list(formats.FORMATS), default="auto"),
            **mount_source.SELECTOR_SPEC
        ),
        mutually_exclusive=[list(mount_source.SELECTORS)],
        # Taking a mount down may name the mount point alone, like umount PATH.
        required_if=[("state", state, ["src"]) for state in mount_state.STATES
                     if state not in mount_state.PATH_ONLY_STATES],
        required_by=dict((selector, "src") for selector in mount_source.SELECTORS),
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    nbd = nbd_source.RunConnections(OWNER, module.check_mode)

    def plan_for(src, selector):
        return mount_state.plan(
            state, src, params["path"], selector=selector, fstype=params["fstype"], opts=params["opts"],
            read_only=params["read_only"], fstab=params["fstab"], lazy=params["lazy"],
            follow_symlinks=params["follow_symlinks"])

    def make_plan():
        selector = mount_source.selector_of(params)
        if params["src"] is None:
            return nbd_source.annotate(plan_for(None, selector), nbd_source.BlockSource(None, "raw"))
        if state in ("mounted", "present"):
            return nbd.plan(params["src"], lambda src: plan_for(src, selector), image_format=params["image_format"],
                            read_only=params["read_only"], fstab=state == "present" or bool(params["fstab"]))
        # An image no NBD device serves has nothing mounted: its file's own bytes, whole, are compared.
        return nbd.release(params["src"], lambda src, unserved: plan_for(src, None if unserved else selector),
                           lambda plan, other: nbd_source.merge_lists(plan, other, ("steps",)),
                           image_format=params["image_format"])

    run(module, make_plan,
        locks.for_mount(state, params["src"], params["path"], params["fstab"], module.check_mode))


if __name__ == "__main__":
    main()

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
    ones. An image whose table differs from O(layout), or that has no table but holds a
    filesystem from its first byte, is an error unless O(force) is set. No table is written
    while the image or any loop device attached to it (at any offset) is in use.
  - An image file is attached to a loop device for you, reusing an existing attachment of
    the whole image (also one made by hand). With I(state=absent) the module detaches only
    loop devices it attached itself, and with an image file as O(src) it takes down only
    the partitions of those; see O(all_attachments).
  - With O(size), creates the image file first when it is missing - sparse, of that size, with
    O(mode) - and refuses an existing file (or device) of another size.
  - With C(fstype) in a O(layout.partitions) entry, makes that filesystem (with its label, UUID,
    mkfs options or program) on the partition when the partition does not hold it yet. A partition
    that holds another filesystem (or the same type with another label or UUID) is never formatted
    unless O(force_mkfs) is set. mkfs writes through a private loop device that covers only the
    partition and is released before the task returns, so it works with any O(backend), with
    O(expose=false), and for a block device as O(src).
  - Returns, for each partition, the filesystem it holds and where the Discoverable Partitions rules
    (C(systemd-dissect --mount)) mount it.
  - An image that is not raw (qcow2, VMDK, VHDX; see O(image_format)) is served by C(qemu-nbd)
    on a free C(/dev/nbdN) instead of a loop device, and its partitions are exposed on that
    device. I(state=absent) disconnects the NBD devices this module connected.
  - No C(losetup), C(kpartx), C(partx), C(sfdisk) or C(dmsetup) binary is needed on the target; the
    mkfs programs of the declared filesystems are (C(mke2fs), C(mkfs.xfs), C(mkfs.vfat), C(mkswap)...).
author:
  - diskimage.loop contributors (@diskimage)
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Plans and reports the changes without writing, attaching or mapping anything.
  diff_mode:
    support: full
    description:
      - Shows the exposed partition devices, and the filesystem of each partition, before and after.
      - When the image grows, also the sizes of the image, of its partitions and of the filesystems that grow.
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
      - C(absent) removes the maps or partition devices and detaches the loop device this
        module attached. A partition that is still mounted or open is an error that names
        what holds it, and nothing is changed.
      - With a block device as O(src) (C(/dev/loop3)), C(absent) acts on that device, the one
        you named - its maps and partition devices are removed whoever made them - and detaches
        it only if this module attached it.
      - With an image file as O(src), C(absent) acts only on the loop devices of the image that
        this module attached. Other attachments of the image (one made by hand with
        C(losetup), say, or by another module) are left alone and listed in RV(skipped_devices)
        with the reason, unless O(all_attachments) is set.
    type: str
    choices: [present, absent]
    default: present
  all_attachments:
    description:
      - With I(state=absent) and an image file as O(src), also remove the device-mapper maps
        and partition devices of every other loop device the image is attached to, not only of
        those this module attached. Those loop devices stay attached - the module never detaches
        a device it did not attach. Their partitions must not be in use either.
      - Has no effect with I(state=present) or when O(src) is a block device.
    type: bool
    default: false
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
  image_format:
    description:
      - The container format of the image file O(src).
      - C(auto) reads it from the header (qcow2 C(QFI\xfb), VMDK C(KDMV) or a VMDK descriptor,
        VHDX C(vhdxfile)); anything else is raw.
      - C(raw) images use loop devices. The others are served by C(qemu-nbd) (package
        C(qemu-utils)) on a free C(/dev/nbdN), chosen under a lock, verified after it is
        connected, and reused by later tasks on the same image; the C(nbd) kernel module is
        loaded when the kernel has no nbd devices. In check mode such an image is connected
        read-only for the time of the run, to read its table.
      - A declared format the header contradicts is an error; C(raw) is taken as declared.
    type: str
    choices: [auto, raw, qcow2, vmdk, vhdx]
    default: auto
  sector_size:
    description:
      - Logical sector size of the image. GPT images are probed (512 to 4096); give C(4096)
        for a C(dos) table written with 4 KiB sectors, or to lay out a new 4 KiB table.
    type: int
    choices: [512, 1024, 2048, 4096]
  layout:
    description:
      - The partition table the image must have. It is written when the image has no table
        (over a filesystem that starts at the first byte only with O(force)).
      - When the image has a table, each partition's start, size and type must match, and
        C(name), C(uuid), C(bootable) and C(attributes) where given.
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
            optionally C(name) and C(uuid); C(bootable) sets the dos boot flag (on gpt, the
            legacy-BIOS-bootable attribute). A primary or gpt partition may have C(start).
          - On C(dos), an entry with C(type=extended) makes the extended partition where it
            stands (one of the first four), and every entry after it is a logical partition.
            Without one, more than four entries make the fourth an extended partition.
          - For gpt, C(attributes) sets the partition attribute bits - a number (C(0x1000000000000000))
            or a list of bit numbers and names - C(required) (bit 0), C(no_block_io_protocol)
            (1), C(legacy_bios_bootable) (2), and bits 48-63 that belong to the partition type,
            by number, as C(GUID:60), or as C(growfs) (59), C(read_only) (60), C(hidden) (62)
            and C(no_auto) (63). Bits 3-47 are reserved and refused. C(sfdisk) shows them as
            its C(attrs) field.
          - When C(attributes) is given, an existing table must have exactly those bits (with
            bit 2 added by C(bootable=true)).
          - "The filesystem of a partition, made only where the partition does not hold it yet:
            C(fstype) (C(ext2), C(ext3), C(ext4), C(xfs), C(btrfs), C(vfat) - also written C(fat),
            C(fat32) or C(msdos) -, C(exfat), C(f2fs), C(swap), or any type with a C(mkfs.<type>));
            C(fs_label), the filesystem label (C(label) is accepted too, as the
            C(diskimage.loop.image_build) role's entries write it); C(fs_uuid), the filesystem UUID
            (for vfat, 8 hex digits or C(ABCD-1234), or a UUID whose first 8 hex digits are used);
            C(mkfs_options), a list of extra arguments for mkfs, before the device; C(mkfs_program),
            the program, when not the usual one (C(mke2fs) for ext, C(mkswap) for swap,
            C(mkfs.<type>) otherwise). C(name) and C(uuid) stay the GPT partition name and PARTUUID."
          - A partition holds the declared filesystem when the probed type is C(fstype) and, where
            given, the label is C(fs_label) and the UUID C(fs_uuid). Otherwise it is formatted if it
            holds no signature at all, or with O(force_mkfs); else the task fails naming what the
            partition holds, and nothing is changed.
        type: list
        elements: dict
        required: true
  force:
    description:
      - With O(layout), replace a different table, or write one over a filesystem that fills an
        image without a table. Its partitions must not be in use.
      - Does not allow formatting over a filesystem; that is O(force_mkfs).
    type: bool
    default: false
  force_mkfs:
    description:
      - Make the declared filesystem of a O(layout.partitions) entry also on a partition that holds a
        different one (or the same type with another label or UUID). Its data is lost.
      - A partition that already holds the declared filesystem is never formatted again.
      - A partition that is mounted or in use is refused either way.
    type: bool
    default: false
  size:
    description:
      - The size of the image, in bytes or with a unit (C(8GiB), C(1.5GiB), C(2048s) - the grammar
        of O(layout.partitions) sizes).
      - When O(src) does not exist, it is created as a sparse file of this size (its directory must
        exist).
      - A size larger than an existing image file grows the image in place - see the notes on
        growing an image below. A smaller one is refused (shrinking loses data), and nothing is changed.
      - With a block device as O(src), it must be the device's size. Without O(size), O(src) must exist.
    type: raw
  mode:
    description:
      - File mode of the image file, as an octal string such as C("0600") (or a number).
      - Set when the module creates the file and enforced on an existing image file. When omitted,
        a file the module creates gets C(0600) and an existing file keeps its mode.
    type: raw
  relocate_gpt:
    description:
      - Move a GPT backup header that is not at the end of the disk (the image file was made larger
        by other means, C(truncate -s) say) to the end, and let the usable area reach it - what
        C(sfdisk --relocate gpt-bak-std) does. No partition changes.
      - This happens anyway when O(size) is given or O(layout) grows a partition; without either,
        and without this option, such a table is only reported in RV(table.warnings).
    type: bool
    default: false
  grow_filesystem:
    description:
      - When a partition grows, grow the filesystem in it to fill it - ext2, ext3 and ext4 offline
        (C(e2fsck -f -p), then C(resize2fs)), xfs and btrfs mounted in a private mount namespace of
        the module (C(xfs_growfs), C(btrfs filesystem resize max)), each through a loop device of its
        own. Other filesystems are left as they are.
      - With O(size) given, or a O(layout) whose last partition takes the rest of the disk (no size,
        C(rest) or a percentage), the filesystem of the last partition is made to fill it also when
        the partition did not grow in this run, so that a run interrupted between the two converges.
      - Needs the tools of the filesystem (C(e2fsprogs), C(xfsprogs), C(btrfs-progs)) on the target.
    type: bool
    default: true
  expose:
    description:
      - With C(false), write the table and make the filesystems without exposing the partitions -
        nothing is attached when the task returns (an attachment that already exists is kept and
        reported). Use it when another module, such as M(diskimage.loop.image_mount), mounts the
        image afterwards.
    type: bool
    default: true
notes:
  - Needs root. The C(dm) backend needs the C(dm_mod) kernel module.
  - Growing an image - O(size) larger than the file, or a O(layout) whose last partition is larger
    than the table has it (or takes the rest of a larger disk) - extends the file without writing
    data (sparse), refreshes the capacity of the loop devices attached to it (C(LOOP_SET_CAPACITY)),
    rewrites the table with the GPT backup header at the new end, grows the last partition (on dos
    also the extended partition around a last logical one), resizes the partition devices of those
    loop devices (BLKPG), loads the new table into the device-mapper map of the grown partition
    (as C(kpartx -u), so the map keeps its name and number) and grows the filesystem
    (O(grow_filesystem)). Only the partition that nothing follows can grow; a layout that shrinks a
    partition or moves one is refused with nothing changed (O(force) replaces the table instead,
    losing data). Nothing of the image may be mounted or in use (its own partition maps may exist,
    unused). A run killed part-way leaves a state the next run finishes.
  - A run killed while mkfs runs leaves no loop device behind (the kernel releases the private device
    when the process dies), but may leave a partial filesystem; a partition that then holds no
    signature, or one that is not the declared filesystem, is formatted again by a rerun (the second
    only with O(force_mkfs)).
  - In containers whose C(/dev) is a snapshot, device nodes for new loop devices, partitions
    and maps are created from the numbers in sysfs; udev is not required.
  - Runs on one image take turns - the same lock on the image (by the identity of its backing
    file, also when O(src) is a loop device of it) that M(diskimage.loop.loop_device) and
    M(diskimage.loop.image_mount) take - so two runs started at once attach the image once and
    expose one set of partition devices, and the second reports C(changed=false). The lock is a
    C(flock) on a file under C(/run/diskimage-loop/locks) that the kernel releases when a run
    dies; check mode creates no lock file and waits at most 10 seconds for it. See
    M(diskimage.loop.image_mount) for the details.
seealso:
  - module: diskimage.loop.loop_device
  - name: kpartx(8)
    description: The multipath-tools tool the C(dm) backend is compatible with.
    link: https://man7.org/linux/man-pages/man8/kpartx.8.html
"""

EXAMPLES = r"""
- name: Expose the partitions of a qcow2 image, read-only (qemu-nbd serves it on /dev/nbdN)
  diskimage.loop.image_partitions:
    src: /srv/images/debian-12-genericcloud-amd64.qcow2
    read_only: true
  register: cloud_parts

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

- name: Create a 2 GiB sparse image with an ESP and an ext4 root, formatted where they are not yet
  diskimage.loop.image_partitions:
    src: /srv/images/seed.img
    size: 2GiB
    mode: "0600"
    expose: false
    layout:
      label: gpt
      partitions:
        - {size: 256MiB, type: esp, fstype: vfat, fs_label: ESP}
        - {type: root, fstype: ext4, fs_label: root, mkfs_options: [-m, "0"]}
  register: seed

- name: The root partition's filesystem UUID, and where systemd-dissect would mount each partition
  ansible.builtin.debug:
    msg: "{{ seed.partitions | map(attribute='dps_mount_point') | list }} {{ seed.partitions[1].filesystem.uuid }}"

- name: Reformat a partition that holds something else (its data is lost)
  diskimage.loop.image_partitions:
    src: /srv/images/seed.img
    force_mkfs: true
    layout:
      label: gpt
      partitions:
        - {size: 256MiB, type: esp, fstype: vfat, fs_label: ESP}
        - {type: root, fstype: xfs, fs_uuid: 6b0f2c44-2d0e-4a36-9d7c-3f5e9a1c2b7d}

- name: Inspect an existing image read-only
  diskimage.loop.image_partitions:
    src: /srv/images/vendor.img
    read_only: true
  register: vendor

- name: GPT attribute bits - a BIOS-bootable ESP, and a read-only root that is not mounted automatically
  diskimage.loop.image_partitions:
    src: /srv/images/appliance.img
    layout:
      label: gpt
      partitions:
        - {size: 256MiB, type: esp, attributes: [required, legacy_bios_bootable]}
        - {type: root, attributes: [read_only, no_auto]}

- name: Grow an image to 8 GiB, its last partition and the filesystem in it (a rerun changes nothing)
  diskimage.loop.image_partitions:
    src: /srv/images/uefi.img
    size: 8GiB
    layout:
      label: gpt
      partitions:
        - {size: 256MiB, type: esp, name: ESP}
        - {type: root, name: root}
  register: grown

- name: Move the backup GPT header of an image that was made larger with truncate
  diskimage.loop.image_partitions:
    src: /srv/images/vendor.img
    relocate_gpt: true

- name: Take the partitions away again and detach the loop device
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    state: absent
  register: down

- name: Also remove the partition devices of attachments made by hand (they stay attached)
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    state: absent
    all_attachments: true
  when: down.skipped_devices | length > 0
"""

RETURN = r"""
src:
  description: The absolute path of O(src).
  returned: always
  type: str
  sample: /srv/images/disk.img
image_format:
  description: The format O(src) was served as, C(raw) for images, block devices and loop devices.
  returned: always
  type: str
  sample: qcow2
nbd_device:
  description:
    - The C(/dev/nbdN) that serves an image that is not raw (for I(state=absent), the first
      one that did), null for raw images.
  returned: always
  type: str
  sample: /dev/nbd0
device:
  description:
    - The loop or block device holding the partitions.
    - Null in check mode when the image is not attached yet (the run would attach it), and with
      O(expose=false) when the image has no attachment of its own.
  returned: when state is present
  type: str
  sample: /dev/loop0
backend:
  description: The backend used, C(partscan) or C(dm).
  returned: when state is present
  type: str
  sample: partscan
loop_attached:
  description: Whether this run attached O(src) to a new loop device (or would, in check mode).
  returned: when state is present
  type: bool
  sample: true
table:
  description: The partition table (the one O(layout) writes, in check mode).
  returned: when state is present
  type: dict
  contains:
    label:
      description: C(dos) or C(gpt).
      type: str
      returned: always
      sample: dos
    disk_id:
      description: Disk identifier, C(0x1234abcd)-style for dos, the lowercase disk GUID for gpt.
      type: str
      returned: always
      sample: "0x1b2c3d4e"
    sector_size:
      description: Logical sector size of the table, in bytes.
      type: int
      returned: always
      sample: 512
    size:
      description: Size of the disk in bytes.
      type: int
      returned: always
      sample: 335544320
    first_usable_lba:
      description: First sector partitions may use (gpt); null on dos.
      type: int
      returned: always
      sample: 34
    last_usable_lba:
      description: Last sector partitions may use, inclusive (gpt); null on dos.
      type: int
      returned: always
      sample: 655326
    entry_count:
      description: Number of entries of the GPT partition array; null on dos.
      type: int
      returned: always
      sample: 128
    hybrid_mbr:
      description: Whether a gpt disk has a hybrid MBR (entries beside the protective one).
      type: bool
      returned: always
      sample: false
    warnings:
      description: Problems of the table that were worked around (a damaged primary GPT header, say).
      type: list
      elements: str
      returned: always
      sample: []
    partitions:
      description:
        - The partitions as the table holds them, by number - the same as RV(partitions) without
          RV(partitions[].device), RV(partitions[].filesystem) and RV(partitions[].attribute_bits).
      type: list
      elements: dict
      returned: always
partitions:
  description:
    - Every partition of the table, by number, with its block device and filesystem.
    - On dos this includes the extended partition (RV(partitions[].kind) C(extended)), which the
      kernel and C(kpartx) expose as a two-sector stub only.
  returned: when state is present
  type: list
  elements: dict
  contains:
    number:
      description: Partition number; logical partitions of a dos table start at 5.
      type: int
      returned: always
      sample: 1
    kind:
      description: C(primary), C(extended) or C(logical) (dos), or C(gpt).
      type: str
      returned: always
      sample: primary
    start:
      description: First byte of the partition, from the start of the disk.
      type: int
      returned: always
      sample: 1048576
    size:
      description: Size in bytes.
      type: int
      returned: always
      sample: 33554432
    end:
      description: The byte after the last one (start + size).
      type: int
      returned: always
      sample: 34603008
    start_sector:
      description: First sector, in the table's sector size.
      type: int
      returned: always
      sample: 2048
    size_sectors:
      description: Size in sectors of the table's sector size.
      type: int
      returned: always
      sample: 65536
    type:
      description: The partition type, C(0x83)-style for dos, a lowercase GUID for gpt.
      type: str
      returned: always
      sample: "0x83"
    type_alias:
      description: Friendly name of the type (as O(layout) accepts it), or null when it has none.
      type: str
      returned: always
      sample: linux
    name:
      description: GPT partition name (PARTLABEL); empty on dos.
      type: str
      returned: always
      sample: ""
    uuid:
      description: PARTUUID as blkid shows it, the partition GUID on gpt and C(<disk id>-<number>) on dos.
      type: str
      returned: always
      sample: 1b2c3d4e-01
    bootable:
      description: Boot flag (dos) or legacy-BIOS-bootable attribute, bit 2 (gpt).
      type: bool
      returned: always
      sample: false
    attributes:
      description: The 64-bit GPT attribute field as a number; 0 on dos.
      type: int
      returned: always
      sample: 1152921504606846976
    attribute_bits:
      description: The bits set in RV(partitions[].attributes), lowest first, as O(layout) accepts them.
      type: list
      elements: int
      returned: always
      sample: [60]
    device:
      description:
        - The block device of the partition, C(/dev/loop0p1) (partscan) or C(/dev/mapper/loop0p1) (dm).
        - In check mode, the name it would get; null when none exists and none would be made.
      type: str
      returned: always
      sample: /dev/loop0p1
    dps_mount_point:
      description:
        - Where the Discoverable Partitions rules (C(systemd-dissect --mount)) mount the partition - C(/)
          for a root partition of any architecture, C(/usr), C(/home), C(/srv), C(/var), C(/var/tmp),
          C(/boot) for XBOOTLDR, and for the ESP C(/boot), or C(/efi) when an XBOOTLDR partition takes
          C(/boot) (the choice C(systemd-dissect) makes for an image whose C(/boot) is empty).
        - Null for other types, verity partitions, a partition with the C(no_auto) attribute (bit 63),
          and partitions that share their type with another one (the rules mount neither).
      type: str
      returned: always
      sample: /
    filesystem:
      description:
        - What was found in the partition, read from the superblock, or null.
        - After filesystems were made, what they are. In check mode, a filesystem the run would make
          is shown as declared (type, label, and the UUID when one is declared, else null).
      type: dict
      returned: always
      contains:
        type:
          description: The filesystem type, as blkid names it.
          type: str
          returned: when a filesystem is found
          sample: ext4
        usage:
          description: C(filesystem), C(crypto) or C(other).
          type: str
          returned: when a filesystem is found
          sample: filesystem
        uuid:
          description: Filesystem UUID, or null.
          type: str
          returned: when a filesystem is found
        label:
          description: Filesystem label, or null.
          type: str
          returned: when a filesystem is found
        version:
          description: Filesystem version, where the superblock has one, or null.
          type: str
          returned: when a filesystem is found
        uuid_sub:
          description: Device UUID of a btrfs member, or null.
          type: str
          returned: when a filesystem is found
        csum_ok:
          description: Whether the superblock checksum is good, where it has one (else null).
          type: bool
          returned: when a filesystem is found
growth:
  description:
    - What growing the image changed (or would change, in check mode); null when nothing grew.
  returned: when state is present
  type: dict
  contains:
    size_before:
      description: Size of the image before, in bytes.
      type: int
      returned: always
      sample: 335544320
    size_after:
      description: Size of the image after, in bytes.
      type: int
      returned: always
      sample: 1073741824
    backup_gpt_moved:
      description: Whether the GPT backup header was moved to the end of the disk.
      type: bool
      returned: always
      sample: true
    partitions:
      description: The partitions that grew, by number, with their sizes before and after in bytes.
      type: list
      elements: dict
      returned: always
      contains:
        number: &grown_number
          description: Partition number.
          type: int
          returned: always
          sample: 2
        size_before: &grown_size_before
          description: Size before, in bytes.
          type: int
          returned: always
          sample: 66060288
        size_after: &grown_size_after
          description: Size after, in bytes.
          type: int
          returned: always
          sample: 804257792
    filesystems:
      description: The filesystems that grew, by partition number, with their type and sizes in bytes.
      type: list
      elements: dict
      returned: always
      contains:
        # the same fields as a grown partition's (YAML aliases), and its type
        number: *grown_number
        type:
          description: Filesystem type.
          type: str
          returned: always
          sample: ext4
        size_before: *grown_size_before
        size_after: *grown_size_after
entry_partitions:
  description:
    - The partition number of each O(layout.partitions) entry, in order; empty without O(layout). On C(dos),
      logical partitions are numbered from 5 and an extended partition may come between, so this says which
      partition an entry became.
  returned: when state is present
  type: list
  elements: int
  sample: [1, 2, 3, 5, 6]
image_created:
  description: Whether this run created the image file (or would, in check mode).
  returned: when state is present
  type: bool
  sample: true
mkfs:
  description:
    - The filesystems this run made (in check mode, would make), in partition order; empty when every
      partition already holds its declared filesystem.
  returned: when state is present
  type: list
  elements: dict
  contains:
    number:
      description: The partition number.
      type: int
      returned: always
      sample: 2
    fstype:
      description: The filesystem type made, as declared.
      type: str
      returned: always
      sample: ext4
    label:
      description: The filesystem label given to mkfs, or null.
      type: str
      returned: always
      sample: root
    uuid:
      description: The filesystem UUID given to mkfs, or null when mkfs chose one (see RV(partitions[].filesystem)).
      type: str
      returned: always
      sample: null
    replaced:
      description: What the partition held before (its probed type, label and UUID), or null when it held nothing.
      type: dict
      returned: always
      sample: null
    argv:
      description: The mkfs command; the device is the private loop device of the partition (C(@DEVICE@) in check mode).
      type: list
      elements: str
      returned: always
      sample: [mke2fs, -t, ext4, -F, -q, -L, root, -m, "0", /dev/loop7]
detached:
  description: Loop devices detached by I(state=absent) (in check mode, none).
  returned: when state is absent
  type: list
  elements: str
  sample: [/dev/loop0]
skipped_devices:
  description:
    - With an image file as O(src) and I(state=absent), the other loop devices the image is
      attached to, which were left alone because this module did not attach them. Empty with
      O(all_attachments=true), which removes their partitions (they stay attached).
  returned: when state is absent
  type: list
  elements: dict
  contains:
    device:
      description: The loop device.
      returned: always
      type: str
      sample: /dev/loop3
    attached_by:
      description: The module of this collection that attached it, or null (by hand or another tool).
      returned: always
      type: str
      sample: null
    partitions:
      description: Its partition devices and maps, which were left as they are.
      returned: always
      type: list
      elements: str
      sample: [/dev/loop3p1, /dev/loop3p2]
    reason:
      description: Why it was left alone, in words.
      returned: always
      type: str
      sample: >-
        attached by hand or by another tool, not by this module; its partition devices were left
        as they are (all_attachments: true removes them); it stays attached
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["attach /srv/images/disk.img to a loop device"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._mount import locks
from ansible_collections.diskimage.loop.plugins.module_utils._image import present
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats, source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.plan import run


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
            force_mkfs=dict(type="bool", default=False),
            size=dict(type="raw"),
            mode=dict(type="raw"),
            expose=dict(type="bool", default=True),
            relocate_gpt=dict(type="bool", default=False),
            grow_filesystem=dict(type="bool", default=True),
            all_attachments=dict(type="bool", default=False),
            image_format=dict(type="str", choices=list(formats.FORMATS), default="auto"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    layout = None
    if params["layout"]:
        layout = dict((key, value) for key, value in params["layout"].items() if value is not None)

    nbd = nbd_source.RunConnections(partitions_state.OWNER, module.check_mode)

    def make_plan():
        if params["state"] == "present":
            return nbd.plan(params["src"], lambda src: present.plan_image(
                src, backend=nbd_source.partitions_backend(src, params["backend"]), read_only=params["read_only"],
                layout=layout, force=params["force"], sector_size=params["sector_size"], size=params["size"],
                mode=params["mode"], force_mkfs=params["force_mkfs"], expose=params["expose"],
                run_command=module.run_command, relocate_gpt=params["relocate_gpt"],
                grow_filesystem=params["grow_filesystem"]),
                image_format=params["image_format"], read_only=params["read_only"])
        return nbd.release(params["src"], lambda src, _unserved: partitions_state.plan_absent(
            src, all_attachments=params["all_attachments"]),
            lambda plan, other: nbd_source.merge_lists(plan, other, ("steps", "before", "after", "skipped")),
            image_format=params["image_format"])

    run(module, make_plan, locks.for_image(params["src"], module.check_mode))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_files
short_description: Write files into an image, made from a golden image when missing, in one call
version_added: 0.1.0
description:
  - Makes sure that the files, directories and lines declared in O(files) are in the image O(src),
    in one module run - what would otherwise be a mount, a dozen file tasks and a teardown.
  - With O(copy_from), a missing O(src) is first made as a copy of that golden image - sparse, and
    sharing its extents where the filesystem can (reflink, on btrfs or xfs). The copy is written under
    O(src) plus C(.part) and renamed into place once complete, so a file under the name O(src) is
    always a finished copy, and a copy cut short is started again by the next run. An existing O(src)
    is never copied again unless O(force_copy); when the golden image has changed since the copy was
    made (its size, modification time and inode, recorded in an extended attribute of the copy),
    the module warns.
  - The image's filesystems are mounted in a mount namespace of the module's own process, never in
    the host's mount table, from one loop device attached with autoclear. When the module ends - or
    is killed - the kernel drops the mounts and the loop device with them, so nothing is left
    attached or mounted, whatever happens. Mounting and unmounting are not reported as changes.
  - Which filesystem goes where is declared in O(mounts), or follows the Discoverable Partitions
    rules (what C(systemd-dissect --mount) mounts); an image without a partition table is mounted
    whole.
  - Owners are names of the image's own C(/etc/passwd) and C(/etc/group), or numbers; paths may
    start with C(~user), the home directory of that user in the image's C(/etc/passwd). Paths are
    resolved as a chroot into the image would resolve them, so an absolute link in the image never
    leads a write to the build host.
  - An image that is attached to a loop device already (mounted by M(diskimage.loop.image_mount),
    for instance), or connected to an nbd device, is refused, since one filesystem must not be mounted
    through two devices at once.
  - With O(overlay), the image made from O(copy_from) is a qcow2 overlay backed by the golden image
    instead of a copy - made in milliseconds whatever the golden image's size; reads fall through to
    the golden image, and what is written stays in the overlay. See O(overlay).
  - An image that is not raw (an overlay, any qcow2 O(src), also VMDK and VHDX) is written through
    the kernel's network block device - see O(overlay) for how, and what a killed run leaves.
  - With O(size), the image is grown to that size after it is made - see O(size).
  - Used by the C(diskimage.loop.image_personalize) role, one call per host.
author:
  - diskimage.loop contributors (@diskimage)
attributes:
  check_mode:
    support: full
    description:
      - An existing image is mounted read-only and every file is compared; the result says what
        would change. A missing image is reported as to be copied, and its files as to be written.
  diff_mode:
    support: full
    description: For each file that changes, its content (or its mode and owners) before and after.
options:
  src:
    description: The image file to write to.
    type: path
    required: true
  copy_from:
    description:
      - A golden image to make O(src) from when O(src) does not exist (or with O(force_copy)).
      - Without it, O(src) must exist.
    type: path
  force_copy:
    description:
      - Copy O(copy_from) again over an existing O(src) (with O(overlay), make a new overlay in its
        place), losing what was written to it.
    type: bool
    default: false
  overlay:
    description:
      - Make a missing O(src) a qcow2 overlay backed by O(copy_from) (a raw or qcow2 golden image,
        recorded by its absolute path and its format), as C(qemu-img create -f qcow2 -b GOLDEN -F FORMAT)
        would, under the side name C(SRC.part) renamed into place. Needs O(copy_from) and C(qemu-img) and
        C(qemu-nbd) (package C(qemu-utils)) on the target, and a kernel with the C(nbd) module.
      - An existing overlay of O(copy_from) is kept (O(force_copy) makes a new one); another file at
        O(src) - a raw copy, or an overlay of another golden image - is refused, unless O(force_copy).
      - The golden image must not change while overlays use it. The task writes only to the overlay.
      - The files are written through C(/dev/nbdN) - a free device chosen and connected with
        C(qemu-nbd) under the collection's allocation lock and verified, as for M(diskimage.loop.image_mount)
        - with a loop device over it for the tree, in the module's own mount namespace, and the device
        is disconnected when the task ends. The connection's record under C(/run/diskimage-loop/nbd)
        names the module's process (its pid and start time) as its holder. If the module is killed, its
        mounts and the loop device go with its mount namespace, and the next run of a module of this
        collection that connects an nbd device (this one's rerun first) disconnects the device whose
        holder is gone, before it picks one.
      - In check mode, a missing overlay is reported as to be made; an existing one is connected read-only.
    type: bool
    default: false
  size:
    description:
      - The size, in bytes or with a unit (C(8GiB), C(2048s) - the grammar of M(diskimage.loop.image_partitions)),
        the image must have. After it is made (or found), a smaller image grows - a raw file is extended
        (sparse); a qcow2 image gets this virtual size (a new overlay is made with it, an existing
        qcow2 image is resized as with C(qemu-img resize)) - then the GPT backup header moves to the new
        end, the partition that ends last grows to fill the disk (ending on a 1 MiB boundary, a last logical
        partition with its extended partition) and its ext2/3/4, xfs or btrfs filesystem with it, as
        M(diskimage.loop.image_partitions) grows an image (see its O(diskimage.loop.image_partitions#module:size)).
      - A size smaller than the golden image, or than an existing image (unless O(force_copy)), is refused
        and nothing is changed. An image of this size already changes nothing.
      - Only images with a partition table grow; only raw and qcow2 images.
    type: raw
  mounts:
    description:
      - The filesystems to mount, each at its C(path) in the tree, one of which must be C(/). Empty
        means the Discoverable Partitions rules, or the whole image when it has no partition table.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where in the tree, such as C(/) or C(/home).
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
        description: The partition of this type (a Discoverable Partitions alias, an MBR id or a type GUID).
        type: str
      fstype:
        description: The filesystem type; read from the superblock when omitted.
        type: str
      opts:
        description: Mount options, comma-separated.
        type: str
      read_only:
        description: Mount this filesystem read-only.
        type: bool
        default: false
  auto_exclude:
    description:
      - Partition kinds the Discoverable Partitions rules leave out (C(usr), C(home), C(srv), C(var),
        C(tmp), C(xbootldr), C(esp)), such as the boot partitions, which host content does not go to.
    type: list
    elements: str
    default: []
  esp_path:
    description: Where the automatic rules mount the ESP; by default C(/boot) when that is an empty directory, else C(/efi).
    type: str
    default: ""
  files:
    description:
      - What must be in the image, in order; a later entry sees what an earlier one did.
      - Missing parent directories are created (mode C(0755), owned by root).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: An absolute path in the image, or C(~user/...) for a path in that user's home directory.
        type: str
        required: true
      state:
        description:
          - C(file) (the default when O(files[].content) is given) - a file with exactly this content.
          - C(directory) - a directory.
          - C(absent) - nothing at the path; a directory is removed with its content, unless a
            filesystem is mounted in it. A link is removed, not what it points to.
          - C(line) - a file that holds O(files[].line), as C(ansible.builtin.lineinfile) makes it -
            the last line matching O(files[].regexp) is replaced; without a match the line is added
            at the end unless it is there already.
        type: str
        choices: [file, directory, absent, line]
      content:
        description: The content of the file (state C(file)).
        type: str
      line:
        description: The line (state C(line)).
        type: str
      regexp:
        description: A Python regular expression for the line to replace (state C(line)).
        type: str
      mode:
        description:
          - The mode, as a string of octal digits such as C('0644'). When omitted, an existing path
            keeps its mode and a new one gets C(0644) (a directory C(0755)).
        type: raw
      owner:
        description: A user name of the image's C(/etc/passwd), or a number. When omitted, an existing path keeps its owner, a new one is root's.
        type: raw
      group:
        description:
          - A group name of the image's C(/etc/group), or a number.
          - When omitted with O(files[].owner) given, the owner's login group from the image's
            C(/etc/passwd), as C(chown user:) does; when both are omitted, an existing path keeps its
            group and a new one gets root's.
        type: raw
      create:
        description: Create the file when it is missing (states C(file) and C(line)); false leaves a missing file missing.
        type: bool
        default: true
notes:
  - Needs root (C(CAP_SYS_ADMIN)) and the loop driver, on the host that holds the image.
  - The files are written in one process, which makes the module fast enough for a fleet of images.
    Templates are rendered on the controller and given as O(files[].content), for example with the
    C(ansible.builtin.template) lookup.
seealso:
  - module: diskimage.loop.image_mount
  - module: diskimage.loop.image_partitions
"""

EXAMPLES = r"""
- name: Make the image of this host from the golden image and personalize it
  diskimage.loop.image_files:
    src: /srv/images/fleet/{{ inventory_hostname }}.img
    copy_from: /srv/images/golden.img
    auto_exclude: [esp, xbootldr]
    files:
      - {path: /etc/hostname, content: "{{ inventory_hostname }}\n"}
      - {path: /etc/hosts, state: line, regexp: '^127\.0\.1\.1\s', line: "127.0.1.1\t{{ inventory_hostname }}"}
      - {path: /etc/machine-id, content: "", mode: "0444", create: false}
      - {path: ~admin/.ssh, state: directory, owner: admin, mode: "0700"}
      - {path: ~admin/.ssh/authorized_keys, content: "{{ admin_key }}\n", owner: admin, mode: "0600"}
      - {path: /etc/motd, content: "{{ lookup('ansible.builtin.template', 'motd.j2') }}"}
  delegate_to: imagebuilder

- name: The image of this host as a 16 GiB qcow2 overlay on the golden image, its root grown to fill it
  diskimage.loop.image_files:
    src: /srv/images/fleet/{{ inventory_hostname }}.qcow2
    copy_from: /srv/images/golden.img
    overlay: true
    size: 16GiB
    files:
      - {path: /etc/hostname, content: "{{ inventory_hostname }}\n"}
  delegate_to: imagebuilder

- name: Remove a file from a dos image whose root is partition 1
  diskimage.loop.image_files:
    src: /srv/images/appliance.img
    mounts:
      - {path: /, partition: 1}
    files:
      - {path: /etc/ssh/ssh_host_ed25519_key, state: absent}
"""

RETURN = r"""
src:
  description: The image, as an absolute path.
  returned: always
  type: str
  sample: /srv/images/fleet/web1.img
copied:
  description: Whether the image was (or, in check mode, would be) made from O(copy_from).
  returned: always
  type: bool
  sample: true
copy_method:
  description:
    - How the image was made - C(reflink) (a copy sharing extents with the golden image), C(sparse)
      (a copy), or C(overlay) (a qcow2 overlay backed by the golden image).
  returned: when the image was copied, or its overlay made
  type: str
  sample: sparse
image_format:
  description: The format of the image - C(raw), C(qcow2), C(vmdk) or C(vhdx); null when it does not exist (check mode).
  returned: always
  type: str
  sample: qcow2
nbd_device:
  description: The nbd device that served the image while it was grown and written (disconnected since); null for a raw image.
  returned: always
  type: str
  sample: /dev/nbd0
growth:
  description: What O(size) grew (would grow in check mode), as M(diskimage.loop.image_partitions) reports it; null when nothing grew.
  returned: always
  type: dict
  contains:
    size_before:
      description: The image's size before, in bytes.
      type: int
    size_after:
      description: The image's size after, in bytes.
      type: int
    backup_gpt_moved:
      description: Whether the GPT backup header moved to the new end.
      type: bool
    partitions:
      description: The partitions that grew - C(number), C(size_before), C(size_after).
      type: list
      elements: dict
    filesystems:
      description: The filesystems that grew - C(number), C(type), C(size_before), C(size_after).
      type: list
      elements: dict
  sample: {size_before: 1073741824, size_after: 4294967296, backup_gpt_moved: true,
           partitions: [{number: 2, size_before: 805306368, size_after: 4026531840}],
           filesystems: [{number: 2, type: ext4, size_before: 805306368, size_after: 4026531840}]}
files:
  description: Each entry of O(files), as it was found and handled.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path in the image (C(~user) expanded).
      type: str
    state:
      description: The entry's state.
      type: str
    changed:
      description: Whether it changed (would change in check mode).
      type: bool
    actions:
      description: What was done to it (would be done in check mode), in words.
      type: list
      elements: str
  sample: [{path: /etc/hostname, state: file, changed: true, actions: [write /etc/hostname]}]
mounts:
  description: The filesystems mounted while the files were written (in the module's own mount namespace).
  returned: always
  type: list
  elements: dict
  sample: [{path: /, device: /dev/loop3p2, fstype: ext4}, {path: /home, device: /dev/loop3p3, fstype: ext4}]
loop_device:
  description:
    - The loop device the image (or the nbd device that served it) was attached to while the files were
      written; released since.
  returned: always
  type: str
  sample: /dev/loop3
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["copy /srv/images/golden.img to /srv/images/fleet/web1.img", "write /etc/hostname"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils._files import job
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import SELECTOR_SPEC
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def main():
    mount_options = dict(path=dict(type="str", required=True), fstype=dict(type="str"), opts=dict(type="str"),
                         read_only=dict(type="bool", default=False), **SELECTOR_SPEC)
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            copy_from=dict(type="path"),
            force_copy=dict(type="bool", default=False),
            overlay=dict(type="bool", default=False),
            size=dict(type="raw"),
            mounts=dict(type="list", elements="dict", default=[], options=mount_options),
            auto_exclude=dict(type="list", elements="str", default=[]),
            esp_path=dict(type="str", default=""),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                state=dict(type="str", choices=["file", "directory", "absent", "line"]),
                content=dict(type="str"),
                line=dict(type="str"),
                regexp=dict(type="str"),
                mode=dict(type="raw"),
                owner=dict(type="raw"),
                group=dict(type="raw"),
                create=dict(type="bool", default=True),
            )),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        request = job.Request(p["src"], p["files"], p["copy_from"], p["force_copy"],
                              [dict((k, v) for k, v in m.items() if v not in (None, False)) for m in p["mounts"]],
                              p["auto_exclude"], p["esp_path"], overlay=p["overlay"], size=p["size"])
        result, warnings = job.run(request, module.check_mode)
    except DiskImageError as exc:
        module.fail_json(**exc.to_result())
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_artifact
short_description: Compressed copies, a bmap file and a checksum file of a disk image
version_added: 0.1.0
description:
  - Writes the files an image is shipped as, next to the image - compressed copies (C(.zst),
    C(.xz)), a qcow2 copy for virtual machines and clouds, a block map for C(bmaptool copy) (C(.bmap), bmap format 2.0 with a checksum per
    range), and a checksum file in the format C(sha256sum -c) reads, listing the image and
    every artifact.
  - The holes of a sparse image are never read - they are found with C(SEEK_DATA)/C(SEEK_HOLE)
    and written as ready-made compressed streams of zeros, so a mostly empty multi-GiB image is
    compressed in the time its data takes.
  - The output depends only on the image's bytes (and the compressor's version and level), not on
    how the host's file system allocated the image - two identical images give identical
    artifacts.
  - Each file is written under a temporary name and renamed into place, so an interrupted run
    leaves nothing that looks finished. A file that exists and is not older than the image is up
    to date and left alone.
author:
  - diskimage.loop contributors (@diskimage)
attributes:
  check_mode:
    support: full
    description: Reports which files would be written, and writes none.
  diff_mode:
    support: full
    description: Each file's state before (absent, older than the image, up to date) and after.
options:
  src:
    description: The image file.
    type: path
    required: true
    aliases: [image]
  compress:
    description:
      - The compressed copies to write, C(<src>.zst) and/or C(<src>.xz). Each is a series of
        complete streams that C(zstd -d), C(xz -d) and C(bmaptool copy) read as one.
      - V(xz) uses Python's C(lzma) module. V(zstd) uses C(compression.zstd) on Python 3.14 and
        later, else the C(zstd) program (Debian package C(zstd)); without either the module fails
        and says so, before writing anything.
    type: list
    elements: str
    choices: [xz, zstd]
    default: []
  qcow2:
    description:
      - Write a qcow2 copy of the image (for virtual machines and clouds) at O(qcow2_path), with
        C(qemu-img convert) (Debian package C(qemu-utils)); without qemu-img the module fails and
        says so, before writing anything. Blocks of zeros and holes become unallocated clusters, so
        the copy is about as large as the image's data.
      - Every option that shapes the qcow2 file is given (qcow2 version 1.1, 64 KiB clusters, no
        lazy refcounts, no preallocation, writes in order), so the same image gives the same qcow2
        file with the same C(qemu-img) version, as reproducible builds need.
    type: bool
    default: false
  qcow2_path:
    description:
      - Where the qcow2 copy goes; C(<src>) with C(.img) or C(.raw) replaced by C(.qcow2) (or
        C(.qcow2) added) when not given.
    type: path
  compress_level:
    description:
      - Compression level, 1 to 22 for zstd (default 3), 0 to 9 for xz (default 6). The same level
        for every format given.
    type: int
  bmap:
    description:
      - Write C(<src>.bmap), the block map of the image's non-zero 4 KiB blocks, for
        C(bmaptool copy IMAGE.zst DEVICE), which then writes only those blocks and checks each range.
    type: bool
    default: false
  checksum:
    description:
      - Algorithm of the checksum file; empty for none.
    type: str
    choices: ["", sha1, sha224, sha256, sha384, sha512]
    default: sha256
  checksum_path:
    description:
      - Where the checksum file goes; C(<src>.SHA256SUMS) (after the algorithm) when not given.
        Names in it are relative to its directory, so C(sha256sum -c) checks them from there.
    type: path
  mode:
    description: File mode of the files written.
    type: str
    default: "0644"
  force:
    description: Write every file again even when it is up to date.
    type: bool
    default: false
notes:
  - The bmap and the compressed copies treat a 4 KiB block of zeros like a hole. C(bmaptool copy)
    to a device therefore leaves those blocks as they were on the device; discard the device
    first (C(blkdiscard)) or use C(--nobmap) when it must read as zeros.
seealso:
  - name: bmap-tools
    description: The bmap format and C(bmaptool copy).
    link: https://github.com/yoctoproject/bmaptool
"""

EXAMPLES = r"""
- name: Ship the image as .zst with a bmap and a SHA256SUMS file
  diskimage.loop.image_artifact:
    src: /srv/images/disk.img
    compress: [zstd]
    bmap: true

- name: Both compressions at a higher level, and a sha512 checksum file elsewhere
  diskimage.loop.image_artifact:
    src: /srv/images/disk.img
    compress: [zstd, xz]
    compress_level: 9
    checksum: sha512
    checksum_path: /srv/images/SHA512SUMS

- name: A qcow2 copy for a cloud (/srv/images/disk.qcow2), listed in the SHA256SUMS file with the image
  diskimage.loop.image_artifact:
    src: /srv/images/disk.img
    qcow2: true
"""

RETURN = r"""
image:
  description: The image, as read in this run (empty when nothing had to be written).
  returned: success
  type: dict
  contains:
    path: {description: The image file., type: str}
    size: {description: Its size in bytes., type: int}
    mapped_bytes: {description: Bytes in blocks that are not all zeros., type: int}
    checksum: {description: "Its checksum, with the algorithm of O(checksum); null when O(checksum) is empty.", type: str}
  sample: {path: /srv/images/disk.img, size: 268435456, mapped_bytes: 9437184, checksum: "3b0c44298fc1..."}
artifacts:
  description: Every file the declaration asks for, in the order they are written.
  returned: success
  type: list
  elements: dict
  contains:
    kind: {description: "V(zstd), V(xz), V(qcow2), V(bmap) or V(checksums).", type: str}
    path: {description: The file., type: str}
    size: {description: "Its size in bytes (none when nothing had to be written).", type: int}
    checksum: {description: "Its checksum as listed in the checksum file (none for that file itself).", type: str}
    written: {description: Whether this run wrote it., type: bool}
  sample: [{kind: zstd, path: /srv/images/disk.img.zst, size: 812345, checksum: "9f86d08...", written: true}]
checksum_path:
  description: The checksum file, or none.
  returned: success
  type: str
  sample: /srv/images/disk.img.SHA256SUMS
backends:
  description: The compressor behind each format, such as C(zstd-program) or C(python-lzma).
  returned: when something was compressed
  type: dict
  sample: {zstd: zstd-program}
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["write zstd /srv/images/disk.img.zst", "write /srv/images/disk.img.SHA256SUMS"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import run
from ansible_collections.diskimage.loop.plugins.module_utils._artifact import compress, outputs
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import convert


def file_mode(text):
    try:
        return int(text, 8)
    except ValueError:
        raise DiskImageError("mode %r is not an octal file mode such as 0644" % text)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True, aliases=["image"]),
            compress=dict(type="list", elements="str", choices=list(compress.FORMATS), default=[]),
            qcow2=dict(type="bool", default=False),
            qcow2_path=dict(type="path"),
            compress_level=dict(type="int"),
            bmap=dict(type="bool", default=False),
            checksum=dict(type="str", choices=["", "sha1", "sha224", "sha256", "sha384", "sha512"], default="sha256"),
            checksum_path=dict(type="path"),
            mode=dict(type="str", default="0644"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda: outputs.plan_artifacts(
        p["src"], list(dict.fromkeys(p["compress"])), p["compress_level"], p["bmap"], p["checksum"],
        p["checksum_path"], file_mode(p["mode"]), p["force"],
        conversions=[convert.Conversion(p["qcow2_path"])] if p["qcow2"] else []))


if __name__ == "__main__":
    main()

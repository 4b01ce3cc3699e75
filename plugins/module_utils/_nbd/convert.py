# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A raw image converted to qcow2, as an artifact to ship (image_artifact).

``qemu-img convert`` does it; every option that shapes the output is given
rather than left to qemu-img's defaults, so the same image gives the same
bytes twice with one qemu-img version: the qcow2 version (compat 1.1), the
cluster size, no lazy refcounts, no preallocation, zero detection in 4 KiB
units (a run of zeros becomes an unallocated cluster, as a hole does), and
writes in order (no ``-W``), so the clusters are laid out in the image's
order. The qcow2 header has no time stamps or random identifiers.

VMDK and VHDX are not offered: qemu-img gives each new one a random
identifier (a content id, GUIDs), so two builds would never be the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import overlay
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

QCOW2_OPTIONS = "compat=1.1,cluster_size=65536,lazy_refcounts=off,preallocation=off"
RAW_SUFFIXES = (".img", ".raw")


def qcow2_path(src):
    """Where the qcow2 copy of ``src`` goes by default: disk.img -> disk.qcow2, disk -> disk.qcow2."""
    stem, suffix = os.path.splitext(src)
    return (stem if suffix in RAW_SUFFIXES else src) + ".qcow2"


def command(binary, src, dest):
    """The qemu-img command line that writes the qcow2 copy of the raw image ``src`` to ``dest``."""
    return [binary, "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", QCOW2_OPTIONS, "-S", "4k", src, dest]


class Conversion(object):
    """The qcow2 copy of an image, for _artifact/outputs: its ``kind``, where
    it goes (``path``: ``dest``, or qcow2_path), and ``write`` (the image to a
    qcow2 file). qemu-img is looked for when it is made: before anything is written."""

    kind = "qcow2"

    def __init__(self, dest=None, binary=None):
        if binary is None:
            try:
                binary = overlay.qemu_img()
            except DiskImageError:
                raise DiskImageError("qemu-img is not installed; it writes the qcow2 copy of the image",
                                     hint="Install it (apt-get install qemu-utils, dnf install qemu-img), or "
                                          "leave the qcow2 copy out")
        self.binary = binary
        self.dest = dest

    def path(self, src):
        path = os.path.abspath(self.dest) if self.dest else qcow2_path(src)
        if os.path.abspath(path) == os.path.abspath(src):
            raise DiskImageError("the qcow2 copy of %s would be written over the image itself" % src,
                                 hint="Give another qcow2_path")
        return path

    def write(self, src, dest):
        proc = subprocess.run(command(self.binary, src, dest), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise DiskImageError("qemu-img cannot convert %s to qcow2: %s" % (
                src, proc.stdout.decode("utf-8", "replace").strip()), hint="Check the image and the free space")

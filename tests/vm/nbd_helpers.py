# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the VM tests of images that are not raw: the seed made qcow2,
what is connected, the oracle that an image is sound."""

import os
import shutil

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import server
from vm_helpers import MIB, SECTOR, SEED_LAYOUT, run, sfdisk_partitions


def have_qemu_utils():
    return bool(shutil.which("qemu-nbd") and shutil.which("qemu-img"))


def connected():
    """{nbd device: task} of every connected nbd device, from sysfs."""
    return dict((nbd.device_path(n), nbd.task_of(n)) for n in nbd.numbers() if nbd.task_of(n) is not None)


def servers():
    """Live qemu-nbd processes (a zombie has no command line)."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and server.is_server(int(pid))]


def check_clean(qcow2):
    out = run("qemu-img", "check", "-f", "qcow2", qcow2).stdout
    assert "No errors were found" in out, out


def make_seed(directory):
    """(raw, qcow2): the seed layout with an ext4 filesystem (label partN) in
    every partition that holds one, and its qcow2 conversion."""
    raw = os.path.join(directory, "seed.img")
    with open(raw, "wb") as handle:
        handle.truncate(80 * MIB)
    run("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", raw, input=SEED_LAYOUT)
    for number, start, size, extended in sfdisk_partitions(raw):
        if not extended:
            run("mke2fs", "-q", "-F", "-t", "ext4", "-L", "part%d" % number, "-E", "offset=%d" % (start * SECTOR),
                raw, "%dk" % (size * SECTOR // 1024))
    qcow2 = os.path.join(directory, "seed.qcow2")
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
    return raw, qcow2


def make_seed_with_root(image, tree):
    """The seed layout in the raw file ``image``, and in its last partition
    (logical partition 8) an ext4 root filled from the directory ``tree``."""
    with open(image, "wb") as handle:
        handle.truncate(80 * MIB)
    run("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image, input=SEED_LAYOUT)
    _number, start, size, _extended = sfdisk_partitions(image)[-1]
    run("mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), "-E", "offset=%d" % (start * SECTOR), image,
        "%dk" % (size * SECTOR // 1024))
    return image

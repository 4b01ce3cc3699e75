# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel partition devices (/dev/loopNpM) made and removed with BLKPG.

The kernel's own partition parsers may be missing (minimal kernels) or see
something other than our reader does, so the partition devices of a disk are
reconciled with the table we parsed: what is missing is added, what differs is
replaced, and what has no place in the table is removed - each only when no one
uses it. This is what partx does, without partx.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import fcntl
import os
import struct

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

BLKPG = 0x1269
BLKPG_ADD_PARTITION = 1
BLKPG_DEL_PARTITION = 2
BLKPG_RESIZE_PARTITION = 3
OPEN_WAIT = 2  # seconds a partition found unused may stay open (see _delete)

# struct blkpg_partition { long long start, length; int pno; char devname[64], volname[64]; }
PARTITION = struct.Struct("=qqi64s64s4x")
# struct blkpg_ioctl_arg { int op; int flags; int datalen; void *data; }: native
# alignment puts the pointer at 16 on 64-bit hosts (24 bytes) and at 12 on 32-bit.
IOCTL_ARG = struct.Struct("@iiiP")


def _blkpg(fd, op, number, start=0, length=0):
    payload = ctypes.create_string_buffer(PARTITION.pack(start, length, number, b"", b""), PARTITION.size)
    arg = IOCTL_ARG.pack(op, 0, PARTITION.size, ctypes.addressof(payload))
    fcntl.ioctl(fd, BLKPG, arg)


def extended_length(size, sector_size):
    """What the kernel (and partx) expose of an extended partition: a stub of
    two 512-byte sectors, or one logical sector when that is larger - enough
    for boot loaders that look for the EBR, too small to format by mistake."""
    return min(size, max(sector_size, 1024))


class KernelPartition(object):
    """A partition device the kernel has: number, byte geometry, names."""

    def __init__(self, disk, name, number, start, size):
        self.disk = disk
        self.name = name
        self.number = number
        self.start = start
        self.size = size

    @property
    def device(self):
        return "/dev/%s" % self.name

    def to_dict(self):
        return {"number": self.number, "device": self.device, "start": self.start, "size": self.size}


def kernel_partitions(disk):
    """The partition devices of ``disk`` (a kernel name such as loop3) by number."""
    found = {}
    for name, number in sysfs.partitions(disk):
        start, size = sysfs.partition_geometry(disk, name)
        found[number] = KernelPartition(disk, name, number, start, size)
    return found


def partition_name(disk, number):
    """loop3 + 2 -> loop3p2; sda + 2 -> sda2 (the kernel's rule)."""
    return "%s%s%d" % (disk, "p" if disk[-1:].isdigit() else "", number)


def wanted_geometry(table):
    """{number: (start, length)} in bytes, as the kernel should expose the table."""
    wanted = {}
    for part in table.partitions:
        length = part.size
        if part.kind == "extended":
            length = extended_length(part.size, table.sector_size)
        wanted[part.number] = (part.start, length)
    return wanted


def plan(disk, table):
    """Differences between the kernel's partitions of ``disk`` and ``table``.

    Returns (add, replace, remove): numbers to add, to delete and add again with
    the table's geometry, and to delete because the table has no such partition.
    """
    have = kernel_partitions(disk)
    want = wanted_geometry(table) if table is not None else {}
    add = sorted(n for n in want if n not in have)
    replace = sorted(n for n in want if n in have and (have[n].start, have[n].size) != want[n])
    remove = sorted(n for n in have if n not in want)
    return add, replace, remove


def _busy(disk, number):
    name = partition_name(disk, number)
    reasons = blockdev.busy_reasons(name, dev_path="/dev/%s" % name) if sysfs.devno(name) else []
    return reasons


def apply(device, table):
    """Make the kernel's partition devices of ``device`` match ``table``.

    ``device`` is /dev/loopN with partscan on. Refuses to delete or replace a
    partition that is in use, before changing anything. Returns the kernel
    partitions afterwards, with /dev nodes ensured.
    """
    disk = os.path.basename(device)
    add, replace, remove = plan(disk, table)
    for number in replace + remove:
        reasons = _busy(disk, number)
        if reasons:
            raise DiskImageError(
                "%s is in use (%s) and differs from the partition table" % (
                    "/dev/%s" % partition_name(disk, number), "; ".join(reasons)),
                errno=errno.EBUSY, hint="Unmount it first")
    want = wanted_geometry(table) if table is not None else {}
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for number in replace + remove:
            _delete(fd, device, number)
        for number in sorted(add + replace):
            start, length = want[number]
            _add(fd, device, number, start, length)
    finally:
        os.close(fd)
    found = kernel_partitions(disk)
    for part in found.values():
        blockdev.node_for(part.name)
    return found


def remove_all(device):
    """Delete every partition device of ``device``; refuses while one is in use."""
    disk = os.path.basename(device)
    have = kernel_partitions(disk)
    for number in sorted(have):
        reasons = _busy(disk, number)
        if reasons:
            raise DiskImageError("%s is in use: %s" % (have[number].device, "; ".join(reasons)),
                                 errno=errno.EBUSY, hint="Unmount it first")
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        delete_partitions(fd, device, have)
    finally:
        os.close(fd)
    return sorted(have)


def delete_partitions(fd, device, numbers):
    """BLKPG_DEL_PARTITION of ``numbers`` on the open ``device``, highest first."""
    for number in sorted(numbers, reverse=True):
        _delete(fd, device, number)


def resize(device, number, start, length):
    """BLKPG_RESIZE_PARTITION: partition ``number`` of ``device`` keeps its
    start and gets ``length`` bytes. The kernel allows it on a partition in
    use (it never moves data), which is how a grown image's partition device
    follows without being taken down."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _blkpg(fd, BLKPG_RESIZE_PARTITION, number, start, length)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot resize partition %d of %s to %d bytes" % (number, device, length),
                                          exc, hint="Check that the loop device's capacity covers it")
    finally:
        os.close(fd)


def _add(fd, device, number, start, length):
    try:
        _blkpg(fd, BLKPG_ADD_PARTITION, number, start, length)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            # The kernel's own scan may have added it meanwhile (systemd treats
            # this the same way); accept it only with the geometry we want.
            current = kernel_partitions(os.path.basename(device)).get(number)
            if current is not None and (current.start, current.size) == (start, length):
                return
        if exc.errno == errno.EINVAL:
            raise DiskImageError.from_oserror(
                "cannot add partition %d to %s" % (number, device), exc,
                hint="Turn partscan on for the loop device (the kernel allows partitions only then)")
        raise DiskImageError.from_oserror("cannot add partition %d to %s" % (number, device), exc)


def _delete(fd, device, number):
    """BLKPG_DEL_PARTITION, retried on EBUSY for up to ``OPEN_WAIT`` seconds.
    Every caller has found the partition unused (no mount, holder or
    exclusive opener) first, so an EBUSY here is an opener of a moment: the
    probe udev runs on every partition a scan adds (blkid), or the kernel's
    own scan of a device just connected. Anything still open after that is
    reported."""

    def deleted():
        try:
            _blkpg(fd, BLKPG_DEL_PARTITION, number)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            if exc.errno == errno.ENXIO:
                return True  # already gone
            raise DiskImageError.from_oserror("cannot remove partition %d of %s" % (number, device), exc)
        return True

    if not wait_until(deleted, OPEN_WAIT, interval=0.05):
        node = "/dev/%s" % partition_name(os.path.basename(device), number)
        raise DiskImageError("cannot remove %s: it stayed open for %d s" % (node, OPEN_WAIT), errno=errno.EBUSY,
                             hint="Something holds it open; see fuser -v %s" % node)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block-device plumbing shared by the loop, partition and mount code.

Size and sector-size ioctls, device nodes made from sysfs numbers where /dev is a
container's snapshot and no udev runs, and the question every destructive step
asks first: who is using this device?
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import stat
import struct
import time

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
BLKFLSBUF = 0x1261
BLKRRPART = 0x125F

DEV_ROOT = "/dev"


def ioctl_retry(fd, request, arg=0, tries=20, delay=0.05):
    """fcntl.ioctl that rides out EAGAIN, which the loop driver returns while
    udev or a partition rescan holds the device for a moment."""
    for attempt in range(tries):
        try:
            return fcntl.ioctl(fd, request, arg)
        except OSError as exc:
            if exc.errno != errno.EAGAIN or attempt == tries - 1:
                raise
            time.sleep(delay)
    return None  # not reached


def size64(fd):
    """Size in bytes of an open block device."""
    return struct.unpack("=Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]


def logical_sector_size(fd):
    return struct.unpack("=i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]


def file_size(path):
    """Size of a regular file or a block device, in bytes."""
    info = os.stat(path)
    if stat.S_ISBLK(info.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return size64(fd)
        finally:
            os.close(fd)
    return info.st_size


def ensure_node(path, devno, char=False, mode=0o660):
    """Make sure ``path`` is a device node for ``devno``; create it when missing.

    A container's /dev is a snapshot taken at start, so devices the kernel adds
    later (a new loopN, a partition, a dm map) have no node and no udev to make
    one. Returns True when a node was created. A node with another number at the
    same path is not ours to replace.
    """
    kind = stat.S_IFCHR if char else stat.S_IFBLK
    want = os.makedev(*devno)
    for _attempt in range(2):
        try:
            info = os.stat(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise DiskImageError.from_oserror("cannot inspect %s" % path, exc)
        else:
            if stat.S_IFMT(info.st_mode) == kind and info.st_rdev == want:
                return False
            raise DiskImageError(
                "%s exists but is not device %d:%d" % (path, devno[0], devno[1]),
                hint="Another node occupies that name; remove it or use a /dev that matches this kernel")
        try:
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755)
            os.mknod(path, kind | mode, want)
            return True
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # another process made it meanwhile: check again
                raise DiskImageError.from_oserror(
                    "cannot create device node %s (%d:%d)" % (path, devno[0], devno[1]), exc,
                    hint="Run as root with CAP_MKNOD, or share the host's /dev with the container")
    return False


def node_for(name, root=sysfs.SYS_ROOT, dev_root=DEV_ROOT):
    """/dev path of a kernel block device name, creating the node if needed."""
    devno = sysfs.devno(name, root)
    if devno is None:
        raise DiskImageError("the kernel has no block device named %s" % name)
    path = os.path.join(dev_root, name)
    ensure_node(path, devno)
    return path


def devno_of(path):
    """(major, minor) of a block device node; DiskImageError for anything else."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot open %s" % path, exc)
    if not stat.S_ISBLK(info.st_mode):
        raise DiskImageError("%s is not a block device" % path)
    return os.major(info.st_rdev), os.minor(info.st_rdev)


def flush_buffers(paths):
    """BLKFLSBUF on each block device of ``paths`` (``blockdev --flushbufs``):
    what its page cache holds is written back and dropped, so a reader sees
    what was written to the same bytes through another device. A device
    that is gone or keeps no cache is skipped."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # gone already: nothing cached
        try:
            fcntl.ioctl(fd, BLKFLSBUF, 0)
        except OSError:
            pass  # a device that keeps no cache
        finally:
            os.close(fd)


def is_exclusively_held(path):
    """True when a mount, a dm map, swap or md holds the device with O_EXCL.

    The kernel marks the whole disk claimed when one of its partitions is, so
    this also sees a mounted partition, in any mount namespace.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return True
        raise DiskImageError.from_oserror("cannot open %s" % path, exc)
    os.close(fd)
    return False


def _maybe_held(path):
    try:
        return is_exclusively_held(path)
    except DiskImageError:
        return True  # cannot tell from here: the mount table will


def busy_reasons(name, root=sysfs.SYS_ROOT, dev_path=None, expected_holders=()):
    """Why the disk ``name`` (and its partitions) cannot be released, in words.

    An empty list means nothing holds it. Each entry names a holder so that the
    error a user sees says what to unmount or remove. ``expected_holders``
    (kernel names, say the disk's own partition maps, which the caller checks
    on their own) are no reason; the exclusive claim they put on the disk is
    theirs, so it is no reason either.
    """
    parts = sysfs.partitions(name, root)
    stacked = [(holder_of, holder) for holder_of, disk in [(name, None)] + [(part, name) for part, _n in parts]
               for holder in sysfs.holders(holder_of, root, disk=disk)]
    held = [(holder_of, holder) for holder_of, holder in stacked if holder not in expected_holders]
    claimed = len(held) < len(stacked)
    if not held and dev_path and not claimed and not _maybe_held(dev_path):
        # Every mount of the disk or of a partition claims the disk exclusively,
        # so nothing can be mounted: no need to read the mount table.
        return []
    reasons = []
    table = mountinfo.read_mountinfo()
    for kernel_name in [name] + [part for part, _number in parts]:
        number = sysfs.devno(kernel_name, root)
        for mount in mountinfo.mounts_of_device(number[0], number[1], table) if number else ():
            reasons.append("mounted at %s" % mount.mount_point)
    for holder_of, holder in held:
        mapped = sysfs.dm_name(holder, root)
        what = "/dev/mapper/%s" % mapped if mapped else "/dev/%s" % holder
        reasons.append("%s is held by %s" % ("/dev/%s" % holder_of, what))
    if not reasons and dev_path and not claimed and is_exclusively_held(dev_path):
        reasons.append("opened exclusively by another program (a mount in another namespace, swap or RAID)")
    return reasons

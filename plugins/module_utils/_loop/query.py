# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What loop devices are, read without changing anything: names, status, the
devices of a file (losetup -j), the next free one.

Kept apart from loopdev.py (attach, detach, change) because most runs only
look: a module that checks a mount imports this and not the attach machinery,
and modules pay for every line they import (Ansible ships module_utils as
source, compiled again on every task).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import re
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, image
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import loop_abi as abi
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

LOOP_MAJOR = 7
_DEVICE_RE = re.compile(r"^(?:/dev/)?loop([0-9]+)$")

# The file of an attach, and of a lookup by file (losetup -j).
ATTACH_WORDS = image.Words(
    missing="image file %s does not exist",
    missing_hint="Create it first (for example with community.general.filesize) or fix the path",
    directory="%s is a directory, not an image file", directory_hint="Name the image file itself",
    neither="%s is neither a regular file nor a block device, so no loop device can be attached to it",
    neither_hint="Name an image file or a block device")
LOOKUP_WORDS = ATTACH_WORDS.but(
    missing="cannot look up the loop devices of %s", missing_is_oserror=True,
    missing_hint="Nothing can be attached to a file that does not exist; check the path")


class LoopStatus(object):
    """What one bound loop device is: the facts `losetup --list` shows, and more."""

    FIELDS = ("device", "name", "number", "major", "minor", "backing_file",
              "backing_file_deleted", "backing_inode", "backing_device", "offset",
              "sizelimit", "size", "sector_size", "read_only", "autoclear", "partscan",
              "direct_io")

    def __init__(self, **values):
        for field in self.FIELDS:
            setattr(self, field, values.get(field))

    def to_dict(self):
        return dict((field, getattr(self, field)) for field in self.FIELDS)

    def identity(self):
        """What makes two attachments 'the same' for state=present."""
        return (self.backing_device, self.backing_inode, self.offset, self.sizelimit, self.read_only)

    def __repr__(self):
        return "LoopStatus(%s -> %s, offset=%s)" % (self.device, self.backing_file, self.offset)


def parse_device(device):
    """'/dev/loop3', 'loop3' or 3 -> 3; anything else is refused before any I/O."""
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    match = _DEVICE_RE.match(str(device).strip())
    if not match:
        raise DiskImageError(
            "%r is not a loop device name" % (device,),
            hint="Name a loop device as /dev/loopN (for example /dev/loop3)")
    return int(match.group(1))


def device_path(number):
    return "/dev/loop%d" % number


def check_loop_device(device):
    """Refuse a path that exists but is not a loop block device (a real disk,
    a partition, a file) before anything is touched. Returns the number."""
    number = parse_device(device)
    path = device_path(number)
    try:
        info = os.stat(path)
    except OSError:
        return number  # no node yet: a container snapshot, or a device to be created
    if not stat.S_ISBLK(info.st_mode):
        raise DiskImageError("%s is not a block device" % path,
                             hint="Name a loop device such as /dev/loop3")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    name = sysfs.name_by_devno(major, minor)
    # A node the kernel does not know may only be a stale loop node (it will be
    # recreated through loop-control); any other number is not ours to touch.
    if (name is None and major != LOOP_MAJOR) or (name is not None and name != "loop%d" % number):
        raise DiskImageError(
            "%s is block device %d:%d (%s), not a loop device" % (path, major, minor, name or "unknown"),
            hint="Refusing to touch it; name a real loop device")
    return number


def _open_device(number, flags):
    path = device_path(number)
    devno = sysfs.devno("loop%d" % number)
    if devno is not None:
        blockdev.ensure_node(path, devno)
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot open %s" % path, exc)


def _ioctl_info(number):
    """loop_info64 of a bound device, or None when it is unbound."""
    try:
        fd = os.open(device_path(number), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        buf = bytearray(abi.LOOP_INFO64.size)
        fcntl.ioctl(fd, abi.LOOP_GET_STATUS64, buf, True)
        return abi.LoopInfo.unpack(buf)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise DiskImageError.from_oserror("cannot read the status of %s" % device_path(number), exc)
    finally:
        os.close(fd)


def status(device):
    """LoopStatus of a device, or None when no file is attached to it."""
    number = device if isinstance(device, int) else parse_device(device)
    values = sysfs.loop_status(number)
    if values is None:
        return None
    if values["devno"] is not None:
        blockdev.ensure_node(device_path(number), values["devno"])
    info = _ioctl_info(number)
    if info is None:
        return None  # detached between the two reads
    major, minor = values.pop("devno") or (LOOP_MAJOR, number)
    backing_major, backing_minor = info.backing_devno()
    return LoopStatus(device=device_path(number), major=major, minor=minor,
                      backing_inode=info.inode,
                      backing_device="%d:%d" % (backing_major, backing_minor), **values)


def list_attached():
    """Every bound loop device, by number."""
    found = []
    for number in sysfs.loop_numbers():
        if sysfs.loop_is_bound(number):
            current = status(number)
            if current is not None:
                found.append(current)
    return found


def _stat_identity(path):
    """(major, minor, inode) of the filesystem and inode holding ``path``."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot read %s" % path, exc)
    return os.major(info.st_dev), os.minor(info.st_dev), info.st_ino


def file_identity(path):
    """('major:minor', inode) of a file, in the form LoopStatus reports."""
    major, minor, inode = _stat_identity(path)
    return "%d:%d" % (major, minor), inode


def find_associated(path, offset=None):
    """Devices whose backing file is ``path`` (same st_dev and st_ino), like losetup -j.

    One open and one GET_STATUS64 per existing device decide (an unbound one
    answers ENXIO), compared as raw numbers; the full status, a dozen sysfs
    reads, is built only for the matches. This is the hot path of every plan,
    so it does no more per device than that.
    """
    major, minor, inode = _stat_identity(path)
    wanted = (abi.encode_kernel_dev(major, minor), inode)
    found = []
    buf = bytearray(abi.LOOP_INFO64.size)
    head = abi.LOOP_INFO64_HEAD.unpack_from
    for number in sysfs.loop_numbers():
        try:
            fd = os.open("/dev/loop%d" % number, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # no node (a container's snapshot of /dev) or gone meanwhile
        try:
            fcntl.ioctl(fd, abi.LOOP_GET_STATUS64, buf, True)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                continue  # unbound
            raise DiskImageError.from_oserror("cannot read the status of %s" % device_path(number), exc)
        finally:
            os.close(fd)
        device, backing_inode, _rdevice, backing_offset = head(buf)
        if (device, backing_inode) != wanted or (offset is not None and backing_offset != offset):
            continue
        current = status(number)
        if current is not None:
            found.append(current)
    return found


def find_free(root=sysfs.SYS_ROOT):
    """The lowest existing unbound loop device number, or None; creates nothing."""
    for number in sysfs.loop_numbers(root):
        if not sysfs.loop_is_bound(number, root):
            return number
    return None


def next_free(root=sysfs.SYS_ROOT):
    """(number, exists): the device an attach without a named device would most
    likely take, found by reading sysfs only.

    LOOP_CTL_GET_FREE hands out the lowest existing unbound device, and when
    every device is bound it creates the lowest number the kernel does not
    have yet; asking it would create that device, so this reads the same answer
    from sysfs instead. Best effort: another process may take the device first.
    """
    number = find_free(root)
    if number is not None:
        return number, True
    existing = set(sysfs.loop_numbers(root))
    number = 0
    while number in existing:
        number += 1
    return number, False


def predicted_devno(number, root=sysfs.SYS_ROOT):
    """(major, minor) of loopN: from sysfs when the kernel has the device, else
    what the loop driver would give it (minor N << part_shift, part_shift
    derived from the module's max_part as the driver does)."""
    known = sysfs.devno("loop%d" % number, root)
    if known is not None:
        return known
    max_part = sysfs.loop_max_part(root)
    shift = max_part.bit_length() if max_part > 0 else 0
    return LOOP_MAJOR, number << shift


def same_attachment(one, other):
    """Whether two LoopStatus describe the same attachment (device, file, geometry)."""
    if one is None or other is None:
        return False
    return (one.device, one.backing_device, one.backing_inode, one.offset, one.sizelimit) == (
        other.device, other.backing_device, other.backing_inode, other.offset, other.sizelimit)


def check_lookup_file(path):
    """Refuse a path no loop device can be attached to, before a lookup by it
    (losetup -j) quietly finds nothing: a missing file, a directory, anything
    that is neither a regular file nor a block device."""
    image.stat_image(path, LOOKUP_WORDS)
    return path

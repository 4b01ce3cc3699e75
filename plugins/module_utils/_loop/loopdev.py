# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loop devices through the kernel's ioctls: attach, detach, inspect, change.

Everything ``losetup`` does, with no losetup binary. The discipline follows what
mature tools learned the hard way:

* allocation races: another process may take the device between GET_FREE and
  configure. Take an exclusive flock on /dev/loop-control and then on the
  device, retry a bounded number of times with jitter, and never clear a device
  this process did not configure;
* verification: after configuring, read back size, sector size and flags, fix
  what old kernels drop (PARTSCAN), and undo the attach if it still differs;
* containers: create /dev nodes from sysfs numbers when /dev is a snapshot;
* identity: the file behind a device is matched by (st_dev, st_ino), never by
  the 64-byte name the kernel truncates.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import random
import time

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, blockdev, holders, image
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import loop_abi as abi
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._loop.query import (  # noqa: F401  # pylint: disable=unused-import
    ATTACH_WORDS, LOOKUP_WORDS, LOOP_MAJOR, LoopStatus, _ioctl_info, _open_device, _stat_identity,
    check_lookup_file, check_loop_device, device_path, file_identity, find_associated, find_free,
    list_attached, next_free, parse_device, predicted_devno, same_attachment, status)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

LOOP_CONTROL = "/dev/loop-control"
ALLOCATION_TRIES = 64
# How long a detach may take to show in sysfs (the clear runs on last close,
# and udev may hold the device for a moment after it was written).
DETACH_SETTLE_SECONDS = 3.0
# How long to wait for another program's flock on loop-control or a device.
LOCK_WAIT_SECONDS = 10.0


def _open_control():
    devno = sysfs.misc_devno("loop-control")
    if devno is not None:
        blockdev.ensure_node(LOOP_CONTROL, devno, char=True, mode=0o600)
    try:
        return os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise DiskImageError.from_oserror(
            "cannot open %s" % LOOP_CONTROL, exc,
            hint="Load the loop module (modprobe loop) and run as root")


# ---------------------------------------------------------------- inspection


def predicted_status(request, number, identity, root=sysfs.SYS_ROOT):
    """The LoopStatus an attachment of the validated ``request`` to loopN has,
    built from the request and the file's ``identity`` ('major:minor', inode)
    without asking the kernel: the prediction of check mode, and the result of
    an autoclear attachment the kernel released before it could be read back.

    The backing file is reported as the kernel does: the real path, with
    symbolic links resolved."""
    major, minor = predicted_devno(number, root)
    backing_device, backing_inode = identity
    return LoopStatus(device=device_path(number), name="loop%d" % number, number=number,
                      major=major, minor=minor, backing_file=os.path.realpath(request.path),
                      backing_file_deleted=False, backing_inode=backing_inode,
                      backing_device=backing_device, offset=request.offset,
                      sizelimit=request.sizelimit, size=request.expected_size,
                      sector_size=request.sector_size or 512, read_only=request.read_only,
                      autoclear=request.autoclear, partscan=request.partscan,
                      direct_io=request.direct_io)


def users(device):
    """What keeps a bound loop device open, in words; empty when nothing does.

    Mounts, stacked devices and exclusive openers (as busy_reasons finds them),
    and processes with the device or one of its partitions open. With autoclear
    set, the kernel detaches the device as soon as the last of these lets go.
    Processes in other PID namespaces are not seen.
    """
    number = check_loop_device(device)
    name = "loop%d" % number
    path = device_path(number)
    reasons = list(blockdev.busy_reasons(name, dev_path=path))
    nodes = [path] + ["/dev/%s" % part for part, _number in sysfs.partitions(name)]
    processes = holders.processes_using(nodes)
    if processes:
        reasons.append("open by %s" % ", ".join(processes))
    return reasons


# ---------------------------------------------------------------- validation

class AttachRequest(object):
    """A validated attach: the file, geometry and flags, and the size to expect."""

    def __init__(self, path, offset=0, sizelimit=0, read_only=False, partscan=False,
                 direct_io=False, sector_size=0, autoclear=False):
        self.path = os.path.abspath(path)
        self.offset = offset
        self.sizelimit = sizelimit
        self.read_only = bool(read_only)
        self.partscan = bool(partscan)
        self.direct_io = bool(direct_io)
        self.sector_size = sector_size or 0
        self.autoclear = bool(autoclear)
        self.file_size = None
        self.expected_size = None

    @property
    def flags(self):
        value = 0
        for wanted, bit in ((self.read_only, abi.LO_FLAGS_READ_ONLY),
                            (self.autoclear, abi.LO_FLAGS_AUTOCLEAR),
                            (self.partscan, abi.LO_FLAGS_PARTSCAN),
                            (self.direct_io, abi.LO_FLAGS_DIRECT_IO)):
            if wanted:
                value |= bit
        return value

    def validate(self):
        """Check the file and the numbers; raise before anything is attached."""
        image.stat_image(self.path, ATTACH_WORDS)
        if self.sector_size and self.sector_size not in abi.VALID_SECTOR_SIZES:
            raise DiskImageError("sector_size %d is not supported" % self.sector_size,
                                 hint="Use one of 512, 1024, 2048 or 4096")
        unit = self.sector_size or 512
        for name, value in (("offset", self.offset), ("sizelimit", self.sizelimit)):
            if value < 0:
                raise DiskImageError("%s must not be negative (got %d)" % (name, value))
            if value % unit:
                raise DiskImageError(
                    "%s %d is not a multiple of the %d-byte sector size" % (name, value, unit),
                    hint="Use %d or %d" % (value - value % unit, value - value % unit + unit))
        self.file_size = image.file_size(self.path)
        if self.file_size == 0:
            raise DiskImageError("%s is empty (0 bytes), so there is nothing to attach" % self.path,
                                 hint="Give the image its size first (for example with community.general.filesize), "
                                      "or check the path")
        if self.offset >= self.file_size:
            raise DiskImageError(
                "offset %d is at or past the end of %s (%d bytes)" % (self.offset, self.path, self.file_size),
                hint="Use an offset inside the image")
        available = self.file_size - self.offset
        if self.sizelimit and self.sizelimit > available:
            raise DiskImageError(
                "offset %d plus sizelimit %d reaches past the end of %s (%d bytes)" % (
                    self.offset, self.sizelimit, self.path, self.file_size),
                hint="Use a sizelimit of at most %d, or grow the image first" % available)
        span = min(available, self.sizelimit) if self.sizelimit else available
        self.expected_size = span - span % unit
        if self.expected_size == 0:
            raise DiskImageError("%s has less than one %d-byte sector after offset %d" % (
                self.path, unit, self.offset),
                hint="Use a smaller offset or sector_size, or grow the image first")
        return self

    def open_backing(self):
        """The backing fd: read-only when asked, O_DIRECT to agree with direct_io."""
        flags = (os.O_RDONLY if self.read_only else os.O_RDWR) | os.O_CLOEXEC
        if self.direct_io:
            flags |= getattr(os, "O_DIRECT", 0)
        try:
            return os.open(self.path, flags)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and not self.read_only:
                raise DiskImageError.from_oserror(
                    "cannot open %s for writing" % self.path, exc,
                    hint="Set read_only: true to attach it read-only")
            if exc.errno == errno.EINVAL and self.direct_io:
                raise DiskImageError.from_oserror(
                    "the filesystem holding %s does not support direct I/O" % self.path, exc,
                    hint="Set direct_io: false")
            raise DiskImageError.from_oserror("cannot open %s" % self.path, exc)

    def info(self):
        return abi.LoopInfo(offset=self.offset, sizelimit=self.sizelimit, flags=self.flags,
                            file_name=self.path)


# ---------------------------------------------------------------- attach

class _Busy(Exception):
    """The device was taken by someone else before we could configure it."""


class _Vanished(Exception):
    """The device was removed (LOOP_CTL_REMOVE) between GET_FREE and the open."""


class _Cleaned(Exception):
    """The device was unbound but still had partition devices; they were removed
    and the attempt counts as one: try again."""


# What open(2) says of a loop device number that no longer exists.
_VANISHED_ERRNOS = (errno.ENOENT, errno.ENXIO, errno.ENODEV)
# How often a named device is configured again after its leftovers were removed.
CLEANUP_TRIES = 3


def _lock(fd, what):
    """flock(LOCK_EX) with a bounded wait: udev skips devices locked this way,
    and other well-behaved tools (systemd, us) serialize on it."""
    def locked():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                raise DiskImageError.from_oserror("cannot lock %s" % what, exc)
            return False

    if not wait_until(locked, LOCK_WAIT_SECONDS, interval=0.01):
        raise DiskImageError("timed out waiting for the lock on %s" % what, errno=errno.EWOULDBLOCK,
                             hint="Another program holds it; retry when it is done")


def _configure(dev_fd, backing_fd, request):
    """Bind backing_fd to the device: LOOP_CONFIGURE, or the pre-5.8 sequence."""
    try:
        blockdev.ioctl_retry(dev_fd, abi.LOOP_CONFIGURE,
                             abi.pack_config(backing_fd, request.sector_size, request.info()))
        return
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise _Busy()
        if exc.errno not in (errno.EINVAL, errno.ENOTTY, errno.ENOSYS):
            raise
    # Kernels before 5.8 have no LOOP_CONFIGURE: bind, then set the rest.
    try:
        fcntl.ioctl(dev_fd, abi.LOOP_SET_FD, backing_fd)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise _Busy()
        raise
    try:
        if request.sector_size:
            blockdev.ioctl_retry(dev_fd, abi.LOOP_SET_BLOCK_SIZE, request.sector_size)
        info = request.info()
        info.flags &= ~abi.LO_FLAGS_DIRECT_IO  # set through its own ioctl below
        blockdev.ioctl_retry(dev_fd, abi.LOOP_SET_STATUS64, info.pack())
        if request.direct_io:
            blockdev.ioctl_retry(dev_fd, abi.LOOP_SET_DIRECT_IO, 1)
    except OSError:
        fcntl.ioctl(dev_fd, abi.LOOP_CLR_FD, 0)  # we bound it: we may unbind it
        raise


def _read_info(dev_fd):
    buf = bytearray(abi.LOOP_INFO64.size)
    blockdev.ioctl_retry(dev_fd, abi.LOOP_GET_STATUS64, buf)
    return abi.LoopInfo.unpack(buf)


def _verify(dev_fd, request, path):
    """Read back what the kernel really set up; repair PARTSCAN, then insist."""
    info = _read_info(dev_fd)
    if request.partscan and not info.flags & abi.LO_FLAGS_PARTSCAN:
        # 5.8 ignored PARTSCAN in LOOP_CONFIGURE: set it with read-modify-write.
        info.flags |= abi.LO_FLAGS_PARTSCAN
        blockdev.ioctl_retry(dev_fd, abi.LOOP_SET_STATUS64, info.pack())
        info = _read_info(dev_fd)
    problems = []
    size = blockdev.size64(dev_fd)
    if size != request.expected_size:
        problems.append("size is %d bytes, expected %d" % (size, request.expected_size))
    if request.sector_size:
        sector = blockdev.logical_sector_size(dev_fd)
        if sector != request.sector_size:
            problems.append("sector size is %d, expected %d" % (sector, request.sector_size))
    if info.offset != request.offset or info.sizelimit != request.sizelimit:
        problems.append("offset/sizelimit read back as %d/%d" % (info.offset, info.sizelimit))
    wanted = request.flags
    if (info.flags & wanted) != wanted or (info.flags & abi.LO_FLAGS_READ_ONLY) != (wanted & abi.LO_FLAGS_READ_ONLY):
        problems.append("flags read back as %s, expected %s" % (
            ",".join(abi.flag_names(info.flags)) or "none", ",".join(abi.flag_names(wanted)) or "none"))
    if problems:
        raise DiskImageError("the kernel did not set up %s as requested: %s" % (path, "; ".join(problems)),
                             hint="Nothing was left attached")


def _attach_to(number, request, backing_fd, keep_open=False):
    """Configure loopN under its lock; _Busy if another process owns it.

    With autoclear, returns the status read while this function still holds
    the device open: once it closes the device, the kernel releases it if
    nobody else holds it, and there is nothing left to read. Else None.
    With ``keep_open``, returns (status, fd): the device stays open, unlocked."""
    dev_flags = os.O_RDONLY if request.read_only else os.O_RDWR
    try:
        dev_fd = _open_device(number, dev_flags)
    except DiskImageError as exc:
        if exc.errno in _VANISHED_ERRNOS:
            raise _Vanished()
        raise
    try:
        _lock(dev_fd, device_path(number))
        _refuse_leftovers(dev_fd, number)
        try:
            _configure(dev_fd, backing_fd, request)
        except _Busy:
            raise
        except OSError as exc:
            raise DiskImageError.from_oserror(
                "cannot attach %s to %s" % (request.path, device_path(number)), exc)
        try:
            _verify(dev_fd, request, device_path(number))
        except (DiskImageError, OSError):
            fcntl.ioctl(dev_fd, abi.LOOP_CLR_FD, 0)
            raise
        held = status(number) if request.autoclear else None
        if keep_open:
            # Verified and ours: let udev and other tools see it from now on.
            fcntl.flock(dev_fd, fcntl.LOCK_UN)
            kept, dev_fd = dev_fd, None
            return held, kept
        return held
    finally:
        if dev_fd is not None:
            os.close(dev_fd)


def _refuse_leftovers(dev_fd, number):
    """Under the device's lock, before configuring it: a device someone bound
    without taking the lock is busy; an unbound one that still has partition
    devices (kernels before 6.11 could leave them behind a detach) gets them
    removed through BLKPG, and the attempt is retried, as systemd does."""
    name = "loop%d" % number
    if sysfs.loop_is_bound(number):
        raise _Busy()
    leftover = [part_number for _part, part_number in sysfs.partitions(name)]
    if leftover:
        blkpg.delete_partitions(dev_fd, device_path(number), leftover)
        raise _Cleaned()


def _ensure_exists(number):
    """Create loopN through loop-control when the kernel does not have it yet."""
    if not sysfs.loop_exists(number):
        _control(abi.LOOP_CTL_ADD, number, errno.EEXIST, "create")


def remove_device(number):
    """LOOP_CTL_REMOVE: drop an unbound loopN from the kernel (and its node we made)."""
    _control(abi.LOOP_CTL_REMOVE, number, errno.ENODEV, "remove")


def _control(request, number, done_errno, what):
    """A loop-control ioctl on loopN; ``done_errno`` means it is so already."""
    control = _open_control()
    try:
        fcntl.ioctl(control, request, number)
    except OSError as exc:
        if exc.errno != done_errno:
            raise DiskImageError.from_oserror("cannot %s %s" % (what, device_path(number)), exc)
    finally:
        os.close(control)


def attach(path, device=None, **options):
    """Attach ``path`` and return the new device's LoopStatus.

    With ``device``, that device and only that one (created if the kernel does
    not have it yet); otherwise the first free device, with retries when another
    process wins the race for it. Options: offset, sizelimit, read_only,
    partscan, direct_io, sector_size, autoclear.
    """
    request = AttachRequest(path, **options).validate()
    backing_fd = request.open_backing()
    try:
        backing = os.fstat(backing_fd)
        identity = ("%d:%d" % (os.major(backing.st_dev), os.minor(backing.st_dev)), backing.st_ino)
        if device is not None:
            number = check_loop_device(device)
            _ensure_exists(number)
            try:
                held = _attach_named(number, request, backing_fd)
            except _Busy:
                holder = status(number)
                raise DiskImageError(
                    "%s is already in use%s" % (
                        device_path(number), " by %s" % holder.backing_file if holder else ""),
                    errno=errno.EBUSY, hint="Name another device, or omit device to pick a free one")
        else:
            number, held = _attach_free(request, backing_fd)
    finally:
        os.close(backing_fd)
    result = status(number)
    if request.autoclear:
        expected = held or predicted_status(request, number, identity)
        if not same_attachment(result, expected):
            # Nobody held the device open, so autoclear released it on our
            # close (and another process may have taken the number since):
            # report the attachment as it was made.
            return expected
    return result


def attach_held(path, **options):
    """Attach ``path`` to the first free device with autoclear, and keep the
    device open: returns (LoopStatus, fd).

    The same locking, retries and verification as attach(). The kernel clears
    the device on the last close, so closing ``fd`` (or dying, however) after
    everything else let go of it releases it: nothing can leak. Options as
    for attach(), except autoclear, which is always on."""
    options["autoclear"] = True
    request = AttachRequest(path, **options).validate()
    backing_fd = request.open_backing()
    try:
        _number, (held, fd) = _attach_free(request, backing_fd, keep_open=True)
    finally:
        os.close(backing_fd)
    return held, fd


def _attach_named(number, request, backing_fd):
    for _attempt in range(CLEANUP_TRIES):
        try:
            return _attach_to(number, request, backing_fd)
        except _Cleaned:
            continue
        except _Vanished:
            raise DiskImageError("%s was removed by another program while it was being attached"
                                 % device_path(number), errno=errno.ENODEV, hint="Run the task again")
    raise DiskImageError("%s keeps showing partition devices while no file is attached to it"
                         % device_path(number), errno=errno.EBUSY,
                         hint="Name another device, or omit device to pick a free one")


def _attach_free(request, backing_fd, keep_open=False):
    control = _open_control()
    try:
        for _attempt in range(ALLOCATION_TRIES):
            _lock(control, LOOP_CONTROL)
            try:
                number = fcntl.ioctl(control, abi.LOOP_CTL_GET_FREE)
            except OSError as exc:
                raise DiskImageError.from_oserror("cannot find a free loop device", exc,
                                                  hint="Raise the loop module's max_loop or detach unused devices")
            try:
                return number, _attach_to(number, request, backing_fd, keep_open)
            except (_Vanished, _Cleaned):
                continue  # removed by another program, or cleaned up: ask again at once
            except _Busy:
                pass  # taken by a process that ignores the lock: try the next one
            finally:
                fcntl.flock(control, fcntl.LOCK_UN)
            time.sleep(random.uniform(0.01, 0.25))
    finally:
        os.close(control)
    raise DiskImageError("no free loop device after %d attempts" % ALLOCATION_TRIES, errno=errno.EBUSY,
                         hint="Other processes keep taking them; retry later")


# ---------------------------------------------------------------- detach

def detach(device, force=False):
    """Detach a device. Returns 'detached', 'pending' (force on a busy device:
    the kernel clears it on last close) or 'absent' (nothing was attached)."""
    number = check_loop_device(device)
    path = device_path(number)
    if not sysfs.loop_is_bound(number):
        return "absent"
    if not force:
        reasons = blockdev.busy_reasons("loop%d" % number, dev_path=path)
        if reasons:
            raise DiskImageError(
                "%s is busy: %s" % (path, "; ".join(reasons)), errno=errno.EBUSY,
                hint="Unmount or remove what holds it first, or set force: true for a lazy detach")
    before = _ioctl_info(number)
    fd = _open_device(number, os.O_RDONLY)
    try:
        try:
            fcntl.ioctl(fd, abi.LOOP_CLR_FD, 0)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return "absent"
            raise DiskImageError.from_oserror("cannot detach %s" % path, exc)
    finally:
        os.close(fd)  # the kernel completes the clear on this, the last close
    if _wait_unbound(number):
        return "detached"
    if force:
        return "pending"
    # Someone holds the device open without claiming it: the kernel only armed
    # autoclear. Put the flag back as it was and report who holds it.
    if before is not None and not before.flags & abi.LO_FLAGS_AUTOCLEAR:
        _set_status_flags(number, clear=abi.LO_FLAGS_AUTOCLEAR)
    users = holders.processes_using([path])
    raise DiskImageError("%s is busy: open by %s" % (path, ", ".join(users) or "another program"),
                         errno=errno.EBUSY,
                         hint="Close it first, or set force: true for a lazy detach")


def _wait_unbound(number):
    return wait_until(lambda: not sysfs.loop_is_bound(number), DETACH_SETTLE_SECONDS)


def wait_released(held):
    """After closing an attach_held device: wait until autoclear has undone
    that attachment (the device may be taken by another one at once, so the
    attachment is compared, not the number). True when it is gone."""
    return wait_until(lambda: not same_attachment(status(held.number), held), DETACH_SETTLE_SECONDS)


# ---------------------------------------------------------------- changes in place

def _set_status_flags(number, set_=0, clear=0):
    fd = _open_device(number, os.O_RDONLY)
    try:
        info = _read_info(fd)
        info.flags = (info.flags | set_) & ~clear
        blockdev.ioctl_retry(fd, abi.LOOP_SET_STATUS64, info.pack())
    finally:
        os.close(fd)


def _device_ioctl(device, request, arg, what, hint=None):
    number = check_loop_device(device)
    fd = _open_device(number, os.O_RDONLY)
    try:
        blockdev.ioctl_retry(fd, request, arg)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot %s on %s" % (what, device_path(number)), exc, hint=hint)
    finally:
        os.close(fd)
    return status(number)


def set_autoclear(device, enabled):
    number = check_loop_device(device)
    if enabled:
        _set_status_flags(number, set_=abi.LO_FLAGS_AUTOCLEAR)
    else:
        _set_status_flags(number, clear=abi.LO_FLAGS_AUTOCLEAR)
    return status(number)


def set_partscan(device, enabled):
    """PARTSCAN can be turned on for a bound device, never off (linux/loop.h)."""
    number = check_loop_device(device)
    if not enabled:
        raise DiskImageError("the kernel cannot turn partscan off on an attached device (%s)" % device_path(number),
                             hint="Detach it and attach it again without partscan")
    _set_status_flags(number, set_=abi.LO_FLAGS_PARTSCAN)
    return status(number)


def set_direct_io(device, enabled):
    return _device_ioctl(device, abi.LOOP_SET_DIRECT_IO, 1 if enabled else 0, "change direct I/O",
                         hint="The backing filesystem may not support direct I/O; set direct_io: false")


def set_sector_size(device, size):
    if size not in abi.VALID_SECTOR_SIZES:
        raise DiskImageError("sector_size %d is not supported" % size, hint="Use one of 512, 1024, 2048 or 4096")
    return _device_ioctl(device, abi.LOOP_SET_BLOCK_SIZE, size, "change the sector size",
                         hint="The device may be in use; unmount it first")


def refresh_capacity(device):
    """LOOP_SET_CAPACITY: make the device follow its backing file's new size."""
    return _device_ioctl(device, abi.LOOP_SET_CAPACITY, 0, "refresh the capacity")


def expected_capacity(current):
    """The size a device would have after refresh_capacity, from its backing file."""
    try:
        file_size = blockdev.file_size(current.backing_file)
    except (OSError, DiskImageError):
        return current.size
    span = max(0, file_size - current.offset)
    if current.sizelimit:
        span = min(span, current.sizelimit)
    unit = current.sector_size or 512
    return span - span % unit

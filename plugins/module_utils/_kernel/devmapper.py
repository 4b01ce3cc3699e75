# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Device-mapper through its ioctl interface on /dev/mapper/control.

No dmsetup and no libdevmapper: the requests are packed here with struct and sent
with fcntl.ioctl. The packing half (no I/O) is unit-tested byte by byte; the
DeviceMapper class does the talking, and is tested against the real kernel in the
VM tier with dmsetup as the oracle.

Interface version 4 (linux/dm-ioctl.h). A request is one buffer: the 312-byte
struct dm_ioctl, then a payload at data_start (target specs for TABLE_LOAD);
replies come back in the same buffer. Sectors are always 512 bytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import re
import stat
import struct
from collections import namedtuple

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, mountinfo, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

DM_DIR = "/dev/mapper"
DM_CONTROL = DM_DIR + "/control"
DM_MISC_NAME = "device-mapper"  # /sys/class/misc/device-mapper/dev holds 10:236

DM_VERSION_MAJOR = 4
DM_NAME_LEN = 128  # including the terminating NUL
DM_UUID_LEN = 129
DM_MAX_TYPE_NAME = 16
DM_IOCTL_SIZE = 312
DM_TARGET_SPEC_SIZE = 40

# command numbers (enum in dm-ioctl.h)
DM_VERSION_CMD = 0
DM_REMOVE_ALL_CMD = 1
DM_LIST_DEVICES_CMD = 2
DM_DEV_CREATE_CMD = 3
DM_DEV_REMOVE_CMD = 4
DM_DEV_RENAME_CMD = 5
DM_DEV_SUSPEND_CMD = 6
DM_DEV_STATUS_CMD = 7
DM_TABLE_LOAD_CMD = 9
DM_TABLE_CLEAR_CMD = 10
DM_TABLE_STATUS_CMD = 12

COMMAND_NAMES = {
    DM_VERSION_CMD: "VERSION", DM_REMOVE_ALL_CMD: "REMOVE_ALL",
    DM_LIST_DEVICES_CMD: "LIST_DEVICES", DM_DEV_CREATE_CMD: "DEV_CREATE",
    DM_DEV_REMOVE_CMD: "DEV_REMOVE", DM_DEV_RENAME_CMD: "DEV_RENAME",
    DM_DEV_SUSPEND_CMD: "DEV_SUSPEND", DM_DEV_STATUS_CMD: "DEV_STATUS",
    DM_TABLE_LOAD_CMD: "TABLE_LOAD", DM_TABLE_CLEAR_CMD: "TABLE_CLEAR",
    DM_TABLE_STATUS_CMD: "TABLE_STATUS",
}

# dm_ioctl.flags
DM_READONLY_FLAG = 1 << 0
DM_SUSPEND_FLAG = 1 << 1
DM_PERSISTENT_DEV_FLAG = 1 << 3
DM_STATUS_TABLE_FLAG = 1 << 4
DM_ACTIVE_PRESENT_FLAG = 1 << 5
DM_INACTIVE_PRESENT_FLAG = 1 << 6
DM_BUFFER_FULL_FLAG = 1 << 8
DM_UEVENT_GENERATED_FLAG = 1 << 13
DM_UUID_FLAG = 1 << 14

# dm_name_list flags word, present from interface 4.46 when DM_UUID_FLAG is asked
DM_NAME_LIST_FLAG_HAS_UUID = 1
DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2

# version[3] data_size data_start target_count open_count flags event_nr padding
# dev name uuid data[7]; '=' is native order with no implicit padding, and the
# explicit padding word puts dev at offset 40 as in the C struct.
_HEADER = struct.Struct("=3IIIIiIIIQ%ds%ds7s" % (DM_NAME_LEN, DM_UUID_LEN))
# sector_start length status next target_type
_SPEC = struct.Struct("=QQiI%ds" % DM_MAX_TYPE_NAME)
# dm_name_list: dev next, then the name
_NAME_LIST = struct.Struct("=QI")
_U32_PAIR = struct.Struct("=II")

if _HEADER.size != DM_IOCTL_SIZE or _SPEC.size != DM_TARGET_SPEC_SIZE:
    raise ImportError("device-mapper struct layouts do not match the kernel ABI")

# How long remove() rides out short-lived opens (udev's blkid probe of a new map)
# before it calls a device busy; how long create() lets udev make /dev/mapper/NAME
# before making the node itself.
BUSY_WAIT = 2.0
UDEV_WAIT = 5.0
UDEV_CONTROL = "/run/udev/control"  # the socket of a running udev daemon
# lvm2/dmsetup's rules that name /dev/mapper/NAME: 10-dm.rules upstream, 55-dm.rules on Debian
UDEV_RULES_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d")
_DM_RULES = re.compile(r"^[0-9][0-9]-dm\.rules$")

Header = namedtuple("Header", "version data_size data_start target_count open_count "
                              "flags event_nr dev name uuid")
Target = namedtuple("Target", "start length target_type params")
ListedDevice = namedtuple("ListedDevice", "name major minor uuid")


class DmInfo(namedtuple("DmInfo", "name uuid major minor open_count event_nr target_count flags")):
    """What DEV_STATUS says about one device. uuid is '' when it has none."""

    __slots__ = ()

    @property
    def read_only(self):
        return bool(self.flags & DM_READONLY_FLAG)

    @property
    def suspended(self):
        return bool(self.flags & DM_SUSPEND_FLAG)

    @property
    def live(self):
        """A table is active (the device does I/O)."""
        return bool(self.flags & DM_ACTIVE_PRESENT_FLAG)

    @property
    def inactive_table(self):
        return bool(self.flags & DM_INACTIVE_PRESENT_FLAG)

    @property
    def devno(self):
        return self.major, self.minor

    @property
    def path(self):
        return os.path.join(DM_DIR, self.name)

    @property
    def kernel_name(self):
        return "dm-%d" % self.minor


# ---------------------------------------------------------------- packing (no I/O)

def ioctl_request(command):
    """_IOWR(0xfd, command, struct dm_ioctl): the kernel checks only the nr, but
    the full number is what dm-ioctl.h defines."""
    return (3 << 30) | (DM_IOCTL_SIZE << 16) | (0xFD << 8) | command


def align8(value):
    return (value + 7) & ~7


def encode_dev(major, minor):
    """The kernel's huge_encode_dev, which is also glibc's makedev."""
    return os.makedev(major, minor)


def _cstring(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _encode_field(value, size, what):
    raw = value.encode("utf-8", "surrogateescape") if value else b""
    if len(raw) >= size:
        raise DiskImageError("device-mapper %s %r is too long: at most %d bytes" % (what, value, size - 1))
    if b"\0" in raw:
        raise DiskImageError("device-mapper %s %r contains a NUL byte" % (what, value))
    return raw


def check_name(name):
    """The kernel refuses empty names, '/' in names, and '.' or '..'."""
    if not name:
        raise DiskImageError("a device-mapper name must not be empty")
    if "/" in name or name in (".", ".."):
        raise DiskImageError("invalid device-mapper name %r: no '/', not '.' or '..'" % name)
    _encode_field(name, DM_NAME_LEN, "name")


def pack_request(name="", uuid="", flags=0, dev=0, event_nr=0, payload=b"", target_count=0,
                 size=None):
    """A request buffer: the header, then ``payload`` at offset 312.

    ``size`` makes the buffer bigger than needed, room for the reply to commands
    that return data (LIST_DEVICES, TABLE_STATUS).
    """
    data_start = align8(DM_IOCTL_SIZE)
    total = max(size or 0, data_start + len(payload))
    buf = bytearray(total)
    _HEADER.pack_into(buf, 0, DM_VERSION_MAJOR, 0, 0, total, data_start, target_count, 0,
                      flags, event_nr, 0, dev,
                      _encode_field(name, DM_NAME_LEN, "name"),
                      _encode_field(uuid, DM_UUID_LEN, "uuid"), b"")
    buf[data_start:data_start + len(payload)] = payload
    return buf


def unpack_header(buf):
    fields = _HEADER.unpack_from(buf, 0)
    return Header(version=tuple(fields[0:3]), data_size=fields[3], data_start=fields[4],
                  target_count=fields[5], open_count=fields[6], flags=fields[7],
                  event_nr=fields[8], dev=fields[10], name=_cstring(fields[11]),
                  uuid=_cstring(fields[12]))


def info_from_header(header):
    return DmInfo(name=header.name, uuid=header.uuid, major=os.major(header.dev),
                  minor=os.minor(header.dev), open_count=header.open_count,
                  event_nr=header.event_nr, target_count=header.target_count,
                  flags=header.flags)


def pack_targets(targets):
    """The TABLE_LOAD payload: one dm_target_spec per target, each followed by its
    NUL-terminated parameter string padded to 8 bytes; ``next`` is the distance
    from one spec to the next."""
    out = bytearray()
    for target in targets:
        start, length, target_type, params = target
        ttype = _encode_field(target_type, DM_MAX_TYPE_NAME, "target type")
        if not ttype:
            raise DiskImageError("a device-mapper target needs a type")
        if length <= 0 or start < 0:
            raise DiskImageError("invalid device-mapper target: start %d, length %d" % (start, length))
        raw = params.encode("utf-8", "surrogateescape") + b"\0"
        if b"\0" in raw[:-1]:
            raise DiskImageError("device-mapper target parameters %r contain a NUL byte" % params)
        raw += b"\0" * (align8(len(raw)) - len(raw))
        out += _SPEC.pack(start, length, 0, DM_TARGET_SPEC_SIZE + len(raw), ttype) + raw
    return bytes(out)


def unpack_targets(buf, header):
    """The target list of a TABLE_STATUS reply. Here ``next`` counts from the
    start of the data area, unlike on TABLE_LOAD."""
    base = header.data_start
    end = min(header.data_size, len(buf))
    targets = []
    offset = base
    for _index in range(header.target_count):
        if offset + DM_TARGET_SPEC_SIZE > end:
            raise DiskImageError("truncated device-mapper table reply")
        start, length, _status, nxt, ttype = _SPEC.unpack_from(buf, offset)
        params_at = offset + DM_TARGET_SPEC_SIZE
        nul = buf.find(b"\0", params_at, end)
        params = bytes(buf[params_at:nul if nul >= 0 else end]).decode("utf-8", "surrogateescape")
        targets.append(Target(start, length, _cstring(ttype), params))
        offset = base + nxt
    return targets


def unpack_device_list(buf, header):
    """The dm_name_list chain of a LIST_DEVICES reply.

    After each name, aligned to 8, kernels from 4.37 put event_nr and a flags
    word, and from 4.46 the uuid when asked with DM_UUID_FLAG. uuid is None when
    the kernel did not say (then DEV_STATUS has it).
    """
    devices = []
    offset = header.data_start
    end = min(header.data_size, len(buf))
    if end - offset < _NAME_LIST.size:
        return devices
    while True:
        dev, nxt = _NAME_LIST.unpack_from(buf, offset)
        if dev == 0:
            return devices  # the kernel's "no devices" record (no device is 0:0)
        name_at = offset + _NAME_LIST.size
        nul = buf.find(b"\0", name_at, end)
        if nul < 0:
            raise DiskImageError("malformed device-mapper device list")
        name = bytes(buf[name_at:nul]).decode("utf-8", "surrogateescape")
        record_end = offset + nxt if nxt else end
        uuid = None
        extra = align8(nul + 1)
        if extra + _U32_PAIR.size <= record_end:
            _event_nr, list_flags = _U32_PAIR.unpack_from(buf, extra)
            if list_flags & DM_NAME_LIST_FLAG_HAS_UUID:
                uuid_at = extra + _U32_PAIR.size
                uuid_nul = buf.find(b"\0", uuid_at, record_end)
                uuid = bytes(buf[uuid_at:uuid_nul if uuid_nul >= 0 else record_end]).decode(
                    "utf-8", "surrogateescape")
            elif list_flags & DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID:
                uuid = ""
        devices.append(ListedDevice(name, os.major(dev), os.minor(dev), uuid))
        if not nxt:
            return devices
        offset += nxt
        if offset + _NAME_LIST.size > end:
            raise DiskImageError("malformed device-mapper device list")


def linear_params(major, minor, start):
    """Parameters of a linear target: the device as MAJ:MIN and a start sector."""
    return "%d:%d %d" % (major, minor, start)


def parse_linear_params(params):
    """'7:0 2048' -> ((7, 0), 2048); None when it is not in that form."""
    fields = params.split()
    if len(fields) != 2:
        return None
    devno = sysfs.parse_devno(fields[0])
    if devno is None or not fields[1].isdigit():
        return None
    return devno, int(fields[1])


# ---------------------------------------------------------------- talking to the kernel

def available(root=sysfs.SYS_ROOT):
    """Whether this kernel has device-mapper: the control node, or the misc
    device it is made from (a container's /dev may lack the node)."""
    return os.path.exists(DM_CONTROL) or sysfs.misc_devno(DM_MISC_NAME, root) is not None


def udev_names_dm_devices(control=UDEV_CONTROL, rules_dirs=UDEV_RULES_DIRS):
    """True when a udev daemon runs and has device-mapper's naming rules."""
    if not os.path.exists(control):
        return False
    for directory in rules_dirs:
        try:
            if any(_DM_RULES.match(entry) for entry in os.listdir(directory)):
                return True
        except OSError:
            continue
    return False


class DeviceMapper(object):
    """An open /dev/mapper/control. Use as a context manager, or close()."""

    def __init__(self, control=DM_CONTROL, dev_dir=DM_DIR, sys_root=sysfs.SYS_ROOT,
                 busy_wait=BUSY_WAIT, udev_wait=UDEV_WAIT):
        self.control = control
        self.dev_dir = dev_dir
        self.sys_root = sys_root
        self.busy_wait = busy_wait
        self.udev_wait = udev_wait
        self._fd = self._open_control()
        try:
            self.driver_version = self.version()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- the control node

    def _open_control(self):
        want = sysfs.misc_devno(DM_MISC_NAME, self.sys_root)
        if want is None:
            raise DiskImageError(
                "device-mapper is not available: the kernel has no %s misc device"
                % DM_MISC_NAME,
                errno=errno.ENODEV,
                hint="Load it with 'modprobe dm_mod', or use a kernel built with CONFIG_BLK_DEV_DM")
        try:
            info = os.stat(self.control)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise DiskImageError.from_oserror("cannot inspect %s" % self.control, exc)
            info = None
        if info is not None and not (stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(*want)):
            # a stale node from another kernel (libdm replaces it the same way)
            try:
                os.unlink(self.control)
            except OSError as exc:
                raise DiskImageError.from_oserror("cannot replace the stale %s" % self.control, exc)
            info = None
        if info is None:
            blockdev.ensure_node(self.control, want, char=True, mode=0o600)
        try:
            return os.open(self.control, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DiskImageError.from_oserror(
                "cannot open %s" % self.control, exc,
                hint="device-mapper needs root (CAP_SYS_ADMIN)"
                if exc.errno in (errno.EACCES, errno.EPERM) else None)

    # -- one ioctl

    def _call(self, command, buf, what):
        if self._fd is None:
            raise DiskImageError("the device-mapper control node is closed")
        try:
            fcntl.ioctl(self._fd, ioctl_request(command), buf, True)
        except OSError as exc:
            hint = None
            if exc.errno in (errno.EACCES, errno.EPERM):
                hint = "device-mapper needs root (CAP_SYS_ADMIN)"
            raise DiskImageError.from_oserror(
                "device-mapper %s failed for %s" % (COMMAND_NAMES.get(command, command), what),
                exc, hint=hint)
        return unpack_header(buf)

    def _call_growing(self, command, what, size=16384, **request):
        """A command whose reply may not fit: retry with a bigger buffer while the
        kernel sets DM_BUFFER_FULL."""
        while True:
            buf = pack_request(size=size, **request)
            header = self._call(command, buf, what)
            if not header.flags & DM_BUFFER_FULL_FLAG:
                return buf, header
            if size >= 64 * 1024 * 1024:
                raise DiskImageError("device-mapper %s reply does not fit in %d bytes"
                                     % (COMMAND_NAMES[command], size))
            size *= 4

    # -- queries

    def version(self):
        """The kernel's interface version, (4, minor, patch)."""
        header = self._call(DM_VERSION_CMD, pack_request(), "the driver version")
        if header.version[0] != DM_VERSION_MAJOR:
            raise DiskImageError("unsupported device-mapper interface version %d.%d.%d (need 4.x)"
                                 % header.version)
        return header.version

    def list_devices(self, buffer_size=16384):
        """Every device: [ListedDevice(name, major, minor, uuid)], sorted by name.
        uuid is '' for a device without one."""
        buf, header = self._call_growing(DM_LIST_DEVICES_CMD, "the device list",
                                         size=buffer_size, flags=DM_UUID_FLAG)
        devices = unpack_device_list(buf, header)
        complete = []
        for device in devices:
            if device.uuid is None:  # a kernel older than 4.46 did not send it
                info = self.info(device.name)
                if info is None:
                    continue  # removed meanwhile
                device = device._replace(uuid=info.uuid)
            complete.append(device)
        return sorted(complete, key=lambda item: item.name)

    def info(self, name):
        """DmInfo of the device called ``name``, or None when there is none."""
        check_name(name)
        try:
            header = self._call(DM_DEV_STATUS_CMD, pack_request(name=name), repr(name))
        except DiskImageError as exc:
            if exc.errno == errno.ENXIO:
                return None
            raise
        return info_from_header(header)

    def table(self, name):
        """The active table: [Target(start, length, target_type, params)].
        Raises when there is no such device."""
        check_name(name)
        buf, header = self._call_growing(DM_TABLE_STATUS_CMD, repr(name), name=name,
                                         flags=DM_STATUS_TABLE_FLAG)
        return unpack_targets(buf, header)

    # -- changes

    def create(self, name, targets, uuid="", read_only=False):
        """Create and activate a device; returns its DmInfo.

        DEV_CREATE, TABLE_LOAD, then DEV_SUSPEND without the suspend flag, which
        resumes the device and makes the loaded table live. When a later step
        fails the device is removed again, so nothing half-made stays behind.
        """
        check_name(name)
        targets = [Target(*target) for target in targets]
        if not targets:
            raise DiskImageError("device-mapper device %r needs at least one target" % name)
        payload = pack_targets(targets)
        create_buf = pack_request(name=name, uuid=uuid)
        try:
            self._call(DM_DEV_CREATE_CMD, create_buf, repr(name))
        except DiskImageError as exc:
            if exc.errno == errno.EBUSY:
                raise DiskImageError(
                    "cannot create device-mapper device %r: a device with that name%s already exists"
                    % (name, " or uuid %r" % uuid if uuid else ""), errno=exc.errno,
                    hint="Remove it first, or choose another name")
            raise
        try:
            self._call(DM_TABLE_LOAD_CMD,
                       pack_request(name=name, payload=payload, target_count=len(targets),
                                    flags=DM_READONLY_FLAG if read_only else 0),
                       repr(name))
            self._call(DM_DEV_SUSPEND_CMD, pack_request(name=name), repr(name))
            info = self.info(name)
            if info is None:
                raise DiskImageError("device-mapper device %r vanished right after creation" % name)
            self._ensure_node(info)
        except DiskImageError as exc:
            self._discard(name)
            if exc.errno in (errno.EINVAL, errno.ENXIO, errno.ENODEV):
                # a device in the table is missing or too small, or a target unknown
                raise DiskImageError(
                    "the kernel rejected the table of device-mapper device %r (%s): %s"
                    % (name, exc.errno_name, _show_targets(targets)),
                    errno=exc.errno,
                    hint="Check that the devices exist and are large enough (the kernel log says why)")
            raise
        except BaseException:  # KeyboardInterrupt too: never leave the device half-made
            self._discard(name)
            raise
        return info

    def reload(self, name, targets, read_only=False):
        """Give the existing device ``name`` a new table (``dmsetup reload`` +
        ``dmsetup resume``); returns its DmInfo. The device keeps its name and
        number, and whoever has it open sees it change size in place.

        TABLE_LOAD makes the table the inactive one; DEV_SUSPEND without the
        suspend flag makes it live, the kernel suspending the device around
        the swap (I/O in flight completes first). A table the kernel rejects
        leaves the device as it was; one that fails to go live is cleared again.
        """
        check_name(name)
        targets = [Target(*target) for target in targets]
        if not targets:
            raise DiskImageError("device-mapper device %r needs at least one target" % name)
        try:
            self._call(DM_TABLE_LOAD_CMD,
                       pack_request(name=name, payload=pack_targets(targets), target_count=len(targets),
                                    flags=DM_READONLY_FLAG if read_only else 0),
                       repr(name))
        except DiskImageError as exc:
            if exc.errno in (errno.EINVAL, errno.ENODEV):
                raise DiskImageError(
                    "the kernel rejected the new table of device-mapper device %r (%s): %s"
                    % (name, exc.errno_name, _show_targets(targets)), errno=exc.errno,
                    hint="Check that the devices exist and are large enough (the kernel log says why)")
            raise
        try:
            self._call(DM_DEV_SUSPEND_CMD, pack_request(name=name), repr(name))
        except BaseException:
            try:
                self._call(DM_TABLE_CLEAR_CMD, pack_request(name=name), repr(name))
            except DiskImageError:
                pass  # the device is gone: nothing left to clear
            raise
        info = self.info(name)
        if info is None:
            raise DiskImageError("device-mapper device %r vanished while its table was reloaded" % name,
                                 errno=errno.ENXIO)
        return info

    def _discard(self, name):
        """Best-effort removal of a device this process just failed to set up; it
        rides out udev's probe of the new device like remove() does. The error
        that made the creation fail is the one the caller sees."""
        try:
            self.remove(name)
        except DiskImageError:
            self._remove_node(name, None)

    def remove(self, name):
        """Remove a device. Returns False when there was none.

        Refuses with EBUSY while the device is open (mounted, held by another map,
        or opened by a program), after waiting ``busy_wait`` seconds for opens that
        end by themselves, like udev's probe of a new device.
        """
        seen = []

        def removed():
            """'removed', 'gone', or None while it stays open."""
            info = self.info(name)
            seen[:] = [info]
            if info is None:
                return "gone"
            if info.open_count == 0:
                try:
                    self._call(DM_DEV_REMOVE_CMD, pack_request(name=name), repr(name))
                    return "removed"
                except DiskImageError as exc:
                    if exc.errno == errno.ENXIO:
                        return "gone"  # removed by someone else meanwhile
                    if exc.errno != errno.EBUSY:
                        raise
            return None

        outcome = wait_until(removed, self.busy_wait, interval=0.1)
        if outcome is None:
            raise self._busy_error(seen[0])
        if outcome == "gone":
            return False
        self._remove_node(name, seen[0])
        return True

    def wait_unused(self, name):
        """DmInfo once nothing has the device open, None when there is no such
        device; the same EBUSY error as remove() when it stays open."""
        seen = []

        def unused():
            seen[:] = [self.info(name)]
            return seen[0] is None or seen[0].open_count == 0

        if not wait_until(unused, self.busy_wait, interval=0.1):
            raise self._busy_error(seen[0])
        return seen[0]

    def _busy_error(self, info):
        users = []
        try:  # details only: failing to gather them must not hide the real error
            users += ["mounted at %s" % mount.mount_point
                      for mount in mountinfo.mounts_of_device(info.major, info.minor)]
        except (DiskImageError, OSError, IOError, ValueError):
            pass
        for holder in sysfs.holders(info.kernel_name, self.sys_root):
            mapped = sysfs.dm_name(holder, self.sys_root)
            users.append("held by %s" % (os.path.join(DM_DIR, mapped) if mapped else "/dev/" + holder))
        return DiskImageError(
            "device-mapper device %r (%s) is in use%s%s"
            % (info.name, os.path.join(self.dev_dir, info.name),
               ", open count %d" % info.open_count if info.open_count > 0 else "",
               ": " + ", ".join(users) if users else ""),
            errno=errno.EBUSY,
            hint="Unmount it and stop the programs or maps that use it, then retry")

    # -- /dev/mapper/NAME

    def node_path(self, name):
        return os.path.join(self.dev_dir, name)

    def _ensure_node(self, info):
        """Give the device its /dev/mapper/NAME.

        Where udev runs with device-mapper's rules, they make the name (a symlink
        to ../dm-N) shortly after the resume; give them a moment so the two do
        not race. Where none runs (containers, minimal systems) or it does not
        deliver, make a block node ourselves, as libdevmapper does, mode 0600.
        """
        path = self.node_path(info.name)
        if self.dev_dir == DM_DIR and udev_names_dm_devices():
            wait_until(lambda: self._node_matches(path, info), self.udev_wait)
        if self._node_matches(path, info):
            return path
        self._unlink_stale(path, info)
        blockdev.ensure_node(path, info.devno, mode=0o600)
        return path

    @staticmethod
    def _node_matches(path, info):
        try:
            found = os.stat(path)
        except OSError:
            return False
        return stat.S_ISBLK(found.st_mode) and found.st_rdev == os.makedev(*info.devno)

    @staticmethod
    def _unlink_stale(path, info):
        """A node of this name left from an earlier device (another dm minor, or a
        symlink to a dm-N that is gone) is stale: the name is ours now."""
        try:
            found = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(found.st_mode):
            if os.path.exists(path):
                return
        elif not (stat.S_ISBLK(found.st_mode) and os.major(found.st_rdev) == info.major):
            return  # not a dm node: leave it alone, ensure_node will report it
        try:
            os.unlink(path)
        except OSError:
            pass

    def _remove_node(self, name, info):
        """Unlink /dev/mapper/NAME after the device is gone, when it still points at
        that device (a block node we or libdm made, or udev's symlink that udev
        has not removed yet)."""
        path = self.node_path(name)
        try:
            found = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(found.st_mode):
            try:
                target = os.readlink(path)
            except OSError:
                return
            stale = not os.path.exists(path) and (
                info is None or os.path.basename(target) == info.kernel_name)
        elif stat.S_ISBLK(found.st_mode):
            stale = info is None or found.st_rdev == os.makedev(*info.devno)
            if info is None:
                # after a failed create: only a node for a dm device that no longer exists
                stale = sysfs.name_by_devno(os.major(found.st_rdev), os.minor(found.st_rdev),
                                            self.sys_root) is None
        else:
            stale = False
        if stale:
            try:
                os.unlink(path)
            except OSError:
                pass


def _show_targets(targets):
    return "; ".join("%d %d %s %s" % tuple(target) for target in targets)

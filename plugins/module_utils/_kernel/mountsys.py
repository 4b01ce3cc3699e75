# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount and unmount through the kernel's system calls, without mount(8).

``mount_fs`` mounts a filesystem with the new mount API (fsopen, fsconfig,
fsmount, move_mount; Linux 5.2+), which lets the kernel explain a refusal
("ext4: Unknown parameter 'x'", "Can't find a SQUASHFS superblock on loop3")
instead of a bare EINVAL, and falls back to mount(2) where the API is
missing. Filesystems that explain only in the kernel log ("EXT4-fs (loop3):
VFS: Can't find ext4 filesystem") are quoted from /dev/kmsg. ``remount``,
``reconfigure`` and ``apply_remount`` change options in place; ``umount``
names the processes, mounts and loop devices that keep a busy mount point.

Option strings and their comparison with mountinfo are in mountopts.py; their
names are available here too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import re

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, libc, mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.mountopts import (  # noqa: F401  # pylint: disable=unused-import
    MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_MOVE, MS_NOATIME, MS_NODEV, MS_NODIRATIME,
    MS_NOEXEC, MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
    MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE, PER_MOUNT_FLAGS,
    PROPAGATION_FLAGS, READ_ONLY_FSTYPES, MountOptions, OptionsDiff, compare_options,
    flags_from_mountinfo, parse_options, split_options)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# --- constants (include/uapi/linux/mount.h, fs.h) --------------------------

MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

FSOPEN_CLOEXEC = 1
FSPICK_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSCONFIG_CMD_RECONFIGURE = 7
MOVE_MOUNT_F_EMPTY_PATH = 4
AT_FDCWD = -100

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


# Syscall numbers of the new mount API. Since Linux 5.1 every architecture
# shares one table for new calls (asm-generic and the x86 .tbl files agree);
# alpha, ia64 and mips keep offsets of their own and are left to mount(2).
_GENERIC_SYSCALLS = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
                     "fsmount": 432, "fspick": 433}
_GENERIC_MACHINES = ("x86_64", "i386", "i486", "i586", "i686", "aarch64", "arm64", "armv6l",
                     "armv7l", "armv8l", "riscv64", "ppc64le", "ppc64", "ppc", "s390x",
                     "loongarch64")


def syscall_numbers(machine=None):
    """The new mount API's syscall numbers on ``machine`` (uname -m), or None."""
    machine = machine or os.uname()[4]
    return dict(_GENERIC_SYSCALLS) if machine in _GENERIC_MACHINES else None


# --- libc ------------------------------------------------------------------

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = libc.load()
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p]
        _libc.mount.restype = ctypes.c_int
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _libc.umount2.restype = ctypes.c_int
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _b(value):
    if value is None:
        return None
    return os.fsencode(value) if not isinstance(value, bytes) else value


class _SysError(OSError):
    """An errno from a raw call, with the call's name for the message."""

    def __init__(self, code, call):
        super(_SysError, self).__init__(code, os.strerror(code))
        self.call = call


def _check(ret, call):
    if ret < 0:
        raise _SysError(ctypes.get_errno(), call)
    return ret


def _syscall(name, *args):
    numbers = syscall_numbers()
    if numbers is None:
        raise _SysError(errno.ENOSYS, name)
    return _check(_c().syscall(ctypes.c_long(numbers[name]), *args), name)


def _fsopen(fstype):
    return _syscall("fsopen", ctypes.c_char_p(_b(fstype)), ctypes.c_uint(FSOPEN_CLOEXEC))


def _fspick(path):
    return _syscall("fspick", ctypes.c_int(AT_FDCWD), ctypes.c_char_p(_b(path)),
                    ctypes.c_uint(FSPICK_CLOEXEC))


def _fsconfig(fd, cmd, key=None, value=None):
    what = "fsconfig(%s)" % (key if key is not None else
                             {FSCONFIG_CMD_CREATE: "create",
                              FSCONFIG_CMD_RECONFIGURE: "reconfigure"}.get(cmd, cmd))
    numbers = syscall_numbers()
    if numbers is None:
        raise _SysError(errno.ENOSYS, what)
    ret = _c().syscall(ctypes.c_long(numbers["fsconfig"]), ctypes.c_int(fd), ctypes.c_uint(cmd),
                       ctypes.c_char_p(_b(key)), ctypes.c_char_p(_b(value)), ctypes.c_int(0))
    return _check(ret, what)


def _fsmount(fd, attrs):
    return _syscall("fsmount", ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                    ctypes.c_uint(attrs))


def _move_mount(mfd, target):
    return _syscall("move_mount", ctypes.c_int(mfd), ctypes.c_char_p(b""),
                    ctypes.c_int(AT_FDCWD), ctypes.c_char_p(_b(target)),
                    ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))


def read_fs_context_log(fd):
    """Messages the kernel queued on an fs_context fd, as (level, text) pairs.

    Each read() returns one message, "e text" (error), "w text" (warning) or
    "i text" (info); ENODATA means the queue is empty.
    """
    messages = []
    for dummy in range(64):  # the kernel keeps at most 8; bound the loop anyway
        try:
            raw = os.read(fd, 4096)
        except OSError:
            break
        if not raw:
            break
        text = raw.decode("utf-8", "replace").rstrip("\n")
        level, dummy, msg = text.partition(" ")
        if level in ("e", "w", "i") and msg:
            messages.append((level, msg))
        else:
            messages.append(("e", text))
    return messages


# --- errors ----------------------------------------------------------------

_MOUNT_HINTS = {
    errno.EPERM: "Mounting needs root (CAP_SYS_ADMIN in the initial user namespace)",
    errno.EACCES: "The device is read-only or access is denied; mount it with the ro option",
    errno.EROFS: "The device is read-only; mount it with the ro option",
    errno.ENOENT: "The mount point or the source does not exist",
    errno.ENOTDIR: "The mount point is not a directory",
    errno.ENOTBLK: "The source is not a block device; attach the image to a loop device first",
    errno.ENXIO: "The source device does not exist (detached loop device?)",
    errno.EBUSY: "The device is already mounted or in use, or the mount point is busy",
    errno.ENODEV: "The kernel does not support this filesystem type (not in /proc/filesystems; "
                  "load its module, or mount on a host whose kernel has it)",
    errno.EINVAL: "Wrong filesystem type, bad option, or a damaged superblock; the kernel log "
                  "(dmesg) may say which",
    errno.EUCLEAN: "The filesystem is damaged; check it with its fsck",
}


def _kernel_said(messages):
    said = [m for level, m in messages if level in ("e", "w")]
    return "; ".join(said)


def _error(what, exc, messages=(), hint=None):
    code = exc.errno
    said = _kernel_said(messages)
    name = errno.errorcode.get(code, str(code))
    msg = "%s: %s (%s)" % (what, os.strerror(code), name)
    if said:
        msg += ". Kernel: %s" % said
    # With the kernel's own reason the generic EINVAL guess only adds noise;
    # the other hints say what to do and stay.
    if hint is None and not (said and code == errno.EINVAL):
        hint = _MOUNT_HINTS.get(code)
    err = DiskImageError(msg, errno=code, hint=hint)
    err.kernel_messages = list(messages)  # (level, text) pairs, for callers to return
    err.syscall = getattr(exc, "call", None)  # which step failed, e.g. 'fsconfig(create)'
    return err


class _KernelLogTap:
    """Kernel log lines about one device, logged after this tap was opened.

    Several filesystems (ext4, xfs, erofs) explain a refused superblock only
    in the kernel log, not in the fs_context. Opening /dev/kmsg and seeking
    to its end before mounting lets a failure quote just the new lines that
    name the device. Without access to /dev/kmsg the tap stays silent.
    """

    def __init__(self, source):
        self.fd = None
        self.pattern = None
        if not source or not str(source).startswith("/dev/"):
            return
        name = os.path.basename(str(source))
        self.pattern = re.compile(r"(?<![\w])%s(?![\w])" % re.escape(name))
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.close()

    def messages(self):
        found = []
        if self.fd is None:
            return found
        for dummy in range(4096):
            try:
                record = os.read(self.fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records were overwritten; go on
                    continue
                break
            if not record:
                break
            head, dummy, text = record.decode("utf-8", "replace").partition(";")
            text = text.split("\n", 1)[0]
            try:
                level = int(head.split(",", 1)[0]) & 7
            except ValueError:
                continue
            # warnings and worse only: "mounted filesystem" notes are info
            if level <= 4 and self.pattern.search(text):
                found.append(("e" if level <= 3 else "w", text))
        return found[-8:]

    def close(self):
        if self.fd is not None:
            _close(self.fd)
            self.fd = None


def _describe(source, target, fstype):
    if fstype:
        return "Cannot mount %s on %s (type %s)" % (source, target, fstype)
    return "Cannot mount %s on %s" % (source, target)


# --- classic calls ---------------------------------------------------------

def mount(source, target, fstype=None, flags=0, data=None):
    """mount(2) as is. Raises DiskImageError with errno and a hint."""
    tap = _KernelLogTap(source if fstype and not flags & (MS_BIND | MS_MOVE | MS_REMOUNT)
                        else None)
    try:
        ret = _c().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
        if ret != 0:
            code = ctypes.get_errno()
            raise _error(_describe(source, target, fstype), _SysError(code, "mount"),
                         tap.messages())
    finally:
        tap.close()


def umount2(target, flags=0):
    """umount2(2). On EBUSY the message names what holds the mount."""
    ret = _c().umount2(_b(target), ctypes.c_int(flags))
    if ret == 0:
        return
    code = ctypes.get_errno()
    exc = _SysError(code, "umount2")
    hint = None
    if code == errno.EBUSY:
        hint = holders.busy_report(target)
    elif code == errno.EINVAL:
        hint = "%s is not a mount point (or flags are invalid)" % target
    elif code == errno.EPERM:
        hint = "Unmounting needs root (CAP_SYS_ADMIN)"
    raise _error("Cannot unmount %s" % target, exc, hint=hint)


umount = umount2


def remount(target, flags=0, data=None, bind=False):
    """mount(2) with MS_REMOUNT (| MS_BIND when ``bind``).

    With ``bind`` only per-mount flags change (ro, nosuid, nodev, noexec,
    atime): the complete per-mount set must be passed, since the kernel
    replaces it (atime flags are kept when none is given). Without it the
    superblock is reconfigured with ``data`` as well.
    """
    flags = (flags & ~(MS_BIND | MS_REMOUNT)) | MS_REMOUNT | (MS_BIND if bind else 0)
    ret = _c().mount(None, _b(target), None, ctypes.c_ulong(flags), _b(data))
    if ret != 0:
        code = ctypes.get_errno()
        raise _error("Cannot remount %s" % target, _SysError(code, "mount"),
                     hint=_reconfigure_hint(target, code))


def set_propagation(target, flag):
    """Make ``target`` shared, private, slave or unbindable (MS_* | MS_REC)."""
    ret = _c().mount(None, _b(target), None, ctypes.c_ulong(flag), None)
    if ret != 0:
        raise _error("Cannot change propagation of %s" % target,
                     _SysError(ctypes.get_errno(), "mount"))


# --- new mount API ---------------------------------------------------------

_SB_FLAG_NAMES = ((MS_RDONLY, "ro"), (MS_SYNCHRONOUS, "sync"), (MS_DIRSYNC, "dirsync"),
                  (MS_LAZYTIME, "lazytime"), (MS_MANDLOCK, "mand"), (MS_SILENT, "silent"))
_SB_CLEAR_NAMES = ((MS_RDONLY, "rw"), (MS_SYNCHRONOUS, "async"), (MS_LAZYTIME, "nolazytime"),
                   (MS_MANDLOCK, "nomand"))


def mount_attrs(flags):
    """MS_* per-mount flags as fsmount()'s MOUNT_ATTR_* bits."""
    attrs = 0
    for ms, attr in ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID),
                     (MS_NODEV, MOUNT_ATTR_NODEV), (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
                     (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
                     (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW)):
        if flags & ms:
            attrs |= attr
    # relatime is the zero value of the atime field; noatime beats strictatime
    # as it does in mount(2).
    if flags & MS_NOATIME:
        attrs |= MOUNT_ATTR_NOATIME
    elif flags & MS_STRICTATIME:
        attrs |= MOUNT_ATTR_STRICTATIME
    return attrs


def _config_data(fd, data):
    for opt in split_options(data):
        key, eq, value = opt.partition("=")
        if eq:
            _fsconfig(fd, FSCONFIG_SET_STRING, key, value)
        else:
            _fsconfig(fd, FSCONFIG_SET_FLAG, key)


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def _new_api_mount(source, target, fstype, flags, data):
    try:
        fd = _fsopen(fstype)
    except _SysError as exc:
        raise _error(_describe(source, target, fstype), exc)
    tap = _KernelLogTap(source)
    try:
        try:
            if source is not None:
                _fsconfig(fd, FSCONFIG_SET_STRING, "source", source)
            for bit, name in _SB_FLAG_NAMES:
                if flags & bit:
                    _fsconfig(fd, FSCONFIG_SET_FLAG, name)
            _config_data(fd, data)
            _fsconfig(fd, FSCONFIG_CMD_CREATE)
            mfd = _fsmount(fd, mount_attrs(flags))
            try:
                _move_mount(mfd, target)
            finally:
                _close(mfd)
            return read_fs_context_log(fd)
        except _SysError as exc:
            said = read_fs_context_log(fd)
            if not any(level in ("e", "w") for level, dummy in said):
                said.extend(tap.messages())
            raise _error(_describe(source, target, fstype), exc, said)
    finally:
        tap.close()
        _close(fd)


def new_api_available():
    """True when this kernel answers fsopen() (probed with a bogus type)."""
    try:
        fd = _fsopen("diskimage-probe-nonexistent")
    except _SysError as exc:
        return exc.errno != errno.ENOSYS
    _close(fd)
    return True


def mount_fs(source, target, fstype, flags=0, data=None, new_api=None):
    """Mount filesystem ``fstype`` from ``source`` on ``target``.

    ``flags`` are MS_* bits (superblock and per-mount ones; no bind, move or
    propagation), ``data`` the filesystem's comma-separated options. The new
    mount API is used when the kernel has it (``new_api`` None or True) so
    errors carry the kernel's reason; on ENOSYS it falls back to mount(2),
    unless new_api is True. Returns a dict: ``api`` ('fsmount' or 'mount')
    and ``messages``, the kernel's warnings and notes as (level, text).
    """
    if flags & (MS_BIND | MS_MOVE | MS_REMOUNT | PROPAGATION_FLAGS):
        raise ValueError("mount_fs() mounts a new filesystem; use mount() for bind, move, "
                         "remount and propagation changes")
    if new_api is not False:
        try:
            messages = _new_api_mount(source, target, fstype, flags, data)
            return {"api": "fsmount", "messages": messages}
        except DiskImageError as exc:
            if exc.errno != errno.ENOSYS or new_api:
                raise
    mount(source, target, fstype, flags, data or None)
    return {"api": "mount", "messages": []}


def reconfigure(target, set_flags=0, clear_flags=0, data=None, new_api=None):
    """Change superblock flags (ro/rw, sync, dirsync, lazytime) and options.

    Uses fspick()+fsconfig(RECONFIGURE) so a refusal carries the kernel's
    reason; without the new API it is MS_REMOUNT through mount(2), which
    also resets per-mount flags, so the current ones are passed along.
    Returns the kernel's messages.
    """
    if new_api is not False:
        try:
            fd = _fspick(target)
        except _SysError as exc:
            if exc.errno != errno.ENOSYS or new_api:
                raise _error("Cannot reconfigure %s" % target, exc)
        else:
            try:
                try:
                    for bit, name in _SB_FLAG_NAMES:
                        if set_flags & bit:
                            _fsconfig(fd, FSCONFIG_SET_FLAG, name)
                    for bit, name in _SB_CLEAR_NAMES:
                        if clear_flags & bit:
                            _fsconfig(fd, FSCONFIG_SET_FLAG, name)
                    _config_data(fd, data)
                    _fsconfig(fd, FSCONFIG_CMD_RECONFIGURE)
                    return read_fs_context_log(fd)
                except _SysError as exc:
                    raise _error("Cannot reconfigure %s" % target, exc, read_fs_context_log(fd),
                                 hint=_reconfigure_hint(target, exc.errno))
            finally:
                _close(fd)
    current = mountinfo.top_mount_at(target)
    if current is None:
        raise DiskImageError("Cannot reconfigure %s: nothing is mounted there" % target,
                             errno=errno.EINVAL)
    # One legacy call sets superblock and per-mount flags together: start
    # from what both are now, so only the requested change happens (a mount
    # that is ro on its own stays ro unless rw was asked for).
    sb_bits = MS_RDONLY | MS_SYNCHRONOUS | MS_DIRSYNC | MS_LAZYTIME | MS_MANDLOCK
    now = (flags_from_mountinfo(current.mount_options) & PER_MOUNT_FLAGS) | \
        (flags_from_mountinfo(current.super_options) & sb_bits)
    remount(target, (now | set_flags) & ~clear_flags, data)
    return []


def _reconfigure_hint(target, code):
    if code == errno.EBUSY:
        # Going read-only fails while files are open for writing.
        return holders.busy_report(target)
    return None


def mount_with_options(source, target, fstype, opts=None, new_api=None):
    """Mount as mount(8) would with ``-t fstype -o opts``: filesystem or bind.

    Bind mounts go through mount(2) (and a bind remount when per-mount flags
    were asked for, as the kernel ignores them on the first call); the
    propagation type, if given, is applied last. Returns mount_fs()'s dict.
    """
    mo = parse_options(opts)
    if mo.bind:
        mount(source, target, None, mo.mount_flags)
        if mo.flags & PER_MOUNT_FLAGS:
            remount(target, mo.flags & PER_MOUNT_FLAGS, bind=True)
        result = {"api": "mount", "messages": []}
    else:
        result = mount_fs(source, target, fstype, mo.flags, mo.data_string, new_api=new_api)
    if mo.propagation:
        set_propagation(target, mo.propagation)
    return result


def apply_remount(target, diff, new_api=None):
    """Carry out an OptionsDiff on the mount at ``target``.

    Superblock changes go first (reconfigure), then the per-mount flags with
    MS_REMOUNT|MS_BIND, which touches only this mount. Returns the kernel's
    messages.
    """
    messages = []
    if diff.needs_reconfigure:
        messages.extend(reconfigure(target, diff.sb_set, diff.sb_clear,
                                    ",".join(diff.data) or None, new_api=new_api))
    if diff.mount_flags is not None:
        remount(target, diff.mount_flags & PER_MOUNT_FLAGS, bind=True)
    return messages

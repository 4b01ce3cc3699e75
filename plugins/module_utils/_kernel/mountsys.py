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

Option strings are split the way mount(8) splits them: flags such as ro,
nosuid, noatime become MS_* bits, userspace-only words such as noauto or
nofail are set aside, and the rest is the filesystem's own data.
``compare_options`` decides whether a mount already satisfies requested
options and what a remount must change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import os
import re

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# --- constants (include/uapi/linux/mount.h, fs.h) --------------------------

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

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

# Flags that belong to one mount (vfsmount), not to the filesystem.
PER_MOUNT_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
                   | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)
_ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
PROPAGATION_FLAGS = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE

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
        name = ctypes.util.find_library("c")
        # CDLL(None) is the running program, which links libc on glibc and musl.
        _libc = ctypes.CDLL(name, use_errno=True) if name else ctypes.CDLL(None, use_errno=True)
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


# --- option strings --------------------------------------------------------

def split_options(opts):
    """Split 'a,b="x,y",c' at commas outside double quotes, dropping empties."""
    if not opts:
        return []
    if isinstance(opts, (list, tuple)):
        return [o for o in opts if o]
    out = []
    cur = []
    quoted = False
    for ch in opts:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [o for o in (s.strip() for s in out) if o]


# option -> (bit, set?) ; the atime family is handled as one choice.
_FLAG_OPTIONS = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True), "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "mand": (MS_MANDLOCK, True), "nomand": (MS_MANDLOCK, False),
    "nodiratime": (MS_NODIRATIME, True), "diratime": (MS_NODIRATIME, False),
    "lazytime": (MS_LAZYTIME, True), "nolazytime": (MS_LAZYTIME, False),
    "silent": (MS_SILENT, True), "loud": (MS_SILENT, False),
    "nosymfollow": (MS_NOSYMFOLLOW, True), "symfollow": (MS_NOSYMFOLLOW, False),
    "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
    "relatime": (MS_RELATIME, True), "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True), "nostrictatime": (MS_STRICTATIME, False),
}
_PROPAGATION = {
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
# Words only mount(8), fstab and systemd read; the kernel must not see them.
_USERSPACE = frozenset(("defaults", "auto", "noauto", "user", "nouser", "users", "owner",
                        "group", "nofail", "_netdev", "_rnetdev", "loop", "nobootwait"))
_USERSPACE_PREFIXES = ("x-", "X-", "comment=", "loop=", "offset=", "sizelimit=",
                       "encryption=", "helper=", "uhelper=", "user=")


class MountOptions:
    """A user's option string split like mount(8) splits it: the one mount
    options class, from the syscalls up to image_mount's request.

    ``words``: the words in order (for fstab and the result); ``flags``: MS_*
    bits to set; ``cleared``: bits explicitly turned off (rw, suid, exec...);
    ``explicit``: the flag words given, last one per family winning;
    ``data``: filesystem options in order; ``userspace``: words for
    mount(8)/fstab only; ``bind``/``recursive``: a bind mount;
    ``propagation``: MS_SHARED/PRIVATE/SLAVE/UNBINDABLE (| MS_REC) or 0;
    ``explicit_ro``: read-only because it was asked for, not only because
    the filesystem cannot be written (whoever knows the filesystem sets it).
    """

    def __init__(self, opts=None):
        self.words = split_options(opts)
        self.flags = 0
        self.cleared = 0
        self.explicit = {}
        self.data = []
        self.userspace = []
        self.bind = False
        self.recursive = False
        self.propagation = 0
        for opt in self.words:
            self._add(opt)
        self.explicit_ro = self.read_only

    def _add(self, opt):
        if opt in _FLAG_OPTIONS:
            bit, on = _FLAG_OPTIONS[opt]
            if bit & _ATIME_FLAGS and on:
                # One atime policy at a time: the last word given wins.
                self.flags &= ~_ATIME_FLAGS
                self.cleared |= _ATIME_FLAGS & ~bit
            if on:
                self.flags |= bit
                self.cleared &= ~bit
            else:
                self.flags &= ~bit
                self.cleared |= bit
            self.explicit[bit] = opt
        elif opt in ("bind", "rbind"):
            self.bind = True
            self.recursive = opt == "rbind"
        elif opt in _PROPAGATION:
            self.propagation = _PROPAGATION[opt]
        elif opt in _USERSPACE or opt.startswith(_USERSPACE_PREFIXES):
            self.userspace.append(opt)
        else:
            self.data.append(opt)

    @property
    def read_only(self):
        return bool(self.flags & MS_RDONLY)

    @property
    def string(self):
        """The words as one option string, as fstab and the result show it."""
        return ",".join(self.words)

    def kernel_words(self):
        """The words mount(2) acts on (without fstab-only ones like noauto)."""
        userspace = set(self.userspace)
        return [w for w in self.words if w not in userspace]

    @property
    def data_string(self):
        """The filesystem data for mount(2): the options the kernel parses."""
        return ",".join(self.data) or None

    @property
    def mount_flags(self):
        """MS_* bits for mount(2) of a new filesystem or bind mount."""
        flags = self.flags
        if self.bind:
            flags |= MS_BIND | (MS_REC if self.recursive else 0)
        return flags

    def __repr__(self):
        return "MountOptions(flags=%#x, data=%r, userspace=%r)" % (
            self.flags, self.data, self.userspace)


def parse_options(opts):
    """``opts`` (a string like 'ro,noatime,errors=remount-ro' or a list) split."""
    return opts if isinstance(opts, MountOptions) else MountOptions(opts)


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


# --- comparing and remounting ----------------------------------------------

# Filesystems the kernel mounts read-only whatever is asked; rw is no
# reasonable default for them.
READ_ONLY_FSTYPES = frozenset(("squashfs", "squashfs3", "erofs", "iso9660", "cramfs", "romfs"))

# mountinfo words -> MS_* bits, for both option fields.
_SHOWN = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
          "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME,
          "nosymfollow": MS_NOSYMFOLLOW, "sync": MS_SYNCHRONOUS, "dirsync": MS_DIRSYNC,
          "mand": MS_MANDLOCK, "lazytime": MS_LAZYTIME}


def flags_from_mountinfo(words):
    """MS_* bits shown in a mountinfo option field (list or comma string)."""
    if isinstance(words, str):
        words = words.split(",")
    flags = 0
    for w in words:
        flags |= _SHOWN.get(w, 0)
    return flags


def _per_mount_now(mount_options):
    flags = flags_from_mountinfo(mount_options) & PER_MOUNT_FLAGS
    if not flags & (MS_NOATIME | MS_RELATIME):
        flags |= MS_STRICTATIME  # neither shown means strictatime
    return flags


class OptionsDiff:
    """What ``compare_options`` found.

    ``satisfied``: nothing to change. ``mismatches``: human-readable
    differences. ``unverifiable``: filesystem options the kernel does not
    show (often because they are the default), assumed satisfied.
    ``mount_flags``: the complete per-mount MS_* set for a bind remount, or
    None when per-mount flags are fine. ``sb_set``/``sb_clear``: superblock
    flags to change, ``data``: filesystem options to pass on reconfigure.
    """

    def __init__(self):
        self.mismatches = []
        self.unverifiable = []
        self.mount_flags = None
        self.sb_set = 0
        self.sb_clear = 0
        self.data = []

    @property
    def satisfied(self):
        return not self.mismatches

    @property
    def needs_reconfigure(self):
        return bool(self.sb_set or self.sb_clear or self.data)

    def __repr__(self):
        return "OptionsDiff(mismatches=%r)" % (self.mismatches,)


def _data_index(super_options):
    shown = {}
    for w in super_options:
        key, eq, value = w.partition("=")
        shown[key] = value if eq else None
    return shown


def compare_options(requested, mount_options, super_options, fstype=None,
                    implicit_defaults=True):
    """Does a mount with these mountinfo fields satisfy ``requested``?

    ``requested`` is an option string or MountOptions; ``mount_options`` and
    ``super_options`` come from mountinfo (lists or comma strings). With
    ``implicit_defaults`` the defaults of mount(8) (rw, suid, dev, exec)
    count as requested unless the string says otherwise, so dropping 'ro'
    from a task makes the mount rw again; rw is not implied for filesystems
    that are read-only by nature (squashfs, erofs, iso9660...).
    Atime, sync and filesystem options are compared only when given.
    """
    req = parse_options(requested)
    if isinstance(mount_options, str):
        mount_options = mount_options.split(",")
    if isinstance(super_options, str):
        super_options = super_options.split(",")
    diff = OptionsDiff()
    per_mount = _per_mount_now(mount_options)
    sb_flags = flags_from_mountinfo(super_options)
    want = per_mount

    # read-only / read-write
    wants_ro = bool(req.flags & MS_RDONLY)
    wants_rw = bool(req.cleared & MS_RDONLY) or (
        implicit_defaults and not wants_ro and fstype not in READ_ONLY_FSTYPES)
    if wants_ro and not (per_mount & MS_RDONLY or sb_flags & MS_RDONLY):
        diff.mismatches.append("ro (mounted rw)")
        want |= MS_RDONLY
        diff.sb_set |= MS_RDONLY
    if wants_rw and (per_mount & MS_RDONLY or sb_flags & MS_RDONLY):
        diff.mismatches.append("rw (mounted ro)")
        want &= ~MS_RDONLY
        if sb_flags & MS_RDONLY:
            diff.sb_clear |= MS_RDONLY

    # per-mount security flags: defaults are suid, dev, exec
    for bit, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
                      (MS_NOSYMFOLLOW, "nosymfollow"), (MS_NODIRATIME, "nodiratime")):
        implied_off = implicit_defaults and bit in (MS_NOSUID, MS_NODEV, MS_NOEXEC)
        if req.flags & bit and not per_mount & bit:
            diff.mismatches.append("%s (not set)" % name)
            want |= bit
        elif (req.cleared & bit or (implied_off and not req.flags & bit)) and per_mount & bit:
            diff.mismatches.append("%s (mounted %s)" % (name[2:], name))
            want &= ~bit

    # atime policy, only when asked
    asked_atime = req.flags & _ATIME_FLAGS
    if asked_atime and not per_mount & asked_atime:
        word = {MS_NOATIME: "noatime", MS_RELATIME: "relatime",
                MS_STRICTATIME: "strictatime"}[asked_atime]
        diff.mismatches.append("%s (atime policy differs)" % word)
        want = (want & ~_ATIME_FLAGS) | asked_atime
    elif req.cleared & MS_NOATIME and per_mount & MS_NOATIME and not asked_atime:
        diff.mismatches.append("atime (mounted noatime)")
        want = (want & ~_ATIME_FLAGS) | MS_RELATIME

    if want != per_mount:
        diff.mount_flags = want

    # superblock flags
    for bit, on_word, off_word in ((MS_SYNCHRONOUS, "sync", "async"),
                                   (MS_DIRSYNC, "dirsync", None),
                                   (MS_LAZYTIME, "lazytime", "nolazytime"),
                                   (MS_MANDLOCK, "mand", "nomand")):
        if req.flags & bit and not sb_flags & bit:
            diff.mismatches.append("%s (not set)" % on_word)
            diff.sb_set |= bit
        elif req.cleared & bit and sb_flags & bit and off_word:
            diff.mismatches.append("%s (mounted %s)" % (off_word, on_word))
            diff.sb_clear |= bit

    # filesystem options, as far as the filesystem shows them
    shown = _data_index(super_options)
    for opt in req.data:
        key, eq, value = opt.partition("=")
        if eq:
            if key not in shown:
                diff.unverifiable.append(opt)
            elif shown[key] != value:
                diff.mismatches.append("%s (mounted %s)" % (
                    opt, key if shown[key] is None else "%s=%s" % (key, shown[key])))
                diff.data.append(opt)
        else:
            negation = key[2:] if key.startswith("no") else "no" + key
            if key in shown:
                continue
            if negation in shown:
                diff.mismatches.append("%s (mounted %s)" % (key, negation))
                diff.data.append(opt)
            else:
                diff.unverifiable.append(opt)
    return diff


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

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount option strings and what the kernel shows of them, without any system call.

Option strings are split the way mount(8) splits them: flags such as ro,
nosuid, noatime become MS_* bits, userspace-only words such as noauto or
nofail are set aside, and the rest is the filesystem's own data.
``compare_options`` decides whether a mount already satisfies requested
options and what a remount must change.

Kept apart from mountsys.py (the system calls) because a run that finds its
mount already right needs only this, and modules pay for every line they
import (Ansible ships module_utils as source, compiled again on every task).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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

# Flags that belong to one mount (vfsmount), not to the filesystem.
PER_MOUNT_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
                   | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)
_ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
PROPAGATION_FLAGS = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE


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

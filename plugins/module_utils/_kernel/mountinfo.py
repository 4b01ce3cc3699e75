# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount tables: what the kernel has mounted, and what /etc/fstab declares.

The first half reads /proc/self/mountinfo into records and answers "what is
mounted at PATH" (the top-most of stacked mounts), "where is device MAJ:MIN
mounted" and "what is mounted below PATH". Parsers take text, so tests feed
fixtures.

The second half edits fstab-format files: it keeps comments, blank lines and
lines it does not understand byte for byte, changes only the entry for one
mount point, and writes atomically, returning the text before and after so a
module can show a diff.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MOUNTINFO = "/proc/self/mountinfo"

# The kernel (and fstab) write space, tab, newline and backslash as \ooo.
_OCTAL = re.compile(r"\\([0-7]{3})")
_ESCAPE = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


def unescape(field):
    """Decode the \\ooo escapes of a mountinfo or fstab field."""
    if "\\" not in field:
        return field
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def escape(field):
    """Encode a value for an fstab (or mountinfo-style) field."""
    return "".join(_ESCAPE.get(c, c) for c in field)


def _norm(path):
    # Mount points are compared as the kernel prints them: absolute, no
    # trailing slash, no '.' or '..'. Symlinks are the caller's business.
    return os.path.normpath(path) if path.startswith("/") else path


class MountInfo:
    """One line of /proc/PID/mountinfo."""

    __slots__ = ("mount_id", "parent_id", "major", "minor", "root", "mount_point",
                 "mount_options", "optional_fields", "fstype", "source", "super_options")

    def __init__(self, mount_id, parent_id, major, minor, root, mount_point, mount_options,
                 optional_fields, fstype, source, super_options):
        self.mount_id = mount_id
        self.parent_id = parent_id
        self.major = major
        self.minor = minor
        self.root = root
        self.mount_point = mount_point
        self.mount_options = mount_options      # list: per-mount flags (rw, nosuid, relatime...)
        self.optional_fields = optional_fields  # list: shared:N, master:N, propagate_from:N, unbindable
        self.fstype = fstype
        self.source = source
        self.super_options = super_options      # list: superblock flags and filesystem options

    @property
    def device(self):
        return (self.major, self.minor)

    @property
    def read_only(self):
        """True when writes through this mount fail (mount or superblock ro)."""
        return "ro" in self.mount_options or "ro" in self.super_options

    def to_dict(self):
        """Plain data for a module's return value."""
        return {
            "mount_id": self.mount_id,
            "parent_id": self.parent_id,
            "device": "%d:%d" % (self.major, self.minor),
            "root": self.root,
            "mount_point": self.mount_point,
            "mount_options": ",".join(self.mount_options),
            "optional_fields": list(self.optional_fields),
            "fstype": self.fstype,
            "source": self.source,
            "super_options": ",".join(self.super_options),
        }

    def __repr__(self):
        return "MountInfo(%d %s on %s type %s)" % (
            self.mount_id, self.source, self.mount_point, self.fstype)


def parse_mountinfo_line(line):
    """One mountinfo line to a MountInfo; ValueError when malformed."""
    fields = line.rstrip("\n").split(" ")
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise ValueError("no '-' separator in mountinfo line: %r" % line)
    if len(fields) - sep < 3:
        raise ValueError("too few fields in mountinfo line: %r" % line)
    major, dummy, minor = fields[2].partition(":")
    # Super options are absent on some very old kernels; a source may be
    # empty. Both are tolerated rather than dropping the mount.
    super_opts = fields[sep + 3] if len(fields) > sep + 3 else ""
    return MountInfo(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        major=int(major),
        minor=int(minor),
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        mount_options=fields[5].split(",") if fields[5] else [],
        optional_fields=[f for f in fields[6:sep] if f],
        fstype=unescape(fields[sep + 1]),
        source=unescape(fields[sep + 2]),
        super_options=super_opts.split(",") if super_opts else [],
    )


def parse_mountinfo(text):
    """All mounts in mountinfo ``text``, in file order (oldest first)."""
    return [parse_mountinfo_line(line) for line in text.splitlines() if line.strip()]


def read_mountinfo(path=MOUNTINFO):
    """Parse the current process's mount table."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("Cannot read %s" % path, exc,
                                          hint="Is /proc mounted?")
    # Paths are bytes to the kernel; keep undecodable ones round-trippable.
    return parse_mountinfo(raw.decode("utf-8", "surrogateescape"))


def _table(entries):
    return read_mountinfo() if entries is None else entries


def mounts_at(path, entries=None):
    """Every mount whose mount point is ``path``, in file order."""
    path = _norm(path)
    return [m for m in _table(entries) if m.mount_point == path]


def top_mount_at(path, entries=None):
    """The mount visible at ``path`` (the top of a stack), or None.

    When mounts are stacked on one point, the visible one is the mount that
    no other mount at that point sits on; mountinfo normally lists it last,
    which is the fallback when propagation has muddled the parent links.
    """
    here = mounts_at(path, entries)
    if not here:
        return None
    ids_under_others = set(m.parent_id for m in here)
    tops = [m for m in here if m.mount_id not in ids_under_others]
    return tops[-1] if tops else here[-1]


def mounts_of_device(major, minor, entries=None):
    """Every mount of block device ``major:minor``, in file order."""
    return [m for m in _table(entries) if m.major == major and m.minor == minor]


def mounts_under(path, entries=None, include_self=True):
    """Mounts at or below ``path``, in file order.

    reversed() of the result is a safe unmount order: children come after
    their parents in mountinfo.
    """
    path = _norm(path)
    prefix = path.rstrip("/") + "/"
    found = []
    for m in _table(entries):
        if m.mount_point == path:
            if include_self:
                found.append(m)
        elif m.mount_point.startswith(prefix):
            found.append(m)
    return found


def mount_containing(path, entries=None):
    """The mount a path lives on: the deepest mount point above it, topmost."""
    path = _norm(path)
    entries = _table(entries)
    best = None
    for m in entries:
        mp = m.mount_point
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(best.mount_point):
                best = m
    return None if best is None else top_mount_at(best.mount_point, entries)


# --- fstab -----------------------------------------------------------------

class FstabEntry:
    """The six fields of an fstab line, unescaped."""

    __slots__ = ("source", "target", "fstype", "options", "freq", "passno")

    def __init__(self, source, target, fstype="auto", options="defaults", freq=0, passno=0):
        self.source = source
        self.target = target
        self.fstype = fstype or "auto"
        self.options = options or "defaults"
        self.freq = int(freq)
        self.passno = int(passno)

    def render(self):
        """The entry as one fstab line, without the newline."""
        return "%s %s %s %s %d %d" % (escape(self.source), escape(self.target),
                                      escape(self.fstype), escape(self.options),
                                      self.freq, self.passno)

    def same_target(self, target):
        return _norm(self.target) == _norm(target)

    def _key(self):
        return (self.source, _norm(self.target), self.fstype, self.options, self.freq,
                self.passno)

    def __eq__(self, other):
        return isinstance(other, FstabEntry) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def to_dict(self):
        return {"source": self.source, "target": self.target, "fstype": self.fstype,
                "options": self.options, "freq": self.freq, "passno": self.passno}

    def __repr__(self):
        return "FstabEntry(%r)" % self.render()


class FstabLine:
    """A line as read (``raw``, with its line ending) and its entry, if any."""

    __slots__ = ("raw", "entry")

    def __init__(self, raw, entry=None):
        self.raw = raw
        self.entry = entry


def parse_fstab_line(raw):
    """An FstabEntry for an entry line; None for comments, blanks, oddities."""
    text = raw.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    if not 3 <= len(fields) <= 6:
        return None
    numbers = fields[4:6]
    if not all(n.isdigit() for n in numbers):
        return None
    fields = [unescape(f) for f in fields[:4]] + [int(n) for n in numbers]
    return FstabEntry(*fields)


def parse_fstab(text):
    """``text`` as a list of FstabLine, keeping every line as it was."""
    return [FstabLine(raw, parse_fstab_line(raw)) for raw in text.splitlines(True)]


def render_fstab(lines):
    return "".join(line.raw for line in lines)


def find_fstab_entries(text_or_lines, target):
    """Entries for mount point ``target``, in file order."""
    lines = parse_fstab(text_or_lines) if isinstance(text_or_lines, str) else text_or_lines
    return [line.entry for line in lines if line.entry is not None and line.entry.same_target(target)]


def set_fstab_entry(text, entry):
    """``text`` with ``entry`` as the one line for its mount point.

    The first line for that mount point is replaced in place (kept byte for
    byte when it already says the same thing); later lines for the same
    mount point are dropped, since two entries make the intent ambiguous.
    With none, the entry is appended.
    """
    lines = parse_fstab(text)
    out = []
    placed = False
    for line in lines:
        if line.entry is None or not line.entry.same_target(entry.target):
            out.append(line)
            continue
        if placed:
            continue
        placed = True
        if line.entry == entry:
            out.append(line)
        else:
            ending = line.raw[len(line.raw.rstrip("\r\n")):] or "\n"
            out.append(FstabLine(entry.render() + ending, entry))
    if not placed:
        if out and not out[-1].raw.endswith("\n"):
            out[-1] = FstabLine(out[-1].raw + "\n", out[-1].entry)
        out.append(FstabLine(entry.render() + "\n", entry))
    return render_fstab(out)


def remove_fstab_entry(text, target):
    """``text`` without any line for mount point ``target``."""
    return render_fstab([line for line in parse_fstab(text)
                         if line.entry is None or not line.entry.same_target(target)])


def read_text(path):
    """A file's text, '' when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return ""
        raise DiskImageError.from_oserror("Cannot read %s" % path, exc)


def write_file_atomic(path, text, default_mode=0o644):
    """Replace ``path`` with ``text`` so readers see the old or new file, never half.

    A temporary file beside the target is written, synced, given the old
    file's mode, owner and SELinux label, and renamed over it. A symlinked
    path is followed, so the link stays a link.
    """
    path = os.path.realpath(path)
    directory = os.path.dirname(path)
    try:
        old = os.stat(path)
    except OSError:
        old = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    except OSError as exc:
        raise DiskImageError.from_oserror("Cannot create a temporary file in %s" % directory, exc)
    try:
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
            os.fchmod(fd, old.st_mode & 0o7777 if old else default_mode)
            if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, old.st_uid, old.st_gid)
            if old is not None:
                _copy_selinux_label(path, fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DiskImageError.from_oserror("Cannot write %s" % path, exc)
    _fsync_dir(directory)


def _copy_selinux_label(src, fd):
    # mkstemp files get the directory's default label, which for /etc/fstab
    # is not etc_t everywhere; carry the old label over when there is one.
    getx = getattr(os, "getxattr", None)
    if getx is None:
        return
    try:
        label = getx(src, "security.selinux")
        os.setxattr(fd, "security.selinux", label)
    except OSError:
        pass


def _fsync_dir(directory):
    # The rename is durable only once the directory entry is on disk.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def update_fstab(path, target, entry=None, check_mode=False):
    """Make ``path`` hold ``entry`` for ``target`` (or nothing when entry is None).

    Returns a dict: ``changed``, ``before`` and ``after`` texts (for a diff)
    and ``entries`` (what the file now says for ``target``). In check mode
    nothing is written.
    """
    if entry is not None and not entry.same_target(target):
        raise ValueError("entry is for %s, not %s" % (entry.target, target))
    before = read_text(path)
    after = remove_fstab_entry(before, target) if entry is None else set_fstab_entry(before, entry)
    changed = after != before
    if changed and not check_mode:
        write_file_atomic(path, after)
    return {
        "changed": changed,
        "before": before,
        "after": after,
        "entries": [e.to_dict() for e in find_fstab_entries(after, target)],
    }

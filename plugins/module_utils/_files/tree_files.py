# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declared files (entries.py) against an image tree mounted at ``root``.

``plan`` compares and returns, per entry, what it would change, in words and
as a diff, with the action that does it; nothing is touched until the actions
run. Paths are resolved as a chroot into the tree would resolve them
(_tree/paths.py), so an image's absolute link never leads a write to the host.
A file is replaced by a rename of a complete new file, so a run killed in the
middle leaves either the old content or the new one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._files import entries as files_entries
from ansible_collections.diskimage.loop.plugins.module_utils._files.owners import Accounts
from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

DIFF_LIMIT = 64 * 1024
TEMP_MARK = ".diskimage-files."


def read_accounts(root):
    """The image's users and groups, from its /etc/passwd and /etc/group."""
    texts = []
    for name in ("/etc/passwd", "/etc/group"):
        try:
            with open(paths.resolve_in(root, name), "rb") as handle:
                texts.append(handle.read().decode("utf-8", "replace"))
        except (IOError, OSError):
            texts.append("")
    return Accounts(*texts)


def _shown(data):
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT or b"\0" in data:
        return "[%d bytes, not shown]\n" % len(data)
    return data.decode("utf-8", "replace")


def _attrs(info):
    return None if info is None else (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def _words(attrs):
    return "mode %04o, owner %d, group %d" % attrs


class Change(object):
    """One entry's difference: words, a diff, and the actions that remove it."""

    def __init__(self, path, state, planned=None):
        self.path, self.state = path, state
        self.planned = planned if planned is not None else set()  # directories earlier changes create
        self.actions = []  # words
        self.steps = []    # callables, in order
        self.diff = None

    def show(self, before, after):
        """The diff of this entry: texts, or words for what is not a file's content."""
        self.diff = {"before_header": self.path, "after_header": self.path, "before": before, "after": after}

    def add(self, words, step):
        self.actions.append(words)
        self.steps.append(step)

    def apply(self):
        for step in self.steps:
            step()

    def result(self):
        return {"path": self.path, "state": self.state, "changed": bool(self.actions), "actions": list(self.actions)}


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise DiskImageError.from_oserror("cannot look at %s" % path, exc)


def _set_attrs(host, mode, uid, gid):
    os.chown(host, uid, gid, follow_symlinks=False)
    os.chmod(host, mode)  # after chown, which clears setuid bits


def _write_new(host, data, mode, uid, gid):
    """A complete file under a temporary name, then renamed over ``host``."""
    directory, name = os.path.split(host)
    temp = os.path.join(directory, "%s%s%s" % (TEMP_MARK, name, os.urandom(4).hex()))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(temp, host)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def _missing_parents(root, path, planned=()):
    """The image paths of the directories above ``path`` that do not exist yet
    (and are not in ``planned``), outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent not in ("/", "") and parent not in planned:
        info = _lstat(paths.resolve_in(root, parent))
        if info is not None:
            if not stat.S_ISDIR(info.st_mode):
                raise DiskImageError("%s is in the image, but not a directory: cannot create %s in it" % (parent, path))
            break
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    return missing


def _make_parents(change, root, path):
    for parent in _missing_parents(root, path, change.planned):
        change.planned.add(parent)
        change.add("create directory %s" % parent,
                   lambda parent=parent: _mkdir(paths.resolve_in(root, parent), 0o755, 0, 0))


def _mkdir(host, mode, uid, gid):
    try:
        os.mkdir(host, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise DiskImageError.from_oserror("cannot create %s" % host, exc)
    _set_attrs(host, mode, uid, gid)


def _wanted_attrs(entry, accounts, info):
    current = _attrs(info)
    mode = entry["mode"] if entry["mode"] is not None else (
        current[0] if current else files_entries.DEFAULT_MODES[entry["state"]])
    uid = accounts.uid(entry["owner"])
    gid = accounts.gid(entry["group"], entry["owner"])
    uid = uid if uid is not None else (current[1] if current else 0)
    gid = gid if gid is not None else (current[2] if current else 0)
    return mode, uid, gid


def _read(host, info):
    if info is None:
        return None
    with open(host, "rb") as handle:
        return handle.read()


def _look(root, entry, is_kind, kind_words, hint):
    """The host path of the entry's path and its lstat (None: missing); a path of
    another kind is refused."""
    host = paths.resolve_in(root, entry["path"])
    info = _lstat(host)
    if info is not None and not is_kind(info.st_mode):
        raise DiskImageError("%s is in the image, but not %s" % (entry["path"], kind_words), hint=hint)
    return host, info


def _plan_content(change, root, entry, accounts):
    host, info = _look(root, entry, stat.S_ISREG, "a regular file",
                       "Remove it first (state: absent), or write to another path")
    if info is None and not entry["create"]:
        return
    before = _read(host, info)
    if entry["state"] == "line":
        text = (before or b"").decode("utf-8", "surrogateescape")
        after = files_entries.with_line(text, entry["line"], entry["regexp"]).encode("utf-8", "surrogateescape")
    else:
        after = entry["content"]
    attrs = _wanted_attrs(entry, accounts, info)
    if info is None:
        _make_parents(change, root, entry["path"])
    if before != after:
        change.add("%s %s" % ("write" if info is not None else "create", entry["path"]),
                   lambda: _write_new(host, after, *attrs))
        change.show(_shown(before), _shown(after))
    elif attrs != _attrs(info):
        change.add("set %s of %s" % (_words(attrs), entry["path"]), lambda: _set_attrs(host, *attrs))
        change.show(_words(_attrs(info)) + "\n", _words(attrs) + "\n")


def _plan_directory(change, root, entry, accounts):
    host, info = _look(root, entry, stat.S_ISDIR, "a directory", "Remove it first (state: absent)")
    attrs = _wanted_attrs(entry, accounts, info)
    if info is None:
        _make_parents(change, root, entry["path"])
        change.planned.add(entry["path"])
        change.add("create directory %s" % entry["path"], lambda: _mkdir(host, *attrs))
        change.show("absent\n", "directory, %s\n" % _words(attrs))
    elif attrs != _attrs(info):
        change.add("set %s of %s" % (_words(attrs), entry["path"]), lambda: _set_attrs(host, *attrs))
        change.show("directory, %s\n" % _words(_attrs(info)), "directory, %s\n" % _words(attrs))


def _remove(host, info):
    """Remove a file, a link, or a directory tree that holds no mount point."""
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(host)
        return
    for top, dirs, files in os.walk(host, topdown=False):
        for name in files:
            os.unlink(os.path.join(top, name))
        for name in dirs:
            path = os.path.join(top, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
    os.rmdir(host)


def _mount_points_below(host, device):
    found = []
    for top, dirs, _files in os.walk(host):
        for name in list(dirs):
            path = os.path.join(top, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) and info.st_dev != device:
                found.append(path)
                dirs.remove(name)
    return found


def _plan_absent(change, root, entry, _accounts):
    host = paths.parent_in(root, entry["path"])  # a link itself is removed, not what it points to
    info = _lstat(host)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        inner = _mount_points_below(host, info.st_dev)
        if inner or os.path.ismount(host):
            raise DiskImageError("%s holds a mounted filesystem of the image (%s): it is not removed"
                                 % (entry["path"], ", ".join(p[len(root):] for p in inner) or entry["path"]),
                                 hint="Remove the files inside it instead")
    change.add("remove %s" % entry["path"], lambda: _remove(host, info))
    change.show("present\n", "absent\n")


_PLANNERS = {"file": _plan_content, "line": _plan_content, "directory": _plan_directory, "absent": _plan_absent}


def run(root, entries, accounts=None, check_mode=False):
    """Compare every entry with the tree and, unless in check mode, make it
    so, entry by entry (a later entry sees what an earlier one did). Returns
    the Changes."""
    accounts = accounts if accounts is not None else read_accounts(root)
    changes = []
    planned = set()
    for entry in entries:
        entry = dict(entry, path=accounts.expand(entry["path"]))
        change = Change(entry["path"], entry["state"], planned if check_mode else set())
        _PLANNERS[entry["state"]](change, root, entry, accounts)
        if not check_mode:
            try:
                change.apply()
            except OSError as exc:
                raise DiskImageError.from_oserror("cannot %s" % "; ".join(change.actions), exc)
        changes.append(change)
    return changes

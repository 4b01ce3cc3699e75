# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount point image_mount is given as ``path``.

``Target`` makes it absolute, refuses a path through a symlink unless asked to
follow it (so a mount never lands somewhere other than where the task says),
refuses a file, and lists the directories that are missing so that they can be
created, and removed again when a later step fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# Mount points the running system needs: the path alone never takes them down
# (with src, the task has said which image or device it means).
SYSTEM_MOUNT_POINTS = ("/", "/boot", "/boot/efi", "/efi", "/dev", "/etc", "/home", "/proc", "/root", "/run",
                       "/sys", "/tmp", "/usr", "/var")
SYSTEM_TREES = ("/dev", "/proc", "/sys")
# Never mounted over, remounted or unmounted, whatever src says: the running
# system lives there (a src naming the machine's own disk must not take it down).
ALWAYS_REFUSED = ("/", "/usr")


def _first_symlink(path):
    parts = path.split("/")
    for index in range(2, len(parts) + 1):
        here = "/".join(parts[:index])
        if os.path.islink(here):
            return here
    return None


class Target(object):
    """The mount point: absolute, symlinks resolved only when asked, a directory."""

    def __init__(self, path, follow_symlinks=False):
        if not path or not os.path.isabs(path):
            raise DiskImageError("path %r is not an absolute path" % (path,), hint="Give the mount point as /some/dir")
        self.requested = os.path.normpath(path)
        self.path = os.path.realpath(self.requested)
        self.resolved_from = None
        if self.path != self.requested:
            link = _first_symlink(self.requested) or self.requested
            if not follow_symlinks:
                raise DiskImageError(
                    "path %s goes through the symlink %s -> %s; the mount would land on %s" % (
                        self.requested, link, os.readlink(link) if os.path.islink(link) else "?", self.path),
                    errno=errno.ELOOP,
                    hint="Give the resolved path %s, or set follow_symlinks: true to mount there" % self.path)
            self.resolved_from = self.requested
        self.missing = []
        here = self.path
        while not os.path.lexists(here):
            self.missing.insert(0, here)
            here = os.path.dirname(here)
        if not os.path.isdir(here):
            if here == self.path:
                raise DiskImageError("path %s is a %s, not a directory; refusing to mount over it" % (
                    self.path, "file" if os.path.isfile(here) else "special file"), errno=errno.ENOTDIR,
                    hint="Remove it, or choose another mount point")
            raise DiskImageError("cannot create %s: %s is not a directory" % (self.path, here), errno=errno.ENOTDIR)

    @property
    def exists(self):
        return not self.missing

    def create(self, undo):
        for directory in self.missing:
            try:
                os.mkdir(directory, 0o755)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise DiskImageError.from_oserror("cannot create the mount point %s" % directory, exc)
                continue
            undo.append(("remove %s" % directory, lambda d=directory: os.rmdir(d)))


def refuse_root_path(path, action="unmount"):
    """Refuse to touch the root filesystem and the kernel's trees, with or without src."""
    if path in ALWAYS_REFUSED or path in SYSTEM_TREES or any(path.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise DiskImageError(
            "refusing to %s %s: the running system needs it, and image_mount never touches /, /usr, "
            "/dev, /proc or /sys" % (action, path),
            hint="Choose another mount point for the image; change the system's own mounts yourself")


def refuse_system_path(path):
    """Refuse to take down a mount point the running system needs by path alone."""
    if path in SYSTEM_MOUNT_POINTS or any(path.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise DiskImageError(
            "refusing to unmount %s with only path given: the running system needs it" % path,
            hint="Give src to name the image or device mounted there, or unmount it yourself")

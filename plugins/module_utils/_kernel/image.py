# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is a path an image file or a block device? The one check every module makes.

``stat_image`` refuses, before anything is touched, a path that is missing, a
directory, or neither a regular file nor a block device, in the words of the
caller (``Words``). ``ImageSource`` is what a module's ``src`` names once it
passed: the path, whether it is a block device and which one, and its size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class Words(object):
    """How a caller names the three refusals; each sentence has one %s, the path.

    With ``missing_is_oserror`` the missing sentence is followed by the
    system's reason, as DiskImageError.from_oserror words it."""

    def __init__(self, missing, missing_hint, directory, directory_hint, neither, neither_hint,
                 missing_is_oserror=False):
        self.missing = missing
        self.missing_hint = missing_hint
        self.directory = directory
        self.directory_hint = directory_hint
        self.neither = neither
        self.neither_hint = neither_hint
        self.missing_is_oserror = missing_is_oserror

    def but(self, **changes):
        values = dict(vars(self))
        values.update(changes)
        return Words(**values)


# A module's src: an image to partition or mount, or a block device.
SRC = Words(missing="src %s does not exist", missing_hint="Create the image first, or fix src",
            directory="src %s is a directory, not an image or a block device",
            directory_hint="Name the image file or the device itself",
            neither="src %s is neither an image file nor a block device",
            neither_hint="Name an image file or a block device")


def stat_image(path, words):
    """os.stat of ``path`` when it is a regular file or a block device; else a
    DiskImageError in ``words``."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            if words.missing_is_oserror:
                raise DiskImageError.from_oserror(words.missing % path, exc, hint=words.missing_hint)
            raise DiskImageError(words.missing % path, errno=exc.errno, hint=words.missing_hint)
        raise DiskImageError.from_oserror("cannot read %s" % path, exc)
    if stat.S_ISDIR(info.st_mode):
        raise DiskImageError(words.directory % path, errno=errno.EISDIR, hint=words.directory_hint)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise DiskImageError(words.neither % path, hint=words.neither_hint)
    return info


def file_size(path):
    """The size of an image file or block device, with the error a user can act on."""
    try:
        return blockdev.file_size(path)
    except OSError as exc:
        raise DiskImageError.from_oserror(
            "cannot open %s to read its size" % path, exc,
            hint="Run as root; a device cgroup or security policy may deny access to it")


class ImageSource(object):
    """What ``src`` names: an image file, or a block device the kernel has."""

    words = SRC

    def __init__(self, src):
        self.given = src
        self.path = os.path.abspath(src)
        info = stat_image(self.path, self.words)
        self.is_block = stat.S_ISBLK(info.st_mode)
        self.devno = (os.major(info.st_rdev), os.minor(info.st_rdev)) if self.is_block else None
        self.kernel_name = sysfs.name_by_devno(*self.devno) if self.is_block else None
        if self.is_block and self.kernel_name is None:
            raise DiskImageError("the kernel has no block device %d:%d (%s)" % (self.devno + (self.path,)))
        self.size = file_size(self.path)

    @property
    def loop_number(self):
        """N when the source is /dev/loopN, else None."""
        name = self.kernel_name or ""
        return int(name[4:]) if name.startswith("loop") and name[4:].isdigit() else None

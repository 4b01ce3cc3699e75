# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image made as a copy of a golden one: sparse, shared extents where the
filesystem can (reflink), complete or not there at all.

The copy is written under a side name and renamed into place once complete,
so a file under the final name is always a finished copy: a run killed in the
middle leaves only the side file, which the next run starts again. The copy
records which golden image it came from (size, modification time, inode) in
an extended attribute; a later run compares that record with the golden
image as it is now - three numbers from one stat, exact without reading a
byte - and warns when the golden image has changed since, instead of
silently throwing away what was written into the copy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._artifact.extents import CHUNK, data_extents
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share all extents of a file (btrfs, xfs, bcachefs)
PART_SUFFIX = ".part"
ORIGIN_XATTR = "user.diskimage-loop.golden"
BLOCK = 64 * 1024  # runs of zeros this long (aligned) become holes, as cp --sparse=always makes them
_ZEROS = bytes(BLOCK)


def origin_of(info):
    """The record of a golden image's state: size, mtime in ns, device and inode."""
    return ("%d:%d:%d:%d" % (info.st_size, info.st_mtime_ns, info.st_dev, info.st_ino)).encode("ascii")


def check_golden(golden, dest):
    """The golden image's stat; refuses a missing one, a non-file, and a copy onto itself."""
    try:
        info = os.stat(golden)
    except OSError as exc:
        raise DiskImageError.from_oserror("the golden image %s cannot be read" % golden, exc,
                                          hint="Build it first, or correct copy_from")
    if not stat.S_ISREG(info.st_mode):
        raise DiskImageError("the golden image %s is not a regular file" % golden, hint="Give an image file")
    try:
        same = os.path.samefile(golden, dest)
    except OSError:
        same = False
    if same or os.path.abspath(golden) == os.path.abspath(dest):
        raise DiskImageError("the image %s is the golden image itself" % dest,
                             hint="Give the copy a path of its own")
    return info


def recorded_origin(dest):
    """The origin record of a copy, or None (no record, or no user xattrs here)."""
    try:
        return os.getxattr(dest, ORIGIN_XATTR)
    except OSError:
        return None


def _reflink(src_fd, dst_fd):
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM):
            return False
        raise


def _copy_data(src_fd, dst_fd, size):
    """The data extents of the golden image, without the zero blocks in them."""
    for start, end in data_extents(src_fd, size):
        pos = start
        while pos < end:
            chunk = os.pread(src_fd, min(CHUNK, end - pos), pos)
            if not chunk:
                break
            view = memoryview(chunk)
            offset = 0
            while offset < len(view):
                # align to BLOCK in the file, so that holes fall on whole blocks
                step = min(BLOCK - (pos + offset) % BLOCK, len(view) - offset)
                piece = view[offset:offset + step]
                if piece != _ZEROS[:step]:
                    written = 0
                    while written < step:
                        written += os.pwrite(dst_fd, piece[written:], pos + offset + written)
                offset += step
            pos += len(chunk)


def copy(golden, dest, info):
    """Copy ``golden`` (whose stat is ``info``) to ``dest`` through the side
    file ``dest``.part: reflinked where the filesystem shares extents, else
    sparse; returns how ("reflink" or "sparse")."""
    part = dest + PART_SUFFIX
    src_fd = os.open(golden, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            os.unlink(part)  # a killed run's leftover
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise DiskImageError.from_oserror("cannot remove the unfinished copy %s" % part, exc)
        dst_fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            how = "reflink" if _reflink(src_fd, dst_fd) else "sparse"
            if how == "sparse":
                _copy_data(src_fd, dst_fd, info.st_size)
            os.ftruncate(dst_fd, info.st_size)
            os.fchmod(dst_fd, stat.S_IMODE(info.st_mode))
            try:
                os.setxattr(dst_fd, ORIGIN_XATTR, origin_of(info))
            except OSError:
                pass  # no user xattrs on this filesystem: the copy just has no record
        finally:
            os.close(dst_fd)
        os.rename(part, dest)
    except OSError as exc:
        try:
            os.unlink(part)
        except OSError:
            pass
        raise DiskImageError.from_oserror("cannot copy %s to %s" % (golden, dest), exc)
    finally:
        os.close(src_fd)
    return how

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The staged tree of an image: split at mount points, times clamped, copied.

A reproducible build puts the image's content in a plain directory first; each
filesystem is then made from its part of it. Splitting moves each mount point's
subtree aside (leaving an empty directory, as an installed system has) and puts it
back afterwards, so the tree ends as it started.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def clamp_times(top, epoch):
    """Set atime and mtime of everything in top (and top) to min(mtime, epoch).

    atime is set too because it is copied into the filesystem and is otherwise the
    time of the build. Symbolic links are changed themselves, never followed.
    """
    changed = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames + [None]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            if name is not None and name in dirnames and not os.path.islink(path):
                continue  # a directory is clamped when the walk is in it (after its entries are made)
            st = os.lstat(path)
            when = min(st.st_mtime_ns, epoch * 10 ** 9)
            if st.st_atime_ns != when or st.st_mtime_ns != when:
                os.utime(path, ns=(when, when), follow_symlinks=False)
                changed += 1
    return changed


def split(tree, mountpoints, epoch):
    """Move each mount point's subtree out of the tree; return {mountpoint: directory}.

    '/' maps to the tree itself. A missing mount point directory is made first. The
    moved subtrees go to '<tree>.split/<n>' (the same filesystem, so a rename).
    """
    aside = tree.rstrip("/") + ".split"
    if os.path.lexists(aside):
        raise DiskImageError("%s exists: a split of the tree was interrupted" % aside,
                             hint="Move its directories back into %s, or remove it, and run again" % tree)
    os.mkdir(aside, 0o700)
    parts = {"/": tree}
    moved = []
    try:
        for number, mnt in enumerate(sorted((m for m in mountpoints if m != "/"), key=len, reverse=True)):
            inside = os.path.join(tree, mnt.lstrip("/"))
            if os.path.islink(inside) or (os.path.exists(inside) and not os.path.isdir(inside)):
                raise DiskImageError("the mount point %s in the tree is not a directory" % mnt)
            if not os.path.isdir(inside):
                os.makedirs(inside, 0o755)
            target = os.path.join(aside, str(number))
            st = os.stat(inside)
            os.rename(inside, target)
            moved.append((target, inside))
            os.mkdir(inside, 0o755)
            when = min(st.st_mtime_ns, epoch * 10 ** 9)
            os.utime(inside, ns=(when, when))
            parts[mnt] = target
    except BaseException:
        join(moved, aside)
        raise
    return parts, moved


def join(moved, aside=None):
    """Undo split(): put every subtree back over its empty mount point directory."""
    for target, inside in reversed(moved):
        if os.path.isdir(inside) and not os.path.islink(inside):
            os.rmdir(inside)
        os.rename(target, inside)
        aside = os.path.dirname(target)
    if aside and os.path.isdir(aside):
        os.rmdir(aside)


def copy_into(src, dst):
    """Copy the content of src into the existing directory dst, keeping modes, owners and times."""
    for name in sorted(os.listdir(src)):
        s = os.path.join(src, name)
        d = os.path.join(dst, name)
        st = os.lstat(s)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(d, stat.S_IMODE(st.st_mode))
            copy_into(s, d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(s, d)
        else:
            os.mknod(d, st.st_mode, st.st_rdev)
        os.lchown(d, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(d, stat.S_IMODE(st.st_mode))
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    st = os.lstat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))

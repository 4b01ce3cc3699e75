# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The root directory image_tree mounts an image's tree under.

Given, it is made canonical and checked (never a mount point the running
system needs). Left out, it is a directory under TREES_DIR named after the
image's identity - the device and inode of its backing file, as the locks
know an image - so every task naming the same image, by whatever path, finds
the same tree, and two images of one name never share one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.diskimage.loop.plugins.module_utils._loop.ownership import RUN_DIR
from ansible_collections.diskimage.loop.plugins.module_utils._mount.locks import identity
from ansible_collections.diskimage.loop.plugins.module_utils._mount.teardown import (
    SYSTEM_MOUNT_POINTS,
    SYSTEM_TREES,
)
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

TREES_DIR = os.path.join(RUN_DIR, "trees")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def default_root(src, trees_dir=TREES_DIR):
    """TREES_DIR/<image file name>-<identity of its backing object>."""
    ident = identity(src)
    if ident is None:
        raise DiskImageError("src %s does not exist, so the default root of its tree cannot be named" % src,
                             errno=errno.ENOENT, hint="Give root, the directory the tree is mounted under")
    name = _UNSAFE.sub("_", os.path.basename(os.path.realpath(src))) or "image"
    return os.path.join(trees_dir, "%s-%s" % (name, "-".join(_UNSAFE.sub(".", str(p)) for p in ident[1:])))


def check_root(root):
    """``root`` made absolute and canonical; system mount points are refused."""
    if not root or not os.path.isabs(root):
        raise DiskImageError("root %r is not an absolute path" % (root,),
                             hint="Give the directory to mount the tree under, such as /mnt/image")
    real = os.path.realpath(root)
    if real in SYSTEM_MOUNT_POINTS or any(real == tree or real.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise DiskImageError("refusing to use %s as the root of an image's tree: the running system needs it%s" % (
            real, "" if real == os.path.normpath(root) else " (%s resolves to it)" % root),
            hint="Choose a directory of its own, such as /mnt/image, or leave root out")
    if os.path.lexists(real) and not os.path.isdir(real):
        raise DiskImageError("root %s is not a directory" % real, errno=errno.ENOTDIR,
                             hint="Remove it, or choose another root")
    return real


def root_path(src, root=None):
    """(the canonical root, whether it is the default one)."""
    if root:
        return check_root(root), False
    return check_root(default_root(src)), True

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths in an image's tree as a chroot into it sees them.

The controller writes files and makes mount points in the tree from outside:
an image whose /usr or /etc is an absolute symbolic link must not lead those
writes to the host's own /usr or /etc.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def resolve_in(root, path, hops=40):
    """The host path of ``path`` inside the tree at ``root``, following its
    symbolic links as a chroot would: an absolute link or a '..' never leads
    out of the tree."""
    parts = [p for p in path.split("/") if p]
    done = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        if part == ".":
            continue
        host = os.path.join(root, *(done + [part]))
        if os.path.islink(host):
            hops -= 1
            if hops < 0:
                raise DiskImageError("too many symbolic links resolving %s in the image" % path)
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return os.path.join(root, *done) if done else root


def parent_in(root, path):
    """The host path of ``path`` with its directories resolved in the tree and
    its last component left as it is (a link there is the caller's to judge)."""
    directory, name = os.path.split(path.rstrip("/"))
    return os.path.join(resolve_in(root, directory or "/"), name)

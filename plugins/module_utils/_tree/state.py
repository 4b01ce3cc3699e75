# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for an image's whole tree (image_tree): the plan per state.

``mounted`` lives in setup.py, ``unmounted`` in teardown.py; both build a
TreePlan (treeplan.py) from image_mount's core.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._tree.setup import plan_mounted
from ansible_collections.diskimage.loop.plugins.module_utils._tree.teardown import plan_unmounted
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

STATES = ("mounted", "unmounted")


def plan(state, src, root=None, mounts=None, auto_exclude=(), esp_path="", read_only=False, lazy=False):
    """The TreePlan for ``state``."""
    if state == "mounted":
        if not src:
            raise DiskImageError("state mounted needs src, the image to mount", hint="Give src")
        return plan_mounted(src, root, mounts, auto_exclude or (), esp_path or "", read_only)
    if state == "unmounted":
        if not src and not root:
            raise DiskImageError("state unmounted needs src or root, to know which tree to take down",
                                 hint="Give src (its default root), or root")
        return plan_unmounted(src, root, lazy)
    raise DiskImageError("state %r is not one of %s" % (state, ", ".join(STATES)))

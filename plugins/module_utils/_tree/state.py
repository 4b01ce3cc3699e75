# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for an image's whole tree (image_tree): the plan per state.

``mounted`` lives in setup.py, ``unmounted`` in teardown.py; both build a
TreePlan (treeplan.py) from image_mount's core. ``planner`` is what the
module's main() runs: an image that is not raw (qcow2, VMDK, VHDX) is seen
through the nbd device that serves it (_nbd/source.RunConnections), and the
connection is image_mount's, as the tree's loop devices are: a tree is
image_mount's mounts, so either module's teardown takes it down.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._mount.plan import OWNER
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils._tree.setup import plan_mounted
from ansible_collections.diskimage.loop.plugins.module_utils._tree.teardown import plan_unmounted
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

STATES = ("mounted", "unmounted")


def plan(state, src, root=None, mounts=None, auto_exclude=(), esp_path="", read_only=False, lazy=False, device=None):
    """The TreePlan for ``state``; ``device`` is what shows ``src`` when that
    is not ``src`` itself (the nbd device serving it)."""
    if state == "mounted":
        if not src:
            raise DiskImageError("state mounted needs src, the image to mount", hint="Give src")
        return plan_mounted(src, root, mounts, auto_exclude or (), esp_path or "", read_only, device)
    if state == "unmounted":
        if not src and not root:
            raise DiskImageError("state unmounted needs src or root, to know which tree to take down",
                                 hint="Give src (its default root), or root")
        return plan_unmounted(src, root, lazy, device)
    raise DiskImageError("state %r is not one of %s" % (state, ", ".join(STATES)))


def planner(state, src, root=None, mounts=None, auto_exclude=(), esp_path="", read_only=False, lazy=False,
            image_format="auto", check_mode=False):
    """A function that plans ``state`` each time it is called (plan.run plans
    again once it holds the locks a plan reveals): ``mounted`` connects an
    image that is not raw once for the run, and a failed run disconnects it;
    ``unmounted`` takes the tree down, then disconnects what image_mount's
    core connected for the image once nothing uses it."""
    connections = nbd_source.RunConnections(OWNER, check_mode)

    def tree(device, unserved=False):
        return plan(state, src, root, mounts, auto_exclude, esp_path, read_only, lazy,
                    device=None if unserved else device)

    def make_plan():
        if not src:
            return nbd_source.annotate(tree(None), nbd_source.BlockSource(None, "raw"))
        if state == "mounted":
            return connections.plan(src, tree, image_format=image_format, read_only=read_only)
        # Everything under the root comes down with the first device's plan;
        # another device serving the image adds only its disconnect.
        return connections.release(src, tree, lambda first, _other: first, image_format=image_format)

    return make_plan

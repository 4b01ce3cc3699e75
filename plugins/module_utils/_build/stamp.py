# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stamp of a finished image build: a small JSON file next to the image.

It records a digest of the declaration the image was built from, and the
image's size and modification time when the build finished. While all three
still match, the image is finished and a rerun leaves it alone. A stamp that
does not match is removed before the image is built again, so that a build
interrupted half-way never looks finished.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.mountinfo import write_file_atomic

STAMP_SUFFIX = ".build-stamp"


def default_stamp_path(image):
    return image + STAMP_SUFFIX


def image_identity(image):
    """(size, mtime) of the image file, or None when there is none."""
    try:
        st = os.stat(image)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def read_stamp(stamp_path):
    """The stamp's content as a dict; None when it is missing or unreadable
    (an unreadable stamp proves nothing, and is treated like a missing one)."""
    try:
        with open(stamp_path, "r") as handle:
            content = json.load(handle)
    except (OSError, IOError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def stamp_content(digest, identity):
    size, mtime = identity
    return {"spec": digest, "size": size, "mtime": mtime}


def why_not_finished(stamp, digest, identity):
    """None when the stamp says the image is finished, else the reason, in words."""
    if identity is None:
        return "there is no image"
    if stamp is None:
        return "there is no stamp of a finished build"
    if stamp.get("spec") != digest:
        return "the declaration changed since the last build"
    if (stamp.get("size"), stamp.get("mtime")) != tuple(identity):
        return "the image was modified since the last build"
    return None


class StampPlan(Plan):
    def __init__(self, image, stamp_path, digest):
        super(StampPlan, self).__init__()
        self.image = image
        self.stamp_path = stamp_path
        self.digest = digest
        self.found = read_stamp(stamp_path)
        self.exists = os.path.lexists(stamp_path)
        self.finished = False
        self.reason = None
        self.content = None

    def remove(self):
        try:
            os.unlink(self.stamp_path)
        except OSError as exc:
            if os.path.lexists(self.stamp_path):
                raise DiskImageError.from_oserror("removing the stamp %s" % self.stamp_path, exc)

    def write(self):
        write_file_atomic(self.stamp_path, json.dumps(self.content, indent=4, sort_keys=True) + "\n")

    def result(self, check_mode=False):
        return {"finished": self.finished, "reason": self.reason, "stamp": self.content or self.found,
                "stamp_path": self.stamp_path}

    def diff(self):
        after = None if self.steps and self.content is None else (self.content or self.found)
        return {"before": {"stamp": self.found if self.exists else None}, "after": {"stamp": after}}


def plan_stamp(image, stamp_path, digest, state, rebuild=False):
    """A StampPlan for ``state``:

    verified: keep the stamp only when it matches the declaration's digest and
        the image (finished=true); remove one that does not (finished=false).
    present: write the stamp for the image as it is now.
    absent: remove the stamp.
    """
    stamp_path = stamp_path or default_stamp_path(image)
    if state in ("verified", "present") and not digest:
        raise DiskImageError("state=%s needs the digest of the declaration" % state)
    plan = StampPlan(image, stamp_path, digest)
    identity = image_identity(image)
    if state == "present":
        if identity is None:
            raise DiskImageError("there is no image %s to stamp" % image, hint="Build the image first")
        plan.content = stamp_content(digest, identity)
        plan.finished = True
        if plan.found != plan.content or not plan.exists:
            plan.add("write the stamp %s" % stamp_path, plan.write)
        return plan
    if state == "verified":
        plan.reason = "a rebuild was asked for" if rebuild else why_not_finished(plan.found, digest, identity)
        plan.finished = plan.reason is None
        if plan.finished:
            return plan
    if plan.exists:
        plan.add("remove the stamp %s" % stamp_path, plan.remove)
    return plan

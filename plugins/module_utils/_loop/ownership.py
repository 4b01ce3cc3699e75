# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which loop devices a module attached itself, so that its teardown detaches
those and only those.

Modules are stateless, and the kernel keeps no free-form tag on a loop device
(lo_crypt_name is zeroed since cryptoloop went away). So a claim is a small
file under /run - a tmpfs that, like loop devices, does not survive a reboot -
keyed by the device and its disk sequence number. The kernel bumps that number
on every attach and detach, so a claim can never match a device that was
detached and then attached again by someone else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs

RUN_DIR = "/run/diskimage-loop"


def _identity(name, root=sysfs.SYS_ROOT):
    """What a claim must match: the disk sequence number where the kernel has
    one (5.15+), else the backing file and offset as sysfs shows them."""
    values = sysfs.loop_status(int(name[4:]), root) if name.startswith("loop") else None
    return {"diskseq": sysfs.diskseq(name, root),
            "backing_file": values and values["backing_file"],
            "offset": values and values["offset"]}


def _path(name, run_dir):
    return os.path.join(run_dir, "%s.json" % name)


def _ensure_dir(run_dir):
    """Create the claim directory; another run creating it at the same moment is fine."""
    try:
        os.makedirs(run_dir, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(run_dir):
            raise


def claim(name, owner, run_dir=RUN_DIR, root=sysfs.SYS_ROOT):
    """Record that ``owner`` (a module name) attached the device ``name``.

    The record is written to a temporary file of its own in ``run_dir`` and
    renamed over the claim, so a reader never sees half a record and two runs
    claiming at once never write into the same file."""
    _ensure_dir(run_dir)
    record = dict(_identity(name, root), owner=owner)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, _path(name, run_dir))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def owner(name, run_dir=RUN_DIR, root=sysfs.SYS_ROOT):
    """The module that attached ``name`` in its present attachment, or None.

    A record left over from an earlier attachment is removed on sight."""
    try:
        with open(_path(name, run_dir)) as handle:
            record = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    current = _identity(name, root)
    if any(record.get(key) != value for key, value in current.items()):
        release(name, run_dir)
        return None
    return record.get("owner")


def release(name, run_dir=RUN_DIR):
    try:
        os.unlink(_path(name, run_dir))
    except OSError:
        pass

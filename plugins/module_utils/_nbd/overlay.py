# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-host image as a qcow2 overlay on a golden image, instead of a copy.

``qemu-img create -f qcow2 -b GOLDEN -F FORMAT`` makes an overlay in
milliseconds whatever the golden image's size: reads fall through to the golden
image, writes stay in the overlay. The golden image's format is read from its
header and always given (-F), never probed; its path is recorded absolute, so
the overlay works from any directory. The overlay is made under the side name
OVERLAY.part and renamed into place, so a killed run never leaves half an
overlay at the path; the side name is fixed, not random, so the next run
removes what a killed one left there (the caller holds the image's path lock,
as for copies). An overlay that exists with the same backing file is left as it is.

The golden image must not change while overlays use it: write to the overlays
(through NBD, see ``source.py``), never to the golden image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shutil
import subprocess

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

QEMU_IMG = "qemu-img"
PART_SUFFIX = ".part"
SEARCH_PATH = ("/usr/bin", "/usr/local/bin", "/bin")


def qemu_img():
    found = shutil.which(QEMU_IMG) or shutil.which(QEMU_IMG, path=os.pathsep.join(SEARCH_PATH))
    if not found:
        raise DiskImageError("qemu-img is not installed; it makes qcow2 overlays",
                             hint="Install it (apt-get install qemu-utils, dnf install qemu-img)")
    return found


def overlay_state(golden, overlay):
    """'missing', 'current' (an overlay of ``golden``) or what else is at ``overlay``, in words."""
    if not os.path.lexists(overlay):
        return "missing"
    if not os.path.isfile(overlay):
        return "%s exists and is not a file" % overlay
    backing = formats.qcow2_backing_file(overlay)
    if backing is None:
        return "%s exists and is not a qcow2 overlay (%s)" % (overlay, formats.resolve(overlay))
    if os.path.abspath(os.path.join(os.path.dirname(overlay), backing)) != os.path.abspath(golden):
        return "%s is an overlay of %s, not of %s" % (overlay, backing, os.path.abspath(golden))
    return "current"


def ensure_overlay(golden, overlay, backing_format="auto", force=False, check_mode=False, size=None, remake=False):
    """Make ``overlay`` a qcow2 overlay of ``golden``; True when it was (or would be) made.
    ``size``: its virtual size in bytes (the golden image's when None; the
    caller refuses a smaller one). ``remake``: a new overlay replaces an
    existing one of ``golden`` too (what was written to it is lost)."""
    golden = os.path.abspath(golden)
    overlay = os.path.abspath(overlay)
    if not os.path.isfile(golden):
        raise DiskImageError("the golden image %s is not a file" % golden, hint="Build the golden image first")
    if golden == overlay:
        raise DiskImageError("the overlay %s would be its own backing file" % overlay, hint="Give another path")
    fmt = formats.resolve(golden, backing_format)
    state = overlay_state(golden, overlay)
    if state == "current" and not remake:
        return False
    if state not in ("missing", "current") and not force:
        raise DiskImageError(state, hint="Remove it, or set force to replace it with a new overlay")
    if check_mode:
        return True
    tmp = overlay + PART_SUFFIX
    try:
        os.unlink(tmp)  # a killed run's leftover
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise DiskImageError.from_oserror("cannot remove the unfinished overlay %s" % tmp, exc)
    try:
        proc = subprocess.run([qemu_img(), "create", "-q", "-f", "qcow2", "-b", golden, "-F", fmt, tmp]
                              + ([str(size)] if size is not None else []),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              check=False)
        if proc.returncode != 0:
            raise DiskImageError("qemu-img cannot make an overlay of %s: %s" % (
                golden, proc.stdout.decode("utf-8", "replace").strip()))
        os.rename(tmp, overlay)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def resize(image, size):
    """Make the qcow2 image ``image`` ``size`` bytes large (qemu-img resize);
    the caller has refused a smaller size."""
    proc = subprocess.run([qemu_img(), "resize", "-q", "-f", "qcow2", image, str(size)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise DiskImageError("qemu-img cannot resize %s to %d bytes: %s" % (
            image, size, proc.stdout.decode("utf-8", "replace").strip()),
            hint="Check that nothing else has the image open (a VM, qemu-nbd)")

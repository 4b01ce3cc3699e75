# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image file itself: created sparse at its declared size, with its mode.

``plan_file`` decides, before anything is written, whether the file is made,
whether its mode changes, and whether an existing file (or device) of another
size is refused. ``check_size`` is that one refusal: a smaller image file is
left to growing the image (``_partition/growth.py``). A file this run created is removed again when a
later step of the run fails, so a failed first run leaves nothing behind.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import file_size
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import format_size, parse_size

DEFAULT_MODE = 0o600


class PlannedFile(object):
    """An image file the run will create: what ImageSource says of a file,
    for a file that is not there yet (planning reads no table from it)."""

    planned = True
    is_block = False
    devno = None
    kernel_name = None
    loop_number = None

    def __init__(self, src, size):
        self.given = src
        self.path = os.path.abspath(src)
        self.size = size


def parse_mode(value):
    """A file mode from an octal string ('0600', '600') or a number; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DiskImageError("mode must be an octal string such as '0600', not a boolean")
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip()
        try:
            mode = int(text, 8)
        except ValueError:
            raise DiskImageError("mode %r is not an octal file mode" % (value,),
                                 hint="Write it as a quoted octal string, such as '0600'; symbolic modes are not read")
    if not 0 <= mode <= 0o7777:
        raise DiskImageError("mode %r is out of range" % (value,), hint="Give at most four octal digits, such as '0644'")
    return mode


def check_size(path, actual, declared, regular=True):
    """Refuse an existing image (or device) whose size is not the declared one.

    The one place that decides what a size difference means: an image file
    smaller than declared is grown (``_partition/growth.py``), a larger one
    would have to shrink, which is refused; a device must have the size."""
    if regular and actual < declared:
        return
    if regular and actual > declared:
        raise DiskImageError(
            "%s exists with %d bytes (%s), more than the declared %d (%s): shrinking an image is not supported" % (
                path, actual, format_size(actual), declared, format_size(declared)),
            hint="Declare a size of at least %d bytes; nothing was changed" % actual)
    if actual != declared:
        raise DiskImageError(
            "%s exists with %d bytes (%s), not the declared %d (%s)" % (
                path, actual, format_size(actual), declared, format_size(declared)),
            hint="Remove the image to have it created again, or declare its size; nothing was changed")


def plan_file(src, size=None, mode=None):
    """(source, steps): the PlannedFile when ``src`` is missing and ``size``
    is given (else None: ImageSource reads it), and the steps that create it
    and set its mode - each (description, action(plan)).
    """
    declared = parse_size(size, "size") if size is not None else None
    wanted_mode = parse_mode(mode)
    path = os.path.abspath(src)
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT or declared is None:
            return None, []  # ImageSource says what is wrong with it
        if declared == 0:
            raise DiskImageError("size of a new image must not be 0", hint="Declare the size of the image, such as 2GiB")
        if not os.path.isdir(os.path.dirname(path)):
            raise DiskImageError("the directory of %s does not exist" % path,
                                 hint="Create %s first" % os.path.dirname(path))
        new_mode = DEFAULT_MODE if wanted_mode is None else wanted_mode
        return PlannedFile(src, declared), [
            ("create %s as a sparse file of %s with mode %04o" % (path, format_size(declared), new_mode),
             lambda plan: _create(plan, path, declared, new_mode))]
    steps = []
    if declared is not None and (stat.S_ISREG(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        actual = info.st_size if stat.S_ISREG(info.st_mode) else file_size(path)
        check_size(path, actual, declared, regular=stat.S_ISREG(info.st_mode))
    if wanted_mode is not None and stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) != wanted_mode:
        steps.append(("set the mode of %s to %04o (from %04o)" % (path, wanted_mode, stat.S_IMODE(info.st_mode)),
                      lambda plan: os.chmod(path, wanted_mode)))
    return None, steps


def _create(plan, path, size, mode):
    """Create the file, never over one that appeared meanwhile; undone when a
    later step of the run fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise DiskImageError("%s was created by another program while this run planned" % path,
                                 errno=exc.errno, hint="Run the task again")
        raise DiskImageError.from_oserror("cannot create %s" % path, exc)
    plan.undo.append(("remove %s, which this run created" % path, lambda: os.unlink(path)))
    try:
        os.fchmod(fd, mode)  # the umask must not narrow the declared mode
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    plan.image_created = True

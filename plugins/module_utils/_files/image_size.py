# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host size of an image (image_files ``size``): what it is, what it may
become, and the plan that grows it.

The disk grows to ``size`` bytes, the GPT backup header moves to its new end,
and the partition that ends last grows to fill the disk (as a layout's last
``rest`` entry would), its filesystem with it. The steps, their order and
what a killed run leaves are those of _partition/growth.py, the ones
image_partitions runs for a larger ``size``; only the choice of what grows is
made here. A raw image grows as a file; a qcow2 image's virtual size grows
first (the overlay made with that size, or qemu-img resize), and then its
table and filesystem grow through the NBD device that serves it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.image import ImageSource
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils._partition import grow, growth
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_source_table
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size

SECTOR = 512
GROWABLE_FORMATS = (formats.RAW, "qcow2")


def disk_size(path):
    """(format, bytes the image shows as a disk): a raw file's length, a
    qcow2 image's virtual size. Other formats are refused: their size is not
    changed here."""
    fmt = formats.resolve(path)
    if fmt == formats.RAW:
        return fmt, os.stat(path).st_size
    if fmt == "qcow2":
        return fmt, formats.qcow2_virtual_size(formats.read_header(path))
    raise DiskImageError("%s is a %s image, and size grows raw and qcow2 images only" % (path, fmt),
                         hint="Drop size, or convert the image with qemu-img convert -O qcow2")


def wanted(size, images):
    """``size`` in bytes, checked against ``images`` (paths the per-host image
    is or is made from): smaller than one of them, not whole sectors, or a
    raw image without a partition table, is refused before anything
    changes. None when ``size`` is None."""
    if size is None:
        return None
    value = parse_size(size, "size")
    for path in images:
        fmt, current = disk_size(path)
        try:
            grow.check_disk_size(current, value, SECTOR)
        except grow.GrowthRefused as exc:
            raise DiskImageError("%s: %s" % (path, exc.message), hint=exc.hint)
        if fmt == formats.RAW:
            _table(ImageSource(path))  # a qcow2 image's table is read through its nbd device, later
    return value


def _table(source):
    table = read_source_table(source)
    if table is None:
        raise DiskImageError("%s has no partition table: size grows the partition that ends last, and the "
                             "filesystem in it" % source.path,
                             hint="Drop size (grow a filesystem image with truncate and resize2fs), or give an "
                                  "image with a partition table")
    return table


class SizePlan(Plan):
    """The growth of one image: its steps, and growth.Growth's report."""

    def __init__(self, found):
        super(SizePlan, self).__init__()
        self.growth = found

    def result(self, check_mode=False):
        return self.growth.result()


def plan(path, size):
    """The SizePlan that grows the raw image file or the block device ``path``
    to ``size`` bytes (a block device has its size already), or None when
    nothing needs doing."""
    source = ImageSource(path)
    table = _table(source)
    target = source.size if source.is_block else size
    found = growth.plan_growth(source, table, target, grow.fill_disk(table, target), relocate=True,
                               fill_last=True, grow_filesystem=True)
    if found is None:
        return None
    steps = SizePlan(found)
    growth.add_steps(steps, found, lambda: source.path)
    return steps

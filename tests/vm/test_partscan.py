# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest kernel parses partition tables itself (losetup -P gives loopNpM).

Other VM-tier tests rely on this; the host kernel has no partition parsers, so
this is where kernel partition scanning is checked at all.
"""

import os

import pytest

from vm_helpers import sfdisk_partitions, wait_for

pytestmark = pytest.mark.vm


def _sysfs_int(*parts):
    with open(os.path.join("/sys/block", *parts)) as handle:
        return int(handle.read())


def test_partscan_creates_partition_devices(scratch):
    image = scratch.seed_image()
    expected = sfdisk_partitions(image)
    device = scratch.attach(image, partscan=True)
    disk = os.path.basename(device)

    for number, start, size, extended in expected:
        part = "%sp%d" % (disk, number)
        wait_for(lambda: os.path.exists("/dev/" + part), what="/dev/" + part)
        assert _sysfs_int(disk, part, "start") == start
        # the kernel, like kpartx, exposes only 2 sectors of an extended partition
        assert _sysfs_int(disk, part, "size") == (2 if extended else size)
    assert [n for n, _s, _z, _e in expected] == list(range(1, 9))

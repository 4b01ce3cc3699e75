# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_mount.teardown: a released loop device number that another run took over is not ours."""
from ansible_collections.diskimage.loop.plugins.module_utils._loop.loopdev import LoopStatus
from ansible_collections.diskimage.loop.plugins.module_utils._mount import teardown
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import Extent


class Exposure(object):
    def __init__(self, extent):
        self.extent = extent


def test_a_device_is_ours_while_it_shows_the_same_bytes_of_the_same_file():
    ours = Exposure(Extent(("file", "254:0", 12), 1048576, 4096, "/img"))
    same = LoopStatus(backing_device="254:0", backing_inode=12, offset=1048576)
    assert teardown._still(ours, same) is same
    assert teardown._still(ours, None) is None
    assert teardown._still(ours, LoopStatus(backing_device="254:0", backing_inode=13, offset=1048576)) is None
    assert teardown._still(ours, LoopStatus(backing_device="254:0", backing_inode=12, offset=0)) is None
    # A loop device over a block device: its number is all there is to go by.
    over_disk = Exposure(Extent(("dev", 8, 0), 0, 4096, "/dev/sda"))
    assert teardown._still(over_disk, same) is same

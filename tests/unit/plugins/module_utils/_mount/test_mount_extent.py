# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_extent: extents (byte ranges of a backing object) and the choice of the
device to reuse among those that show the wanted one."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import extent as ms

MiB = 1 << 20


def test_extents():
    whole = ms.Extent(("file", "8:1", 12), 0, 64 * MiB, "/x.img")
    part = whole.inner(MiB, 16 * MiB)
    assert part == ms.Extent(("file", "8:1", 12), MiB, 16 * MiB)
    assert whole.covers(part) and not part.covers(whole)
    assert not whole.shows(part)                    # starts elsewhere: another filesystem
    assert whole.inner(MiB, 63 * MiB).shows(part)   # mount -o loop,offset=1MiB
    assert not part.shows(whole.inner(MiB, 32 * MiB))
    assert part != ms.Extent(("file", "8:1", 13), MiB, 16 * MiB)
    assert "bytes at offset 1048576 of /x.img" in part.describe()


class FakeExposure(object):
    def __init__(self, name, kind, exact=True, read_only=False, mounts=()):
        self.name, self.kind, self.exact, self.read_only, self.mounts = name, kind, exact, read_only, list(mounts)


@pytest.mark.parametrize("exposures,read_only,strict,expected", [
    ([], False, False, None),
    ([FakeExposure("loop1", "loop"), FakeExposure("loop0p2", "partition")], False, False, "loop0p2"),
    ([FakeExposure("loop1", "loop"), FakeExposure("dm-0", "map")], False, False, "dm-0"),
    # a mounted one always wins: a second device would give the filesystem a second superblock
    ([FakeExposure("loop0p2", "partition"), FakeExposure("loop3", "loop", exact=False, mounts=["m"])],
     False, False, "loop3"),
    # read-only asked: only read-only devices, and a writable one is no substitute
    ([FakeExposure("loop1", "loop")], True, True, None),
    ([FakeExposure("loop1", "loop"), FakeExposure("loop2", "loop", read_only=True)], True, True, "loop2"),
    # read-only by nature (squashfs): any, the read-only one first
    ([FakeExposure("loop1", "loop")], True, False, "loop1"),
    ([FakeExposure("loop1", "loop"), FakeExposure("loop2", "loop", read_only=True)], True, False, "loop2"),
    # read-write asked: a read-only device cannot serve
    ([FakeExposure("loop2", "loop", read_only=True)], False, False, None),
    # not exact and unmounted: never reused
    ([FakeExposure("loop1", "loop", exact=False)], False, False, None),
])
def test_choose_exposure(exposures, read_only, strict, expected):
    chosen = ms.choose_exposure(exposures, read_only, strict)
    assert (chosen.name if chosen else None) == expected

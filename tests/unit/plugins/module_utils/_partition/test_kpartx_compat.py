# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kpartx-compatible names, uuids and tables, and the map set logic against a fake
device-mapper (no root needed). The VM tier compares the same with real kpartx."""

import errno

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._partition import kpartx_compat as kc
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.devmapper import DmInfo, ListedDevice, Target
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# the seed's shape: 3 primaries, an extended partition, 4 logicals (sfdisk's placement)
SEED = [kc.Partition(1, 2048, 16384, False), kc.Partition(2, 18432, 16384, False),
        kc.Partition(3, 34816, 16384, False), kc.Partition(4, 51200, 112640, True),
        kc.Partition(5, 53248, 16384, False), kc.Partition(6, 71680, 16384, False),
        kc.Partition(7, 90112, 16384, False), kc.Partition(8, 108544, 55296, False)]
LOOP0 = kc.Parent("/dev/loop0", "loop0", 7, 0, "devnode_7:0_Wh5pYvM")


@pytest.mark.parametrize("parent, number, delimiter, expected", [
    ("loop0", 1, None, "loop0p1"),
    ("loop12", 10, None, "loop12p10"),
    ("sda", 1, None, "sda1"),
    ("mpatha", 2, None, "mpatha2"),
    ("sda", 1, "-part", "sda-part1"),
    ("loop0", 1, "", "loop01"),
])
def test_partition_map_name(parent, number, delimiter, expected):
    assert kc.partition_map_name(parent, number, delimiter) == expected


def test_uuids():
    assert kc.parent_uuid_suffix(7, 0) == "devnode_7:0_Wh5pYvM"
    assert kc.parent_uuid_suffix(259, 1048575) == "devnode_259:1048575_Wh5pYvM"
    assert kc.parent_uuid_suffix(253, 0, "mpath-3600") == "mpath-3600"
    assert kc.partition_map_uuid(5, "devnode_7:0_Wh5pYvM") == "part5-devnode_7:0_Wh5pYvM"
    assert kc.parse_partition_map_uuid("part12-mpath-3600") == (12, "mpath-3600")
    assert kc.parse_partition_map_uuid("LVM-abc") is None
    assert kc.parse_partition_map_uuid("") is None


def test_partition_targets():
    assert kc.partition_targets(7, 0, 2048, 16384, False) == [Target(0, 16384, "linear", "7:0 2048")]
    assert kc.partition_targets(7, 0, 51200, 112640, True) == [Target(0, 2, "linear", "7:0 51200")]
    # 4 KiB sectors: two of them, in 512-byte units
    assert kc.partition_targets(7, 3, 256, 8192, True, sector_size=4096)[0].length == 16
    # kpartx maps 2 sectors even of a 1-sector extended entry (checked in the VM tier)
    assert kc.partition_targets(7, 0, 63, 1, True)[0].length == 2


def test_plan_maps_for_the_seed_layout():
    plans = kc.plan_maps(LOOP0, SEED + [kc.Partition(9, 0, 0, False)], read_only=True)
    assert [p.name for p in plans] == ["loop0p%d" % n for n in range(1, 9)]
    assert plans[4].uuid == "part5-devnode_7:0_Wh5pYvM"
    assert plans[4].targets == [Target(0, 16384, "linear", "7:0 53248")]
    assert plans[3].targets == [Target(0, 2, "linear", "7:0 51200")]
    assert all(p.read_only for p in plans)


class FakeDm(object):
    """Just enough of DeviceMapper for the map-set logic."""

    def __init__(self, fail_on=None):
        self.devices = {}  # name -> [uuid, targets, read_only, open_count]
        self.fail_on = fail_on
        self.removed = []
        self.reloaded = []

    def list_devices(self):
        return [ListedDevice(name, 253, i, dev[0]) for i, (name, dev) in enumerate(sorted(self.devices.items()))]

    def info(self, name):
        if name not in self.devices:
            return None
        uuid, _targets, read_only, open_count = self.devices[name]
        return DmInfo(name, uuid, 253, 0, open_count, 0, 1, 1 if read_only else 0)

    def table(self, name):
        if name not in self.devices:
            raise DiskImageError("gone", errno=errno.ENXIO)
        return list(self.devices[name][1])

    def create(self, name, targets, uuid="", read_only=False):
        if name == self.fail_on:
            raise DiskImageError("kernel said no", errno=errno.EINVAL)
        self.devices[name] = [uuid, list(targets), read_only, 0]

    def wait_unused(self, name):
        info = self.info(name)
        if info is not None and info.open_count:
            raise DiskImageError("%s is in use" % name, errno=errno.EBUSY)
        return info

    def reload(self, name, targets, read_only=False):
        self.devices[name][1:3] = [list(targets), read_only]
        self.reloaded.append(name)

    def remove(self, name):
        self.wait_unused(name)
        self.removed.append(name)
        return self.devices.pop(name, None) is not None


def test_add_is_idempotent_and_found_again():
    fake = FakeDm()
    first = kc.add_partition_maps(fake, LOOP0, SEED)
    assert len(first.created) == 8 and not first.unchanged
    again = kc.add_partition_maps(fake, LOOP0, SEED)
    assert not again.created and len(again.unchanged) == 8
    found = kc.find_partition_maps(fake, LOOP0)
    assert [f.number for f in found] == list(range(1, 9))


def test_add_rolls_back_on_failure():
    fake = FakeDm(fail_on="loop0p6")
    with pytest.raises(DiskImageError, match="kernel said no"):
        kc.add_partition_maps(fake, LOOP0, SEED)
    assert fake.devices == {}


def test_add_refuses_a_different_existing_map():
    fake = FakeDm()
    fake.devices["loop0p1"] = ["part1-devnode_7:0_Wh5pYvM", [Target(0, 8, "linear", "7:0 2048")], False, 0]
    with pytest.raises(DiskImageError, match="loop0p1.*already exists with table") as caught:
        kc.add_partition_maps(fake, LOOP0, SEED)
    assert caught.value.errno == errno.EEXIST
    assert list(fake.devices) == ["loop0p1"]  # nothing else was left behind


def test_find_ignores_other_parents_and_foreign_maps():
    fake = FakeDm()
    kc.add_partition_maps(fake, LOOP0, SEED[:2])
    loop1 = kc.Parent("/dev/loop1", "loop1", 7, 1, "devnode_7:1_Wh5pYvM")
    kc.add_partition_maps(fake, loop1, SEED[:1])
    fake.devices["imposter"] = ["part3-devnode_7:0_Wh5pYvM", [Target(0, 8, "linear", "7:1 0")], False, 0]
    fake.devices["lvm"] = ["LVM-x", [Target(0, 8, "linear", "7:0 0")], False, 0]
    assert [f.name for f in kc.find_partition_maps(fake, LOOP0)] == ["loop0p1", "loop0p2"]


def test_remove_refuses_when_any_map_is_busy_and_removes_nothing():
    fake = FakeDm()
    kc.add_partition_maps(fake, LOOP0, SEED)
    fake.devices["loop0p5"][3] = 1
    with pytest.raises(DiskImageError, match="loop0p5 is in use"):
        kc.remove_partition_maps(fake, LOOP0)
    assert len(fake.devices) == 8
    fake.devices["loop0p5"][3] = 0
    assert kc.remove_partition_maps(fake, LOOP0) == ["loop0p%d" % n for n in range(8, 0, -1)]
    assert fake.devices == {}


def test_reload_gives_grown_maps_their_new_table_and_keeps_read_only():
    fake = FakeDm()
    kc.add_partition_maps(fake, LOOP0, SEED, read_only=True)
    # the extended partition and the last logical one grow by 64 MiB
    grown = SEED[:3] + [SEED[3]._replace(size=SEED[3].size + 131072), SEED[4], SEED[5], SEED[6],
                        SEED[7]._replace(size=SEED[7].size + 131072)]
    assert [(found.name, spec.targets) for found, spec in kc.stale_partition_maps(fake, LOOP0, grown)] == [
        ("loop0p8", [Target(0, 186368, "linear", "7:0 108544")])]  # the extended map stays 2 sectors
    assert kc.reload_partition_maps(fake, LOOP0, grown) == ["loop0p8"]
    assert fake.devices["loop0p8"][1:3] == [[Target(0, 186368, "linear", "7:0 108544")], True]
    assert kc.reload_partition_maps(fake, LOOP0, grown) == [] and fake.reloaded == ["loop0p8"]
    assert not fake.removed and not kc.stale_partition_maps(fake, LOOP0, grown)


def test_describe_parent_refuses_a_regular_file(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    with pytest.raises(DiskImageError, match="not a block device"):
        kc.describe_parent(str(image))

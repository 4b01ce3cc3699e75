# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When does an existing table satisfy a declared layout? Only what the layout pins counts."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.blkpg import (
    extended_length,
    partition_name,
    wanted_geometry,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.devmapper import DmInfo, Target
from ansible_collections.diskimage.loop.plugins.module_utils._partition import kpartx_compat
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.state import _layout_differences, layout_specs

MiB = 1 << 20
SEED = {"label": "dos", "partitions": [{"size": "32MiB"}] * 6 + [{"size": "rest"}]}


def test_same_layout_with_other_random_ids_is_satisfied():
    table = plan_layout(SEED, 320 * MiB)
    again = plan_layout(SEED, 320 * MiB)
    assert _layout_differences(table, again, SEED) == []


def test_pinned_disk_id_must_match():
    layout = dict(SEED, disk_id="0x12345678")
    table = plan_layout(SEED, 320 * MiB)
    assert "the disk id" in _layout_differences(table, plan_layout(layout, 320 * MiB), layout)[0]


@pytest.mark.parametrize("other,fragment", [
    ({"label": "gpt", "partitions": [{}]}, "the label is dos, not gpt"),
    ({"label": "dos", "partitions": [{"size": "64MiB"}, {}]}, "partitions [1, 2, 3, 4, 5, 6, 7, 8], not [1, 2]"),
    ({"label": "dos", "partitions": [{"size": "16MiB"}] + [{"size": "32MiB"}] * 5 + [{}]}, "partition 1 spans"),
    ({"label": "dos", "partitions": [{"size": "32MiB", "type": "swap"}] + [{"size": "32MiB"}] * 5 + [{}]},
     "partition 1 has type 0x83, not 0x82"),
])
def test_differences_are_named(other, fragment):
    table = plan_layout(SEED, 320 * MiB)
    problems = _layout_differences(table, plan_layout(other, 320 * MiB), other)
    assert any(fragment in problem for problem in problems), problems


def test_gpt_names_count_only_when_given():
    base = {"label": "gpt", "partitions": [{"size": "8MiB", "name": "ESP", "type": "esp"}, {"type": "root"}]}
    table = plan_layout(base, 64 * MiB)
    unnamed = {"label": "gpt", "partitions": [{"size": "8MiB", "type": "esp"}, {"type": "root"}]}
    assert _layout_differences(table, plan_layout(unnamed, 64 * MiB), unnamed) == []
    renamed = {"label": "gpt", "partitions": [{"size": "8MiB", "name": "boot", "type": "esp"}, {"type": "root"}]}
    assert "name 'ESP', not 'boot'" in _layout_differences(table, plan_layout(renamed, 64 * MiB), renamed)[0]


def test_kernel_geometry_of_the_seed_table():
    table = plan_layout(SEED, 320 * MiB)
    geometry = wanted_geometry(table)
    assert sorted(geometry) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert geometry[4][1] == 1024  # extended: a two-sector stub
    assert geometry[1] == (MiB, 32 * MiB)


@pytest.mark.parametrize("size,sector,expected", [(100 * MiB, 512, 1024), (100 * MiB, 4096, 4096), (512, 512, 512)])
def test_extended_stub_length(size, sector, expected):
    assert extended_length(size, sector) == expected


@pytest.mark.parametrize("disk,number,name", [("loop3", 2, "loop3p2"), ("sda", 2, "sda2"), ("nvme0n1", 1, "nvme0n1p1")])
def test_partition_names(disk, number, name):
    assert partition_name(disk, number) == name


# --- which layout entry each partition of the table answers to --------------

# Entries are distinct objects, so the tests can tell which one a partition got.
LOGICALS_EXPLICIT = {"label": "dos", "partitions": [{"size": "32MiB"} for _i in range(3)] + [{"type": "extended"}]
                     + [{"size": "32MiB"} for _i in range(3)] + [{}]}
LOGICALS_IMPLICIT = {"label": "dos", "partitions": [{"size": "32MiB"} for _i in range(6)] + [{}]}


def _with(layout, index, **values):
    parts = [dict(part) for part in layout["partitions"]]
    parts[index].update(values)
    return dict(layout, partitions=parts)


def test_layout_specs_pair_an_explicit_extended_entry_with_partition_4():
    planned = plan_layout(LOGICALS_EXPLICIT, 320 * MiB)
    specs = layout_specs(planned, LOGICALS_EXPLICIT)
    entries = LOGICALS_EXPLICIT["partitions"]
    assert sorted(specs) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert specs[4] is entries[3] and planned.partition(4).kind == "extended"
    assert [specs[n] is entries[i] for n, i in ((1, 0), (2, 1), (3, 2), (5, 4), (6, 5), (7, 6), (8, 7))] == [True] * 7


def test_layout_specs_leave_the_implicit_extended_partition_without_an_entry():
    planned = plan_layout(LOGICALS_IMPLICIT, 320 * MiB)
    specs = layout_specs(planned, LOGICALS_IMPLICIT)
    entries = LOGICALS_IMPLICIT["partitions"]
    assert sorted(specs) == [1, 2, 3, 5, 6, 7, 8] and planned.partition(4).kind == "extended"
    assert [specs[n] is entries[i] for n, i in ((1, 0), (2, 1), (3, 2), (5, 3), (6, 4), (7, 5), (8, 6))] == [True] * 7


def test_layout_specs_with_an_extended_entry_early():
    layout = {"label": "dos", "partitions": [{"size": "32MiB"}, {"type": "extended"}, {"size": "32MiB"}, {}]}
    planned = plan_layout(layout, 320 * MiB)
    specs = layout_specs(planned, layout)
    assert sorted(specs) == [1, 2, 5, 6]
    assert specs[2] is layout["partitions"][1] and specs[5] is layout["partitions"][2]


@pytest.mark.parametrize("layout,index,number", [
    (LOGICALS_EXPLICIT, 4, 5),   # the entry after `type: extended` is partition 5
    (LOGICALS_EXPLICIT, 7, 8),
    (LOGICALS_IMPLICIT, 3, 5),   # the fourth entry becomes partition 5 behind the made extended one
    (LOGICALS_IMPLICIT, 6, 8),
])
def test_a_pinned_value_is_checked_on_its_own_partition(layout, index, number):
    table = plan_layout(layout, 320 * MiB)          # nothing bootable
    pinned = _with(layout, index, bootable=True)
    problems = _layout_differences(table, plan_layout(pinned, 320 * MiB), pinned)
    assert problems == ["partition %d has bootable False, not True" % number]


@pytest.mark.parametrize("layout,index", [
    (LOGICALS_EXPLICIT, 4),
    (LOGICALS_EXPLICIT, 5),
    (LOGICALS_IMPLICIT, 3),
    (LOGICALS_IMPLICIT, 4),
])
def test_a_value_pinned_elsewhere_does_not_count_here(layout, index):
    # the table has partition index+2's boot flag set; the layout pins only entry `index`'s flag off
    table = plan_layout(_with(layout, index + 1, bootable=True), 320 * MiB)
    pinned = _with(layout, index, bootable=False)
    assert _layout_differences(table, plan_layout(pinned, 320 * MiB), pinned) == []


def test_the_extended_entry_itself_can_pin_the_boot_flag():
    table = plan_layout(LOGICALS_EXPLICIT, 320 * MiB)
    pinned = _with(LOGICALS_EXPLICIT, 3, bootable=True)
    assert _layout_differences(table, plan_layout(pinned, 320 * MiB), pinned) == [
        "partition 4 has bootable False, not True"]


def test_an_explicit_and_an_implicit_extended_partition_lay_out_alike():
    explicit, implicit = plan_layout(LOGICALS_EXPLICIT, 320 * MiB), plan_layout(LOGICALS_IMPLICIT, 320 * MiB)
    assert _layout_differences(explicit, implicit, LOGICALS_IMPLICIT) == []
    assert _layout_differences(implicit, explicit, LOGICALS_EXPLICIT) == []


def test_gpt_attributes_count_only_when_given():
    base = {"label": "gpt", "partitions": [{"size": "8MiB", "attributes": ["read_only"]}, {}]}
    table = plan_layout(base, 64 * MiB)
    unpinned = {"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}
    assert _layout_differences(table, plan_layout(unpinned, 64 * MiB), unpinned) == []
    same = {"label": "gpt", "partitions": [{"size": "8MiB", "attributes": 1 << 60}, {}]}
    assert _layout_differences(table, plan_layout(same, 64 * MiB), same) == []
    more = {"label": "gpt", "partitions": [{"size": "8MiB", "attributes": ["read_only", "no_auto"]}, {}]}
    assert _layout_differences(table, plan_layout(more, 64 * MiB), more) == [
        "partition 1 has attributes 0x1000000000000000 (bits: 60), not 0x9000000000000000 (bits: 60, 63)"]
    none = {"label": "gpt", "partitions": [{"size": "8MiB"}, {"attributes": []}]}
    assert _layout_differences(table, plan_layout(none, 64 * MiB), none) == []


# --- state: absent with an image file: only what this module attached ------


class _FakeStatus(object):
    def __init__(self, number):
        self.number = number
        self.device = "/dev/loop%d" % number


class _FakePart(object):
    def __init__(self, disk, number):
        self.name = "%sp%d" % (disk, number)
        self.device = "/dev/" + self.name


@pytest.fixture
def fake_system(monkeypatch, tmp_path):
    """An image attached to loop7 (by this module), loop8 (by hand, partitions
    p1-p2) and loop9 (by image_mount), without touching the kernel."""
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    owners = {"loop7": "image_partitions", "loop8": None, "loop9": "image_mount"}
    parts = {"loop7": [1], "loop8": [1, 2], "loop9": []}
    busy = set()
    monkeypatch.setattr(devmapper, "available", lambda: False)
    monkeypatch.setattr(partitions_state.loopdev, "find_associated",
                        lambda path, offset=None: [_FakeStatus(n) for n in (7, 8, 9)])
    monkeypatch.setattr(partitions_state.ownership, "owner", lambda name, *a, **k: owners[name])
    monkeypatch.setattr(partitions_state.blkpg, "kernel_partitions",
                        lambda disk: dict((n, _FakePart(disk, n)) for n in parts[disk]))
    monkeypatch.setattr(partitions_state.blockdev, "busy_reasons",
                        lambda name, dev_path=None, **_kw: ["mounted at /mnt"] if name in busy else [])
    return str(image), busy


def test_absent_with_an_image_acts_only_on_its_own_attachments(fake_system):
    image, busy = fake_system
    busy.add("loop8p1")  # in use, but not ours: no refusal
    plan = partitions_state.plan_absent(image)
    assert plan.descriptions() == ["detach /dev/loop7, which this module attached"]
    assert [(s["device"], s["attached_by"], s["partitions"]) for s in plan.skipped] == [
        ("/dev/loop8", None, ["/dev/loop8p1", "/dev/loop8p2"]), ("/dev/loop9", "image_mount", [])]
    assert "all_attachments: true removes them" in plan.skipped[0]["reason"]
    assert "attached by image_mount" in plan.skipped[1]["reason"]
    assert [b["device"] for b in plan.after] == ["/dev/loop7", "/dev/loop8", "/dev/loop9"]
    assert plan.after[1]["partitions"] == ["/dev/loop8p1", "/dev/loop8p2"]  # left as they are


def test_absent_with_all_attachments_removes_partitions_but_detaches_only_its_own(fake_system):
    image, busy = fake_system
    plan = partitions_state.plan_absent(image, all_attachments=True)
    assert plan.skipped == []
    assert plan.descriptions() == [
        "detach /dev/loop7, which this module attached",
        "remove the partition devices of /dev/loop8 (attached by hand or by another tool, not by this module; "
        "it stays attached)"]
    busy.add("loop8p2")
    with pytest.raises(DiskImageError, match="partitions of /dev/loop8 are in use: /dev/loop8p2 mounted at /mnt"):
        partitions_state.plan_absent(image, all_attachments=True)


def test_absent_refuses_when_a_partition_of_its_own_attachment_is_in_use(fake_system):
    image, busy = fake_system
    busy.add("loop7p1")
    with pytest.raises(DiskImageError, match="partitions of /dev/loop7 are in use"):
        partitions_state.plan_absent(image)


# --- state: present, writing a first table: never over a filesystem or a mount ------

@pytest.fixture
def blank(monkeypatch, tmp_path):
    """A blank image file nothing is attached to, on a host without device-mapper."""
    image = tmp_path / "blank.img"
    with open(str(image), "wb") as handle:
        handle.truncate(64 * MiB)
    attached = []
    busy = {}
    monkeypatch.setattr(devmapper, "available", lambda: False)
    monkeypatch.setattr(partitions_state.loopdev, "find_associated",
                        lambda path, offset=None: [s for s in attached if offset is None or s.offset == offset])
    monkeypatch.setattr(partitions_state.blockdev, "busy_reasons",
                        lambda name, dev_path=None, **_kw: busy.get(name, []))
    return str(image), attached, busy


def _filesystem(monkeypatch, found):
    monkeypatch.setattr(partitions_state.fsprobe, "probe_path", lambda path, *a, **k: found)


def test_first_table_on_a_blank_image_is_planned(blank, monkeypatch):
    image, _attached, _busy = blank
    _filesystem(monkeypatch, None)
    plan = partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{}]})
    assert plan.descriptions()[0] == "write a gpt partition table to %s" % image


def test_first_table_over_a_filesystem_needs_force(blank, monkeypatch):
    image, _attached, _busy = blank
    _filesystem(monkeypatch, {"type": "ext4", "usage": "filesystem", "label": "data"})
    with pytest.raises(DiskImageError) as info:
        partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{}]})
    assert "has no partition table but holds ext4 (label 'data') from its first byte" in str(info.value)
    assert "set force: true to write the table over it" in str(info.value)
    plan = partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{}]}, force=True)
    assert plan.descriptions()[0].startswith("write a gpt partition table")


class _Attachment(object):
    def __init__(self, number, offset=0, read_only=False):
        self.number = number
        self.name = "loop%d" % number
        self.device = "/dev/loop%d" % number
        self.offset = offset
        self.sizelimit = 0 if not offset else MiB
        self.read_only = read_only


@pytest.mark.parametrize("attachment", [_Attachment(5, offset=17 * MiB), _Attachment(5, read_only=True)],
                         ids=["a partition mounted at its offset", "mounted read-only"])
def test_no_table_while_another_attachment_of_the_image_is_in_use(blank, monkeypatch, attachment):
    image, attached, busy = blank
    _filesystem(monkeypatch, None)
    attached.append(attachment)
    busy["loop5"] = ["mounted at /srv/p2"]
    with pytest.raises(DiskImageError, match="/dev/loop5 is in use: mounted at /srv/p2. Unmount"):
        partitions_state.plan_present(image, layout={"label": "gpt", "partitions": [{}]}, force=True)


def test_size_that_cannot_be_read_is_a_clear_error(blank, monkeypatch):
    image, _attached, _busy = blank

    def denied(path):
        raise OSError(1, "Operation not permitted", path)
    monkeypatch.setattr(partitions_state.blockdev, "file_size", denied)
    with pytest.raises(DiskImageError, match="cannot open .* to read its size: Operation not permitted.*Run as root"):
        partitions_state.plan_present(image)


# --- state: present, a map whose partition changed ----------------------------------

def _stale(old, new):
    found = kpartx_compat.FoundMap(8, "loop0p8", "part8-devnode_7:0_Wh5pYvM", 253, 7, [old])
    return [(found, kpartx_compat.MapSpec(8, "loop0p8", found.uuid, [new], False))]


class _OpenMaps(object):
    def __init__(self, open_count=0):
        self.open_count = open_count

    def info(self, name):
        return DmInfo(name, "", 253, 7, self.open_count, 0, 1, 0)


def test_a_used_map_may_grow_but_not_move_or_shrink(monkeypatch):
    monkeypatch.setattr(partitions_state, "_map_users", lambda found: ["mounted at /mnt"])
    old = Target(0, 4096, "linear", "7:0 2048")
    unused = _OpenMaps()
    partitions_state._refuse_moving_used_maps(unused, _stale(old, old._replace(length=8192)))
    for new in (old._replace(length=2048), old._replace(params="7:0 4096")):
        with pytest.raises(DiskImageError, match="loop0p8 is in use \\(mounted at /mnt\\), and the partition table "
                                                 "moves or shrinks it"):
            partitions_state._refuse_moving_used_maps(unused, _stale(old, new))
    monkeypatch.setattr(partitions_state, "_map_users", lambda found: [])
    partitions_state._refuse_moving_used_maps(unused, _stale(old, old._replace(params="7:0 4096")))
    # a program that has it open (not exclusively) uses it too
    with pytest.raises(DiskImageError, match="loop0p8 is in use \\(held open \\(open count 1\\)\\)"):
        partitions_state._refuse_moving_used_maps(_OpenMaps(1), _stale(old, old._replace(params="7:0 4096")))

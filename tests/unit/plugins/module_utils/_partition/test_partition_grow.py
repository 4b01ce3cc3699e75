# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arithmetic of growing a table: which partitions may grow, the table
on the larger disk, and what the rewritten table reads back as."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.diskimage.loop.plugins.module_utils._partition import grow
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import (
    plan_layout,
    write_layout,
    write_table,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import gpt_backup_lba, read_table

MiB = 1024 * 1024


def image_with(layout, size):
    buf = io.BytesIO(b"\0" * size)
    table = write_layout(buf, layout, size)
    return buf, table


def enlarge(buf, size):
    buf.seek(0, io.SEEK_END)
    buf.write(b"\0" * (size - buf.tell()))


def grow_in_place(buf, layout, new_size):
    """What image_partitions does to the bytes: read, plan on the new size, rewrite."""
    enlarge(buf, new_size)
    table = read_table(buf, new_size)
    backup = gpt_backup_lba(buf, new_size, table.sector_size) if table.label == "gpt" else None
    planned = plan_layout(dict(layout, disk_id=table.disk_id), new_size, table.sector_size)
    grown = grow.grown_partitions(table, planned)
    new = grow.grow_table(table, new_size, grown)
    stale = grow.stale_backup_lba(table, backup, new)
    write_table(buf, new)
    if stale is not None:
        buf.seek(stale * table.sector_size)
        buf.write(b"\0" * table.sector_size)
    return table, planned, grown, new, backup


GPT = {"label": "gpt", "partitions": [{"size": "4MiB", "type": "esp", "name": "ESP"}, {"name": "root"}]}
SEED = {"label": "dos", "partitions": [{"size": "4MiB"}] * 6 + [{"size": "rest"}]}


def test_gpt_grows_the_last_partition_and_moves_the_backup():
    buf, before = image_with(GPT, 16 * MiB)
    old = read_table(buf, 16 * MiB)
    table, planned, grown, new, backup = grow_in_place(buf, GPT, 40 * MiB)
    assert any("not at the end" in w for w in table.warnings)
    assert backup == 16 * MiB // 512 - 1
    assert list(grown) == [2]
    after = read_table(buf, 40 * MiB)
    assert after.warnings == []
    assert gpt_backup_lba(buf, 40 * MiB, 512) == 40 * MiB // 512 - 1
    assert after.last_usable_lba == 40 * MiB // 512 - 34
    # the ids stay, the geometry is the layout's
    assert [(p.uuid, p.name, p.type) for p in after.partitions] == [(p.uuid, p.name, p.type) for p in old.partitions]
    assert [(p.start, p.size) for p in after.partitions] == [(p.start, p.size) for p in planned.partitions]
    assert after.partitions[0].size == before.partitions[0].size
    # the old backup header sector is gone: no stray 'EFI PART' in the grown partition
    buf.seek(backup * 512)
    assert buf.read(8) == b"\0" * 8


def test_dos_grows_the_last_logical_and_the_extended_partition():
    buf, before = image_with(SEED, 40 * MiB)
    _table, _planned, grown, _new, _backup = grow_in_place(buf, SEED, 64 * MiB)
    assert sorted(grown) == [4, 8]
    after = read_table(buf, 64 * MiB)
    assert after.partition(8).end == after.partition(4).end == 64 * MiB
    assert [p.to_dict() for p in after.partitions if p.number not in (4, 8)] == \
        [p.to_dict() for p in before.partitions if p.number not in (4, 8)]


def test_a_rerun_on_the_grown_table_grows_nothing():
    buf, _before = image_with(GPT, 16 * MiB)
    _t, _p, _g, new, _b = grow_in_place(buf, GPT, 40 * MiB)
    table = read_table(buf, 40 * MiB)
    planned = plan_layout(dict(GPT, disk_id=table.disk_id), 40 * MiB)
    assert grow.grown_partitions(table, planned) == {}
    again = grow.grow_table(table, 40 * MiB, {})
    assert not grow.table_needs_rewrite(table, again, gpt_backup_lba(buf, 40 * MiB, 512))


def test_shrinking_the_last_partition_is_refused():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "20MiB"}]}, 40 * MiB)
    smaller = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "10MiB"}]}, 40 * MiB)
    with pytest.raises(grow.GrowthRefused, match="shrinking a partition is not supported.*at least 20971520"):
        grow.grown_partitions(table, smaller)


def test_growing_a_partition_that_others_follow_is_refused():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "4MiB"}]}, 40 * MiB)
    wider = plan_layout({"label": "gpt", "partitions": [{"size": "8MiB"}, {"size": "4MiB"}]}, 40 * MiB)
    with pytest.raises(grow.GrowthRefused, match="partition 1 cannot grow"):
        grow.grown_partitions(table, wider)


def test_moving_a_partition_is_refused():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "4MiB"}]}, 40 * MiB)
    moved = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "4MiB", "start": "16MiB"}]},
                        40 * MiB)
    with pytest.raises(grow.GrowthRefused, match="moving a partition is not supported.*Keep the partitions before it"):
        grow.grown_partitions(table, moved)


def test_other_differences_are_not_growth():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}]}, 40 * MiB)
    more = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {}]}, 40 * MiB)
    dos = plan_layout({"label": "dos", "partitions": [{"size": "4MiB"}]}, 40 * MiB)
    assert grow.grown_partitions(table, more) == {}
    assert grow.grown_partitions(table, dos) == {}


@pytest.mark.parametrize("current,wanted,message", [
    (40 * MiB, 20 * MiB, "shrinking an image is not supported"),
    (40 * MiB, 40 * MiB + 100, "not a whole number of 512-byte sectors"),
])
def test_disk_size_refusals(current, wanted, message):
    with pytest.raises(grow.GrowthRefused, match=message):
        grow.check_disk_size(current, wanted, 512)


def test_a_partition_past_the_new_end_is_refused():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {}]}, 40 * MiB)
    with pytest.raises(grow.GrowthRefused, match="partition 2 would end"):
        grow.grow_table(table, 40 * MiB, {2: 80 * MiB // 512})


def test_hybrid_mbr_and_odd_entry_counts_are_not_rewritten():
    table = plan_layout(GPT, 40 * MiB)
    table.hybrid_mbr = True
    with pytest.raises(grow.GrowthRefused, match="hybrid MBR"):
        grow.check_rewritable(table)
    table.hybrid_mbr = False
    table.entry_count = 64
    with pytest.raises(grow.GrowthRefused, match="64 partition entries"):
        grow.check_rewritable(table)


def test_usable_end_matches_the_planner():
    for sector_size in (512, 4096):
        planned = plan_layout({"label": "gpt", "partitions": [{}]}, 64 * MiB, sector_size)
        assert grow.gpt_usable_end(planned.total_sectors, sector_size) == planned.last_usable_lba


@settings(max_examples=40, deadline=None)
@given(label=st.sampled_from(["gpt", "dos"]),
       sizes=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=5),
       old_mib=st.integers(min_value=20, max_value=28),
       extra_mib=st.integers(min_value=0, max_value=16),
       sector_size=st.sampled_from([512, 4096]))
def test_growth_keeps_every_start_and_matches_the_layout(label, sizes, old_mib, extra_mib, sector_size):
    """On any layout whose last partition takes the rest, growing the disk grows
    only what nothing follows, keeps every start, and the rewritten table reads
    back exactly as the layout planned on the larger disk."""
    layout = {"label": label, "partitions": [{"size": "%dMiB" % s} for s in sizes] + [{}]}
    old_size, new_size = old_mib * MiB, (old_mib + extra_mib) * MiB
    buf = io.BytesIO(b"\0" * old_size)
    before = write_layout(buf, layout, old_size, sector_size)
    enlarge(buf, new_size)
    table = read_table(buf, new_size, sector_size)
    planned = plan_layout(dict(layout, disk_id=table.disk_id), new_size, sector_size)
    grown = grow.grown_partitions(table, planned)
    new = grow.grow_table(table, new_size, grown)
    write_table(buf, new)
    after = read_table(buf, new_size, sector_size)
    assert [p.start for p in after.partitions] == [p.start for p in before.partitions]
    assert [(p.start, p.size, p.type) for p in after.partitions] == \
        [(p.start, p.size, p.type) for p in planned.partitions]
    assert all(after.partition(n).size >= before.partition(n).size for n in grown)
    assert after.warnings == []
    if extra_mib == 0:
        assert grown == {}


@pytest.mark.parametrize("layout", [GPT, SEED], ids=["gpt", "dos-logical"])
def test_fill_disk_grows_what_a_last_rest_entry_would(layout):
    table = plan_layout(layout, 40 * MiB)
    for size in (64 * MiB, 64 * MiB + 7 * 512):  # a disk end off the 1 MiB grid: the partition ends on it
        grown = grow.fill_disk(table, size)
        assert grown and grown == grow.grown_partitions(table, plan_layout(layout, size))
        assert grow.fill_disk(grow.grow_table(table, size, grown), size) == {}  # a rerun grows nothing
    assert grow.fill_disk(table, 40 * MiB) == {}


def test_fill_disk_of_a_table_without_partitions_is_nothing():
    assert grow.fill_disk(plan_layout({"label": "gpt", "partitions": []}, 16 * MiB), 40 * MiB) == {}

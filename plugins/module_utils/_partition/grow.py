# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arithmetic of growing a partition table: pure computation, no I/O.

A table grows when the disk is larger than the table was made for and the
layout asks for more: the GPT's backup header moves to the new last sector
and its usable area ends just before the backup's entry array; a partition
that nothing follows (the last one on the disk, or the last logical one and
the extended partition around it) may end later. Everything else keeps its
place, its type and its ids - so data never moves. Shrinking a partition or
the disk, and moving a partition's start, are refused: both lose data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import GPT_ENTRY_COUNT, GPT_ENTRY_SIZE
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import (
    Partition,
    PartitionTable,
    PartitionTableError,
)


class GrowthRefused(PartitionTableError):
    """A layout that would shrink or move a partition, or a disk that would shrink."""


def gpt_usable_end(total_sectors, sector_size, entry_count=GPT_ENTRY_COUNT, entry_size=GPT_ENTRY_SIZE):
    """The last usable LBA of a GPT on ``total_sectors``: before the backup array and header."""
    array = -(-entry_count * entry_size // sector_size)
    return total_sectors - 2 - array


def check_disk_size(current, wanted, sector_size):
    """Refuse a smaller disk, or a size that is not whole sectors."""
    if wanted % sector_size:
        raise GrowthRefused("size %d is not a whole number of %d-byte sectors" % (wanted, sector_size),
                            hint="Give a multiple of %d, such as %d" % (sector_size, wanted - wanted % sector_size))
    if wanted < current:
        raise GrowthRefused(
            "the image is %d bytes, larger than size %d: shrinking an image is not supported" % (current, wanted),
            hint="Give size %d or more (shrink the filesystem and the partition with their own tools first, "
                 "then truncate the file)" % current)


def _container_end(part, table):
    """Where ``part`` may end at most: the end of its extended partition, or of the usable disk."""
    if part.kind == "logical":
        extended = [p for p in table.partitions if p.kind == "extended"]
        return extended[0].end_sector if extended else None
    if table.label == "gpt":
        return table.last_usable_lba + 1
    return table.total_sectors


def _is_last(part, table):
    """Nothing in ``table`` starts after ``part`` in the same container."""
    same = [p for p in table.partitions if p is not part and (p.kind == "logical") == (part.kind == "logical")]
    return not [p for p in same if p.start_sector >= part.end_sector]


def grown_partitions(table, planned):
    """{number: new size in sectors} of the partitions ``planned`` makes larger
    than ``table`` has them; refuses a move, a shrink, or growth of a
    partition that something follows. Other differences (types, ids, a
    partition added) are not growth: they are left to the caller's comparison,
    which is why a table whose numbers differ gives {}."""
    have = dict((p.number, p) for p in table.partitions)
    want = dict((p.number, p) for p in planned.partitions)
    if table.label != planned.label or sorted(have) != sorted(want) or table.sector_size != planned.sector_size:
        return {}
    grown = {}
    for number in sorted(want):
        old, new = have[number], want[number]
        if old.start_sector != new.start_sector:
            raise GrowthRefused(
                "partition %d starts at sector %d, and the layout puts it at sector %d: moving a partition is "
                "not supported" % (number, old.start_sector, new.start_sector),
                hint="Keep the partitions before it at their sizes and starts")
        if new.size_sectors < old.size_sectors:
            raise GrowthRefused(
                "partition %d has %d sectors, and the layout gives it %d: shrinking a partition is not supported"
                % (number, old.size_sectors, new.size_sectors),
                hint="Give partition %d a size of at least %d bytes (or omit the size of the last one to fill "
                     "the disk)" % (number, old.size))
        if new.size_sectors > old.size_sectors:
            if not _is_last(old, table):
                raise GrowthRefused(
                    "partition %d cannot grow from %d to %d sectors: partitions after it would have to move"
                    % (number, old.size_sectors, new.size_sectors),
                    hint="Only the last partition can grow: keep partition %d at %d bytes" % (number, old.size))
            grown[number] = new.size_sectors
    return grown


def fill_disk(table, disk_size, alignment=1024 * 1024):
    """{number: sectors} that makes the partition ending last fill a disk of
    ``disk_size`` bytes, as a layout's last ``rest`` entry would: ending on an
    ``alignment`` boundary like sfdisk, a last logical partition with the
    extended partition around it. {} when it fills it already, or nothing
    can grow (no partition; an extended partition that others follow)."""
    data = [p for p in table.partitions if p.kind != "extended"]
    if not data:
        return {}
    last = max(data, key=lambda p: p.end_sector)
    align = max(1, alignment // table.sector_size)
    grown = {}
    if last.kind == "logical":
        extended = [p for p in table.partitions if p.kind == "extended"][0]
        if not _is_last(extended, table):
            return {}
        wanted = _aligned_end(extended, grow_table(table, disk_size), align) - extended.start_sector
        if wanted > extended.size_sectors:
            grown[extended.number] = wanted
    wanted = _aligned_end(last, grow_table(table, disk_size, grown), align) - last.start_sector
    if wanted > last.size_sectors:
        grown[last.number] = wanted
    return grown


def _aligned_end(part, table, align):
    end = _container_end(part, table)
    return end // align * align if end // align * align > part.start_sector else end


def grow_table(table, disk_size, grown=None):
    """A copy of ``table`` on a disk of ``disk_size`` bytes with the partitions
    in ``grown`` ({number: sectors}) resized: ids, names, types and attributes
    kept; on gpt the usable area reaches the new backup. Raises when a
    partition would not fit."""
    grown = grown or {}
    total = disk_size // table.sector_size
    first_usable = last_usable = None
    if table.label == "gpt":
        first_usable = table.first_usable_lba
        last_usable = max(gpt_usable_end(total, table.sector_size), table.last_usable_lba)
    parts = []
    for part in table.partitions:
        size = grown.get(part.number, part.size_sectors)
        parts.append(Partition(part.number, part.start_sector, size, table.sector_size, part.type, part.kind,
                               uuid=part.uuid, name=part.name, bootable=part.bootable,
                               attributes=part.attributes, ebr_sector=part.ebr_sector))
    new = PartitionTable(table.label, table.disk_id, table.sector_size, disk_size, parts,
                         first_usable_lba=first_usable, last_usable_lba=last_usable,
                         entry_count=table.entry_count)
    for part in new.partitions:
        end = _container_end(part, new)
        if end is not None and part.end_sector > end:
            raise GrowthRefused("partition %d would end at sector %d, past sector %d where its space ends"
                                % (part.number, part.last_sector, end - 1),
                                hint="Make the image larger or the partition smaller")
    return new


def check_rewritable(table):
    """Refuse what rewriting the table in place would damage."""
    if table.label != "gpt":
        return
    if table.hybrid_mbr:
        raise GrowthRefused("the disk has a hybrid MBR, which growing the GPT would replace with a protective one",
                            hint="Convert the hybrid MBR to a protective one first (gdisk), or grow it by hand")
    if table.entry_count != GPT_ENTRY_COUNT:
        raise GrowthRefused("the GPT has %d partition entries, not %d: it cannot be rewritten in place"
                            % (table.entry_count, GPT_ENTRY_COUNT),
                            hint="Rewrite the table with sfdisk, which keeps its entry count")


def table_needs_rewrite(table, new, backup_lba):
    """Whether ``new`` differs on disk from ``table`` whose backup header is at
    ``backup_lba`` (None: not found or damaged)."""
    if [p.to_dict() for p in table.partitions] != [p.to_dict() for p in new.partitions]:
        return True
    if table.label != "gpt":
        return False
    return backup_lba != new.total_sectors - 1 or table.last_usable_lba != new.last_usable_lba


def stale_backup_lba(table, backup_lba, new):
    """The old backup header's LBA when it now lies in free space that a
    grown partition or the usable area will cover, so it can be erased: a
    stray 'EFI PART' sector inside a partition confuses probing tools."""
    if table.label != "gpt" or backup_lba is None or backup_lba >= new.total_sectors - 1:
        return None
    if any(p.start_sector <= backup_lba < p.end_sector for p in table.partitions):
        return None  # not ours to touch: it is inside a partition already
    return backup_lba

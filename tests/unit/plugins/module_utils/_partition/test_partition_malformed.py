# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Damaged and hostile partition tables: a named corpus, then a bounded fuzz run.

Every bad table must end in a PartitionTableError that names the problem,
never in a hang, a stray IndexError/struct.error or a huge read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import io
import json
import re
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import write_layout
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import (
    PartitionTable,
    PartitionTableError,
    read_table,
)

MiB = 1024 * 1024


# --- building images ------------------------------------------------------


def mbr_entry(start, size, ptype=0x83, boot=0):
    return struct.pack("<B3sB3sII", boot, b"\x00\x00\x00", ptype, b"\x00\x00\x00", start, size)


def put_mbr(image, sector, entries, sector_size=512):
    off = sector * sector_size
    for i in range(4):
        image[off + 446 + 16 * i:off + 462 + 16 * i] = entries[i] if i < len(entries) else bytes(16)
    image[off + 510:off + 512] = b"\x55\xaa"


def made(layout, size, sector_size=512):
    buf = io.BytesIO(bytes(size))
    table = write_layout(buf, layout, size, sector_size)
    return bytearray(buf.getvalue()), table


DOS_LAYOUT = {"label": "dos", "disk_id": 0x11223344, "alignment": "64KiB",
              "partitions": [{"size": "128KiB"}] * 3 + [{"size": "64KiB"}] * 3 + [{}]}
GPT_LAYOUT = {"label": "gpt", "disk_id": "01234567-89ab-cdef-0123-456789abcdef", "alignment": "4KiB",
              "partitions": [{"size": "64KiB", "name": "p%d" % n} for n in range(4)] + [{"name": "last"}]}


def dos_image(size=2 * MiB):
    return made(DOS_LAYOUT, size)


def gpt_image(size=MiB, sector_size=512):
    return made(GPT_LAYOUT, size, sector_size)


def read(image, size=None, sector_size=None):
    return read_table(io.BytesIO(bytes(image)), len(image) if size is None else size, sector_size)


_HEADER_FIELDS = {"header_size": (12, "<I"), "my_lba": (24, "<Q"), "alternate": (32, "<Q"),
                  "first_usable": (40, "<Q"), "last_usable": (48, "<Q"), "entries_lba": (72, "<Q"),
                  "count": (80, "<I"), "entry_size": (84, "<I")}


def header_lbas(image, sector_size):
    return 1, len(image) // sector_size - 1


def fix_crcs(image, sector_size, lba):
    """Recompute a header's CRCs as a careful attacker would (bounded like the reader)."""
    off = lba * sector_size
    hsize, = struct.unpack_from("<I", image, off + 12)
    entries_lba, count, esize = struct.unpack_from("<QII", image, off + 72)
    length = count * esize
    start = entries_lba * sector_size
    if length <= MiB and start + length <= len(image):
        struct.pack_into("<I", image, off + 88, binascii.crc32(bytes(image[start:start + length])) & 0xFFFFFFFF)
    if 92 <= hsize <= sector_size:
        struct.pack_into("<I", image, off + 16, 0)
        struct.pack_into("<I", image, off + 16, binascii.crc32(bytes(image[off:off + hsize])) & 0xFFFFFFFF)


def set_headers(image, sector_size=512, crc=True, which=(0, 1), **fields):
    for i in which:
        lba = header_lbas(image, sector_size)[i]
        for name, value in fields.items():
            off, fmt = _HEADER_FIELDS[name]
            struct.pack_into(fmt, image, lba * sector_size + off, value)
        if crc:
            fix_crcs(image, sector_size, lba)


def set_entry(image, index, sector_size=512, **fields):
    """Change entry ``index`` in both arrays and fix every CRC."""
    total = len(image) // sector_size
    for array_lba, header_lba in ((2, 1), (total - 1 - 16384 // sector_size, total - 1)):
        off = array_lba * sector_size + 128 * index
        for name, value in fields.items():
            struct.pack_into("<Q", image, off + {"first": 32, "last": 40}[name], value)
        fix_crcs(image, sector_size, header_lba)


def raises(image, message, size=None, sector_size=None):
    with pytest.raises(PartitionTableError, match=message) as info:
        read(image, size, sector_size)
    return str(info.value)


# --- MBR / EBR corpus -----------------------------------------------------


def ebrs(table):
    return [p.ebr_sector for p in table.partitions if p.kind == "logical"]


def link(image, ebr, target, ext_start, size=256):
    image[ebr * 512 + 462:ebr * 512 + 478] = mbr_entry(target - ext_start, size, 0x05)


def test_ebr_loop():
    image, table = dos_image()
    ext = table.partition(4).start_sector
    first, second = ebrs(table)[:2]
    link(image, second, first, ext)
    message = raises(image, "the EBR chain loops: the EBR at sector %d links back to the EBR at sector %d"
                     % (second, first))
    assert "fix or recreate the partition table" in message


def test_ebr_linking_to_itself():
    image, table = dos_image()
    third = ebrs(table)[2]
    link(image, third, third, table.partition(4).start_sector)
    raises(image, "loops")


def test_ebr_backward_link_into_a_logical_partition():
    image, table = dos_image()
    ext = table.partition(4).start_sector
    five = table.partition(5)
    last = ebrs(table)[-1]
    link(image, last, five.start_sector + 4, ext)
    put_mbr(image, five.start_sector + 4, [mbr_entry(1, 1)])
    raises(image, "the EBR at sector %d lies inside logical partition 5" % (five.start_sector + 4))


def test_ebr_link_outside_the_extended_partition():
    image, table = dos_image()
    ext = table.partition(4)
    link(image, ebrs(table)[1], ext.end_sector + 10, ext.start_sector)
    raises(image, r"links to sector %d, outside the extended partition 4 \(sectors %d-%d\)"
           % (ext.end_sector + 10, ext.start_sector, ext.last_sector))


def test_logical_partition_outside_the_extended_partition():
    image, table = dos_image()
    ext = table.partition(4)
    image[446 + 48:462 + 48] = mbr_entry(ext.start_sector, ext.size_sectors - 256, 0x05)
    raises(image, "logical partition 8 .* does not fit inside the extended partition 4")


def test_too_many_empty_ebrs():
    image = bytearray(2 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 2048, 0x05)])
    for n in range(150):
        put_mbr(image, 2048 + n, [mbr_entry(n + 1, 1, 0x05)])
    raises(image, "more than 100 EBRs in a row hold no partition")


def test_too_many_logical_partitions():
    image = bytearray(2 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 2048, 0x05)])
    for n in range(300):
        put_mbr(image, 2048 + 2 * n, [mbr_entry(1, 1), mbr_entry(2 * (n + 1), 2, 0x05)])
    raises(image, "more than 252 logical partitions")


def test_logical_partition_on_its_own_ebr():
    image, table = dos_image()
    first = ebrs(table)[0]
    image[first * 512 + 446:first * 512 + 462] = mbr_entry(0, 8)
    raises(image, "logical partition 5 starts on its own EBR")


def test_primary_past_the_end():
    image = bytearray(MiB)
    put_mbr(image, 0, [mbr_entry(2048, 100), mbr_entry(2000, 48), mbr_entry(1000, 1000)])
    message = raises(image, r"partition 1 \(sectors 2048-2147\) ends past the end of the image \(2048 sectors")
    assert "truncate" in message


def test_truncated_dos_image():
    image = dos_image()[0]
    raises(image, "partition 4 .* ends past the end of the image", size=MiB)


def test_overlapping_primaries():
    image = bytearray(MiB)
    put_mbr(image, 0, [mbr_entry(100, 100), mbr_entry(150, 100)])
    raises(image, r"partitions 1 \(sectors 100-199\) and 2 \(sectors 150-249\) overlap")


def test_primary_overlapping_the_extended_partition():
    image, table = dos_image()
    image[446:462] = mbr_entry(table.partition(4).start_sector + 1, 8)
    raises(image, "and 1 .* overlap|1 .* and 4 .* overlap|4 .* and 1 .* overlap")


def test_two_extended_partitions():
    image = bytearray(MiB)
    put_mbr(image, 0, [mbr_entry(100, 100, 0x05), mbr_entry(300, 100, 0x0F)])
    raises(image, "partitions 1 and 2 are both extended partitions")


def test_partition_on_the_mbr():
    image = bytearray(MiB)
    put_mbr(image, 0, [mbr_entry(0, 100)])
    raises(image, "partition 1 starts at sector 0, on top of the MBR")


# --- GPT corpus -----------------------------------------------------------


def test_bad_crc_on_both_headers():
    image = gpt_image()[0]
    for lba in header_lbas(image, 512):
        image[lba * 512 + 16] ^= 0xFF
    message = raises(image, r"both GPT headers are invalid \(primary at LBA 1: header CRC32 is 0x")
    assert "backup at LBA 2047: header CRC32" in message
    assert "recreate it" in message


def test_damaged_primary_with_good_backup_reads_with_a_warning():
    image, table = gpt_image()
    image[512:520] = b"EFI PARS"
    got = read(image)
    assert [p.to_dict() for p in got.partitions] == [p.to_dict() for p in table.partitions]
    assert len(got.warnings) == 1 and "primary GPT header is damaged" in got.warnings[0]


def test_bad_entry_array_crc_on_both():
    image = gpt_image()[0]
    image[1024 + 100] ^= 1
    image[(2047 - 32) * 512 + 100] ^= 1
    raises(image, "partition entry array CRC32 is 0x.*backup at LBA 2047: partition entry array CRC32")


@pytest.mark.parametrize("header_size", [0, 91, 513, 0xFFFFFFFF])
def test_header_size_out_of_range(header_size):
    image = gpt_image()[0]
    set_headers(image, header_size=header_size, crc=False)
    raises(image, "header size %d is outside 92-512" % header_size)


@pytest.mark.parametrize("entry_size", [0, 64, 130, 200, 8192])
def test_entry_size_not_a_multiple_of_128(entry_size):
    image = gpt_image()[0]
    set_headers(image, entry_size=entry_size)
    raises(image, "partition entry size %d is not a multiple of 128" % entry_size)


@pytest.mark.parametrize("count", [0x10000, 0xFFFFFFFF])
def test_absurd_entry_count(count):
    image = gpt_image()[0]
    set_headers(image, count=count)
    raises(image, "%d partition entries of 128 bytes is an absurd table" % count)


def test_my_lba_mismatch():
    image = gpt_image()[0]
    set_headers(image, my_lba=5)
    raises(image, "header at LBA 1 says it is at LBA 5")


def test_first_usable_after_last_usable():
    image = gpt_image()[0]
    set_headers(image, first_usable=2000, last_usable=100)
    raises(image, "first usable LBA 2000 is after last usable LBA 100")


def test_entry_array_outside_the_image():
    image = gpt_image()[0]
    set_headers(image, entries_lba=1 << 40)
    raises(image, "partition entries at LBA %d .* lie outside the image" % (1 << 40))


def test_entry_array_overlapping_the_usable_area():
    image = gpt_image()[0]
    set_headers(image, which=(0,), entries_lba=40)
    set_headers(image, which=(1,), entries_lba=40)
    raises(image, "partition entries at LBA 40-71 overlap the usable area")


def test_gpt_partition_first_after_last():
    image = gpt_image()[0]
    set_entry(image, 0, first=500, last=400)
    raises(image, "GPT partition 1 starts at LBA 500, after its last LBA 400")


def test_gpt_partition_past_the_end():
    image = gpt_image()[0]
    set_entry(image, 4, last=5000)
    raises(image, r"partition 5 \(sectors .*-5000\) ends past the end of the image \(2048 sectors")


def test_gpt_partition_outside_the_usable_area():
    image = gpt_image()[0]
    set_entry(image, 0, first=10)
    raises(image, r"GPT partition 1 \(LBA 10-.*\) lies outside the usable area LBA 34-2014")


def test_gpt_partitions_overlap():
    image, table = gpt_image()
    set_entry(image, 1, first=table.partition(1).last_sector)
    raises(image, "partitions 1 .* and 2 .* overlap")


def test_truncated_gpt_image():
    image = gpt_image(2 * MiB)[0]
    message = raises(image[:MiB], "both GPT headers are invalid")
    assert "last usable LBA 4062 is past the end of the image (2048 sectors): the image was truncated" in message


def test_protective_mbr_without_any_gpt():
    image = bytearray(MiB)
    put_mbr(image, 0, [mbr_entry(1, 2047, 0xEE)])
    raises(image, r"protective entry \(type 0xee\) but no GPT header was found .*512, 1024, 2048, 4096")


def test_gpt_4096_with_both_headers_broken():
    image = gpt_image(2 * MiB, 4096)[0]
    for lba in header_lbas(image, 4096):
        image[lba * 4096 + 20] ^= 0xFF
    raises(image, "both GPT headers are invalid")


def test_size_larger_than_the_data():
    image = gpt_image()[0]
    image[512:1024] = bytes(512)
    raises(image, "short read at offset 4193792: the image is shorter than the 4194304 bytes", size=4 * MiB)


def test_reading_a_bigger_size_than_written_is_a_grown_image():
    image = gpt_image()[0]
    assert "image was grown" in read(image, size=4 * MiB).warnings[0]


# --- fuzzing --------------------------------------------------------------


def _bases():
    bases = []
    image, table = dos_image()
    regions = [(0, 512)] + [(e * 512, 512) for e in ebrs(table)]
    bases.append(("dos", image, regions, 512))
    for size, ss in ((MiB, 512), (2 * MiB, 4096)):
        image = gpt_image(size, ss)[0]
        total = size // ss
        array = 16384
        regions = [(0, 512), (ss, 92), (2 * ss, 5 * 128), ((total - 1) * ss, 92),
                   ((total - 1) * ss - array, 5 * 128)]
        bases.append(("gpt%d" % ss, image, regions, ss))
    image = gpt_image()[0]
    image[462:478] = mbr_entry(34, 100, 0x0C, 0x80)
    bases.append(("hybrid", image, [(0, 512), (512, 92), (1024, 640)], 512))
    return bases


BASES = _bases()
_VALUES_32 = [0, 1, 2, 33, 34, 127, 128, 129, 0x7FFFFFFF, 0xFFFFFFFF]
_VALUES_64 = [0, 1, 2, 33, 34, 2047, 2048, 2049, 4095, 1 << 32, (1 << 63), (1 << 64) - 1]


class CountingDisk:
    """Counts what the reader asks for: reading must stay bounded."""

    def __init__(self, data):
        self.data = bytes(data)
        self.calls = 0
        self.bytes = 0

    def pread(self, offset, length):
        self.calls += 1
        self.bytes += length
        return self.data[offset:offset + length]


def _check_table(table, size):
    assert isinstance(table, PartitionTable)
    numbers = [p.number for p in table.partitions]
    assert len(numbers) == len(set(numbers))
    for part in table.partitions:
        assert part.size_sectors > 0 and part.start_sector > 0
        assert part.end <= size
    flat = [p for p in table.partitions if p.kind != "logical"]
    for group in (flat, [p for p in table.partitions if p.kind == "logical"]):
        ordered = sorted(group, key=lambda p: p.start)
        for prev, cur in zip(ordered, ordered[1:]):
            assert cur.start >= prev.end
    json.dumps(table.to_dict())


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_mutated_images(data):
    name, base, regions, sector_size = data.draw(st.sampled_from(BASES), label="base")
    image = bytearray(base)
    for _dummy in range(data.draw(st.integers(1, 6), label="mutations")):
        offset, length = data.draw(st.sampled_from(regions), label="region")
        kind = data.draw(st.sampled_from(["byte", "u32", "u64", "zero"]), label="kind")
        if kind == "byte":
            at = offset + data.draw(st.integers(0, length - 1))
            image[at] = data.draw(st.integers(0, 255))
        elif kind == "u32":
            at = offset + data.draw(st.integers(0, length - 4))
            struct.pack_into("<I", image, at, data.draw(st.sampled_from(_VALUES_32) | st.integers(0, 0xFFFFFFFF)))
        elif kind == "u64":
            at = offset + data.draw(st.integers(0, length - 8))
            struct.pack_into("<Q", image, at, data.draw(st.sampled_from(_VALUES_64) | st.integers(0, (1 << 64) - 1)))
        else:
            at = offset + data.draw(st.integers(0, length - 1))
            image[at:offset + length] = bytes(offset + length - at)
    if name.startswith("gpt") or name == "hybrid":
        if data.draw(st.booleans(), label="fix CRCs"):
            for lba in header_lbas(image, sector_size):
                if image[lba * sector_size:lba * sector_size + 8] == b"EFI PART":
                    fix_crcs(image, sector_size, lba)
    size = len(image) - data.draw(st.sampled_from([0, 0, 0, 512, 4096, len(image) // 2]), label="cut")
    probe = data.draw(st.sampled_from([None, None, sector_size, 512, 4096]), label="sector size")
    disk = CountingDisk(image[:size])
    try:
        table = read_table(disk, size, probe)
    except PartitionTableError as exc:
        assert str(exc)
        event("error: " + re.sub(r"[0-9a-fx]*[0-9][0-9a-fx]*", "N", str(exc))[:60])
    else:
        event("table" if table is not None else "no table")
        if table is not None:
            _check_table(table, size)
    assert disk.bytes <= 8 * MiB and disk.calls <= 30000


@settings(max_examples=100, deadline=2000)
@given(sector=st.binary(min_size=512, max_size=512), tail=st.binary(min_size=0, max_size=2048))
def test_fuzz_random_first_sectors(sector, tail):
    image = bytearray(64 * 1024)
    image[:512] = sector
    image[512:512 + len(tail)] = tail
    image[510:512] = b"\x55\xaa"
    try:
        table = read(image)
    except PartitionTableError:
        return
    if table is not None:
        _check_table(table, len(image))

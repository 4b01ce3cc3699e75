# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning and writing partition layouts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import struct

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import (
    LayoutError,
    plan_layout,
    write_layout,
    write_table,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import (
    PartitionTableError,
    read_table,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def sectors(table):
    return [(p.number, p.kind, p.start_sector, p.size_sectors) for p in table.partitions]


def memory_disk(size):
    return io.BytesIO(bytes(size))


# --- planning: placement --------------------------------------------------


def test_gpt_defaults():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "10MiB"}, {}]}, 100 * MiB)
    assert table.label == "gpt" and table.sector_size == 512 and table.size == 100 * MiB
    assert (table.first_usable_lba, table.last_usable_lba, table.entry_count) == (34, 204766, 128)
    # The rest ends on an alignment boundary, as sfdisk ends it.
    assert sectors(table) == [(1, "gpt", 2048, 20480), (2, "gpt", 22528, 202752 - 22528)]
    assert all(p.type == LINUX and p.type_alias == "linux" for p in table.partitions)
    assert table.partitions[0].uuid != table.partitions[1].uuid
    assert table.disk_id.count("-") == 4


def test_gpt_4096_sectors():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "10MiB"}, {}]}, 100 * MiB, 4096)
    assert (table.first_usable_lba, table.last_usable_lba) == (6, 25600 - 6)
    assert sectors(table) == [(1, "gpt", 256, 2560), (2, "gpt", 2816, 25344 - 2816)]


def test_sizes_in_many_forms():
    table = plan_layout({"label": "gpt", "alignment": 4096, "partitions": [
        {"size": 8192}, {"size": "1000KB"}, {"size": "10%"}, {"size": "0.5MiB"}, {"size": "rest"}]}, 64 * MiB)
    parts = table.partitions
    assert parts[0].size == 8192
    assert parts[1].size == 1000448  # 1000000 bytes rounded up to whole sectors
    assert parts[2].size == 64 * MiB // 10 // 512 * 512
    assert parts[3].size == 512 * 1024
    assert all(p.start % 4096 == 0 for p in parts)
    assert parts[4].end <= (table.last_usable_lba + 1) * 512


def test_rest_in_the_middle_keeps_alignment():
    table = plan_layout({"label": "gpt", "partitions": [{"size": "4MiB"}, {"size": "rest"}, {"size": "8MiB"}]},
                        64 * MiB)
    one, rest, last = table.partitions
    assert rest.start == 5 * MiB and rest.end == last.start
    assert last.start % MiB == 0 and last.size == 8 * MiB
    assert last.end <= (table.last_usable_lba + 1) * 512


def test_explicit_start_and_rest_before_it():
    table = plan_layout({"label": "gpt", "partitions": [{}, {"start": "40MiB", "size": "8MiB"}]}, 64 * MiB)
    assert sectors(table) == [(1, "gpt", 2048, 40 * 2048 - 2048), (2, "gpt", 40 * 2048, 8 * 2048)]


def test_explicit_start_unaligned_is_honoured():
    table = plan_layout({"label": "dos", "partitions": [{"start": "32KiB", "size": "1MiB"}, {"size": "1MiB"}]},
                        16 * MiB)
    assert sectors(table) == [(1, "primary", 64, 2048), (2, "primary", 4096, 2048)]


def test_alignment_of_one_sector_packs_partitions():
    table = plan_layout({"label": "gpt", "alignment": 512, "partitions": [{"size": 1024}, {"size": 512}, {}]},
                        MiB)
    assert sectors(table) == [(1, "gpt", 34, 2), (2, "gpt", 36, 1), (3, "gpt", 37, 2048 - 34 - 37 + 1)]


def test_dos_four_primaries():
    table = plan_layout({"label": "dos", "disk_id": "0xdeadbeef", "partitions": [
        {"size": "1MiB", "bootable": True}, {"size": "1MiB", "type": "swap"}, {"size": "1MiB"}, {}]}, 16 * MiB)
    assert [p.kind for p in table.partitions] == ["primary"] * 4
    assert table.disk_id == "0xdeadbeef"
    assert [p.uuid for p in table.partitions] == ["deadbeef-0%d" % n for n in range(1, 5)]
    assert table.partitions[0].bootable and table.partitions[1].type == "0x82"
    assert table.partitions[3].end == 16 * MiB


def test_dos_seed_layout_from_the_note():
    # Three primaries, an extended one, four logical ones: /dev/loop1p1..p8 in the seed.
    table = plan_layout({"label": "dos", "partitions": [{"size": "10MiB"}] * 6 + [{}]}, 100 * MiB)
    assert sectors(table) == [
        (1, "primary", 2048, 20480), (2, "primary", 22528, 20480), (3, "primary", 43008, 20480),
        (4, "extended", 63488, 141312),
        (5, "logical", 65536, 20480), (6, "logical", 88064, 20480), (7, "logical", 110592, 20480),
        (8, "logical", 133120, 71680),
    ]
    assert [p.ebr_sector for p in table.partitions[4:]] == [63488, 86016, 108544, 131072]
    assert table.partitions[3].type == "0x05"


def test_dos_explicit_extended():
    table = plan_layout({"label": "dos", "partitions": [
        {"size": "4MiB"}, {"type": "extended"}, {"size": "4MiB"}, {"size": "3MiB", "bootable": True}]}, 64 * MiB)
    assert sectors(table) == [(1, "primary", 2048, 8192), (2, "extended", 10240, 131072 - 10240),
                              (5, "logical", 12288, 8192), (6, "logical", 22528, 6144)]
    assert table.partition(6).bootable


def test_dos_extended_sized_to_its_logicals_when_a_primary_takes_the_rest():
    table = plan_layout({"label": "dos", "partitions": [
        {"size": "4MiB"}, {}, {"type": "extended"}, {"size": "4MiB"}, {"size": "2MiB"}]}, 64 * MiB)
    ext = table.partition(3)
    assert ext.end == table.partition(6).end and ext.end <= 64 * MiB
    assert table.partition(2).end == ext.start


def test_dos_empty_extended_and_logical_rest():
    table = plan_layout({"label": "dos", "partitions": [{"type": "extended", "size": "8MiB"}]}, 16 * MiB)
    assert sectors(table) == [(1, "extended", 2048, 16384)]
    table = plan_layout({"label": "dos", "partitions": [{"type": "0x85", "size": "8MiB"}, {}]}, 16 * MiB)
    assert table.partition(5).end == table.partition(1).end


def test_seed_gives_the_same_ids():
    layout = {"label": "gpt", "seed": "my image", "partitions": [{"size": "1MiB"}, {}]}
    one, two = plan_layout(layout, 16 * MiB), plan_layout(layout, 16 * MiB)
    assert one.to_dict() == two.to_dict()
    other = plan_layout(dict(layout, seed="other"), 16 * MiB)
    assert other.disk_id != one.disk_id
    assert plan_layout({"label": "dos", "seed": 1, "partitions": [{}]}, MiB * 4).disk_id == \
        plan_layout({"label": "dos", "seed": 1, "partitions": [{}]}, MiB * 4).disk_id
    assert plan_layout({"label": "gpt", "partitions": [{}]}, 4 * MiB).disk_id != \
        plan_layout({"label": "gpt", "partitions": [{}]}, 4 * MiB).disk_id


def test_gpt_fields():
    table = plan_layout({"label": "gpt", "disk_id": "{ABCDEF01-2345-6789-ABCD-EF0123456789}", "partitions": [
        {"size": "1MiB", "name": "x" * 36, "uuid": "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "type": "home",
         "attributes": ["required", "no-auto", "read-only", "48"]},
        {"size": "1MiB", "attributes": "0x4", "bootable": False},
        {"size": "1MiB", "attributes": "growfs, hidden"},
        {"size": "1MiB", "type": "root", "bootable": True},
    ], "architecture": "aarch64"}, 16 * MiB)
    one, two, three, four = table.partitions
    assert table.disk_id == "abcdef01-2345-6789-abcd-ef0123456789"
    assert one.uuid == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" and one.name == "x" * 36 and one.type_alias == "home"
    assert one.attributes == (1 << 0) | (1 << 63) | (1 << 60) | (1 << 48)
    assert two.attributes == 4 and two.bootable
    assert three.attributes == (1 << 59) | (1 << 62)
    assert four.attributes == 4 and four.bootable and four.type_alias == "root-arm64"


# --- planning: errors -----------------------------------------------------


@pytest.mark.parametrize("layout, size, message", [
    ({"label": "gpt", "partitions": [{"size": "20MiB"}]}, 16 * MiB, "partitions.0. does not fit"),
    ({"label": "dos", "partitions": [{"size": "8MiB"}, {"size": "8MiB"}]}, 16 * MiB, r"partitions\[1\] does not fit"),
    ({"label": "gpt", "partitions": [{}, {"size": "rest"}]}, 16 * MiB, r"partitions\[0\] and partitions\[1\] all ask"),
    ({"label": "gpt", "partitions": [{"size": "16MiB"}, {}]}, 17 * MiB + 16384, r"partitions\[1\] takes the rest"),
    ({"label": "gpt", "partitions": [{"size": "150%"}]}, 16 * MiB, "not a percentage"),
    ({"label": "gpt", "partitions": [{"size": "0%"}]}, 16 * MiB, "not a percentage"),
    ({"label": "gpt", "partitions": [{"size": "x%"}]}, 16 * MiB, "not a percentage"),
    ({"label": "gpt", "partitions": [{"size": "0.0000001%"}]}, 16 * MiB, "less than one sector"),
    ({"label": "gpt", "partitions": [{"size": 0}]}, 16 * MiB, "must be more than 0"),
    ({"label": "gpt", "partitions": [{"size": "lots"}]}, 16 * MiB, "is not a size"),
    ({"label": "gpt", "partitions": [{"type": "wat"}]}, 16 * MiB, r"partitions\[0\].type: unknown partition type"),
    ({"label": "gpt", "partitions": [{"type": "extended"}]}, 16 * MiB, "exists only on dos"),
    ({"label": "dos", "partitions": [{"type": "home"}]}, 16 * MiB, "exists only on gpt"),
    ({"label": "gpt", "partitions": [{}] * 129}, GiB, "more than the 128 entries"),
    ({"label": "dos", "partitions": [{"size": "1MiB"}] * 260}, GiB, "logical partitions is more than"),
    ({"label": "dos", "partitions": [{}, {}, {}, {}, {"type": "extended"}]}, GiB, "one of the first four"),
    ({"label": "dos", "partitions": [{"type": "extended"}, {"type": "0x0f"}]}, GiB, "are all extended"),
    ({"label": "dos", "partitions": [{"name": "boot"}]}, GiB, "dos partitions have no names"),
    ({"label": "dos", "partitions": [{"uuid": LINUX}]}, GiB, "Set disk_id instead"),
    ({"label": "dos", "partitions": [{"attributes": 4}]}, GiB, "attributes exist only on gpt"),
    ({"label": "dos", "partitions": [{"size": "1MiB"}] * 4 + [{"start": "100MiB"}]}, GiB, "cannot be given a start"),
    ({"label": "gpt", "partitions": [{"name": "x" * 37}]}, GiB, "longer than 36"),
    ({"label": "gpt", "partitions": [{"name": "a\x00b"}]}, GiB, "NUL"),
    ({"label": "gpt", "partitions": [{"uuid": "nope"}]}, GiB, r"partitions\[0\].uuid 'nope' is not a GUID"),
    ({"label": "gpt", "partitions": [{"size": "1M", "uuid": LINUX}, {"uuid": LINUX}]}, GiB, "same uuid"),
    ({"label": "gpt", "partitions": [{"attributes": [64]}]}, GiB, "not a bit number"),
    ({"label": "gpt", "partitions": [{"attributes": 1 << 64}]}, GiB, "does not fit in 64 bits"),
    ({"label": "gpt", "partitions": [{"attributes": True}]}, GiB, "not a boolean"),
    ({"label": "gpt", "partitions": [{"attributes": 1.5}]}, GiB, "not a number or a list"),
    ({"label": "gpt", "partitions": [{"size": "1MiB", "start": "4MiB"}, {"start": "2MiB"}]}, GiB,
     "lies before sector 10240"),
    ({"label": "gpt", "partitions": [{"start": 1000}]}, GiB, "not a multiple of the 512-byte sector"),
    ({"label": "gpt", "partitions": [{"start": 0}]}, GiB, "lies before sector 34"),
    ({"label": "gpt", "partitions": [{"szie": 1}]}, GiB, r"partitions\[0\] has unknown key szie"),
    ({"label": "gpt", "partitions": ["big"]}, GiB, r"partitions\[0\] must be a mapping"),
    ({"label": "gpt", "partitions": "big"}, GiB, "must be a list"),
    ({"label": "gpt", "sizes": 1}, GiB, "unknown key sizes"),
    ({"label": "bsd"}, GiB, "not dos or gpt"),
    ({}, GiB, "not dos or gpt"),
    ({"label": "gpt", "alignment": 1000}, GiB, "alignment 1000 is not a positive multiple"),
    ({"label": "gpt", "alignment": 0}, GiB, "alignment 0"),
    ({"label": "gpt", "disk_id": "0x1234"}, GiB, "disk_id '0x1234' is not a GUID"),
    ({"label": "dos", "disk_id": "0x123456789"}, GiB, "not a 32-bit hex number"),
    ({"label": "dos", "disk_id": "zz"}, GiB, "not a 32-bit hex number"),
    ({"label": "gpt", "partitions": [{}]}, 20 * 1024, "too small for a GPT"),
    ({"label": "dos", "partitions": [{}]}, 1024, "too small for a partition table"),
    ({"label": "dos", "partitions": [{"size": "3TiB"}]}, 4 * 1024 * GiB, "beyond what dos can address"),
])
def test_layout_errors(layout, size, message):
    with pytest.raises(LayoutError, match=message):
        plan_layout(layout, size)


def test_layout_error_is_a_partition_table_error():
    assert issubclass(LayoutError, PartitionTableError) and issubclass(LayoutError, DiskImageError)


@pytest.mark.parametrize("sector_size, disk_size", [(1000, MiB), (512, -1), (512, "1G"), (512, True)])
def test_bad_arguments(sector_size, disk_size):
    with pytest.raises(LayoutError):
        plan_layout({"label": "gpt"}, disk_size, sector_size)


def test_dos_at_4096_reaches_16_tib():
    table = plan_layout({"label": "dos", "partitions": [{"size": "3TiB"}]}, 4 * 1024 * GiB, 4096)
    assert table.partitions[0].size == 3 * 1024 * GiB


# --- writing --------------------------------------------------------------


@pytest.mark.parametrize("sector_size", [512, 4096])
@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_write_reads_back(label, sector_size):
    parts = [{"size": "2MiB", "type": "esp", "bootable": True}, {"size": "3MiB", "type": "swap"}, {"size": "1MiB"},
             {"size": "2MiB"}, {"size": "1MiB", "type": "lvm"}, {}]
    if label == "gpt":
        parts[0]["name"] = "EFI"
    disk = memory_disk(32 * MiB)
    planned = write_layout(disk, {"label": label, "partitions": parts}, 32 * MiB, sector_size)
    got = read_table(disk, 32 * MiB, sector_size)
    assert got.to_dict() == planned.to_dict()
    assert read_table(disk, 32 * MiB).to_dict() == planned.to_dict() or label == "dos"


def test_write_keeps_boot_code_and_wipes_stale_gpt(tmp_path):
    path = tmp_path / "disk.img"
    with open(str(path), "wb") as handle:
        handle.truncate(16 * MiB)
    with open(str(path), "r+b") as handle:
        write_layout(handle, {"label": "gpt", "partitions": [{}]}, 16 * MiB)
        handle.seek(0)
        handle.write(b"\xfa\xeb\x63GRUB" + b"\x90" * 300)
        table = write_layout(handle, {"label": "dos", "partitions": [{"size": "1MiB"}, {}]}, 16 * MiB)
        handle.seek(0)
        first = handle.read(1024)
        handle.seek(16 * MiB - 512)
        last = handle.read(512)
        back = read_table(handle, 16 * MiB)
    assert first.startswith(b"\xfa\xeb\x63GRUB")
    assert first[512:520] != b"EFI PART" and not last.startswith(b"EFI PART")
    assert back.warnings == [] and back.to_dict() == table.to_dict()


def test_write_does_not_keep_a_filesystem_boot_sector():
    disk = memory_disk(8 * MiB)
    for offset, data in ((0, b"\xeb\x3c\x90mkfs.fat"), (0x52, b"FAT32   "), (510, b"\x55\xaa")):
        disk.seek(offset)
        disk.write(data)
    write_layout(disk, {"label": "dos", "partitions": [{}]}, 8 * MiB)
    assert disk.getvalue()[:440] == bytes(440)


def test_write_table_on_pread_pwrite_object():
    class Disk:
        def __init__(self, size):
            self.data = bytearray(size)

        def pread(self, offset, length):
            return bytes(self.data[offset:offset + length])

        def pwrite(self, offset, data):
            self.data[offset:offset + len(data)] = data

    disk = Disk(8 * MiB)
    table = plan_layout({"label": "gpt", "seed": "x", "partitions": [{"size": "1MiB"}, {}]}, 8 * MiB)
    assert write_table(disk, table) is table
    assert len(disk.data) == 8 * MiB
    assert read_table(disk, 8 * MiB).to_dict() == table.to_dict()


def test_write_layout_mbr_bytes():
    disk = memory_disk(8 * MiB)
    write_layout(disk, {"label": "dos", "disk_id": 0x01020304, "partitions": [{"size": "1MiB", "bootable": True}]},
                 8 * MiB)
    raw = disk.getvalue()
    assert raw[440:446] == b"\x04\x03\x02\x01\x00\x00"
    # boot flag, CHS 0/32/33, type, CHS 0/65/2 (end 4095), LBA 2048, 2048 sectors: as fdisk writes it.
    assert raw[446:462] == b"\x80\x20\x21\x00\x83\x41\x01\x00" + struct.pack("<II", 2048, 2048)
    assert raw[510:512] == b"\x55\xaa"


def test_write_error_is_wrapped():
    class ReadOnly(io.BytesIO):
        def write(self, data):
            raise OSError(30, "Read-only file system")

    with pytest.raises(DiskImageError, match="Read-only file system"):
        write_layout(ReadOnly(bytes(4 * MiB)), {"label": "dos", "partitions": [{}]}, 4 * MiB)


def test_odd_disk_size_is_kept():
    table = plan_layout({"label": "gpt", "partitions": [{}]}, 16 * MiB + 700)
    assert table.size == 16 * MiB + 700 and table.total_sectors == 16 * 2048 + 1
    disk = memory_disk(16 * MiB + 700)
    write_table(disk, table)
    assert read_table(disk, 16 * MiB + 700).to_dict() == table.to_dict()


def test_write_table_refuses_what_it_cannot_write():
    table = read_table(memory_disk(0), 0)
    assert table is None
    gpt = plan_layout({"label": "gpt", "partitions": [{}]}, 4 * MiB)
    gpt.partitions[0].number = 200
    with pytest.raises(PartitionTableError, match="do not fit in 128 GPT entries"):
        write_table(memory_disk(4 * MiB), gpt)
    dos = plan_layout({"label": "dos", "partitions": [{"size": "64KiB"}] * 5, "alignment": "64KiB"}, 4 * MiB)
    dos.partitions[-1].ebr_sector = None
    with pytest.raises(PartitionTableError, match="need one extended partition and EBR sectors"):
        write_table(memory_disk(4 * MiB), dos)


def test_rewriting_a_table_read_from_disk():
    disk = memory_disk(8 * MiB)
    first = write_layout(disk, {"label": "dos", "alignment": "64KiB", "partitions": [{"size": "1MiB"}] * 6 + [{}]},
                         8 * MiB)
    copy = memory_disk(8 * MiB)
    write_table(copy, read_table(disk, 8 * MiB))
    assert read_table(copy, 8 * MiB).to_dict() == first.to_dict()

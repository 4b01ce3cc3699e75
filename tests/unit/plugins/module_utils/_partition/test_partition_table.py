# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The partition table reader on hand-made and self-written images."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import io
import json
import struct
import uuid

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import write_layout
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import (
    Partition,
    PartitionTable,
    PartitionTableError,
    read_table,
)

MiB = 1024 * 1024
LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def mbr_entry(start, size, ptype=0x83, boot=0):
    return struct.pack("<B3sB3sII", boot, b"\x00\x00\x00", ptype, b"\x00\x00\x00", start, size)


def put_mbr(image, offset, entries, disk_id=0):
    image[offset + 440:offset + 444] = struct.pack("<I", disk_id)
    for i in range(4):
        entry = entries[i] if i < len(entries) else b"\x00" * 16
        image[offset + 446 + 16 * i:offset + 462 + 16 * i] = entry
    image[offset + 510:offset + 512] = b"\x55\xaa"


def new_image(size):
    return bytearray(size)


def read(image, size=None, sector_size=None):
    return read_table(io.BytesIO(bytes(image)), len(image) if size is None else size, sector_size)


def written(layout, size=8 * MiB, sector_size=512):
    buf = io.BytesIO(bytes(size))
    write_layout(buf, layout, size, sector_size)
    return bytearray(buf.getvalue())


def fix_gpt_crcs(image, sector_size, lba):
    """Recompute the CRCs of the GPT header at ``lba`` after a test changed it."""
    off = lba * sector_size
    hsize, = struct.unpack_from("<I", image, off + 12)
    entries_lba, count, esize = struct.unpack_from("<QII", image, off + 72)
    array = bytes(image[entries_lba * sector_size:entries_lba * sector_size + count * esize])
    struct.pack_into("<I", image, off + 88, binascii.crc32(array) & 0xFFFFFFFF)
    struct.pack_into("<I", image, off + 16, 0)
    struct.pack_into("<I", image, off + 16, binascii.crc32(bytes(image[off:off + hsize])) & 0xFFFFFFFF)


# --- no table -------------------------------------------------------------


def test_no_table_on_zeroes():
    assert read(new_image(MiB)) is None


def test_no_table_on_tiny_image():
    assert read_table(io.BytesIO(b"\x55\xaa"), 2) is None
    assert read_table(io.BytesIO(b""), 0) is None


def test_fat_boot_sector_is_not_a_table():
    image = new_image(MiB)
    image[0:3] = b"\xeb\x58\x90"
    image[0x52:0x5A] = b"FAT32   "
    image[510:512] = b"\x55\xaa"
    assert read(image) is None
    # mkfs.fat may write a whole-disk entry starting at sector 0 into its boot sector.
    image[446:462] = mbr_entry(0, 2048, 0x0C, 0x80)
    assert read(image) is None


def test_bad_boot_flag_is_not_a_table():
    image = new_image(MiB)
    put_mbr(image, 0, [mbr_entry(2048, 10, boot=0x12)])
    assert read(image) is None


def test_old_fat_bpb_in_boot_code_does_not_hide_a_table():
    image = new_image(2 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 2048)], disk_id=0xDEADBEEF)
    image[0x52:0x5A] = b"FAT32   "
    table = read(image)
    assert table.label == "dos" and [p.number for p in table.partitions] == [1]


# --- dos ------------------------------------------------------------------


def test_dos_primaries_keep_their_slots():
    image = new_image(4 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 1024, 0x83, 0x80), b"\x00" * 16, mbr_entry(4096, 2048, 0x82)],
            disk_id=0x0A0B0C0D)
    table = read(image)
    assert table.label == "dos"
    assert table.disk_id == "0x0a0b0c0d"
    assert table.sector_size == 512 and table.size == 4 * MiB
    assert table.first_usable_lba is None and table.entry_count is None
    assert [p.number for p in table.partitions] == [1, 3]
    one, three = table.partitions
    assert (one.start, one.size, one.end, one.last_sector) == (MiB, 512 * 1024, MiB + 512 * 1024, 2048 + 1023)
    assert (one.type, one.type_alias, one.bootable, one.kind) == ("0x83", "linux", True, "primary")
    assert (three.type, three.type_alias, three.bootable) == ("0x82", "swap", False)
    assert one.uuid == "0a0b0c0d-01" and three.uuid == "0a0b0c0d-03"
    assert table.partition(3) is three and table.partition(2) is None
    assert table.warnings == []


def test_empty_dos_table():
    image = new_image(MiB)
    put_mbr(image, 0, [], disk_id=0x1234)
    table = read(image)
    assert table.label == "dos" and table.partitions == [] and table.disk_id == "0x00001234"


def test_dos_extended_chain():
    # ext at 2048..; EBR at 2048 -> logical at 4096; link to EBR at 8192 -> logical at 10240.
    image = new_image(8 * MiB)
    put_mbr(image, 0, [mbr_entry(1024, 1024), mbr_entry(2048, 14336, 0x0F)], disk_id=0xCAFE)
    put_mbr(image, 2048 * 512, [mbr_entry(2048, 2048, 0x83, 0x80), mbr_entry(6144, 4096, 0x05)])
    put_mbr(image, 8192 * 512, [mbr_entry(2048, 4096, 0x8E)])
    table = read(image)
    got = [(p.number, p.kind, p.start_sector, p.size_sectors, p.type, p.uuid, p.ebr_sector)
           for p in table.partitions]
    assert got == [
        (1, "primary", 1024, 1024, "0x83", "0000cafe-01", None),
        (2, "extended", 2048, 14336, "0x0f", "0000cafe-02", None),
        (5, "logical", 4096, 2048, "0x83", "0000cafe-05", 2048),
        (6, "logical", 10240, 4096, "0x8e", "0000cafe-06", 8192),
    ]
    assert table.partition(5).bootable


def test_dos_backward_chain_reads_like_the_kernel():
    # sfdisk makes such chains when logical partitions are added out of disk order.
    image = new_image(8 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 14336, 0x05)])
    put_mbr(image, 2048 * 512, [mbr_entry(12000, 100), mbr_entry(10000 - 2048, 200, 0x05)])
    put_mbr(image, 10000 * 512, [mbr_entry(10, 100), mbr_entry(5000 - 2048, 200, 0x05)])
    put_mbr(image, 5000 * 512, [mbr_entry(10, 100)])
    table = read(image)
    assert [(p.number, p.start_sector) for p in table.partitions] == [(1, 2048), (5, 14048), (6, 10010), (7, 5010)]


def test_dos_empty_extended_partition():
    image = new_image(4 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 4096, 0x05)])
    table = read(image)
    assert [p.kind for p in table.partitions] == ["extended"]
    assert table.warnings == []


def test_dos_ebr_without_signature_ends_the_chain_with_a_warning():
    image = new_image(4 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 4096, 0x05)])
    put_mbr(image, 2048 * 512, [mbr_entry(100, 100), mbr_entry(1000, 100, 0x05)])
    image[(3048) * 512 + 446] = 1  # junk, no signature
    table = read(image)
    assert [p.number for p in table.partitions] == [1, 5]
    assert "no 0x55AA signature" in table.warnings[0]


def test_dos_with_explicit_4096_sectors():
    image = new_image(16 * MiB)
    put_mbr(image, 0, [mbr_entry(256, 512)], disk_id=1)
    table = read(image, sector_size=4096)
    assert table.sector_size == 4096
    assert (table.partitions[0].start, table.partitions[0].size) == (MiB, 2 * MiB)


def test_stale_gpt_header_on_dos_warns():
    image = new_image(2 * MiB)
    put_mbr(image, 0, [mbr_entry(2048, 1024)])
    image[512:520] = b"EFI PART"
    table = read(image)
    assert table.label == "dos"
    assert "not protective" in table.warnings[0]


# --- gpt ------------------------------------------------------------------

GPT_LAYOUT = {
    "label": "gpt",
    "disk_id": "01234567-89ab-cdef-0123-456789abcdef",
    "alignment": "64KiB",
    "partitions": [
        {"size": "1MiB", "type": "esp", "name": "EFI System", "uuid": "11111111-2222-3333-4444-555555555555"},
        {"size": "2MiB", "type": "root-x86-64", "name": "röot Ω 文", "attributes": [60, 63]},
        {"type": "swap", "bootable": True},
    ],
}


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_gpt_read_with_probed_sector_size(sector_size):
    image = written(GPT_LAYOUT, 8 * MiB, sector_size)
    table = read(image)
    assert table.label == "gpt" and table.sector_size == sector_size
    assert table.disk_id == "01234567-89ab-cdef-0123-456789abcdef"
    assert table.entry_count == 128
    assert table.first_usable_lba == (34 if sector_size == 512 else 6)
    assert table.last_usable_lba == 8 * MiB // sector_size - table.first_usable_lba
    esp, root, swap = table.partitions
    assert (esp.number, esp.kind, esp.start, esp.size, esp.name) == (1, "gpt", 64 * 1024, MiB, "EFI System")
    assert esp.uuid == "11111111-2222-3333-4444-555555555555"
    assert esp.type == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" and esp.type_alias == "esp"
    assert root.name == u"röot Ω 文" and root.attributes == (1 << 60) | (1 << 63) and not root.bootable
    assert root.type_alias == "root-x86-64"
    assert swap.bootable and swap.attributes == 4
    assert table.warnings == []
    assert read(image, sector_size=sector_size).to_dict() == table.to_dict()
    json.dumps(table.to_dict())


def test_gpt_at_the_wrong_explicit_sector_size():
    image = written(GPT_LAYOUT, 8 * MiB, 4096)
    with pytest.raises(PartitionTableError, match="no GPT header was found"):
        read(image, sector_size=512)


def test_gpt_entry_holes_keep_numbers():
    image = written(GPT_LAYOUT)
    entry = 1024 + 128  # second entry of the primary array
    image[entry:entry + 128] = bytes(128)
    backup = (8 * MiB // 512 - 33) * 512 + 128
    image[backup:backup + 128] = bytes(128)
    fix_gpt_crcs(image, 512, 1)
    fix_gpt_crcs(image, 512, 8 * MiB // 512 - 1)
    table = read(image)
    assert [p.number for p in table.partitions] == [1, 3]
    assert table.warnings == []


def test_gpt_damaged_primary_uses_backup():
    image = written(GPT_LAYOUT)
    image[512 + 40] ^= 0xFF  # first usable LBA, header CRC now wrong
    table = read(image)
    assert [p.number for p in table.partitions] == [1, 2, 3]
    assert len(table.warnings) == 1
    assert "primary GPT header is damaged" in table.warnings[0] and "CRC32" in table.warnings[0]


def test_gpt_damaged_entry_array_uses_backup():
    image = written(GPT_LAYOUT)
    image[1024 + 60] ^= 0x01
    table = read(image)
    assert "entry array CRC32" in table.warnings[0]
    assert table.partitions[0].name == "EFI System"


def test_gpt_wiped_primary_uses_backup():
    image = written(GPT_LAYOUT)
    image[512:1024] = bytes(512)
    table = read(image)
    assert "no 'EFI PART' signature" in table.warnings[0]


def test_gpt_damaged_backup_warns():
    image = written(GPT_LAYOUT)
    image[-512 + 30] ^= 0xFF
    table = read(image)
    assert len(table.partitions) == 3
    assert "backup GPT header at LBA" in table.warnings[0]


def test_gpt_on_a_grown_image_warns():
    image = written(GPT_LAYOUT) + bytearray(MiB)
    table = read(image)
    assert table.size == 9 * MiB
    assert "image was grown" in table.warnings[0]
    assert "protective MBR covers" in table.warnings[1]


def test_gpt_without_protective_mbr():
    image = written(GPT_LAYOUT)
    image[0:512] = bytes(512)
    table = read(image)
    assert table.label == "gpt" and "no protective MBR" in table.warnings[0]


def test_gpt_backup_only_without_mbr_is_no_table():
    image = written(GPT_LAYOUT)
    image[0:1024] = bytes(1024)
    assert read(image) is None


def test_hybrid_mbr_is_gpt():
    image = written(GPT_LAYOUT)
    image[446 + 16:446 + 32] = mbr_entry(128, 2048, 0xEF, 0x80)
    table = read(image)
    assert table.label == "gpt" and table.hybrid_mbr
    assert [p.number for p in table.partitions] == [1, 2, 3]
    assert table.warnings == []


# --- sources --------------------------------------------------------------


class PreadDisk:
    def __init__(self, data):
        self.data = bytes(data)
        self.reads = 0

    def pread(self, offset, length):
        self.reads += 1
        return self.data[offset:offset + length]


def test_pread_source():
    image = written(GPT_LAYOUT)
    disk = PreadDisk(image)
    table = read_table(disk, len(image))
    assert len(table.partitions) == 3
    assert disk.reads < 20


def test_real_file(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(written(GPT_LAYOUT)))
    with open(str(path), "rb") as handle:
        assert len(read_table(handle, path.stat().st_size).partitions) == 3


def test_image_shorter_than_said():
    image = written(GPT_LAYOUT)
    with pytest.raises(PartitionTableError, match="short read") as info:
        read_table(io.BytesIO(bytes(image[:4 * MiB])), len(image))
    assert isinstance(info.value, DiskImageError)


def test_os_error_is_wrapped():
    class Broken:
        def pread(self, offset, length):
            raise OSError(5, "Input/output error")

    with pytest.raises(PartitionTableError, match="Input/output error"):
        read_table(Broken(), MiB)


@pytest.mark.parametrize("bad", [0, 100, 3000, 131072, "512"])
def test_bad_sector_size(bad):
    with pytest.raises(PartitionTableError, match="sector size"):
        read_table(io.BytesIO(bytes(MiB)), MiB, bad)


# --- model ----------------------------------------------------------------


def test_partition_model():
    part = Partition(2, 2048, 4096, 512, LINUX, "gpt", uuid="u", name="n", attributes=5, bootable=True)
    assert (part.start, part.size, part.end, part.end_sector, part.last_sector) == (MiB, 2 * MiB, 3 * MiB, 6144, 6143)
    assert part.label == "gpt" and part.type_alias == "linux"
    assert part.to_dict() == {
        "number": 2, "kind": "gpt", "start": MiB, "size": 2 * MiB, "end": 3 * MiB, "start_sector": 2048,
        "size_sectors": 4096, "type": LINUX, "type_alias": "linux", "name": "n", "uuid": "u", "bootable": True,
        "attributes": 5,
    }
    assert part == Partition(2, 2048, 4096, 512, LINUX, "gpt", uuid="u", name="n", attributes=5, bootable=True)
    assert part != Partition(2, 2048, 4097, 512, LINUX, "gpt", uuid="u", name="n", attributes=5, bootable=True)
    assert "Partition(2" in repr(part)


def test_table_model_orders_partitions():
    parts = [Partition(n, n * 100, 10, 512, "0x83", "primary") for n in (3, 1, 2)]
    table = PartitionTable("dos", "0x00000001", 512, MiB, parts)
    assert [p.number for p in table.partitions] == [1, 2, 3]
    assert table.total_sectors == 2048
    assert table.to_dict()["partitions"][0]["number"] == 1
    assert "PartitionTable(dos" in repr(table)


def test_guid_byte_order():
    image = written(GPT_LAYOUT)
    raw = bytes(image[1024:1040])
    assert raw == uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").bytes_le
    assert raw[:4] == b"\x28\x73\x2a\xc1"

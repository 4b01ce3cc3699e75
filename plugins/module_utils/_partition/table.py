# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read MBR (dos) and GPT partition tables from an image or a block device.

``read_table(dev, size)`` returns a PartitionTable or None when the image has
no partition table. Anything malformed raises PartitionTableError with a
message naming the problem and the fix; reading never hangs, never reads
more than a bounded amount and never raises anything else for bad data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import bisect
import struct
import uuid as _uuid

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import (
    DOS_PROTECTIVE,
    format_dos_type,
    is_extended,
    type_alias,
)

MBR_SIGNATURE = b"\x55\xaa"
GPT_SIGNATURE = b"EFI PART"
PROBE_SECTOR_SIZES = (512, 1024, 2048, 4096)
GPT_HEADER_MIN = 92
GPT_ENTRY_MIN = 128
# Bounds that keep a hostile header from making us read or allocate a lot.
GPT_MAX_ENTRY_SIZE = 4096
GPT_MAX_ARRAY_BYTES = 1024 * 1024
# The kernel gives a disk at most 256 partition numbers; logicals start at 5.
DOS_MAX_NUMBER = 256
# The kernel's msdos parser gives up after 100 EBRs without progress.
DOS_MAX_EMPTY_EBRS = 100
_ZERO_GUID = b"\x00" * 16
_FS_SIGNATURES = ((3, b"NTFS    "), (3, b"EXFAT   "), (0x36, b"FAT12   "), (0x36, b"FAT16   "),
                  (0x36, b"FAT     "), (0x52, b"FAT32   "))


class PartitionTableError(DiskImageError):
    """A partition table that is damaged or inconsistent."""


class Partition:
    """One partition.

    Offsets are in bytes from the start of the disk: ``start`` is the first
    byte, ``end`` the first byte AFTER the partition (start + size, exclusive).
    ``start_sector``/``size_sectors`` are in the table's sector size and
    ``last_sector`` is inclusive, as fdisk shows it.

    ``type`` is '0x83'-style for dos and a lowercase GUID for gpt; ``uuid``
    is the PARTUUID as blkid shows it ('<disk id>-<nn>' on dos). ``kind`` is
    'primary', 'extended' or 'logical' on dos and 'gpt' on gpt. ``bootable``
    is the dos active flag, or on gpt the LegacyBIOSBootable attribute (bit 2).
    ``ebr_sector`` is where a logical partition's EBR sits (None otherwise).
    ``spec_index`` is set on a planned table only: the index of the layout entry
    the partition was made from (None for one the planner added itself, such as
    the extended partition of a dos layout with more than four entries).
    """

    def __init__(self, number, start_sector, size_sectors, sector_size, ptype, kind,
                 uuid="", name="", bootable=False, attributes=0, ebr_sector=None, spec_index=None):
        self.number = number
        self.start_sector = start_sector
        self.size_sectors = size_sectors
        self.sector_size = sector_size
        self.type = ptype
        self.kind = kind
        self.uuid = uuid
        self.name = name
        self.bootable = bool(bootable)
        self.attributes = attributes
        self.ebr_sector = ebr_sector
        self.spec_index = spec_index

    @property
    def label(self):
        return "gpt" if self.kind == "gpt" else "dos"

    @property
    def start(self):
        return self.start_sector * self.sector_size

    @property
    def size(self):
        return self.size_sectors * self.sector_size

    @property
    def end(self):
        return self.start + self.size

    @property
    def end_sector(self):
        """First sector after the partition (exclusive)."""
        return self.start_sector + self.size_sectors

    @property
    def last_sector(self):
        return self.start_sector + self.size_sectors - 1

    @property
    def type_alias(self):
        return type_alias(self.type, self.label)

    def to_dict(self):
        return {
            "number": self.number,
            "kind": self.kind,
            "start": self.start,
            "size": self.size,
            "end": self.end,
            "start_sector": self.start_sector,
            "size_sectors": self.size_sectors,
            "type": self.type,
            "type_alias": self.type_alias,
            "name": self.name,
            "uuid": self.uuid,
            "bootable": self.bootable,
            "attributes": self.attributes,
        }

    def __eq__(self, other):
        return isinstance(other, Partition) and self.to_dict() == other.to_dict()

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "Partition(%d, %s, start=%d, size=%d, type=%s)" % (
            self.number, self.kind, self.start_sector, self.size_sectors, self.type)


class PartitionTable:
    """A whole table. ``partitions`` is ordered by number; on dos it holds the
    extended partition itself (kind 'extended') besides the logical ones.

    ``disk_id`` is '0x%08x' on dos and the lowercase disk GUID on gpt; ``size``
    is the size of the disk in bytes. ``first_usable_lba``/``last_usable_lba``
    (inclusive) and ``entry_count`` are None on dos. ``warnings`` lists the
    problems that were worked around (a damaged primary GPT, say).
    """

    def __init__(self, label, disk_id, sector_size, size, partitions, first_usable_lba=None,
                 last_usable_lba=None, entry_count=None, warnings=None, hybrid_mbr=False):
        self.label = label
        self.disk_id = disk_id
        self.sector_size = sector_size
        self.size = size
        self.partitions = sorted(partitions, key=lambda p: p.number)
        self.first_usable_lba = first_usable_lba
        self.last_usable_lba = last_usable_lba
        self.entry_count = entry_count
        self.warnings = list(warnings or [])
        self.hybrid_mbr = hybrid_mbr

    @property
    def total_sectors(self):
        return self.size // self.sector_size

    def partition(self, number):
        """The partition with that number, or None."""
        for part in self.partitions:
            if part.number == number:
                return part
        return None

    def to_dict(self):
        return {
            "label": self.label,
            "disk_id": self.disk_id,
            "sector_size": self.sector_size,
            "size": self.size,
            "first_usable_lba": self.first_usable_lba,
            "last_usable_lba": self.last_usable_lba,
            "entry_count": self.entry_count,
            "hybrid_mbr": self.hybrid_mbr,
            "partitions": [p.to_dict() for p in self.partitions],
            "warnings": list(self.warnings),
        }

    def __repr__(self):
        return "PartitionTable(%s, %s, %r)" % (self.label, self.disk_id, self.partitions)


# --- reading bytes --------------------------------------------------------


class _Source:
    """Bounded reads from a file object or anything with pread(offset, length)."""

    def __init__(self, dev, size):
        self.dev = dev
        self.size = size

    def read(self, offset, length):
        if offset < 0 or offset + length > self.size:
            raise PartitionTableError(
                "the partition table points at bytes %d-%d, past the end of the image (%d bytes)"
                % (offset, offset + length - 1, self.size),
                hint="The image was truncated or the table belongs to a bigger disk")
        try:
            if hasattr(self.dev, "pread"):
                data = self.dev.pread(offset, length)
            else:
                self.dev.seek(offset)
                data = self._read_fully(length)
        except OSError as exc:
            raise PartitionTableError.from_oserror("reading %d bytes at offset %d" % (length, offset), exc)
        if data is None or len(data) != length:
            raise PartitionTableError(
                "short read at offset %d: the image is shorter than the %d bytes it was said to have"
                % (offset, self.size), hint="Pass the real size of the image")
        return bytes(data)

    def _read_fully(self, length):
        chunks = []
        left = length
        while left > 0:
            chunk = self.dev.read(left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


# --- MBR ------------------------------------------------------------------


class _MbrEntry:
    __slots__ = ("boot", "type", "start", "size")

    def __init__(self, raw):
        self.boot = raw[0]
        self.type = raw[4]
        self.start, self.size = struct.unpack_from("<II", raw, 8)


def parse_mbr_entries(sector):
    return [_MbrEntry(sector[446 + 16 * i:462 + 16 * i]) for i in range(4)]


def is_filesystem_boot_sector(sector, entries):
    """A FAT/NTFS boot sector also ends in 0x55AA; neither blkid nor the kernel take it for an MBR.

    Boot code may keep an old FAT BPB, so a signature alone is not enough:
    the entries must also be empty or the whole-disk one mkfs.fat writes.
    """
    if any(e.boot not in (0x00, 0x80) for e in entries):
        return True
    if not any(sector[off:off + len(sig)] == sig for off, sig in _FS_SIGNATURES):
        return False
    used = [e for e in entries if e.size]
    return not used or any(e.start == 0 for e in used)


def _check_inside_disk(what, start, size, total, sector_size):
    end = start + size
    if end > total:
        raise PartitionTableError(
            "%s (sectors %d-%d) ends past the end of the image (%d sectors of %d bytes)"
            % (what, start, end - 1, total, sector_size),
            hint="The image was truncated or the table was made for a bigger disk: grow the image "
                 "(truncate -s) or fix the table")


def _check_overlaps(parts, what="partitions"):
    ordered = sorted(parts, key=lambda p: (p.start_sector, p.number))
    for prev, cur in zip(ordered, ordered[1:]):
        if cur.start_sector < prev.end_sector:
            raise PartitionTableError(
                "%s %d (sectors %d-%d) and %d (sectors %d-%d) overlap"
                % (what, prev.number, prev.start_sector, prev.last_sector,
                   cur.number, cur.start_sector, cur.last_sector),
                hint="Fix or recreate the partition table; data in the overlap belongs to both")


def _read_dos(src, size, sector_size, sector, warnings):
    total = size // sector_size
    disk_id = struct.unpack_from("<I", sector, 440)[0]
    parts = []
    extended = None
    for slot, entry in enumerate(parse_mbr_entries(sector)):
        if entry.size == 0:
            continue
        number = slot + 1
        kind = "extended" if is_extended(entry.type) else "primary"
        if entry.start == 0:
            raise PartitionTableError(
                "partition %d starts at sector 0, on top of the MBR" % number,
                hint="Fix or recreate the partition table")
        _check_inside_disk("partition %d" % number, entry.start, entry.size, total, sector_size)
        part = Partition(number, entry.start, entry.size, sector_size, format_dos_type(entry.type), kind,
                         uuid="%08x-%02x" % (disk_id, number), bootable=entry.boot == 0x80)
        if kind == "extended":
            if extended is not None:
                raise PartitionTableError(
                    "partitions %d and %d are both extended partitions" % (extended.number, number),
                    hint="An MBR may hold only one extended partition; fix or recreate the table")
            extended = part
        parts.append(part)
    _check_overlaps(parts)
    if extended is not None:
        logicals = _read_ebr_chain(src, total, sector_size, extended, disk_id, warnings)
        _check_overlaps(logicals, "logical partitions")
        parts.extend(logicals)
    return PartitionTable("dos", "0x%08x" % disk_id, sector_size, size, parts, warnings=warnings)


def _read_ebr_chain(src, total, sector_size, extended, disk_id, warnings):
    """Follow the EBR links inside the extended area.

    Links may point backwards (sfdisk makes such chains when logical
    partitions are added out of disk order, and the kernel reads them), so
    termination rests on never visiting an EBR twice, on the partition
    number limit and on the limit of EBRs in a row without data.
    """
    ext_start, ext_end = extended.start_sector, extended.end_sector
    area = "the extended partition %d (sectors %d-%d)" % (extended.number, ext_start, ext_end - 1)
    logicals = []
    number = 5
    empty_run = 0
    seen = set()
    cur = ext_start
    while True:
        seen.add(cur)
        ebr = src.read(cur * sector_size, 512)
        if ebr[510:512] != MBR_SIGNATURE:
            if not (cur == ext_start and not any(ebr)):
                warnings.append("the EBR at sector %d has no 0x55AA signature: the logical partitions "
                                "after it are ignored (the kernel does the same)" % cur)
            break
        entries = [e for e in parse_mbr_entries(ebr) if e.size]
        data = [e for e in entries if not is_extended(e.type)]
        links = [e for e in entries if is_extended(e.type)]
        if data:
            if len(data) > 1:
                warnings.append("the EBR at sector %d holds %d data entries; only the first is used"
                                % (cur, len(data)))
            entry = data[0]
            if number > DOS_MAX_NUMBER:
                raise PartitionTableError(
                    "more than %d logical partitions" % (DOS_MAX_NUMBER - 4),
                    hint="The kernel numbers partitions up to %d; the EBR chain is probably corrupt"
                         % DOS_MAX_NUMBER)
            start = cur + entry.start
            if entry.start == 0:
                raise PartitionTableError(
                    "logical partition %d starts on its own EBR (sector %d)" % (number, cur),
                    hint="Fix or recreate the partition table")
            if start + entry.size > ext_end:
                _check_inside_disk("logical partition %d" % number, start, entry.size, total, sector_size)
                raise PartitionTableError(
                    "logical partition %d (sectors %d-%d) does not fit inside %s"
                    % (number, start, start + entry.size - 1, area),
                    hint="Grow the extended partition or fix the EBR at sector %d" % cur)
            logicals.append(Partition(number, start, entry.size, sector_size, format_dos_type(entry.type),
                                      "logical", uuid="%08x-%02x" % (disk_id, number),
                                      bootable=entry.boot == 0x80, ebr_sector=cur))
            number += 1
            empty_run = 0
        else:
            empty_run += 1
            if empty_run > DOS_MAX_EMPTY_EBRS:
                raise PartitionTableError(
                    "more than %d EBRs in a row hold no partition (last one at sector %d)"
                    % (DOS_MAX_EMPTY_EBRS, cur),
                    hint="The EBR chain is corrupt; fix or recreate the partition table")
        if not links:
            break
        nxt = ext_start + links[0].start
        if nxt in seen:
            raise PartitionTableError(
                "the EBR chain loops: the EBR at sector %d links back to the EBR at sector %d" % (cur, nxt),
                hint="The chain is corrupt; fix or recreate the partition table")
        if nxt >= ext_end:
            raise PartitionTableError(
                "the EBR at sector %d links to sector %d, outside %s" % (cur, nxt, area),
                hint="The chain is corrupt; fix or recreate the partition table")
        cur = nxt
    _check_ebrs_outside(sorted(seen), logicals)
    return logicals


def _check_ebrs_outside(ebrs, logicals):
    """No EBR may sit inside a logical partition: writing one would corrupt the other."""
    for part in logicals:
        at = bisect.bisect_left(ebrs, part.start_sector)
        if at < len(ebrs) and ebrs[at] < part.end_sector:
            raise PartitionTableError(
                "the EBR at sector %d lies inside logical partition %d (sectors %d-%d)"
                % (ebrs[at], part.number, part.start_sector, part.last_sector),
                hint="The EBR chain is corrupt; fix or recreate the partition table")


# --- GPT ------------------------------------------------------------------


class _BadHeader(Exception):
    """Why one GPT header copy cannot be used (internal: both copies are tried)."""


class _GptHeader:
    _FORMAT = "<8sIIIIQQQQ16sQIII"

    def __init__(self, raw):
        (self.signature, self.revision, self.header_size, self.crc, _reserved, self.my_lba, self.alternate_lba,
         self.first_usable, self.last_usable, guid, self.entries_lba, self.entry_count, self.entry_size,
         self.entries_crc) = struct.unpack_from(self._FORMAT, raw, 0)
        self.disk_guid = str(_uuid.UUID(bytes_le=guid))
        self.entries = b""


def _parse_header(src, sector_size, lba, total):
    """The header and its entry array at ``lba``, or _BadHeader saying what is wrong."""
    raw = src.read(lba * sector_size, sector_size)
    if raw[:8] != GPT_SIGNATURE:
        raise _BadHeader("no 'EFI PART' signature")
    hdr = _GptHeader(raw)
    if not GPT_HEADER_MIN <= hdr.header_size <= sector_size:
        raise _BadHeader("header size %d is outside %d-%d" % (hdr.header_size, GPT_HEADER_MIN, sector_size))
    body = bytearray(raw[:hdr.header_size])
    body[16:20] = b"\x00\x00\x00\x00"
    crc = binascii.crc32(bytes(body)) & 0xFFFFFFFF
    if crc != hdr.crc:
        raise _BadHeader("header CRC32 is 0x%08x, expected 0x%08x" % (hdr.crc, crc))
    if hdr.my_lba != lba:
        raise _BadHeader("header at LBA %d says it is at LBA %d" % (lba, hdr.my_lba))
    if hdr.entry_size < GPT_ENTRY_MIN or hdr.entry_size % GPT_ENTRY_MIN or hdr.entry_size > GPT_MAX_ENTRY_SIZE:
        raise _BadHeader("partition entry size %d is not a multiple of 128 between 128 and %d"
                         % (hdr.entry_size, GPT_MAX_ENTRY_SIZE))
    array_bytes = hdr.entry_count * hdr.entry_size
    if array_bytes > GPT_MAX_ARRAY_BYTES:
        raise _BadHeader("%d partition entries of %d bytes is an absurd table (more than %d bytes)"
                         % (hdr.entry_count, hdr.entry_size, GPT_MAX_ARRAY_BYTES))
    if hdr.last_usable >= total:
        raise _BadHeader("last usable LBA %d is past the end of the image (%d sectors): the image was "
                         "truncated" % (hdr.last_usable, total))
    if hdr.first_usable < 2:
        # LBA 0 is the protective MBR and LBA 1 the primary header, whichever
        # header this is: a usable area reaching them would let a partition
        # overwrite the table itself.
        raise _BadHeader("first usable LBA %d overlaps the protective MBR and the primary header (LBA 0-1)"
                         % hdr.first_usable)
    if hdr.first_usable > hdr.last_usable + 1:
        raise _BadHeader("first usable LBA %d is after last usable LBA %d" % (hdr.first_usable, hdr.last_usable))
    array_sectors = -(-array_bytes // sector_size)
    if hdr.entries_lba < 1 or hdr.entries_lba + array_sectors > total:
        raise _BadHeader("partition entries at LBA %d (%d sectors) lie outside the image"
                         % (hdr.entries_lba, array_sectors))
    if hdr.first_usable <= lba <= hdr.last_usable:
        raise _BadHeader("header LBA %d lies inside the usable area %d-%d" % (lba, hdr.first_usable, hdr.last_usable))
    if array_sectors and hdr.entries_lba <= hdr.last_usable and hdr.entries_lba + array_sectors > hdr.first_usable:
        raise _BadHeader("partition entries at LBA %d-%d overlap the usable area %d-%d"
                         % (hdr.entries_lba, hdr.entries_lba + array_sectors - 1, hdr.first_usable, hdr.last_usable))
    entries = src.read(hdr.entries_lba * sector_size, array_bytes) if array_bytes else b""
    crc = binascii.crc32(entries) & 0xFFFFFFFF
    if crc != hdr.entries_crc:
        raise _BadHeader("partition entry array CRC32 is 0x%08x, expected 0x%08x" % (hdr.entries_crc, crc))
    hdr.entries = entries
    return hdr


def _find_gpt_sector_size(src, size, sizes):
    """The sector size whose LBA 1, else whose last LBA, holds 'EFI PART' (as systemd probes)."""
    for sector_size in sizes:
        if size >= 2 * sector_size and src.read(sector_size, 8) == GPT_SIGNATURE:
            return sector_size, True
    for sector_size in sizes:
        last = size // sector_size - 1
        if last >= 2 and src.read(last * sector_size, 8) == GPT_SIGNATURE:
            return sector_size, False
    return None, False


def _read_gpt(src, size, sizes, mbr_entries, has_mbr, warnings):
    sector_size, primary_found = _find_gpt_sector_size(src, size, sizes)
    if sector_size is None or (not primary_found and not has_mbr):
        # Without a protective MBR only a primary header makes a GPT (blkid agrees).
        return None
    total = size // sector_size
    primary = backup = None
    primary_error = None
    try:
        primary = _parse_header(src, sector_size, 1, total)
    except _BadHeader as exc:
        primary_error = str(exc)
    if primary is None:
        candidates = [total - 1]
        if primary_found:
            alternate = struct.unpack_from("<Q", src.read(sector_size, 40), 32)[0]
            if 1 < alternate < total - 1:
                candidates.insert(0, alternate)
        errors = []
        for lba in candidates:
            try:
                backup = _parse_header(src, sector_size, lba, total)
                break
            except _BadHeader as exc:
                errors.append("backup at LBA %d: %s" % (lba, exc))
        if backup is None:
            raise PartitionTableError(
                "both GPT headers are invalid (primary at LBA 1: %s; %s)" % (primary_error, "; ".join(errors)),
                hint="The table is destroyed; recreate it, or recover it with a tool such as testdisk")
        warnings.append("the primary GPT header is damaged (%s); used the backup header at LBA %d. Writing the "
                        "table again (e.g. `sfdisk -d IMAGE | sfdisk IMAGE`) repairs it"
                        % (primary_error, backup.my_lba))
        header = backup
    else:
        header = primary
        _check_backup(src, sector_size, total, primary, warnings)
    if not has_mbr:
        warnings.append("the GPT has no protective MBR; some firmware and tools will not see it")
    hybrid = _check_protective(mbr_entries, total, warnings) if has_mbr else False
    parts = _gpt_partitions(header, sector_size, total)
    return PartitionTable("gpt", header.disk_guid, sector_size, size, parts, first_usable_lba=header.first_usable,
                          last_usable_lba=header.last_usable, entry_count=header.entry_count,
                          warnings=warnings, hybrid_mbr=hybrid)


def _check_backup(src, sector_size, total, primary, warnings):
    alternate = primary.alternate_lba
    if not 1 < alternate < total:
        warnings.append("the backup GPT header LBA %d is outside the image (%d sectors): the image was truncated "
                        "or resized; writing the table again restores the backup" % (alternate, total))
        return
    try:
        _parse_header(src, sector_size, alternate, total)
    except _BadHeader as exc:
        warnings.append("the backup GPT header at LBA %d is damaged (%s); writing the table again repairs it"
                        % (alternate, exc))
        return
    if alternate != total - 1:
        warnings.append("the backup GPT header is at LBA %d, not at the end of the image (LBA %d): the image "
                        "was grown; image_partitions moves it with relocate_gpt: true, or with size or a layout "
                        "that grows the disk" % (alternate, total - 1))


def _check_protective(entries, total, warnings):
    """True for a hybrid MBR (0xEE next to real entries)."""
    others = [e for e in entries if e.size and e.type != DOS_PROTECTIVE]
    if others:
        return True
    pmbr = [e for e in entries if e.type == DOS_PROTECTIVE]
    want = min(total - 1, 0xFFFFFFFF)
    if pmbr and (pmbr[0].start != 1 or pmbr[0].size != want):
        warnings.append("the protective MBR covers sectors %d-%d, not the whole image (1-%d); writing the table "
                        "again fixes it" % (pmbr[0].start, pmbr[0].start + pmbr[0].size - 1, want))
    return False


def _gpt_partitions(header, sector_size, total):
    parts = []
    step = header.entry_size
    for index in range(header.entry_count):
        raw = header.entries[index * step:index * step + GPT_ENTRY_MIN]
        if raw[:16] == _ZERO_GUID:
            continue
        number = index + 1
        first, last, attributes = struct.unpack_from("<QQQ", raw, 32)
        if first > last:
            raise PartitionTableError(
                "GPT partition %d starts at LBA %d, after its last LBA %d" % (number, first, last),
                hint="Fix or recreate the partition table")
        _check_inside_disk("partition %d" % number, first, last - first + 1, total, sector_size)
        if first < header.first_usable or last > header.last_usable:
            raise PartitionTableError(
                "GPT partition %d (LBA %d-%d) lies outside the usable area LBA %d-%d"
                % (number, first, last, header.first_usable, header.last_usable),
                hint="It overlaps the GPT itself; fix or recreate the partition table")
        name = raw[56:128].decode("utf-16-le", "replace").split("\x00", 1)[0]
        parts.append(Partition(number, first, last - first + 1, sector_size,
                               str(_uuid.UUID(bytes_le=raw[:16])), "gpt",
                               uuid=str(_uuid.UUID(bytes_le=raw[16:32])), name=name,
                               bootable=bool(attributes & 4), attributes=attributes))
    _check_overlaps(parts)
    return parts


def gpt_backup_lba(dev, size, sector_size):
    """Where the valid backup GPT header of ``dev`` is: the LBA the primary
    header names, else the last LBA; None when neither holds a good one."""
    src = _Source(dev, size)
    total = size // sector_size
    candidates = [total - 1]
    try:
        candidates.insert(0, _parse_header(src, sector_size, 1, total).alternate_lba)
    except (_BadHeader, PartitionTableError):
        pass
    for lba in candidates:
        if 1 < lba < total:
            try:
                _parse_header(src, sector_size, lba, total)
            except (_BadHeader, PartitionTableError):
                continue
            return lba
    return None


# --- entry point ----------------------------------------------------------


def read_source_table(source, sector_size=None):
    """The partition table of an ImageSource (image file or block device), or None."""
    try:
        with open(source.path, "rb") as handle:
            return read_table(handle, source.size, sector_size)
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot read %s" % source.path, exc)


def read_table(dev, size, sector_size=None):
    """Read the partition table of ``dev`` (``size`` bytes long).

    ``dev`` is a binary file object (seek/read) or has ``pread(offset, length)``.
    ``sector_size`` None probes a GPT at 512/1024/2048/4096 bytes and reads
    dos with 512. Returns a PartitionTable, or None when there is no table
    (no 0x55AA signature and no GPT, or a filesystem boot sector).
    """
    if sector_size is not None and (not isinstance(sector_size, int) or sector_size < 512
                                    or sector_size > 65536 or sector_size & (sector_size - 1)):
        raise PartitionTableError("sector size %r is not a power of two from 512 to 65536" % (sector_size,))
    if size is None or size < 512:
        return None
    src = _Source(dev, size)
    sector = src.read(0, 512)
    has_mbr = sector[510:512] == MBR_SIGNATURE
    entries = parse_mbr_entries(sector) if has_mbr else []
    sizes = (sector_size,) if sector_size else PROBE_SECTOR_SIZES
    warnings = []
    if not has_mbr or any(e.type == DOS_PROTECTIVE for e in entries):
        table = _read_gpt(src, size, sizes, entries, has_mbr, warnings)
        if table is not None or not has_mbr:
            return table
        raise PartitionTableError(
            "the MBR has a GPT protective entry (type 0xee) but no GPT header was found at LBA 1 or at the end "
            "of the image (sector sizes tried: %s)" % ", ".join(str(s) for s in sizes),
            hint="The GPT was wiped or the image truncated; recreate the table")
    if is_filesystem_boot_sector(sector, entries):
        return None
    dos_sector_size = sector_size or 512
    if size >= 2 * dos_sector_size and src.read(dos_sector_size, 8) == GPT_SIGNATURE:
        warnings.append("a GPT header sits at LBA 1 but the MBR is not protective: read as dos, like the kernel "
                        "does; wipe the stale GPT (wipefs) if the disk is dos")
    return _read_dos(src, size, dos_sector_size, sector, warnings)

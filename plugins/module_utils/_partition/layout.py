# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a layout from a playbook into a partition table, and write it.

``plan_layout`` is pure computation (check mode and diffs use it);
``write_table`` writes a planned table; ``write_layout`` does both. A layout:

    label: dos | gpt
    disk_id: 0x1234abcd (dos) | GUID (gpt)          optional, random otherwise
    seed: any string                                optional: ids derived from it
    alignment: 1MiB                                 optional, bytes or a size
    architecture: arm64                             optional, for 'root'/'usr'
    partitions:
      - size: 512MiB | 4096 | 25% | rest            omitted means rest
        start: 8MiB                                 optional, primary/gpt only
        type: linux | 0x83 | GUID                   default linux
        name: "text"                                gpt only
        uuid: GUID                                  gpt only
        bootable: true
        attributes: 0x1000000000000000 | [read-only, 63]   gpt only (see below)

On dos, more than four partitions make the fourth slot an extended partition
holding the rest as logical partitions 5, 6...; a ``type: extended`` entry
puts it where the user wants instead (every entry after it is logical).
Each logical partition is preceded by its EBR one alignment unit earlier,
as sfdisk places them.

GPT attributes are a number (an int, or a string such as '0x1000000000000004'),
or a list (or a comma- or space-separated string) of bit numbers and names:
bits 0-2 are required, no_block_io_protocol and legacy_bios_bootable (sfdisk's
RequiredPartition, NoBlockIOProtocol and LegacyBIOSBootable are accepted too);
bits 48-63 belong to the partition type, given by number, as sfdisk's 'GUID:60',
or by the Discoverable Partitions names growfs (59), read_only (60), hidden (62)
and no_auto (63). Bits 3-47 are reserved by the UEFI specification and refused.
Names may be written with '_' or '-'.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import decimal
import hashlib
import os
import struct
import uuid as _uuid

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import (
    GPT_SIGNATURE,
    MBR_SIGNATURE,
    PROBE_SECTOR_SIZES,
    Partition,
    PartitionTable,
    PartitionTableError,
    is_filesystem_boot_sector,
    parse_mbr_entries,
    read_table,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import (
    DOS_PROTECTIVE,
    format_dos_type,
    is_extended,
    normalize_guid,
    resolve_type,
)
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size

GPT_ENTRY_COUNT = 128
GPT_ENTRY_SIZE = 128
GPT_HEADER_SIZE = 92
GPT_REVISION = 0x00010000
GPT_NAME_UNITS = 36
DEFAULT_ALIGNMENT = 1024 * 1024
DOS_MAX_LOGICAL = 252
ATTRIBUTE_BITS = {
    "required": 0,
    "no-block-io-protocol": 1,
    "legacy-bios-bootable": 2,
    "growfs": 59,
    "read-only": 60,
    "hidden": 62,
    "no-auto": 63,
}
# Other spellings of the same bits: sfdisk's names for bits 0-2.
_ATTRIBUTE_SYNONYMS = {
    "requiredpartition": "required",
    "noblockioprotocol": "no-block-io-protocol",
    "legacybiosbootable": "legacy-bios-bootable",
}
# Bits 3-47 are reserved by the UEFI specification (must be zero); 48-63 are the type's.
ATTRIBUTE_RESERVED = range(3, 48)
GUID_ATTRIBUTE_BITS = range(48, 64)
_LAYOUT_KEYS = ("label", "disk_id", "seed", "alignment", "architecture", "partitions")
_PART_KEYS = ("size", "start", "type", "name", "uuid", "bootable", "attributes")
_LABEL_SYNONYMS = {"dos": "dos", "mbr": "dos", "msdos": "dos", "gpt": "gpt"}
_REST = "rest"


class LayoutError(PartitionTableError):
    """A layout that cannot be turned into a partition table."""


class _Spec:
    """One requested partition, validated; sizes in sectors (None = rest)."""

    def __init__(self, where):
        self.where = where
        self.size = None
        self.start = None
        self.type = None
        self.name = ""
        self.uuid = None
        self.bootable = False
        self.attributes = 0
        self.rest_said = False
        self.index = None


# --- validation -----------------------------------------------------------


def _align_up(value, align):
    return -(-value // align) * align


def _ids(seed):
    """A function purpose -> 16 bytes: random, or derived from ``seed`` for reproducible images."""
    if seed is None:
        return lambda purpose: os.urandom(16)
    text = str(seed)
    return lambda purpose: hashlib.sha256(("%s\x00%s" % (text, purpose)).encode("utf-8")).digest()[:16]


def _guid_from(raw):
    return str(_uuid.UUID(bytes=raw, version=4))


def _size(value, what):
    try:
        return parse_size(value, what)
    except DiskImageError as exc:
        raise LayoutError(exc.message, hint=exc.hint)


def _guid(value, what):
    try:
        return normalize_guid(value, what)
    except DiskImageError as exc:
        raise LayoutError(exc.message, hint=exc.hint)


def _parse_part_size(value, where, disk_size, sector_size):
    if value is None or (isinstance(value, str) and value.strip().lower() == _REST):
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1].strip()
        try:
            percent = decimal.Decimal(text)
        except decimal.InvalidOperation:
            percent = None
        if percent is None or not percent.is_finite() or not 0 < percent <= 100:
            raise LayoutError("%s.size %r is not a percentage above 0 and at most 100" % (where, value))
        sectors = int(decimal.Decimal(disk_size) * percent / 100) // sector_size
        if sectors < 1:
            raise LayoutError("%s.size %r is less than one sector of this disk" % (where, value))
        return sectors
    size = _size(value, "%s.size" % where)
    if size <= 0:
        raise LayoutError("%s.size must be more than 0" % where, hint="Omit it or say 'rest' for the rest of the disk")
    return -(-size // sector_size)


def _attribute_names():
    return ", ".join(sorted(name.replace("-", "_") for name in ATTRIBUTE_BITS))


def _attribute_bits(item, where):
    """The bits of one list item of ``attributes``: a bit number, a name, or sfdisk's GUID:N[,M...]."""
    bad = LayoutError("%s.attributes: %r is not a bit number (0-2 or 48-63) or one of: %s"
                      % (where, item, _attribute_names()))
    if isinstance(item, bool):
        raise bad
    if isinstance(item, int):
        if not 0 <= item < 64:
            raise bad
        return [item]
    key = str(item).strip().lower().replace("_", "-")
    key = _ATTRIBUTE_SYNONYMS.get(key.replace("-", ""), key)
    if key in ATTRIBUTE_BITS:
        return [ATTRIBUTE_BITS[key]]
    if key.startswith("guid:"):
        numbers = [n.strip() for n in key[5:].split(",") if n.strip()]
        if not numbers or not all(n.isdigit() and int(n) in GUID_ATTRIBUTE_BITS for n in numbers):
            raise LayoutError("%s.attributes: %r is not GUID: followed by bit numbers from 48 to 63" % (where, item))
        return [int(n) for n in numbers]
    if not key.isdigit() or int(key) >= 64:
        raise bad
    return [int(key)]


def _parse_attributes(value, where):
    if value is None:
        return 0
    if isinstance(value, bool):
        raise LayoutError("%s.attributes must be a number or a list of bits, not a boolean" % where)
    if isinstance(value, int):
        bits = value
    elif isinstance(value, str) and value.strip():
        try:
            bits = int(value.strip(), 0)
        except ValueError:
            # sfdisk writes "RequiredPartition GUID:60,63": a GUID: word keeps its commas.
            items = []
            for word in value.split():
                items += [word] if word.lower().startswith("guid:") else [w for w in word.split(",") if w]
            return _parse_attributes(items, where)
    elif isinstance(value, str):
        return 0
    elif isinstance(value, (list, tuple)):
        bits = 0
        for item in value:
            for bit in _attribute_bits(item, where):
                bits |= 1 << bit
    else:
        raise LayoutError("%s.attributes %r is not a number or a list of bits" % (where, value))
    if not 0 <= bits < 1 << 64:
        raise LayoutError("%s.attributes 0x%x does not fit in 64 bits" % (where, bits))
    reserved = [bit for bit in ATTRIBUTE_RESERVED if bits >> bit & 1]
    if reserved:
        raise LayoutError("%s.attributes sets bit%s %s, reserved by the UEFI specification"
                          % (where, "s" if len(reserved) > 1 else "", ", ".join(map(str, reserved))),
                          hint="Use bits 0-2 (required, no_block_io_protocol, legacy_bios_bootable) "
                               "and the partition type's bits 48-63")
    return bits


def _check_keys(mapping, known, where):
    if not isinstance(mapping, dict):
        raise LayoutError("%s must be a mapping, got %s" % (where, type(mapping).__name__))
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise LayoutError("%s has unknown key%s %s" % (where, "s" if len(unknown) > 1 else "", ", ".join(unknown)),
                          hint="Known keys: %s" % ", ".join(known))


def _parse_spec(raw, index, label, disk_size, sector_size, arch):
    where = "partitions[%d]" % index
    raw = {} if raw is None else raw
    _check_keys(raw, _PART_KEYS, where)
    spec = _Spec(where)
    spec.index = index
    spec.size = _parse_part_size(raw.get("size"), where, disk_size, sector_size)
    spec.rest_said = raw.get("size") is not None and spec.size is None
    if raw.get("start") is not None:
        start = _size(raw["start"], "%s.start" % where)
        if start % sector_size:
            raise LayoutError("%s.start %d is not a multiple of the %d-byte sector" % (where, start, sector_size))
        spec.start = start // sector_size
    try:
        spec.type = resolve_type(raw.get("type") if raw.get("type") is not None else "linux", label, arch)
    except DiskImageError as exc:
        raise LayoutError("%s.type: %s" % (where, exc.message), hint=exc.hint)
    spec.bootable = bool(raw.get("bootable", False))
    name = raw.get("name")
    uuid = raw.get("uuid")
    attributes = raw.get("attributes")
    if label == "dos":
        if name:
            raise LayoutError("%s.name: dos partitions have no names" % where, hint="Use a gpt label for names")
        if uuid:
            raise LayoutError("%s.uuid: a dos PARTUUID is '<disk id>-<number>'" % where,
                              hint="Set disk_id instead")
        if attributes:
            raise LayoutError("%s.attributes exist only on gpt" % where)
        return spec
    spec.name = "" if name is None else str(name)
    if len(spec.name.encode("utf-16-le")) > 2 * GPT_NAME_UNITS:
        raise LayoutError("%s.name %r is longer than %d UTF-16 units" % (where, spec.name, GPT_NAME_UNITS))
    if "\x00" in spec.name:
        raise LayoutError("%s.name must not contain NUL characters" % where)
    if uuid:
        spec.uuid = _guid(uuid, "%s.uuid" % where)
    spec.attributes = _parse_attributes(attributes, where)
    if spec.bootable:
        spec.attributes |= 1 << ATTRIBUTE_BITS["legacy-bios-bootable"]
    return spec


def _parse_disk_id(value, label):
    if label == "gpt":
        return _guid(value, "disk_id")
    if isinstance(value, bool):
        value = None
    try:
        number = value if isinstance(value, int) else int(str(value).strip(), 16)
    except ValueError:
        number = -1
    if not 0 <= number <= 0xFFFFFFFF:
        raise LayoutError("disk_id %r is not a 32-bit hex number like 0x1234abcd" % (value,))
    return number


# --- placement ------------------------------------------------------------


class _Item:
    """A partition being placed. ``fit`` sizes an extended partition to its logicals."""

    def __init__(self, spec, logical=False, first_logical=False, fit=None):
        self.spec = spec
        self.logical = logical
        self.first_logical = first_logical
        self.fit = fit
        self.ebr = None
        self.start = None
        self.size = None

    @property
    def is_rest(self):
        return self.spec.size is None and self.fit is None


def _lay(items, lo, align, rest_size):
    cursor = lo
    for item in items:
        if item.logical:
            # sfdisk's placement: the EBR on an aligned sector (the first one at
            # the very start of the extended partition), the partition aligned after it.
            item.ebr = cursor if item.first_logical else _align_up(cursor, align)
            item.start = _align_up(item.ebr + 1, align)
        elif item.spec.start is not None:
            if item.spec.start < cursor:
                raise LayoutError("%s.start (sector %d) lies before sector %d, where the free space starts"
                                  % (item.spec.where, item.spec.start, cursor),
                                  hint="Partitions are placed in list order: reorder them or change start")
            item.start = item.spec.start
        else:
            item.start = _align_up(cursor, align)
        if item.fit is not None:
            item.size = item.fit(item.start)
        elif item.spec.size is None:
            item.size = rest_size
        else:
            item.size = item.spec.size
        cursor = item.start + item.size


def _place(items, lo, hi, align, container, sector_size):
    """Place ``items`` in list order in sectors [lo, hi); at most one takes the rest."""
    rest = [item for item in items if item.is_rest]
    if len(rest) > 1:
        raise LayoutError("%s all ask for the rest of %s" % (" and ".join(i.spec.where for i in rest), container),
                          hint="Only one partition can take the rest; give the others a size")
    _lay(items, lo, align, rest_size=0)
    if rest:
        item = rest[0]
        index = items.index(item)
        # Growing the rest shifts what follows it, up to the next fixed start or the end.
        bound_at = next((j for j in range(index + 1, len(items)) if items[j].spec.start is not None), len(items))
        bound = items[bound_at].start if bound_at < len(items) else hi
        before = items[bound_at - 1]
        if before is item:
            end = bound
            if bound_at == len(items) and bound // align * align > item.start:
                # Like sfdisk, end the last partition on an alignment boundary.
                end = bound // align * align
            fill = end - item.start
        else:
            fill = (bound - before.start - before.size) // align * align
        if fill <= 0:
            raise LayoutError("%s takes the rest of %s, but nothing is left for it" % (item.spec.where, container),
                              hint="Make the other partitions smaller or the disk bigger")
        _lay(items, lo, align, rest_size=fill)
    for item in items:
        if item.start + item.size > hi:
            raise LayoutError(
                "%s does not fit: it would end at sector %d (byte %d) but %s ends at sector %d (byte %d)"
                % (item.spec.where, item.start + item.size - 1, (item.start + item.size) * sector_size,
                   container, hi - 1, hi * sector_size),
                hint="Make the partitions smaller or the disk bigger")


def _logical_items(specs):
    items = []
    for n, spec in enumerate(specs):
        if spec.start is not None:
            raise LayoutError("%s.start: a logical partition follows its EBR and cannot be given a start"
                              % spec.where, hint="Only primary and gpt partitions take start")
        items.append(_Item(spec, logical=True, first_logical=n == 0))
    return items


def _fit_logicals(specs, align):
    """Size of an extended partition that holds ``specs`` tightly from ``start``."""
    def fit(start):
        if not specs:
            return align
        items = _logical_items(specs)
        _lay(items, start, align, rest_size=0)
        return items[-1].start + items[-1].size - start
    return fit


# --- planning -------------------------------------------------------------


def _gpt_array_sectors(sector_size):
    return -(-GPT_ENTRY_COUNT * GPT_ENTRY_SIZE // sector_size)


def _split_dos(specs):
    """(primaries, extended spec or None, logicals) as the user's list asks."""
    explicit = [i for i, spec in enumerate(specs) if is_extended(spec.type)]
    if len(explicit) > 1:
        raise LayoutError("%s are all extended partitions" % " and ".join(specs[i].where for i in explicit),
                          hint="A dos label holds one extended partition")
    if explicit:
        k = explicit[0]
        primaries, extended, logicals = specs[:k], specs[k], specs[k + 1:]
        if len(primaries) > 3:
            raise LayoutError("%s: the extended partition must be one of the first four" % extended.where,
                              hint="A dos label has four primary slots")
    elif len(specs) > 4:
        extended = _Spec("the extended partition made for partitions[3:]")
        extended.type = format_dos_type(0x05)
        primaries, logicals = specs[:3], specs[3:]
    else:
        return specs, None, []
    if len(logicals) > DOS_MAX_LOGICAL:
        raise LayoutError("%d logical partitions is more than the %d a dos label can number"
                          % (len(logicals), DOS_MAX_LOGICAL), hint="Use a gpt label")
    return primaries, extended, logicals


def _plan_dos(specs, disk_size, sector_size, align, disk_id):
    total = disk_size // sector_size
    primaries, ext_spec, logical_specs = _split_dos(specs)
    items = [_Item(spec) for spec in primaries]
    if ext_spec is not None:
        fit = None
        if ext_spec.size is None and not ext_spec.rest_said and not any(s.size is None for s in logical_specs) \
                and any(s.size is None for s in primaries):
            fit = _fit_logicals(logical_specs, align)
        items.append(_Item(ext_spec, fit=fit))
    _place(items, 1, total, align, "the disk", sector_size)
    parts = []
    for number, item in enumerate(items, 1):
        kind = "extended" if item.spec is ext_spec else "primary"
        parts.append(_dos_partition(number, item, kind, sector_size, disk_id))
    if ext_spec is not None:
        ext = items[-1]
        logicals = _logical_items(logical_specs)
        if logicals:
            _place(logicals, ext.start, ext.start + ext.size, align, "the extended partition", sector_size)
        for number, item in enumerate(logicals, 5):
            parts.append(_dos_partition(number, item, "logical", sector_size, disk_id))
    for part in parts:
        if part.start_sector > 0xFFFFFFFF or part.size_sectors > 0xFFFFFFFF:
            raise LayoutError("partition %d (sectors %d-%d) is beyond what dos can address: 32-bit sector numbers "
                              "of %d bytes" % (part.number, part.start_sector, part.last_sector, sector_size),
                              hint="Use a gpt label")
    return PartitionTable("dos", "0x%08x" % disk_id, sector_size, disk_size, parts)


def _dos_partition(number, item, kind, sector_size, disk_id):
    return Partition(number, item.start, item.size, sector_size, item.spec.type, kind,
                     uuid="%08x-%02x" % (disk_id, number), bootable=item.spec.bootable, ebr_sector=item.ebr,
                     spec_index=item.spec.index)


def _plan_gpt(specs, disk_size, sector_size, align, disk_guid, new_id):
    total = disk_size // sector_size
    if len(specs) > GPT_ENTRY_COUNT:
        raise LayoutError("%d partitions is more than the %d entries of a GPT" % (len(specs), GPT_ENTRY_COUNT))
    array = _gpt_array_sectors(sector_size)
    first_usable = 2 + array
    last_usable = total - 2 - array
    if last_usable < first_usable:
        raise LayoutError("a disk of %d sectors is too small for a GPT" % total,
                          hint="A GPT needs at least %d sectors for its two copies" % (2 * first_usable))
    items = [_Item(spec) for spec in specs]
    _place(items, first_usable, last_usable + 1, align, "the usable area of the GPT", sector_size)
    parts = []
    seen = {}
    for number, item in enumerate(items, 1):
        unique = item.spec.uuid or _guid_from(new_id("partition/%d" % number))
        if unique in seen:
            raise LayoutError("%s and %s have the same uuid %s" % (seen[unique], item.spec.where, unique),
                              hint="Partition uuids must be unique")
        seen[unique] = item.spec.where
        parts.append(Partition(number, item.start, item.size, sector_size, item.spec.type, "gpt", uuid=unique,
                               name=item.spec.name, bootable=bool(item.spec.attributes & 4),
                               attributes=item.spec.attributes, spec_index=item.spec.index))
    return PartitionTable("gpt", disk_guid, sector_size, disk_size, parts, first_usable_lba=first_usable,
                          last_usable_lba=last_usable, entry_count=GPT_ENTRY_COUNT)


def plan_layout(layout, disk_size, sector_size=512):
    """The PartitionTable that ``layout`` makes on a disk of ``disk_size`` bytes.

    Pure computation: nothing is read or written. Ids not given in the
    layout are random, or derived from ``layout['seed']`` when there is one.
    Raises LayoutError (a PartitionTableError) naming what is wrong.
    """
    if not isinstance(sector_size, int) or sector_size < 512 or sector_size & (sector_size - 1):
        raise LayoutError("sector size %r is not a power of two of at least 512" % (sector_size,))
    if isinstance(disk_size, bool) or not isinstance(disk_size, int) or disk_size < 0:
        raise LayoutError("disk size %r is not a number of bytes" % (disk_size,))
    _check_keys(layout, _LAYOUT_KEYS, "the partition layout")
    label = _LABEL_SYNONYMS.get(str(layout.get("label", "")).strip().lower())
    if label is None:
        raise LayoutError("the layout's label %r is not dos or gpt" % (layout.get("label"),),
                          hint="Say label: gpt (or dos for an MBR)")
    alignment = _size(layout.get("alignment", DEFAULT_ALIGNMENT), "alignment")
    if alignment <= 0 or alignment % sector_size:
        raise LayoutError("alignment %d is not a positive multiple of the %d-byte sector" % (alignment, sector_size))
    align = alignment // sector_size
    raw_parts = layout.get("partitions") or []
    if not isinstance(raw_parts, (list, tuple)):
        raise LayoutError("the layout's partitions must be a list, got %s" % type(raw_parts).__name__)
    arch = layout.get("architecture")
    specs = [_parse_spec(raw, i, label, disk_size, sector_size, arch) for i, raw in enumerate(raw_parts)]
    new_id = _ids(layout.get("seed"))
    if disk_size // sector_size < 3:
        raise LayoutError("a disk of %d bytes is too small for a partition table" % disk_size,
                          hint="Grow the image first (for example with community.general.filesize), "
                               "or check that src is the right image")
    if label == "dos":
        disk_id = layout.get("disk_id")
        if disk_id is None:
            disk_id = struct.unpack("<I", new_id("disk")[:4])[0] or 1
        else:
            disk_id = _parse_disk_id(disk_id, label)
        return _plan_dos(specs, disk_size, sector_size, align, disk_id)
    disk_id = layout.get("disk_id")
    disk_guid = _parse_disk_id(disk_id, label) if disk_id is not None else _guid_from(new_id("disk"))
    return _plan_gpt(specs, disk_size, sector_size, align, disk_guid, new_id)


# --- writing --------------------------------------------------------------


def _chs(lba):
    """CHS bytes for an LBA on the 255-head, 63-sector geometry everyone assumes; past it, the 1023/254/63 cap."""
    cylinder, rem = divmod(lba, 255 * 63)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rem, 63)
    return struct.pack("<BBB", head, ((cylinder >> 2) & 0xC0) | (sector + 1), cylinder & 0xFF)


def _mbr_entry(boot, type_code, start, size, chs_base=0):
    if not size:
        return b"\x00" * 16
    first = chs_base + start
    return (struct.pack("<B", 0x80 if boot else 0) + _chs(first) + struct.pack("<B", type_code)
            + _chs(first + size - 1) + struct.pack("<II", start, size))


def _mbr_sector(boot_code, disk_id, entries):
    body = bytearray(512)
    body[:len(boot_code)] = boot_code
    struct.pack_into("<I", body, 440, disk_id)
    for i, entry in enumerate(entries):
        body[446 + 16 * i:462 + 16 * i] = entry
    body[510:512] = MBR_SIGNATURE
    return bytes(body)


def _dos_writes(table, boot_code):
    ss = table.sector_size
    disk_id = int(table.disk_id, 16)
    primaries = [None] * 4
    extended = None
    logicals = []
    for part in table.partitions:
        if part.kind == "logical":
            logicals.append(part)
            continue
        primaries[part.number - 1] = _mbr_entry(part.bootable, int(part.type, 16), part.start_sector,
                                                part.size_sectors)
        if part.kind == "extended":
            extended = part
    writes = [(0, _mbr_sector(boot_code, disk_id, [e or b"\x00" * 16 for e in primaries]))]
    if extended is None:
        return writes
    logicals.sort(key=lambda p: p.number)
    if not logicals:
        writes.append((extended.start, _mbr_sector(b"", 0, []) + b"\x00" * (ss - 512)))
    for i, part in enumerate(logicals):
        ebr = part.ebr_sector
        entries = [_mbr_entry(part.bootable, int(part.type, 16), part.start_sector - ebr, part.size_sectors, ebr)]
        if i + 1 < len(logicals):
            nxt = logicals[i + 1]
            entries.append(_mbr_entry(False, 0x05, nxt.ebr_sector - extended.start_sector,
                                      nxt.end_sector - nxt.ebr_sector, extended.start_sector))
        writes.append((ebr * ss, _mbr_sector(b"", 0, entries) + b"\x00" * (ss - 512)))
    return writes


def _gpt_entries(table):
    array = bytearray(GPT_ENTRY_COUNT * GPT_ENTRY_SIZE)
    for part in table.partitions:
        off = (part.number - 1) * GPT_ENTRY_SIZE
        name = part.name.encode("utf-16-le")
        struct.pack_into("<16s16sQQQ72s", array, off, _uuid.UUID(part.type).bytes_le,
                         _uuid.UUID(part.uuid).bytes_le, part.start_sector, part.last_sector, part.attributes,
                         name)
    return bytes(array)


def _gpt_header(table, my_lba, alternate_lba, entries_lba, entries_crc):
    fields = [GPT_SIGNATURE, GPT_REVISION, GPT_HEADER_SIZE, 0, 0, my_lba, alternate_lba, table.first_usable_lba,
              table.last_usable_lba, _uuid.UUID(table.disk_id).bytes_le, entries_lba, GPT_ENTRY_COUNT,
              GPT_ENTRY_SIZE, entries_crc]
    header = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
    fields[3] = binascii.crc32(header) & 0xFFFFFFFF
    header = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
    return header + b"\x00" * (table.sector_size - len(header))


def _gpt_writes(table, boot_code):
    ss = table.sector_size
    total = table.total_sectors
    last = total - 1
    array = _gpt_entries(table)
    array_crc = binascii.crc32(array) & 0xFFFFFFFF
    backup_array_lba = last - _gpt_array_sectors(ss)
    # As sfdisk writes it: CHS end 0xFFFFFF, "too big for CHS".
    pmbr = _mbr_entry(False, DOS_PROTECTIVE, 1, min(last, 0xFFFFFFFF))
    pmbr = pmbr[:5] + b"\xff\xff\xff" + pmbr[8:]
    return [
        (0, _mbr_sector(boot_code, 0, [pmbr])),
        (ss, _gpt_header(table, 1, last, 2, array_crc)),
        (2 * ss, array),
        (backup_array_lba * ss, array),
        (last * ss, _gpt_header(table, last, 1, backup_array_lba, array_crc)),
    ]


class _Target:
    """Reads and writes on a file object (seek/read/write) or on pread/pwrite(offset, ...)."""

    def __init__(self, fileobj):
        self.fileobj = fileobj

    def pread(self, offset, length):
        if hasattr(self.fileobj, "pread"):
            return self.fileobj.pread(offset, length)
        self.fileobj.seek(offset)
        return self.fileobj.read(length)

    def pwrite(self, offset, data):
        try:
            if hasattr(self.fileobj, "pwrite"):
                self.fileobj.pwrite(offset, data)
            else:
                self.fileobj.seek(offset)
                self.fileobj.write(data)
        except OSError as exc:
            raise DiskImageError.from_oserror("writing the partition table at offset %d" % offset, exc)


def _boot_code(target):
    """Keep the boot code of an existing MBR (a boot loader may live there), not of a filesystem."""
    sector = target.pread(0, 512) or b""
    if len(sector) == 512 and sector[510:512] == MBR_SIGNATURE \
            and not is_filesystem_boot_sector(sector, parse_mbr_entries(sector)):
        return sector[:440]
    return b"\x00" * 440


def _stale_gpt_wipes(target, table):
    """Old GPT headers of this disk that the new table does not overwrite (maybe of another sector size).

    Only a header with a good CRC that names its own place (my_lba) is
    erased: anything else is data, perhaps a disk image inside a partition.
    """
    ours = set()
    if table.label == "gpt":
        ours = {table.sector_size, table.size - (table.size % table.sector_size) - table.sector_size}
    wipes = []
    for ss in PROBE_SECTOR_SIZES:
        usable = table.size - table.size % ss
        for offset in (ss, usable - ss):
            if offset < ss or offset in ours:
                continue
            header = target.pread(offset, GPT_HEADER_SIZE) or b""
            if len(header) != GPT_HEADER_SIZE or header[:8] != GPT_SIGNATURE:
                continue
            body = bytearray(header)
            crc = struct.unpack_from("<I", body, 16)[0]
            body[16:20] = b"\x00\x00\x00\x00"
            header_size, = struct.unpack_from("<I", header, 12)
            my_lba, = struct.unpack_from("<Q", header, 24)
            if header_size == GPT_HEADER_SIZE and binascii.crc32(bytes(body)) & 0xFFFFFFFF == crc \
                    and my_lba * ss == offset:
                wipes.append((offset, b"\x00" * ss))
    return wipes


def _check_writable(table):
    """What the writer relies on; plan_layout always provides it, a hand-made table may not."""
    if table.label == "gpt":
        if table.first_usable_lba is None or table.last_usable_lba is None:
            raise PartitionTableError("a gpt table to write needs first_usable_lba and last_usable_lba")
        bad = [p.number for p in table.partitions if not 1 <= p.number <= GPT_ENTRY_COUNT]
        if bad:
            raise PartitionTableError("partition numbers %s do not fit in %d GPT entries"
                                      % (", ".join(map(str, bad)), GPT_ENTRY_COUNT))
        return
    extended = [p for p in table.partitions if p.kind == "extended"]
    logicals = sorted((p for p in table.partitions if p.kind == "logical"), key=lambda p: p.number)
    if any(not 1 <= p.number <= 4 for p in table.partitions if p.kind != "logical"):
        raise PartitionTableError("dos primary and extended partitions must be numbered 1-4")
    if logicals and (len(extended) != 1 or any(p.ebr_sector is None for p in logicals)
                     or logicals[0].ebr_sector != extended[0].start_sector):
        raise PartitionTableError("dos logical partitions need one extended partition and EBR sectors, the first "
                                  "one at the start of the extended partition")


def write_table(fileobj, table):
    """Write a planned PartitionTable (from plan_layout) and check it reads back the same.

    ``fileobj`` is open for reading and writing ('r+b'), or has
    pread(offset, length) and pwrite(offset, data). Boot code already in the
    MBR is kept; old GPT headers the new table does not cover are erased.
    """
    _check_writable(table)
    target = _Target(fileobj)
    boot_code = _boot_code(target)
    writes = _stale_gpt_wipes(target, table)
    writes += _gpt_writes(table, boot_code) if table.label == "gpt" else _dos_writes(table, boot_code)
    for offset, data in writes:
        target.pwrite(offset, data)
    if hasattr(fileobj, "flush"):
        fileobj.flush()
    got = read_table(target, table.size, table.sector_size)
    if got is None or [p.to_dict() for p in got.partitions] != [p.to_dict() for p in table.partitions] \
            or got.disk_id != table.disk_id:
        raise PartitionTableError("the partition table written does not read back as planned",
                                  hint="This is a bug in diskimage.loop; please report it with the layout")
    return table


def write_layout(fileobj, layout, disk_size, sector_size=512):
    """Plan ``layout`` (see plan_layout) and write it; returns the PartitionTable written."""
    return write_table(fileobj, plan_layout(layout, disk_size, sector_size))

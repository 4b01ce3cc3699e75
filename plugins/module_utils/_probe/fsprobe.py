# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell which filesystem a device or image holds by reading its superblock.

A small pure-Python stand-in for ``blkid -p``: it reads a few KiB at known
offsets and reports the type, UUID and label in the same spelling blkid uses,
so values can be compared with what users see in ``blkid``, ``lsblk`` and
/dev/disk/by-uuid. It never runs a binary and never raises on garbage: an
unknown or inconsistent superblock gives None, a superblock whose checksum
fails is reported as such (``csum_ok``). Only an I/O error raises.

Known types: crypto_LUKS, vfat, btrfs, ext2/ext3/ext4 (and jbd), xfs, udf,
iso9660, swap, squashfs (squashfs3), erofs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import struct

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# blkid's USAGE values: what a user may do with the content.
USAGE_FILESYSTEM = "filesystem"
USAGE_CRYPTO = "crypto"
USAGE_OTHER = "other"

# C's isspace() in the C locale: blkid trims exactly these from labels.
_C_SPACE = " \t\n\v\f\r"


# --- helpers ---------------------------------------------------------------

def _crc32c_table():
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for dummy in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def _crc32c_raw(data, crc=0xFFFFFFFF):
    """CRC32C register after ``data`` with no final inversion.

    ext4 and erofs store this raw value; btrfs and xfs store its complement
    (the usual CRC32C), so callers invert where their format does.
    """
    table = _CRC32C
    for b in bytearray(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _crc32c(data):
    return _crc32c_raw(data) ^ 0xFFFFFFFF


def _le16(buf, off):
    return struct.unpack_from("<H", buf, off)[0]


def _le32(buf, off):
    return struct.unpack_from("<I", buf, off)[0]


def _le64(buf, off):
    return struct.unpack_from("<Q", buf, off)[0]


def _be16(buf, off):
    return struct.unpack_from(">H", buf, off)[0]


def _be32(buf, off):
    return struct.unpack_from(">I", buf, off)[0]


def _be64(buf, off):
    return struct.unpack_from(">Q", buf, off)[0]


def _is_pow2(n):
    return n > 0 and n & (n - 1) == 0


def _label(raw, encoding="utf-8"):
    """Label bytes as blkid shows them: cut at NUL, trailing blanks dropped."""
    raw = bytes(raw).split(b"\0", 1)[0]
    text = raw.decode(encoding, "replace").rstrip(_C_SPACE)
    return text or None


def _uuid(raw):
    """16 bytes as 8-4-4-4-12 lower-case hex; all zeros means 'no UUID'."""
    raw = bytes(raw)
    if len(raw) != 16 or raw == b"\0" * 16:
        return None
    h = raw.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def _result(fstype, usage=USAGE_FILESYSTEM, uuid=None, label=None, version=None, uuid_sub=None,
            csum_ok=None):
    return {
        "type": fstype,
        "usage": usage,
        "uuid": uuid,
        "label": label,
        "version": version,
        "uuid_sub": uuid_sub,
        "csum_ok": csum_ok,
    }


class _Reader:
    """Bounded, cached reads relative to ``offset`` inside a file.

    ``read`` returns exactly ``length`` bytes, or None when the range lies
    (partly) outside the probed area: a truncated image is "not this
    filesystem", never an exception. ``pread(length, where)`` does the I/O.
    """

    def __init__(self, pread, name, offset, size):
        self.pread = pread
        self.name = name
        self.offset = offset
        self.size = size
        self._cache = {}

    def read(self, pos, length):
        if pos < 0 or length < 0:
            return None
        if self.size is not None and pos + length > self.size:
            return None
        key = (pos, length)
        if key in self._cache:
            return self._cache[key]
        data = self._pread(self.offset + pos, length)
        if len(data) != length:
            data = None
        self._cache[key] = data
        return data

    def _pread(self, where, length):
        chunks = []
        got = 0
        while got < length:
            try:
                chunk = self.pread(length - got, where + got)
            except (IOError, OSError) as exc:
                raise DiskImageError.from_oserror(
                    "Cannot read %d bytes at offset %d of %s" % (length, where, self.name), exc,
                    hint="Check the device or image for I/O errors (dmesg)")
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


# --- LUKS ------------------------------------------------------------------

def _probe_luks(r):
    hdr = r.read(0, 512)
    if hdr is None or hdr[:6] != b"LUKS\xba\xbe":
        return None
    version = _be16(hdr, 6)
    if version not in (1, 2):
        return None
    label = None
    if version == 2:
        # A LUKS2 primary header records its own offset; a copy found at 0
        # that claims another place is not a header at 0.
        if _be64(hdr, 256) != 0:
            return None
        label = _label(hdr[24:72])
    uuid = _label(hdr[168:208], "ascii")
    return _result("crypto_LUKS", USAGE_CRYPTO, uuid=uuid, label=label, version=str(version))


# --- FAT -------------------------------------------------------------------

_FAT12_MAX = 0xFF4
_FAT16_MAX = 0xFFF4
_FAT32_MAX = 0x0FFFFFF6
_FAT_NO_NAME = b"NO NAME    "


def _fat_dir_label(r, pos, entries):
    """Volume-label entry of a FAT directory region, or None."""
    data = b""
    for i in range(entries):
        if i * 32 >= len(data):
            # Read a sector at a time: the label is normally the first entry,
            # and a truncated image may hold only the start of the directory.
            chunk = r.read(pos + i * 32, min(512, (entries - i) * 32))
            if chunk is None:
                return None
            data = data[:i * 32] + chunk
        ent = data[i * 32:i * 32 + 32]
        if ent[0] == 0x00:
            break
        attr = ent[11]
        # Skip deleted entries, long-name pieces and anything owning clusters.
        if ent[0] == 0xE5 or (attr & 0x3F) == 0x0F:
            continue
        if _le16(ent, 20) or _le16(ent, 26):
            continue
        if attr & 0x18 == 0x08:  # volume id, not a directory
            return ent[:11]
    return None


def _probe_vfat(r):
    bs = r.read(0, 512)
    if bs is None:
        return None
    strong = bs[0x52:0x57] == b"MSWIN" or bs[0x52:0x5A] == b"FAT32   " or \
        bs[0x36:0x3B] == b"MSDOS" or bs[0x36:0x3E] in (b"FAT16   ", b"FAT12   ", b"FAT     ")
    if not strong:
        # No FAT name string: old floppies still carry the 55AA boot mark.
        # Rule out the FAT-like pseudo headers OS/2 tools put on JFS and HPFS.
        if bs[0x1FE:0x200] != b"\x55\xaa":
            return None
        if bs[0x36:0x3E] in (b"JFS     ", b"HPFS    "):
            return None

    sector_size = _le16(bs, 0x0B)
    cluster_size = bs[0x0D]
    reserved = _le16(bs, 0x0E)
    fats = bs[0x10]
    dir_entries = _le16(bs, 0x11)
    sectors = _le16(bs, 0x13) or _le32(bs, 0x20)
    media = bs[0x15]
    fat16_length = _le16(bs, 0x16)
    fat32_length = _le32(bs, 0x24)
    if not fats or not reserved or not (media >= 0xF8 or media == 0xF0):
        return None
    if not _is_pow2(cluster_size):
        return None
    if not _is_pow2(sector_size) or not 512 <= sector_size <= 4096:
        return None
    fat_length = fat16_length or fat32_length
    fat_size = fat_length * fats
    dir_size = (dir_entries * 32 + sector_size - 1) // sector_size
    data_sectors = sectors - (reserved + fat_size + dir_size)
    if data_sectors < 0:
        return None
    clusters = data_sectors // cluster_size
    if not fat16_length and fat32_length:
        max_clusters = _FAT32_MAX
    else:
        max_clusters = _FAT16_MAX if clusters > _FAT12_MAX else _FAT12_MAX
    if clusters > max_clusters:
        return None

    vol_label = None
    if fat16_length:
        root = (reserved + fat_size) * sector_size
        vol_label = _fat_dir_label(r, root, dir_entries)
        serial = bs[0x27:0x2B]
        version = "FAT12" if clusters < _FAT12_MAX else "FAT16" if clusters < _FAT16_MAX else None
    elif fat32_length:
        # The FAT32 root directory is a cluster chain; follow it a bounded
        # number of steps so a looping chain cannot hang the probe.
        cluster_bytes = cluster_size * sector_size
        data_start = reserved + fat_size
        fat_entries = fat32_length * sector_size // 4
        nxt = _le32(bs, 0x2C)
        for dummy in range(100):
            if not 2 <= nxt < fat_entries:
                break
            pos = (data_start + (nxt - 2) * cluster_size) * sector_size
            vol_label = _fat_dir_label(r, pos, cluster_bytes // 32)
            if vol_label is not None:
                break
            entry = r.read(reserved * sector_size + nxt * 4, 4)
            if entry is None:
                break
            nxt = _le32(entry, 0) & 0x0FFFFFFF
        serial = bs[0x43:0x47]
        version = "FAT32"
        fsinfo_sector = _le16(bs, 0x30)
        if fsinfo_sector:
            fsinfo = r.read(fsinfo_sector * sector_size, 512)
            if fsinfo is None:
                return None
            if fsinfo[0:4] not in (b"RRaA", b"RRdA", b"\0\0\0\0"):
                return None
            if fsinfo[484:488] not in (b"rrAa", b"\0\0\0\0"):
                return None
    else:
        return None

    # The root directory's volume entry is the label (what Windows, dosfslabel
    # and blkid use); the boot sector copy is often stale and is ignored.
    label = None
    if vol_label is not None and vol_label != _FAT_NO_NAME:
        label = _label(vol_label, "latin-1")
    uuid = "%02X%02X-%02X%02X" % (serial[3], serial[2], serial[1], serial[0])
    return _result("vfat", uuid=uuid, label=label, version=version)


# --- btrfs -----------------------------------------------------------------

_BTRFS_SB = 0x10000


def _probe_btrfs(r):
    if r.size is not None and r.size < 1024 * 1024:
        return None  # below any btrfs device size; blkid does not look either
    sb = r.read(_BTRFS_SB, 4096)
    if sb is None or sb[0x40:0x48] != b"_BHRfS_M":
        return None
    if _le64(sb, 0x30) != _BTRFS_SB:
        return None
    # Only crc32c (type 0) is checked; other checksum kinds are not verified
    # rather than pulling in xxhash/sha256/blake2.
    csum_ok = None
    if _le16(sb, 0xC4) == 0:
        csum_ok = _crc32c(sb[0x20:]) == _le32(sb, 0)
    return _result("btrfs", uuid=_uuid(sb[0x20:0x30]), label=_label(sb[0x12B:0x22B]),
                   uuid_sub=_uuid(sb[0x10B:0x11B]), csum_ok=csum_ok)


# --- ext2/3/4 --------------------------------------------------------------

_EXT_COMPAT_HAS_JOURNAL = 0x0004
_EXT_INCOMPAT_JOURNAL_DEV = 0x0008
_EXT_RO_COMPAT_METADATA_CSUM = 0x0400
# What ext2 and ext3 understand: anything beyond makes it ext4 (blkid's rule).
_EXT2_RO_SUPP = 0x0001 | 0x0002 | 0x0004          # sparse_super, large_file, btree_dir
_EXT2_INCOMPAT_SUPP = 0x0002 | 0x0010             # filetype, meta_bg
_EXT3_RO_SUPP = _EXT2_RO_SUPP
_EXT3_INCOMPAT_SUPP = _EXT2_INCOMPAT_SUPP | 0x0004  # + needs_recovery


def _probe_ext(r):
    sb = r.read(1024, 1024)
    if sb is None or sb[0x38:0x3A] != b"\x53\xef":
        return None
    inodes, blocks = struct.unpack_from("<II", sb, 0)
    if not inodes or not blocks or _le32(sb, 0x18) > 6:
        return None  # no inodes, no blocks, or blocks over 64 KiB: not a filesystem
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 0x5C)
    csum_ok = None
    if ro_compat & _EXT_RO_COMPAT_METADATA_CSUM:
        csum_ok = _crc32c_raw(sb[:0x3FC]) == _le32(sb, 0x3FC)
    has_journal = bool(compat & _EXT_COMPAT_HAS_JOURNAL)
    usage = USAGE_FILESYSTEM
    if incompat & _EXT_INCOMPAT_JOURNAL_DEV:
        fstype, usage = "jbd", USAGE_OTHER
    elif (ro_compat & ~_EXT3_RO_SUPP) or (incompat & ~_EXT3_INCOMPAT_SUPP):
        fstype = "ext4"
    elif has_journal:
        fstype = "ext3"
    elif not (ro_compat & ~_EXT2_RO_SUPP) and not (incompat & ~_EXT2_INCOMPAT_SUPP):
        fstype = "ext2"
    else:
        # No journal yet "needs recovery": no type claims it (as in blkid).
        return None
    version = "%d.%d" % (_le32(sb, 0x4C), _le16(sb, 0x3E))
    return _result(fstype, usage, uuid=_uuid(sb[0x68:0x78]), label=_label(sb[0x78:0x88]),
                   version=version, csum_ok=csum_ok)


# --- XFS -------------------------------------------------------------------

def _probe_xfs(r):
    sb = r.read(0, 512)
    if sb is None or sb[:4] != b"XFSB":
        return None
    blocksize = _be32(sb, 4)
    dblocks = _be64(sb, 8)
    rextsize = _be32(sb, 80)
    agblocks = _be32(sb, 84)
    agcount = _be32(sb, 88)
    versionnum = _be16(sb, 100)
    sectsize = _be16(sb, 102)
    inodesize = _be16(sb, 104)
    blocklog, sectlog, inodelog, inopblog = sb[120], sb[121], sb[122], sb[123]
    imax_pct = sb[127]
    # Geometry must hang together; the magic alone is four ASCII letters.
    checks = (
        agcount > 0,
        9 <= sectlog <= 15 and sectsize == 1 << sectlog,
        9 <= blocklog <= 16 and blocksize == 1 << blocklog,
        8 <= inodelog <= 11 and inodesize == 1 << inodelog,
        blocklog - inodelog == inopblog,
        4096 <= rextsize * blocksize <= 1 << 30,
        imax_pct <= 100,
        dblocks > 0,
        agcount and (agcount - 1) * agblocks + 64 <= dblocks <= agcount * agblocks,
    )
    if not all(checks):
        return None
    csum_ok = None
    if versionnum & 0xF == 5:
        sector = r.read(0, sectsize)
        if sector is None:
            return None
        # v5 superblocks carry a CRC32C of the sector with the CRC field zeroed,
        # stored little-endian although the rest of the superblock is big-endian.
        csum_ok = _crc32c(sector[:224] + b"\0\0\0\0" + sector[228:]) == _le32(sector, 224)
    return _result("xfs", uuid=_uuid(sb[32:48]), label=_label(sb[108:120]), csum_ok=csum_ok)


# --- UDF -------------------------------------------------------------------

_UDF_VRS = 0x8000
_UDF_VRS_IDS = (b"BEA01", b"BOOT2", b"CD001", b"CDW02", b"TEA01")


def _udf_dstring(field):
    """Decode an OSTA dstring (compression id byte, chars, length byte)."""
    cid = field[0]
    clen = field[-1]
    if clen > 0:
        clen -= 1
    chars = bytes(field[1:1 + min(clen, len(field) - 2)])
    if cid == 8:
        return chars.decode("latin-1")
    if cid == 16:
        return chars[:len(chars) // 2 * 2].decode("utf-16-be", "replace")
    return None


def _udf_uuid(volset):
    """UUID derived from the Volume Set Identifier, as libblkid derives it."""
    text = _udf_dstring(volset)
    if text is None:
        return None
    buf = text.encode("utf-8")[:16]
    if len(buf) < 8:
        return None
    hexdigits = b"0123456789abcdefABCDEF"
    nonhex = 16
    for i in range(16):
        if i >= len(buf) or buf[i] not in hexdigits:
            nonhex = i
            break
    if nonhex < 8:
        return "".join("%02x" % c for c in bytearray(buf[:8]))
    if nonhex < 16:
        tail = bytearray(buf[8:12]) + bytearray(4 - len(buf[8:12]))
        return buf[:8].decode("ascii").lower() + "".join("%02x" % c for c in tail)
    return buf[:16].decode("ascii").lower()


def _udf_find_anchor(r):
    """Block size whose AVDP sits at block 256, after a valid NSR sequence."""
    for bs in (512, 1024, 2048, 4096):
        vsd_len = max(bs, 2048)
        nsr = False
        for b in range(64):
            vsd = r.read(_UDF_VRS + b * vsd_len, 7)
            if vsd is None or vsd[1] == 0:
                break
            ident = vsd[1:6]
            if ident in (b"NSR02", b"NSR03"):
                nsr = True
                break
            if ident not in _UDF_VRS_IDS:
                break
        if not nsr:
            continue
        tag = r.read(256 * bs, 32)
        if tag is None or _le32(tag, 12) != 256:
            continue
        if _le16(tag, 0) == 2:  # anchor volume descriptor pointer
            return bs, tag
    return None, None


def _probe_udf(r):
    if r.read(_UDF_VRS + 1, 5) not in _UDF_VRS_IDS + (b"NSR02", b"NSR03"):
        return None
    bs, anchor = _udf_find_anchor(r)
    if bs is None:
        return None
    count = _le32(anchor, 16) // bs
    loc = _le32(anchor, 20)
    uuid = label = None
    for b in range(min(count, 256)):
        vd = r.read((loc + b) * bs, 512)
        if vd is None:
            break
        tag_id = _le16(vd, 0)
        if tag_id == 0 or tag_id == 8 or _le32(vd, 12) != loc + b:
            break  # end of sequence, terminator, or not where it claims to be
        if tag_id == 1 and uuid is None:      # primary volume descriptor
            uuid = _udf_uuid(vd[72:200])
        elif tag_id == 6 and label is None:   # logical volume descriptor
            text = _udf_dstring(vd[84:212])
            if text is not None:
                label = text.split("\0", 1)[0].rstrip(_C_SPACE) or None
        if uuid is not None and label is not None:
            break
    return _result("udf", uuid=uuid, label=label)


# --- ISO 9660 --------------------------------------------------------------

_ISO_PVD = 0x8000
_ISO_SECTOR = 2048


def _iso_date_uuid(date):
    """blkid's ISO 'UUID': the 16 date digits as YYYY-MM-DD-HH-MM-SS-CC."""
    digits = bytes(date[:16])
    if digits == b"0" * 16 and date[16] == 0:
        return None  # an unset date per ECMA-119
    d = digits.decode("latin-1")
    return "%s-%s-%s-%s-%s-%s-%s" % (d[0:4], d[4:6], d[6:8], d[8:10], d[10:12], d[12:14], d[14:16])


def _probe_iso9660(r):
    pvd = r.read(_ISO_PVD, _ISO_SECTOR)
    if pvd is None:
        return None
    if pvd[9:14] == b"CDROM":  # High Sierra, the pre-ISO format
        return _result("iso9660", label=_label(pvd[48:80], "latin-1"), version="High Sierra")
    if pvd[1:6] != b"CD001":
        return None
    ascii_label = pvd[40:72]
    uuid = _iso_date_uuid(pvd[830:847]) or _iso_date_uuid(pvd[813:830])
    label = _label(ascii_label, "latin-1")
    version = None
    # A Joliet supplementary descriptor holds the label in UTF-16BE; it wins
    # unless it is just the (possibly cut) ASCII label again.
    for i in range(1, 17):
        vd = r.read(_ISO_PVD + i * _ISO_SECTOR, _ISO_SECTOR)
        if vd is None or vd[0] == 0xFF or vd[1:6] != b"CD001":
            break
        if vd[0] != 2 or vd[88:91] not in (b"%/@", b"%/C", b"%/E"):
            continue
        version = "Joliet Extension"
        joliet = vd[40:72]
        same = all(joliet[2 * k] == 0 and joliet[2 * k + 1] == ascii_label[k] for k in range(16))
        if not same:
            label = _label(joliet.decode("utf-16-be", "replace").encode("utf-8"))
        break
    return _result("iso9660", uuid=uuid, label=label, version=version)


# --- swap ------------------------------------------------------------------

_SWAP_MAGIC_AT = (0xFF6, 0x1FF6, 0x3FF6, 0x7FF6, 0xFFF6)  # end of a 4K..64K page


def _probe_swap(r):
    if r.size is not None and r.size < 10 * 4096:
        return None
    magic = None
    for pos in _SWAP_MAGIC_AT:
        sig = r.read(pos, 10)
        if sig in (b"SWAP-SPACE", b"SWAPSPACE2"):
            magic = sig
            break
    if magic is None:
        return None
    head = r.read(0, 8)
    if head == b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c":
        return None  # TuxOnIce hibernation image, not swap
    if magic == b"SWAP-SPACE":
        return _result("swap", USAGE_OTHER, version="0")
    hdr = r.read(1024, 1024)
    if hdr is None:
        return None
    version = _le32(hdr, 0)
    if version != 1 and _be32(hdr, 0) != 1:
        return None
    if _le32(hdr, 4) == 0:  # last_page unset: mkswap never finished
        return None
    uuid = label = None
    # Old mkswap left garbage past the header; trust uuid/label only when the
    # padding is clean.
    if _le32(hdr, 172) == 0 and _le32(hdr, 176) == 0:
        uuid = _uuid(hdr[12:28])
        label = _label(hdr[28:44])
    return _result("swap", USAGE_OTHER, uuid=uuid, label=label, version="1")


# --- squashfs / erofs ------------------------------------------------------

def _probe_squashfs(r):
    sb = r.read(0, 96)
    if sb is None:
        return None
    if sb[:4] == b"hsqs":
        major, minor = _le16(sb, 28), _le16(sb, 30)
    elif sb[:4] == b"sqsh":
        major, minor = _be16(sb, 28), _be16(sb, 30)
    else:
        return None
    if not 1 <= major <= 4:
        return None
    fstype = "squashfs" if major >= 4 else "squashfs3"
    return _result(fstype, version="%d.%d" % (major, minor))


def _probe_erofs(r):
    sb = r.read(1024, 128)
    if sb is None or sb[:4] != b"\xe2\xe1\xf5\xe0":
        return None
    blkszbits = sb[12]
    if not 9 <= blkszbits <= 12:
        return None
    # EROFS_FEATURE_COMPAT_SB_CHKSUM covers the rest of block 0 from the
    # superblock on; with blocks of 1 KiB or less there is nothing to cover.
    csum_ok = None
    csum_len = (1 << blkszbits) - 1024
    if _le32(sb, 8) & 0x1 and csum_len > 0:
        block = r.read(1024, csum_len)
        if block is None:
            return None
        csum_ok = _crc32c_raw(block[:4] + b"\0\0\0\0" + block[8:]) == _le32(sb, 4)
    return _result("erofs", uuid=_uuid(sb[48:64]), label=_label(sb[64:80]), csum_ok=csum_ok)


# Order follows blkid's list, which matters only for images carrying more
# than one signature (UDF bridge discs hold an ISO 9660 descriptor too).
_PROBERS = (
    _probe_luks,
    _probe_vfat,
    _probe_btrfs,
    _probe_ext,
    _probe_xfs,
    _probe_udf,
    _probe_iso9660,
    _probe_swap,
    _probe_squashfs,
    _probe_erofs,
)

KNOWN_TYPES = ("crypto_LUKS", "vfat", "btrfs", "ext4", "ext3", "ext2", "jbd", "xfs",
               "udf", "iso9660", "swap", "squashfs", "squashfs3", "erofs")


def _fd_of(dev):
    """The OS descriptor behind ``dev``, or None for in-memory files."""
    if isinstance(dev, int):
        return dev
    try:
        return dev.fileno()
    except (AttributeError, IOError, OSError, ValueError):
        # io.BytesIO and friends: UnsupportedOperation is an OSError+ValueError
        return None


def _seek_read(dev):
    def pread(length, where):
        dev.seek(where)
        return dev.read(length)
    return pread


def _area_size(fd, dev, offset, name):
    """Bytes available from ``offset`` on: file size, or device size."""
    if fd is None:
        try:
            return max(dev.seek(0, os.SEEK_END) - offset, 0)
        except (AttributeError, IOError, OSError, ValueError):
            return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            total = st.st_size
        elif stat.S_ISBLK(st.st_mode):
            # pread never moves the file position, so measuring via lseek is
            # harmless; restore it for callers that also use read().
            here = os.lseek(fd, 0, os.SEEK_CUR)
            total = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, here, os.SEEK_SET)
        else:
            return None
    except OSError as exc:
        raise DiskImageError.from_oserror("Cannot determine the size of %s" % name, exc)
    return max(total - offset, 0)


def probe(dev, offset=0, size=None, strict=False):
    """Identify the content of ``dev`` starting ``offset`` bytes in.

    ``dev`` is an open binary file object or a file descriptor, for an image
    file or a block device (in-memory files with seek/read work too).
    ``size`` bounds the area (a partition inside an image); by default it
    runs to the end.

    Returns None when nothing is recognised, else a dict with ``type``
    (blkid's name), ``usage`` ('filesystem', 'crypto' or 'other'), ``uuid``,
    ``label``, ``version`` and ``uuid_sub`` (btrfs device UUID), each None
    when absent, and ``csum_ok``: True or False where the superblock carries
    a checksum that was checked (ext4 metadata_csum, xfs v5, btrfs crc32c,
    erofs), else None. A bad checksum usually means a damaged image, which
    the kernel will refuse to mount; ``strict=True`` turns such a result into
    None, as newer libblkid does. Raises DiskImageError only when reading
    fails.
    """
    if offset < 0 or (size is not None and size < 0):
        raise ValueError("offset and size must not be negative")
    fd = _fd_of(dev)
    name = getattr(dev, "name", None)
    if not isinstance(name, str):
        name = "file descriptor %d" % fd if fd is not None else "the probed file"
    if size is None:
        size = _area_size(fd, dev, offset, name)
    if size is not None and size <= 1024:
        # Like blkid: areas this small (an extended partition's box, say)
        # hold no filesystem, whatever their first bytes look like.
        return None
    if fd is not None:
        reader = _Reader(lambda length, where: os.pread(fd, length, where), name, offset, size)
    else:
        reader = _Reader(_seek_read(dev), name, offset, size)
    for prober in _PROBERS:
        try:
            found = prober(reader)
        except (struct.error, ValueError, IndexError, UnicodeError, OverflowError):
            # Any inconsistency inside a superblock just means "not this one".
            found = None
        if found is not None:
            if strict and found["csum_ok"] is False:
                return None
            return found
    return None


def probe_path(path, offset=0, size=None, strict=False):
    """``probe`` on a path (image file or block device), opened read-only."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DiskImageError.from_oserror("Cannot open %s to probe it" % path, exc)
    try:
        return probe(_Named(fd, path), offset, size, strict)
    finally:
        os.close(fd)


class _Named:
    """A descriptor with a name, so I/O errors name the path."""

    def __init__(self, fd, name):
        self._fd = fd
        self.name = name

    def fileno(self):
        return self._fd

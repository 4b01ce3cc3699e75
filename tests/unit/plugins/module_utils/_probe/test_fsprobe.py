# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fsprobe against blkid: real images made by the mkfs tools, plus garbage.

blkid is the oracle: for every image our type, UUID and label must equal
what `blkid -p -o udev` prints. LUKS and UDF headers are built by hand here
(cryptsetup and mkudffs are not needed); blkid checks those too.
"""

import io
import os
import random
import re
import shutil
import struct
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1024 * 1024


def blkid(path, offset=None, size=None):
    """blkid's verdict as {type, uuid, label}, or None when it finds nothing."""
    if not shutil.which("blkid"):
        pytest.skip("blkid is not installed")
    cmd = ["blkid", "-p", "-o", "udev"]
    if offset:
        cmd += ["-O", str(offset)]
    if size:
        cmd += ["-S", str(size)]
    out = subprocess.run(cmd + [path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         check=False).stdout.decode()
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if "ID_FS_TYPE" not in values:
        return None

    def enc(key):
        raw = values.get(key)
        if raw is None:
            return None
        # udev's *_ENC values spell unsafe bytes as \xNN
        data = re.sub(br"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                      raw.encode())
        return data.decode("utf-8")

    return {"type": values["ID_FS_TYPE"], "uuid": enc("ID_FS_UUID_ENC"),
            "label": enc("ID_FS_LABEL_ENC")}


def ours(path, **kw):
    found = fsprobe.probe_path(path, **kw)
    if found is None:
        return None
    return {"type": found["type"], "uuid": found["uuid"], "label": found["label"]}


def run(*cmd, **kw):
    if not shutil.which(cmd[0]):
        pytest.skip("%s is not installed" % cmd[0])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


# --- hand-built headers ----------------------------------------------------

def luks_header(version, uuid, label=b""):
    h = bytearray(MiB)
    h[0:6] = b"LUKS\xba\xbe"
    h[6:8] = struct.pack(">H", version)
    if version == 1:
        h[8:11] = b"aes"
        h[40:51] = b"xts-plain64"
        h[72:78] = b"sha256"
        h[104:108] = struct.pack(">I", 4096)
    else:
        h[8:16] = struct.pack(">Q", 16384)
        h[24:24 + len(label)] = label
        h[72:78] = b"sha256"
    h[168:168 + len(uuid)] = uuid
    return bytes(h)


def _udf_tag(buf, pos, tag_id, location):
    struct.pack_into("<HH", buf, pos, tag_id, 2)
    struct.pack_into("<I", buf, pos + 12, location)
    buf[pos + 4] = sum(buf[pos:pos + 16]) & 0xFF  # tag checksum (bytes 0-15 but 4)


def _dstring(text, size, utf16=False):
    if utf16:
        chars = b"\x10" + text.encode("utf-16-be")
    else:
        chars = b"\x08" + text.encode("latin-1")
    field = bytearray(size)
    field[:len(chars)] = chars
    field[-1] = len(chars)
    return bytes(field)


def udf_image(block, volset, label, utf16=False):
    """The least UDF blkid accepts: VRS, anchor, PVD, LVD, terminator."""
    img = bytearray(max(300 * block, 1 * MiB))
    for i, ident in enumerate((b"BEA01", b"NSR02", b"TEA01")):
        img[0x8000 + i * 2048:0x8000 + i * 2048 + 7] = b"\0" + ident + b"\x01"
    vds = 0xA000 // block   # just past the VRS, whatever the block size
    anchor = 256 * block
    _udf_tag(img, anchor, 2, 256)
    struct.pack_into("<II", img, anchor + 16, 4 * block, vds)
    cs0 = b"\0OSTA Compressed Unicode".ljust(64, b"\0")  # the charspec UDF mandates
    pvd = vds * block
    img[pvd + 24:pvd + 56] = _dstring("VOLID", 32)
    img[pvd + 72:pvd + 200] = _dstring(volset, 128, utf16)
    img[pvd + 200:pvd + 264] = cs0
    _udf_tag(img, pvd, 1, vds)
    lvd = (vds + 1) * block
    img[lvd + 20:lvd + 84] = cs0
    img[lvd + 84:lvd + 212] = _dstring(label, 128, utf16)
    _udf_tag(img, lvd, 6, vds + 1)
    _udf_tag(img, (vds + 2) * block, 8, vds + 2)
    return bytes(img)


# --- images ----------------------------------------------------------------

def _make(kind, d):
    path = str(d / ("%s.img" % kind))
    tree = d / "tree"
    if not tree.exists():
        tree.mkdir()
        (tree / "hello.txt").write_text("hello\n")
        (tree / "sub").mkdir()
        (tree / "sub" / "data.bin").write_bytes(os.urandom(5000))
    if kind == "ext2":
        run("mkfs.ext2", "-q", "-F", sparse(path, 8 * MiB))
    elif kind == "ext3":
        run("mkfs.ext3", "-q", "-F", "-L", "e3 label", sparse(path, 8 * MiB))
    elif kind == "ext4":
        run("mkfs.ext4", "-q", "-F", "-L", "root fs", sparse(path, 16 * MiB))
    elif kind == "ext4-nocsum":
        run("mkfs.ext4", "-q", "-F", "-O", "^metadata_csum", sparse(path, 16 * MiB))
    elif kind == "ext4-nojournal":
        # no journal but extents: ext4, not ext2 (blkid's feature rule)
        run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "nj", sparse(path, 8 * MiB))
    elif kind == "xfs":
        run("mkfs.xfs", "-q", "-f", "-L", "xfslabel", sparse(path, 300 * MiB))
    elif kind == "btrfs":
        run("mkfs.btrfs", "-q", "-f", "-L", "btrfs label", sparse(path, 128 * MiB))
    elif kind == "fat12":
        run("mkfs.vfat", "-F", "12", sparse(path, 1 * MiB))
    elif kind == "fat16":
        run("mkfs.vfat", "-F", "16", "-n", "FAT16VOL", sparse(path, 32 * MiB))
    elif kind == "fat32":
        run("mkfs.vfat", "-F", "32", "-n", "EFI SYSTEM", sparse(path, 64 * MiB))
    elif kind == "squashfs":
        run("mksquashfs", str(tree), path, "-quiet", "-noappend")
    elif kind == "erofs":
        run("mkfs.erofs", path, str(tree))
    elif kind == "erofs-lz4":
        run("mkfs.erofs", "-zlz4hc", path, str(tree))
    elif kind == "iso9660":
        run("xorriso", "-as", "mkisofs", "-quiet", "-V", "PLAIN_ISO", "-o", path, str(tree))
    elif kind == "iso9660-joliet":
        run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-V", "Install Media 1", "-o", path,
            str(tree))
    elif kind == "iso9660-unicode":
        # ASCII and Joliet labels differ: blkid takes the Joliet (UTF-16) one
        run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-V", u"Bücher ß", "-o", path,
            str(tree))
    elif kind == "iso9660-long":
        # 32 characters: Joliet can hold only 16, so the PVD label wins
        run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-V",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "-o", path, str(tree))
    elif kind == "swap":
        run("mkswap", "-L", "swaplbl", sparse(path, 1 * MiB))
    elif kind == "luks1":
        with open(path, "wb") as f:
            f.write(luks_header(1, b"0b1f1a7e-6f43-4d5e-9a44-1c1d3a3e2f10"))
    elif kind == "luks2":
        with open(path, "wb") as f:
            f.write(luks_header(2, b"4c3b2a19-1111-4222-8333-944455556666", b"cryptroot"))
    elif kind == "udf":
        with open(path, "wb") as f:
            f.write(udf_image(2048, "5F3A1B2Cdeadbeef and more", "UDF Disc"))
    elif kind == "udf-512":
        with open(path, "wb") as f:
            f.write(udf_image(512, "ZZ not hex at all", "small blocks"))
    elif kind == "udf-utf16":
        with open(path, "wb") as f:
            f.write(udf_image(2048, "1234abcdXYZ", u"Diskette Ünïcode", utf16=True))
    else:
        raise AssertionError(kind)
    return path


KINDS = ["ext2", "ext3", "ext4", "ext4-nocsum", "ext4-nojournal", "xfs", "btrfs", "fat12",
         "fat16", "fat32", "squashfs", "erofs", "erofs-lz4", "iso9660", "iso9660-joliet",
         "iso9660-unicode", "iso9660-long", "swap", "luks1", "luks2", "udf", "udf-512",
         "udf-utf16"]

EXPECTED_TYPE = {"ext4-nocsum": "ext4", "ext4-nojournal": "ext4", "fat12": "vfat",
                 "fat16": "vfat", "fat32": "vfat", "erofs-lz4": "erofs", "luks1": "crypto_LUKS",
                 "luks2": "crypto_LUKS", "udf-512": "udf", "udf-utf16": "udf"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsprobe")
    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = _make(kind, d)
        return made[kind]
    return get


@pytest.mark.parametrize("kind", KINDS)
def test_matches_blkid(images, kind):
    path = images(kind)
    expected = blkid(path)
    assert expected is not None, "blkid does not recognise the %s fixture" % kind
    assert expected["type"] == EXPECTED_TYPE.get(kind, kind.split("-")[0])
    assert ours(path) == expected


@pytest.mark.parametrize("kind", ["ext4", "xfs", "btrfs", "erofs"])
def test_checksummed_superblocks_verify(images, kind):
    assert fsprobe.probe_path(images(kind))["csum_ok"] is True


def test_extra_fields(images):
    btrfs = fsprobe.probe_path(images("btrfs"))
    assert btrfs["uuid_sub"] and btrfs["uuid_sub"] != btrfs["uuid"]
    assert fsprobe.probe_path(images("fat32"))["version"] == "FAT32"
    assert fsprobe.probe_path(images("fat16"))["version"] == "FAT16"
    assert fsprobe.probe_path(images("fat12"))["version"] == "FAT12"
    assert fsprobe.probe_path(images("ext4"))["usage"] == "filesystem"
    assert fsprobe.probe_path(images("swap"))["usage"] == "other"
    luks = fsprobe.probe_path(images("luks2"))
    assert (luks["usage"], luks["version"]) == ("crypto", "2")
    assert fsprobe.probe_path(images("squashfs"))["version"] == "4.0"
    assert fsprobe.probe_path(images("iso9660-joliet"))["version"] == "Joliet Extension"


def test_udf_uuid_forms(images):
    # all-hex start: lower-cased; non-hex start: hex of the bytes; mixed: both
    assert ours(images("udf"))["uuid"] == "5f3a1b2cdeadbeef"
    assert ours(images("udf-512"))["uuid"] == "5a5a206e6f742068"
    assert ours(images("udf-utf16"))["uuid"] == "1234abcd58595a00"


def test_damaged_checksum_reported_and_strict(images, tmp_path):
    bad = str(tmp_path / "bad-ext4.img")
    shutil.copyfile(images("ext4"), bad)
    with open(bad, "r+b") as f:
        f.seek(1024 + 0x300)  # an unused byte inside the superblock
        f.write(b"\x55")
    found = fsprobe.probe_path(bad)
    assert found["type"] == "ext4" and found["csum_ok"] is False
    assert fsprobe.probe_path(bad, strict=True) is None


def test_iso_uuid_prefers_modification_date(images, tmp_path):
    path = str(tmp_path / "dates.iso")
    shutil.copyfile(images("iso9660"), path)
    with open(path, "r+b") as f:
        f.seek(0x8000 + 813)
        f.write(b"2001020304050607\0")   # created
        f.write(b"2011121314151617\0")   # modified
    assert ours(path)["uuid"] == "2011-12-13-14-15-16-17" == blkid(path)["uuid"]
    with open(path, "r+b") as f:
        f.seek(0x8000 + 830)
        f.write(b"0000000000000000\0")   # modified unset: fall back to created
    assert ours(path)["uuid"] == "2001-02-03-04-05-06-07" == blkid(path)["uuid"]


def test_offset_and_size_inside_a_bigger_file(images, tmp_path):
    # an ext4 "partition" at 1 MiB inside a disk image, an xfs signature after it
    part = images("ext4")
    part_size = os.path.getsize(part)
    disk = str(tmp_path / "disk.img")
    with open(disk, "wb") as out, open(part, "rb") as src:
        out.truncate(MiB + part_size + MiB)
        out.seek(MiB)
        out.write(src.read())
    assert fsprobe.probe_path(disk) is None
    expected = blkid(disk, offset=MiB, size=part_size)
    assert ours(disk, offset=MiB, size=part_size) == expected
    assert ours(disk, offset=MiB)["type"] == "ext4"
    # a window too small to hold the superblock finds nothing
    assert fsprobe.probe_path(disk, offset=MiB, size=1500) is None


def test_file_objects_descriptors_and_memory(images):
    path = images("xfs")
    expected = ours(path)
    with open(path, "rb") as f:
        assert fsprobe.probe(f)["uuid"] == expected["uuid"]
        assert fsprobe.probe(f.fileno())["uuid"] == expected["uuid"]
    with open(images("squashfs"), "rb") as f:
        assert fsprobe.probe(io.BytesIO(f.read()))["type"] == "squashfs"


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_images_agree_with_blkid(images, kind, tmp_path):
    # Cuts through and after each superblock: no exception ever, and where
    # enough survives to be recognised, the same answer as blkid.
    with open(images(kind), "rb") as f:
        data = f.read(300 * 1024)
    for cut in (0, 100, 512, 1030, 1100, 2047, 4096, 32768 + 100, 0x10000 + 200, 0x10000 + 4096):
        if cut > len(data):
            continue
        path = str(tmp_path / ("cut-%d" % cut))
        with open(path, "wb") as f:
            f.write(data[:cut])
        got = ours(path)
        assert got == blkid(path), "cut at %d" % cut


def test_garbage_is_none(tmp_path):
    rnd = random.Random(1234)
    for n, size in enumerate((0, 1, 511, 4096, 70000, 2 * MiB)):
        path = str(tmp_path / ("random-%d" % n))
        with open(path, "wb") as f:
            f.write(bytes(rnd.getrandbits(8) for dummy in range(min(size, 70000))))
            f.truncate(size)
        assert fsprobe.probe_path(path) is None
    zeros = sparse(tmp_path / "zeros", 4 * MiB)
    assert fsprobe.probe_path(zeros) is None


@pytest.mark.parametrize("kind", ["ext4", "xfs", "btrfs", "fat16", "fat32", "iso9660-joliet",
                                  "swap", "squashfs", "erofs", "udf", "luks2"])
def test_mangled_superblocks_never_raise(images, kind):
    # Keep the magic, scramble what follows: every path through the parsers
    # must end in a result or None, never in an exception.
    with open(images(kind), "rb") as f:
        original = bytearray(f.read(0x20000))
    rnd = random.Random(kind)
    hot = {"ext4": 1024, "xfs": 0, "btrfs": 0x10000, "fat16": 0, "fat32": 0,
           "iso9660-joliet": 0x8000, "swap": 1024, "squashfs": 0, "erofs": 1024,
           "udf": 0x8000, "luks2": 0}[kind]
    for dummy in range(150):
        data = bytearray(original)
        for dummy2 in range(rnd.randint(1, 40)):
            pos = hot + rnd.randrange(0, 2048)
            data[pos] = rnd.getrandbits(8)
        result = fsprobe.probe(io.BytesIO(bytes(data)))
        assert result is None or result["type"] in fsprobe.KNOWN_TYPES


def test_hand_made_headers_with_magic_only():
    # A magic alone is not a filesystem.
    for blob in (b"\0" * 1024 + b"\0" * 0x38 + b"\x53\xef" + b"\0" * 2000,   # ext magic
                 b"XFSB" + b"\0" * 4096,
                 b"\xeb\x3c\x90" + b"\0" * 507 + b"\x55\xaa",                   # jump + 55AA
                 b"\0" * 0x8001 + b"CD001" + b"\0" * 100,                       # cut ISO
                 b"hsqs" + b"\0" * 100):
        assert fsprobe.probe(io.BytesIO(blob)) is None


def test_io_errors_raise_diskimageerror(tmp_path):
    with pytest.raises(DiskImageError) as err:
        fsprobe.probe_path(str(tmp_path / "missing.img"))
    assert err.value.errno == 2 and "missing.img" in str(err.value)
    fd = os.open(str(tmp_path), os.O_RDONLY)   # pread on a directory: EISDIR
    try:
        with pytest.raises(DiskImageError) as err:
            fsprobe.probe(fd, size=MiB)
        assert err.value.errno == 21
    finally:
        os.close(fd)


def test_negative_offsets_are_refused(tmp_path):
    path = sparse(tmp_path / "x", 4096)
    with pytest.raises(ValueError):
        fsprobe.probe_path(path, offset=-1)


def test_fat_label_comes_from_the_root_directory(images, tmp_path):
    # Deleting the root directory's volume entry leaves only the boot sector
    # copy, which blkid (and we) do not call the label.
    path = str(tmp_path / "nolabel.img")
    shutil.copyfile(images("fat16"), path)
    with open(path, "r+b") as f:
        bs = f.read(512)
        sector = struct.unpack_from("<H", bs, 11)[0]
        reserved, fats = struct.unpack_from("<HB", bs, 14)
        fat_len = struct.unpack_from("<H", bs, 22)[0]
        root = (reserved + fats * fat_len) * sector
        f.seek(root)
        assert f.read(11) == b"FAT16VOL   "
        f.seek(root)
        f.write(b"\xe5")
    assert ours(path) == blkid(path)
    assert ours(path)["label"] is None

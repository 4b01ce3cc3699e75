# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential tests: our reader and writer against util-linux on a generated corpus.

Three directions, each on layouts drawn from a seeded generator (so a
failure names a seed that reproduces it):
  * sfdisk writes a random table, our reader must see what sfdisk sees;
  * our writer writes a random layout, sfdisk must see what we planned;
  * the same simple layout given to both must be placed identically.
512-byte images use `sfdisk --json`; 4096-byte images need a sector size
option that sfdisk only has from util-linux 2.39 on, so older versions use
`fdisk -b 4096` with its script import (I) and export (O) commands.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import random
import re
import shutil
import subprocess
import uuid

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import (
    LayoutError,
    plan_layout,
    write_table,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_table
from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import GPT_BY_ALIAS


def _tool(name):
    # util-linux installs these in sbin, which an unprivileged PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


SFDISK = _tool("sfdisk")
FDISK = _tool("fdisk")
PARTX = _tool("partx")

pytestmark = pytest.mark.skipif(not SFDISK, reason="sfdisk (util-linux) is not installed")

MiB = 1024 * 1024
CASES = 150
PARITY_CASES = 50
NAME_CHARS = u"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.éüßΩ文"
DOS_TYPES = [0x83, 0x82, 0x8E, 0xFD, 0x07, 0x0C, 0x0B, 0xEF, 0xEA, 0x42, 0xA5]
GPT_TYPES = sorted(GPT_BY_ALIAS.values())
SFDISK_ATTR_BITS = [0, 1, 2] + list(range(48, 64))
ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")


def _run(args, stdin=None):
    proc = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, timeout=30,
                          check=False)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _sfdisk_knows_sector_size():
    if not SFDISK:
        return False
    return "--sector-size" in _run([SFDISK, "--help"])[1]


SFDISK_SECTOR_SIZE = _sfdisk_knows_sector_size()


def _need_4096():
    if not SFDISK_SECTOR_SIZE and not FDISK:
        pytest.skip("neither sfdisk --sector-size (util-linux 2.39+) nor fdisk -b is available")


# --- driving util-linux ---------------------------------------------------


def util_write(path, script, sector_size):
    """Make a table from an sfdisk script; returns (ok, message)."""
    if sector_size == 512 or SFDISK_SECTOR_SIZE:
        extra = [] if sector_size == 512 else ["--sector-size", str(sector_size)]
        code, _out, err = _run([SFDISK, "-q", "--no-reread", "--no-tell-kernel"] + extra + [path],
                               script.encode("utf-8"))
        return code == 0, err
    script_path = path + ".in"
    with open(script_path, "w") as handle:
        handle.write(script)
    code, out, err = _run([FDISK, "-b", str(sector_size), path], ("I\n%s\nw\n" % script_path).encode())
    ok = code == 0 and "Script successfully applied" in out
    return ok, out + err


def util_read(path, sector_size):
    """What util-linux sees: {'label', 'id', 'partitions': {number: fields}}."""
    if sector_size == 512 or SFDISK_SECTOR_SIZE:
        extra = [] if sector_size == 512 else ["--sector-size", str(sector_size)]
        code, out, err = _run([SFDISK, "--json"] + extra + [path])
        assert code == 0, err
        return _from_json(json.loads(out)["partitiontable"], path)
    dump_path = path + ".out"
    code, out, err = _run([FDISK, "-b", str(sector_size), path], ("O\n%s\nq\n" % dump_path).encode())
    assert code == 0 and os.path.exists(dump_path), out + err
    with open(dump_path, "rb") as handle:
        text = handle.read().decode("utf-8")
    os.unlink(dump_path)
    return _from_dump(text, path)


def _number(node, path):
    assert node.startswith(path), (node, path)
    return int(node[len(path):])


def _from_json(table, path):
    parts = {}
    for entry in table.get("partitions", []):
        parts[_number(entry["node"], path)] = {
            "start": entry["start"], "size": entry["size"], "type": entry["type"], "uuid": entry.get("uuid"),
            "name": entry.get("name", ""), "attrs": entry.get("attrs", ""), "bootable": bool(entry.get("bootable")),
        }
    return {"label": table["label"], "id": table["id"], "sectorsize": table.get("sectorsize"), "partitions": parts}


_FIELD = re.compile(r'(\w+)=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)|\b(bootable)\b')


def _unescape(text):
    """fdisk's dump writes non-ASCII name bytes as \\xHH."""
    raw = re.sub(br"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return raw.decode("utf-8").replace('\\"', '"').replace("\\\\", "\\")


def _from_dump(text, path):
    head, parts = {}, {}
    for line in text.splitlines():
        if " : " in line and line.startswith(path):
            node, rest = line.split(" : ", 1)
            fields = {"name": "", "attrs": "", "bootable": False, "uuid": None}
            for key, value, flag in _FIELD.findall(rest):
                if flag:
                    fields["bootable"] = True
                else:
                    fields[key] = _unescape(value[1:-1]) if value.startswith('"') else value
            parts[_number(node.strip(), path)] = {
                "start": int(fields["start"]), "size": int(fields["size"]), "type": fields["type"],
                "uuid": fields["uuid"], "name": fields["name"], "attrs": fields["attrs"],
                "bootable": fields["bootable"]}
        elif ": " in line:
            key, value = line.split(": ", 1)
            head[key.strip()] = value.strip()
    return {"label": head["label"], "id": head["label-id"], "sectorsize": int(head["sector-size"]),
            "partitions": parts}


def partx_uuids(path):
    """PARTUUIDs as libblkid computes them (512-byte sectors only)."""
    code, out, err = _run([PARTX, "-g", "-P", "-o", "NR,UUID", path])
    assert code == 0, err
    return {int(nr): u for nr, u in re.findall(r'NR="(\d+)" UUID="([^"]*)"', out)}


def sfdisk_attrs(bits):
    names = [n for bit, n in ((0, "RequiredPartition"), (1, "NoBlockIOProtocol"), (2, "LegacyBIOSBootable"))
             if bits >> bit & 1]
    high = [str(b) for b in range(48, 64) if bits >> b & 1]
    if high:
        names.append("GUID:" + ",".join(high))
    return " ".join(names)


def assert_same(ours, theirs, path, sector_size):
    """Our PartitionTable against util-linux's view of the same image."""
    assert ours.label == theirs["label"]
    if ours.label == "dos":
        assert int(ours.disk_id, 16) == int(theirs["id"], 16)
    else:
        assert ours.disk_id == theirs["id"].lower()
    assert ours.sector_size == sector_size
    want = theirs["partitions"]
    assert sorted(p.number for p in ours.partitions) == sorted(want)
    for part in ours.partitions:
        them = want[part.number]
        where = "partition %d" % part.number
        assert (part.start_sector, part.size_sectors) == (them["start"], them["size"]), where
        if ours.label == "dos":
            assert int(part.type, 16) == int(them["type"], 16), where
            assert part.bootable == them["bootable"], where
            assert part.kind == ("logical" if part.number > 4 else
                                 "extended" if int(them["type"], 16) in (5, 0xF, 0x85) else "primary")
        else:
            assert part.type == them["type"].lower(), where
            assert part.uuid == them["uuid"].lower(), where
            assert part.name == them["name"], where
            assert sfdisk_attrs(part.attributes) == them["attrs"], where
            assert part.bootable == bool(part.attributes & 4)
    if ours.label == "dos" and sector_size == 512 and PARTX and ours.partitions:
        assert partx_uuids(path) == {p.number: p.uuid for p in ours.partitions}


def new_image(tmp_path, size, name="disk.img"):
    path = str(tmp_path / name)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


# --- generators -----------------------------------------------------------


def _name(rng):
    return "".join(rng.choice(NAME_CHARS) for _dummy in range(rng.randint(0, 36))).strip()


def _extents(rng, lo, hi, count, gap):
    """``count`` disjoint [start, end) extents in [lo, hi), each preceded by at least ``gap`` free sectors."""
    if count == 0:
        return []
    room = hi - lo - count * (gap + 1)
    if room <= count:
        return None
    cuts = sorted(rng.sample(range(room), 2 * count))
    extents, shift = [], lo
    for i in range(count):
        start = shift + gap + cuts[2 * i]
        end = shift + gap + cuts[2 * i + 1] + 1
        extents.append((start, end))
        shift += gap + 1
    return extents


def gen_sfdisk_script(rng, img):
    """A random sfdisk script (and the image size and sector size) with explicit sector placement."""
    label = rng.choice(["dos", "gpt"])
    sector_size = rng.choice([512, 512, 4096])
    grain = MiB // sector_size
    size = rng.randint(8, 200) * MiB + rng.choice([0, 0, rng.randint(1, 999) * sector_size])
    total = size // sector_size
    lines = ["label: %s" % label]
    if rng.random() < 0.8:
        lines.append("label-id: %s" % ("0x%08x" % rng.randint(1, 0xFFFFFFFF) if label == "dos"
                                       else str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()))
    lines.append("")
    if label == "gpt":
        lo, hi = grain, total - 34 * 512 // sector_size - 1
        count = rng.randint(0, 14)
        numbers = sorted(rng.sample(range(1, 129 if rng.random() < 0.2 else count + 4), count))
        for number, (start, end) in zip(numbers, _extents(rng, lo, hi, count, rng.choice([0, 1, grain])) or []):
            fields = ["start=%d" % start, "size=%d" % (end - start),
                      "type=%s" % (rng.choice(GPT_TYPES) if rng.random() < 0.8
                                   else str(uuid.UUID(int=rng.getrandbits(128)))).upper()]
            if rng.random() < 0.7:
                fields.append("uuid=%s" % str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper())
            name = _name(rng)
            if name:
                fields.append('name="%s"' % name)
            bits = sum(1 << b for b in SFDISK_ATTR_BITS if rng.random() < 0.1)
            if bits:
                fields.append('attrs="%s"' % sfdisk_attrs(bits))
            lines.append("%s%d : %s" % (img, number, ", ".join(fields)))
        return "\n".join(lines) + "\n", size, sector_size
    # dos: primaries in chosen slots, maybe an extended one holding logical partitions with room for EBRs.
    with_extended = rng.random() < 0.6
    slots = sorted(rng.sample(range(1, 5), rng.randint(1 if with_extended else 0, 4)))
    top = _extents(rng, grain, total, len(slots), rng.choice([0, 1, grain]))
    if top is None:
        return None
    ext_slot = rng.choice(slots) if with_extended and slots else None
    for slot, (start, end) in zip(slots, top):
        if slot == ext_slot:
            lines.append("%s%d : start=%d, size=%d, type=5" % (img, slot, start, end - start))
            logicals = _extents(rng, start, end, rng.randint(0, 8), grain + 1) or []
            for number, (lstart, lend) in enumerate(logicals, 5):
                boot = ", bootable" if rng.random() < 0.15 else ""
                lines.append("%s%d : start=%d, size=%d, type=%x%s"
                             % (img, number, lstart, lend - lstart, rng.choice(DOS_TYPES), boot))
        else:
            boot = ", bootable" if rng.random() < 0.2 else ""
            lines.append("%s%d : start=%d, size=%d, type=%x%s"
                         % (img, slot, start, end - start, rng.choice(DOS_TYPES), boot))
    return "\n".join(lines) + "\n", size, sector_size


def _size_value(rng, sectors, sector_size, disk_size):
    """The same size in one of the forms a playbook may use (never less than ``sectors``)."""
    nbytes = sectors * sector_size
    form = rng.random()
    if form < 0.3 and nbytes % MiB == 0:
        return "%dMiB" % (nbytes // MiB)
    if form < 0.5 and nbytes % 1024 == 0:
        return "%dKiB" % (nbytes // 1024)
    if form < 0.6:
        return "%d%%" % max(1, nbytes * 100 // disk_size)
    if form < 0.7:
        return "%dKB" % -(-nbytes // 1000)
    return nbytes


def gen_layout(rng):
    label = rng.choice(["dos", "gpt"])
    sector_size = rng.choice([512, 512, 4096])
    size = rng.randint(4, 300) * MiB + rng.choice([0, 0, rng.randint(1, 999) * sector_size])
    alignment = rng.choice([sector_size, 4096, 64 * 1024, MiB, MiB, 4 * MiB])
    alignment = max(alignment, sector_size)
    count = rng.randint(0, 10) if label == "dos" else rng.choice([rng.randint(0, 12), rng.randint(0, 128)])
    budget = (size - 2 * alignment * (count + 2)) // sector_size
    weights = [rng.random() + 0.05 for _dummy in range(count)]
    parts = []
    rest = rng.randrange(count) if count and rng.random() < 0.6 else None
    for i in range(count):
        part = {}
        if i != rest:
            sectors = max(1, int(budget * weights[i] / (sum(weights) + 0.5)))
            part["size"] = _size_value(rng, sectors, sector_size, size)
        elif rng.random() < 0.5:
            part["size"] = "rest"
        if label == "gpt":
            part["type"] = rng.choice([rng.choice(sorted(GPT_BY_ALIAS)), rng.choice(GPT_TYPES).upper(), "0x82"])
            if rng.random() < 0.5:
                part["uuid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            name = _name(rng)
            if name:
                part["name"] = name
            bits = [b for b in SFDISK_ATTR_BITS if rng.random() < 0.08]
            if bits:
                part["attributes"] = bits if rng.random() < 0.5 else sum(1 << b for b in bits)
        else:
            part["type"] = rng.choice(["linux", "swap", "lvm", "esp", 0x83, "0x0c", "7", 0xA5])
        if rng.random() < 0.15:
            part["bootable"] = True
        parts.append(part)
    if label == "dos" and 2 <= count and rng.random() < 0.3:
        at = rng.randint(0, min(3, count - 1))
        parts.insert(at, {"type": rng.choice(["extended", "0x0f", 0x85])})
    layout = {"label": label, "alignment": alignment, "partitions": parts}
    if rng.random() < 0.7:
        layout["disk_id"] = "0x%08x" % rng.randint(1, 0xFFFFFFFF) if label == "dos" else \
            str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
    elif rng.random() < 0.5:
        layout["seed"] = "seed-%d" % rng.randint(0, 1000)
    return layout, size, sector_size


# --- the tests ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(CASES))
def test_util_linux_writes_we_read(seed, tmp_path):
    rng = random.Random("read-%d" % seed)
    img = str(tmp_path / "d.img")
    case = None
    while case is None:
        case = gen_sfdisk_script(rng, img)
    script, size, sector_size = case
    if sector_size != 512:
        _need_4096()
    new_image(tmp_path, size, "d.img")
    ok, message = util_write(img, script, sector_size)
    assert ok, "util-linux refused the script:\n%s\n%s" % (script, message)
    theirs = util_read(img, sector_size)
    with open(img, "rb") as handle:
        ours = read_table(handle, size, None if theirs["label"] == "gpt" else sector_size)
    assert ours is not None
    assert ours.warnings == [] or sector_size == 4096 and theirs["label"] == "gpt"
    assert_same(ours, theirs, img, sector_size)


@pytest.mark.parametrize("seed", range(CASES))
def test_we_write_util_linux_reads(seed, tmp_path):
    rng = random.Random("write-%d" % seed)
    for _dummy in range(20):
        layout, size, sector_size = gen_layout(rng)
        try:
            table = plan_layout(layout, size, sector_size)
        except LayoutError:
            continue
        break
    else:
        pytest.fail("the generator made no valid layout")
    if sector_size != 512:
        _need_4096()
    img = new_image(tmp_path, size)
    with open(img, "r+b") as handle:
        write_table(handle, table)
        again = read_table(handle, size, sector_size)
    assert again.to_dict() == table.to_dict()
    assert again.warnings == []
    assert_same(table, util_read(img, sector_size), img, sector_size)


def gen_parity(rng):
    """A layout sfdisk and we should place identically, as (our layout, sfdisk script)."""
    label = rng.choice(["dos", "gpt"])
    sector_size = rng.choice([512, 4096])
    size = rng.randint(16, 200) * MiB
    count = rng.randint(1, 9 if label == "dos" else 12)
    sizes = [rng.randint(1, max(1, (size // MiB - 4) // (count + 1))) for _dummy in range(count)]
    rest_last = rng.random() < 0.6
    ours, lines = [], ["label: %s" % label, ""]
    for i, mib in enumerate(sizes):
        last = i == count - 1
        if label == "dos" and count > 4 and i == 3:
            lines.append("size=+, type=5")
        if last and rest_last:
            ours.append({})
            lines.append("type=83" if label == "dos" else "type=L")
        else:
            ours.append({"size": "%dMiB" % mib})
            lines.append("size=%dMiB" % mib)
    return {"label": label, "partitions": ours}, "\n".join(lines) + "\n", size, sector_size


@pytest.mark.parametrize("seed", range(PARITY_CASES))
def test_same_placement_as_sfdisk(seed, tmp_path):
    layout, script, size, sector_size = gen_parity(random.Random("parity-%d" % seed))
    if sector_size != 512:
        _need_4096()
    img = new_image(tmp_path, size)
    ok, message = util_write(img, script, sector_size)
    assert ok, "util-linux refused the script:\n%s\n%s" % (script, message)
    theirs = util_read(img, sector_size)["partitions"]
    ours = plan_layout(layout, size, sector_size)
    assert {p.number: (p.start_sector, p.size_sectors) for p in ours.partitions} == \
        {n: (t["start"], t["size"]) for n, t in theirs.items()}

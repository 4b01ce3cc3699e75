# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Growing an image whose partitions are device-mapper maps (the dm backend,
the maps ``kpartx -a`` makes): the map of the grown partition follows the new
table, every other map stays as it was, and the grown filesystem is read
through its map.

Oracles: ``dmsetup table`` and ``dmsetup info`` for the maps, ``sfdisk
--json`` and ``kpartx -l`` for what they should be after growth,
``e2fsck -fn`` and ``dumpe2fs`` through the map for the filesystem.
"""

import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from vm_helpers import MIB, SEED_IMAGE_SIZE, SEED_LAYOUT, bound_loops, dm_devices, run, sfdisk_partitions

pytestmark = pytest.mark.vm

GROWN_SIZE = SEED_IMAGE_SIZE + 32 * MIB

# The same partitions as the seed's on a GPT: three of 8 MiB, the last one the rest.
GPT_SEED = """label: gpt
unit: sectors

start=2048, size=16384
size=16384
size=16384
size=
"""

# What image_partitions is told: the seed's sizes, the last entry taking the rest.
LAYOUTS = {
    "dos": {"label": "dos", "partitions": [{"size": "8MiB"}] * 6 + [{}]},
    "gpt": {"label": "gpt", "partitions": [{"size": "8MiB"}] * 3 + [{}]},
}
TABLES = {"dos": SEED_LAYOUT, "gpt": GPT_SEED}


def dm_view(parent):
    """{map name: (table line, minor)} of ``parent``'s maps, from dmsetup."""
    tables = {}
    for line in run("dmsetup", "table").stdout.splitlines():
        if line.startswith(parent + "p"):
            name, table = line.split(": ", 1)
            tables[name] = table.strip()
    minors = {}
    out = run("dmsetup", "info", "-c", "--noheadings", "--separator", " ", "-o", "name,minor").stdout
    for line in out.splitlines():
        name, minor = line.split()
        if name in tables:
            minors[name] = int(minor)
    return dict((name, (tables[name], minors[name])) for name in tables)


def kpartx_lengths(device):
    """{map name: length in sectors} that ``kpartx -l`` would map from the table
    (it prints a logical partition's start within the extended partition, so
    the starts are checked against sfdisk instead)."""
    found = {}
    for line in run("kpartx", "-l", device).stdout.splitlines():
        name, rest = line.split(" : ")  # "loop0p8 : 0 120832 /dev/loop0 108544"
        found[name] = int(rest.split()[1])
    return found


def sfdisk_tables(image, device):
    """{map name: table line} kpartx's rules give the partitions sfdisk reads."""
    rdev = os.stat(device).st_rdev
    return dict(("%sp%d" % (os.path.basename(device), number), "0 %d linear %d:%d %d" % (
        2 if extended else size, os.major(rdev), os.minor(rdev), start))
        for number, start, size, extended in sfdisk_partitions(image))


def ext_size(device):
    """The ext4 filesystem's size in bytes, as dumpe2fs reads it through ``device``."""
    fields = dict(line.split(":", 1) for line in run("dumpe2fs", "-h", device).stdout.splitlines() if ":" in line)
    return int(fields["Block count"]) * int(fields["Block size"])


@pytest.mark.parametrize("label", ["dos", "gpt"])
def test_growth_reloads_the_map_of_the_grown_partition(scratch, label):
    image = scratch.image("grow-%s.img" % label, SEED_IMAGE_SIZE, TABLES[label])
    layout = LAYOUTS[label]
    last = 8 if label == "dos" else 4
    made = partitions_state.plan_present(image, backend="dm", layout=layout).apply()
    try:
        assert made.backend == "dm" and made.attached
        parent = os.path.basename(made.device)
        grown_map = "/dev/mapper/%sp%d" % (parent, last)
        run("mkfs.ext4", "-q", "-F", grown_map)
        before = dm_view(parent)
        assert len(before) == last

        grown = partitions_state.plan_present(image, backend="dm", layout=layout, size=GROWN_SIZE).apply()
        report = grown.report()
        assert grown.device == made.device and report["growth"]["size_after"] == GROWN_SIZE
        after = dm_view(parent)
        # the grown partition's map has its new length; the others (the
        # extended one's two sectors included) are untouched; all keep their
        # device numbers: the tables were reloaded, nothing was removed
        new_sectors = grown.table.partition(last).size // 512
        assert after["%sp%d" % (parent, last)][0].split()[1] == str(new_sectors)
        assert sorted(name for name in after if after[name][0] != before[name][0]) == ["%sp%d" % (parent, last)]
        assert dict((n, m) for n, (_t, m) in after.items()) == dict((n, m) for n, (_t, m) in before.items())
        tables = dict((name, table) for name, (table, _m) in after.items())
        assert tables == sfdisk_tables(image, made.device)
        assert kpartx_lengths(made.device) == dict((name, int(table.split()[1])) for name, table in tables.items())

        filesystems = report["growth"]["filesystems"]
        assert [fs["number"] for fs in filesystems] == [last]
        run("e2fsck", "-fn", grown_map)
        assert ext_size(grown_map) == filesystems[0]["size_after"] > filesystems[0]["size_before"]

        again = partitions_state.plan_present(image, backend="dm", layout=layout, size=GROWN_SIZE)
        assert not again.changed, again.descriptions()

        # a growth killed after the table was written, before the map was
        # reloaded: the next run reloads it
        grown_name = os.path.basename(grown_map)
        run("dmsetup", "reload", grown_name, "--table", before[grown_name][0])
        run("dmsetup", "resume", grown_name)
        rerun = partitions_state.plan_present(image, backend="dm", layout=layout, size=GROWN_SIZE)
        assert rerun.descriptions() == ["load the table into the device-mapper maps of partition %d (as kpartx -u)"
                                        % last]
        rerun.apply()
        assert dm_view(parent) == after
    finally:
        partitions_state.plan_absent(image).apply()
    assert not [name for name in dm_devices() if name.startswith(parent + "p")]
    assert parent not in bound_loops() and not loopdev.find_associated(image)

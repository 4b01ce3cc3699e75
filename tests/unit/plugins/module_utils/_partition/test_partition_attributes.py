# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPT partition attributes in a layout: the forms a playbook may write them in,
what is refused, and that the bits written read back the same through our
reader and through `sfdisk --json` (its attrs field), in both directions."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import shutil
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import (
    LayoutError,
    plan_layout,
    write_table,
)
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_table
from ansible_collections.diskimage.loop.plugins.module_utils._partition.state import attribute_bits

MiB = 1 << 20
SFDISK = shutil.which("sfdisk") or shutil.which("sfdisk", path="/usr/local/sbin:/usr/sbin:/sbin")
needs_sfdisk = pytest.mark.skipif(not SFDISK, reason="sfdisk (util-linux) is not installed")


def bits(*numbers):
    return sum(1 << n for n in numbers)


def attributes_of(value):
    table = plan_layout({"label": "gpt", "partitions": [{"attributes": value}]}, 8 * MiB)
    return table.partitions[0].attributes


@pytest.mark.parametrize("value,expected", [
    (None, 0),
    ([], 0),
    ("", 0),
    (0, 0),
    (["required"], bits(0)),
    (["no_block_io_protocol", "legacy_bios_bootable"], bits(1, 2)),
    (["no-block-io-protocol", "Legacy-BIOS-Bootable"], bits(1, 2)),
    (["RequiredPartition", "NoBlockIOProtocol", "LegacyBIOSBootable"], bits(0, 1, 2)),
    (["growfs", "read_only", "hidden", "no_auto"], bits(59, 60, 62, 63)),
    ([0, 48, 63], bits(0, 48, 63)),
    (["0", "55"], bits(0, 55)),
    (["GUID:48,49", "guid:63"], bits(48, 49, 63)),
    ("RequiredPartition LegacyBIOSBootable GUID:60,63", bits(0, 2, 60, 63)),
    ("required, read_only,no_auto", bits(0, 60, 63)),
    ("GUID:50, 51", bits(50, 51)),
    (bits(2, 60), bits(2, 60)),
    ("0x1000000000000004", bits(2, 60)),
    (str(bits(63)), bits(63)),
    ([2, "legacy_bios_bootable"], bits(2)),
])
def test_attribute_forms(value, expected):
    assert attributes_of(value) == expected


@pytest.mark.parametrize("value,message", [
    ([7], "bit 7, reserved by the UEFI specification"),
    (bits(3, 47), "bits 3, 47, reserved by the UEFI specification"),
    ("0x8", "bit 3, reserved"),
    ([64], "not a bit number"),
    ([-1], "not a bit number"),
    (["readonly-ish"], "not a bit number .0-2 or 48-63. or one of: growfs, hidden"),
    (["GUID:47"], "GUID: followed by bit numbers from 48 to 63"),
    (["GUID:"], "GUID: followed by bit numbers"),
    ([True], "not a bit number"),
    (True, "not a boolean"),
    ({"bit": 1}, "not a number or a list"),
    (1 << 64, "does not fit in 64 bits"),
])
def test_attribute_errors(value, message):
    with pytest.raises(LayoutError, match=message):
        attributes_of(value)


def test_bootable_adds_bit_2_to_the_attributes():
    table = plan_layout({"label": "gpt", "partitions": [{"attributes": ["no_auto"], "bootable": True}]}, 8 * MiB)
    assert table.partitions[0].attributes == bits(2, 63) and table.partitions[0].bootable


def test_dos_has_no_attributes():
    with pytest.raises(LayoutError, match="attributes exist only on gpt"):
        plan_layout({"label": "dos", "partitions": [{"attributes": ["required"]}]}, 8 * MiB)


def test_attribute_bits_list():
    assert attribute_bits(0) == [] and attribute_bits(None) == []
    assert attribute_bits(bits(0, 2, 48, 63)) == [0, 2, 48, 63]


LAYOUT = {"label": "gpt", "partitions": [
    {"size": "1MiB", "attributes": ["required", "no_block_io_protocol", "legacy_bios_bootable"]},
    {"size": "1MiB", "attributes": ["growfs", "read_only", "hidden", "no_auto", 48]},
    {"size": "1MiB", "attributes": "RequiredPartition GUID:49,50"},
    {"size": "1MiB", "attributes": bits(2, 55)},
    {"size": "1MiB", "bootable": True},
    {"size": "1MiB"},
]}
EXPECTED = [bits(0, 1, 2), bits(48, 59, 60, 62, 63), bits(0, 49, 50), bits(2, 55), bits(2), 0]
# sfdisk --json's attrs: names for bits 0-2, then GUID: and the bits 48-63 (libfdisk's gpt.c format)
SFDISK_ATTRS = ["RequiredPartition NoBlockIOProtocol LegacyBIOSBootable", "GUID:48,59,60,62,63",
                "RequiredPartition GUID:49,50", "LegacyBIOSBootable GUID:55", "LegacyBIOSBootable", ""]


def _write(tmp_path, layout, size=16 * MiB):
    path = str(tmp_path / "attrs.img")
    with open(path, "wb") as handle:
        handle.truncate(size)
    table = plan_layout(layout, size)
    with open(path, "r+b") as handle:
        write_table(handle, table)
    return path, table


def test_written_attributes_read_back_identically(tmp_path):
    path, table = _write(tmp_path, LAYOUT)
    assert [p.attributes for p in table.partitions] == EXPECTED
    with open(path, "rb") as handle:
        again = read_table(handle, 16 * MiB)
    assert [p.attributes for p in again.partitions] == EXPECTED
    assert [p.bootable for p in again.partitions] == [bool(a & 4) for a in EXPECTED]


def _sfdisk_json(path):
    out = subprocess.run([SFDISK, "--json", path], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]["partitions"]


@needs_sfdisk
def test_sfdisk_reads_the_attributes_we_write(tmp_path):
    path, _table = _write(tmp_path, LAYOUT)
    assert [entry.get("attrs", "") for entry in _sfdisk_json(path)] == SFDISK_ATTRS


@needs_sfdisk
def test_we_read_the_attributes_sfdisk_writes_and_accept_its_spelling(tmp_path):
    path = str(tmp_path / "sfdisk.img")
    with open(path, "wb") as handle:
        handle.truncate(16 * MiB)
    script = "label: gpt\n" + "".join('size=1MiB, attrs="%s"\n' % attrs for attrs in SFDISK_ATTRS)
    subprocess.run([SFDISK, "-q", "--no-reread", "--no-tell-kernel", path], input=script, text=True,
                   check=True, capture_output=True)
    with open(path, "rb") as handle:
        table = read_table(handle, 16 * MiB)
    assert [p.attributes for p in table.partitions] == EXPECTED
    # sfdisk's own attrs strings are valid layout attributes, meaning the same bits
    assert [attributes_of(attrs) for attrs in SFDISK_ATTRS] == EXPECTED

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identifiers from a seed: stable, distinct, and declared ones kept."""

import re
import uuid

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids
from ansible_collections.diskimage.loop.plugins.filter.seeded_layout import seeded_layout

GPT = {"label": "gpt", "partitions": [{"type": "esp", "size": "64MiB"}, {"type": "root"}, {"type": "linux"}, {}]}


def test_same_seed_same_identifiers_other_seed_other_ones():
    a, b, c = ids.seeded_layout(GPT, "s1"), ids.seeded_layout(GPT, "s1"), ids.seeded_layout(GPT, "s2")
    assert a == b
    assert a["disk_id"] != c["disk_id"]
    assert not set(p["uuid"] for p in a["partitions"]) & set(p["uuid"] for p in c["partitions"])
    assert len(set(p["uuid"] for p in a["partitions"])) == 4
    assert uuid.UUID(a["disk_id"]).version == 5


def test_partitions_are_named_by_type_and_rank():
    assert ids.partition_names(GPT["partitions"]) == ["esp#1", "root#1", "linux#1", "linux#2"]
    grown = {"label": "gpt", "partitions": [{"type": "swap"}] + GPT["partitions"]}
    # a partition of another type in front leaves the others' UUIDs alone
    assert ids.seeded_layout(grown, "s")["partitions"][1:] == ids.seeded_layout(GPT, "s")["partitions"]


def test_declared_identifiers_win_and_the_input_is_not_changed():
    layout = {"label": "gpt", "disk_id": "11111111-2222-3333-4444-555555555555",
              "partitions": [{"type": "root", "uuid": "aaaaaaaa-2222-3333-4444-555555555555"}, {"type": "home"}]}
    out = ids.seeded_layout(layout, "s")
    assert out["disk_id"] == layout["disk_id"]
    assert out["partitions"][0]["uuid"] == "aaaaaaaa-2222-3333-4444-555555555555"
    assert "uuid" not in layout["partitions"][1]


def test_dos_gets_an_8_digit_disk_id_and_no_partition_uuids():
    out = ids.seeded_layout({"label": "dos", "partitions": [{"size": "8MiB"}, {}]}, "seed")
    assert re.match(r"^0x[0-9a-f]{8}$", out["disk_id"]) and out["disk_id"] != "0x00000000"
    assert all("uuid" not in p for p in out["partitions"])


def test_filesystem_values_derive_from_the_partition():
    fs = ids.filesystem_uuid("s", "ABCDEF01-0000-0000-0000-000000000000")
    assert fs == ids.filesystem_uuid("s", "abcdef01-0000-0000-0000-000000000000")
    assert fs != ids.filesystem_uuid("s", "d0251979-01")
    assert ids.hash_seed(fs) != fs and uuid.UUID(ids.hash_seed(fs))
    assert ids.volume_id(fs) == fs[:8]


def test_filter_refuses_bad_input():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="non-empty seed"):
        seeded_layout(GPT, "")
    with pytest.raises(AnsibleFilterError, match="layout dict"):
        seeded_layout(["x"], "s")
    assert seeded_layout(GPT, "s") == ids.seeded_layout(GPT, "s")

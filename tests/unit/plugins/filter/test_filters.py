# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters give templates the modules' own rules, and fail with the modules' words."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.filter import (dps_mount_point, partition_layout, partition_type,
                                                               partition_type_alias, size_bytes, size_iec, tree_mounts)
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size

FILTERS = (dps_mount_point, partition_layout, partition_type, partition_type_alias, size_bytes, size_iec,
           tree_mounts)


@pytest.mark.parametrize("plugin", FILTERS)
def test_each_file_offers_the_filter_it_is_named_after(plugin):
    name = plugin.__name__.rsplit(".", 1)[1]
    assert list(plugin.FilterModule().filters()) == [name]


@pytest.mark.parametrize("value", [4096, "8MiB", "8M", "1.5GiB", "100MB", "2048s", " 1 KiB ", "0"])
def test_size_bytes_is_the_modules_grammar(value):
    assert size_bytes.size_bytes(value) == parse_size(value)


def test_sizes_the_old_role_parser_rejected():
    assert size_bytes.size_bytes("1.5GiB") == 1610612736
    assert size_bytes.size_bytes("2048s") == 1048576


@pytest.mark.parametrize("value", ["1.1B", "-1", "lots", True])
def test_bad_sizes_fail_the_template_naming_the_filter(value):
    with pytest.raises(AnsibleFilterError, match="^size_bytes: "):
        size_bytes.size_bytes(value)


@pytest.mark.parametrize("value,text", [(8388608, "8MiB"), ("1.5GiB", "1536MiB"), (1000, "1000B"), ("2048s", "1MiB")])
def test_size_iec_round_trips(value, text):
    assert size_iec.size_iec(value) == text
    assert parse_size(text) == parse_size(value)


def test_partition_types():
    assert partition_type.partition_type("esp") == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    assert partition_type.partition_type("swap", "dos") == "0x82"
    assert partition_type.partition_type("0x82") == "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
    assert partition_type.partition_type("root", arch="aarch64") == "b921b045-1df0-41c3-af44-4c6f280d3fae"
    assert partition_type_alias.partition_type_alias("0FC63DAF-8483-4772-8E79-3D69D8477DE4") == "linux"
    assert partition_type_alias.partition_type_alias("efi") == "esp"
    assert partition_type_alias.partition_type_alias(5, "dos") == "extended"
    assert partition_type_alias.partition_type_alias("0x42", "dos") is None
    with pytest.raises(AnsibleFilterError, match="^partition_type: .*exists only on gpt"):
        partition_type.partition_type("home", "dos")
    with pytest.raises(AnsibleFilterError, match="^partition_type_alias: unknown partition type"):
        partition_type_alias.partition_type_alias("nonsense")


def test_dps_mount_points():
    assert [dps_mount_point.dps_mount_point(t) for t in ("esp", "root", "usr-arm64", "tmp", "linux")] == [
        "/boot", "/", "/usr", "/var/tmp", None]
    assert dps_mount_point.dps_mount_point("esp", xbootldr=True) == "/efi"
    assert dps_mount_point.dps_mount_point({"type_alias": "home", "attributes": 1 << 63}) is None
    with pytest.raises(AnsibleFilterError, match="^dps_mount_point: "):
        dps_mount_point.dps_mount_point("nonsense")


def test_layout_and_mounts_from_role_entries():
    role = [{"size": "64MiB", "type": "esp", "fstype": "vfat", "mountpoint": "/efi"},
            {"type": "root", "fstype": "ext4", "label": "root", "mountpoint": "/", "mount_options": "noatime"}]
    layout = partition_layout.partition_layout(role, "gpt")
    assert layout == {"label": "gpt", "partitions": [{"size": "64MiB", "type": "esp", "fstype": "vfat"},
                                                     {"type": "root", "fstype": "ext4", "label": "root"}]}
    mounts = tree_mounts.tree_mounts(role, {"entry_partitions": [1, 2], "partitions": []})
    assert mounts == [{"path": "/", "partition": 2, "fstype": "ext4", "opts": "noatime"},
                      {"path": "/efi", "partition": 1, "fstype": "vfat"}]
    with pytest.raises(AnsibleFilterError, match="^tree_mounts: "):
        tree_mounts.tree_mounts(role, [])

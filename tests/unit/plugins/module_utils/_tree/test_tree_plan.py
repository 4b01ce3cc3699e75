# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.plan: which partition goes where (declared or Discoverable Partitions), in
which order."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tp
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import Partition, PartitionTable

GUID = {
    "root-x86-64": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    "root-arm64": "b921b045-1df0-41c3-af44-4c6f280d3fae",
    "usr-x86-64": "8484680c-9521-48c6-9c11-b0720656f69e",
    "home": "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
    "var": "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
    "tmp": "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
    "xbootldr": "bc13c2ff-59e6-4262-a352-b275fd6f7172",
    "esp": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "swap": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
    "linux": "0fc63daf-8483-4772-8e79-3d69d8477de4",
}


def gpt(*kinds, **attributes):
    parts = []
    for number, kind in enumerate(kinds, 1):
        parts.append(Partition(number, 2048 * number, 2048, 512, GUID[kind], "gpt",
                               attributes=attributes.get("p%d" % number, 0)))
    return PartitionTable("gpt", "00000000-0000-4000-8000-000000000000", 512, 64 << 20, parts)


def paths(plan):
    return [(e["path"], e["selector"].get("partition")) for e in plan]


def test_auto_places_every_kind_and_leaves_the_esp_for_later():
    plan = tp.auto_plan(gpt("esp", "root-x86-64", "usr-x86-64", "home", "var", "tmp", "swap", "linux"))
    assert paths(plan) == [("/", 2), ("/usr", 3), ("/home", 4), ("/var", 5), ("/var/tmp", 6), (None, 1)]


def test_auto_any_architecture_root_counts():
    assert paths(tp.auto_plan(gpt("root-arm64"))) == [("/", 1)]


def test_auto_no_auto_bit_leaves_out_and_read_only_bit_mounts_read_only():
    plan = tp.auto_plan(gpt("root-x86-64", "home", "var", p2=tp.NO_AUTO, p3=tp.READ_ONLY))
    assert paths(plan) == [("/", 1), ("/var", 3)]
    assert [e["read_only"] for e in plan] == [False, True]


def test_auto_exclude():
    plan = tp.auto_plan(gpt("root-x86-64", "home", "esp"), exclude=["home", "esp"])
    assert paths(plan) == [("/", 1)]
    with pytest.raises(DiskImageError, match="cannot leave out root"):
        tp.auto_plan(gpt("root-x86-64"), exclude=["root"])


def test_auto_without_table_is_the_whole_image():
    assert paths(tp.auto_plan(None)) == [("/", None)]


@pytest.mark.parametrize("kinds,words", [
    (("root-x86-64", "root-arm64"), "partitions 1, 2 are all of type"),
    (("linux", "home"), "no root partition"),
])
def test_auto_refuses_what_it_cannot_decide(kinds, words):
    with pytest.raises(DiskImageError, match=words) as err:
        tp.auto_plan(gpt(*kinds))
    assert "Declare the mounts" in str(err.value)


@pytest.mark.parametrize("boot_empty,xbootldr,esp_path,where", [
    (True, False, "", "/boot"),
    (False, False, "", "/efi"),
    (True, True, "", "/efi"),
    (True, False, "/boot/efi/", "/boot/efi"),
])
def test_esp_placement(boot_empty, xbootldr, esp_path, where):
    kinds = ("root-x86-64", "esp") + (("xbootldr",) if xbootldr else ())
    plan = tp.place_esp(tp.auto_plan(gpt(*kinds)), boot_empty, esp_path)
    assert [e["path"] for e in plan if e["kind"] == "esp"] == [where]


def test_declared_normalizes_and_orders_shortest_first():
    plan = tp.declared_plan([{"path": "/var/log/", "label": "logs", "opts": "noatime"},
                             {"path": "/boot/efi", "partition": 1}, {"path": "/", "partition": 2},
                             {"path": "/var", "partuuid": "x"}])
    order = [e["path"] for e in tp.mount_order(plan)]
    assert order == ["/", "/var", "/boot/efi", "/var/log"]
    assert tp.teardown_order(order) == ["/var/log", "/boot/efi", "/var", "/"]
    assert plan[0]["selector"] == {"label": "logs"} and plan[0]["opts"] == "noatime"


@pytest.mark.parametrize("mounts,words", [
    ([{"path": "var"}], "not an absolute path"),
    ([{"path": "/a/../b"}], "leaves the tree"),
    ([{"path": "/"}, {"path": "//"}], "declared twice"),
    ([{"path": "/", "partition": 1, "label": "x"}], "2 selectors"),
    ([{"path": "/", "partiton": 1}], "unknown keys: partiton"),
    ([{"partition": 1}], "needs a path"),
])
def test_declared_refuses_bad_entries(mounts, words):
    with pytest.raises(DiskImageError, match=words):
        tp.declared_plan(mounts)


def test_where():
    assert tp.where("/tmp/x/", "/") == "/tmp/x"
    assert tp.where("/tmp/x", "/var/tmp") == "/tmp/x/var/tmp"

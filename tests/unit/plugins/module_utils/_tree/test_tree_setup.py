# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.setup: which entries a tree has, and which are planned once their parent is mounted."""
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import Partition, PartitionTable
from ansible_collections.diskimage.loop.plugins.module_utils._tree import setup

GUID = {"root-x86-64": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "home": "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
        "var": "4d21b016-b534-45c2-a9fb-5c16e091fd2d"}


def gpt(*kinds):
    parts = [Partition(number, 2048 * number, 2048, 512, GUID[kind], "gpt") for number, kind in enumerate(kinds, 1)]
    return PartitionTable("gpt", "00000000-0000-4000-8000-000000000000", 512, 64 << 20, parts)


class Source(object):
    def __init__(self, whole=None, table=None):
        self.whole, self.table = whole, table

    def probe(self):
        return self.whole

    def read_table(self):
        return self.table


def test_parent_mounted_by_this_run():
    assert setup._parent_mounted_now("/var/log", ["/", "/var"]) == "/var"
    assert setup._parent_mounted_now("/home", ["/"]) == "/"
    assert setup._parent_mounted_now("/varx", ["/var"]) is None
    assert setup._parent_mounted_now("/var", []) is None


def test_declared_entries_win_over_the_rules():
    entries = setup.wanted_entries(Source(table=gpt("root-x86-64", "var")), [{"path": "/srv/", "partition": 2}])
    assert [(e["path"], e["selector"]) for e in entries] == [("/srv", {"partition": 2})]


def test_discoverable_partitions_and_a_whole_filesystem_image():
    entries = setup.wanted_entries(Source(table=gpt("root-x86-64", "home", "var")), None, ["home"])
    assert [(e["path"], e["kind"]) for e in entries] == [("/", "root"), ("/var", "var")]
    whole = Source(whole={"type": "ext4", "usage": fsprobe.USAGE_FILESYSTEM}, table=gpt("var"))
    assert [(e["path"], e["selector"]) for e in setup.wanted_entries(whole)] == [("/", {})]

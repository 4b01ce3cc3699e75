# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.teardown: the order a tree comes down in, and what stays when one mount is busy."""
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._tree import teardown
from ansible_collections.diskimage.loop.plugins.module_utils._tree.treeplan import TreePlan


def table(*lines):
    return mountinfo.parse_mountinfo("\n".join(lines))


TREE = table(
    "30 1 7:1 / /t rw - ext4 /dev/loop1 rw",
    "31 30 7:2 / /t/var rw - ext4 /dev/loop2 rw",
    "32 30 0:5 / /t/dev rw shared:2 - devtmpfs udev rw",
    "33 32 0:6 / /t/dev/pts rw - devpts devpts rw",
    "34 30 0:20 / /t/tmp rw - tmpfs a rw",
    "35 34 0:21 / /t/tmp rw - tmpfs b rw",
    "36 31 0:22 / /t/var/tmp rw - tmpfs c rw",
)


def test_newest_first_and_children_before_parents():
    order = [(m.mount_point, m.source) for m in teardown.newest_first(TREE)]
    assert order == [("/t/var/tmp", "c"), ("/t/tmp", "b"), ("/t/tmp", "a"), ("/t/dev/pts", "devpts"),
                     ("/t/dev", "udev"), ("/t/var", "/dev/loop2"), ("/t", "/dev/loop1")]


def test_a_mount_moved_under_a_newer_one_still_goes_first():
    # 40 was mounted first, then moved below 41 (mount --move): file order is no longer mount order.
    moved = table("41 1 0:30 / /t rw - tmpfs outer rw", "40 41 0:31 / /t/in rw - tmpfs inner rw")
    assert [m.source for m in teardown.newest_first(list(reversed(moved)))] == ["inner", "outer"]


def test_a_mount_that_stays_keeps_the_ones_that_hold_it():
    plan = TreePlan("unmounted")
    plan.left.append({"target": "/t/var/tmp", "reason": "busy", "holders": []})
    assert teardown._stays_above(plan, "/t/var") == "/t/var/tmp stays mounted below it"
    assert teardown._stays_above(plan, "/t") == "/t/var/tmp stays mounted below it"
    assert teardown._stays_above(plan, "/t/var/tmp") == "/t/var/tmp stays mounted on it"
    assert teardown._stays_above(plan, "/t/tmp") is None
    assert teardown._stays_above(plan, "/t/var/tmpx") is None

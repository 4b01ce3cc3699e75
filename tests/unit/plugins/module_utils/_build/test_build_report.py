# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The closing message of the image roles: failed step, teardown, what is left."""
from ansible_collections.diskimage.loop.plugins.module_utils._build.report import (
    cycle_message, failure_reason, mounted_entries, teardown_lines)

ROOT = "/run/diskimage-loop/trees/fail.img-2049-13"
TREE_DOWN = {
    "changed": True, "root": ROOT, "root_removed": True, "detached": ["/dev/loop4", "/dev/loop5"],
    "unmounted": [{"target": ROOT + "/var/scratch", "foreign": True}, {"target": ROOT + "/var", "foreign": False},
                  {"target": ROOT, "foreign": False}],
    "left": [], "pending": [],
}


def test_failure_reason_prefers_the_failed_item_of_a_loop():
    result = {"msg": "One or more items failed", "results": [
        {"failed": False, "stderr": "fine"}, {"failed": True, "stderr": "mkfs.xfs: not found\n"}]}
    assert failure_reason(result) == "mkfs.xfs: not found"
    assert failure_reason({"msg": "the population step broke on purpose."}) == "the population step broke on purpose"
    assert failure_reason({}) == "no message"


def test_a_failure_names_the_step_and_the_teardown():
    message = cycle_message("image_build of /srv/fail.img",
                            {"step": "Fail in the middle", "result": {"msg": "it broke."}}, [TREE_DOWN])
    assert message == (
        'image_build of /srv/fail.img failed at "Fail in the middle": it broke. Teardown: unmounted %s/var/scratch; '
        'unmounted %s/var; unmounted %s; detached /dev/loop4; detached /dev/loop5; removed %s. '
        'Nothing is left attached or mounted.' % (ROOT, ROOT, ROOT, ROOT))


def test_nothing_to_report_after_a_good_cycle():
    assert cycle_message("image_build of /srv/a.img", {}, [TREE_DOWN]) == ""
    assert cycle_message("x", {}, [{"skipped": True}]) == ""


def test_a_busy_tree_is_reported_with_its_holders():
    left = dict(TREE_DOWN, failed=True, msg="1 mount stays busy", root_removed=False, unmounted=[],
                left=[{"target": ROOT + "/var", "reason": "busy",
                       "holders": [{"pid": 42, "comm": "sleep", "uses": ["cwd"]}]}])
    message = cycle_message("image_customize of /srv/a.img", {}, [left], "ran")
    assert message == ("image_customize of /srv/a.img ran, but the teardown left something behind: %s/var is still "
                       "mounted: busy (held by sleep[42]). Teardown: detached /dev/loop4; detached /dev/loop5."
                       % ROOT)
    failed = cycle_message("x", {"step": "s", "result": {"msg": "m"}}, [left])
    assert failed.endswith("Teardown problems: %s/var is still mounted: busy (held by sleep[42])." % ROOT)


def test_reproducible_teardown_unmaps_and_removes_the_stage():
    unmap = {"changed": True, "src": "/srv/r.img", "detached": ["/dev/loop3"],
             "actions": ["remove partition devices of /dev/loop3", "detach /dev/loop3"]}
    unstage = {"changed": True, "path": "/tmp/image_build.x1", "state": "absent"}
    done, problems = teardown_lines([unmap, unstage])
    assert done == ["removed the partition devices of /srv/r.img", "detached /dev/loop3", "removed /tmp/image_build.x1"]
    assert problems == []
    assert teardown_lines([{"failed": True, "msg": "could not detach /dev/loop3."}])[1] == ["could not detach /dev/loop3"]


def test_nothing_to_undo():
    message = cycle_message("image_build of /a", {"step": "Check", "result": {"msg": "bad"}}, [{"skipped": True}])
    assert "Teardown: nothing was left to undo. Nothing is left attached or mounted." in message


def test_mounted_entries_give_where_and_type_alias():
    tree = {"mounts": [{"path": "/", "target": "/t", "partition": {"type_alias": "root-x86-64"}},
                       {"path": "/", "target": "/u", "partition": None}]}
    entries = mounted_entries(tree)
    assert [(e["where"], e["type_alias"], e["path"]) for e in entries] == [("/t", "root-x86-64", "/"), ("/u", "", "/")]
    assert mounted_entries(None) == []

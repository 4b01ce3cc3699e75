# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.treeplan: image_mount plans adopted into one tree plan, one undo list
for the whole run, and a teardown that fails with what it did and what is left."""
import errno

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree.treeplan import TreePlan, run_into
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


def sub_plan(name, log, fail=False):
    """A plan of two steps, each recording its undo as image_mount's do."""
    sub = Plan()

    def attach():
        log.append("attach " + name)
        sub.undo.append(("detach " + name, lambda: log.append("detach " + name)))

    def mount():
        if fail:
            raise DiskImageError("cannot mount " + name)
        log.append("mount " + name)
        sub.undo.append(("unmount " + name, lambda: log.append("unmount " + name)))

    sub.add("attach " + name, attach)
    sub.add("mount " + name, mount)
    return sub


def test_adopted_steps_are_undone_newest_first_across_plans():
    log = []
    plan = TreePlan("mounted")
    plan.adopt(sub_plan("/", log))
    plan.add("once / is mounted: /var", lambda: run_into(plan, sub_plan("/var", log, fail=True)))
    assert plan.descriptions() == ["attach /", "mount /", "once / is mounted: /var"]
    with pytest.raises(DiskImageError):
        plan.apply()
    # The failed step's own attach is taken back too, then everything before it.
    assert log == ["attach /", "mount /", "attach /var", "detach /var", "unmount /", "detach /"]
    assert plan.undo == []


def test_a_teardown_that_leaves_something_fails_with_its_report():
    plan = TreePlan("unmounted")
    plan.root = "/mnt/tree"

    def busy():
        plan.left.append({"target": "/mnt/tree/var", "reason": "busy: held by sleep (pid 42: cwd)",
                          "holders": [{"pid": 42, "comm": "sleep", "uses": ["cwd"]}]})
        plan.unmounted.append({"target": "/mnt/tree/proc", "source": "proc", "fstype": "proc", "foreign": True,
                               "mount_id": 7})

    plan.add("unmount everything", busy)
    with pytest.raises(DiskImageError) as caught:
        plan.apply()
    failure = caught.value
    assert failure.errno == errno.EBUSY
    assert "/mnt/tree/var stays mounted" in str(failure) and "pid 42" in str(failure)
    result = failure.to_result()
    assert result["left"][0]["holders"] == [{"pid": 42, "comm": "sleep", "uses": ["cwd"]}]
    assert result["unmounted"] == [{"target": "/mnt/tree/proc", "source": "proc", "fstype": "proc", "foreign": True}]
    assert result["changed"] is True and result["msg"] == str(failure)


def test_report_keys_are_the_same_in_every_state():
    mounted, unmounted = TreePlan("mounted"), TreePlan("unmounted")
    assert sorted(mounted.report()) == sorted(unmounted.report())
    assert mounted.report()["changed"] is False and mounted.diff()["before"]["mounts"] == {}

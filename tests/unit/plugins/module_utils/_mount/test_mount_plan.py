# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_plan: rollback of a failing run, and a result whose keys do not depend on
check mode or on the state."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import plan as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_plan_rolls_back_in_reverse_when_a_step_fails():
    plan = ms.MountPlan("mounted")
    done = []

    def first():
        plan.undo.append(("undo first", lambda: done.append("undo first")))

    def second():
        plan.undo.append(("undo second", lambda: done.append("undo second")))
        raise DiskImageError("the second step failed")

    plan.add("first", first)
    plan.add("second", second)
    with pytest.raises(DiskImageError, match="the second step failed"):
        plan.apply()
    assert done == ["undo second", "undo first"] and plan.undo == []


def test_a_failing_undo_is_reported_with_the_failure():
    plan = ms.MountPlan("mounted")

    def stuck():
        raise OSError("it would not go")

    def step():
        plan.undo.append(("detach /dev/loop9", stuck))
        raise DiskImageError("mount failed")

    plan.add("step", step)
    with pytest.raises(DiskImageError, match="mount failed. Rolling back also failed: detach /dev/loop9: it would not"):
        plan.apply()


RESULT_KEYS = {"src", "path", "path_resolved_from", "partition", "device", "loop_device", "mapped_device", "fstype",
               "opts", "read_only", "mount", "fstab", "fstab_entry", "created", "remounted", "unmounted",
               "detached", "pending", "removed_path", "actions"}


@pytest.mark.parametrize("state", ["mounted", "unmounted", "present", "absent"])
@pytest.mark.parametrize("steps", [0, 1])
def test_report_has_the_same_keys_in_check_mode_and_in_a_run(state, steps):
    plan = ms.MountPlan(state)
    for number in range(steps):
        plan.add("step %d" % number, lambda: None)
    check, run = plan.report(check_mode=True), plan.apply().report(check_mode=False)
    assert set(check) == set(run) == RESULT_KEYS | {"changed", "diff"}
    assert check["changed"] == run["changed"] == bool(steps)
    for report in (check, run):
        assert report["diff"] == {"before": {"mount": None, "fstab": None}, "after": {"mount": None, "fstab": None}}
        assert set(report["created"]) == {"path", "loop_device", "mount", "fstab_entry"}


def test_diff_shows_the_mount_and_the_fstab_line():
    plan = ms.MountPlan("absent")
    plan.mount_before, plan.fstab_line_before = "/dev/loop3 on /mnt/x type ext4 (rw)", "/x.img /mnt/x ext4 loop 0 0"
    assert plan.diff() == {"before": {"mount": "/dev/loop3 on /mnt/x type ext4 (rw)",
                                      "fstab": "/x.img /mnt/x ext4 loop 0 0"},
                           "after": {"mount": None, "fstab": None}}


def test_without_src_the_result_names_what_was_mounted():
    plan = ms.MountPlan("unmounted")
    plan.found_source = "tmpfs"
    assert plan.result()["src"] == "tmpfs" and plan.result()["partition"] is None

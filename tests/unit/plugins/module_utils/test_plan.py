# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan protocol: steps with their undo, the report, and run() as every module's main() uses it."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils import plan as protocol
from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class Exited(Exception):
    pass


class FakeModule(object):
    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self.warnings = []
        self.exited = self.failed = None

    def warn(self, warning):
        self.warnings.append(warning)

    def exit_json(self, **result):
        self.exited = result
        raise Exited()

    def fail_json(self, **result):
        self.failed = result
        raise Exited()


class Recorded(protocol.Plan):
    def __init__(self, done):
        super(Recorded, self).__init__()
        self.done = done

    def result(self, check_mode=False):
        return {"done": list(self.done), "check_mode": check_mode}


def fail():
    raise DiskImageError("two failed")


def test_undo_runs_newest_first_and_only_for_what_ran():
    done = []
    plan = Recorded(done)
    plan.add("one", lambda: plan.undo.append(("undo one", lambda: done.append("undo one"))))
    plan.add("two", fail)
    plan.add("three", lambda: done.append("three"))
    with pytest.raises(DiskImageError, match="two failed$"):
        plan.apply()
    assert done == ["undo one"] and plan.undo == []


def test_a_successful_apply_forgets_its_undo():
    plan = Recorded([])
    plan.add("one", lambda: plan.undo.append(("undo", lambda: None)))
    assert plan.apply() is plan and plan.undo == []


@pytest.mark.parametrize("check_mode", [True, False])
def test_run_applies_outside_check_mode_and_exits_with_the_report(check_mode):
    done = []
    module = FakeModule(check_mode)

    def make_plan():
        plan = Recorded(done)
        plan.add("act", lambda: done.append("act"))
        plan.warnings.append("careful")
        return plan

    with pytest.raises(Exited):
        protocol.run(module, make_plan)
    assert done == ([] if check_mode else ["act"])
    assert module.exited == {"changed": True, "actions": ["act"], "done": list(done), "check_mode": check_mode,
                             "diff": {"before": {}, "after": {}}}
    assert module.warnings == ["careful"]


@pytest.mark.parametrize("check_mode", [True, False])
def test_check_mode_gives_back_what_planning_took(check_mode):
    """Planning that had to take something to read the source (an NBD
    connection) records its undo; check mode runs it after the report, a real
    run that succeeds keeps it."""
    given_back = []
    module = FakeModule(check_mode)

    def make_plan():
        plan = Recorded([])
        plan.undo.append(("disconnect", lambda: given_back.append("disconnect")))
        plan.add("act", lambda: None)
        return plan

    with pytest.raises(Exited):
        protocol.run(module, make_plan)
    assert given_back == (["disconnect"] if check_mode else [])
    assert module.exited["changed"] is True


def test_run_fails_with_the_error_and_its_errno():
    module = FakeModule()

    def make_plan():
        raise DiskImageError("no such image", errno=2, hint="Fix src")

    with pytest.raises(Exited):
        protocol.run(module, make_plan)
    assert module.failed == {"msg": "no such image. Fix src", "errno": 2, "errno_name": "ENOENT"}


class FakeLocks(object):
    """What run() needs of a _kernel.flock.Locks: settle, warnings, a with block."""

    def __init__(self, log):
        self.log = log
        self.warnings = ["waited"]

    def __enter__(self):
        self.log.append("lock")
        return self

    def __exit__(self, *exc):
        self.log.append("unlock")
        return False

    def settle(self, make_plan):
        self.log.append("settle")
        return make_plan()


@pytest.mark.parametrize("error", [False, True])
def test_run_plans_applies_and_reports_under_the_locks(error):
    log = []
    module = FakeModule()

    def make_plan():
        log.append("plan")
        if error:
            raise DiskImageError("no such image")
        plan = Recorded(log)
        plan.add("act", lambda: log.append("act"))
        plan.warnings.append("careful")
        return plan

    with pytest.raises(Exited):
        protocol.run(module, make_plan, FakeLocks(log))
    if error:
        assert log == ["lock", "settle", "plan", "unlock"] and module.failed["msg"] == "no such image"
    else:
        assert log == ["lock", "settle", "plan", "act", "unlock"]
        assert module.exited["changed"] and module.warnings == ["waited", "careful"]


@pytest.mark.parametrize("state,keys", [
    ("present", {"device", "created", "released", "status", "devices"}),
    ("absent", {"devices", "detached", "pending"}),
])
def test_loop_report_keys(state, keys):
    report = loop_state.LoopPlan(state).report(check_mode=True)
    assert set(report) == keys | {"changed", "actions", "diff"}


def test_loop_absent_counts_planned_detaches_in_check_mode():
    plan = loop_state.LoopPlan("absent")
    plan.before = [{"device": "/dev/loop7"}, {"device": "/dev/loop8"}]
    plan.outcomes = {"/dev/loop8": "pending"}
    report = plan.report()
    assert report["detached"] == ["/dev/loop7"] and report["pending"] == ["/dev/loop8"]
    assert report["diff"]["after"] == {"devices": [{"device": "/dev/loop8"}]}


def test_partitions_absent_report_keys():
    plan = partitions_state.PartitionsPlan("absent")
    plan.source = type("S", (), {"path": "/srv/disk.img"})()
    assert set(plan.report()) == {"changed", "actions", "src", "detached", "skipped_devices", "diff"}

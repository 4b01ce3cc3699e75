# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan protocol every module follows: plan, apply, report.

Planning only reads the system and records steps, each a description and an
action; check mode reports the plan, a real run applies it. A step that
changes something the run may have to take back records its undo
(``plan.undo.append((description, action))``) once it has acted; when a later
step fails, ``apply`` runs the undos newest first and raises the failure (with
any undo that failed too). ``report`` is what the module returns: ``changed``,
``actions``, the plan's ``result`` and ``diff`` - built by the same code in
check mode and in a real run, so both return the same keys.

A module's ``main()`` is then: argument spec, ``run(module, make_plan)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class Plan(object):
    """Steps to reach a desired state, the undo of what they did, warnings,
    and the report. Subclasses add their facts and define result() and diff()."""

    def __init__(self):
        self.steps = []      # (description, action), in order
        self.undo = []       # (description, action), pushed by steps as they act
        self.warnings = []   # sentences for module.warn

    @property
    def changed(self):
        return bool(self.steps)

    def add(self, description, action):
        self.steps.append((description, action))

    def descriptions(self):
        return [description for description, _action in self.steps]

    def apply(self):
        """Run the steps; when one fails, undo what this run did, newest first."""
        try:
            for _description, action in self.steps:
                action()
        except BaseException as exc:
            problems = self.roll_back()
            if problems and isinstance(exc, DiskImageError):
                exc.args = ("%s. Rolling back also failed: %s" % (exc.args[0], "; ".join(problems)),)
            raise
        self.undo = []
        return self

    def roll_back(self):
        """Run the recorded undos, newest first; the ones that failed, in words."""
        problems = []
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
            except Exception as undo_exc:  # keep undoing: every earlier step still has to be taken back
                problems.append("%s: %s" % (what, undo_exc))
        return problems

    def result(self, check_mode=False):
        """The module's result keys (without changed, actions and diff)."""
        return {}

    def diff(self):
        return {"before": {}, "after": {}}

    def report(self, check_mode=False):
        """What the module returns: changed, actions, the result and the diff."""
        report = {"changed": self.changed, "actions": self.descriptions()}
        report.update(self.result(check_mode))
        report["diff"] = self.diff()
        return report


def run(module, make_plan, locks=None):
    """Plan, apply unless in check mode, and exit with the plan's report; a
    DiskImageError fails the task with its message and errno.

    ``locks`` (a ``_kernel.flock.Locks``, given by the module) is held from
    before planning until the report is built: ``locks.settle(make_plan)``
    takes its first locks, plans, and plans again when the plan needs more,
    so a run that waited plans from what the other one left. Its warnings
    (a check that could not wait for a run in progress) come first.
    """
    try:
        if locks is None:
            plan, report = _plan_and_apply(module, make_plan)
        else:
            with locks:
                plan, report = _plan_and_apply(module, lambda: locks.settle(make_plan))
    except DiskImageError as exc:
        module.fail_json(**exc.to_result())
    for warning in (locks.warnings if locks is not None else []) + plan.warnings:
        module.warn(warning)
    module.exit_json(**report)


def _plan_and_apply(module, make_plan):
    plan = make_plan()
    if not module.check_mode:
        plan.apply()
        return plan, plan.report(False)
    report = plan.report(True)
    # Check mode changes nothing; what planning had to take to read the
    # source (an NBD connection to a qcow2 image) it gives back here.
    problems = plan.roll_back()
    if problems:
        raise DiskImageError("check mode could not give back what it took: %s" % "; ".join(problems))
    return plan, report

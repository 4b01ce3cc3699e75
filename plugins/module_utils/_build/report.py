# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the image roles say when a step fails or the teardown leaves something.

A role runs its steps in a block, records the failed task and its result in
the rescue section, and tears down in the always section, whatever happened.
``cycle_message`` then writes the one message the role fails with: the step,
its reason, what the teardown did and what it left. Empty when all went well.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def failure_reason(result):
    """The reason a task failed, from its result: the stderr or message of the
    first failed loop item (a loop only says "One or more items failed"), else
    the task's own; without a final full stop."""
    result = result or {}
    candidates = [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("failed")]
    candidates.append(result)
    for key in ("stderr", "msg"):
        for item in candidates:
            text = str(item.get(key) or "").strip()
            if text:
                return text.rstrip(".")
    return "no message"


def _holders(entry):
    holders = entry.get("holders") or []
    return ", ".join("%s[%s]" % (h.get("comm", "?"), h.get("pid", "?")) for h in holders)


def teardown_lines(results):
    """(done, problems): what the teardown tasks did and what went wrong, in
    order, from their registered results - image_tree (unmounted), image_mount,
    image_partitions (state=absent) and ansible.builtin.file (state=absent)."""
    done, problems = [], []
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        for entry in result.get("unmounted") or []:
            target = entry.get("target") if isinstance(entry, dict) else entry
            done.append("unmounted %s" % target)
        if "unmounted" not in result and any(str(a).startswith("remove") for a in result.get("actions") or []):
            # image_partitions (state=absent): the partition devices went before the loop device
            done.append("removed the partition devices of %s" % result.get("src"))
        for device in result.get("detached") or []:
            done.append("detached %s" % device)
        for device in result.get("pending") or []:
            done.append("left %s to detach itself when its last user lets go" % device)
        if result.get("root_removed"):
            done.append("removed %s" % result.get("root"))
        if result.get("state") == "absent" and result.get("path") and result.get("changed"):
            done.append("removed %s" % result["path"])
        left = result.get("left") or []
        for entry in left:
            holders = _holders(entry)
            held = " (held by %s)" % holders if holders else ""
            problems.append("%s is still mounted: %s%s" % (entry.get("target"), entry.get("reason", "busy"), held))
        if result.get("failed") and not left:
            problems.append(str(result.get("msg") or "a teardown step failed").rstrip("."))
    return done, problems


def cycle_message(subject, failure, teardown, outcome="ran"):
    """The role's closing message, or '' when nothing is to report.

    subject: "image_build of /srv/disk.img"; failure: {} or {step, result} as
    recorded in the rescue section; teardown: the registered results of the
    teardown tasks; outcome: the verb for a successful run ("was built").
    """
    done, problems = teardown_lines(teardown)
    record = "; ".join(done) if done else "nothing was left to undo"
    if failure:
        left = ("Teardown problems: %s." % "; ".join(problems)) if problems else "Nothing is left attached or mounted."
        return '%s failed at "%s": %s. Teardown: %s. %s' % (
            subject, failure.get("step") or "unnamed task", failure_reason(failure.get("result")), record, left)
    if problems:
        return "%s %s, but the teardown left something behind: %s. Teardown: %s." % (
            subject, outcome, "; ".join(problems), record)
    return ""


def mounted_entries(tree):
    """The mounts of an image_tree result as the roles hand them to the
    caller's tasks: each with ``where`` (its place on the host) and
    ``type_alias`` (the partition type, empty for a whole image) beside
    image_tree's own keys."""
    out = []
    for mount in (tree or {}).get("mounts") or []:
        entry = dict(mount)
        entry["where"] = mount.get("target")
        entry["type_alias"] = (mount.get("partition") or {}).get("type_alias") or ""
        out.append(entry)
    return out

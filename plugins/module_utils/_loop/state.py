# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state for loop devices: decide what to change, then change it.

``plan_present`` and ``plan_absent`` only read the system and return a LoopPlan
(the steps and the predicted result), so check mode and diff come from the same
code that acts. ``apply`` performs the steps; ``report`` is the module's result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan

SETTABLE = ("partscan", "direct_io", "sector_size", "autoclear")


class LoopPlan(Plan):
    """Steps to reach the desired state and the status expected afterwards."""

    def __init__(self, state):
        super(LoopPlan, self).__init__()
        self.state = state
        self.before = []         # list of status dicts
        self.after = []          # predicted status dicts
        self.device = None       # the device the result is about (present)
        self.created = False
        self.outcomes = {}       # filled by apply: device -> 'detached' | 'pending'
        self.released = False    # present: autoclear let the device go at once (predicted, then known)

    def _detached(self):
        # In check mode nothing ran, so every planned detach counts as one.
        return [dev["device"] for dev in self.before
                if self.outcomes.get(dev["device"], "detached") == "detached"]

    def result(self, check_mode=False):
        if self.state == "present":
            return {"device": self.device, "created": self.created, "released": self.released,
                    "status": self.after[0] if self.after else {}, "devices": self.after}
        return {"devices": self.before, "detached": self._detached(),
                "pending": [dev for dev, outcome in self.outcomes.items() if outcome == "pending"]}

    def diff(self):
        if self.state == "present":
            return {"before": self.before[0] if self.before else {}, "after": self.after[0] if self.after else {}}
        detached = self._detached()
        return {"before": {"devices": self.before},
                "after": {"devices": [dev for dev in self.before if dev["device"] not in detached]}}


def _predict(current, **changes):
    predicted = dict(current)
    predicted.update(changes)
    return predicted


def _released_warning(device):
    return ("%s was released at once: autoclear detaches a device when its last user closes it, "
            "and nothing else held it, so it is no longer attached" % device)


def _autoclear_step(plan, current):
    """Set autoclear on an attached device, but only on one that something holds.

    The kernel detaches a device with autoclear on the last close. Setting it on
    a device nobody holds open would detach it the moment this module closes it
    - the opposite of state=present - so that is refused, in check mode too. If
    the last holder lets go between the check and the change, the device is gone
    all the same: the result says so (released, and a warning).
    """
    device = current["device"]
    if not loopdev.users(device):
        raise DiskImageError(
            "refusing to set autoclear on %s: nothing holds it open (no mount, mapping or process), "
            "and the kernel detaches a device with autoclear as soon as its last user closes it, "
            "so %s would be detached at once" % (device, device),
            hint="Set autoclear once something holds the device (for example after mounting it), "
                 "or omit autoclear; to detach the device, use state: absent")
    before = loopdev.LoopStatus(**current)

    def set_autoclear():
        loopdev.set_autoclear(device, True)
        if not loopdev.same_attachment(loopdev.status(before.number), before):
            plan.released = True
            plan.warnings.append(_released_warning(device))

    plan.add("set autoclear=True on %s" % device, set_autoclear)


def _settable_steps(plan, current, wanted):
    """Change partscan, direct_io, sector_size and autoclear in place.

    Turning autoclear on comes last: it is the one change that can make the
    kernel let go of the device."""
    device = current["device"]
    changes = {}
    for key in SETTABLE:
        value = wanted.get(key)
        if value is None or value == current.get(key):
            continue
        if key == "partscan" and not value:
            raise DiskImageError(
                "%s has partscan on, and the kernel cannot turn it off on an attached device" % device,
                hint="Detach it (state: absent) and attach it again, or omit partscan")
        changes[key] = value
        if key == "autoclear" and value:
            continue  # below, after everything else
        setter = {"partscan": loopdev.set_partscan, "direct_io": loopdev.set_direct_io,
                  "sector_size": loopdev.set_sector_size, "autoclear": loopdev.set_autoclear}[key]
        plan.add("set %s=%s on %s" % (key, value, device),
                 lambda setter=setter, value=value: setter(device, value))
    if wanted.get("resize"):
        probe = loopdev.LoopStatus(**current)
        new_size = loopdev.expected_capacity(probe)
        if new_size != current.get("size"):
            changes["size"] = new_size
            plan.add("refresh capacity of %s to %d bytes" % (device, new_size),
                     lambda: loopdev.refresh_capacity(device))
    if changes.get("autoclear"):
        _autoclear_step(plan, current)
    return changes


def _same_file(current, identity):
    return (current.backing_device, current.backing_inode) == identity


def plan_present(path, device=None, offset=0, sizelimit=0, read_only=False, partscan=None,
                 direct_io=None, sector_size=None, autoclear=None, resize=False):
    """Plan an attachment of ``path`` that satisfies everything asked."""
    request = loopdev.AttachRequest(path, offset=offset, sizelimit=sizelimit, read_only=read_only,
                                    partscan=bool(partscan), direct_io=bool(direct_io),
                                    sector_size=sector_size or 0, autoclear=bool(autoclear))
    request.validate()
    wanted = {"partscan": partscan, "direct_io": direct_io, "sector_size": sector_size,
              "autoclear": autoclear, "resize": resize}
    identity = loopdev.file_identity(request.path)
    plan = LoopPlan("present")

    if device is not None:
        number = loopdev.check_loop_device(device)
        current = loopdev.status(number)
        if current is not None and not _same_file(current, identity):
            raise DiskImageError(
                "%s is already attached to %s, not %s" % (current.device, current.backing_file, request.path),
                errno=errno.EBUSY, hint="Name another device, or omit device to pick a free one")
        candidates = [current] if current is not None else []
    else:
        candidates = loopdev.find_associated(request.path)

    matching = [c for c in candidates
                if (c.offset, c.sizelimit, c.read_only) == (offset, sizelimit, bool(read_only))]
    if matching:
        current = matching[0]
        plan.device = current.device
        plan.before = [current.to_dict()]
        changes = _settable_steps(plan, current.to_dict(), wanted)
        plan.after = [_predict(current.to_dict(), **changes)]
        return plan

    if device is not None and candidates:
        current = candidates[0]
        if current.read_only != bool(read_only):
            raise DiskImageError(
                "%s is attached to %s %s; the kernel cannot change that in place" % (
                    current.device, request.path, "read-only" if current.read_only else "read-write"),
                hint="Detach it first (state: absent), or name another device")
        raise DiskImageError(
            "%s is attached to %s with offset %d and sizelimit %d, not %d and %d" % (
                current.device, request.path, current.offset, current.sizelimit, offset, sizelimit),
            hint="Detach it first (state: absent), or name another device for this geometry")

    plan.created = True
    options = dict(offset=offset, sizelimit=sizelimit, read_only=read_only, partscan=bool(partscan),
                   direct_io=bool(direct_io), sector_size=sector_size or 0, autoclear=bool(autoclear))
    # The device: the named one, or the one the kernel would most likely hand
    # out, found in sysfs without creating anything (best effort: another
    # process may take it first; the real run reports the one it got).
    number = loopdev.parse_device(device) if device is not None else loopdev.next_free()[0]
    predicted = loopdev.predicted_status(request, number, identity).to_dict()
    plan.after = [predicted]
    plan.device = predicted["device"]
    # Nothing can hold a device that is only now attached, so autoclear lets go
    # of it as soon as the attach closes it.
    plan.released = bool(autoclear)

    def attach():
        result = loopdev.attach(request.path, device=device, **options)
        plan.device = result.device
        plan.after = [result.to_dict()]
        plan.released = bool(autoclear) and not loopdev.same_attachment(loopdev.status(result.number), result)
        if plan.released:
            plan.warnings.append(_released_warning(result.device))

    plan.add("attach %s" % request.path, attach)
    return plan


def plan_absent(path=None, device=None, offset=None, force=False):
    """Plan the detach of ``device``, or of every device backed by ``path``."""
    plan = LoopPlan("absent")
    if device is not None:
        number = loopdev.check_loop_device(device)
        current = loopdev.status(number)
        if current is None:
            return plan
        if path is not None:
            try:
                identity = loopdev.file_identity(path)
            except DiskImageError:
                identity = None
            if identity is None or not _same_file(current, identity):
                raise DiskImageError(
                    "%s is attached to %s, not to %s; refusing to detach it" % (
                        current.device, current.backing_file, path),
                    hint="Name the device that belongs to this file, or omit file")
        if offset is not None and current.offset != offset:
            raise DiskImageError(
                "%s is attached at offset %d, not %d; refusing to detach it" % (current.device, current.offset, offset))
        targets = [current]
    else:
        try:
            targets = loopdev.find_associated(path, offset=offset)
        except DiskImageError as exc:
            if exc.errno == errno.ENOENT:
                return plan  # no file, so nothing can be attached to it
            raise
    for current in targets:
        plan.before.append(current.to_dict())
        if not force:
            # Refuse in check mode too, and before detaching anything at all.
            reasons = loopdev.blockdev.busy_reasons(current.name, dev_path=current.device)
            if reasons:
                raise DiskImageError(
                    "%s is busy: %s" % (current.device, "; ".join(reasons)), errno=errno.EBUSY,
                    hint="Unmount or remove what holds it first, or set force: true for a lazy detach")

        def detach(current=current):
            plan.outcomes[current.device] = loopdev.detach(current.device, force=force)

        plan.add("detach %s" % current.device, detach)
    return plan

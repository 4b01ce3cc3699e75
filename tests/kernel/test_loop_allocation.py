# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocation races systemd's loop-util handles, provoked on real devices.

* The number LOOP_CTL_GET_FREE hands out can vanish before it is opened (another
  program's LOOP_CTL_REMOVE): the attach asks again instead of failing.
* A "free" device can still show partition devices (kernels before 6.11 could
  leave them behind a detach, in a race with an open of a partition): they are
  removed through BLKPG under the device's lock, and the attempt is retried.

Only devices these tests create (numbers no other device has) are added,
removed or named; the real GET_FREE answers every other call.
"""
import fcntl
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, loop_abi as abi, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev

pytestmark = pytest.mark.root


@pytest.fixture
def own_number():
    """A loop device number nobody has; removed again afterwards if it exists."""
    number = max(sysfs.loop_numbers() or [0]) + 97
    yield number
    if sysfs.loop_exists(number):
        if sysfs.loop_is_bound(number):
            loopdev.detach(number, force=True)
        loopdev.remove_device(number)


@pytest.fixture
def get_free(monkeypatch):
    """Answer LOOP_CTL_GET_FREE from a script first (callables run as the answer
    is given), then from the kernel; record every BLKPG request."""
    real_ioctl = fcntl.ioctl
    script = []
    seen = {"get_free": 0, "blkpg": []}

    def ioctl(fd, request, arg=0, *rest):
        if request == abi.LOOP_CTL_GET_FREE:
            seen["get_free"] += 1
            if script:
                return script.pop(0)()
        if request == blkpg.BLKPG:
            op, _flags, _datalen, _ptr = blkpg.IOCTL_ARG.unpack(bytes(arg)) if isinstance(arg, (bytes, bytearray)) \
                else (None, None, None, None)
            seen["blkpg"].append(op)
        return real_ioctl(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    return script, seen


def _control(request, number):
    fd = os.open(loopdev.LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, request, number)
    finally:
        os.close(fd)


def test_a_free_device_that_vanishes_before_the_open_is_replaced(make_image, own_number, get_free):
    script, seen = get_free

    def free_then_removed():
        # GET_FREE's answer, then another program's LOOP_CTL_REMOVE of it.
        _control(abi.LOOP_CTL_ADD, own_number)
        assert sysfs.loop_exists(own_number)
        _control(abi.LOOP_CTL_REMOVE, own_number)
        return own_number

    script.append(free_then_removed)
    status = loopdev.attach(make_image())
    try:
        assert seen["get_free"] == 2                       # asked again, did not fail
        assert status.number != own_number and not sysfs.loop_exists(own_number)
        assert loopdev.status(status.number).backing_file == status.backing_file
    finally:
        assert loopdev.detach(status.device) == "detached"


def test_leftover_partitions_on_a_free_device_are_removed_before_it_is_configured(
        make_image, own_number, get_free, monkeypatch):
    script, seen = get_free
    _control(abi.LOOP_CTL_ADD, own_number)
    name = "loop%d" % own_number
    real_partitions = sysfs.partitions
    stale = [("%sp1" % name, 1)]

    def partitions(disk, root=sysfs.SYS_ROOT):
        # This kernel drops partitions on every detach, so the leftover the
        # older ones left is shown once, as sysfs showed it there.
        if disk == name and stale:
            return [stale.pop()]
        return real_partitions(disk, root)

    monkeypatch.setattr(sysfs, "partitions", partitions)
    script.extend([lambda: own_number, lambda: own_number])
    status = loopdev.attach(make_image())
    try:
        assert seen["get_free"] == 2                       # the clean-up counted as an attempt
        assert seen["blkpg"] == [blkpg.BLKPG_DEL_PARTITION]  # issued on the unbound device, under its lock
        assert status.number == own_number                 # then the clean device was taken
        assert sysfs.partitions(name) == []
    finally:
        assert loopdev.detach(status.device) == "detached"


def test_a_bound_device_is_never_cleaned(make_image, own_number, get_free):
    """A GET_FREE answer another program bound without the lock is busy: its
    partitions are its own and stay; the attach takes another device."""
    script, seen = get_free
    theirs = loopdev.attach(make_image("theirs.img"), device=own_number, partscan=True)
    try:
        fd = os.open(theirs.device, os.O_RDONLY)
        try:
            blkpg._add(fd, theirs.device, 1, 1 << 20, 4 << 20)
        finally:
            os.close(fd)
        script.append(lambda: own_number)
        mine = loopdev.attach(make_image())
        try:
            assert mine.number != own_number and seen["get_free"] == 2
            assert seen["blkpg"] == [blkpg.BLKPG_ADD_PARTITION]
            assert [n for _p, n in sysfs.partitions(theirs.name)] == [1]
        finally:
            loopdev.detach(mine.device)
    finally:
        loopdev.detach(theirs.device, force=True)

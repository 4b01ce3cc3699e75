# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loop devices: attach+detach, and the associated-device lookup, against losetup
and against the bare ioctls the core is built on."""

import errno
import fcntl
import os

from common import Group, Row, interleaved, run
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import loop_abi as abi
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev


def bare_attach_detach(image):
    """The floor: LOOP_CTL_GET_FREE, LOOP_CONFIGURE, LOOP_CLR_FD and the opens
    they need, with no lock, no verification and no wait for the detach (only
    a retry when another program took the device first, or it would fail)."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        while True:
            control = os.open(loopdev.LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
            try:
                number = fcntl.ioctl(control, abi.LOOP_CTL_GET_FREE)
            finally:
                os.close(control)
            device = os.open(loopdev.device_path(number), os.O_RDWR | os.O_CLOEXEC)
            try:
                try:
                    fcntl.ioctl(device, abi.LOOP_CONFIGURE, abi.pack_config(backing, 0, abi.LoopInfo(file_name=image)))
                except OSError as exc:
                    if exc.errno == errno.EBUSY:
                        continue
                    raise
                fcntl.ioctl(device, abi.LOOP_CLR_FD, 0)
                return
            finally:
                os.close(device)
    finally:
        os.close(backing)


def bench_attach_detach(workdir, rounds):
    image = os.path.join(workdir, "loop.img")
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)

    def core():
        loopdev.detach(loopdev.attach(image).device)

    def tool():
        device = run(["losetup", "--find", "--show", image]).stdout.strip()
        run(["losetup", "--detach", device])

    samples = interleaved([("core", core), ("tool", tool), ("bare", lambda: bare_attach_detach(image))], rounds)
    group = Group("1a. Loop device attach+detach cycle (host kernel)",
                  ["core: loopdev.attach() then loopdev.detach() (waits until the kernel has let go)",
                   "tool: losetup --find --show IMAGE, then losetup --detach DEVICE",
                   "bare: GET_FREE, CONFIGURE, CLR_FD from Python, nothing else (the floor)"])
    group.pair(Row("attach+detach (core)", samples["core"]),
               Row("attach+detach (losetup -f --show / -d)", samples["tool"]))
    group.pair(Row("attach+detach (core, against the floor)", samples["core"]),
               Row("attach+detach (bare ioctls)", samples["bare"]))
    return group


def bench_lookup(workdir, devices, rounds):
    """The devices of one file (losetup -j) with ``devices`` of ours attached."""
    image = os.path.join(workdir, "lookup.img")
    with open(image, "wb") as handle:
        handle.truncate(64 << 20)
    attached = []
    try:
        for number in range(devices - 1):
            other = os.path.join(workdir, "other%d.img" % number)
            with open(other, "wb") as handle:
                handle.truncate(1 << 20)
            attached.append(loopdev.attach(other).device)
        attached.append(loopdev.attach(image).device)
        expected = attached[-1]
        if [d.device for d in loopdev.find_associated(image)] != [expected]:
            raise RuntimeError("find_associated does not find %s" % expected)
        if run(["losetup", "--associated", image]).stdout.split(":")[0] != expected:
            raise RuntimeError("losetup -j does not find %s" % expected)
        in_all = len(loopdev.list_attached())
        samples = interleaved([("core", lambda: loopdev.find_associated(image)),
                               ("tool", lambda: run(["losetup", "--associated", image]))], rounds)
    finally:
        for device in attached:
            loopdev.detach(device, force=True)
    group = Group("1b. Associated-device lookup (losetup -j) with %d devices of ours attached (%d in all)"
                  % (devices, in_all),
                  ["core: loopdev.find_associated(IMAGE); tool: losetup --associated IMAGE"])
    group.pair(Row("lookup -j (core)", samples["core"]), Row("lookup -j (losetup)", samples["tool"]))
    return group


def run_all(workdir, quick):
    return [bench_attach_detach(workdir, 50 if quick else 200),
            bench_lookup(workdir, 256, 30 if quick else 100)]

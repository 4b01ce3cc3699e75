# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images that are not raw, through NBD: the guest kernel has nbd, the host's may not.

The seed's eight-partition layout (three primaries, an extended partition, four
logical ones) is made raw with sfdisk and mke2fs, converted to qcow2 with
qemu-img, and then used the way the modules use it (the hook of their main(),
``_nbd.source.RunConnections``, around the state planners): every partition mounted,
written, unmounted; ``qemu-img check`` as the oracle that the image is sound,
/sys/block/nbd*/pid that nothing stays connected. A run killed with SIGKILL
while it connects is cleaned up by the next one.
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, overlay, source as nbd_source
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state
from nbd_helpers import check_clean, connected, servers
from vm_helpers import MIB, run, wait_for

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("nbd_leak_check")]

FILESYSTEM_PARTS = (1, 2, 3, 5, 6, 7, 8)


def partitions(src, state="present", read_only=False, check_mode=False):
    """image_partitions as its main() runs it."""
    connections = nbd_source.RunConnections(partitions_state.OWNER, check_mode)
    if state == "present":
        return connections.plan(src, lambda path: partitions_state.plan_present(
            path, backend=nbd_source.partitions_backend(path, "auto"), read_only=read_only), read_only=read_only)
    return connections.release(
        src, lambda path, _unserved: partitions_state.plan_absent(path),
        lambda plan, other: nbd_source.merge_lists(plan, other, ("steps", "before", "after")))


def mount(state, src, path, selector=None, read_only=False):
    """image_mount as its main() runs it."""
    connections = nbd_source.RunConnections("image_mount")
    if state == "mounted":
        return connections.plan(
            src, lambda dev: mount_state.plan(state, dev, path, selector=selector, read_only=read_only),
            read_only=read_only)
    return connections.release(src, lambda dev, unserved: mount_state.plan(
        state, dev, path, selector=None if unserved else selector),
        lambda plan, other: nbd_source.merge_lists(plan, other, ("steps",)))


def test_qcow2_seed_mounts_partition_by_partition(tmp_path, seed):
    qcow2 = seed[1]
    # check mode: connects read-only to read the table, and gives it back
    plan = partitions(qcow2, check_mode=True)
    assert plan.report(True)["image_format"] == "qcow2"
    assert plan.roll_back() == [] and not connected()

    plan = partitions(qcow2).apply()
    result = plan.report()
    device = result["nbd_device"]
    assert result["src"] == qcow2 and device.startswith("/dev/nbd") and result["changed"]
    try:
        assert [p["number"] for p in result["partitions"]] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert partitions(qcow2).report()["changed"] is False  # a rerun reuses the device
        for number in FILESYSTEM_PARTS:
            target = str(tmp_path / ("p%d" % number))
            mounted = mount("mounted", qcow2, target, ("partition", number)).apply().report()
            assert mounted["nbd_device"] == device
            with open(os.path.join(target, "written"), "w") as handle:
                handle.write("partition %d\n" % number)
            assert run("findmnt", "-n", "-o", "FSTYPE", target).stdout.strip() == "ext4"
            assert mount("unmounted", qcow2, target, ("partition", number)).apply().report()["changed"]
        # image_mount did not connect it: its unmount leaves the device to image_partitions
        assert device in connected()
        absent = partitions(qcow2, "absent").apply().report()
        assert device in absent["detached"]
    finally:
        partitions(qcow2, "absent").apply()
    assert not connected() and not servers()
    check_clean(qcow2)
    assert partitions(qcow2, "absent").report()["changed"] is False

    # read back through a read-only connection made by image_mount, which takes it down with the mount
    target = str(tmp_path / "back")
    back = mount("mounted", qcow2, target, ("label", "part7"), read_only=True).apply().report()
    number = nbd.parse_name(os.path.basename(back["nbd_device"]))
    try:
        assert nbd.read_only(number)
        with open(os.path.join(target, "written")) as handle:
            assert handle.read() == "partition 7\n"
    finally:
        down = mount("absent", qcow2, target, ("label", "part7")).apply().report()
    assert back["nbd_device"] in down["detached"] and not connected()
    check_clean(qcow2)


def test_overlay_on_a_golden_image(tmp_path, seed):
    raw = seed[0]
    before = run("sha256sum", raw).stdout.split()[0]
    host = str(tmp_path / "host1.qcow2")
    assert overlay.ensure_overlay(raw, host) is True
    assert overlay.ensure_overlay(raw, host) is False
    assert overlay.overlay_state(raw, host) == "current"
    target = str(tmp_path / "root")
    mount("mounted", host, target, ("label", "part5")).apply()
    try:
        with open(os.path.join(target, "hostname"), "w") as handle:
            handle.write("host1\n")
    finally:
        mount("absent", host, target, ("label", "part5")).apply()
    assert not connected()
    check_clean(host)
    assert run("sha256sum", raw).stdout.split()[0] == before, "the golden image changed"
    assert os.path.getsize(host) < 2 * MIB  # the host's writes, not a copy


KILLED = """
import sys
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import source
source.block_source(sys.argv[1], owner="image_partitions")
"""


def test_sigkill_during_connect_is_cleaned_by_a_rerun(tmp_path, seed):
    qcow2 = str(tmp_path / "killed.qcow2")
    shutil.copyfile(seed[1], qcow2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    child = subprocess.Popen([sys.executable, "-c", KILLED, qcow2], env=env)
    try:
        # killed as soon as qemu-nbd runs: started, most likely not connected yet
        wait_for(lambda: any(r["pids"] for r in connect.records().values()), timeout=60, what="qemu-nbd to start")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # the rerun: absent takes down whatever the killed run left, however far it got
    partitions(qcow2, "absent").apply()
    assert not connected() and not servers() and not connect.records()
    check_clean(qcow2)

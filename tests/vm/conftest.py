# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the VM tier (tests that need the guest kernel of scripts/vm-tests.sh).

Everything here is skipped unless it runs inside that guest: scripts/vm-tests.sh sets
DISKIMAGE_VM_TIER=1 and loads dm_mod, so /dev/mapper/control exists. The script runs
`pytest -m vm`, so each module here sets ``pytestmark = pytest.mark.vm``.

Every loop device, map and mount a test makes goes through the ``scratch`` fixture,
which undoes them in reverse order even when the test fails, and ``_leak_check``
fails any test that leaves a loop device or a map behind.
"""

import os

import pytest

from vm_helpers import IN_VM, Scratch, bound_loops, dm_devices, run


@pytest.fixture(autouse=True)
def _vm_only():
    if not IN_VM:
        pytest.skip("VM tier: run scripts/vm-tests.sh (needs the guest kernel's device-mapper)")
    if os.geteuid() != 0:
        pytest.skip("VM tier runs as root")


@pytest.fixture(autouse=True)
def _leak_check(_vm_only):
    """Fail a test that leaves loop devices or maps behind (and remove them)."""
    dm_before, loops_before = set(dm_devices()), bound_loops()
    yield
    leaked_dm = sorted(set(dm_devices()) - dm_before)
    leaked_loops = sorted(bound_loops() - loops_before)
    for name in reversed(leaked_dm):
        run("dmsetup", "remove", "--retry", name, check=False)
    for name in leaked_loops:
        run("losetup", "-d", "/dev/" + name, check=False)
    if leaked_dm or leaked_loops:
        pytest.fail("test leaked maps %s and loop devices %s" % (leaked_dm, leaked_loops))


@pytest.fixture
def scratch(tmp_path):
    box = Scratch(tmp_path)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="session")
def seed(tmp_path_factory):
    """(raw, qcow2): the seed's eight-partition layout with ext4 filesystems,
    and its qcow2 conversion, shared by the NBD tests. Made once: in the guest
    every start of a qemu tool reads it over 9p, which is most of their time."""
    from nbd_helpers import have_qemu_utils, make_seed  # the collection is importable once pytest is configured

    if not IN_VM or not have_qemu_utils():
        pytest.skip("VM tier with qemu-utils installed")
    return make_seed(str(tmp_path_factory.mktemp("seed")))


@pytest.fixture
def nbd_leak_check():
    """Fail a test that leaves an nbd device connected or a record behind (and disconnect it)."""
    from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
    from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect
    from nbd_helpers import connected, have_qemu_utils

    if not have_qemu_utils():
        pytest.skip("qemu-utils is not installed")
    before = connected()
    yield
    leaked = sorted(set(connected()) - set(before))
    for device in leaked:
        run("qemu-nbd", "--disconnect", device, check=False)
    assert not leaked, "test left nbd devices connected: %s" % leaked
    assert not [n for n in connect.records() if nbd.device_path(n) not in before], "records left behind"

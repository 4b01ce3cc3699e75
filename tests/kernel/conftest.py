# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel tier: real loop devices on this host's kernel, as root.

Every test works on image files below one session directory, and the session
fails if any loop device backed by those files, or any mount below it, is left.
"""
import json
import os
import re
import subprocess

import pytest

MiB = 1 << 20


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0 and os.path.exists("/dev/loop-control"):
        return
    skip = pytest.mark.skip(reason="needs root and /dev/loop-control")
    for item in items:
        if "kernel" in str(item.fspath):
            item.add_marker(skip)


def losetup_json():
    out = subprocess.run(["losetup", "--list", "--json", "-O",
                          "NAME,BACK-FILE,OFFSET,SIZELIMIT,RO,AUTOCLEAR,DIO,LOG-SEC,PARTSCAN"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["loopdevices"] if out.strip() else []


def devices_backed_under(directory):
    prefix = os.path.realpath(directory) + os.sep
    return [dev["name"] for dev in losetup_json()
            if (dev.get("back-file") or "").split(" (deleted)")[0].startswith(prefix)]


def mounts_under(directory):
    prefix = os.path.realpath(directory) + os.sep
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(prefix)]


def release_under(directory):
    """Unmount and detach everything this session made; used on failure paths too."""
    for mount_point in sorted(mounts_under(directory), reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False)
    for device in devices_backed_under(directory):
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    # Not tmpfs: direct I/O and some filesystems need a real backing filesystem.
    base = tmp_path_factory.mktemp("kernel")
    yield base
    leaked_devices = devices_backed_under(str(base))
    leaked_mounts = mounts_under(str(base))
    release_under(str(base))
    assert not leaked_devices and not leaked_mounts, (
        "tests left loop devices %s and mounts %s behind" % (leaked_devices, leaked_mounts))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def workdir(session_dir, request):
    """A directory for one test. Whatever the test leaves attached or mounted is
    released here; if the test passed, leaving anything is itself a failure."""
    path = session_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path.mkdir()
    yield path
    leaked = devices_backed_under(str(path)) + mounts_under(str(path))
    release_under(str(path))
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.passed:
        assert not leaked, "the test left %s behind" % leaked


@pytest.fixture
def make_image(workdir):
    def make(name="disk.img", size=64 * MiB):
        path = workdir / name
        with open(str(path), "wb") as handle:
            handle.truncate(size)
        return str(path)
    return make

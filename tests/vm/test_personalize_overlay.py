# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_files with per-host qcow2 overlays, in the guest (its kernel has nbd).

A golden image in the seed's layout (ext4 root in logical partition 8), an
overlay per host written through NBD by image_files' core, one of them grown
with ``size``; the oracles are qemu-img (info: the backing file and the
virtual size; check: sound after the writes), sfdisk, e2fsck and debugfs on a
raw conversion, the golden image's checksum, and /sys/block/nbd*/pid for
what stays connected. A run killed with SIGKILL while it holds the device and
the mounted tree leaves a connection whose holder is gone; the next run takes
it down. Each run is a forked child, as a module run is a process of its own
(the mount namespace it makes is its own).
"""

import json
import os
import shutil
import signal
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files import job, tree_files
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect
from nbd_helpers import check_clean, connected, make_seed_with_root, servers
from vm_helpers import IN_VM, MIB, SECTOR, run, sfdisk_partitions, wait_for

pytestmark = pytest.mark.vm

ROOT = [{"path": "/", "partition": 8}]


def files(host):
    return [{"path": "/etc/hostname", "content": "%s\n" % host},
            {"path": "/etc/motd", "state": "line", "line": "welcome to %s" % host}]


def forked(request, pause=False, check_mode=False):
    """image_files' run() in a child process: (pid, pipe); the child writes its
    result, or with ``pause`` says when the tree is mounted and waits to be killed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            os.close(read_fd)
            if pause:
                def paused(root, entries, accounts=None, check_mode=False):
                    os.write(write_fd, json.dumps({"paused": os.getpid()}).encode() + b"\n")
                    signal.pause()
                tree_files.run = paused
            try:
                result, _warnings = job.run(job.Request(**request), check_mode)
            except Exception as exc:  # the parent asserts on the message
                result = {"failed": True, "msg": str(exc)}
            os.write(write_fd, json.dumps(result).encode() + b"\n")
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, os.fdopen(read_fd)


def run_files(check_mode=False, **request):
    pid, pipe = forked(request, check_mode=check_mode)
    with pipe:
        line = pipe.readline()
    os.waitpid(pid, 0)
    result = json.loads(line)
    assert not result.get("failed"), result
    return result


@pytest.fixture(autouse=True)
def _nothing_connected_after():
    if not (shutil.which("qemu-nbd") and shutil.which("qemu-img")):
        pytest.skip("qemu-utils is not installed")
    yield
    leaked = sorted(connected())
    for device in leaked:
        run("qemu-nbd", "--disconnect", device, check=False)
    assert not leaked and not servers() and not connect.records(), "left connected: %s" % leaked


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """The seed's dos layout, an ext4 root with /etc in logical partition 8."""
    if not IN_VM:
        pytest.skip("VM tier")
    directory = tmp_path_factory.mktemp("golden")
    tree = directory / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("golden\n")
    (tree / "etc" / "motd").write_text("golden image\n")
    return make_seed_with_root(str(directory / "golden.img"), tree)


def sha256(path):
    return run("sha256sum", path).stdout.split()[0]


def partition_8(raw, workdir):
    """Partition 8 of a raw image as a file of its own, for e2fsck and debugfs."""
    number, start, size, _extended = sfdisk_partitions(raw)[-1]
    assert number == 8
    part = os.path.join(workdir, "p8.fs")
    run("dd", "if=%s" % raw, "of=%s" % part, "bs=512", "skip=%d" % start, "count=%d" % size, "status=none")
    return part, size * SECTOR


def test_overlays_per_host_written_grown_and_killed(tmp_path, golden):
    before = sha256(golden)
    fleet = str(tmp_path / "fleet")
    web1, web2 = os.path.join(fleet, "web1.qcow2"), os.path.join(fleet, "web2.qcow2")

    one = run_files(src=web1, copy_from=golden, overlay=True, mounts=ROOT, files=files("web1"))
    assert one["copied"] is True and one["copy_method"] == "overlay" and one["image_format"] == "qcow2", one
    assert one["nbd_device"].startswith("/dev/nbd") and one["growth"] is None
    assert [f["changed"] for f in one["files"]] == [True, True]
    two = run_files(src=web2, copy_from=golden, overlay=True, mounts=ROOT, files=files("web2"), size="96MiB")
    assert two["growth"]["size_after"] == 96 * MIB and [p["number"] for p in two["growth"]["partitions"]] == [4, 8]
    assert [f["number"] for f in two["growth"]["filesystems"]] == [8]
    assert not connected() and not servers()

    for host, size in ((web1, 80 * MIB), (web2, 96 * MIB)):
        info = json.loads(run("qemu-img", "info", "--output=json", host).stdout)
        assert info["format"] == "qcow2" and info["backing-filename"] == golden and info["virtual-size"] == size
        assert info["backing-filename-format"] == "raw"
        check_clean(host)
    assert sha256(golden) == before, "the golden image changed"

    # web1 again: nothing to do, which it can only tell by reading the files back through NBD
    again = run_files(src=web1, copy_from=golden, overlay=True, mounts=ROOT, files=files("web1"))
    assert again["changed"] is False and again["copied"] is False, again
    # check mode: a read-only connection, a change reported, the overlay left as it was
    overlay_before = sha256(web1)
    checked = run_files(check_mode=True, src=web1, copy_from=golden, overlay=True, mounts=ROOT, files=files("web9"))
    assert checked["changed"] is True and checked["nbd_device"].startswith("/dev/nbd"), checked
    assert [f["changed"] for f in checked["files"]] == [True, True]
    assert sha256(web1) == overlay_before and not connected()

    # web2 read with other tools: a raw conversion, sfdisk, e2fsck, debugfs
    raw = str(tmp_path / "web2.raw")
    run("qemu-img", "convert", "-O", "raw", web2, raw)
    assert "No errors detected" in run("sfdisk", "--verify", raw).stdout
    ends = dict((number, (start + size) * SECTOR) for number, start, size, _extended in sfdisk_partitions(raw))
    assert ends[4] == ends[8] == 96 * MIB  # the extended partition and its last logical one fill the disk
    part, part_size = partition_8(raw, str(tmp_path))
    run("e2fsck", "-fn", part)
    header = run("dumpe2fs", "-h", part).stdout
    fields = dict(line.split(":", 1) for line in header.splitlines() if ":" in line)
    assert int(fields["Block count"]) * int(fields["Block size"]) == part_size
    assert run("debugfs", "-R", "cat /etc/hostname", part).stdout == "web2\n"
    assert run("debugfs", "-R", "cat /etc/motd", part).stdout == "golden image\nwelcome to web2\n"

    # killed while it holds the device with the tree mounted
    pid, pipe = forked(dict(src=web1, copy_from=golden, overlay=True, mounts=ROOT, files=files("web1b")), pause=True)
    try:
        with pipe:
            assert json.loads(pipe.readline())["paused"] == pid
            held = [number for number, record in connect.records().items()
                    if (record.get("holder") or {}).get("pid") == pid]
            assert len(held) == 1 and nbd.device_path(held[0]) in connected()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert nbd.device_path(held[0]) in connected()  # what a killed run leaves: the device, unused
    record = connect.records()[held[0]]
    assert not connect.holder_alive(record["holder"]), record
    deadline = time.monotonic() + 20
    while connect.in_use(held[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connect.in_use(held[0]) == []  # the killed run's mounts and loop device went with it
    rerun = run_files(src=web1, copy_from=golden, overlay=True, mounts=ROOT, files=files("web1b"))
    assert [f["changed"] for f in rerun["files"]] == [True, True], rerun
    wait_for(lambda: not connected() and not servers(), timeout=10, what="the killed run's device to go")
    check_clean(web1)
    assert sha256(golden) == before

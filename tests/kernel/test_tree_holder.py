# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.holder on the real kernel: a declared two-partition tree mounted in a
private mount namespace (never in the host's mount table), a working root in it,
the exact reverse on close, and nothing left when the holder is killed."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev

MiB = 1 << 20
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
VAR = "4d21b016-b534-45c2-a9fb-5c16e091fd2d"
COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           ".cache", "collections")
HOLDER = "ansible_collections.diskimage.loop.plugins.module_utils._tree.holder"

pytestmark = pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs mkfs.ext4")


def make_image(workdir):
    """GPT: a root (x86-64) partition with the directories of a root, and a var partition."""
    tree = workdir / "root"
    for sub in ("proc", "sys", "dev", "run", "etc", "usr/sbin", "var", "bin"):
        (tree / sub).mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("tree\n")
    var = workdir / "var"
    (var / "lib").mkdir(parents=True)
    (var / "lib" / "mark").write_text("var\n")
    image = workdir / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(52 * MiB)
    subprocess.run(["sfdisk", "-q", str(image)], check=True, text=True,
                   input="label: gpt\nstart=2048, size=65536, type=%s\nsize=32768, type=%s\n" % (ROOT_X86_64, VAR))
    for source, offset, size in ((tree, 1, 32), (var, 33, 16)):
        part = workdir / ("%s.fs" % source.name)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(source), str(part), "%dM" % size], check=True)
        subprocess.run(["dd", "if=%s" % part, "of=%s" % image, "bs=1M", "seek=%d" % offset, "conv=notrunc,sparse",
                        "status=none"], check=True)
    return str(image)


def start(image, **request):
    request.update(image=image, arch="x86_64")
    proc = subprocess.Popen([sys.executable, "-m", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=COLLECTIONS), text=True)
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    return proc, json.loads(proc.stdout.readline())


def host_mount_points():
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle]


def wait_released(image, seconds=10.0):
    wait_until(lambda: not loopdev.find_associated(image), seconds, interval=0.05)
    return loopdev.find_associated(image)


def test_declared_tree_in_a_private_namespace_and_the_exact_reverse(workdir):
    image = make_image(workdir)
    proc, answer = start(image, mounts=[{"path": "/var", "partition": 2}, {"path": "/", "partition": 1}])
    try:
        assert answer["ok"], answer
        assert [m["path"] for m in answer["mounted"]] == ["/", "/var"]
        root = answer["root"]
        assert not [p for p in host_mount_points() if p.startswith(root)]
        with open("/proc/%d/mountinfo" % answer["pid"]) as handle:
            inside = [line.split()[4] for line in handle if line.split()[4].startswith(root)]
        assert inside[:2] == [root, root + "/var"]
        for sub in ("/proc", "/sys", "/dev", "/run"):
            assert root + sub in inside
        there = "/proc/%d/root%s" % (answer["pid"], root)
        with open(there + "/var/lib/mark") as handle:
            assert handle.read() == "var\n"
        with open(there + "/usr/sbin/policy-rc.d") as handle:
            assert "exit 101" in handle.read()
        status = loopdev.find_associated(image)[0]
        assert status.autoclear and status.partscan
    finally:
        proc.stdin.close()
    report = json.loads(proc.stdout.readline())
    assert proc.wait(10) == 0
    assert report["problems"] == []
    assert report["done"][:2] == ["removed /usr/sbin/policy-rc.d", "removed /etc/resolv.conf"]
    assert not loopdev.find_associated(image)
    assert not os.path.exists(answer["root"])


@pytest.mark.skipif(shutil.which("nsenter") is None, reason="needs nsenter")
def test_teardown_kills_inside_the_namespace_only(workdir):
    """What a task left running in the image dies with the teardown; a process
    of the host, started at the same time, lives on."""
    image = make_image(workdir)
    proc, answer = start(image)
    host = subprocess.Popen(["sleep", "60"])
    inside = None
    try:
        assert answer["ok"], answer
        inside = subprocess.Popen(["nsenter", "--mount=/proc/%d/ns/mnt" % answer["pid"], "sleep", "60"])
        assert wait_until(lambda: os.readlink("/proc/%d/ns/mnt" % inside.pid)
                          == os.readlink("/proc/%d/ns/mnt" % answer["pid"]), 5)
        proc.stdin.close()
        report = json.loads(proc.stdout.readline())
        assert proc.wait(10) == 0 and report["problems"] == []
        assert inside.wait(5) == -signal.SIGKILL
        assert host.poll() is None
    finally:
        for sleeper in (host, inside):
            if sleeper is not None and sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait()
    assert not wait_released(image)


def test_killed_holder_leaves_nothing_and_the_next_one_cleans_its_files(workdir):
    image = make_image(workdir)
    proc, answer = start(image)
    assert answer["ok"], answer
    assert [m["path"] for m in answer["mounted"]] == ["/", "/var"]  # Discoverable Partitions
    os.kill(answer["pid"], signal.SIGKILL)
    proc.wait(10)
    assert not wait_released(image)
    # The killed one left its marked files in the image and its directory; the next run removes them.
    proc, again = start(image)
    assert again["ok"], again
    assert not os.path.exists(answer["root"])
    proc.stdin.close()
    report = json.loads(proc.stdout.readline())
    proc.wait(10)
    assert "removed /etc/resolv.conf" in report["done"] and report["problems"] == []
    assert not wait_released(image)


def test_refuses_an_image_attached_elsewhere(workdir):
    image = make_image(workdir)
    held = loopdev.attach(image)
    try:
        proc, answer = start(image)
        proc.stdin.close()
        proc.wait(10)
        assert not answer["ok"] and "attached to %s already" % held.device in answer["msg"]
    finally:
        loopdev.detach(held.device)


def test_copies_of_other_images_mounts_do_not_pin_their_devices(workdir):
    """Another user's image mounted in the host when the holder starts: the
    holder's namespace drops its copy, so that user's umount really releases the
    device (no EBUSY for their detach) while the holder still runs."""
    image = make_image(workdir)
    other = workdir / "other.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", str(other), "8M"], check=True)
    point = workdir / "other"
    point.mkdir()
    device = subprocess.run(["losetup", "--find", "--show", str(other)], check=True, text=True,
                            capture_output=True).stdout.strip()
    subprocess.run(["mount", device, str(point)], check=True)
    proc, answer = start(image, mounts=[{"path": "/", "partition": 1}])
    try:
        assert answer["ok"], answer
        with open("/proc/%d/mountinfo" % answer["pid"]) as handle:
            assert str(point) not in [line.split()[4] for line in handle]
        subprocess.run(["umount", str(point)], check=True)
        # a device whose filesystem is gone everywhere detaches at once
        subprocess.run(["losetup", "-d", device], check=True)
        assert wait_until(lambda: not loopdev.find_associated(str(other)), 5.0, interval=0.05)
    finally:
        proc.stdin.close()
        proc.wait(10)

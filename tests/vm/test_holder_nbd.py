# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image connection's holder on a qcow2 image, in the guest (its kernel has nbd).

The holder is driven as the connection drives it, without ansible-playbook
(minutes under TCG): its setup in a process of its own (forked here: the mount
namespace it makes is its own), a command run chrooted in its tree by
entering that namespace (the connection's preexec, namespace.enter), the
teardown when its input ends. The image is the seed's dos layout with an
ext4 root in logical partition 8, made qcow2. The oracles are
/sys/block/nbd*/pid (what stays connected), the process table (no qemu-nbd
left), ``qemu-img check``, and a read-only holder reading the write back.
A holder killed with SIGKILL while it holds the device leaves a connection
whose holder is gone; the next connect takes it down.
"""

import json
import os
import signal

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect
from ansible_collections.diskimage.loop.plugins.module_utils._tree import holder, namespace
from nbd_helpers import check_clean, connected, have_qemu_utils, make_seed_with_root, servers
from vm_helpers import IN_VM, run

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("nbd_leak_check")]

ROOT = [{"path": "/", "partition": 8}]
WRITTEN = "/etc/written"


@pytest.fixture(scope="module")
def qcow2_image(tmp_path_factory):
    """The seed's layout, an ext4 root with the directories a working root needs in partition 8, as qcow2."""
    if not IN_VM or not have_qemu_utils():
        pytest.skip("VM tier with qemu-utils installed")
    directory = tmp_path_factory.mktemp("holder")
    tree = directory / "tree"
    for sub in ("etc", "proc", "sys", "dev", "run", "usr/sbin"):
        (tree / sub).mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("golden\n")
    raw = make_seed_with_root(str(directory / "disk.img"), tree)
    qcow2 = str(directory / "disk.qcow2")
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
    os.unlink(raw)
    return qcow2


class Forked(object):
    """A holder in a child process, as holder.main() runs it: the answer of its
    setup, then its teardown's report once its input (a pipe here) ends."""

    def __init__(self, image, **request):
        request.update(image=image, mounts=ROOT, arch=os.uname()[4])
        answers_r, answers_w = os.pipe()
        self.input_r, self.input_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                os.close(answers_r)
                os.close(self.input_w)
                running = holder.Holder(request)
                try:
                    try:
                        answer = running.setup()
                    except Exception as exc:
                        answer = {"ok": False, "msg": str(exc)}
                    os.write(answers_w, json.dumps(answer).encode() + b"\n")
                    if answer["ok"]:
                        os.read(self.input_r, 1)  # until the parent closes its end
                finally:
                    os.write(answers_w, json.dumps(running.teardown()).encode() + b"\n")
            finally:
                os._exit(0)
        os.close(answers_w)
        os.close(self.input_r)
        self.answers = os.fdopen(answers_r)
        self.answer = json.loads(self.answers.readline())

    def close(self):
        """End its input; its teardown's report."""
        os.close(self.input_w)
        report = json.loads(self.answers.readline())
        os.waitpid(self.pid, 0)
        self.answers.close()
        return report

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.input_w)
        self.answers.close()

    def in_tree(self, path):
        """The path of ``path`` of the tree, seen through the holder's namespace."""
        return "/proc/%d/root%s%s" % (self.pid, self.answer["root"], path)


def number_of(device):
    return int(device[len("/dev/nbd"):])


def run_inside(answer, path, content):
    """Write a file chrooted in the tree, as the connection runs a command:
    a child process that enters the holder's namespace and root first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the exit code reports
        code = 1
        try:
            namespace.enter(answer["pid"], answer["root"], answer["namespace"])
            with open(path, "w") as handle:
                handle.write(content)
            code = 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_qcow2_image_is_served_written_flushed_and_disconnected(qcow2_image):
    up = Forked(qcow2_image)
    try:
        assert up.answer["ok"], up.answer
        device = up.answer["nbd_device"]
        assert up.answer["image_format"] == "qcow2" and device.startswith("/dev/nbd")
        assert list(connected()) == [device] and len(servers()) == 1
        assert up.answer["mounted"][0]["device"].startswith(up.answer["loop"])  # a loop device over /dev/nbdN
        record = connect.read_record(number_of(device))
        assert record["owner"] == holder.OWNER and record["holder"]["pid"] == up.pid
        assert run_inside(up.answer, WRITTEN, "through the holder\n") == 0
    finally:
        report = up.close()
    assert report["problems"] == [] and "disconnected %s" % device in report["done"]
    assert not connected() and not servers() and not connect.records()
    check_clean(qcow2_image)

    back = Forked(qcow2_image, read_only=True)
    try:
        assert back.answer["ok"], back.answer
        number = number_of(back.answer["nbd_device"])
        with open("/sys/block/nbd%d/ro" % number) as handle:
            assert handle.read().strip() == "1"
        with open(back.in_tree(WRITTEN)) as handle:
            assert handle.read() == "through the holder\n"
    finally:
        assert back.close()["problems"] == []
    assert not connected() and not servers()


def test_a_killed_holder_s_device_is_taken_down_by_the_next_connect(qcow2_image):
    killed = Forked(qcow2_image)
    assert killed.answer["ok"], killed.answer
    device = killed.answer["nbd_device"]
    killed.kill()
    # the namespace, its mounts and the loop device went with the process; the connection stays
    left = servers()
    assert list(connected()) == [device] and len(left) == 1
    assert not connect.holder_alive(connect.read_record(number_of(device))["holder"])

    again = Forked(qcow2_image, read_only=True)  # its connect reaps first, then serves the image again
    try:
        assert again.answer["ok"], again.answer
        assert not set(left) & set(servers()), "the killed holder's server still runs"
        assert list(connected()) == [again.answer["nbd_device"]] and len(servers()) == 1
        assert connect.read_record(number_of(again.answer["nbd_device"]))["holder"]["pid"] == again.pid
    finally:
        assert again.close()["problems"] == []
    assert not connected() and not servers() and not connect.records()
    check_clean(qcow2_image)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nbd device is free, and which image a connected one serves (fixture /sys and /proc)."""
import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, server


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


class Machine(object):
    """A fixture /sys with nbd devices and a /proc with qemu-nbd servers."""

    def __init__(self, root):
        self.root = str(root)
        self.sys = os.path.join(self.root, "sys")
        self.proc = os.path.join(self.root, "proc")

    def device(self, number, task=None, size=0, ro=False):
        name = "nbd%d" % number
        for base in (os.path.join(self.sys, "block", name), os.path.join(self.sys, "class", "block", name)):
            write(os.path.join(base, "size"), "%d\n" % (size // 512))
            write(os.path.join(base, "ro"), "1\n" if ro else "0\n")
            write(os.path.join(base, "dev"), "43:%d\n" % (number * 32))
            if task is not None:
                write(os.path.join(base, "pid"), "%d\n" % task)

    def server(self, pid, task, number, image, args=None, open_image=True, cwd="/"):
        base = os.path.join(self.proc, str(pid))
        argv = args or ["/usr/bin/qemu-nbd", "--connect=/dev/nbd%d" % number, "--format=qcow2", "--fork",
                        "--pid-file=/run/diskimage-loop/nbd/nbd%d.pid" % number, "--", image]
        write(os.path.join(base, "cmdline"), "\0".join(argv) + "\0")
        write(os.path.join(base, "status"), "Name:\tqemu-nbd\nTgid:\t%d\nPid:\t%d\n" % (pid, pid))
        write(os.path.join(self.proc, str(task), "status"), "Name:\tqemu-nbd\nTgid:\t%d\nPid:\t%d\n" % (pid, task))
        os.makedirs(os.path.join(base, "fd"), exist_ok=True)
        os.symlink(cwd, os.path.join(base, "cwd"))
        if open_image:
            os.symlink(os.path.join(cwd, image), os.path.join(base, "fd", "9"))


def test_free_numbers_lowest_first_skipping_busy_and_tried(tmp_path):
    box = Machine(tmp_path)
    box.device(0, task=101, size=1 << 20)  # connected
    box.device(1)  # free
    box.device(2, size=1 << 20)  # being set up by another client: size before task
    box.device(3)
    box.device(4)
    numbers = nbd.numbers(box.sys)
    assert numbers == [0, 1, 2, 3, 4]

    def task(number):
        return nbd.task_of(number, box.sys)

    def size(number):
        return nbd.size_bytes(number, box.sys)

    assert server.free_numbers(numbers, task, size) == [1, 3, 4]
    assert server.free_numbers(numbers, task, size, skip=[1]) == [3, 4]
    assert server.free_numbers(numbers, task, size, skip=[1, 3, 4]) == []


def test_numbers_ignores_partitions_and_other_disks(tmp_path):
    box = Machine(tmp_path)
    box.device(10)
    box.device(2)
    os.makedirs(os.path.join(box.sys, "block", "loop0"))
    os.makedirs(os.path.join(box.sys, "block", "nbd2p1"))
    assert nbd.numbers(box.sys) == [2, 10]
    assert nbd.parse_name("nbd2p1") is None and nbd.parse_name("nbd12") == 12


def test_connection_is_matched_by_identity(tmp_path):
    box = Machine(tmp_path)
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"QFI\xfb")
    box.device(0, task=501, size=8 << 20, ro=True)
    box.server(500, 501, 0, str(image))
    found = server.connection(0, box.sys, box.proc)
    assert (found.pid, found.image, found.read_only, found.size) == (500, str(image), True, 8 << 20)
    assert found.identity == server.identity(str(image))
    assert [c.number for c in server.serving(server.identity(str(image)), box.sys, box.proc)] == [0]


def test_relative_image_path_resolves_in_the_servers_cwd(tmp_path):
    box = Machine(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    (images / "disk.vmdk").write_bytes(b"KDMV")
    box.device(1, task=601, size=1 << 20)
    args = ["qemu-nbd", "-c", "/dev/nbd1", "disk.vmdk"]
    box.server(600, 601, 1, "disk.vmdk", args=args, cwd=str(images))
    assert server.connection(1, box.sys, box.proc).image == str(images / "disk.vmdk")


def test_a_server_that_does_not_hold_the_image_is_no_match(tmp_path):
    box = Machine(tmp_path)
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"QFI\xfb")
    box.device(0, task=701, size=1 << 20)
    box.server(700, 701, 0, str(image), open_image=False)  # the file was replaced under its name
    assert server.connection(0, box.sys, box.proc) is None


def test_another_client_is_no_match(tmp_path):
    box = Machine(tmp_path)
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0")
    box.device(0, task=801, size=1 << 20)
    box.server(800, 801, 0, str(image), args=["nbd-client", "localhost", "10809", "/dev/nbd0", str(image)])
    assert server.connection(0, box.sys, box.proc) is None


def test_started_with_finds_the_server_by_its_pid_file_path(tmp_path):
    box = Machine(tmp_path)
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"QFI\xfb")
    box.server(900, 900, 3, str(image))
    pid_path = "/run/diskimage-loop/nbd/nbd3.pid"
    assert server.started_with(pid_path, 3, box.proc) == [900]
    assert server.started_with(pid_path, 4, box.proc) == []
    assert server.started_with("/run/other.pid", 3, box.proc) == []
    assert server.is_server(900, 3, box.proc) and not server.is_server(900, 4, box.proc)


def test_records_round_trip(tmp_path):
    run_dir = str(tmp_path / "run")
    connect._write_record(5, {"owner": "image_mount", "identity": [1, 2]}, run_dir)
    assert connect.read_record(5, run_dir)["owner"] == "image_mount"
    assert sorted(connect.records(run_dir)) == [5]
    connect.forget(5, run_dir)
    assert connect.records(run_dir) == {}

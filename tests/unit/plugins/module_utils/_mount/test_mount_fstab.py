# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_fstab: the fstab line mount(8) acts on by itself, and which entries refer to a source."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import fstab as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._mount.options import requested_options
from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import Selection
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.mountinfo import FstabEntry, parse_fstab_line
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import plan_layout

MiB = 1 << 20


class FakeSource(object):
    def __init__(self, path, is_block=False):
        self.path, self.is_block = path, is_block


def selection(path, start=None, size=None, is_block=False):
    part = None
    if start is not None:
        part = plan_layout({"label": "gpt", "partitions": [{"start": start, "size": size}]}, 256 * MiB).partition(1)
    return Selection(FakeSource(path, is_block), None, partition=part)


@pytest.mark.parametrize("sel,opts,fstype,line", [
    (selection("/srv/raw.img"), None, "ext4", "/srv/raw.img /mnt/x ext4 loop 0 0"),
    (selection("/srv/raw.img"), "noatime", "ext4", "/srv/raw.img /mnt/x ext4 loop,noatime 0 0"),
    (selection("/srv/disk.img", MiB, 64 * MiB), None, "ext4",
     "/srv/disk.img /mnt/x ext4 loop,offset=1048576,sizelimit=67108864 0 0"),
    (selection("/srv/disk.img", MiB, 64 * MiB), "nodev", "squashfs",
     "/srv/disk.img /mnt/x squashfs loop,offset=1048576,sizelimit=67108864,ro,nodev 0 0"),
    (selection("/srv/my disk.img"), "defaults", "ext4", "/srv/my\\040disk.img /mnt/x ext4 loop 0 0"),
    (selection("/dev/sdb1", is_block=True), None, "ext4", "/dev/sdb1 /mnt/x ext4 defaults 0 0"),
    (selection("/dev/sdb1", is_block=True), "noatime", "xfs", "/dev/sdb1 /mnt/x xfs noatime 0 0"),
    (selection("/dev/sdb", MiB, 64 * MiB, is_block=True), None, "ext4",
     "/dev/sdb /mnt/x ext4 loop,offset=1048576,sizelimit=67108864 0 0"),
])
def test_fstab_lines(sel, opts, fstype, line):
    entry = ms.fstab_entry(sel, "/mnt/x", fstype, requested_options(opts, False, fstype))
    assert entry.render() == line
    assert parse_fstab_line(line) == entry          # reads back the same


def test_fstab_line_of_a_read_only_image():
    options = requested_options(None, True, "ext4")
    assert ms.fstab_entry(selection("/srv/raw.img"), "/mnt/x", "ext4", options).render() == \
        "/srv/raw.img /mnt/x ext4 loop,ro 0 0"


def test_entry_refers_to(tmp_path):
    image = str(tmp_path / "disk.img")
    open(image, "wb").close()
    os.symlink(image, str(tmp_path / "link.img"))
    entry = FstabEntry(image, "/mnt/x", "ext4", "loop,offset=1048576,sizelimit=4096")
    assert ms.entry_refers_to(entry, image, 1048576)
    assert ms.entry_refers_to(entry, image, None)
    assert not ms.entry_refers_to(entry, image, 0)
    assert ms.entry_refers_to(FstabEntry(str(tmp_path / "link.img"), "/mnt/x", "ext4", "loop"), image, 0)
    assert not ms.entry_refers_to(FstabEntry("/elsewhere.img", "/mnt/x", "ext4", "loop"), image, 0)
    assert ms.entry_refers_to(FstabEntry("/gone.img", "/mnt/x", "ext4", "loop"), "/gone.img", None)


class FakePlan(object):
    """What plan_fstab fills in and acts on."""

    def __init__(self, path):
        self.target = type("T", (), {"path": path})()
        self.created = {"fstab_entry": False}
        self.steps, self.undo = [], []
        self.fstab = self.fstab_line_before = self.fstab_line_after = None

    def add(self, description, action):
        self.steps.append((description, action))


def test_absent_with_a_source_keeps_an_entry_of_something_else(tmp_path):
    fstab = str(tmp_path / "fstab")
    with open(fstab, "w") as handle:
        handle.write("/dev/sdz1 /mnt/x ext4 defaults 0 2\n")
    with pytest.raises(DiskImageError, match="has an entry for /mnt/x that mounts something else: /dev/sdz1"):
        ms.plan_fstab_absent(FakePlan("/mnt/x"), fstab, "/srv/a.img", None)


def test_absent_by_path_alone_removes_whatever_entry_is_there(tmp_path):
    fstab = str(tmp_path / "fstab")
    with open(fstab, "w") as handle:
        handle.write("# kept\n/dev/sdz1 /mnt/x ext4 defaults 0 2\n/dev/sdz2 /mnt/y ext4 defaults 0 2\n")
    plan = FakePlan("/mnt/x")
    ms.plan_fstab_absent(plan, fstab, None, None)
    assert plan.fstab_line_before == "/dev/sdz1 /mnt/x ext4 defaults 0 2" and plan.fstab_line_after is None
    assert [d for d, _a in plan.steps] == ["remove the entry for /mnt/x from %s" % fstab]
    plan.steps[0][1]()
    with open(fstab) as handle:
        assert handle.read() == "# kept\n/dev/sdz2 /mnt/y ext4 defaults 0 2\n"
    plan.undo[0][1]()                                # the undo puts the file back
    with open(fstab) as handle:
        assert "/dev/sdz1 /mnt/x" in handle.read()

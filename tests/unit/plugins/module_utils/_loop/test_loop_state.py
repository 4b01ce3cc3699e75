# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of loop_state with the kernel side replaced by a recording fake.

The real kernel paths are covered in tests/kernel and the integration targets;
here every branch of the planning logic runs without root.
"""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state, loopdev
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1 << 20


class FakeKernel(object):
    def __init__(self):
        self.devices = {}
        self.calls = []
        self.busy = {}
        self.users = {}          # device -> what holds it open (loopdev.users)
        self.free = (0, True)    # loopdev.next_free
        self.release_on_autoclear = False

    def add(self, number, path, identity, **values):
        status = dict(device="/dev/loop%d" % number, name="loop%d" % number, number=number, major=7,
                      minor=number, backing_file=path, backing_file_deleted=False,
                      backing_device=identity[0], backing_inode=identity[1], offset=0, sizelimit=0,
                      size=64 * MiB, sector_size=512, read_only=False, autoclear=False,
                      partscan=False, direct_io=False)
        status.update(values)
        self.devices[number] = loopdev.LoopStatus(**status)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    with open(str(path), "wb") as handle:
        handle.truncate(64 * MiB)
    return str(path)


@pytest.fixture
def kernel(monkeypatch, image):
    fake = FakeKernel()
    identity = loopdev.file_identity(image)
    fake.identity = identity

    def status(device):
        number = device if isinstance(device, int) else loopdev.parse_device(device)
        return fake.devices.get(number)

    def find_associated(path, offset=None):
        ident = loopdev.file_identity(path)
        return [d for _n, d in sorted(fake.devices.items())
                if (d.backing_device, d.backing_inode) == ident and (offset is None or d.offset == offset)]

    def record(name):
        def call(*args, **kwargs):
            fake.calls.append((name, args, kwargs))
            if name == "set_autoclear" and args[1] and fake.release_on_autoclear:
                # the kernel's view when the last user let go as autoclear was set
                fake.devices.pop(loopdev.parse_device(args[0]), None)
            return "detached" if name == "detach" else None
        return call

    monkeypatch.setattr(loopdev, "status", status)
    monkeypatch.setattr(loopdev, "find_associated", find_associated)
    monkeypatch.setattr(loopdev, "check_loop_device", loopdev.parse_device)
    for name in ("attach", "detach", "set_partscan", "set_direct_io", "set_sector_size",
                 "set_autoclear", "refresh_capacity"):
        monkeypatch.setattr(loopdev, name, record(name))
    monkeypatch.setattr(loopdev.blockdev, "busy_reasons", lambda name, dev_path=None: fake.busy.get(name, []))
    monkeypatch.setattr(loopdev, "users", lambda device: fake.users.get(device, []))
    monkeypatch.setattr(loopdev, "next_free", lambda root=None: fake.free)
    monkeypatch.setattr(loopdev, "predicted_devno", lambda number, root=None: (7, number))
    return fake


def test_present_reuses_a_matching_attachment(kernel, image):
    kernel.add(3, image, kernel.identity)
    plan = loop_state.plan_present(image)
    assert not plan.changed
    assert plan.device == "/dev/loop3"
    assert plan.before == plan.after


def test_present_ignores_attachments_with_other_geometry(kernel, image):
    kernel.add(3, image, kernel.identity, offset=MiB)
    kernel.add(4, image, kernel.identity, read_only=True)
    plan = loop_state.plan_present(image)
    assert plan.changed and plan.created
    assert plan.descriptions() == ["attach %s" % image]
    assert plan.after[0]["size"] == 64 * MiB


def test_check_mode_predicts_without_acting(kernel, image):
    plan = loop_state.plan_present(image, offset=MiB, sizelimit=8 * MiB, sector_size=4096, partscan=True)
    assert kernel.calls == []  # planning never touches the kernel
    assert plan.after[0]["size"] == 8 * MiB
    assert plan.after[0]["sector_size"] == 4096 and plan.after[0]["partscan"] is True


def test_check_mode_prediction_has_every_field_and_the_free_device(kernel, image):
    kernel.free = (6, True)
    plan = loop_state.plan_present(image, offset=MiB)
    predicted = plan.after[0]
    assert kernel.calls == []
    assert plan.device == "/dev/loop6"
    assert sorted(predicted) == sorted(loopdev.LoopStatus.FIELDS)
    assert [key for key, value in predicted.items() if value is None] == []
    assert predicted == dict(
        device="/dev/loop6", name="loop6", number=6, major=7, minor=6, backing_file=image,
        backing_file_deleted=False, backing_device=kernel.identity[0], backing_inode=kernel.identity[1],
        offset=MiB, sizelimit=0, size=63 * MiB, sector_size=512, read_only=False, autoclear=False,
        partscan=False, direct_io=False)
    assert not plan.released


def test_check_mode_prediction_of_a_device_the_kernel_would_create(kernel, image):
    kernel.free = (8, False)
    assert loop_state.plan_present(image).device == "/dev/loop8"


def test_check_mode_prediction_of_a_named_device(kernel, image):
    kernel.free = (0, True)
    plan = loop_state.plan_present(image, device="loop242", read_only=True)
    assert plan.device == "/dev/loop242"
    assert plan.after[0]["name"] == "loop242" and plan.after[0]["number"] == 242
    assert plan.after[0]["read_only"] is True


def test_check_mode_reports_the_real_path_of_a_symlink(kernel, image, tmp_path):
    link = tmp_path / "link.img"
    link.symlink_to(image)
    plan = loop_state.plan_present(str(link))
    assert plan.after[0]["backing_file"] == os.path.realpath(image)
    assert (plan.after[0]["backing_device"], plan.after[0]["backing_inode"]) == kernel.identity
    assert plan.descriptions() == ["attach %s" % link]  # the request still names what was asked


def test_new_autoclear_attachment_released_at_once(kernel, image, monkeypatch):
    plan = loop_state.plan_present(image, autoclear=True)
    assert plan.released  # predicted: nothing can hold a device attached just now

    def attach(path, device=None, **options):
        kernel.calls.append(("attach", (path,), options))
        return loopdev.LoopStatus(**dict(plan.after[0], device="/dev/loop4", name="loop4", number=4))

    monkeypatch.setattr(loopdev, "attach", attach)
    plan.apply()
    assert plan.released and plan.device == "/dev/loop4"
    assert plan.warnings == [loop_state._released_warning("/dev/loop4")]
    assert "/dev/loop4 was released at once" in plan.warnings[0]
    assert plan.after[0]["device"] == "/dev/loop4" and plan.after[0]["autoclear"] is True


def test_new_autoclear_attachment_that_stays(kernel, image, monkeypatch):
    plan = loop_state.plan_present(image, autoclear=True)

    def attach(path, device=None, **options):
        status = loopdev.LoopStatus(**dict(plan.after[0], device="/dev/loop4", name="loop4", number=4))
        kernel.devices[4] = status  # someone held it: still there
        return status

    monkeypatch.setattr(loopdev, "attach", attach)
    plan.apply()
    assert not plan.released and plan.warnings == []


def test_autoclear_on_an_attachment_nothing_holds_is_refused(kernel, image):
    kernel.add(2, image, kernel.identity)
    with pytest.raises(DiskImageError) as info:
        loop_state.plan_present(image, autoclear=True)
    message = str(info.value)
    assert "refusing to set autoclear on /dev/loop2: nothing holds it open" in message
    assert "as soon as its last user closes it" in message
    assert "state: absent" in message and "omit autoclear" in message
    assert kernel.calls == []
    # turning it off, or leaving it as it is, needs no holder
    kernel.add(3, image, kernel.identity, offset=MiB, autoclear=True)
    assert loop_state.plan_present(image, offset=MiB, autoclear=False).descriptions() == [
        "set autoclear=False on /dev/loop3"]
    assert not loop_state.plan_present(image, offset=MiB, autoclear=True).changed


def test_autoclear_on_a_held_attachment_is_set_last(kernel, image):
    kernel.add(2, image, kernel.identity)
    kernel.users["/dev/loop2"] = ["mounted at /mnt/x"]
    plan = loop_state.plan_present(image, autoclear=True, sector_size=4096)
    assert plan.descriptions() == ["set sector_size=4096 on /dev/loop2", "set autoclear=True on /dev/loop2"]
    assert plan.after[0]["autoclear"] is True and not plan.released
    plan.apply()
    assert [c[0] for c in kernel.calls] == ["set_sector_size", "set_autoclear"]
    assert plan.warnings == [] and not plan.released


def test_autoclear_when_the_last_holder_lets_go_meanwhile_says_so(kernel, image):
    kernel.add(2, image, kernel.identity)
    kernel.users["/dev/loop2"] = ["open by 42 (sleep)"]
    plan = loop_state.plan_present(image, autoclear=True)
    kernel.release_on_autoclear = True
    plan.apply()
    assert plan.released
    assert plan.warnings == [loop_state._released_warning("/dev/loop2")]


def test_settable_properties_change_in_place(kernel, image):
    kernel.add(2, image, kernel.identity)
    plan = loop_state.plan_present(image, partscan=True, direct_io=True, sector_size=4096, autoclear=False)
    assert plan.device == "/dev/loop2" and not plan.created
    assert plan.descriptions() == [
        "set partscan=True on /dev/loop2", "set direct_io=True on /dev/loop2",
        "set sector_size=4096 on /dev/loop2"]
    plan.apply()
    assert [c[0] for c in kernel.calls] == ["set_partscan", "set_direct_io", "set_sector_size"]
    assert plan.after[0]["partscan"] and plan.after[0]["direct_io"] and plan.after[0]["sector_size"] == 4096


def test_partscan_cannot_be_turned_off(kernel, image):
    kernel.add(2, image, kernel.identity, partscan=True)
    with pytest.raises(DiskImageError, match="cannot turn it off"):
        loop_state.plan_present(image, partscan=False)


def test_resize_only_when_the_size_differs(kernel, image):
    kernel.add(2, image, kernel.identity)
    assert not loop_state.plan_present(image, resize=True).changed
    with open(image, "ab") as handle:
        handle.truncate(96 * MiB)
    plan = loop_state.plan_present(image, resize=True)
    assert plan.descriptions() == ["refresh capacity of /dev/loop2 to %d bytes" % (96 * MiB)]
    assert plan.after[0]["size"] == 96 * MiB


def test_named_device_holding_another_file_is_refused(kernel, image, tmp_path):
    kernel.add(5, "/other.img", ("8:1", 99))
    with pytest.raises(DiskImageError, match="already attached to /other.img"):
        loop_state.plan_present(image, device="/dev/loop5")


def test_named_device_with_other_geometry_is_refused(kernel, image):
    kernel.add(5, image, kernel.identity, offset=MiB)
    with pytest.raises(DiskImageError, match="offset 1048576 and sizelimit 0, not 0 and 0"):
        loop_state.plan_present(image, device="/dev/loop5")
    with pytest.raises(DiskImageError, match="cannot change that in place"):
        loop_state.plan_present(image, device="/dev/loop5", offset=MiB, read_only=True)


def test_same_image_on_a_second_named_device(kernel, image):
    kernel.add(5, image, kernel.identity)
    plan = loop_state.plan_present(image, device="/dev/loop6")
    assert plan.created and plan.device == "/dev/loop6"


def test_absent_by_file_detaches_every_device_of_the_file(kernel, image):
    kernel.add(1, image, kernel.identity)
    kernel.add(2, image, kernel.identity, offset=MiB)
    kernel.add(3, "/other.img", ("8:1", 5))
    plan = loop_state.plan_absent(image)
    assert plan.descriptions() == ["detach /dev/loop1", "detach /dev/loop2"]
    assert loop_state.plan_absent(image, offset=MiB).descriptions() == ["detach /dev/loop2"]


def test_absent_refuses_a_device_of_another_file(kernel, image):
    kernel.add(3, "/other.img", ("8:1", 5))
    with pytest.raises(DiskImageError, match="refusing to detach"):
        loop_state.plan_absent(image, device="/dev/loop3")


def test_absent_refuses_busy_devices_before_detaching_any(kernel, image):
    kernel.add(1, image, kernel.identity)
    kernel.add(2, image, kernel.identity, offset=MiB)
    kernel.busy["loop2"] = ["mounted at /mnt/x"]
    with pytest.raises(DiskImageError, match="/dev/loop2 is busy: mounted at /mnt/x"):
        loop_state.plan_absent(image)
    assert kernel.calls == []
    plan = loop_state.plan_absent(image, force=True)
    assert len(plan.steps) == 2


def test_absent_is_a_no_op_for_missing_files_and_unbound_devices(kernel, tmp_path):
    assert not loop_state.plan_absent(str(tmp_path / "nope.img")).changed
    assert not loop_state.plan_absent(device="/dev/loop9").changed


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(offset=64 * MiB), "at or past the end"),
    (dict(offset=100), "not a multiple of the 512-byte sector size"),
    (dict(offset=512, sector_size=4096), "not a multiple of the 4096-byte"),
    (dict(sizelimit=1000), "Use 512 or 1024"),
    (dict(offset=MiB, sizelimit=64 * MiB), "reaches past the end"),
    (dict(offset=-512), "must not be negative"),
    (dict(sector_size=3000), "not supported"),
])
def test_bad_geometry_is_refused_before_anything(kernel, image, kwargs, fragment):
    with pytest.raises(DiskImageError, match=fragment):
        loop_state.plan_present(image, **kwargs)
    assert kernel.calls == []


def test_missing_file_and_directory(kernel, tmp_path):
    with pytest.raises(DiskImageError, match="does not exist.*Create it first"):
        loop_state.plan_present(str(tmp_path / "missing.img"))
    with pytest.raises(DiskImageError, match="is a directory"):
        loop_state.plan_present(str(tmp_path))


@pytest.mark.parametrize("name", ["/dev/sda", "loopy", "/dev/loop", "/dev/mapper/loop0p1", "../loop1"])
def test_device_names_that_are_not_loop_devices(name):
    with pytest.raises(DiskImageError, match="not a loop device name"):
        loopdev.parse_device(name)

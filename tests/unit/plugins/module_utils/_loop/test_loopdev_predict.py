# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What loopdev works out without the kernel acting: the free device a check-mode
attach would take (read from sysfs, nothing created), the status it predicts, the
status of an autoclear attachment the kernel released at once, and the refusal of
paths no loop device can be attached to. No root needed."""
import errno
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1 << 20


def _write(root, rel, text):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text + "\n")


def _loop(root, number, bound, minor=None):
    _write(root, "block/loop%d/dev" % number, "7:%d" % (number if minor is None else minor))
    if bound:
        _write(root, "block/loop%d/loop/backing_file" % number, "/img/%d.img" % number)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    with open(str(path), "wb") as handle:
        handle.truncate(16 * MiB)
    return str(path)


# ---------------------------------------------------------------- next_free

def test_next_free_is_the_lowest_unbound_existing_device(tmp_path):
    for number, bound in ((0, True), (1, False), (2, True), (3, False)):
        _loop(tmp_path, number, bound)
    assert loopdev.next_free(str(tmp_path)) == (1, True)
    assert loopdev.find_free(str(tmp_path)) == 1


def test_next_free_when_every_device_is_bound_is_the_lowest_missing_number(tmp_path):
    for number in (0, 1, 3):
        _loop(tmp_path, number, True)
    assert loopdev.next_free(str(tmp_path)) == (2, False)
    assert loopdev.find_free(str(tmp_path)) is None


def test_next_free_with_no_loop_device_at_all(tmp_path):
    os.makedirs(str(tmp_path / "block"))
    assert loopdev.next_free(str(tmp_path)) == (0, False)


def test_next_free_creates_nothing(tmp_path):
    _loop(tmp_path, 0, True)
    before = sorted(os.listdir(str(tmp_path / "block")))
    loopdev.next_free(str(tmp_path))
    assert sorted(os.listdir(str(tmp_path / "block"))) == before


# ---------------------------------------------------------------- predicted_devno

def test_predicted_devno_of_an_existing_device_comes_from_sysfs(tmp_path):
    _loop(tmp_path, 5, False, minor=80)
    assert loopdev.predicted_devno(5, str(tmp_path)) == (7, 80)


@pytest.mark.parametrize("max_part,minor", [(None, 9), ("0", 9), ("1", 18), ("7", 72), ("15", 144), ("16", 288)])
def test_predicted_devno_of_a_device_to_be_created_follows_max_part(tmp_path, max_part, minor):
    os.makedirs(str(tmp_path / "block"))
    if max_part is not None:
        _write(tmp_path, "module/loop/parameters/max_part", max_part)
    assert loopdev.predicted_devno(9, str(tmp_path)) == (7, minor)


# ---------------------------------------------------------------- predicted_status

def test_predicted_status_has_every_field(tmp_path, image):
    _loop(tmp_path, 4, False)
    request = loopdev.AttachRequest(image, offset=MiB, sizelimit=4 * MiB, read_only=True, partscan=True,
                                    sector_size=4096, autoclear=True).validate()
    status = loopdev.predicted_status(request, 4, ("254:1", 1234), str(tmp_path)).to_dict()
    assert status == dict(
        device="/dev/loop4", name="loop4", number=4, major=7, minor=4, backing_file=os.path.realpath(image),
        backing_file_deleted=False, backing_inode=1234, backing_device="254:1", offset=MiB,
        sizelimit=4 * MiB, size=4 * MiB, sector_size=4096, read_only=True, autoclear=True,
        partscan=True, direct_io=False)


def test_predicted_status_resolves_symlinks_as_the_kernel_does(tmp_path, image):
    link = tmp_path / "link.img"
    link.symlink_to(image)
    request = loopdev.AttachRequest(str(link)).validate()
    status = loopdev.predicted_status(request, 0, loopdev.file_identity(str(link)), str(tmp_path))
    assert status.backing_file == os.path.realpath(image)
    assert (status.backing_device, status.backing_inode) == loopdev.file_identity(image)
    assert status.size == 16 * MiB and status.sector_size == 512


def test_same_attachment():
    one = loopdev.LoopStatus(device="/dev/loop1", backing_device="8:1", backing_inode=5, offset=0, sizelimit=0)
    assert loopdev.same_attachment(one, loopdev.LoopStatus(**one.to_dict()))
    assert not loopdev.same_attachment(one, None)
    assert not loopdev.same_attachment(None, one)
    for change in (dict(device="/dev/loop2"), dict(backing_inode=6), dict(offset=MiB)):
        assert not loopdev.same_attachment(one, loopdev.LoopStatus(**dict(one.to_dict(), **change)))


# ---------------------------------------------------------------- attach with autoclear, released at once

@pytest.fixture
def no_kernel(monkeypatch):
    """attach() with the kernel side replaced: the device is configured, then gone."""
    seen = {"status": None}
    monkeypatch.setattr(loopdev, "predicted_devno", lambda number, root=None: (7, number))
    monkeypatch.setattr(loopdev, "status", lambda device: seen["status"])
    monkeypatch.setattr(loopdev, "check_loop_device", loopdev.parse_device)
    monkeypatch.setattr(loopdev, "_ensure_exists", lambda number: None)
    return seen


def test_autoclear_attach_released_at_once_reports_what_was_read_while_held(monkeypatch, no_kernel, image):
    held = loopdev.LoopStatus(device="/dev/loop3", name="loop3", number=3, major=7, minor=3,
                              backing_file=image, backing_file_deleted=False, backing_inode=1,
                              backing_device="8:1", offset=0, sizelimit=0, size=16 * MiB, sector_size=512,
                              read_only=False, autoclear=True, partscan=False, direct_io=False)
    monkeypatch.setattr(loopdev, "_attach_free", lambda request, fd: (3, held))
    assert loopdev.attach(image, autoclear=True) is held


@pytest.mark.parametrize("device", [None, "/dev/loop3"])
def test_autoclear_attach_released_at_once_without_a_snapshot_is_predicted_in_full(
        monkeypatch, no_kernel, image, device):
    monkeypatch.setattr(loopdev, "_attach_free", lambda request, fd: (3, None))
    monkeypatch.setattr(loopdev, "_attach_to", lambda number, request, fd: None)
    status = loopdev.attach(image, device=device, autoclear=True, offset=MiB).to_dict()
    assert [key for key, value in status.items() if value is None] == []
    assert (status["device"], status["name"], status["number"], status["major"], status["minor"]) == (
        "/dev/loop3", "loop3", 3, 7, 3)
    assert (status["backing_device"], status["backing_inode"]) == loopdev.file_identity(image)
    assert status["backing_file"] == os.path.realpath(image)
    assert (status["offset"], status["size"], status["autoclear"]) == (MiB, 15 * MiB, True)


def test_autoclear_attach_whose_number_another_process_took_reports_ours(monkeypatch, no_kernel, image):
    monkeypatch.setattr(loopdev, "_attach_free", lambda request, fd: (3, None))
    no_kernel["status"] = loopdev.LoopStatus(device="/dev/loop3", backing_device="8:1", backing_inode=77,
                                             offset=0, sizelimit=0, backing_file="/other.img")
    status = loopdev.attach(image, autoclear=True)
    assert status.backing_file == os.path.realpath(image)
    assert (status.backing_device, status.backing_inode) == loopdev.file_identity(image)


# ---------------------------------------------------------------- check_lookup_file

def test_lookup_of_a_regular_file_is_allowed(image):
    assert loopdev.check_lookup_file(image) == image


def test_lookup_of_a_missing_file_is_refused(tmp_path):
    with pytest.raises(DiskImageError) as info:
        loopdev.check_lookup_file(str(tmp_path / "missing.img"))
    assert info.value.errno == errno.ENOENT
    assert str(tmp_path / "missing.img") in str(info.value)
    assert "No such file or directory" in str(info.value)
    assert "check the path" in str(info.value)


def test_lookup_of_a_directory_is_refused(tmp_path):
    with pytest.raises(DiskImageError, match="is a directory, not an image file") as info:
        loopdev.check_lookup_file(str(tmp_path))
    assert info.value.errno == errno.EISDIR


def test_lookup_of_a_character_device_is_refused():
    with pytest.raises(DiskImageError, match="/dev/null is neither a regular file nor a block device"):
        loopdev.check_lookup_file("/dev/null")


# --- AttachRequest.validate: every refusal names the fix ------------------------------

def test_attach_request_of_an_empty_file_says_so(tmp_path):
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    with pytest.raises(DiskImageError, match="is empty \\(0 bytes\\), so there is nothing to attach") as info:
        loopdev.AttachRequest(str(empty)).validate()
    assert "Give the image its size first" in str(info.value)


def test_attach_request_of_a_directory_names_the_fix(tmp_path):
    with pytest.raises(DiskImageError, match="is a directory, not an image file. Name the image file itself"):
        loopdev.AttachRequest(str(tmp_path)).validate()


def test_attach_request_of_less_than_a_sector_names_the_fix(tmp_path):
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"\0" * 100)
    with pytest.raises(DiskImageError, match="less than one 512-byte sector.*grow the image first"):
        loopdev.AttachRequest(str(tiny)).validate()


def test_attach_request_of_a_file_whose_size_cannot_be_read(monkeypatch, image):
    def denied(path):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), path)
    monkeypatch.setattr(loopdev.blockdev, "file_size", denied)
    with pytest.raises(DiskImageError, match="cannot open .* to read its size: Operation not permitted \\(EPERM\\)"):
        loopdev.AttachRequest(image).validate()

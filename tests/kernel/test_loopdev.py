# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The loop core against this host's kernel, with util-linux as the oracle."""
import errno
import fcntl
import multiprocessing
import os
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state, loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._loop import query as loop_query
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

from .conftest import MiB, losetup_json

pytestmark = pytest.mark.root


def oracle(device):
    """What losetup --list --json says about one device."""
    for entry in losetup_json():
        if entry["name"] == device:
            return entry
    return None


def test_attach_reads_back_identically_in_losetup(make_image):
    image = make_image()
    status = loopdev.attach(image, offset=MiB, sizelimit=8 * MiB, partscan=True, sector_size=4096)
    try:
        seen = oracle(status.device)
        assert seen is not None
        assert seen["back-file"] == image
        assert int(seen["offset"]) == MiB and int(seen["sizelimit"]) == 8 * MiB
        assert int(seen["log-sec"]) == 4096
        assert seen["partscan"] in (True, "1", 1)
        assert seen["ro"] in (False, "0", 0) and seen["autoclear"] in (False, "0", 0)
        assert status.size == 8 * MiB
        assert subprocess.run(["blockdev", "--getsize64", status.device], capture_output=True,
                              text=True, check=True).stdout.strip() == str(8 * MiB)
    finally:
        assert loopdev.detach(status.device) == "detached"
    assert oracle(status.device) is None or oracle(status.device)["back-file"] != image


def test_read_only_attachment_refuses_writes(make_image):
    image = make_image()
    status = loopdev.attach(image, read_only=True)
    try:
        assert status.read_only and oracle(status.device)["ro"] in (True, "1", 1)
        try:
            fd = os.open(status.device, os.O_WRONLY)
        except OSError as exc:  # some kernels refuse the open itself
            assert exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        else:
            try:
                with pytest.raises(OSError) as info:
                    os.write(fd, b"x" * 512)
                assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            finally:
                os.close(fd)
    finally:
        loopdev.detach(status.device)


def test_direct_io_agrees_with_the_backing_fd(make_image):
    image = make_image()
    try:
        status = loopdev.attach(image, direct_io=True)
    except DiskImageError as exc:
        pytest.skip("backing filesystem has no O_DIRECT: %s" % exc)
    try:
        assert status.direct_io
        assert oracle(status.device)["dio"] in (True, "1", 1)
        assert not loopdev.set_direct_io(status.device, False).direct_io
    finally:
        loopdev.detach(status.device)


def test_lookup_by_inode_not_by_truncated_name(make_image, workdir):
    # Two files whose paths agree in the first 64 bytes: the kernel's stored
    # names are identical, the inodes are not.
    deep = workdir / ("d" * 70)
    deep.mkdir()
    first = make_image(os.path.join(deep.name, "a.img"))
    second = make_image(os.path.join(deep.name, "b.img"))
    one = loopdev.attach(first)
    two = loopdev.attach(second)
    try:
        assert [d.device for d in loopdev.find_associated(first)] == [one.device]
        assert [d.device for d in loopdev.find_associated(second)] == [two.device]
        assert one.backing_file == first  # sysfs has the full path, not the 64-byte name
    finally:
        loopdev.detach(one.device)
        loopdev.detach(two.device)


def test_associated_with_offset_and_multiple_devices(make_image):
    image = make_image()
    whole = loopdev.attach(image)
    part = loopdev.attach(image, offset=MiB)
    try:
        assert {d.device for d in loopdev.find_associated(image)} == {whole.device, part.device}
        assert [d.device for d in loopdev.find_associated(image, offset=MiB)] == [part.device]
        # losetup -j agrees
        out = subprocess.run(["losetup", "-j", image, "-o", str(MiB)], capture_output=True, text=True,
                             check=True).stdout
        assert out.split(":")[0] == part.device
    finally:
        loopdev.detach(whole.device)
        loopdev.detach(part.device)


def test_device_attached_by_losetup_is_recognized(make_image):
    image = make_image()
    device = subprocess.run(["losetup", "-f", "--show", "-o", str(MiB), image], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        found = loopdev.find_associated(image)
        assert [d.device for d in found] == [device]
        assert found[0].offset == MiB and found[0].backing_file == image
    finally:
        loopdev.detach(device)
    assert loopdev.find_associated(image) == []


def test_capacity_follows_a_grown_file(make_image):
    image = make_image(size=16 * MiB)
    status = loopdev.attach(image)
    try:
        with open(image, "ab") as handle:
            handle.truncate(32 * MiB)
        assert loopdev.status(status.device).size == 16 * MiB
        assert loopdev.expected_capacity(loopdev.status(status.device)) == 32 * MiB
        assert loopdev.refresh_capacity(status.device).size == 32 * MiB
    finally:
        loopdev.detach(status.device)


def test_partscan_on_in_place_and_never_off(make_image):
    image = make_image()
    status = loopdev.attach(image)
    try:
        assert not status.partscan
        assert loopdev.set_partscan(status.device, True).partscan
        with pytest.raises(DiskImageError, match="cannot turn partscan off"):
            loopdev.set_partscan(status.device, False)
        assert loopdev.set_sector_size(status.device, 4096).sector_size == 4096
    finally:
        loopdev.detach(status.device)


def test_autoclear_releases_on_last_close(make_image):
    image = make_image()
    status = loopdev.attach(image, autoclear=True, offset=MiB)
    assert status.autoclear
    assert loopdev.find_associated(image) == []  # nobody held it, so the kernel let go
    # ... and the result still describes the attachment in full
    values = status.to_dict()
    assert [key for key, value in values.items() if value is None] == []
    assert values["name"] == "loop%d" % values["number"] and values["device"] == "/dev/" + values["name"]
    assert values["major"] == 7
    assert (values["backing_device"], values["backing_inode"]) == loopdev.file_identity(image)
    assert values["backing_file"] == image and values["offset"] == MiB and values["size"] == 63 * MiB


def test_prediction_matches_the_real_attachment(make_image, workdir):
    image = make_image()
    link = workdir / "link.img"
    link.symlink_to(image)
    request = loopdev.AttachRequest(str(link), offset=MiB, sizelimit=8 * MiB, partscan=True,
                                    sector_size=4096).validate()
    status = loopdev.attach(str(link), offset=MiB, sizelimit=8 * MiB, partscan=True, sector_size=4096)
    try:
        predicted = loopdev.predicted_status(request, status.number, loopdev.file_identity(str(link)))
        assert predicted.to_dict() == status.to_dict()
        assert status.backing_file == image  # the kernel resolves the symlink
    finally:
        loopdev.detach(status.device)


def test_users_name_what_holds_a_device(make_image):
    image = make_image()
    status = loopdev.attach(image)
    try:
        assert loopdev.users(status.device) == []
        holder = subprocess.Popen(["sleep", "60"], stdin=open(status.device, "rb"))
        try:
            assert loopdev.users(status.device) == ["open by %d (sleep)" % holder.pid]
        finally:
            holder.kill()
            holder.wait()
        assert loopdev.users(status.device) == []
    finally:
        loopdev.detach(status.device)


def test_autoclear_in_place_only_on_a_held_device(make_image):
    image = make_image()
    status = loopdev.attach(image)
    try:
        with pytest.raises(DiskImageError, match="refusing to set autoclear on %s: nothing holds it open"
                           % status.device):
            loop_state.plan_present(image, autoclear=True)
        assert not loopdev.status(status.device).autoclear  # untouched
        holder = subprocess.Popen(["sleep", "60"], stdin=open(status.device, "rb"))
        try:
            plan = loop_state.plan_present(image, autoclear=True).apply()
            assert plan.descriptions() == ["set autoclear=True on %s" % status.device]
            assert not plan.released and plan.warnings == []
            assert loopdev.status(status.device).autoclear
        finally:
            holder.kill()
            holder.wait()
        # the holder's exit was the last close: the kernel let go
        assert loopdev._wait_unbound(status.number)
        assert loopdev.find_associated(image) == []
    finally:
        if loopdev.same_attachment(loopdev.status(status.number), status):
            loopdev.detach(status.device)


def test_named_device_is_created_when_missing_and_its_node_too(make_image):
    image = make_image()
    number = max(sysfs.loop_numbers() + [99]) + 1
    path = loopdev.device_path(number)
    try:
        status = loopdev.attach(image, device=path)
        assert status.device == path and os.path.exists(path)
        loopdev.detach(path)
        # A container's /dev snapshot has no node for new devices: the core makes one.
        os.unlink(path)
        status = loopdev.attach(image, device=path)
        assert os.path.exists(path) and oracle(path)["back-file"] == image
        loopdev.detach(path)
    finally:
        if sysfs.loop_is_bound(number):
            loopdev.detach(path)
        loopdev.remove_device(number)
        if os.path.exists(path) and not sysfs.loop_exists(number):
            os.unlink(path)


def test_named_device_in_use_is_refused(make_image):
    image = make_image()
    other = make_image("other.img")
    status = loopdev.attach(image)
    try:
        with pytest.raises(DiskImageError, match="already in use by %s" % image) as info:
            loopdev.attach(other, device=status.device)
        assert info.value.errno == errno.EBUSY
        assert oracle(status.device)["back-file"] == image  # untouched
    finally:
        loopdev.detach(status.device)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/vda", "/dev/zram0", "/dev/loop-control"])
def test_non_loop_devices_are_refused(device):
    with pytest.raises(DiskImageError):
        loopdev.check_loop_device(device)


def test_a_node_named_like_a_loop_device_but_not_one_is_refused(workdir, monkeypatch):
    # /dev/loopN that is really another device (a stale or hostile node): refused.
    fake = workdir / "dev"
    fake.mkdir()
    os.mknod(str(fake / "loop5"), 0o600 | 0o060000, os.makedev(1, 3))  # 1:3 is /dev/null's number
    monkeypatch.setattr(loop_query, "device_path", lambda n: str(fake / ("loop%d" % n)))
    with pytest.raises(DiskImageError, match="not a block device|not a loop device"):
        loopdev.check_loop_device("/dev/loop5")


def test_busy_detach_names_the_mount_and_keeps_the_device(make_image, workdir):
    image = make_image()
    subprocess.run(["mkfs.ext4", "-q", image], check=True)
    status = loopdev.attach(image)
    target = workdir / "mnt"
    target.mkdir()
    subprocess.run(["mount", status.device, str(target)], check=True)
    try:
        with pytest.raises(DiskImageError, match="busy: mounted at %s" % target) as info:
            loopdev.detach(status.device)
        assert info.value.errno == errno.EBUSY
        assert loopdev.status(status.device) is not None
        # force: the kernel detaches lazily, once the mount is gone
        assert loopdev.detach(status.device, force=True) == "pending"
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert loopdev._wait_unbound(status.number)


def test_busy_detach_names_an_open_process(make_image):
    image = make_image()
    status = loopdev.attach(image)
    holder = subprocess.Popen(["sleep", "60"], stdin=open(status.device, "rb"))
    try:
        with pytest.raises(DiskImageError, match=r"open by %d \(sleep\)" % holder.pid):
            loopdev.detach(status.device)
        # the refused detach put autoclear back as it was
        assert not loopdev.status(status.device).autoclear
    finally:
        holder.kill()
        holder.wait()
        loopdev.detach(status.device)


def _churn(args):
    """One worker: attach and detach its own image repeatedly, checking each time."""
    image, rounds = args
    seen = []
    for _round in range(rounds):
        status = loopdev.attach(image)
        if status.backing_file != image:
            return "got %s backed by %s" % (status.device, status.backing_file)
        seen.append(status.device)
        if loopdev.detach(status.device) != "detached":
            return "could not detach %s" % status.device
    return seen


def test_concurrent_attach_and_detach(make_image):
    images = [make_image("w%d.img" % n, size=4 * MiB) for n in range(10)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(10) as pool:
        results = pool.map(_churn, [(image, 8) for image in images])
    for image, result in zip(images, results):
        assert isinstance(result, list), result
        assert len(result) == 8
        assert loopdev.find_associated(image) == []


def test_attach_held_keeps_the_device_until_its_fd_closes(make_image):
    """attach_held: verified like attach, autoclear, unlocked for udev, and
    released by the kernel on the close of the one descriptor it returns."""
    path = make_image(size=8 * MiB)
    status, fd = loopdev.attach_held(path, read_only=True, partscan=True)
    try:
        seen = oracle(status.device)
        assert seen["back-file"] == path
        assert seen["autoclear"] in (True, "1", 1) and seen["ro"] in (True, "1", 1)
        assert status.autoclear and status.partscan
        other = os.open(status.device, os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if attach_held left its lock
        finally:
            os.close(other)
    finally:
        os.close(fd)
    assert wait_until(lambda: not loopdev.find_associated(path), 5)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Byte layout of the device-mapper ioctl requests and replies (no root needed).

Offsets and sizes are those of linux/dm-ioctl.h on x86-64; the VM tier checks the
same code against a real kernel.
"""

import errno
import os
import struct

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper as dm
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_sizes_and_command_numbers():
    assert dm.DM_IOCTL_SIZE == 312
    assert dm.DM_TARGET_SPEC_SIZE == 40
    assert dm.ioctl_request(dm.DM_VERSION_CMD) == 0xC138FD00
    assert dm.ioctl_request(dm.DM_LIST_DEVICES_CMD) == 0xC138FD02
    assert dm.ioctl_request(dm.DM_DEV_CREATE_CMD) == 0xC138FD03
    assert dm.ioctl_request(dm.DM_DEV_REMOVE_CMD) == 0xC138FD04
    assert dm.ioctl_request(dm.DM_DEV_SUSPEND_CMD) == 0xC138FD06
    assert dm.ioctl_request(dm.DM_DEV_STATUS_CMD) == 0xC138FD07
    assert dm.ioctl_request(dm.DM_TABLE_LOAD_CMD) == 0xC138FD09
    assert dm.ioctl_request(dm.DM_TABLE_STATUS_CMD) == 0xC138FD0C


def test_request_header_offsets():
    buf = dm.pack_request(name="loop0p1", uuid="part1-devnode_7:0_Wh5pYvM",
                          flags=dm.DM_READONLY_FLAG, dev=os.makedev(253, 4), event_nr=9)
    assert len(buf) == 312
    assert struct.unpack_from("=3I", buf, 0) == (4, 0, 0)
    assert struct.unpack_from("=I", buf, 12)[0] == 312  # data_size
    assert struct.unpack_from("=I", buf, 16)[0] == 312  # data_start
    assert struct.unpack_from("=I", buf, 28)[0] == dm.DM_READONLY_FLAG
    assert struct.unpack_from("=I", buf, 32)[0] == 9  # event_nr
    assert struct.unpack_from("=Q", buf, 40)[0] == os.makedev(253, 4)
    assert buf[48:56] == b"loop0p1\0"
    assert buf[176:176 + 26] == b"part1-devnode_7:0_Wh5pYvM\0"


def test_request_with_payload_and_reply_room():
    buf = dm.pack_request(name="x", payload=b"abcdefgh", target_count=1)
    assert len(buf) == 320
    assert buf[312:320] == b"abcdefgh"
    assert struct.unpack_from("=I", buf, 20)[0] == 1  # target_count
    big = dm.pack_request(size=16384)
    assert len(big) == 16384 and struct.unpack_from("=I", big, 12)[0] == 16384


def test_unpack_header_roundtrip():
    buf = dm.pack_request(name="a", uuid="u", flags=dm.DM_ACTIVE_PRESENT_FLAG | dm.DM_READONLY_FLAG,
                          dev=os.makedev(253, 300))
    struct.pack_into("=i", buf, 24, 2)  # open_count as the kernel fills it in
    info = dm.info_from_header(dm.unpack_header(buf))
    assert (info.name, info.uuid, info.major, info.minor, info.open_count) == ("a", "u", 253, 300, 2)
    assert info.read_only and info.live and not info.suspended and not info.inactive_table
    assert info.path == "/dev/mapper/a" and info.kernel_name == "dm-300"


def test_kernel_dev_encoding_matches_os_makedev():
    # huge_encode_dev: minor low byte, major << 8, the rest of the minor << 12
    kernel = (300 & 0xFF) | (253 << 8) | ((300 & ~0xFF) << 12)
    assert dm.encode_dev(253, 300) == kernel
    assert (os.major(kernel), os.minor(kernel)) == (253, 300)


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", "x" * 128])
def test_invalid_names_are_refused(name):
    with pytest.raises(DiskImageError):
        dm.check_name(name)


def test_longest_valid_name_and_uuid():
    dm.check_name("x" * 127)
    dm.pack_request(name="x" * 127, uuid="u" * 128)
    with pytest.raises(DiskImageError, match="too long"):
        dm.pack_request(uuid="u" * 129)


def test_pack_targets_layout():
    payload = dm.pack_targets([(0, 16384, "linear", "7:0 2048"),
                               (16384, 2, "linear", "259:1048575 100000000000")])
    start, length, status, nxt, ttype = struct.unpack_from("=QQiI16s", payload, 0)
    assert (start, length, status, ttype.rstrip(b"\0")) == (0, 16384, 0, b"linear")
    # "7:0 2048\0" is 9 bytes, padded to 16
    assert nxt == 40 + 16
    assert payload[40:56] == b"7:0 2048" + b"\0" * 8
    second = struct.unpack_from("=QQiI16s", payload, nxt)
    assert second[:2] == (16384, 2)
    assert second[3] == 40 + 32  # 25 bytes with the NUL, padded to 32
    assert len(payload) == 56 + 72


@pytest.mark.parametrize("bad", [(0, 0, "linear", "7:0 0"), (0, 8, "", "7:0 0"),
                                 (0, 8, "x" * 16, "7:0 0"), (-1, 8, "linear", "7:0 0")])
def test_pack_targets_refuses_bad_targets(bad):
    with pytest.raises(DiskImageError):
        dm.pack_targets([bad])


def _status_reply(targets, buffer_size=1024):
    """A TABLE_STATUS reply as the kernel writes it: specs in the data area,
    ``next`` counted from the data start."""
    buf = dm.pack_request(name="m", size=buffer_size)
    offset = 0
    data = bytearray()
    for start, length, ttype, params in targets:
        raw = params.encode() + b"\0"
        nxt = dm.align8(offset + 40 + len(raw))
        data += struct.pack("=QQiI16s", start, length, 0, nxt, ttype.encode()) + raw
        data += b"\0" * (nxt - offset - 40 - len(raw))
        offset = nxt
    buf[312:312 + len(data)] = data
    struct.pack_into("=III", buf, 12, 312 + len(data), 312, len(targets))
    return buf


def test_unpack_targets_of_a_status_reply():
    targets = [(0, 16384, "linear", "7:0 2048"), (16384, 8, "zero", "")]
    buf = _status_reply(targets)
    assert dm.unpack_targets(buf, dm.unpack_header(buf)) == [dm.Target(*t) for t in targets]


def _list_reply(entries, with_extras=True, buffer_size=4096):
    """A LIST_DEVICES reply. entries: (name, major, minor, uuid or None)."""
    buf = dm.pack_request(size=buffer_size)
    data = bytearray()
    starts = []
    for name, major, minor, uuid in entries:
        start = len(data)
        starts.append(start)
        data += struct.pack("=QI", os.makedev(major, minor), 0) + name.encode() + b"\0"
        data += b"\0" * (dm.align8(len(data)) - len(data))
        if with_extras:
            flags = dm.DM_NAME_LIST_FLAG_HAS_UUID if uuid else dm.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
            data += struct.pack("=II", 7, flags)
            if uuid:
                data += uuid.encode() + b"\0"
                data += b"\0" * (dm.align8(len(data)) - len(data))
    for index, start in enumerate(starts[:-1]):
        struct.pack_into("=I", data, start + 8, starts[index + 1] - start)
    if not entries:
        data = bytearray(struct.pack("=QI", 0, 0))
        used = 0
    else:
        used = len(data)
    buf[312:312 + len(data)] = data
    struct.pack_into("=II", buf, 12, 312 + used, 312)
    return buf


def test_unpack_device_list_with_uuids():
    entries = [("loop0p1", 253, 0, "part1-devnode_7:0_Wh5pYvM"), ("plain", 253, 1, None),
               ("x" * 127, 253, 300, "u" * 128)]
    buf = _list_reply(entries)
    listed = dm.unpack_device_list(buf, dm.unpack_header(buf))
    assert listed == [dm.ListedDevice("loop0p1", 253, 0, "part1-devnode_7:0_Wh5pYvM"),
                      dm.ListedDevice("plain", 253, 1, ""),
                      dm.ListedDevice("x" * 127, 253, 300, "u" * 128)]


def test_unpack_device_list_of_an_old_kernel_has_no_uuids():
    buf = _list_reply([("a", 253, 0, None), ("bb", 253, 1, None)], with_extras=False)
    listed = dm.unpack_device_list(buf, dm.unpack_header(buf))
    assert listed == [dm.ListedDevice("a", 253, 0, None), dm.ListedDevice("bb", 253, 1, None)]


def test_unpack_empty_device_list():
    buf = _list_reply([])
    assert dm.unpack_device_list(buf, dm.unpack_header(buf)) == []


class FakeControl(object):
    """Stands in for fcntl.ioctl on /dev/mapper/control: answers LIST_DEVICES
    like the kernel, with BUFFER_FULL while the buffer is too small."""

    def __init__(self, entries):
        self.entries = entries
        self.sizes = []

    def ioctl(self, fd, request, buf, mutate):
        assert request == dm.ioctl_request(dm.DM_LIST_DEVICES_CMD) and mutate
        self.sizes.append(len(buf))
        assert struct.unpack_from("=I", buf, 28)[0] & dm.DM_UUID_FLAG
        reply = _list_reply(self.entries, buffer_size=max(len(buf), 1 << 20))
        needed = struct.unpack_from("=I", reply, 12)[0]
        if needed > len(buf):
            struct.pack_into("=I", buf, 28, dm.DM_UUID_FLAG | dm.DM_BUFFER_FULL_FLAG)
            return 0
        buf[:] = reply[:len(buf)]
        struct.pack_into("=I", buf, 28, dm.DM_UUID_FLAG)
        return 0


def _offline_mapper():
    mapper = dm.DeviceMapper.__new__(dm.DeviceMapper)
    mapper._fd = -1
    return mapper


def test_list_devices_grows_the_buffer_on_buffer_full(monkeypatch):
    entries = [("map%03d-%s" % (i, "n" * 90), 253, i, "part%d-devnode_7:0_Wh5pYvM" % i)
               for i in range(40)]
    fake = FakeControl(entries)
    monkeypatch.setattr(dm.fcntl, "ioctl", fake.ioctl)
    listed = _offline_mapper().list_devices(buffer_size=1024)
    assert [d.name for d in listed] == sorted(e[0] for e in entries)
    assert fake.sizes[0] == 1024 and len(fake.sizes) >= 2 and fake.sizes[-1] > 312 + 40 * 100


def test_ioctl_errors_become_disk_image_errors(monkeypatch):
    def refuse(fd, request, buf, mutate):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(dm.fcntl, "ioctl", refuse)
    with pytest.raises(DiskImageError) as caught:
        _offline_mapper().version()
    assert caught.value.errno == errno.EPERM
    assert "VERSION" in str(caught.value) and "root" in str(caught.value)


def _commands(monkeypatch, fail=None):
    """Record the commands sent; ``fail``: (command, errno) to refuse."""
    sent = []

    def ioctl(fd, request, buf, mutate):
        command = [c for c in dm.COMMAND_NAMES if dm.ioctl_request(c) == request][0]
        sent.append((dm.COMMAND_NAMES[command], struct.unpack_from("=I", buf, 28)[0]))
        if fail is not None and command == fail[0]:
            raise OSError(fail[1], os.strerror(fail[1]))
        return 0

    monkeypatch.setattr(dm.fcntl, "ioctl", ioctl)
    return sent


def test_reload_loads_then_resumes(monkeypatch):
    sent = _commands(monkeypatch)
    monkeypatch.setattr(dm.DeviceMapper, "info", lambda self, name: "info of %s" % name)
    info = _offline_mapper().reload("loop0p8", [dm.Target(0, 4096, "linear", "7:0 2048")], read_only=True)
    assert info == "info of loop0p8"
    # the resume carries no suspend flag: it makes the loaded table live
    assert sent == [("TABLE_LOAD", dm.DM_READONLY_FLAG), ("DEV_SUSPEND", 0)]


def test_reload_clears_a_table_that_does_not_go_live(monkeypatch):
    sent = _commands(monkeypatch, fail=(dm.DM_DEV_SUSPEND_CMD, errno.EINVAL))
    with pytest.raises(DiskImageError):
        _offline_mapper().reload("loop0p8", [dm.Target(0, 4096, "linear", "7:0 2048")])
    assert [name for name, _flags in sent] == ["TABLE_LOAD", "DEV_SUSPEND", "TABLE_CLEAR"]


def test_reload_names_a_rejected_table(monkeypatch):
    sent = _commands(monkeypatch, fail=(dm.DM_TABLE_LOAD_CMD, errno.EINVAL))
    with pytest.raises(DiskImageError, match="rejected the new table.*0 4096 linear 7:0 2048") as caught:
        _offline_mapper().reload("loop0p8", [dm.Target(0, 4096, "linear", "7:0 2048")])
    assert caught.value.errno == errno.EINVAL and [name for name, _f in sent] == ["TABLE_LOAD"]


def test_linear_params():
    assert dm.linear_params(7, 0, 2048) == "7:0 2048"
    assert dm.parse_linear_params("7:0 2048") == ((7, 0), 2048)
    assert dm.parse_linear_params("7:0") is None
    assert dm.parse_linear_params("/dev/loop0 2048") is None


def test_a_kernel_without_device_mapper_is_named_with_the_fix(tmp_path):
    # an empty sysfs: no /sys/class/misc/device-mapper, as on a kernel without dm_mod
    with pytest.raises(DiskImageError) as caught:
        dm.DeviceMapper(control=str(tmp_path / "control"), sys_root=str(tmp_path))
    assert caught.value.errno == errno.ENODEV
    assert "modprobe dm_mod" in str(caught.value)
    assert not (tmp_path / "control").exists()


def test_udev_wait_only_where_udev_names_dm_devices(tmp_path):
    control = tmp_path / "control"
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "64-btrfs-dm.rules").write_text("")
    assert not dm.udev_names_dm_devices(str(control), [str(rules)])  # no daemon
    control.write_text("")
    assert not dm.udev_names_dm_devices(str(control), [str(rules), str(tmp_path / "none")])
    (rules / "55-dm.rules").write_text("")
    assert dm.udev_names_dm_devices(str(control), [str(tmp_path / "none"), str(rules)])

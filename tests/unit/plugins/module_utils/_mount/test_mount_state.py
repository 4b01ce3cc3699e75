# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_state: the plan for each state, as far as it needs no root.

Taking a mount down by path alone is decided on a mount table given here (the
kernel tier does it for real): what is unmounted, what is refused (the mount
points and kernel filesystems the system needs, a type other than fstype), and
what the result says.
"""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as ms
from ansible_collections.diskimage.loop.plugins.module_utils._mount import teardown as mount_teardown
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


@pytest.mark.parametrize("state,selector,fragment", [
    ("mounted", None, "state mounted needs src"),
    ("present", None, "state present needs src"),
    ("unmounted", ("partition", 2), "partition selects a partition of src, and no src is given"),
    ("absent", ("label", "x"), "label selects a partition of src, and no src is given"),
    ("gone", None, "state 'gone' is not one of mounted, unmounted, present, absent"),
])
def test_what_path_alone_cannot_do(tmp_path, state, selector, fragment):
    with pytest.raises(DiskImageError, match=fragment):
        ms.plan(state, None, str(tmp_path / "mnt"), selector=selector)


# --- by path alone, on a mount table given here -------------------------------

def line(mount_id, parent_id, devno, mount_point, fstype, source, root="/"):
    fields = (mount_id, parent_id, devno, root, mount_point, fstype, source)
    return "%d %d %s %s %s rw,relatime shared:1 - %s %s rw" % fields


@pytest.fixture
def table(monkeypatch):
    """Make the plan see the mounts given, and nothing that holds them."""
    lines = [line(1, 0, "8:1", "/", "ext4", "/dev/sda1")]

    def read_mountinfo(path=None):
        return mountinfo.parse_mountinfo("\n".join(lines))

    monkeypatch.setattr(mountinfo, "read_mountinfo", read_mountinfo)
    monkeypatch.setattr(holders, "holders_of_mount", lambda path: [])
    monkeypatch.setattr(holders, "loop_devices_backed_under", lambda path: [])
    return lines


def test_a_tmpfs_is_unmounted(tmp_path, table):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "0:99", str(mnt), "tmpfs", "scratch"))
    down = ms.plan("unmounted", None, str(mnt))
    assert down.descriptions() == ["unmount scratch from %s" % mnt]
    result = down.result(check_mode=True)
    assert (result["src"], result["device"], result["fstype"]) == ("scratch", "scratch", "tmpfs")
    assert result["loop_device"] is None and result["detached"] == [] and result["partition"] is None
    assert down.diff() == {"before": {"mount": "scratch on %s type tmpfs (rw,relatime)" % mnt, "fstab": None},
                           "after": {"mount": None, "fstab": None}}
    assert ms.plan("unmounted", None, str(mnt), fstype="tmpfs").changed
    lazy = ms.plan("unmounted", None, str(mnt), lazy=True)
    assert lazy.descriptions() == ["unmount scratch from %s lazily" % mnt]


def test_a_disk_is_unmounted_and_nothing_detached(tmp_path, table):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "8:1000", str(mnt), "ext4", "/dev/sdz9"))
    down = ms.plan("unmounted", None, str(mnt))
    assert down.descriptions() == ["unmount /dev/sdz9 from %s" % mnt]
    assert down.result()["src"] == down.result()["device"] == "/dev/sdz9"


def test_every_mount_stacked_at_the_path_is_unmounted(tmp_path, table):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "0:98", str(mnt), "tmpfs", "below"))
    table.append(line(41, 40, "0:99", str(mnt), "tmpfs", "above"))
    down = ms.plan("unmounted", None, str(mnt))
    assert down.descriptions() == ["unmount above from %s" % mnt, "unmount below from %s" % mnt]
    assert down.result()["src"] == "above"
    assert down.diff()["after"]["mount"] is None


def test_nothing_mounted_is_nothing_to_do(tmp_path, table):
    mnt = tmp_path / "mnt"
    assert not ms.plan("unmounted", None, str(mnt)).changed          # missing
    mnt.mkdir()
    quiet = ms.plan("unmounted", None, str(mnt))
    assert not quiet.changed and quiet.result()["src"] is None
    assert not ms.plan("absent", None, str(tmp_path / "gone"), fstab=str(tmp_path / "fstab")).changed


def test_another_type_than_fstype_is_left_mounted(tmp_path, table):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "0:99", str(mnt), "tmpfs", "scratch"))
    with pytest.raises(DiskImageError, match="has scratch mounted as tmpfs, not squashfs; nothing was unmounted"):
        ms.plan("unmounted", None, str(mnt), fstype="squashfs")


@pytest.mark.parametrize("fstype", ["proc", "sysfs", "cgroup2", "devpts", "tracefs"])
def test_kernel_filesystems_are_refused(tmp_path, table, fstype):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "0:99", str(mnt), fstype, fstype))
    with pytest.raises(DiskImageError, match="it is a %s, a kernel interface the system needs" % fstype):
        ms.plan("absent", None, str(mnt), fstab=str(tmp_path / "fstab"))


@pytest.mark.parametrize("path", ["/", "/usr", "/var", "/home", "/boot", "/boot/efi", "/efi", "/root", "/run", "/tmp",
                                  "/etc", "/proc", "/sys", "/dev", "/dev/shm", "/sys/fs/cgroup",
                                  "/proc/sys/fs/binfmt_misc"])
def test_system_mount_points_are_refused_by_path_alone(path):
    with pytest.raises(DiskImageError, match="refusing to unmount %s with only path given" % path):
        mount_teardown.refuse_system_path(path)


@pytest.mark.parametrize("path", ["/", "/usr", "/proc", "/tmp"])
@pytest.mark.parametrize("state", ["unmounted", "absent"])
def test_the_plan_refuses_them_before_anything(path, state):
    with pytest.raises(DiskImageError, match="refusing to unmount %s with only path given" % path):
        ms.plan(state, None, path, fstab="/nonexistent/fstab")


def test_a_subdirectory_of_a_system_mount_point_is_fine():
    mount_teardown.refuse_system_path("/var/lib/images/mnt")
    mount_teardown.refuse_system_path("/mnt")
    mount_teardown.refuse_system_path("/srv/root")
    with pytest.raises(DiskImageError):
        mount_teardown.refuse_system_path("/dev/pts")


def test_busy_by_path_names_the_holder(tmp_path, table, monkeypatch):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    table.append(line(40, 1, "0:99", str(mnt), "tmpfs", "scratch"))
    monkeypatch.setattr(holders, "holders_of_mount",
                        lambda path: [{"pid": 42, "comm": "sleep", "cmdline": "sleep 9", "uses": ["cwd"]}])
    with pytest.raises(DiskImageError, match=r"is busy: used by processes sleep \(pid 42: cwd\)"):
        ms.plan("unmounted", None, str(mnt))
    assert ms.plan("unmounted", None, str(mnt), lazy=True).changed


def test_absent_by_path_removes_the_entry_and_the_empty_mount_point(tmp_path, table):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text("/dev/sdz9 %s ext4 defaults 0 2\n" % mnt)
    table.append(line(40, 1, "0:99", str(mnt), "tmpfs", "scratch"))
    gone = ms.plan("absent", None, str(mnt), fstab=str(fstab))
    assert gone.descriptions() == ["unmount scratch from %s" % mnt,
                                   "remove the entry for %s from %s" % (mnt, fstab),
                                   "remove the mount point %s if it is empty" % mnt]
    assert gone.diff() == {"before": {"mount": "scratch on %s type tmpfs (rw,relatime)" % mnt,
                                      "fstab": "/dev/sdz9 %s ext4 defaults 0 2" % mnt},
                           "after": {"mount": None, "fstab": None}}
    lazy = ms.plan("absent", None, str(mnt), fstab=str(fstab), lazy=True)
    assert lazy.descriptions()[-1] == "remove the entry for %s from %s" % (mnt, fstab)   # the directory stays

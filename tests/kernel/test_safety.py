# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's safety promise, probed by an attacker.

"A module refuses to detach, map or mount a device that is not what the user
named (never the machine's own disk); bad input gets a clear error naming the
problem and the fix, with nothing changed and nothing leaked."

Every case runs a module the way Ansible does (a JSON argument file), asserts
that it failed with a message naming the problem and the fix, and compares the
system before and after: the loop devices of the test's files (losetup
--json), their partition devices, the mounts below the test directory, the
ownership claims under /run/diskimage-loop and the images' bytes.

The machine's own disk is only ever given to a module in check mode, inside a
guard process that makes any write, any ioctl other than a size query, any
mount system call and any Plan.apply on it fail loudly (and records it), so a
broken module cannot damage this machine. Its first sectors, its /dev node's
times and its mounts are compared before and after. Someone else's disk is
played by a loop device the test attaches with losetup.
"""
import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from .conftest import MiB, losetup_json

pytestmark = pytest.mark.root

MODULES = "ansible_collections.diskimage.loop.plugins.modules."
CLAIMS = "/run/diskimage-loop"
COLLECTIONS_ROOT = [path for path in sys.path
                    if os.path.isdir(os.path.join(path, "ansible_collections", "diskimage", "loop"))][0]

# Runs a module with guards against the protected block devices (argv[1],
# "MAJ:MIN,..."), for check-mode runs against the machine's own disk. A guard
# that trips appends a line to $SAFETY_GUARD_LOG and raises an exception the
# modules do not catch, so the run fails with a traceback instead of JSON.
GUARD = r"""
import builtins, fcntl, io, os, runpy, stat, sys

PROTECTED = frozenset(tuple(int(n) for n in item.split(":")) for item in sys.argv[1].split(",") if item)
MODULE = sys.argv[2]
sys.argv = [MODULE] + sys.argv[3:]
LOG = os.environ["SAFETY_GUARD_LOG"]
# Queries only: BLKROGET, BLKGETSIZE, BLKSSZGET, BLKIOMIN, BLKIOOPT, BLKPBSZGET,
# BLKGETSIZE64, LOOP_GET_STATUS, LOOP_GET_STATUS64.
QUERIES = frozenset((0x125E, 0x1260, 0x1268, 0x1278, 0x1279, 0x127B, 0x80081272, 0x4C03, 0x4C05))


class GuardTrip(BaseException):
    pass


def trip(what):
    with builtins.open(LOG, "a") as handle:
        handle.write(what + "\n")
    raise GuardTrip("safety guard: " + what)


def devno_of_fd(fd):
    try:
        info = os.fstat(fd)
    except (OSError, TypeError, ValueError):
        return None
    return (os.major(info.st_rdev), os.minor(info.st_rdev)) if stat.S_ISBLK(info.st_mode) else None


def devno_of_path(path, dir_fd=None):
    if isinstance(path, int):
        return devno_of_fd(path)
    try:
        info = os.stat(path, dir_fd=dir_fd)
    except (OSError, TypeError, ValueError):
        return None
    return (os.major(info.st_rdev), os.minor(info.st_rdev)) if stat.S_ISBLK(info.st_mode) else None


real_os_open = os.open


def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC) and devno_of_path(path, dir_fd) in PROTECTED:
        trip("os.open(%r, %#o) for writing" % (path, flags))
    return real_os_open(path, flags, mode, dir_fd=dir_fd)


real_io_open = io.open


def guarded_io_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+") and devno_of_path(file) in PROTECTED:
        trip("open(%r, %r)" % (file, mode))
    return real_io_open(file, mode, *args, **kwargs)


real_ioctl = fcntl.ioctl


def guarded_ioctl(fd, request, *args):
    number = fd if isinstance(fd, int) else fd.fileno()
    if devno_of_fd(number) in PROTECTED and (request & 0xFFFFFFFF) not in QUERIES:
        trip("ioctl %#x on the protected device" % request)
    return real_ioctl(fd, request, *args)


def guarded_writer(real):
    def write(fd, *args):
        if devno_of_fd(fd) in PROTECTED:
            trip("%s to the protected device" % real.__name__)
        return real(fd, *args)
    return write


os.open = guarded_os_open
io.open = builtins.open = guarded_io_open
fcntl.ioctl = guarded_ioctl
for name in ("write", "pwrite", "writev", "pwritev", "ftruncate", "truncate"):
    if hasattr(os, name):
        setattr(os, name, guarded_writer(getattr(os, name)))

from ansible_collections.diskimage.loop.plugins.module_utils import plan  # noqa: E402
from ansible_collections.diskimage.loop.plugins.module_utils._loop import state as loop_state  # noqa: E402
from ansible_collections.diskimage.loop.plugins.module_utils._mount import plan as mount_plan  # noqa: E402
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys  # noqa: E402
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state  # noqa: E402


class NoLibc(object):
    def __getattr__(self, name):
        trip("libc %s (a mount system call) in check mode" % name)


def no_apply(self):
    trip("%s.apply in check mode" % type(self).__name__)


mountsys._libc = NoLibc()
for cls in (plan.Plan, loop_state.LoopPlan, partitions_state.PartitionsPlan, mount_plan.MountPlan):
    cls.apply = no_apply
runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
"""


# --- running modules -----------------------------------------------------------

def run_module(name, check_mode=False, guard=None, root=None, **args):
    """Run module ``name`` as Ansible would; its JSON result, with ``rc`` added.

    ``guard``: devnos the module must not write to, ioctl or mount (check mode
    only); the run fails if a guard tripped. ``root``: a block device to mount
    over / first, in a private mount namespace that ends with the run, so
    that the module sees it as the machine's root filesystem."""
    params = dict((key, value) for key, value in args.items() if value is not None)
    params.update(_ansible_check_mode=check_mode, _ansible_diff=True)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle, \
            tempfile.NamedTemporaryFile("r", suffix=".guard") as log:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
        handle.flush()
        if guard is not None:
            assert check_mode, "the guard is for check-mode runs against a disk that must not change"
            env["SAFETY_GUARD_LOG"] = log.name
            cmd = [sys.executable, "-c", GUARD, ",".join("%d:%d" % devno for devno in guard), MODULES + name,
                   handle.name]
        else:
            cmd = [sys.executable, "-m", MODULES + name, handle.name]
        if root is not None:
            assert guard is not None, "a stand-in root disk is handed to modules in guarded check mode only"
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount "$0" / && exec "$@"',
                   root] + cmd
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=env, check=False, timeout=300)
        tripped = log.read()
    assert not tripped, "the safety guard tripped: %s\n%s" % (tripped, proc.stderr)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("%s printed no JSON (rc %d):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr))
    result["rc"] = proc.returncode
    return result


def refused(result, *words):
    """Assert a failed run whose message has every one of ``words``; the message."""
    assert result.get("failed") and result["rc"] != 0, result
    msg = result["msg"]
    missing = [word for word in words if word not in msg]
    assert not missing, "%r lacks %r" % (msg, missing)
    return msg


def losetup(*args):
    return subprocess.run(("losetup",) + args, check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# --- what must not change -----------------------------------------------------------

def sha256(path, length=None):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = handle.read(MiB if remaining is None else min(MiB, remaining))
            if not chunk:
                break
            digest.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return digest.hexdigest()


def tail_sha256(path, length):
    with open(path, "rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - length))
        return hashlib.sha256(handle.read()).hexdigest()


def claims():
    """{device name: claim record} under /run/diskimage-loop."""
    found = {}
    try:
        names = os.listdir(CLAIMS)
    except OSError:
        return found
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            try:
                with open(os.path.join(CLAIMS, name)) as handle:
                    found[name[:-5]] = json.load(handle)
            except (IOError, OSError, ValueError):
                continue
    return found


def mountinfo():
    with open("/proc/self/mountinfo") as handle:
        return [line.split() for line in handle]


def partition_names(device):
    """The kernel's partition devices of /dev/loopN."""
    disk = os.path.basename(device)
    try:
        return sorted(entry for entry in os.listdir("/sys/class/block/%s" % disk) if entry.startswith(disk + "p"))
    except OSError:
        return []


class Snapshot(object):
    """What the test's directory has in the system: loop devices backed by its
    files (and the devices ``extra`` names, whoever attached them), their
    partition devices, mounts below it, ownership claims for its files, the
    bytes of its images."""

    def __init__(self, workdir, extra=(), live=()):
        self.workdir = os.path.realpath(str(workdir))
        live = set(os.path.realpath(path) for path in live)
        prefix = self.workdir + os.sep
        self.loops = sorted(
            (dev["name"], json.dumps(dev, sort_keys=True)) for dev in losetup_json()
            if (dev.get("back-file") or "").split(" (deleted)")[0].startswith(prefix) or dev["name"] in extra)
        self.partitions = dict((name, partition_names(name)) for name, _dev in self.loops)
        self.mounts = sorted(" ".join(fields[2:]) for fields in mountinfo()
                             if fields[4].startswith(prefix) or fields[4] == self.workdir)
        self.claims = sorted(name for name, record in claims().items()
                             if str(record.get("backing_file") or "").startswith(prefix))
        self.files = {}
        for base, dirs, files in os.walk(self.workdir):
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(base, d))]
            for name in files:
                path = os.path.join(base, name)
                info = os.lstat(path)
                if path in live:          # written by a mount all along: where a table goes
                    self.files[path] = (info.st_size, sha256(path, MiB), tail_sha256(path, 64 * 1024))
                elif stat.S_ISREG(info.st_mode):
                    self.files[path] = (info.st_size, info.st_mtime_ns, sha256(path))
            for name in dirs:
                self.files[os.path.join(base, name)] = "dir"

    def compare(self, other, ignore=()):
        for key in ("loops", "partitions", "mounts", "claims", "files"):
            if key in ignore:
                continue
            assert getattr(self, key) == getattr(other, key), "%s changed:\n%s\n%s" % (
                key, getattr(self, key), getattr(other, key))


def unchanged(workdir, extra=(), live=(), ignore=()):
    """Context: the snapshot before equals the snapshot after. ``live``: image
    files a mount writes to meanwhile (only their first MiB and last 64 KiB,
    where partition tables live, are compared); ``ignore``: parts not to compare."""
    class _Unchanged(object):
        def __enter__(self):
            self.before = Snapshot(workdir, extra, live)
            return self

        def __exit__(self, kind, value, tb):
            if kind is None:
                self.before.compare(Snapshot(workdir, extra, live), ignore)
            return False
    return _Unchanged()


# --- the machine's own disk -------------------------------------------------------

class RootDisk(object):
    """The disk holding the root filesystem, found from /proc/self/mountinfo and sysfs.

    ``disk`` is its whole-disk node, ``source`` the node mounted at / (the disk
    itself or a partition of it), ``protected`` the numbers of the disk, every
    partition and the root device."""

    def __init__(self):
        root = [fields for fields in mountinfo() if fields[4] == "/"][-1]   # the top mount at /
        self.root_devno = tuple(int(n) for n in root[2].split(":"))
        self.fstype = root[root.index("-") + 1]
        sys_dev = "/sys/dev/block/%d:%d" % self.root_devno
        if not os.path.exists(sys_dev):
            pytest.skip("/ is not on a block device (%s)" % root[root.index("-") + 2])
        here = os.path.realpath(sys_dev)
        for _depth in range(8):                   # a dm or md root: down to the device under it
            slaves = sorted(os.listdir(os.path.join(here, "slaves"))) if os.path.isdir(
                os.path.join(here, "slaves")) else []
            if not slaves:
                break
            here = os.path.realpath(os.path.join(here, "slaves", slaves[0]))
        if os.path.exists(os.path.join(here, "partition")):
            here = os.path.dirname(here)
        self.name = os.path.basename(here)
        self.devno = self._devno(here)
        self.disk = self._node(self.name, self.devno)
        self.partitions = []
        for entry in sorted(os.listdir(here)):
            if os.path.exists(os.path.join(here, entry, "partition")):
                devno = self._devno(os.path.join(here, entry))
                node = self._node(entry, devno, required=False)
                if node:
                    self.partitions.append(node)
        self.protected = set([self.devno, self.root_devno])
        self.protected.update(self._devno(os.path.join(here, entry)) for entry in os.listdir(here)
                              if os.path.exists(os.path.join(here, entry, "partition")))
        root_name = os.path.basename(os.path.realpath(sys_dev))
        self.source = self._node(root_name, self.root_devno, required=False) or self.disk

    @staticmethod
    def _devno(sys_dir):
        with open(os.path.join(sys_dir, "dev")) as handle:
            return tuple(int(n) for n in handle.read().strip().split(":"))

    @staticmethod
    def _node(name, devno, required=True):
        """/dev/NAME when it is the node of ``devno``; the test never makes one."""
        path = "/dev/%s" % name
        try:
            info = os.stat(path)
        except OSError:
            info = None
        if info is None or not stat.S_ISBLK(info.st_mode) or (os.major(info.st_rdev), os.minor(info.st_rdev)) != devno:
            if required:
                pytest.skip("no /dev node for the root disk %s (%d:%d)" % ((name,) + devno))
            return None
        return path

    @property
    def targets(self):
        """The nodes to attack: the disk, and the partition / is on, if any."""
        return [self.disk] + ([self.source] if self.source != self.disk else [])

    def state(self):
        """What must never change: its first two sectors (where a partition
        table would go, and which no filesystem on it writes), its /dev
        node's times (a write through the node updates them), its partitions,
        size and read-only flag, and its mounts."""
        try:
            with open(self.disk, "rb") as handle:      # read-only, nothing else
                head = hashlib.sha256(handle.read(1024)).hexdigest()
        except OSError as exc:                         # a device cgroup may deny even that
            head = "unreadable: %s" % errno.errorcode.get(exc.errno, exc.errno)
        info = os.stat(self.disk)
        sys_dir = "/sys/class/block/%s" % self.name
        with open(os.path.join(sys_dir, "size")) as handle:
            size = handle.read().strip()
        with open(os.path.join(sys_dir, "ro")) as handle:
            read_only = handle.read().strip()
        mounts = sorted(" ".join(fields[:6]) for fields in mountinfo()
                        if tuple(int(n) for n in fields[2].split(":")) in self.protected)
        parts = sorted(entry for entry in os.listdir(sys_dir)
                       if os.path.exists(os.path.join(sys_dir, entry, "partition")))
        return {"head": head, "mtime": info.st_mtime_ns, "ctime": info.st_ctime_ns, "size": size,
                "ro": read_only, "mounts": mounts, "partitions": parts}


@pytest.fixture(scope="module")
def root_disk():
    return RootDisk()


def root_protected():
    """The numbers of the root disk, its partitions and the root device; empty
    when / is not on a block device. Guarded runs protect them always."""
    try:
        return set(RootDisk().protected)
    except pytest.skip.Exception:
        return set()


@pytest.fixture
def scratch(make_image):
    """An image file of ours, where a module needs a valid one besides the disk."""
    return make_image("scratch.img", 16 * MiB)


@pytest.fixture
def untouched_root(root_disk, workdir, scratch):
    """The root disk, checked to be exactly as it was once the test is done;
    the test's directory, too."""
    before = root_disk.state()
    snapshot = Snapshot(workdir)
    yield root_disk
    assert root_disk.state() == before
    snapshot.compare(Snapshot(workdir))


def on_root(root_disk, name, **args):
    """Check mode, guarded: the only way a test hands the root disk to a module."""
    return run_module(name, check_mode=True, guard=root_disk.protected, **args)


# --- scratch disks the test plays other users with ------------------------------------

def make_ext4(path, size=16 * MiB, label=None):
    with open(path, "wb") as handle:
        handle.truncate(size)
    sh("mkfs.ext4", "-q", "-F", *((["-L", label] if label else []) + [path]))
    return path


def make_table(path, layout, size=64 * MiB):
    """An image with a partition table, written by sfdisk (not by the module)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    script = "label: %s\n" % layout + "".join("size=%s\n" % part if part else ",\n" for part in ("16MiB", None))
    subprocess.run(["sfdisk", "--quiet", path], input=script, universal_newlines=True, check=True,
                   stdout=subprocess.DEVNULL)
    return path


def devno_of(device):
    info = os.stat(device)
    return os.major(info.st_rdev), os.minor(info.st_rdev)


class ByHand(object):
    """What "someone else" attached and mounted with losetup, partx and mount;
    the test takes it down again (only what it made), whatever happened."""

    def __init__(self):
        self.devices = []
        self.mounts = []

    def attach(self, image, *options):
        device = losetup("--find", "--show", *(list(options) + [image]))
        self.devices.append(device)
        return device

    def partitions(self, device):
        sh("partx", "--add", device)          # this kernel may have no partition parsers
        return partition_names(device)

    def mount(self, device, path, *options):
        os.makedirs(str(path), exist_ok=True)
        sh("mount", *(list(options) + [device, str(path)]))
        self.mounts.append(str(path))
        return str(path)

    def umount(self, path):
        sh("umount", str(path))
        self.mounts.remove(str(path))

    def release(self):
        for path in reversed(self.mounts):
            subprocess.run(["umount", path], check=False)
        for device in reversed(self.devices):
            name = os.path.basename(device)
            subprocess.run(["losetup", "--detach", device], check=False, stderr=subprocess.DEVNULL)
            for _attempt in range(100):       # the kernel finishes a detach on the last close
                if not os.path.isdir("/sys/block/%s/loop" % name):
                    break
                time.sleep(0.05)


@pytest.fixture
def by_hand():
    hand = ByHand()
    yield hand
    hand.release()


# === 1. the machine's own disk: check mode, guarded ===================================

def test_root_disk_is_not_a_loop_device_to_detach_or_attach(untouched_root, scratch):
    for target in untouched_root.targets:
        for args in (dict(device=target, state="absent"), dict(device=target, state="absent", force=True),
                     dict(device=target, file=scratch), dict(device=target, state="absent", file=scratch)):
            refused(on_root(untouched_root, "loop_device", **args),
                    "%r is not a loop device name" % target, "Name a loop device as /dev/loopN")
        refused(on_root(untouched_root, "loop_device_info", device=target),
                "%r is not a loop device name" % target, "Name a loop device as /dev/loopN")


# Why a module may refuse the root disk: it is in use, it is a partition, it
# holds a filesystem or another table, or this machine denies even reading it
# (a device cgroup): each names the fix.
ROOT_REFUSALS = (("is in use", "mounted at", "Unmount"), ("is a partition", "Name the disk"),
                 ("has no partition table but holds", "would destroy it", "force: true"),
                 ("already has a different partition table", "Set force: true"),
                 ("cannot open", "Operation not permitted", "Run as root"))


def _refused_for_a_reason(result, target):
    msg = refused(result, target)
    assert any(all(word in msg for word in words) for words in ROOT_REFUSALS), msg
    return msg


@pytest.mark.parametrize("force", [False, True])
def test_root_disk_gets_no_partition_table(untouched_root, force):
    for target in untouched_root.targets:
        for label in ("gpt", "dos"):
            result = on_root(untouched_root, "image_partitions", src=target, force=force,
                             layout={"label": label, "partitions": [{"size": "1MiB"}, {}]})
            _refused_for_a_reason(result, target)


def test_root_disk_partitions_are_not_mapped_or_removed(untouched_root):
    for target in untouched_root.targets:
        for args in (dict(state="absent"), dict(state="absent", all_attachments=True), dict(backend="partscan"),
                     dict(backend="dm"), dict(), dict(relocate_gpt=True), dict(size=1 << 50)):
            result = on_root(untouched_root, "image_partitions", src=target, **args)
            if result.get("failed"):
                continue        # refused: every reason is fine, since nothing was planned
            assert not result["changed"] and not result["actions"], (args, result)


def test_root_disk_is_not_mounted_or_unmounted(untouched_root, workdir):
    mnt = str(workdir / "mnt")
    for target in untouched_root.targets:
        for args in (dict(state="mounted", path=mnt), dict(state="unmounted", path=mnt),
                     dict(state="unmounted", path="/"), dict(state="absent", path="/", fstab=str(workdir / "fstab"))):
            result = on_root(untouched_root, "image_mount", src=target, **args)
            if result.get("failed"):
                assert target in result["msg"] or "refusing to unmount /:" in result["msg"], result
                continue
            # a plan may at most mount the disk's own node elsewhere: never attach a loop device over it
            assert not any(action.startswith(("attach", "detach", "unmount", "remount"))
                           for action in result["actions"]), (args, result)


# === 2. a machine whose root disk is a loop device ======================================
#
# The real root disk may be unreadable (here a device cgroup denies it), so
# the modules' own checks are also run against a stand-in: an ext4 image the
# test attaches by hand and mounts over / in a private mount namespace, where
# the module sees it as the machine's root filesystem. Check mode, guarded
# against the stand-in and the real root disk.

@pytest.fixture
def standin(make_image, by_hand):
    image = make_ext4(str(make_image("root.img", 32 * MiB)), 32 * MiB, label="standin-root")
    device = by_hand.attach(image)
    guard = root_protected() | set([devno_of(device)])

    class Standin(object):
        pass
    disk = Standin()
    disk.image, disk.device, disk.guard = image, device, guard
    disk.head = sha256(image, 1024)
    return disk


def as_root(standin, name, **args):
    return run_module(name, check_mode=True, guard=standin.guard, root=standin.device, **args)


@pytest.fixture
def untouched_standin(standin, workdir):
    before = Snapshot(workdir)
    yield standin
    after = Snapshot(workdir)
    # mounting it over / in the namespace writes its superblock: compare the rest
    for snapshot in (before, after):
        snapshot.files.pop(standin.image)
    before.compare(after)
    assert sha256(standin.image, 1024) == standin.head          # no partition table written
    assert subprocess.run(["sfdisk", "--dump", standin.image], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode != 0


def test_standin_root_is_not_detached(untouched_standin):
    disk = untouched_standin
    for args in (dict(device=disk.device), dict(file=disk.image), dict(file=disk.image, offset=0)):
        refused(as_root(disk, "loop_device", state="absent", **args),
                "%s is busy: mounted at /" % disk.device, "Unmount or remove what holds it first", "force: true")


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("by", ["device", "image"])
def test_standin_root_gets_no_partition_table(untouched_standin, by, force):
    disk = untouched_standin
    src = disk.device if by == "device" else disk.image
    result = as_root(disk, "image_partitions", src=src, force=force, layout={"label": "gpt", "partitions": [{}]})
    if force:
        refused(result, "%s is in use: mounted at /" % disk.device, "Unmount")
    else:
        # the filesystem is named first; force would still meet the mount
        refused(result, "holds ext4", "would destroy it", "force: true")


def test_standin_root_has_nothing_to_map_or_remove(untouched_standin):
    disk = untouched_standin
    refused(as_root(disk, "image_partitions", src=disk.device), "has no partition table", "Give layout")
    for src in (disk.device, disk.image):
        result = as_root(disk, "image_partitions", src=src, state="absent", all_attachments=True)
        assert not result.get("failed") and not result["changed"] and result["detached"] == [], result


def test_standin_root_is_not_unmounted_while_busy(untouched_standin):
    disk = untouched_standin
    refused(as_root(disk, "image_mount", src=disk.device, path="/", state="unmounted"),
            "refusing to unmount /: the running system needs it", "Choose another mount point")
    refused(as_root(disk, "image_mount", path="/", state="unmounted", lazy=True),
            "refusing to unmount / with only path given", "Give src")


def _refuses_the_root_mount(result):
    assert result.get("failed"), "planned on the machine's root mount: %s" % result.get("actions")
    assert "refus" in result["msg"].lower(), result["msg"]


@pytest.mark.parametrize("by", ["device", "image"])
@pytest.mark.parametrize("state", ["unmounted", "absent"])
def test_standin_root_is_not_lazily_unmounted(untouched_standin, workdir, state, by):
    disk = untouched_standin
    src = disk.device if by == "device" else disk.image
    extra = dict(fstab=str(workdir / "fstab")) if state == "absent" else {}
    _refuses_the_root_mount(as_root(disk, "image_mount", src=src, path="/", state=state, lazy=True, **extra))


def test_standin_root_is_not_remounted_read_only(untouched_standin):
    disk = untouched_standin
    _refuses_the_root_mount(as_root(disk, "image_mount", src=disk.device, path="/", opts="ro"))


# === 3. someone else's loop devices ======================================================

@pytest.fixture
def theirs(make_image, by_hand):
    """B: someone else's image, with a gpt table, attached by hand with its
    partition devices; A: our image, a byte-for-byte copy of B (same table
    UUIDs), a different file."""
    b = make_table(str(make_image("theirs.img", 64 * MiB)), "gpt")
    a = str(make_image("ours.img", 64 * MiB))
    with open(b, "rb") as src, open(a, "wb") as dst:
        dst.write(src.read())
    device = by_hand.attach(b, "--partscan")
    by_hand.partitions(device)

    class Theirs(object):
        pass
    other = Theirs()
    other.image, other.device, other.ours = b, device, a
    return other


def test_their_device_is_not_detached_for_our_file(theirs, workdir):
    with unchanged(workdir):
        for check_mode in (True, False):
            for args in (dict(file=theirs.ours), dict(file=theirs.ours, force=True),
                         dict(file=str(workdir / "missing.img"))):
                msg = refused(run_module("loop_device", check_mode=check_mode, device=theirs.device, state="absent",
                                         **args),
                              "%s is attached to %s, not to %s; refusing to detach it" % (
                                  theirs.device, theirs.image, args["file"]),
                              "Name the device that belongs to this file, or omit file")
                assert "force" not in msg


def test_their_device_is_not_taken_for_our_file(theirs, workdir):
    with unchanged(workdir):
        for check_mode in (True, False):
            refused(run_module("loop_device", check_mode=check_mode, device=theirs.device, file=theirs.ours,
                               partscan=True),
                    "%s is already attached to %s, not %s" % (theirs.device, theirs.image, theirs.ours),
                    "Name another device, or omit device to pick a free one")


def test_absent_on_our_image_leaves_their_device_alone(theirs, workdir):
    link = str(workdir / "link.img")
    os.symlink(theirs.image, link)
    with unchanged(workdir):
        for check_mode in (True, False):
            for args in (dict(src=theirs.ours), dict(src=theirs.ours, all_attachments=True)):
                result = run_module("image_partitions", check_mode=check_mode, state="absent", **args)
                assert not result.get("failed") and not result["changed"], result
                assert result["detached"] == [] and result["skipped_devices"] == [], result
            # their image under another name: still not ours to take down
            result = run_module("image_partitions", check_mode=check_mode, state="absent", src=link)
            assert not result["changed"] and result["detached"] == [], result
            assert [(s["device"], s["attached_by"], s["partitions"]) for s in result["skipped_devices"]] == [
                (theirs.device, None, ["/dev/%s" % p for p in partition_names(theirs.device)])]
            assert "attached by hand or by another tool, not by this module" in result["skipped_devices"][0]["reason"]


def test_present_on_our_copy_does_not_reuse_their_device(theirs, workdir):
    with unchanged(workdir, extra=(theirs.device,)) as guard:
        result = run_module("image_partitions", src=theirs.ours)
        try:
            assert result["device"] != theirs.device and result["loop_attached"], result
        finally:
            down = run_module("image_partitions", src=theirs.ours, state="absent")
        assert down["detached"] == [result["device"]], down
    assert guard.before.partitions[theirs.device] == partition_names(theirs.device)


def test_a_stale_claim_does_not_make_their_device_ours(make_image, workdir, by_hand):
    """image_partitions attached A to loopN and claimed it; loopN was then
    detached by hand and someone attached B to it. The claim must not let
    image_partitions detach B's device."""
    a = str(make_image("a.img", 32 * MiB))
    b = make_ext4(str(workdir / "b.img"))
    made = run_module("image_partitions", src=a, layout={"label": "gpt", "partitions": [{}]})
    device = made["device"]
    name = os.path.basename(device)
    assert claims().get(name, {}).get("owner") == "image_partitions"
    losetup("--detach", device)                           # "by hand": the claim stays behind
    try:
        losetup(device, b)
    except subprocess.CalledProcessError:
        if claims().get(name, {}).get("backing_file") == os.path.realpath(a):
            os.unlink(os.path.join(CLAIMS, name + ".json"))      # our stale claim, nobody else's
        pytest.skip("another process took %s first" % device)
    by_hand.devices.append(device)
    with unchanged(workdir, extra=(device,), ignore=("claims",)):   # the stale claim goes: below
        for check_mode in (True, False):
            result = run_module("image_partitions", check_mode=check_mode, src=device, state="absent")
            assert not result.get("failed") and not result["changed"] and result["detached"] == [], result
            result = run_module("image_partitions", check_mode=check_mode, src=b, state="absent")
            assert [s["attached_by"] for s in result["skipped_devices"]] == [None], result
            refused(run_module("loop_device", check_mode=check_mode, device=device, file=a, state="absent"),
                    "is attached to %s, not to %s" % (b, a))
    assert name not in claims()                           # the stale claim was dropped on sight


@pytest.mark.parametrize("state", ["mounted", "unmounted", "absent"])
def test_their_mount_at_path_is_named_and_left_alone(make_image, workdir, by_hand, state):
    theirs = make_ext4(str(workdir / "theirs.img"), label="same")
    ours = str(workdir / "ours.img")
    with open(theirs, "rb") as src, open(ours, "wb") as dst:
        dst.write(src.read())                              # the same filesystem UUID and label
    device = by_hand.attach(theirs)
    mnt = by_hand.mount(device, workdir / "mnt")
    with unchanged(workdir, extra=(device,)):
        for check_mode in (True, False):
            args = dict(fstab=str(workdir / "fstab")) if state == "absent" else {}
            for lazy in ((False, True) if state != "mounted" else (False,)):
                if lazy:
                    args["lazy"] = True
                msg = refused(run_module("image_mount", check_mode=check_mode, src=ours, path=mnt, state=state,
                                         **args),
                              "%s already has %s" % (mnt, device), theirs, "not %s" % ours,
                              "Unmount it first, or choose another path")
                assert "ext4" in msg
    assert os.path.ismount(mnt) and not os.path.exists(str(workdir / "fstab"))


def test_table_is_not_rewritten_under_a_partition_mounted_at_an_offset(make_image, workdir, by_hand):
    """Someone mounted partition 2 through a loop device at its offset (what
    mount -o loop,offset= and image_mount do); a new table would move it."""
    image = make_table(str(make_image("disk.img", 64 * MiB)), "gpt")
    start = 17 * MiB                                     # sfdisk: 1 MiB aligned, after the 16 MiB p1
    device = by_hand.attach(image, "--offset", str(start), "--sizelimit", str(46 * MiB))
    sh("mkfs.ext4", "-q", device)
    by_hand.mount(device, workdir / "p2")
    whole = by_hand.attach(image)                        # and the whole image, idle, as src
    with unchanged(workdir, extra=(device, whole), live=(image,)):
        for check_mode in (True, False):
            for src in (image, whole):
                refused(run_module("image_partitions", check_mode=check_mode, src=src, force=True,
                                   layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}),
                        "%s is in use: mounted at %s" % (device, workdir / "p2"), "Unmount")


def test_no_growth_under_a_partition_mounted_at_an_offset(make_image, workdir, by_hand):
    """The same mount: growing the image would rewrite the table and the
    partition's neighbourhood under it."""
    image = make_table(str(make_image("disk.img", 64 * MiB)), "gpt")
    device = by_hand.attach(image, "--offset", str(17 * MiB), "--sizelimit", str(46 * MiB))
    sh("mkfs.ext4", "-q", device)
    by_hand.mount(device, workdir / "p2")
    with unchanged(workdir, extra=(device,), live=(image,)):
        for check_mode in (True, False):
            for args in (dict(size=128 * MiB), dict(relocate_gpt=True, size=64 * MiB + 4096)):
                refused(run_module("image_partitions", check_mode=check_mode, src=image, **args),
                        "%s is in use: mounted at %s" % (device, workdir / "p2"), "Unmount")
    assert os.path.getsize(image) == 64 * MiB


def test_no_table_over_a_filesystem_mounted_read_only(make_image, workdir, by_hand):
    image = make_ext4(str(make_image("fs.img", 32 * MiB)), 32 * MiB, label="data")
    device = by_hand.attach(image, "--read-only")
    by_hand.mount(device, workdir / "ro", "-o", "ro")
    layout = {"label": "gpt", "partitions": [{}]}
    with unchanged(workdir, extra=(device,)):
        for check_mode in (True, False):
            refused(run_module("image_partitions", check_mode=check_mode, src=image, layout=layout),
                    "%s has no partition table but holds ext4 (label 'data')" % image, "would destroy it",
                    "Check that src is the right image, or set force: true")
            refused(run_module("image_partitions", check_mode=check_mode, src=image, layout=layout, force=True),
                    "%s is in use: mounted at %s" % (device, workdir / "ro"), "Unmount")


# === 4. paths and devices in use ============================================================

def test_mount_over_a_file_is_refused(make_image, workdir):
    image = make_ext4(str(workdir / "fs.img"))
    target = workdir / "afile"
    target.write_text("keep me\n")
    with unchanged(workdir):
        for check_mode in (True, False):
            for state in ("mounted", "present"):
                refused(run_module("image_mount", check_mode=check_mode, src=image, path=str(target), state=state,
                                   fstab=str(workdir / "fstab")),
                        "path %s is a file, not a directory; refusing to mount over it" % target,
                        "Remove it, or choose another mount point")
    assert target.read_text() == "keep me\n"


def test_mount_over_something_else_mounted_is_refused(workdir, by_hand):
    image = make_ext4(str(workdir / "fs.img"))
    tmp = workdir / "tmp"
    tmp.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "safety", str(tmp))
    by_hand.mounts.append(str(tmp))
    with unchanged(workdir):
        for check_mode in (True, False):
            for state in ("mounted", "unmounted", "absent"):
                refused(run_module("image_mount", check_mode=check_mode, src=image, path=str(tmp), state=state,
                                   fstab=str(workdir / "fstab")),
                        "%s already has safety mounted (type tmpfs), not %s" % (tmp, image),
                        "Unmount it first, or choose another path")
    assert os.path.ismount(str(tmp))


def test_a_mounted_device_is_not_detached_without_force(make_image, workdir, by_hand):
    image = make_ext4(str(workdir / "fs.img"))
    spare = by_hand.attach(image)                        # a second, idle attachment of the same image
    device = by_hand.attach(image)
    mnt = by_hand.mount(device, workdir / "mnt")
    with unchanged(workdir):
        for check_mode in (True, False):
            for args in (dict(device=device), dict(file=image), dict(device=device, file=image)):
                refused(run_module("loop_device", check_mode=check_mode, state="absent", **args),
                        "%s is busy: mounted at %s" % (device, mnt),
                        "Unmount or remove what holds it first, or set force: true for a lazy detach")
    assert os.path.isdir("/sys/block/%s/loop" % os.path.basename(spare))    # not detached on the way


def test_mounted_partitions_are_not_removed(make_image, workdir, by_hand):
    image = make_table(str(make_image("disk.img", 64 * MiB)), "dos")
    device = by_hand.attach(image, "--partscan")
    parts = by_hand.partitions(device)
    sh("mkfs.ext4", "-q", "/dev/%s" % parts[0])
    mnt = by_hand.mount("/dev/%s" % parts[0], workdir / "p1")
    with unchanged(workdir, live=(image,)):
        for check_mode in (True, False):
            for args in (dict(src=device), dict(src=image, all_attachments=True)):
                refused(run_module("image_partitions", check_mode=check_mode, state="absent", **args),
                        "partitions of %s are in use: /dev/%s mounted at %s" % (device, parts[0], mnt),
                        "Unmount them first")
            refused(run_module("image_partitions", check_mode=check_mode, src=device, force=True,
                               layout={"label": "dos", "partitions": [{"size": "8MiB"}, {}]}),
                    "%s is in use: mounted at %s" % (device, mnt), "Unmount its partitions")
            for state in ("present", "absent"):
                refused(run_module("image_partitions", check_mode=check_mode, src="/dev/%s" % parts[0], state=state),
                        "/dev/%s is a partition, not a whole disk or image" % parts[0],
                        "Name the disk or the image that holds the partition table")


HOLD = "import os, sys, time; os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print('held', flush=True); time.sleep(300)"


def test_our_device_held_by_another_program_is_not_taken_down(make_image, workdir):
    """Our own device, opened exclusively by another program (as a mount in
    another namespace, swap or RAID would): refused in check mode too."""
    image = str(make_image("disk.img", 32 * MiB))
    made = run_module("image_partitions", src=image, layout={"label": "gpt", "partitions": [{}]})
    device = made["device"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, device], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with unchanged(workdir):
            for check_mode in (True, False):
                refused(run_module("image_partitions", check_mode=check_mode, src=image, state="absent"),
                        "partitions of %s are in use: %sp1 opened exclusively by another program" % (device, device),
                        "Unmount them first")
                refused(run_module("loop_device", check_mode=check_mode, device=device, state="absent"),
                        "%s is busy: opened exclusively by another program" % device, "force: true")
    finally:
        holder.kill()
        holder.wait()
    down = run_module("image_partitions", src=image, state="absent")
    assert down["detached"] == [device], down


# === 5. bad input: missing, corrupt, truncated images and wrong sizes =====================

@pytest.fixture(scope="module")
def images(session_dir):
    """Every kind of bad (and one good) image, by name, made once: no case
    attaches or mounts them (the session fixture checks that none was left)."""
    workdir = session_dir / "bad_input"
    workdir.mkdir()

    def blank(name, size):
        with open(str(workdir / name), "wb") as handle:
            handle.truncate(size)
        return str(workdir / name)

    blank("disk.img", 64 * MiB)
    blank("empty.img", 0)
    (workdir / "adir").mkdir()
    make_ext4(str(workdir / "fs.img"), label="data")
    make_ext4(str(workdir / "broken.img"))
    with open(str(workdir / "broken.img"), "r+b") as handle:
        handle.seek(1024 + 0x38)                             # the ext4 magic
        handle.write(b"\0\0")
    for label in ("gpt", "dos"):
        make_table(str(workdir / ("%s.img" % label)), label)
        make_table(str(workdir / ("short-%s.img" % label)), label)
        os.truncate(str(workdir / ("short-%s.img" % label)), 8 * MiB)   # cut inside partition 1
    make_table(str(workdir / "crc.img"), "gpt")
    with open(str(workdir / "crc.img"), "r+b") as handle:
        for header in (512, 64 * MiB - 512):                 # both GPT headers: a wrong CRC
            handle.seek(header + 16)
            handle.write(b"\xff\xff\xff\xff")
    return workdir


GPT = {"label": "gpt", "partitions": [{}]}

# (case, module, arguments with {w} for the test directory, words the message must have)
BAD_INPUT = [
    ("missing file", "loop_device", dict(file="{w}/missing.img"),
     ["image file {w}/missing.img does not exist", "Create it first"]),
    ("a directory", "loop_device", dict(file="{w}/adir"), ["{w}/adir is a directory, not an image file",
                                                           "Name the image file itself"]),
    ("a character device", "loop_device", dict(file="/dev/null"),
     ["/dev/null is neither a regular file nor a block device", "Name an image file or a block device"]),
    ("an empty file", "loop_device", dict(file="{w}/empty.img"), ["{w}/empty.img is empty (0 bytes)",
                                                                  "Give the image its size first"]),
    ("sizelimit beyond the file", "loop_device", dict(file="{w}/disk.img", sizelimit="128MiB"),
     ["offset 0 plus sizelimit 134217728 reaches past the end of {w}/disk.img (67108864 bytes)",
      "Use a sizelimit of at most 67108864, or grow the image first"]),
    ("offset plus sizelimit beyond the file", "loop_device", dict(file="{w}/disk.img", offset="32MiB",
                                                                  sizelimit="48MiB"),
     ["reaches past the end", "Use a sizelimit of at most 33554432"]),
    ("offset past the end", "loop_device", dict(file="{w}/disk.img", offset="64MiB"),
     ["offset 67108864 is at or past the end of {w}/disk.img", "Use an offset inside the image"]),
    ("offset not a multiple of 512", "loop_device", dict(file="{w}/disk.img", offset=1000),
     ["offset 1000 is not a multiple of the 512-byte sector size", "Use 512 or 1024"]),
    ("sizelimit not a multiple of 512", "loop_device", dict(file="{w}/disk.img", sizelimit="1000B"),
     ["sizelimit 1000 is not a multiple of the 512-byte sector size", "Use 512 or 1024"]),
    ("offset not a multiple of sector_size", "loop_device", dict(file="{w}/disk.img", offset=512, sector_size=4096),
     ["offset 512 is not a multiple of the 4096-byte sector size", "Use 0 or 4096"]),
    ("sector_size 1000", "loop_device", dict(file="{w}/disk.img", sector_size=1000),
     ["sector_size", "one of: 512, 1024, 2048, 4096", "1000"]),
    ("offset that is no size", "loop_device", dict(file="{w}/disk.img", offset="lots"),
     ["offset 'lots' is not a size", "Use a number of bytes or a number with a unit"]),
    ("negative offset", "loop_device", dict(file="{w}/disk.img", offset="-512"), ["offset must not be negative"]),
    ("a device that is no loop device", "loop_device", dict(file="{w}/disk.img", device="/dev/sda1"),
     ["'/dev/sda1' is not a loop device name", "Name a loop device as /dev/loopN"]),
    ("a device path that climbs out", "loop_device", dict(file="{w}/disk.img", device="/dev/loop0/../sda"),
     ["is not a loop device name", "Name a loop device as /dev/loopN"]),
    ("info on a device that is no loop device", "loop_device_info", dict(device="/dev/null"),
     ["'/dev/null' is not a loop device name", "Name a loop device"]),
    ("info on a missing file", "loop_device_info", dict(file="{w}/missing.img"),
     ["cannot look up the loop devices of {w}/missing.img", "check the path"]),
    ("missing image", "image_partitions", dict(src="{w}/missing.img"),
     ["{w}/missing.img does not exist", "Create the image first, or fix src"]),
    ("a directory", "image_partitions", dict(src="{w}/adir"),
     ["{w}/adir is a directory, not an image or a block device", "Name the image file or the device itself"]),
    ("an empty image with a layout", "image_partitions", dict(src="{w}/empty.img", layout=GPT),
     ["a disk of 0 bytes is too small for a partition table", "Grow the image first"]),
    ("a layout larger than the image", "image_partitions",
     dict(src="{w}/disk.img", layout={"label": "gpt", "partitions": [{"size": "1GiB"}]}),
     ["partitions[0] does not fit", "Make the partitions smaller or the disk bigger"]),
    ("partitions that add up past the end", "image_partitions",
     dict(src="{w}/disk.img", layout={"label": "dos", "partitions": [{"size": "48MiB"}, {"size": "32MiB"}]}),
     ["partitions[1] does not fit", "Make the partitions smaller or the disk bigger"]),
    ("sector_size 1000", "image_partitions", dict(src="{w}/disk.img", sector_size=1000),
     ["sector_size", "one of: 512, 1024, 2048, 4096", "1000"]),
    ("a layout read-only", "image_partitions", dict(src="{w}/disk.img", layout=GPT, read_only=True),
     ["a layout cannot be written with read_only: true", "Drop read_only"]),
    ("a filesystem without a layout", "image_partitions", dict(src="{w}/fs.img"),
     ["{w}/fs.img has no partition table", "Give layout to create one"]),
    ("a filesystem with a layout", "image_partitions", dict(src="{w}/fs.img", layout=GPT),
     ["{w}/fs.img has no partition table but holds ext4 (label 'data')", "would destroy it", "force: true"]),
    ("a different table", "image_partitions",
     dict(src="{w}/gpt.img", layout={"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}),
     ["already has a different partition table: partition 1 spans", "Set force: true to replace it"]),
    ("a smaller size", "image_partitions", dict(src="{w}/gpt.img", layout=GPT, size="1MiB"),
     ["shrinking an image is not supported", "Declare a size of at least"]),
    ("a shrinking layout", "image_partitions",
     dict(src="{w}/gpt.img", layout={"label": "gpt", "partitions": [{"size": "1MiB"}, {}]}),
     ["shrinking a partition is not supported", "Set force: true to replace it"]),
    ("size with read_only", "image_partitions", dict(src="{w}/gpt.img", size="1GiB", read_only=True),
     ["cannot be used with read_only: true", "Drop read_only"]),
    ("a truncated gpt image", "image_partitions", dict(src="{w}/short-gpt.img"),
     ["both GPT headers are invalid", "the image was truncated", "recreate it"]),
    ("a truncated gpt image with its layout", "image_partitions", dict(src="{w}/short-gpt.img", layout=GPT),
     ["both GPT headers are invalid", "recreate it"]),
    ("a truncated dos image", "image_partitions", dict(src="{w}/short-dos.img"),
     ["ends past the end of the image", "grow the image"]),
    ("a gpt with bad checksums", "image_partitions", dict(src="{w}/crc.img"),
     ["both GPT headers are invalid", "header CRC32 is 0xffffffff", "recover it"]),
    ("missing image", "image_mount", dict(src="{w}/missing.img", path="{w}/mnt"),
     ["src {w}/missing.img does not exist", "Create the image first, or fix src"]),
    ("a corrupt superblock", "image_mount", dict(src="{w}/broken.img", path="{w}/mnt"),
     ["no filesystem was recognized in {w}/broken.img", "Give fstype"]),
    ("a corrupt superblock, fstype given", "image_mount", dict(src="{w}/broken.img", path="{w}/mnt", fstype="ext4"),
     ["Can't find ext4 filesystem"]),
    ("a truncated partitioned image", "image_mount", dict(src="{w}/short-dos.img", path="{w}/mnt", partition=2),
     ["ends past the end of the image", "grow the image"]),
    ("a truncated gpt image", "image_mount", dict(src="{w}/short-gpt.img", path="{w}/mnt", partition=1),
     ["both GPT headers are invalid", "recreate it"]),
    ("a partitioned image without a selector", "image_mount", dict(src="{w}/gpt.img", path="{w}/mnt"),
     ["{w}/gpt.img holds a gpt partition table, not a filesystem", "Select the partition to mount"]),
    ("a partition that is not there", "image_mount", dict(src="{w}/gpt.img", path="{w}/mnt", partition=7),
     ["no partition has partition 7", "Fix partition"]),
    ("an empty partition", "image_mount", dict(src="{w}/gpt.img", path="{w}/mnt", partition=1),
     ["no filesystem was recognized in {w}/gpt.img partition 1", "Give fstype"]),
    ("a relative path", "image_mount", dict(src="{w}/fs.img", path="mnt"),
     ["'mnt' is not an absolute path", "Give the mount point as /some/dir"]),
]


KERNEL_DECIDES = ("a corrupt superblock, fstype given",)


@pytest.mark.parametrize("case,name,args,words", BAD_INPUT, ids=["%s: %s" % (c[1], c[0]) for c in BAD_INPUT])
def test_bad_input_is_a_clear_error_and_changes_nothing(images, case, name, args, words):
    w = str(images)
    args = json.loads(json.dumps(args).replace("{w}", w))
    words = [word.replace("{w}", w) for word in words]
    with unchanged(images):
        # check mode cannot know what only the kernel tells when mounting
        for check_mode in ((False,) if case in KERNEL_DECIDES else (True, False)):
            refused(run_module(name, check_mode=check_mode, **args), *words)
    assert not os.path.exists(os.path.join(w, "mnt"))          # no mount point made either

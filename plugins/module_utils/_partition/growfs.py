# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grow the filesystem in a partition of an image to fill the partition.

Each filesystem is grown through a loop device of its own, attached at the
partition's offset and size with autoclear and held open by this process
(``loopdev.attach_held``): whatever happens, the device goes away when its
last user lets go, and nothing else sees it as a disk with a partition table.

* ext2/3/4 offline: ``e2fsck -f -p`` (resize2fs insists on a checked
  filesystem), then ``resize2fs``;
* xfs and btrfs can only grow mounted: a child process in a mount
  namespace of its own (``_kernel/namespace.run_private``) mounts the
  filesystem on an empty temporary directory, runs ``xfs_growfs`` or
  ``btrfs filesystem resize max`` and unmounts. The mount is never visible
  on the host, and the kernel drops it with the namespace if the child
  dies. The directory is removed afterwards (and a stale one from a killed
  run on the next growth).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import shutil
import subprocess
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fssize
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

TEMP_PREFIX = "diskimage-loop-grow-"
# The package each tool comes with, for the error when it is missing.
PACKAGES = {"e2fsck": "e2fsprogs", "resize2fs": "e2fsprogs", "xfs_growfs": "xfsprogs", "btrfs": "btrfs-progs"}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# e2fsck exit codes that mean the filesystem is consistent now (0 clean, 1 fixed, 2 fixed + reboot).
_E2FSCK_OK = (0, 1, 2)


def tool(name):
    """The path of a grow tool; sbin directories count even when PATH lacks them."""
    path = os.pathsep.join([os.environ.get("PATH", "")] + list(_SBIN))
    found = shutil.which(name, path=path)
    if found is None:
        raise DiskImageError("%s is needed to grow this filesystem and is not installed" % name,
                             hint="Install %s on the target, or set grow_filesystem: false" % PACKAGES[name])
    return found


def tools_for(fstype):
    """The tools growing ``fstype`` needs (checked before anything changes)."""
    if fstype in ("ext2", "ext3", "ext4"):
        return ["e2fsck", "resize2fs"]
    return {"xfs": ["xfs_growfs"], "btrfs": ["btrfs"]}.get(fstype, [])


def _run(argv, what, ok=(0,)):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0].decode("utf-8", "replace").strip()
    if proc.returncode not in ok:
        tool_name = os.path.basename(argv[0])
        raise DiskImageError("%s failed (%s exited with %d): %s" % (what, tool_name, proc.returncode, out[-2000:]),
                             hint="Check the filesystem (fsck) and run the task again")
    return out


def _grow_in_namespace(device, fstype, where, argv):
    """In the child's private mount namespace: the mount, the tool, the unmount."""
    mountsys.mount(device, where, fstype)
    try:
        proc = subprocess.Popen(argv + [where], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        output = proc.communicate()[0].decode("utf-8", "replace").strip()[-2000:]
        return {"rc": proc.returncode, "output": output}
    finally:
        mountsys.umount2(where)


def _grow_mounted(device, fstype, argv, what):
    # only xfs and btrfs growth needs it: a run that grows nothing does not compile it
    from ansible_collections.diskimage.loop.plugins.module_utils._kernel import namespace

    _sweep_stale_dirs()
    where = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    try:
        report = namespace.run_private(_grow_in_namespace, device, fstype, where, argv)
    except DiskImageError as exc:
        report = {"error": str(exc)}
    finally:
        _remove_dir(where)
    if report.get("error") or report.get("rc") != 0:
        raise DiskImageError("%s failed: %s" % (what, report.get("error") or report.get("output")),
                             hint="Check the filesystem (%s) and run the task again"
                                  % ("xfs_repair -n" if fstype == "xfs" else "btrfs check"))
    return report.get("output", "")


def _remove_dir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass  # still a mount point in a namespace that is going away: the next sweep takes it


def _sweep_stale_dirs():
    """Empty directories a killed run left behind (rmdir never removes anything else)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), TEMP_PREFIX + "*")):
        _remove_dir(path)


def grow(image, start, size, fstype):
    """Grow the ``fstype`` filesystem at byte ``start`` of ``image`` to fill
    ``size`` bytes; returns its FsGeometry afterwards."""
    status, fd = loopdev.attach_held(image, offset=start, sizelimit=size)
    try:
        device = status.device
        what = "growing the %s filesystem at offset %d of %s" % (fstype, start, image)
        if fstype in ("ext2", "ext3", "ext4"):
            _run([tool("e2fsck"), "-f", "-p", device], "checking the %s filesystem before %s" % (fstype, what),
                 ok=_E2FSCK_OK)
            _run([tool("resize2fs"), device], what)
        elif fstype == "xfs":
            _grow_mounted(device, fstype, [tool("xfs_growfs")], what)
        elif fstype == "btrfs":
            _grow_mounted(device, fstype, [tool("btrfs"), "filesystem", "resize", "max"], what)
        else:
            raise DiskImageError("a %s filesystem cannot be grown" % fstype)
    finally:
        os.close(fd)
        loopdev.wait_released(status)
    return fssize.geometry(image, start, fstype)

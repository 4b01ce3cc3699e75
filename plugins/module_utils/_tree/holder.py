# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process that holds an image's tree for the image connection plugin.

Started with a JSON request on its first stdin line, it makes a private mount
namespace, mounts the image's tree there (plan.py, mount.py), prepares a
working root (workroot.py) and, for a foreign architecture, registers
qemu-user-static (binfmt.py). An image that is not raw (qcow2, VMDK, VHDX)
is connected to a /dev/nbdN first, before the unshare, and the tree is
mounted from a loop device over that device (_nbd/held.py). It answers
with one JSON line, then waits: the connection runs commands by entering
its namespace (namespace.enter). End of
stdin (the connection closed it, or died) or SIGTERM tears everything down
and a last JSON line reports what was undone. If this process is killed, the
kernel drops the namespace with its mounts when the last process in it exits,
and the autoclear loop device goes with them; the nbd connection, whose
record names this process as its holder, is taken down by the next connect
of any module of the collection (_nbd/connect.reap).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import select
import signal
import sys
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import namespace as kernel_namespace
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import formats
from ansible_collections.diskimage.loop.plugins.module_utils._nbd.held import Held
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._tree import binfmt, namespace
from ansible_collections.diskimage.loop.plugins.module_utils._tree.mount import TreeMount
from ansible_collections.diskimage.loop.plugins.module_utils._tree.workroot import WorkRoot

TMP_PREFIX = "diskimage-image."
OWNER = "image connection"  # what the record of an nbd connection names
_TMP_RE = re.compile(r"^diskimage-image\.(\d+)\.")


def _say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def sweep_stale_dirs(base):
    """Remove the (empty, in the host's view) tree directories of dead runs."""
    for name in os.listdir(base):
        match = _TMP_RE.match(name)
        if match and not os.path.exists("/proc/%s" % match.group(1)):
            try:
                os.rmdir(os.path.join(base, name))
            except OSError:
                pass


def refuse_in_use(image):
    """Mounting one filesystem through two devices at once corrupts it: an image
    attached anywhere (mounted by image_mount, a role, by hand) is refused."""
    try:
        attached = loopdev.find_associated(image)
    except DiskImageError:
        return  # a missing image is reported by the mount, with its own words
    if attached:
        raise DiskImageError("%s is attached to %s already" % (image, ", ".join(a.device for a in attached)),
                             errno=errno.EBUSY,
                             hint="Unmount and detach it first (image_mount state=unmounted, loop_device state=absent): "
                                  "one filesystem mounted twice is corrupted")


def image_format(image, declared="auto"):
    """The format to serve the image as: ``declared``, or what its header says
    (formats.resolve). An image that cannot be read is left to the mount,
    which reports it with its own words."""
    if declared == formats.RAW:
        return formats.RAW
    try:
        header = formats.read_header(image)
    except DiskImageError:
        return formats.RAW
    return formats.resolve(image, declared, header)


class Holder(object):

    def __init__(self, request):
        self.request = request
        self.tree = None
        self.work = None
        self.binfmt_name = None
        self.base = None
        self.private_ns = None  # the mount namespace of its own, once unshare succeeded
        self.held = None  # the nbd connection of an image that is not raw

    def setup(self):
        req = self.request
        base_dir = tempfile.gettempdir()
        sweep_stale_dirs(base_dir)
        self.base = os.path.join(base_dir, "%s%d.%s" % (TMP_PREFIX, os.getpid(), os.urandom(3).hex()))
        os.mkdir(self.base, 0o700)
        refuse_in_use(req["image"])
        read_only = req.get("read_only", False)
        disk = req["image"]
        fmt = image_format(disk, req.get("image_format") or "auto")
        if fmt != formats.RAW:
            # connected before the unshare: qemu-nbd must not live in (and keep) the private namespace
            held = Held(disk, fmt, OWNER, read_only=read_only)
            disk = held.__enter__().device  # nothing stays connected when it fails
            self.held = held
        self.private_ns = namespace.unshare_private()
        self.tree = TreeMount(disk, self.base, read_only=read_only)
        plan = self.tree.plan(req.get("mounts") or (), req.get("auto_exclude") or ())
        self.tree.attach()
        mounted = self.tree.mount(plan, req.get("esp_path") or "")
        arch = req.get("arch") or binfmt.tree_machine(self.base)
        emulated = not binfmt.is_native(arch)
        if emulated:
            interpreter = binfmt.find_emulator(arch, req.get("emulator"))
            binfmt.ensure_mounted()
            binfmt.sweep_stale()
            self.binfmt_name = binfmt.register(arch, interpreter)
        self.work = WorkRoot(self.base, writable=not req.get("read_only", False))
        self.work.kernel_trees()
        if req.get("resolv_conf", True):
            self.work.resolver()
        if req.get("service_guard", True):
            self.work.service_guard()
        return {"ok": True, "pid": os.getpid(), "namespace": self.private_ns, "root": self.base, "arch": arch, "emulated": emulated,
                "binfmt": self.binfmt_name, "loop": self.tree.loop.device, "image_format": fmt,
                "nbd_device": disk if self.held is not None else None,
                "mounted": [{"path": m["path"], "device": m["device"], "fstype": m["fstype"]} for m in mounted],
                "prepared": self.work.done}

    def teardown(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the teardown short
        done, problems, tree_problems = [], [], []
        if self.private_ns:
            try:
                left = namespace.kill_members(self.private_ns)
            except DiskImageError as exc:
                left = []
                problems.append(str(exc))
            if left:
                problems.append("processes %s in the image would not die" % ", ".join(str(p) for p in left))
        if self.work is not None:
            d, p = self.work.undo()
            done += d
            problems += p
        if self.tree is not None:
            d, tree_problems = self.tree.close()
            done += d
            problems += tree_problems
        if self.held is not None:
            d, p = self._disconnect(tree_closed=not tree_problems)
            done += d
            problems += p
        if self.binfmt_name:
            try:
                binfmt.unregister(self.binfmt_name)
                done.append("removed the binfmt_misc entry %s" % self.binfmt_name)
            except DiskImageError as exc:
                problems.append(str(exc))
        if self.base and os.path.isdir(self.base):
            try:
                os.rmdir(self.base)
            except OSError as exc:
                # Never rmtree: the image's files may still be mounted there.
                problems.append("could not remove %s: %s" % (self.base, exc))
        return {"done": done, "problems": problems}

    def _disconnect(self, tree_closed):
        """Flush and disconnect the nbd device, once nothing is mounted from it.
        When the tree did not come down cleanly, the device is left to the next
        connect's reaping, which takes it down once this process is gone and
        the kernel has dropped its namespace."""
        device = self.held.connection.device
        if not tree_closed:
            return [], ["%s stays connected until this process has exited; the next connect takes it down" % device]
        try:
            self.held.release()
        except (DiskImageError, OSError) as exc:
            return [], ["could not disconnect %s: %s" % (device, exc)]
        return ["disconnected %s" % device], []


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def wait_for_close(watch_pid=None, interval=0.5):
    """Until stdin ends (the connection closed it or died), or ``watch_pid``
    (the controller's main process, whose death leaves its workers running a
    task to its end) is gone."""
    while True:
        ready, _w, _x = select.select([sys.stdin], [], [], interval)
        if ready and not sys.stdin.readline():
            return
        if watch_pid and not _alive(watch_pid):
            return


def _stop(_signum, _frame):
    raise SystemExit(0)


def main():
    # SIGTERM, not SIGKILL, when the Ansible worker dies: the teardown still runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller's Ctrl-C: it closes us
    signal.signal(signal.SIGTERM, _stop)
    kernel_namespace.die_with_parent(signal.SIGTERM)
    holder = Holder(json.loads(sys.stdin.readline()))
    try:
        try:
            _say(holder.setup())
        except (DiskImageError, OSError) as exc:
            _say({"ok": False, "msg": str(exc)})
            return
        wait_for_close(holder.request.get("watch_pid"))
    finally:
        _say(holder.teardown())


if __name__ == "__main__":
    main()

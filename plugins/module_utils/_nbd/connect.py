# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connect an image to a free /dev/nbdN through qemu-nbd, and take it down again.

The discipline of the loop core, for NBD:

* a free device is chosen and connected under one lock (``LOCK``), so two runs
  never pick the same one; a client outside the lock that takes it first makes
  qemu-nbd fail with "Failed to set NBD socket" (EBUSY), and only that error
  moves on to the next free device, at most ``TRIES`` times;
* after connecting, the connection is verified: the kernel's NBD_DO_IT task
  belongs to a server this run started (known by its command line, which
  names the pid file of this device), that server holds
  the image open, the size is the image's, read-only when asked;
* a record under /run says which module connected the device and which server
  and image it was, written *before* qemu-nbd starts: a run killed at any
  point leaves a record naming the server, which a rerun recognises (it still
  serves the image: reused or disconnected) or cleans up (a server that never
  got its device is stopped);
* every failure after qemu-nbd started disconnects and stops what it started;
* a connection made for one process only (``holder``: its pid and start
  time, see ``holder_of``) is taken down by the next ``reap`` once that
  process is gone and nothing uses the device: a module that mounts the
  image in a mount namespace of its own (image_files) leaves no mount when it
  is killed, so its device is unused and nobody else would disconnect it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blockdev, nbd
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.flock import Key, Locks
from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._loop import ownership
from ansible_collections.diskimage.loop.plugins.module_utils._loop import query as loop_query
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import server
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

RECORD_DIR = os.path.join(ownership.RUN_DIR, "nbd")
LOCK_DIR = os.path.join(ownership.RUN_DIR, "locks")
# After the image, extent and loop locks in the order of _mount/locks.py: taken
# by this module alone, around choosing and connecting a device.
LOCK = Key(7, "nbd-allocation", what="NBD device allocation")
LOCK_WAIT = 600.0
TRIES = 4
CONNECT_TIMEOUT = 60.0
READY_WAIT = 60.0
EXIT_WAIT = 10.0
# How long a dead holder's device may take to become unused: the kernel drops
# the mounts of its namespace and clears the autoclear loop devices over it
# after the process is gone, not at the instant it dies.
UNUSED_WAIT = 5.0
BUSY_SIGNS = ("Failed to set NBD socket", "Device or resource busy")
SEARCH_PATH = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin")


# --- records --------------------------------------------------------------------

def _record_path(number, run_dir=RECORD_DIR):
    return os.path.join(run_dir, "nbd%d.json" % number)


def pid_file(number, run_dir=RECORD_DIR):
    return os.path.join(run_dir, "nbd%d.pid" % number)


def _write_record(number, record, run_dir=RECORD_DIR):
    try:
        os.makedirs(run_dir, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise DiskImageError.from_oserror("cannot create %s" % run_dir, exc)
    fd, tmp = tempfile.mkstemp(prefix=".nbd%d." % number, dir=run_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, _record_path(number, run_dir))


def read_record(number, run_dir=RECORD_DIR):
    """The record of /dev/nbdN, with ``pids``: the qemu-nbd processes started for it."""
    try:
        with open(_record_path(number, run_dir)) as handle:
            record = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    record["pids"] = server.started_with(pid_file(number, run_dir), number)
    return record


def forget(number, run_dir=RECORD_DIR):
    for path in (_record_path(number, run_dir), pid_file(number, run_dir)):
        try:
            os.unlink(path)
        except OSError:
            pass


def owner(current, run_dir=RECORD_DIR):
    """The module that connected ``current`` (a server.Connection), or None
    when its record is of another server or another image (made by hand)."""
    record = read_record(current.number, run_dir)
    if record is None or current.pid not in record["pids"] or tuple(record.get("identity") or ()) != current.identity:
        return None
    return record.get("owner")


def records(run_dir=RECORD_DIR):
    """{number: record} of every record there is."""
    found = {}
    try:
        names = os.listdir(run_dir)
    except OSError:
        return found
    for name in names:
        if name.startswith("nbd") and name.endswith(".json") and name[3:-5].isdigit():
            record = read_record(int(name[3:-5]), run_dir)
            if record is not None:
                found[int(name[3:-5])] = record
    return found


# --- holders ---------------------------------------------------------------------

def _start_time(pid, proc):
    # imported here: a module that only reads (image_mount's look) does not compile it
    from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders
    return holders.start_time(pid, proc)


def holder_of(pid=None, proc=nbd.PROC):
    """The holder record of process ``pid`` (this one by default): {pid, start}."""
    pid = pid or os.getpid()
    return {"pid": pid, "start": _start_time(pid, proc)}


def holder_alive(holder, proc=nbd.PROC):
    """Is the process a record's ``holder`` names still there? A record
    without a holder belongs to no process (image_partitions, image_mount):
    always alive."""
    if not holder:
        return True
    start = _start_time(holder.get("pid"), proc)
    return start is not None and start == holder.get("start")


def in_use(number):
    """Why /dev/nbdN cannot be disconnected: mounts, holders, loop devices over it."""
    device = nbd.device_path(number)
    reasons = blockdev.busy_reasons("nbd%d" % number)
    reasons += ["%s is backed by it" % found.device for found in loop_query.list_attached()
                if found.backing_file == device]
    return reasons


# --- the server -------------------------------------------------------------------

def qemu_nbd():
    found = shutil.which(server.SERVER) or shutil.which(server.SERVER, path=os.pathsep.join(SEARCH_PATH))
    if not found:
        raise DiskImageError("qemu-nbd is not installed; it serves images that are not raw (qcow2, VMDK, VHDX)",
                             hint="Install it (apt-get install qemu-utils, dnf install qemu-img), or convert "
                                  "the image to raw with qemu-img convert")
    return found


def ensure_module():
    """The kernel's nbd devices, loading the nbd module when there are none."""
    if nbd.available():
        return
    modprobe = shutil.which("modprobe") or shutil.which("modprobe", path=os.pathsep.join(SEARCH_PATH))
    if modprobe:
        subprocess.run([modprobe, "nbd"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        wait_until(nbd.available, 5.0)
    if not nbd.available():
        raise DiskImageError("this kernel has no nbd devices (/sys/block/nbd0 is missing), which images that "
                             "are not raw need", errno=errno.ENODEV,
                             hint="Load the nbd module (modprobe nbd), or convert the image to raw")


def stop_server(pid, number):
    """Stop a qemu-nbd this collection started for /dev/nbdN (it is checked to be one)."""
    if pid is None or not server.is_server(pid, number):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            return
        if wait_until(lambda: not server.is_server(pid, number), EXIT_WAIT / 2):
            return


def take_down(number, pid=None, run_dir=RECORD_DIR):
    """Disconnect /dev/nbdN, wait for its server to exit (it closes the image,
    flushing it), stop it if it does not, and drop the record."""
    nbd.disconnect(number)
    wait_until(lambda: nbd.task_of(number) is None, EXIT_WAIT)
    if pid is not None and not wait_until(lambda: not server.is_server(pid, number), EXIT_WAIT):
        stop_server(pid, number)
    forget(number, run_dir)
    if nbd.task_of(number) is not None:
        raise DiskImageError("%s is still connected after the disconnect" % nbd.device_path(number),
                             errno=errno.EBUSY, hint="Something holds it open; see fuser -v %s"
                             % nbd.device_path(number))


def take_down_unused(number, pid, wait, run_dir=RECORD_DIR):
    """``take_down`` /dev/nbdN (served by ``pid``) once nothing uses it,
    waiting up to ``wait`` seconds for that; True when it went."""
    if not wait_until(lambda: not in_use(number), wait):
        return False
    take_down(number, pid, run_dir)
    return True


def reap(run_dir=RECORD_DIR):
    """Clean up after runs killed while they connected: called under ``LOCK``,
    so no record belongs to a connect in progress. A record whose server
    serves its device stays, unless its holder process is gone and nothing
    uses the device any more (then it is taken down); a server that never got
    its device (its run killed between starting it and verifying) is given
    the time a connect takes, then stopped; the record goes with it."""
    for number, record in sorted(records(run_dir).items()):
        if record["pids"]:
            # read again at every look: the server that connects may be the
            # child of the --fork process that was found first
            def started(number=number):
                return server.started_with(pid_file(number, run_dir), number)

            wait_until(lambda: _serves(number, started()) or not started(), READY_WAIT)
            if _serves(number, started()):
                if not holder_alive(record.get("holder")):
                    # its holder is gone; something else may use it now, and then it stays
                    take_down_unused(number, nbd.process_of_task(nbd.task_of(number)), UNUSED_WAIT, run_dir)
                continue
            for pid in started():
                stop_server(pid, number)
        forget(number, run_dir)


def _serves(number, pids):
    """Does one of ``pids`` serve /dev/nbdN (its task is in NBD_DO_IT)? Asked of
    the device, not of the image's path: a server whose image file was renamed
    or replaced since still serves it, and may hold mounted filesystems."""
    task = nbd.task_of(number)
    return task is not None and nbd.process_of_task(task) in pids


# --- connecting -------------------------------------------------------------------

def _run_server(number, path, fmt, read_only, run_dir):
    command = [qemu_nbd(), "--connect=%s" % nbd.device_path(number), "--format=%s" % fmt, "--fork",
               "--pid-file=%s" % pid_file(number, run_dir), "--cache=writeback"]
    if read_only:
        command.append("--read-only")
    command += ["--", path]
    # stderr to a file, not a pipe: the daemon must never keep a pipe of the
    # module open; a process group of its own, so a signal to the play does not reach it.
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                  timeout=CONNECT_TIMEOUT, start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            return 124, "qemu-nbd did not connect within %d s" % CONNECT_TIMEOUT
        errors.seek(0)
        return proc.returncode, errors.read().decode("utf-8", "replace").strip()


def verify(number, pids, ident, read_only, size=None):
    """The Connection of /dev/nbdN once it is up, checked to be this run's:
    one of the servers ``pids`` it started, serving the image ``ident``, of
    ``size`` bytes."""
    device = nbd.device_path(number)
    # the kernel shows the task in NBD_DO_IT a moment before the device's size
    wait_until(lambda: nbd.task_of(number) is not None and nbd.size_bytes(number), READY_WAIT)
    current = server.connection(number)
    if current is None or current.pid not in pids or current.identity != ident:
        raise DiskImageError("%s is not served by the qemu-nbd this run started (pid %s) with the image; found %r"
                             % (device, ", ".join(str(p) for p in pids) or "none", current), errno=errno.EBUSY,
                             hint="Another NBD client took the device; run the task again")
    if size is not None and current.size != size:
        raise DiskImageError("%s shows %d bytes, and the image declares %d" % (device, current.size, size),
                             hint="Check the image with qemu-img check")
    if not current.size:
        raise DiskImageError("%s shows no bytes of the image" % device, hint="Check the image with qemu-img check")
    if read_only and not current.read_only:
        raise DiskImageError("%s is writable, though it was connected read-only" % device)
    return current


def connect(path, fmt, read_only, owner_name, size=None, run_dir=RECORD_DIR, holder=None):
    """Connect the image ``path`` (format ``fmt``) to a free /dev/nbdN; the
    verified server.Connection. Nothing is left connected when it fails.
    The caller holds ``settled()``: no other run of ours picks a device meanwhile.
    ``holder`` (``holder_of()``): the process the connection is for, after
    whose end ``reap`` takes it down."""
    ensure_module()
    binary = qemu_nbd()
    ident = server.identity(path)
    if ident is None:
        raise DiskImageError("cannot read %s" % path, errno=errno.ENOENT)
    tried, last = [], None
    for _attempt in range(TRIES):
        free = server.free_numbers(nbd.numbers(), nbd.task_of, nbd.size_bytes,
                                   skip=tried + sorted(records(run_dir)))
        if not free:
            raise DiskImageError("no free nbd device: all %d are connected" % len(nbd.numbers()),
                                 errno=errno.EBUSY, hint="Disconnect one, or load nbd with more devices "
                                 "(modprobe nbd nbds_max=64 after rmmod nbd)")
        number = free[0]
        tried.append(number)
        _write_record(number, {"owner": owner_name, "image": path, "identity": list(ident), "format": fmt,
                               "read_only": bool(read_only), "server": binary, "holder": holder}, run_dir)
        code, message = _run_server(number, path, fmt, read_only, run_dir)
        pids = server.started_with(pid_file(number, run_dir), number)
        if code != 0:
            _clean_failed(number, pids, run_dir)
            last = message or "qemu-nbd exited with %d" % code
            if any(sign in message for sign in BUSY_SIGNS):
                continue  # taken by a client outside our lock: the next free one
            raise DiskImageError("qemu-nbd cannot serve %s on %s: %s" % (path, nbd.device_path(number), last),
                                 hint=_hint(last))
        try:
            return verify(number, pids, ident, read_only, size)
        except BaseException:
            _clean_failed(number, pids, run_dir)
            raise
    raise DiskImageError("no nbd device could be connected after %d tries (%s): %s" % (
        TRIES, ", ".join(nbd.device_path(n) for n in tried), last), errno=errno.EBUSY,
        hint="Other NBD clients are taking devices; run the task again")


def _clean_failed(number, pids, run_dir):
    current = server.connection(number)
    if current is not None and current.pid in pids:
        try:
            take_down(number, current.pid, run_dir)
        except DiskImageError:
            pass
    for pid in pids:
        stop_server(pid, number)
    forget(number, run_dir)


def _hint(message):
    if "lock" in message:
        return "Another program (a VM, another qemu-nbd) has the image open; stop it first, or use read_only"
    return "Check the image with qemu-img check, and image_format"


class settled(object):
    """``with settled():`` - the allocation lock held, and (unless ``check_mode``,
    which changes nothing) what killed runs left cleaned up."""

    def __init__(self, run_dir=RECORD_DIR, wait=LOCK_WAIT, check_mode=False):
        self.locks = Locks(LOCK_DIR, wait)
        self.run_dir = run_dir
        self.check_mode = check_mode

    def __enter__(self):
        self.locks.take([LOCK])
        if not self.check_mode:
            reap(self.run_dir)
        return self

    def __exit__(self, *exc):
        self.locks.release()
        return False

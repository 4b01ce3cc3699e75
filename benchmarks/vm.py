# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot the VM of scripts/vm-tests.sh and run the device-mapper benchmark in it.

The same mechanism and settings as that script: virtme-ng boots the newest
/boot/vmlinuz-* (a full distribution kernel, with dm_mod) on the host's own root
filesystem, read-only in the guest, so the guest runs this checkout with the
venv's Python; one writable directory brings dm.json back. Honours VM_KERNEL,
VM_MEMORY, VM_CPUS, VM_TIMEOUT and VM_KVM as scripts/vm-tests.sh does.
"""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

from common import HERE, Group

BENCH = os.path.join(HERE, "bench.py")


def _version_key(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def newest_kernel():
    images = sorted(glob.glob("/boot/vmlinuz-*"), key=_version_key)
    return images[-1] if images else None


def _vng():
    here = os.path.join(os.path.dirname(sys.executable), "vng")
    return here if os.access(here, os.X_OK) else shutil.which("vng")


def _why_not(kernel, vng):
    """Why the VM cannot be booted here, or None."""
    if not kernel:
        return "no kernel image in /boot (set VM_KERNEL)"
    if not os.access(kernel, os.R_OK):
        return "cannot read %s" % kernel
    version = os.path.basename(kernel)[len("vmlinuz-"):]
    if not os.path.isdir(os.path.join("/lib/modules", version)):
        return "no modules for %s in /lib/modules" % version
    if vng is None:
        return "virtme-ng (vng) is not installed"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed"
    return None


def run_dm_in_vm(workdir, quick):
    """([Group], notes) measured in the guest; ([], [reason]) when it did not run."""
    kernel = os.environ.get("VM_KERNEL") or newest_kernel()
    vng = _vng()
    reason = _why_not(kernel, vng)
    if reason:
        return [], [reason]
    out = os.path.join(workdir, "vm")
    os.makedirs(out)
    inner = "cd %s && PYTHONDONTWRITEBYTECODE=1 exec %s %s --vm-guest %s%s" % (
        shlex.quote(os.path.dirname(HERE)), shlex.quote(sys.executable), shlex.quote(BENCH),
        shlex.quote(out), " --quick" if quick else "")
    kvm = os.environ.get("VM_KVM", "0") == "1"
    cmd = [vng, "--run", kernel, "--memory", os.environ.get("VM_MEMORY", "2G"),
           "--cpus", os.environ.get("VM_CPUS", "2"), "--user", "root", "--rwdir", out, "--exec", inner]
    if not kvm:
        cmd.append("--disable-kvm")
    env = dict(os.environ, PATH=os.path.dirname(vng) + os.pathsep + os.environ.get("PATH", ""))
    timeout = int(os.environ.get("VM_TIMEOUT", "900"))
    started = time.monotonic()
    # its own session, so that a timeout takes qemu down with vng; QEMU reopens
    # its stdout, which through a pipe keeps the output in order
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True, universal_newlines=True, errors="replace")
    try:
        log, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            log, _err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _err = proc.communicate()
        log += "\n(timed out after %d s)" % timeout
    elapsed = time.monotonic() - started
    result_path = os.path.join(out, "dm.json")
    if not os.path.exists(result_path):
        sys.stderr.write("vm: the guest wrote no results (vng exit %s after %.0f s); last lines:\n%s\n"
                         % (proc.returncode, elapsed, "\n".join(log.splitlines()[-25:])))
        return [], ["the VM did not run (vng exit %s)" % proc.returncode]
    with open(result_path, encoding="utf-8") as handle:
        result = json.load(handle)
    if result.get("error"):
        return [], ["the guest failed: %s" % result["error"]]
    notes = ["guest: Linux %s, %d vCPUs, %s, QEMU %s, udev %s; %.0f s with boot; /bin/true there: %.1f ms" % (
        result["kernel"], result["cpus"], os.environ.get("VM_MEMORY", "2G"), "with KVM" if kvm else "TCG (no KVM)",
        "running" if result["udev"] else "not running", elapsed, result["process_start"] * 1e3)]
    return [Group.from_dict(data) for data in result["groups"]], notes

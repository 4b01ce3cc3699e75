# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the VM tier: commands, images, and a per-test undo list.

The command-line tools (losetup, sfdisk, kpartx, dmsetup) serve only as fixture
helpers and test oracles; the code under test never calls them.
"""

import json
import os
import subprocess
import time

IN_VM = os.environ.get("DISKIMAGE_VM_TIER") == "1" and os.path.exists("/dev/mapper/control")

SECTOR = 512
MIB = 1024 * 1024

# The seed's worked example: three primaries, an extended partition, and logical
# partitions p5-p8 inside it (sfdisk leaves a 1 MiB gap for each EBR), as an sfdisk script.
SEED_SFDISK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seed.sfdisk")
with open(SEED_SFDISK) as _handle:
    SEED_LAYOUT = _handle.read()
SEED_IMAGE_SIZE = 80 * MIB


def run(*cmd, **kwargs):
    """Run a command; on failure raise with its output, which pytest then shows."""
    check = kwargs.pop("check", True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s"
                             % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc


def wait_for(predicate, timeout=10.0, what="condition"):
    """Poll until predicate() is true; udev and the kernel act asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def dm_devices():
    """{name: uuid} of every device-mapper device, read from sysfs."""
    found = {}
    for entry in os.listdir("/sys/block"):
        base = os.path.join("/sys/block", entry, "dm")
        if os.path.isdir(base):
            with open(os.path.join(base, "name")) as handle:
                name = handle.read().strip()
            with open(os.path.join(base, "uuid")) as handle:
                found[name] = handle.read().strip()
    return found


def bound_loops():
    """Names of loop devices that have a backing file."""
    return {entry for entry in os.listdir("/sys/block")
            if entry.startswith("loop") and os.path.isdir(os.path.join("/sys/block", entry, "loop"))}


def dmsetup_remove(name):
    """Remove one map; --retry rides out udev's short-lived opens."""
    if name in dm_devices():
        run("dmsetup", "remove", "--retry", name)


def detach(device):
    """losetup -d, then wait: while udev still has the device open the kernel
    only marks it autoclear and lets go on the last close."""
    run("losetup", "-d", device)
    name = os.path.basename(device)
    wait_for(lambda: name not in bound_loops(), what="%s to detach" % device)


class Scratch(object):
    """Images, loop devices, maps and mounts of one test, undone in reverse order."""

    def __init__(self, directory):
        self.directory = str(directory)
        self._undo = []

    def defer(self, what, func, *args):
        self._undo.append((what, func, args))

    def close(self):
        errors = []
        while self._undo:
            what, func, args = self._undo.pop()
            try:
                func(*args)
            except Exception as exc:  # keep going: every later step still has to run
                errors.append("%s: %s" % (what, exc))
        if errors:
            raise AssertionError("cleanup failed:\n" + "\n".join(errors))

    def image(self, name="disk.img", size=SEED_IMAGE_SIZE, layout=None):
        """A sparse image file, optionally partitioned by an sfdisk script."""
        path = os.path.join(self.directory, name)
        with open(path, "wb") as handle:
            handle.truncate(size)
        if layout is not None:
            run("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path, input=layout)
        return path

    def seed_image(self, name="seed.img"):
        return self.image(name, SEED_IMAGE_SIZE, SEED_LAYOUT)

    def attach(self, path, partscan=False, read_only=False):
        """losetup -f; the device is detached at teardown."""
        cmd = ["losetup", "--find", "--show"]
        if partscan:
            cmd.append("--partscan")
        if read_only:
            cmd.append("--read-only")
        device = run(*(cmd + [path])).stdout.strip()
        self.defer("detach " + device, detach, device)
        return device

    def undo(self, what):
        """Run one deferred step now (an unmount in the middle of a test, say)."""
        for index in range(len(self._undo) - 1, -1, -1):
            if self._undo[index][0] == what:
                _what, func, args = self._undo.pop(index)
                return func(*args)
        raise KeyError(what)

    def track_map(self, name):
        """Remove this map at teardown if it still exists."""
        self.defer("remove map " + name, dmsetup_remove, name)

    def mount(self, device, target, *options):
        os.makedirs(target, exist_ok=True)
        run("mount", *(list(options) + [device, target]))
        self.defer("unmount " + target, run, "umount", target)
        return target


def sfdisk_partitions(path):
    """[(number, start, size, is_extended)] in 512-byte sectors, from sfdisk --json."""
    table = json.loads(run("sfdisk", "--json", path).stdout)["partitiontable"]
    assert table.get("sectorsize", SECTOR) == SECTOR
    parts = []
    for entry in table["partitions"]:
        # nodes are PATH + N, or PATH + "p" + N when PATH ends in a digit
        number = int(entry["node"][len(path):].lstrip("p"))
        parts.append((number, int(entry["start"]), int(entry["size"]),
                      entry["type"].lower() in ("5", "f", "85")))
    return sorted(parts)

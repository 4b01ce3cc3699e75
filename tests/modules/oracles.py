# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel's state as util-linux reads it, for the module tests to check against."""

import json
import subprocess

MiB = 1 << 20


def run(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def losetup():
    """Every attached loop device, as losetup --list --json reports it."""
    out = run("losetup", "--list", "--json", "-O",
              "NAME,BACK-FILE,OFFSET,SIZELIMIT,RO,PARTSCAN").stdout
    return json.loads(out)["loopdevices"] if out.strip() else []


def attached(path):
    """The loop devices whose backing file is path or lies below it."""
    path = str(path)
    return [dev for dev in losetup()
            if (dev.get("back-file") or "") == path or (dev.get("back-file") or "").startswith(path + "/")]


def findmnt(target):
    """The mount at target (findmnt --json --mountpoint), or None."""
    proc = run("findmnt", "--json", "--mountpoint", str(target), "-o", "SOURCE,TARGET,FSTYPE,OPTIONS", check=False)
    return json.loads(proc.stdout)["filesystems"][0] if proc.returncode == 0 and proc.stdout.strip() else None


def mounts_below(path):
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        targets = [line.split()[4] for line in table]
    # mountinfo escapes spaces as \040; the workspace paths have none
    return [target for target in targets if target.startswith(str(path) + "/")]


def sfdisk(image):
    """The partition table of image as sfdisk --json reads it, or None."""
    proc = run("sfdisk", "--json", str(image), check=False)
    return json.loads(proc.stdout)["partitiontable"] if proc.returncode == 0 else None


def sparse(path, size):
    with open(path, "wb") as image:
        image.truncate(size)
    return str(path)


def blkid(path, offset=0):
    """What blkid -p finds at offset in path: {TYPE, LABEL, UUID...}, empty for nothing."""
    out = run("blkid", "-p", "-o", "export", "-O", str(offset), str(path), check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fsck(image, start, size, argv, scratch):
    """Exit status of a read-only fsck (argv) of a copy of the bytes at start..start+size."""
    with open(str(image), "rb") as src, open(str(scratch), "wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    try:
        return run(*(list(argv) + [str(scratch)]), check=False).returncode
    finally:
        subprocess.run(["rm", "-f", str(scratch)], check=False)

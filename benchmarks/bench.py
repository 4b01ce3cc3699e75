# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmarks of the diskimage.loop core against the util-linux tools, in one run.

Prints a table of rates and the ratio core/tool for each pair measured in the
same run on the same machine, so the ratio means something where the absolute
numbers do not. Needs root. Cleans up everything it attached, also on failure.

    python benchmarks/bench.py [--cycles N] [--devices N] [--lookups N]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))

from ansible_collections.diskimage.loop.plugins.module_utils import loopdev  # noqa: E402  pylint: disable=wrong-import-position


def _run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def timed(label, count, action):
    """Run action() count times; return (label, per-second rate)."""
    start = time.perf_counter()
    for _round in range(count):
        action()
    elapsed = time.perf_counter() - start
    return label, count / elapsed


def bench_attach_detach(image, cycles):
    def core():
        status = loopdev.attach(image)
        loopdev.detach(status.device)

    def tool():
        device = _run(["losetup", "-f", "--show", image]).strip()
        _run(["losetup", "-d", device])

    return [timed("attach+detach (core)", cycles, core),
            timed("attach+detach (losetup)", cycles, tool)]


def bench_lookup(workdir, image, devices, lookups):
    """Associated-device lookup of one file with ``devices`` attached in all."""
    attached = []
    try:
        for number in range(devices - 1):
            other = os.path.join(workdir, "other%d.img" % number)
            with open(other, "wb") as handle:
                handle.truncate(1 << 20)
            attached.append(loopdev.attach(other).device)
        attached.append(loopdev.attach(image).device)
        expected = attached[-1]
        assert [d.device for d in loopdev.find_associated(image)] == [expected]
        assert _run(["losetup", "-j", image]).split(":")[0] == expected
        return [timed("lookup -j with %d devices (core)" % devices, lookups,
                      lambda: loopdev.find_associated(image)),
                timed("lookup -j with %d devices (losetup)" % devices, lookups,
                      lambda: _run(["losetup", "-j", image]))]
    finally:
        for device in attached:
            loopdev.detach(device, force=True)


def print_table(rows):
    print("%-44s %12s %10s" % ("operation", "per second", "ratio"))
    print("-" * 68)
    for index in range(0, len(rows), 2):
        (ours, ours_rate), (theirs, theirs_rate) = rows[index], rows[index + 1]
        print("%-44s %12.1f %9.2fx" % (ours, ours_rate, ours_rate / theirs_rate))
        print("%-44s %12.1f %10s" % (theirs, theirs_rate, "1.00x"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--lookups", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks need root")
    with tempfile.TemporaryDirectory(prefix="diskimage-bench-", dir="/var/tmp") as workdir:
        image = os.path.join(workdir, "disk.img")
        with open(image, "wb") as handle:
            handle.truncate(64 << 20)
        rows = bench_attach_detach(image, args.cycles)
        rows += bench_lookup(workdir, image, args.devices, args.lookups)
    print_table(rows)


if __name__ == "__main__":
    main()

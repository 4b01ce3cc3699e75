# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmarks of diskimage.loop against the util-linux and multipath tools, in one run.

Prints one table: for each comparison the median time of each contender, measured
in alternating rounds in the same run on the same machine, and the ratio to the
tool, which means something where the absolute numbers do not. Needs root, and
the collection path of scripts/lib/setup.sh (collection_path). Cleans up
everything it attached, mapped or mounted, also on failure.

    python benchmarks/bench.py [--quick] [--vm] [--only GROUP,...]

Groups: loop (attach+detach, lookup), partitions (partscan+BLKPG vs losetup -P +
partx), dm (dm backend vs kpartx: on this kernel if it has device-mapper, else
in the VM of scripts/vm-tests.sh with --vm), roles (image_build vs a shell
script, 20 image_mount re-runs vs findmnt-checked mount -o loop), fleet (12 per-host
images with image_personalize, forks=12, vs a shell loop in one script task), artifact
(zstd of a mostly empty 4 GiB image: image_artifact's core vs zstd on the raw file),
image (ten tasks inside a Debian image through the image connection vs on localhost),
overlay (a 12-host fleet: qcow2 overlays on a golden image vs sparse copies).
"""

import argparse
import os
import sys
import tempfile
import time

from common import COLLECTIONS, format_seconds, format_table, load_average, machine_description, \
    process_start_cost, release_under
import bench_artifact
import bench_dm
import bench_image
import bench_loop
import bench_overlay
import bench_partitions
import bench_roles
import vm
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper

GROUPS = ("loop", "partitions", "dm", "roles", "fleet", "artifact", "image", "overlay")


def dm_groups(workdir, args):
    if devmapper.available():
        return bench_dm.bench_dm(workdir, 10 if args.quick else 40, "host kernel")
    if not args.vm:
        return bench_dm.skipped_groups("no device-mapper on this kernel; run with --vm", "VM")
    groups, notes = vm.run_dm_in_vm(workdir, args.quick)
    if not groups:
        return bench_dm.skipped_groups("no device-mapper: %s" % "; ".join(notes), "VM")
    groups[0].notes += notes
    return groups


def measure(workdir, args, wanted, loads):
    """The groups of ``wanted``; appends (name, 1-minute load) to ``loads`` as each starts."""
    groups = []

    def section(name):
        path = os.path.join(workdir, name)
        os.mkdir(path)
        loads.append((name, os.getloadavg()[0]))
        sys.stderr.write("bench: %s (%s elapsed)\n" % (name, format_seconds(time.monotonic() - started)))
        return path

    started = time.monotonic()
    if "loop" in wanted:
        groups += bench_loop.run_all(section("loop"), args.quick)
    if "partitions" in wanted:
        groups += bench_partitions.run_all(section("partitions"), args.quick)
    if "roles" in wanted:
        groups += bench_roles.run_all(section("roles"), args.quick)
    if "fleet" in wanted:
        groups += bench_roles.run_fleet(section("fleet"), args.quick)
    if "artifact" in wanted:
        groups += bench_artifact.run_all(section("artifact"), args.quick)
    if "image" in wanted:
        groups += bench_image.run_all(section("image"), args.quick)
    if "overlay" in wanted:
        groups += bench_overlay.run_all(section("overlay"), args.quick)
    # last: the VM keeps both CPUs busy, and the load average remembers it for minutes
    if "dm" in wanted:
        groups += dm_groups(section("dm"), args)
    groups.sort(key=lambda group: group.title.split(".", 1)[0])
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a rough table in a few minutes")
    parser.add_argument("--vm", action="store_true",
                        help="run the device-mapper comparison in the VM when this kernel has no device-mapper")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups (default: all)")
    parser.add_argument("--vm-guest", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks need root")
    if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "diskimage", "loop")):
        sys.exit("no %s: run `source scripts/lib/setup.sh && collection_path` first" % COLLECTIONS)
    if args.vm_guest:
        bench_dm.guest_main(args.vm_guest, args.quick)
        return
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(GROUPS))
    if unknown:
        parser.error("unknown groups %s (known: %s)" % (", ".join(unknown), ", ".join(GROUPS)))

    started = time.monotonic()
    load_before = load_average()
    header = machine_description()
    with tempfile.TemporaryDirectory(prefix="diskimage-bench-", dir="/var/tmp") as workdir:
        try:
            true_cost = process_start_cost()
            loads = []
            groups = measure(workdir, args, wanted, loads)
        finally:
            left = release_under(workdir, bench_dm.remove_maps if devmapper.available() else None)
            if left:
                sys.stderr.write("bench: had to release what a benchmark left: %s\n" % ", ".join(left))
    header += [
        "load:    %s at the start, %s at the end (1, 5, 15 min averages)" % (load_before, load_average()),
        "         1 min average as each part began: %s" % ", ".join("%s %.2f" % item for item in loads),
        "run:     %s%s in %s; /bin/true takes %.2f ms here" % (
            "--quick" if args.quick else "full", " --vm" if args.vm else "",
            format_seconds(time.monotonic() - started), true_cost * 1e3),
        "",
        "median: of n timed rounds (contenders alternate, order rotating, after one untimed warm-up",
        "        round); +/-: half the interquartile range (n < 4: of the range), relative to the median;",
        "ratio:  baseline median / this median, the baseline (1.00x) being the tool: above 1 is faster.",
    ]
    print("\n".join(header))
    print()
    print(format_table(groups))


if __name__ == "__main__":
    main()

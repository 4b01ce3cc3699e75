# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed image's 8 partitions as kernel partition devices: the partscan+BLKPG
backend of image_partitions against losetup -P and partx (host tier)."""

import os

from common import SEED_PARTITIONS, Group, Row, interleaved, kernel_partition_numbers, make_seed_image, run
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state

EXPECTED = list(range(1, SEED_PARTITIONS + 1))


def core_cycle(image):
    """image_partitions state=present then state=absent, without Ansible."""
    plan = partitions_state.plan_present(image, backend="partscan")
    plan.apply()
    try:
        found = kernel_partition_numbers(plan.device)
    finally:
        partitions_state.plan_absent(image).apply()
    return found


def tool_cycle(image):
    device = run(["losetup", "--partscan", "--find", "--show", image]).stdout.strip()
    try:
        run(["partx", "--add", device])
        found = kernel_partition_numbers(device)
        run(["partx", "--delete", device])
    finally:
        run(["losetup", "--detach", device])
    return found


def check(found):
    if found != EXPECTED:
        raise RuntimeError("expected partitions %s, the kernel had %s" % (EXPECTED, found))


def bench_partscan(workdir, rounds):
    image = make_seed_image(os.path.join(workdir, "partitions.img"))
    # With partition parsers in the kernel, losetup -P alone would make the
    # devices and partx -a would fail on them: say so rather than measure that.
    device = run(["losetup", "--partscan", "--find", "--show", image]).stdout.strip()
    try:
        scanned = kernel_partition_numbers(device)
    finally:
        run(["losetup", "--detach", device])
    group = Group("2. Seed image (dos: 3 primaries, extended, 4 logicals): expose + remove 8 partitions (host kernel)",
                  ["core: partitions_state.plan_present(IMAGE, backend=partscan).apply() (read the table, attach",
                   "      with partscan, BLKPG-add 8 partitions), then plan_absent(IMAGE).apply() (BLKPG-delete, detach)",
                   "tool: losetup -P -f --show IMAGE; partx -a DEV, then partx -d DEV; losetup -d DEV"])
    if scanned:
        reason = "this kernel parses the table itself (losetup -P made %s): partx -a has nothing to add" % scanned
        group.pair(Row("expose+remove (core partscan+BLKPG)", skipped=reason),
                   Row("expose+remove (losetup -P, partx -a / -d)", skipped=reason))
        return group
    samples = interleaved([("core", lambda: core_cycle(image), None, check),
                           ("tool", lambda: tool_cycle(image), None, check)], rounds)
    group.pair(Row("expose+remove (core partscan+BLKPG)", samples["core"]),
               Row("expose+remove (losetup -P, partx -a / -d)", samples["tool"]))
    return group


def run_all(workdir, quick):
    return [bench_partscan(workdir, 15 if quick else 60)]

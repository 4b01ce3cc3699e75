# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed image's 8 partitions as kernel partition devices: the partscan+BLKPG
backend of image_partitions against losetup -P and partx (host tier); and
growing an image in place against the commands a user would type."""

import json
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
    return [bench_partscan(workdir, 15 if quick else 60), bench_grow(workdir, 5 if quick else 15)]


GROW_FROM, GROW_TO = 64 << 20, 256 << 20
GROW_LAYOUT = {"label": "gpt", "partitions": [{"size": "8MiB"}, {}]}


def make_grow_template(path):
    """A 64 MiB GPT image made by sfdisk, ext4 in its last partition filling it."""
    with open(path, "wb") as handle:
        handle.truncate(GROW_FROM)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path], input="label: gpt\n,8MiB\n,\n")
    start, size = partition_bytes(path, 2)
    device = run(["losetup", "--find", "--show", "--offset", str(start), "--sizelimit", str(size), path]).stdout.strip()
    try:
        run(["mkfs.ext4", "-q", device])
    finally:
        run(["losetup", "--detach", device])
    return path


def partition_bytes(image, number):
    """(start, size) in bytes of a partition, as sfdisk reads it."""
    table = json.loads(run(["sfdisk", "--json", image]).stdout)["partitiontable"]
    part = table["partitions"][number - 1]
    return part["start"] * 512, part["size"] * 512


def core_grow(image):
    """image_partitions' core: size and the layout, one call; then the exposure it made is taken down."""
    plan = partitions_state.plan_present(image, layout=GROW_LAYOUT, size=GROW_TO, backend="partscan")
    plan.apply()
    partitions_state.plan_absent(image).apply()
    return image


def tool_grow(image):
    """What a user types: truncate, sfdisk relocate and resize, a loop device, e2fsck, resize2fs."""
    run(["truncate", "--size", str(GROW_TO), image])
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--relocate", "gpt-bak-std", image])
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "-N", "2", image], input=", +\n")
    start, size = partition_bytes(image, 2)
    device = run(["losetup", "--find", "--show", "--offset", str(start), "--sizelimit", str(size), image]).stdout.strip()
    try:
        run(["e2fsck", "-f", "-p", device])
        run(["resize2fs", device])
    finally:
        run(["losetup", "--detach", device])
    # the same job as the core's: the partitions exposed, then taken down again
    tool_cycle(image)
    return image


def check_grown(image):
    start, size = partition_bytes(image, 2)
    if os.path.getsize(image) != GROW_TO or start + size < GROW_TO - (2 << 20):
        raise RuntimeError("the image or its last partition did not grow: %d bytes, partition ends at %d"
                           % (os.path.getsize(image), start + size))


def bench_grow(workdir, rounds):
    template = make_grow_template(os.path.join(workdir, "grow-template.img"))
    image = os.path.join(workdir, "grow.img")
    group = Group("2b. Grow a 64 MiB GPT image to 256 MiB: the file, the backup header, the last partition, its ext4",
                  ["core: partitions_state.plan_present(IMAGE, layout, size=256MiB).apply(), then plan_absent",
                   "tool: truncate -s; sfdisk --relocate gpt-bak-std; sfdisk -N 2 (', +'); losetup -o --sizelimit;",
                   "      e2fsck -f -p; resize2fs; losetup -d; then, as the core also exposes the partitions,",
                   "      losetup -P -f --show; partx -a; partx -d; losetup -d",
                   "each round starts from a sparse copy of the same image (untimed)"])

    def fresh():
        run(["cp", "--sparse=always", template, image])

    samples = interleaved([("core", lambda: core_grow(image), fresh, check_grown),
                           ("tool", lambda: tool_grow(image), fresh, check_grown)], rounds)
    group.pair(Row("grow (core, one call)", samples["core"]),
               Row("grow (truncate, sfdisk, resize2fs..., partx)", samples["tool"]))
    return group

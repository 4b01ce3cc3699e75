# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed image's partitions as device-mapper maps: the dm backend of
image_partitions against kpartx -a / kpartx -d.

Runs wherever the kernel has device-mapper: on the host when it has it, else
inside the VM of benchmarks/vm.py (bench.py --vm), which calls guest_main().
"""

import json
import os
import platform
import shutil
import tempfile

from common import (SEED_PARTITIONS, Group, Row, interleaved, make_seed_image, process_start_cost,
                    release_under, run, skipped_group)
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import devmapper
from ansible_collections.diskimage.loop.plugins.module_utils._partition import state as partitions_state

TITLE = "3. Seed image: map + unmap its 8 partitions with device-mapper (%s)"
NOTES = ["core: partitions_state.plan_present(IMAGE, backend=dm).apply() (attach, then DM_DEV_CREATE,",
         "      TABLE_LOAD, resume for 8 linear maps), then plan_absent(IMAGE).apply() (remove maps, detach)",
         "tool: kpartx -a IMAGE (attaches a loop device itself), then kpartx -d IMAGE (detaches it)"]
LABELS = ("map+unmap (core dm backend)", "map+unmap (kpartx -a / kpartx -d)")


def skipped_groups(reason, where="VM"):
    return [skipped_group(TITLE % where, NOTES, LABELS, reason)]


def dm_names():
    """Names of every device-mapper device, from sysfs."""
    names = []
    for entry in os.listdir("/sys/block"):
        path = os.path.join("/sys/block", entry, "dm", "name")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                names.append(handle.read().strip())
    return sorted(names)


def _maps_of(device):
    prefix = os.path.basename(device) + "p"
    return sorted(name for name in dm_names() if name.startswith(prefix) and name[len(prefix):].isdigit())


def remove_maps(device):
    """Remove the partition maps of ``device`` (clean-up after a failure)."""
    found = _maps_of(device)
    if found:
        partitions_state.plan_absent(device).apply()
    return found


def _expect(found):
    if len(found) != SEED_PARTITIONS:
        raise RuntimeError("expected %d maps, found %s" % (SEED_PARTITIONS, found))


def bench_map_unmap(image, rounds):
    def core():
        plan = partitions_state.plan_present(image, backend="dm")
        plan.apply()
        try:
            return _maps_of(plan.device)
        finally:
            partitions_state.plan_absent(image).apply()

    def tool():
        run(["kpartx", "-a", image])
        try:
            devices = [d.device for d in loopdev.find_associated(image)]
            return _maps_of(devices[0]) if devices else []
        finally:
            run(["kpartx", "-d", image])

    def verify(found):
        _expect(found)
        left = loopdev.find_associated(image)
        if left:
            raise RuntimeError("%s is still attached to %s" % (image, [d.device for d in left]))

    return interleaved([("core", core, None, verify), ("tool", tool, None, verify)], rounds)


def bench_dm(workdir, rounds, where):
    """The comparison on this kernel; [Group]."""
    if not devmapper.available():
        return skipped_groups("no device-mapper", where)
    if shutil.which("kpartx") is None:
        return skipped_groups("kpartx is not installed", where)
    samples = bench_map_unmap(make_seed_image(os.path.join(workdir, "dm.img")), rounds)
    group = Group(TITLE % where, NOTES)
    group.pair(Row(LABELS[0], samples["core"]), Row(LABELS[1], samples["tool"]))
    return [group]


def guest_main(out_dir, quick):
    """Inside the VM: load the modules, measure, write dm.json to ``out_dir``."""
    run(["modprobe", "-a", "loop", "dm_mod"], check=False)
    result = {"kernel": platform.release(), "cpus": os.cpu_count(), "udev": os.path.exists("/run/udev/control")}
    scratch = tempfile.mkdtemp(prefix="bench-dm.")
    mounted = run(["mount", "-t", "tmpfs", "-o", "size=512m,mode=0700", "bench-dm", scratch],
                  check=False).returncode == 0
    try:
        result["process_start"] = process_start_cost()
        where = "VM, kernel %s" % platform.release()
        result["groups"] = [g.to_dict() for g in bench_dm(scratch, 5 if quick else 12, where)]
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the host prints it as skipped
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        release_under(scratch, remove_maps=remove_maps)
        if mounted:
            run(["umount", scratch], check=False)
        os.rmdir(scratch)
    with open(os.path.join(out_dir, "dm.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)

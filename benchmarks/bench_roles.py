# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end through ansible-playbook: the seed image built by the image_build
role against the same steps as a shell script, an idempotent re-run of 20
image_mount tasks against findmnt-checked `mount -o loop` equivalents, and (group
``fleet``) 12 per-host images made by the image_personalize role against a shell
loop in one script task (bench_fleet.py)."""

import json
import os
import re
import shlex
import shutil
import sys

from common import (COLLECTIONS, HERE, ROOT, SEED_DATA_PARTITIONS, Group, Row, interleaved, release_under, run,
                    skipped_group)
import bench_fleet
from ansible_collections.diskimage.loop.plugins.module_utils._probe import fsprobe
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev
from ansible_collections.diskimage.loop.plugins.module_utils._partition.table import read_table

INVENTORY = os.path.join(ROOT, "playbooks", "inventory", "localhost.yml")
SEED_BUILD_SH = os.path.join(HERE, "seed_build.sh")
MOUNT_CHECK_PY = os.path.join(HERE, "mount_check.py")
MOUNTS = 20
_RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

# The seed declaration, as in the role's README and its integration test; the
# same image as benchmarks/seed_build.sh makes by hand.
SEED_DECLARATION = {
    "image_build_size": "80MiB",
    "image_build_label": "dos",
    "image_build_partitions": [
        {"size": "8MiB", "fstype": "ext4", "label": "p1", "mountpoint": "/"},
        {"size": "8MiB", "fstype": "ext4", "label": "p2", "mountpoint": "/p2"},
        {"size": "8MiB", "fstype": "ext4", "label": "p3", "mountpoint": "/p3"},
        # partition 4 becomes the extended partition holding 5-8
        {"size": "8MiB", "fstype": "ext4", "label": "p5", "mountpoint": "/p5"},
        {"size": "8MiB", "fstype": "ext4", "label": "p6", "mountpoint": "/p6"},
        {"size": "8MiB", "fstype": "ext4", "label": "p7", "mountpoint": "/p7"},
        {"fstype": "ext4", "label": "p8", "mountpoint": "/p8"},
    ],
    "image_build_populate": [{"content": "built by Ansible\n", "dest": "/hello"}],
}

# Mounted already? The same backing file at the same offset on a loop device
# that is mounted at the target; else mount it. As strict as a hand-written
# check gets without parsing more than losetup and findmnt print.
ENSURE_MOUNTED = (
    "for dev in $(losetup --list --noheadings --output NAME --associated {image} --offset {offset}); do "
    "findmnt --noheadings --source \"$dev\" --mountpoint {target} >/dev/null && exit 0; done; "
    "mount -o loop,offset={offset},sizelimit={size} {image} {target} && echo changed")


def ansible_playbook():
    """The ansible-playbook next to this Python (the venv's), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return here if os.access(here, os.X_OK) else shutil.which("ansible-playbook")


class Playbooks(object):
    """Writes generated playbooks (JSON is YAML) and runs them on localhost."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.program = ansible_playbook()
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                        ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                        TMPDIR=os.path.join(workdir, "tmp"))
        os.makedirs(self.env["TMPDIR"], exist_ok=True)
        self.tasks = {}

    def write(self, name, plays):
        path = os.path.join(self.workdir, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(plays, handle, indent=1)
        return path

    def run(self, playbook, env=None):
        """Run it; returns (changed, failed) from the play recap, and keeps the
        number of tasks that ran in ``tasks``."""
        proc = run([self.program, "-i", INVENTORY, playbook], check=False, env=dict(self.env, **(env or {})))
        self.last_stdout = proc.stdout
        recap = _RECAP.findall(proc.stdout)
        if proc.returncode != 0 or not recap:
            raise RuntimeError("%s failed (exit %d):\n%s\n%s" % (
                os.path.basename(playbook), proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
        ok, changed, unreachable, failed = (int(v) for v in recap[-1])
        self.tasks[os.path.basename(playbook)] = ok + failed
        return changed, failed + unreachable


def profile(playbooks, playbook, top=12):
    """Where the time of one run of ``playbook`` goes: the slowest tasks, as
    ansible.posix.profile_tasks reports them (notes lines; none without it)."""
    try:
        playbooks.run(playbook, env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
    except RuntimeError:
        return []
    lines = playbooks.last_stdout.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("TASKS RECAP")) + 3
    except StopIteration:
        return []
    found = []
    for line in lines[start:]:
        match = re.match(r"^(.*?) -+ (\d+\.\d+)s$", line.strip())
        if match:
            found.append("      %6ss  %s" % (match.group(2), match.group(1)[:90]))
    return found[:top]


def play(name, tasks=None, roles=None):
    entry = {"name": name, "hosts": "localhost", "gather_facts": False}
    if roles is not None:
        entry["roles"] = roles
    if tasks is not None:
        entry["tasks"] = tasks
    return [entry]


def check_seed_image(image):
    """The image holds the seed's table and an ext4 labelled pN on each data
    partition, and nothing is left attached to it."""
    with open(image, "rb") as handle:
        table = read_table(handle, os.path.getsize(image))
    found = {}
    for part in table.partitions:
        if part.kind != "extended":
            probe = fsprobe.probe_path(image, offset=part.start, size=part.size) or {}
            found[part.number] = (probe.get("type"), probe.get("label"))
    wanted = dict((n, ("ext4", "p%d" % n)) for n in SEED_DATA_PARTITIONS)
    if found != wanted:
        raise RuntimeError("%s: filesystems %s, not %s" % (image, found, wanted))
    if loopdev.find_associated(image):
        raise RuntimeError("%s is still attached" % image)


def bench_build(workdir, playbooks, rounds):
    """image_build (ansible-playbook, localhost) against seed_build.sh."""
    role_image = os.path.join(workdir, "role-seed.img")
    shell_image = os.path.join(workdir, "shell-seed.img")
    shell_tree = os.path.join(workdir, "shell-tree")
    playbook = playbooks.write("build.yml", play(
        "Build the seed image", roles=[dict(SEED_DECLARATION, role="diskimage.loop.image_build",
                                            image_build_path=role_image)]))

    def fresh(*paths):
        def prepare():
            for path in paths:
                if os.path.isdir(path):
                    os.rmdir(path)  # an empty mount point; a full one is an error
                elif os.path.exists(path):
                    os.unlink(path)
        return prepare

    def verify_role(result):
        changed, failed = result
        if failed or not changed:
            raise RuntimeError("image_build: changed=%d failed=%d" % (changed, failed))
        check_seed_image(role_image)

    floor_image = os.path.join(workdir, "floor-seed.img")
    floor_tree = os.path.join(workdir, "floor-tree")
    floor = playbooks.write("floor.yml", play("Build the seed image with a shell script", [
        {"name": "Run the seed script", "ansible.builtin.script": {
            "cmd": "%s %s %s" % (shlex.quote(SEED_BUILD_SH), shlex.quote(floor_image), shlex.quote(floor_tree)),
            "executable": "bash"}}]))

    def verify_floor(result):
        changed, failed = result
        if failed or not changed:
            raise RuntimeError("the script task: changed=%d failed=%d" % (changed, failed))
        check_seed_image(floor_image)

    samples = interleaved([
        ("role", lambda: playbooks.run(playbook), fresh(role_image, role_image + ".build-stamp"), verify_role),
        ("floor", lambda: playbooks.run(floor), fresh(floor_tree, floor_image), verify_floor),
        ("shell", lambda: run(["bash", SEED_BUILD_SH, shell_image, shell_tree]),
         fresh(shell_tree, shell_image), lambda _proc: check_seed_image(shell_image)),
    ], rounds)
    fresh(role_image, role_image + ".build-stamp")()
    where = profile(playbooks, playbook)
    group = Group("4. Seed image built end to end: image_build role vs the same steps as a shell script",
                  ["role: ansible-playbook (localhost, local connection) with role diskimage.loop.image_build:",
                   "      stamp check, sparse file + table + 7x mkfs.ext4 (one image_partitions call), 7 mounts",
                   "      (one image_tree call), one file written, teardown (one image_tree call), build stamp;",
                   "      a fresh image every time",
                   "shell: bash benchmarks/seed_build.sh: truncate, sfdisk, losetup -P, partx -a, 7x mkfs.ext4,",
                   "      7 mounts, one file written, umount, partx -d, losetup -d",
                   "floor: ansible-playbook with one ansible.builtin.script task running seed_build.sh (the goal:",
                   "      the role within 2x of it, a ratio of at least 0.50x)",
                   "all include process start-up; the role's time includes ansible-playbook's own (see 5e)"]
                  + (["where the role's time goes (one run, ansible.posix.profile_tasks):"] + where if where else []))
    role, floor_row = group.pair(Row("build seed image (image_build role)", samples["role"],
                                     note="(the role ran %d tasks)" % playbooks.tasks["build.yml"]),
                                 Row("build seed image (one script task, the floor)", samples["floor"]))
    group.notes.append("role / floor = %.2fx" % (role.median / floor_row.median))
    group.rows.append(Row("build seed image (shell script, no Ansible)", samples["shell"]))
    return group


def _mount_specs(workdir, images):
    """MOUNTS (image, partition number, offset, size, target) from seed images."""
    specs = []
    for image in images:
        with open(image, "rb") as handle:
            table = read_table(handle, os.path.getsize(image))
        for part in table.partitions:
            if part.kind != "extended" and len(specs) < MOUNTS:
                target = os.path.join(workdir, "mnt", "%02d" % len(specs))
                os.makedirs(target)
                specs.append((image, part.number, part.start, part.size, target))
    return specs


def bench_mounts(workdir, playbooks, rounds):
    """The second run of 20 image_mount tasks against 20 shell checks."""
    images = []
    for number in range(-(-MOUNTS // len(SEED_DATA_PARTITIONS))):
        image = os.path.join(workdir, "mount%d.img" % number)
        run(["bash", SEED_BUILD_SH, image, os.path.join(workdir, "mount%d-tree" % number)])
        images.append(image)
    specs = _mount_specs(workdir, images)
    mount_tasks, shell_tasks, unmount_tasks, snippets = [], [], [], []
    for index, (image, number, offset, size, target) in enumerate(specs):
        mount_tasks.append({"name": "Mount partition %d of %s (%02d)" % (number, os.path.basename(image), index),
                            "diskimage.loop.image_mount": {"src": image, "partition": number, "path": target}})
        unmount_tasks.insert(0, {"name": "Unmount %s" % target, "diskimage.loop.image_mount": {
            "src": image, "partition": number, "path": target, "state": "unmounted"}})
        snippet = ENSURE_MOUNTED.format(image=shlex.quote(image), offset=offset, size=size,
                                        target=shlex.quote(target))
        snippets.append(snippet)
        shell_tasks.append({"name": "Mount %s unless it is mounted (%02d)" % (target, index),
                            "ansible.builtin.shell": snippet, "register": "bench_check",
                            "changed_when": "'changed' in bench_check.stdout"})
    ours = playbooks.write("mount.yml", play("Mount 20 partitions with image_mount", mount_tasks))
    shell_play = playbooks.write("mount-shell.yml", play("Mount 20 partitions with mount -o loop", shell_tasks))
    unmount = playbooks.write("unmount.yml", play("Unmount the 20 partitions", unmount_tasks))
    commands = playbooks.write("command-true.yml", play("20 commands", [
        {"name": "Run true (%02d)" % index, "ansible.builtin.command": "true", "changed_when": False}
        for index in range(len(specs))]))
    noop = playbooks.write("noop.yml", play("Nothing", [
        {"name": "Run true", "ansible.builtin.command": {"argv": ["true"]}, "changed_when": False}]))
    script = os.path.join(workdir, "mount-check.sh")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("".join("sh -c %s\n" % shlex.quote(snippet) for snippet in snippets))
    core_specs = os.path.join(workdir, "mount-check.json")
    with open(core_specs, "w", encoding="utf-8") as handle:
        json.dump([[image, number, target] for image, number, _offset, _size, target in specs], handle)
    core_check = [sys.executable, MOUNT_CHECK_PY, core_specs]

    def unchanged(result):
        changed, failed = result
        if changed or failed:
            raise RuntimeError("a re-run changed %d and failed %d tasks" % (changed, failed))

    def plain_unchanged(proc):
        if "changed" in proc.stdout:
            raise RuntimeError("the shell check mounted something again:\n%s" % proc.stdout)

    try:
        changed, failed = playbooks.run(ours)
        if changed != len(specs) or failed:
            raise RuntimeError("the first run of mount.yml changed %d of %d, failed %d" % (changed, len(specs), failed))
        # the shell check and the core without Ansible agree: all mounted already
        plain_unchanged(run(["bash", script]))
        plain_unchanged(run(core_check))
        samples = interleaved([
            ("ours", lambda: playbooks.run(ours), None, unchanged),
            ("shell", lambda: playbooks.run(shell_play), None, unchanged),
            ("core", lambda: run(core_check), None, plain_unchanged),
            ("plain", lambda: run(["bash", script]), None, plain_unchanged),
            ("noop", lambda: playbooks.run(noop)),
            ("commands", lambda: playbooks.run(commands), None, unchanged),
        ], rounds)
        where = profile(playbooks, ours, top=5)
    finally:
        try:
            playbooks.run(unmount)
        finally:
            release_under(workdir)
    group = Group("5. Idempotent re-run of 20 mounts (20 partitions of 3 seed images, all mounted; changed=0)",
                  ["5a: one playbook, 20 diskimage.loop.image_mount tasks (src, partition, path); each checks that",
                   "     the path holds exactly that file's byte range, with compatible options",
                   "5b: one playbook, 20 ansible.builtin.shell tasks with the hand-written equivalent:",
                   "     losetup -j IMAGE -o OFFSET | findmnt --source DEV --mountpoint PATH || mount -o loop,",
                   "     offset=,sizelimit= (the same file at the same offset mounted there). The same harness",
                   "     (one module run per task), so 5a/5b compares the two checks inside Ansible; an",
                   "     ansible.posix.mount-style ismount(path) check would be weaker (any filesystem there passes)",
                   "5c/5d: the same two checks without Ansible: python benchmarks/mount_check.py (image_mount's",
                   "     plan/apply/report for the 20, one Python process, start-up included) vs a bash script",
                   "     running the 20 snippets of 5b with sh -c",
                   "5e: context - ansible-playbook with one no-op task, Ansible's fixed cost",
                   "5f: the floor - one playbook, 20 ansible.builtin.command: true tasks (the goal: 5a within",
                   "     1.2x of it, a ratio of at least 0.83x)"]
                  + (["the slowest image_mount tasks of one re-run (ansible.posix.profile_tasks):"] + where
                     if where else []))
    group.pair(Row("5a. 20x image_mount re-run (ansible-playbook)", samples["ours"]),
               Row("5b. 20x findmnt-checked mount -o loop (ansible-playbook)", samples["shell"]))
    ours_row, floor_row = group.pair(Row("5a. 20x image_mount re-run, against the floor", samples["ours"]),
                                     Row("5f. 20x command: true (ansible-playbook)", samples["commands"]))
    group.notes.append("5a / 5f = %.2fx" % (ours_row.median / floor_row.median))
    group.pair(Row("5c. 20x image_mount core check (no Ansible)", samples["core"]),
               Row("5d. 20x findmnt-checked mount -o loop (sh, no Ansible)", samples["plain"]))
    group.rows.append(Row("5e. ansible-playbook, one no-op task (fixed cost)", samples["noop"]))
    return group


def run_all(workdir, quick):
    title4 = "4. Seed image built end to end: image_build role vs the same steps as a shell script"
    title5 = "5. Idempotent re-run of 20 mounts"

    program = ansible_playbook()
    if program is None:
        reason = "ansible-playbook not found (run scripts/test.sh once, or use the venv's python)"
        return [skipped_group(title4, [], ("image_build role", "shell script"), reason),
                skipped_group(title5, [], ("20x image_mount", "20x findmnt-checked mount -o loop"), reason)]
    playbooks = Playbooks(workdir)
    return [bench_build(workdir, playbooks, 2 if quick else 5),
            bench_mounts(workdir, playbooks, 2 if quick else 5)]


def run_fleet(workdir, quick):
    """Group 8 (the bench.py group ``fleet``): 12 images with image_personalize vs a shell loop."""
    if ansible_playbook() is None:
        return [skipped_group("8. Twelve per-host images from a golden image", [],
                              ("image_personalize role", "shell loop"), "ansible-playbook not found")]
    return [bench_fleet.bench_fleet(workdir, Playbooks(workdir), 2 if quick else 3)]

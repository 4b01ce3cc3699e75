# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twelve per-host images from one golden image: the image_personalize role over a
fleet of 12 inventory hosts (forks=12, every task delegated to localhost) against
one play whose single ansible.builtin.script task runs a shell loop writing the
same files into 12 copies (fleet_floor.sh), the floor a user would write by hand."""

import json
import os
import re
import shutil
import subprocess
import sys

from common import COLLECTIONS, HERE, MIB, Group, Row, interleaved, release_under, run

HOSTS = ["h%02d" % number for number in range(1, 13)]
FLOOR_SH = os.path.join(HERE, "fleet_floor.sh")
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
HOME = "933ac7e1-2eb4-4f13-b844-0e14e2aef915"
ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
# (name, type, offset MiB, size MiB): the image of the role's integration test.
PARTITIONS = [("esp", ESP, 1, 8), ("root", ROOT_X86_64, 9, 24), ("home", HOME, 33, 16)]
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n"


def make_golden(workdir):
    """64 MiB GPT: an ESP, a Discoverable Partitions root with /etc and a home partition."""
    image = os.path.join(workdir, "golden.img")
    trees = {"root": {"etc/passwd": PASSWD, "etc/hosts": "127.0.0.1 localhost\n",
                      "etc/machine-id": "0123456789abcdef0123456789abcdef\n", "root/.keep": ""},
             "home": {"alice/.profile": "# alice\n"}, "esp": {}}
    with open(image, "wb") as handle:
        handle.truncate(64 * MIB)
    script = "label: gpt\n" + "".join("start=%d, size=%d, type=%s, name=%s\n" % (offset * 2048, size * 2048, kind, name)
                                      for name, kind, offset, size in PARTITIONS)
    run(["sfdisk", "--quiet", image], input=script)
    for name, _kind, offset, size in PARTITIONS:
        tree = os.path.join(workdir, "golden-" + name)
        for path, content in trees[name].items():
            os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
            with open(os.path.join(tree, path), "w", encoding="utf-8") as handle:
                handle.write(content)
        os.makedirs(tree, exist_ok=True)
        part = os.path.join(workdir, name + ".fs")
        run(["mkfs.ext4", "-q", "-F", "-d", tree, part, "%dM" % size])
        run(["dd", "if=" + part, "of=" + image, "bs=1M", "seek=%d" % offset, "conv=notrunc,sparse", "status=none"])
        os.unlink(part)
    return image


def write_fleet_files(workdir, golden, out, bench):
    """The inventory, the role's play and the floor's play."""
    inventory = os.path.join(workdir, "fleet.ini")
    with open(inventory, "w", encoding="utf-8") as handle:
        handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n[fleet]\n" % bench.python)
        for number, host in enumerate(HOSTS, 1):
            handle.write("%s ansible_host=192.0.2.%d ansible_connection=ssh fleet_ip=10.0.0.%d/24\n"
                         % (host, number, 10 + number))
    motd = os.path.join(workdir, "motd.j2")
    with open(motd, "w", encoding="utf-8") as handle:
        handle.write("Welcome to {{ inventory_hostname }} ({{ fleet_ip }})\n")
    role = {"role": "diskimage.loop.image_personalize", "image_personalize_golden": golden,
            "image_personalize_output_dir": os.path.join(out, "role"),
            "image_personalize_reset_machine_id": True,
            "image_personalize_authorized_keys": [
                {"user": "root", "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKeyOf{{ inventory_hostname }} admin@example"]},
                {"user": "alice", "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceKey alice@example",
                                           "ssh-rsa AAAAB3NzaSecond alice@laptop"]}],
            "image_personalize_network": {"address": "{{ fleet_ip }}", "gateway": "10.0.0.1", "dns": ["10.0.0.1"]},
            "image_personalize_templates": [{"src": motd, "dest": "/etc/motd"}]}
    role_play = bench.write("fleet-role.yml", [{"name": "Personalize one image per host", "hosts": "fleet",
                                                "gather_facts": False, "roles": [role]}])
    (_n, _k, root_offset, root_size), (_n2, _k2, home_offset, home_size) = PARTITIONS[1], PARTITIONS[2]
    argv = " ".join([FLOOR_SH, golden, os.path.join(out, "floor"), os.path.join(workdir, "floor-tree"),
                     str(root_offset * MIB), str(root_size * MIB), str(home_offset * MIB), str(home_size * MIB)]
                    + HOSTS)
    floor_play = bench.write("fleet-floor.yml", [{"name": "Personalize 12 images with a shell loop", "hosts": "localhost",
                                                  "gather_facts": False,
                                                  "tasks": [{"name": "Run the loop",
                                                             "ansible.builtin.script": {"cmd": argv,
                                                                                        "executable": "bash"}}]}])
    return inventory, role_play, floor_play


def module_args(golden, out, number, host):
    """What the role hands image_files for one host, written out by hand."""
    address = "10.0.0.%d/24" % (10 + number)
    network = ("# Ansible managed\n[Match]\nName=en* eth*\n\n[Network]\nAddress=%s\nGateway=10.0.0.1\nDNS=10.0.0.1\n"
               % address)
    files = [
        {"path": "/etc/hostname", "content": host + "\n", "mode": "0644"},
        {"path": "/etc/hosts", "state": "line", "regexp": r"^127\.0\.1\.1\s", "line": "127.0.1.1\t" + host,
         "mode": "0644"},
        {"path": "/etc/machine-id", "content": "", "mode": "0444", "create": False},
        {"path": "/etc/systemd/network", "state": "directory", "mode": "0755"},
        {"path": "/etc/systemd/network/10-%s.network" % host, "content": network, "mode": "0644"},
        {"path": "~root/.ssh", "state": "directory", "owner": "root", "mode": "0700"},
        {"path": "~root/.ssh/authorized_keys", "owner": "root", "mode": "0600",
         "content": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKeyOf%s admin@example\n" % host},
        {"path": "~alice/.ssh", "state": "directory", "owner": "alice", "mode": "0700"},
        {"path": "~alice/.ssh/authorized_keys", "owner": "alice", "mode": "0600",
         "content": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceKey alice@example\nssh-rsa AAAAB3NzaSecond alice@laptop\n"},
        {"path": "/etc/motd", "content": "Welcome to %s (%s)\n" % (host, address), "mode": "0644"},
    ]
    return {"ANSIBLE_MODULE_ARGS": {"src": os.path.join(out, "core", host + ".img"), "copy_from": golden,
                                    "auto_exclude": ["esp", "xbootldr"], "files": files}}


def run_modules(args_files):
    """The module once per host, all at once as 12 forks start them, without Ansible
    (with the byte code Python caches, so a lower bound of the module's share)."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    procs = [subprocess.Popen([sys.executable, "-m", "ansible_collections.diskimage.loop.plugins.modules.image_files",
                               path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for path in args_files]
    results = [proc.communicate() for proc in procs]
    for (out, err), proc in zip(results, procs):
        if proc.returncode != 0 or not json.loads(out).get("changed"):
            raise RuntimeError("image_files failed (exit %d): %s %s" % (proc.returncode, out[-1000:], err[-1000:]))


def read_host(image, host_root, offset, size):
    """/etc/hostname of one image, through a read-only loop mount (the oracle)."""
    try:
        run(["mount", "-o", "ro,loop,offset=%d,sizelimit=%d" % (offset, size), image, host_root])
        with open(os.path.join(host_root, "etc", "hostname"), encoding="utf-8") as handle:
            return handle.read()
    finally:
        subprocess.run(["umount", host_root], check=False)


class Fleet(object):
    """The golden image, the inventory of 12 hosts and the two plays."""

    def __init__(self, workdir, playbooks):
        self.workdir = workdir
        self.playbooks = playbooks
        self.python = sys.executable
        self.tasks = 0
        self.out = os.path.join(workdir, "fleet")
        self.golden = make_golden(workdir)
        self.inventory, self.role_play, self.floor_play = write_fleet_files(workdir, self.golden, self.out, self)
        self.check_root = os.path.join(workdir, "check")
        os.makedirs(self.check_root, exist_ok=True)
        self.args_files = []
        for number, host in enumerate(HOSTS, 1):
            path = os.path.join(workdir, "args-%s.json" % host)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(module_args(self.golden, self.out, number, host), handle)
            self.args_files.append(path)

    def write(self, name, plays):
        return self.playbooks.write(name, plays)

    def fresh(self, kind):
        def prepare():
            shutil.rmtree(os.path.join(self.out, kind), ignore_errors=True)
        return prepare

    def run(self, playbook, forks=12):
        """ansible-playbook over the fleet's inventory; {host: {ok, changed, unreachable, failed}}."""
        proc = run([self.playbooks.program, "-i", self.inventory, "--forks", str(forks), playbook], check=False,
                   env=self.playbooks.env)
        recap = dict((host, dict(zip(("ok", "changed", "unreachable", "failed"), (int(v) for v in values))))
                     for host, *values in _RECAP.findall(proc.stdout))
        if proc.returncode != 0 or not recap:
            raise RuntimeError("%s failed (exit %d):\n%s\n%s" % (
                os.path.basename(playbook), proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
        if "h01" in recap:
            self.tasks = sum(v["ok"] + v["failed"] for v in recap.values())
        return recap

    def verify(self, kind, changed_wanted=True):
        def check(result):
            recap = result or {}  # the module alone checks its own results
            if any(v["failed"] or v["unreachable"] for v in recap.values()):
                raise RuntimeError("%s: %s" % (kind, recap))
            if changed_wanted and kind == "role" and sorted(h for h, v in recap.items() if v["changed"]) != HOSTS:
                raise RuntimeError("not every host changed: %s" % recap)
            if not changed_wanted and any(v["changed"] for v in recap.values()):
                raise RuntimeError("a rerun changed something: %s" % recap)
            _n, _k, offset, size = PARTITIONS[1]
            for host in (HOSTS[0], HOSTS[-1]):
                image = os.path.join(self.out, kind, host + ".img")
                found = read_host(image, self.check_root, offset * MIB, size * MIB)
                if found != host + "\n":
                    raise RuntimeError("%s holds the host name %r" % (image, found))
        return check


def bench_fleet(workdir, playbooks, rounds):
    fleet = Fleet(workdir, playbooks)
    try:
        samples = interleaved([
            ("role", lambda: fleet.run(fleet.role_play), fleet.fresh("role"), fleet.verify("role")),
            ("floor", lambda: fleet.run(fleet.floor_play), fleet.fresh("floor"), fleet.verify("floor")),
            ("core", lambda: run_modules(fleet.args_files), fleet.fresh("core"), fleet.verify("core")),
        ], rounds)
        rerun = interleaved([("rerun", lambda: fleet.run(fleet.role_play), None, fleet.verify("role", False))], rounds,
                            warmup=0)
    finally:
        release_under(workdir)
    tasks = fleet.tasks
    group = Group("8. Twelve per-host images from a golden image: image_personalize role (forks=12) vs a shell loop",
                  ["role: ansible-playbook over 12 inventory hosts, forks=12, every task delegated to localhost:",
                   "      role diskimage.loop.image_personalize with host name, /etc/hosts line, empty machine-id,",
                   "      systemd-networkd file, motd template, root's and alice's keys (alice's on the home",
                   "      partition); 64 MiB GPT golden image (ESP, root, home); fresh copies every round",
                   "floor: ansible-playbook, one play on localhost, one ansible.builtin.script task running",
                   "      benchmarks/fleet_floor.sh: for each host cp --sparse=always --reflink=auto, mount -o loop",
                   "      of root and home, the same files written, umount",
                   "core: the 12 image_files module runs of the role without Ansible, started at once, the same",
                   "      arguments (Python's cached byte code: a lower bound of the module's share)",
                   "rerun: the role again over the 12 existing images, nothing to change (changed=0)"])
    group.pair(Row("12 images (image_personalize role, forks=12)", samples["role"],
                   note="(%d task results over the 12 hosts)" % tasks),
               Row("12 images (shell loop in one script task)", samples["floor"]))
    group.rows.append(Row("12 images, the module alone (12 processes, no Ansible)", samples["core"],
                          baseline=group.rows[1]))
    group.rows.append(Row("12 images re-run, nothing to change (role)", rerun["rerun"]))
    return group

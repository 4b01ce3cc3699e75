# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: image
short_description: Run tasks inside a disk image, chrooted in a private mount namespace
description:
  - An inventory host that is a disk image (or filesystem image) on the controller. Each task mounts the
    image's tree in a private mount namespace, prepares a working root in it - C(/proc), C(/sys), C(/dev)
    with C(/dev/pts), a C(/run) tmpfs, the controller's C(/etc/resolv.conf), a C(/usr/sbin/policy-rc.d) that
    keeps package installs from starting services - and runs the task's commands chrooted there.
  - The tree is mounted from a declared list (O(mounts)) or by the Discoverable Partitions rules of a GPT
    image, as C(systemd-dissect --mount) does; an image without a partition table is mounted whole at C(/).
  - The mounts exist only in a mount namespace held by a holder process. They never appear in the
    controller's mount table, and the kernel drops them when the namespace's last process exits, however
    it ends. The image's loop device is attached with autoclear, so the kernel also detaches it then.
  - An image that is not raw (qcow2, VMDK, VHDX, known by its header) is served by C(qemu-nbd) (package
    C(qemu-utils)) on a free C(/dev/nbdN), connected before the namespace is made (read-only with
    O(read_only)); the loop device is attached over that device. Closing the connection flushes and
    disconnects it; if the holder is killed, the next connect of any module of the collection takes the
    device down.
    Closing the connection (at the end of every task) kills what the task left running in the image,
    removes what was written for the duration, unmounts everything and detaches the loop device.
  - Images of another architecture (arm64, armhf, riscv64 on an x86-64 controller) run their programs
    through qemu-user-static, registered with binfmt_misc under a name unique to the run (flag C(F)) and
    removed afterwards; an existing registration is never changed.
  - Commands run as root in the image. C(become_user) switches to a user of the image's own
    C(/etc/passwd) with a become method the image has (C(su) is in every Debian image; C(sudo) where
    installed).
  - Needs root on the controller.
author:
  - diskimage.loop contributors (@diskimage)
version_added: 0.2.0
extends_documentation_fragment:
  - connection_pipelining
options:
  image:
    description: The image file.
    type: path
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_image
  remote_user:
    description:
      - The user commands run as before become. Only C(root) is supported; it tells Ansible that becoming
        C(root) changes nothing.
    type: str
    default: root
    vars:
      - name: ansible_user
  mounts:
    description:
      - What to mount where, in any order (parents are mounted first). Empty means the Discoverable
        Partitions rules.
      - Each entry has C(path), the mount point in the image, at most one selector of
        M(diskimage.loop.image_mount) (C(partition), C(partlabel), C(partuuid), C(label), C(uuid),
        C(parttype)), and optionally C(fstype), C(opts) and C(read_only).
    type: list
    elements: dict
    default: []
    vars:
      - name: ansible_image_mounts
  auto_exclude:
    description: Discoverable Partitions kinds left out of the automatic mounts (C(usr), C(home), C(esp)...).
    type: list
    elements: str
    default: []
    vars:
      - name: ansible_image_auto_exclude
  esp_path:
    description: Where the ESP goes in automatic mode; empty means C(/boot) when that is free and empty, else C(/efi).
    type: str
    default: ""
    vars:
      - name: ansible_image_esp_path
  image_format:
    description:
      - The container format of O(image) - C(raw), C(qcow2), C(vmdk), C(vhdx) - or C(auto), which reads it
        from the header. C(raw) is honoured whatever the header says; a declared format the header
        contradicts is refused.
    type: str
    default: auto
    choices: [auto, raw, qcow2, vmdk, vhdx]
    vars:
      - name: ansible_image_format
  read_only:
    description: Mount everything read-only; tasks can look, the image file does not change.
    type: bool
    default: false
    vars:
      - name: ansible_image_read_only
  arch:
    description:
      - The image's architecture as qemu names it (C(aarch64), C(arm), C(riscv64), C(x86_64)). Empty means
        the machine C(/bin/sh) of the image is built for.
    type: str
    default: ""
    vars:
      - name: ansible_image_arch
  emulator:
    description: The qemu-user-static program for a foreign image; empty means C(/usr/bin/qemu-<arch>-static).
    type: str
    default: ""
    vars:
      - name: ansible_image_emulator
  resolv_conf:
    description: Make the controller's C(/etc/resolv.conf) the image's for the duration of each task.
    type: bool
    default: true
    vars:
      - name: ansible_image_resolv_conf
  service_guard:
    description: Put a C(/usr/sbin/policy-rc.d) that answers 101 (forbidden) in place for the duration of each task.
    type: bool
    default: true
    vars:
      - name: ansible_image_service_guard
  timeout:
    description: Seconds to wait for the tree to be mounted.
    type: int
    default: 60
    vars:
      - name: ansible_image_timeout
notes:
  - The image must not be in use elsewhere (attached, mounted) while tasks run on it.
  - Ansible's remote temporary directory is in the image (C(~/.ansible/tmp) of root by default); set
    C(ansible_remote_tmp) to a directory under C(/run) to keep it in the tmpfs.
  - A file the connection covers for the duration (C(/etc/resolv.conf), C(/usr/sbin/policy-rc.d)) is a
    mount point while a task runs, so a task cannot replace it by renaming another file over it.
seealso:
  - name: Using the image connection
    description: docs/image-connection.md in the collection.
    link: https://github.com/diskimage/loop/blob/main/docs/image-connection.md
"""

EXAMPLES = r"""
# inventory.yml: each host is an image file
# all:
#   children:
#     images:
#       hosts:
#         /srv/images/debian.img:
#         /srv/images/debian-arm64.img:
#       vars:
#         ansible_connection: diskimage.loop.image
#         ansible_python_interpreter: /usr/bin/python3
#         ansible_become_method: su
#         ansible_pipelining: true

- name: Prepare the images
  hosts: images
  gather_facts: false
  tasks:
    - name: Install a package inside the image
      ansible.builtin.apt:
        name: openssh-server
        update_cache: true

    - name: Run a command as a user of the image
      ansible.builtin.command: id
      become: true
      become_user: alice
      changed_when: false
"""

import json
import os
import subprocess
import sys
import select

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import namespace as kernel_namespace
from ansible_collections.diskimage.loop.plugins.module_utils._tree import namespace

display = Display()

# The process that holds the namespace runs the collection's own module_utils with
# the controller's Python: the directory that holds ansible_collections/ goes on its path.
_COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *([os.pardir] * 5)))
_HOLDER = "ansible_collections.diskimage.loop.plugins.module_utils._tree.holder"
_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    "LANG": "C.UTF-8",
}


class Connection(ConnectionBase):
    """Commands chrooted in an image's tree, held in a private mount namespace."""

    transport = "diskimage.loop.image"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._holder = None
        self._info = None

    def _request(self):
        return {
            "image": os.path.abspath(os.path.expanduser(self.get_option("image"))),
            "mounts": self.get_option("mounts") or [],
            "auto_exclude": self.get_option("auto_exclude") or [],
            "esp_path": self.get_option("esp_path") or "",
            "read_only": bool(self.get_option("read_only")),
            "image_format": self.get_option("image_format") or "auto",
            "arch": self.get_option("arch") or "",
            "emulator": self.get_option("emulator") or "",
            "resolv_conf": bool(self.get_option("resolv_conf")),
            "service_guard": bool(self.get_option("service_guard")),
            # This runs in a worker forked from ansible-playbook: if that is killed,
            # the holder tears down instead of waiting for the worker's task to end.
            "watch_pid": os.getppid(),
        }

    def _connect(self):
        if self._connected:
            return self
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure("the image connection needs root on the controller: it attaches loop "
                                           "devices and mounts filesystems; run ansible-playbook as root")
        user = self.get_option("remote_user")
        if user and user != "root":
            raise AnsibleConnectionFailure("the image connection runs commands as root (got remote_user %s); use "
                                           "become_user to run as %s" % (user, user))
        request = self._request()
        env = {"PYTHONPATH": _COLLECTIONS_ROOT, "PATH": os.environ.get("PATH", _ENV["PATH"]),
               "PYTHONDONTWRITEBYTECODE": "1"}
        if os.environ.get("TMPDIR"):
            env["TMPDIR"] = os.environ["TMPDIR"]
        self._holder = subprocess.Popen([sys.executable, "-m", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, close_fds=True)
        self._holder.stdin.write(to_bytes(json.dumps(request) + "\n"))
        self._holder.stdin.flush()
        answer = self._read_answer(self.get_option("timeout"))
        if not answer.get("ok"):
            report = self._stop()
            raise AnsibleConnectionFailure("cannot open %s as a host: %s%s" % (
                request["image"], answer.get("msg", "no answer"), self._describe(report)))
        self._info = answer
        display.vvv("IMAGE %s: tree of %s (%s%s%s) via %s: %s" % (
            request["image"], answer["arch"], answer["loop"],
            " over %s" % answer["nbd_device"] if answer.get("nbd_device") else "", ", emulated" if answer["emulated"] else "",
            answer["root"], ", ".join("%s=%s" % (m["path"], m["device"]) for m in answer["mounted"])),
            host=self._play_context.remote_addr)
        self._connected = True
        return self

    def _read_answer(self, timeout):
        ready, _w, _x = select.select([self._holder.stdout], [], [], timeout)
        line = self._holder.stdout.readline() if ready else b""
        if not line:
            return {"ok": False, "msg": "the holder process gave no answer%s" % self._stderr_tail()}
        return json.loads(to_text(line))

    def _stderr_tail(self):
        if self._holder.poll() is None:
            return ""
        err = to_text(self._holder.stderr.read() or b"").strip()
        return ": " + err.splitlines()[-1] if err else ""

    @staticmethod
    def _describe(report):
        if not report:
            return ""
        text = "; ".join(report.get("done", []))
        if report.get("problems"):
            text += "; left behind: " + "; ".join(report["problems"])
        return " (teardown: %s)" % text if text else ""

    def _enter(self):
        pid, root, expected = self._info["pid"], self._info["root"], self._info["namespace"]

        def preexec():
            kernel_namespace.die_with_parent()
            namespace.enter(pid, root, expected)
        return preexec

    def _run(self, argv, stdin=None, in_data=None, stdout=None):
        proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.PIPE,
                                stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(_ENV), preexec_fn=self._enter(), close_fds=True)
        out, err = proc.communicate(in_data if stdin is None else None)
        return proc.returncode, out or b"", err

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv("EXEC %s" % cmd, host=self._play_context.remote_addr)
        rc, stdout, stderr = self._run(["/bin/sh", "-c", cmd], in_data=in_data)
        if sudoable and self.become and self.become.success:
            # The become wrapper's success marker, echoed before the command's own output.
            key = to_bytes(self.become.success)
            head, sep, rest = stdout.partition(key)
            if sep and not head.strip():
                stdout = rest.lstrip(b"\r\n")
        return rc, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        try:
            source = open(to_bytes(in_path), "rb")
        except OSError as exc:
            raise AnsibleError("cannot read %s to put it into the image: %s" % (in_path, to_native(exc)))
        with source:
            rc, _out, err = self._run(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=source)
        if rc != 0:
            raise AnsibleError("cannot write %s in the image: %s" % (out_path, to_native(err).strip()))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        with open(to_bytes(out_path), "wb") as target:
            rc, _out, err = self._run(["/bin/sh", "-c", 'cat "$1"', "sh", in_path], stdin=subprocess.DEVNULL,
                                      stdout=target)
        if rc != 0:
            raise AnsibleError("cannot read %s in the image: %s" % (in_path, to_native(err).strip()))

    def _stop(self):
        holder, self._holder = self._holder, None
        if holder is None:
            return None
        try:
            holder.stdin.close()
        except OSError:
            pass
        report = None
        ready, _w, _x = select.select([holder.stdout], [], [], 120)
        if ready:
            line = holder.stdout.readline()
            if line:
                report = json.loads(to_text(line))
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        return report

    def reset(self):
        self.close()

    def close(self):
        report = self._stop()
        self._info = None
        self._connected = False
        if report and report.get("problems"):
            display.warning("teardown of the image left something behind: %s" % "; ".join(report["problems"]))
        elif report:
            display.vvv("IMAGE teardown: %s" % "; ".join(report.get("done", [])), host=self._play_context.remote_addr)

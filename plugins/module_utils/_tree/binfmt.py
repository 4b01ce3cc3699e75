# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Foreign-architecture images: which machine a tree is for, and a binfmt_misc
registration of qemu-user-static for it.

The registration has a name of its own (prefix, PID namespace, pid, random
part, architecture), flag F (the kernel opens the interpreter now, so it works
inside a chroot that lacks it), and is removed afterwards. The kernel tries the newest registration first, so
one made here takes precedence while it exists, and a registration made by
somebody else is never written to. Entries whose process is gone (a run
killed with SIGKILL) are removed by the next run in the same PID namespace
(binfmt_misc is shared with containers, whose pids this one cannot see).
The line written is checked first: printable ASCII, magic and mask as \\x
escapes only. Raw bytes there once made an entry that matched every ELF.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import struct
import binascii

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import holders, mountsys
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
NAME_PREFIX = "diskimage-loop-"
# prefix, PID namespace inode, pid, random part, architecture
_NAME_RE = re.compile(r"^diskimage-loop-(\d+)-(\d+)-[0-9a-f]{6}-[a-z0-9_]+$")
# What register accepts from us: a checked name, magic and mask written as \x
# escapes only (never raw bytes), an absolute interpreter path without ':' or
# spaces, flag F.
_LINE_RE = re.compile(r"^:(diskimage-loop-[0-9a-z_-]+):M::((?:\\x[0-9a-f]{2})+):((?:\\x[0-9a-f]{2})+):"
                      r"(/[\x21-\x39\x3b-\x7e]+):F$")

# ELF e_machine -> (qemu name, ELF class, what uname -m says). Magic and mask are
# those qemu-binfmt-conf.sh registers: ELF class, data, version, type EXEC or DYN.
ELF_MACHINES = {
    3: ("i386", 1, "i686"),
    40: ("arm", 1, "armv7l"),
    62: ("x86_64", 2, "x86_64"),
    183: ("aarch64", 2, "aarch64"),
    243: ("riscv64", 2, "riscv64"),
}
# Machines a host runs natively besides its own.
NATIVE = {"x86_64": ("x86_64", "i386"), "aarch64": ("aarch64",), "riscv64": ("riscv64",),
          "armv7l": ("arm",), "i686": ("i386",)}


def tree_machine(root, probe="/bin/sh"):
    """The qemu name of the machine the tree's ``probe`` program is built for."""
    path = paths.resolve_in(root, probe)
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except (IOError, OSError) as exc:
        raise DiskImageError.from_oserror("cannot read %s in the image to tell its architecture" % probe, exc)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise DiskImageError("%s in the image is not an ELF program" % probe,
                             hint="Name the architecture with the arch option")
    little = header[5] == 1
    machine = struct.unpack("<H" if little else ">H", header[18:20])[0]
    if machine not in ELF_MACHINES:
        raise DiskImageError("%s in the image is for ELF machine %d, which is not supported" % (probe, machine))
    return ELF_MACHINES[machine][0]


def is_native(arch, host_machine=None):
    host = host_machine or os.uname()[4]
    return arch in NATIVE.get(host, (host,))


def _entry_bytes(arch):
    for machine, (name, elf_class, _uname) in ELF_MACHINES.items():
        if name == arch:
            magic = b"\x7fELF" + bytes([elf_class, 1, 1]) + b"\x00" * 9 + b"\x02\x00" + struct.pack("<H", machine)
            mask = b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff\xff\xff"
            return magic, mask
    raise DiskImageError("no binfmt_misc entry is known for %s" % arch)


def _escape(data):
    return "".join("\\x%02x" % c for c in bytearray(data))


def registration_line(name, arch, interpreter):
    """What to write to binfmt_misc's register file; checked by check_line."""
    magic, mask = _entry_bytes(arch)
    return check_line(":%s:M::%s:%s:%s:F" % (name, _escape(magic), _escape(mask), interpreter))


def check_line(line):
    """Refuse a registration line that is not exactly what this module means
    to write: only printable ASCII, one of our names, magic and mask of equal
    length as \\x escapes, an absolute interpreter path, flag F."""
    match = _LINE_RE.match(line) if all(0x20 < ord(c) < 0x7f for c in line) else None
    if not match or not _NAME_RE.match(match.group(1)) or len(match.group(2)) != len(match.group(3)):
        raise DiskImageError("refusing to register a malformed binfmt_misc entry: %r" % line,
                             hint="The name, the emulator path (absolute, no ':' or spaces) and the magic must be "
                                  "printable ASCII")
    return line


def _pid_namespace():
    name = holders.namespace_of("self", "pid") or ""
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


def entry_name(arch):
    """A name no other run uses: PID namespace, pid, random part."""
    return "%s%d-%d-%s-%s" % (NAME_PREFIX, _pid_namespace(), os.getpid(),
                              binascii.hexlify(os.urandom(3)).decode(), arch)


def find_emulator(arch, given=None):
    """Path of qemu-user-static for ``arch``; a clear error when it is missing."""
    candidates = [given] if given else ["/usr/bin/qemu-%s-static" % arch, "/usr/libexec/qemu-binfmt/%s-binfmt-P" % arch]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise DiskImageError("the image is for %s and this host cannot run its programs: %s is missing" % (
        arch, candidates[0]), errno=errno.ENOENT,
        hint="Install qemu-user-static (apt-get install qemu-user-static), or name the emulator with the "
             "emulator option")


def ensure_mounted():
    """binfmt_misc mounted where the kernel expects it (only in this process's
    mount namespace when that is a private one)."""
    if not os.path.exists(os.path.join(BINFMT_DIR, "register")):
        try:
            mountsys.mount("binfmt_misc", BINFMT_DIR, "binfmt_misc")
        except DiskImageError as exc:
            raise DiskImageError("binfmt_misc is not available: %s" % exc,
                                 hint="Load the binfmt_misc module (modprobe binfmt_misc)")


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def unregister(name):
    """Remove entry ``name``, one of ours (never somebody else's)."""
    if not _NAME_RE.match(name):
        raise DiskImageError("refusing to remove binfmt_misc entry %r: it is not one this collection made" % name)
    path = os.path.join(BINFMT_DIR, name)
    try:
        _write(path, "-1")
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise DiskImageError.from_oserror("cannot remove the binfmt_misc entry %s" % name, exc)


def sweep_stale():
    """Remove the entries of runs in this PID namespace whose process is gone;
    returns their names."""
    gone = []
    here = _pid_namespace()
    for name in os.listdir(BINFMT_DIR):
        match = _NAME_RE.match(name)
        if match and int(match.group(1)) == here and not os.path.exists("/proc/%s" % match.group(2)):
            if unregister(name):
                gone.append(name)
    return gone


def register(arch, interpreter):
    """Register ``interpreter`` for ``arch`` under a name of this run; returns the name."""
    name = entry_name(arch)
    line = registration_line(name, arch, interpreter)
    try:
        _write(os.path.join(BINFMT_DIR, "register"), line)
    except OSError as exc:
        raise DiskImageError.from_oserror("cannot register %s for %s with binfmt_misc" % (interpreter, arch), exc,
                                          hint="Run as root; the kernel needs binfmt_misc")
    return name

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tree.binfmt: the registration line (checked: printable ASCII, \\x escapes,
a name unique to the run), its removal, and the architecture probe."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import binfmt
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

NAME = "diskimage-loop-4026531836-123-abcdef-aarch64"


def test_registration_line_matches_qemu_binfmt_conf():
    line = binfmt.registration_line(NAME, "aarch64", "/usr/bin/qemu-aarch64-static")
    magic = "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01" + "\\x00" * 9 + "\\x02\\x00\\xb7\\x00"
    mask = "\\xff" * 7 + "\\x00" + "\\xff" * 8 + "\\xfe\\xff\\xff\\xff"
    assert line == ":" + NAME + ":M::%s:%s:/usr/bin/qemu-aarch64-static:F" % (magic, mask)
    assert ":\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01" in binfmt.registration_line(NAME, "arm", "/q")


def _elf(machine, elf_class=2):
    return b"\x7fELF" + bytes([elf_class, 1, 1]) + b"\0" * 9 + b"\x02\x00" + machine.to_bytes(2, "little")


def test_tree_machine_follows_links_inside_the_tree(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "dash").write_bytes(_elf(183))
    os.symlink("usr/bin", str(root / "bin"))
    os.symlink("/usr/bin/dash", str(root / "usr" / "bin" / "sh"))  # absolute: resolved in the tree
    assert binfmt.tree_machine(str(root)) == "aarch64"
    assert not binfmt.is_native("aarch64", "x86_64")
    assert binfmt.is_native("i386", "x86_64")


def test_tree_machine_refuses_unknown(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").write_bytes(b"#!/bin/true\n" + b"\0" * 20)
    with pytest.raises(DiskImageError, match="not an ELF program"):
        binfmt.tree_machine(str(tmp_path))


def test_missing_emulator_says_what_to_install(tmp_path):
    with pytest.raises(DiskImageError, match="apt-get install qemu-user-static"):
        binfmt.find_emulator("riscv64", str(tmp_path / "nothing"))


@pytest.mark.parametrize("line", [
    # raw bytes instead of \x escapes: the entry that matched every ELF
    ":" + NAME + ":M::\x7fELF\x02\x01\x01:\xff\xff\xff\xff\xff\xff\xff:/usr/bin/qemu-aarch64-static:F",
    ":" + NAME + ":M::\\x7f\\x45:\\xff:/q:F",  # mask shorter than magic
    ":" + NAME + ":M::\\x7f\\x45:\\xff\\xff:relative/q:F",
    ":" + NAME + ":M::\\x7f\\x45:\\xff\\xff:/q with space:F",
    ":" + NAME + ":M::\\x7f\\x45:\\xff\\xff:/q:x:F",
    ":qemu-aarch64:M::\\x7f\\x45:\\xff\\xff:/q:F",  # somebody else's name
    ":" + NAME + ":E::elf::/q:F",
])
def test_malformed_lines_are_refused(line):
    with pytest.raises(DiskImageError, match="malformed binfmt_misc entry"):
        binfmt.check_line(line)


def test_every_line_written_is_printable_escaped_ascii():
    for arch in ("aarch64", "arm", "riscv64", "i386", "x86_64"):
        line = binfmt.registration_line(binfmt.entry_name(arch), arch, "/usr/bin/qemu-%s-static" % arch)
        assert all(0x20 < ord(c) < 0x7f for c in line)
        magic = line.split(":")[4]
        assert magic.startswith("\\x7f\\x45\\x4c\\x46") and len(magic) == 20 * 4


def test_interpreter_with_a_colon_is_refused():
    with pytest.raises(DiskImageError, match="malformed"):
        binfmt.registration_line(NAME, "aarch64", "/opt/q:emu")


def test_names_are_unique_per_run_and_removed(tmp_path, monkeypatch):
    """register() writes one checked line under a fresh name; unregister() removes
    only names of that form; sweep_stale() only dead runs of this PID namespace."""
    monkeypatch.setattr(binfmt, "BINFMT_DIR", str(tmp_path))
    (tmp_path / "register").write_text("")
    first = binfmt.register("aarch64", "/usr/bin/qemu-aarch64-static")
    line = (tmp_path / "register").read_text()
    second = binfmt.register("aarch64", "/usr/bin/qemu-aarch64-static")
    assert first != second
    assert line.startswith(":%s:M::\\x7f" % first) and binfmt.check_line(line) == line
    assert ("-%d-" % os.getpid()) in first

    (tmp_path / first).write_text("")
    assert binfmt.unregister(first)
    assert (tmp_path / first).read_text() == "-1"
    assert not binfmt.unregister(second)  # already gone: nothing to do
    with pytest.raises(DiskImageError, match="not one this collection made"):
        binfmt.unregister("qemu-aarch64")

    here = binfmt._pid_namespace()
    dead = "diskimage-loop-%d-%d-abcdef-aarch64" % (here, 2 ** 22 + 1)
    elsewhere = "diskimage-loop-%d-%d-abcdef-aarch64" % (here + 1, 2 ** 22 + 1)  # a container's run
    for name in (dead, elsewhere, "qemu-aarch64"):
        (tmp_path / name).write_text("")
    assert binfmt.sweep_stale() == [dead]
    assert (tmp_path / elsewhere).read_text() == "" and (tmp_path / "qemu-aarch64").read_text() == ""

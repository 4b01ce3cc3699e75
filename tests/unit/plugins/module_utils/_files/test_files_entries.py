# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.entries: every entry checked before anything is touched, modes, and the
lineinfile rule of state line."""
import re

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files import entries
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_a_file_entry_is_normalized():
    entry = entries.normalize({"path": "/etc//hostname/", "content": "web1\n", "mode": "0644", "create": True})
    assert entry["path"] == "/etc/hostname" and entry["state"] == "file"
    assert entry["content"] == b"web1\n" and entry["mode"] == 0o644 and entry["create"] is True


@pytest.mark.parametrize("value, mode", [("0644", 0o644), ("755", 0o755), ("01777", 0o1777), (420, 0o644), (None, None)])
def test_modes(value, mode):
    assert entries.parse_mode(value, "/x") == mode


@pytest.mark.parametrize("raw, message", [
    ({"path": "etc/hostname", "content": ""}, "needs a path inside the image"),
    ({"path": "/etc/../../host", "content": ""}, r"leaves the tree \(\.\.\)"),
    ({"path": "/", "state": "directory"}, "cannot be written"),
    ({"path": "/etc/x"}, "state None is not one of"),
    ({"path": "/etc/x", "state": "directory", "content": "a"}, r"\(state directory\) cannot have content"),
    ({"path": "/etc/x", "state": "absent", "create": False}, "cannot have create"),
    ({"path": "/etc/x", "content": "", "mode": "u=rw"}, "is not an octal mode"),
    ({"path": "/etc/x", "state": "line", "line": "a\nb"}, "one line without a newline"),
    ({"path": "/etc/x", "state": "line", "line": "a", "regexp": "("}, "does not compile"),
])
def test_bad_entries_are_refused_with_the_reason(raw, message):
    with pytest.raises(DiskImageError, match=message):
        entries.normalize(raw)


def test_a_path_declared_twice_is_refused_before_anything():
    with pytest.raises(DiskImageError, match="/etc/x is declared twice"):
        entries.normalize_all([{"path": "/etc/x", "content": "a"}, {"path": "/etc/x/", "content": "b"}])
    lines = entries.normalize_all([{"path": "/etc/x", "state": "line", "line": "a"},
                                   {"path": "/etc/x", "state": "line", "line": "b"}])
    assert [e["line"] for e in lines] == ["a", "b"]


def test_with_line_replaces_the_last_match_like_lineinfile():
    regexp = re.compile(r"^127\.0\.1\.1\s")
    text = "127.0.0.1 localhost\n127.0.1.1 old\n127.0.1.1 older\n"
    assert entries.with_line(text, "127.0.1.1\tweb1", regexp) == (
        "127.0.0.1 localhost\n127.0.1.1 old\n127.0.1.1\tweb1\n")


def test_with_line_adds_at_the_end_unless_present():
    regexp = re.compile(r"^127\.0\.1\.1\s")
    assert entries.with_line("127.0.0.1 localhost", "127.0.1.1\tweb1", regexp) == (
        "127.0.0.1 localhost\n127.0.1.1\tweb1\n")
    assert entries.with_line("", "x", None) == "x\n"
    same = "a\nx\nb\n"
    assert entries.with_line(same, "x", None) is same
    assert entries.with_line("127.0.1.1\tweb1\n", "127.0.1.1\tweb1", regexp) == "127.0.1.1\tweb1\n"

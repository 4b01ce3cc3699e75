# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declared files, checked before anything is copied or mounted.

Each entry says what one path in the image must be: a file with this content,
a directory, absent, or a file holding one line. Checking happens on the whole
list first, so a typo in the tenth entry changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

STATES = ("file", "directory", "absent", "line")
DEFAULT_MODES = {"file": 0o644, "line": 0o644, "directory": 0o755}
_KEYS = {
    "file": ("content", "mode", "owner", "group", "create"),
    "line": ("line", "regexp", "mode", "owner", "group", "create"),
    "directory": ("mode", "owner", "group"),
    "absent": (),
}
_OCTAL = re.compile(r"^0?[0-7]{3,4}$")


def parse_mode(value, where):
    """'0644', '644' or 420 (what YAML makes of 0644) -> 0o644; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0o7777
    text = str(value).strip()
    if _OCTAL.match(text):
        return int(text, 8)
    raise DiskImageError("%s: mode %r is not an octal mode" % (where, value),
                         hint="Quote it as a string of octal digits, such as '0644'")


def _path(raw):
    path = raw.get("path")
    if not isinstance(path, str) or not (path.startswith("/") or path.startswith("~")):
        raise DiskImageError("file entry %r needs a path inside the image, absolute or ~user/..." % (path,),
                             hint="Write entries like {path: /etc/hostname, content: \"web1\\n\"}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DiskImageError("path %s leaves the tree (..)" % path, hint="Give a path without ..")
    if path.startswith("/") and not parts:
        raise DiskImageError("path / cannot be written", hint="Name a file or a directory below /")
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def normalize(raw):
    """One entry, checked: {path, state, content, line, regexp, mode, owner,
    group, create}; unused keys are None."""
    if not isinstance(raw, dict):
        raise DiskImageError("file entry %r is not a dictionary" % (raw,))
    path = _path(raw)
    state = raw.get("state") or ("file" if raw.get("content") is not None else None)
    if state not in STATES:
        raise DiskImageError("%s: state %r is not one of %s" % (path, state, ", ".join(STATES)),
                             hint="Give content for a file, or state directory, absent or line")
    given = set(k for k, v in raw.items() if v is not None and k not in ("path", "state")
                and not (k == "create" and v is True))  # true is the default, meaningful or not
    extra = sorted(given - set(_KEYS[state]))
    if extra:
        raise DiskImageError("%s (state %s) cannot have %s" % (path, state, ", ".join(extra)),
                             hint="Keys of state %s: %s" % (state, ", ".join(_KEYS[state]) or "path only"))
    entry = {"path": path, "state": state, "content": None, "line": None, "regexp": None,
             "mode": parse_mode(raw.get("mode"), path), "owner": raw.get("owner"), "group": raw.get("group"),
             "create": raw.get("create", True) is not False}
    if state == "file":
        if not isinstance(raw.get("content"), str):
            raise DiskImageError("%s: a file needs its content as a string" % path)
        entry["content"] = raw["content"].encode("utf-8")
    if state == "line":
        if not isinstance(raw.get("line"), str) or "\n" in raw["line"]:
            raise DiskImageError("%s: state line needs line, one line without a newline" % path)
        entry["line"] = raw["line"]
        if raw.get("regexp") is not None:
            try:
                entry["regexp"] = re.compile(raw["regexp"])
            except re.error as exc:
                raise DiskImageError("%s: regexp %r does not compile: %s" % (path, raw["regexp"], exc))
    return entry


def normalize_all(raws):
    entries = [normalize(raw) for raw in raws or ()]
    seen = {}
    for entry in entries:
        key = (entry["path"], entry["state"])
        if key in seen and entry["state"] != "line":
            raise DiskImageError("%s is declared twice" % entry["path"], hint="Declare each path once")
        seen[key] = True
    return entries


def with_line(text, line, regexp=None):
    """``text`` with ``line`` in it, as lineinfile does: the last line that
    ``regexp`` matches is replaced; without a match, the line is added at the
    end unless it is there already."""
    lines = text.splitlines()
    if regexp is not None:
        matches = [i for i, current in enumerate(lines) if regexp.search(current)]
        if matches:
            lines[matches[-1]] = line
            return "\n".join(lines) + "\n"
    if line in lines:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"

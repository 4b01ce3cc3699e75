# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which filesystem of an image goes where in its tree, and in which order.

Two sources: a declared list (``path`` plus at most one partition selector), or
the Discoverable Partitions rules that ``systemd-dissect --mount`` follows on a GPT
image (root at /, then /usr, /home, /srv, /var, /var/tmp, XBOOTLDR at /boot, the
ESP at /boot or /efi). Mounting goes shortest mount point first, so parents come
before their children; teardown is the exact reverse. Pure functions: nothing here
touches the kernel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.diskimage.loop.plugins.module_utils._mount.source import SELECTORS
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# (kind, partition type alias pattern, mount point), in systemd-dissect's order.
# The ESP's place is decided once the root is mounted (see place_esp).
DPS_PLACES = (
    ("root", r"^root-(?!verity)", "/"),
    ("usr", r"^usr-(?!verity)", "/usr"),
    ("home", r"^home$", "/home"),
    ("srv", r"^srv$", "/srv"),
    ("var", r"^var$", "/var"),
    ("tmp", r"^tmp$", "/var/tmp"),
    ("xbootldr", r"^xbootldr$", "/boot"),
    ("esp", r"^esp$", None),
)
KINDS = tuple(kind for kind, _pattern, _path in DPS_PLACES)

# GPT attribute bits: 63 asks automatic mounting to skip the partition, 60 asks
# for a read-only mount.
NO_AUTO = 1 << 63
READ_ONLY = 1 << 60


def _entry(path, selector=None, fstype="", opts="", read_only=False, kind=""):
    return {"path": path, "selector": dict(selector or {}), "fstype": fstype or "",
            "opts": opts or "", "read_only": bool(read_only), "kind": kind}


def normalize_path(path):
    """'/var/log/' -> '/var/log'; '' and relative paths are refused."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise DiskImageError("mount point %r is not an absolute path" % (path,),
                             hint="Give each mount a path inside the image, such as / or /boot/efi")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DiskImageError("mount point %r leaves the tree (..)" % path, hint="Give a path without ..")
    return "/" + "/".join(parts)


def declared_plan(mounts):
    """The declared list, checked: absolute unique paths, at most one selector each."""
    plan = []
    seen = set()
    for raw in mounts:
        if not isinstance(raw, dict) or "path" not in raw:
            raise DiskImageError("each mount needs a path (got %r)" % (raw,),
                                 hint="Write entries like {path: /, partition: 1}")
        path = normalize_path(raw["path"])
        if path in seen:
            raise DiskImageError("mount point %s is declared twice" % path, hint="Declare each path once")
        seen.add(path)
        selector = dict((k, raw[k]) for k in SELECTORS if raw.get(k) not in (None, ""))
        if len(selector) > 1:
            raise DiskImageError("mount %s has %d selectors (%s)" % (path, len(selector), ", ".join(sorted(selector))),
                                 hint="Keep one of %s" % ", ".join(SELECTORS))
        unknown = sorted(set(raw) - set(SELECTORS) - set(("path", "fstype", "opts", "read_only")))
        if unknown:
            raise DiskImageError("mount %s has unknown keys: %s" % (path, ", ".join(unknown)),
                                 hint="Use path, fstype, opts, read_only and one of %s" % ", ".join(SELECTORS))
        plan.append(_entry(path, selector, raw.get("fstype"), raw.get("opts"), raw.get("read_only", False)))
    return plan


def auto_plan(table, exclude=()):
    """Discoverable Partitions: the entries for ``table`` (a PartitionTable or None).

    No table: the whole image at /. The ESP entry has path None until
    place_esp() decides. Raises DiskImageError when two partitions share a
    kind or there is no root partition.
    """
    if table is None:
        return [_entry("/", kind="root")]
    bad = sorted(set(exclude) - set(KINDS) | (set(exclude) & set(("root",))))
    if bad:
        raise DiskImageError("cannot leave out %s" % ", ".join(bad),
                             hint="Leave out some of %s (never root)" % ", ".join(KINDS[1:]))
    plan = []
    problems = []
    parts = [p for p in table.partitions if p.kind != "extended"]
    for kind, pattern, path in DPS_PLACES:
        if kind in exclude:
            continue
        found = [p for p in parts if re.search(pattern, p.type_alias or "") and not (p.attributes or 0) & NO_AUTO]
        if len(found) > 1:
            problems.append("partitions %s are all of type %s" % (
                ", ".join(str(p.number) for p in found), found[0].type_alias))
        elif found:
            part = found[0]
            plan.append(_entry(path, {"partition": part.number}, read_only=(part.attributes or 0) & READ_ONLY,
                               kind=kind))
    if not problems and not any(e["path"] == "/" for e in plan):
        problems.append("it has no root partition of a Discoverable Partitions type")
    if problems:
        listing = ", ".join("%d: %s" % (p.number, p.type_alias or p.type) for p in parts) or "none"
        raise DiskImageError("the image cannot be mounted by the Discoverable Partitions rules: %s; its partitions: %s"
                             % ("; ".join(problems), listing),
                             hint="Declare the mounts instead (a list of {path, partition})")
    return plan


def place_esp(plan, boot_empty, esp_path=""):
    """Give the ESP entry its path: ``esp_path`` if set, else /boot when no
    XBOOTLDR took it and the image's /boot is an empty directory, else /efi."""
    boot_taken = any(e["path"] == "/boot" for e in plan)
    out = []
    for entry in plan:
        if entry["path"] is None:
            entry = dict(entry)
            if esp_path:
                entry["path"] = normalize_path(esp_path)
            else:
                entry["path"] = "/boot" if boot_empty and not boot_taken else "/efi"
        out.append(entry)
    return out


def _depth(path):
    return 0 if path == "/" else path.count("/")


def mount_order(plan):
    """Entries with a path, shortest mount point first (parents before children)."""
    return sorted((e for e in plan if e["path"] is not None), key=lambda e: (_depth(e["path"]), e["path"]))


def teardown_order(mounted):
    """What was mounted, newest first: the reverse of the order it was mounted in."""
    return list(reversed(list(mounted)))


def where(root, path):
    """Host path of ``path`` inside a tree mounted at ``root``."""
    return root.rstrip("/") + ("" if path == "/" else path) or "/"

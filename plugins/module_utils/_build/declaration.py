# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_build role's declaration, checked and turned into module arguments.

One pure function, ``build_plan``, reads the role's variables and returns what
each module call of the role takes: the layout for image_partitions, the mounts
for image_tree (once the table is known), the filesystems for image_mkfs, the
population split by kind, and the digest the build stamp records. Everything a
playbook gets wrong is refused here, before the first change, with a message
that names the entry and the fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import posixpath

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import parse_size
from ansible_collections.diskimage.loop.plugins.module_utils._partition.types import is_extended, resolve_type
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids
from ansible_collections.diskimage.loop.plugins.module_utils._image.entries import tree_mounts

# The keys of a declared partition that belong to the partition table.
TABLE_KEYS = ("size", "type", "name", "uuid", "bootable")
# The keys image_partitions makes the partition's filesystem from.
FILESYSTEM_KEYS = ("fstype", "label", "mkfs_options", "mkfs_program")
# The time FAT cannot go below: the epoch of a reproducible build without one.
FAT_EPOCH = 315532800
POPULATE_KINDS = ("archive", "src", "content")


def _fail(message, hint=None):
    raise DiskImageError("image_build: %s" % message, hint=hint)


def normalize_mountpoint(value, where):
    """'/p3/' -> '/p3'; '' (not mounted) stays ''; a relative path is refused."""
    if value in (None, ""):
        return ""
    text = str(value)
    if not text.startswith("/"):
        _fail("%s.mountpoint %r is not absolute" % (where, text), hint="Write mount points as /, /boot, /var")
    return text.rstrip("/") or "/"


def _is_extended(part, label):
    kind = part.get("type")
    if kind is None or label != "dos":
        return False
    try:
        return is_extended(resolve_type(kind, "dos"))
    except DiskImageError:
        return False  # image_partitions names a bad type, with the list of good ones


def _mkfs_options(value, where):
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        _fail("%s.mkfs_options must be a list of strings, one argument each (got %r)" % (where, value),
              hint='Write it as [-m, "0"]')
    return [str(v) for v in value]


def data_partitions(partitions, label):
    """The declared partitions that hold data (not a dos extended one), each with
    its index in the declaration and its mount point written one way."""
    if not isinstance(partitions, list) or not partitions:
        _fail("image_build_partitions must list at least one partition")
    out = []
    seen = {}
    for index, part in enumerate(partitions):
        where = "partition #%d" % index
        if not isinstance(part, dict):
            _fail("%s must be a mapping (got %r)" % (where, part))
        mountpoint = normalize_mountpoint(part.get("mountpoint"), where)
        fstype = str(part.get("fstype") or "")
        if _is_extended(part, label):
            if mountpoint or fstype:
                _fail("%s is the extended partition, which holds no filesystem and cannot be mounted" % where,
                      hint="Give fstype and mountpoint to the logical partitions after it")
            continue
        if mountpoint:
            if mountpoint in seen:
                _fail("%s and partition #%d are both mounted at %s" % (where, seen[mountpoint], mountpoint),
                      hint="Give each partition its own mount point")
            seen[mountpoint] = index
            if not fstype or fstype == "swap":
                _fail("%s has mount point %s but %s" % (where, mountpoint, "is swap" if fstype else "no fstype"),
                      hint="Give it a filesystem to mount, or drop the mount point")
        entry = dict(part)
        entry.update({"index": index, "mountpoint": mountpoint, "fstype": fstype,
                      "mkfs_options": _mkfs_options(part.get("mkfs_options"), where)})
        out.append(entry)
    return out


def layout(inputs, reproducible):
    """The layout image_partitions writes: the table's keys, and the
    filesystem's where image_partitions makes it (image_mkfs does in
    reproducible mode); identifiers from the seed in reproducible mode."""
    keys = TABLE_KEYS if reproducible else TABLE_KEYS + FILESYSTEM_KEYS
    result = {"label": inputs.get("label") or "gpt",
              "partitions": [dict((k, v) for k, v in part.items() if k in keys and v not in (None, ""))
                             for part in inputs["partitions"]]}
    if inputs.get("disk_id"):
        result["disk_id"] = inputs["disk_id"]
    return ids.seeded_layout(result, str(inputs.get("seed") or "")) if reproducible else result


def populate(entries, reproducible):
    """The population split by kind, each kind in the declared order: the
    directories to create, the archives to unpack, the files and contents to
    write. Paths are inside the image (absolute)."""
    dirs, archives, files = [], [], []
    if reproducible:
        # The staged tree becomes the root directory of the image.
        dirs.append({"path": "/", "mode": "0755"})
    for index, entry in enumerate(entries or []):
        kinds = [k for k in POPULATE_KINDS if isinstance(entry, dict) and entry.get(k) is not None]
        if len(kinds) != 1:
            _fail("image_build_populate entry #%d needs exactly one of archive, src or content (got %s)"
                  % (index, json.dumps(entry, sort_keys=True, default=str)))
        dest = entry.get("dest")
        if dest in (None, "") and kinds[0] == "archive":
            dest = "/"
        if not isinstance(dest, str) or not dest.startswith("/"):
            _fail("image_build_populate entry #%d needs an absolute dest inside the image (got %r)" % (index, dest))
        if kinds[0] == "archive":
            dirs.append({"path": dest, "mode": str(entry.get("mode") or "0755")})
            archive = {"src": entry["archive"], "dest": dest, "remote_src": entry.get("remote_src", True)}
            if entry.get("extra_opts"):
                archive["extra_opts"] = entry["extra_opts"]
            archives.append(archive)
            continue
        parent = posixpath.dirname(dest.rstrip("/")) or "/"
        if parent != "/":
            dirs.append({"path": parent, "mode": "0755"})
        item = dict((k, entry[k]) for k in ("src", "content", "owner", "group") if entry.get(k) is not None)
        item.update({"dest": dest, "remote_src": entry.get("remote_src", False),
                     "mode": str(entry.get("mode") or "0644")})
        files.append(item)
    return {"dirs": dirs, "archives": archives, "files": files}


def digest(inputs, size, reproducible, epoch):
    """What the stamp records about the declaration. Computed as earlier
    versions of the role did, so their stamps stay valid."""
    record = {"size": size, "label": inputs.get("label") or "gpt", "disk_id": inputs.get("disk_id") or "",
              "partitions": inputs["partitions"], "populate": inputs.get("populate") or [],
              "populate_tasks": inputs.get("populate_tasks") or "",
              "populate_tasks_content": inputs.get("populate_tasks_content") or "",
              "revision": inputs.get("revision") or "",
              "reproducible": [epoch, inputs.get("seed")] if reproducible else False}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()


def pair(partitions, table):
    """Each declared data partition with its partition in the table, by the
    number image_partitions returned for its entry (entry_partitions)."""
    numbers = table.get("entry_partitions")
    if not isinstance(numbers, list):
        _fail("the result of image_partitions has no entry_partitions to pair the declaration with")
    found = dict((p.get("number"), p) for p in table.get("partitions") or [])
    pairs = []
    for want in partitions:
        number = numbers[want["index"]] if want["index"] < len(numbers) else None
        if number not in found:
            _fail("partition #%d of the declaration has no partition in the table" % want["index"])
        pairs.append((want, found[number]))
    return pairs


def mkfs_filesystems(pairs):
    """image_mkfs's filesystems (reproducible builds): one per partition with an fstype."""
    out = []
    for want, have in pairs:
        if want["fstype"]:
            fs = {"device": have["device"], "fstype": want["fstype"], "mountpoint": want["mountpoint"] or None,
                  "partuuid": have.get("uuid"), "mkfs_options": want["mkfs_options"]}
            for key in ("label", "mkfs_program"):
                if want.get(key):
                    fs[key] = want[key]
            out.append(fs)
    return out


def with_devices(table, tree):
    """image_partitions' result with each mounted partition's device (the loop
    device image_tree mounted it from) where the table has none."""
    devices = dict(((m.get("partition") or {}).get("number"), m.get("device"))
                   for m in (tree or {}).get("mounts") or [])
    out = dict(table)
    out["partitions"] = [dict(p, device=p.get("device") or devices.get(p.get("number")))
                         for p in table.get("partitions") or []]
    return out


def build_plan(inputs, table=None, tree=None):
    """The whole plan; ``table`` is image_partitions' result once it ran,
    ``tree`` image_tree's once the tree is mounted. The mounts are paired by
    _image.entries.tree_mounts, the rule the tree_mounts filter applies."""
    if not inputs.get("path"):
        _fail("image_build_path is empty", hint="Name the image file to build")
    try:
        size = parse_size(inputs.get("size"), "image_build_size")
    except DiskImageError as exc:
        _fail(exc.message, hint="Write it as a number of bytes or with a unit: 512MiB, 2G, 1.5GiB")
    if size <= 0:
        _fail("image_build_size must be positive (got %r)" % (inputs.get("size"),))
    label = inputs.get("label") or "gpt"
    epoch_text = str(inputs.get("source_date_epoch") or "")
    reproducible = bool(inputs.get("reproducible")) or bool(epoch_text)
    epoch = epoch_text or str(FAT_EPOCH)
    if not epoch.isdigit():
        _fail("image_build_source_date_epoch must be a number of seconds (got %r)" % epoch_text)
    parts = data_partitions(inputs.get("partitions"), label)
    plan = {"size": size, "reproducible": reproducible, "epoch": int(epoch),
            "layout": layout(inputs, reproducible), "partitions": parts,
            "populate": populate(inputs.get("populate"), reproducible),
            "digest": digest(inputs, size, reproducible, epoch)}
    if table:
        pairs = pair(parts, table)
        plan["mounts"] = tree_mounts(inputs["partitions"], table)
        plan["filesystems"] = mkfs_filesystems(pairs)
        plan["table"] = with_devices(table, tree)
    return plan

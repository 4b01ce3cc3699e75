# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's partition entries, turned into what the modules take.

A role declares each partition once: its place in the table, its filesystem
and its mount point. ``partition_layout`` keeps what image_partitions reads
(table keys and filesystem keys) and builds the layout; ``tree_mounts`` pairs
the entries that have a mount point with the partition numbers
image_partitions returned, as the mounts of an image tree. Both replace Jinja
loops, and the keys come from the code that reads them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._image.filesystems import FS_KEYS, TABLE_KEYS
from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids, mkfs
from ansible_collections.diskimage.loop.plugins.module_utils._tree.plan import mount_order, normalize_path
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

LAYOUT_ENTRY_KEYS = tuple(TABLE_KEYS) + FS_KEYS


def _entries(partitions, what):
    if not isinstance(partitions, list) or not all(isinstance(p, dict) for p in partitions):
        raise DiskImageError("%s expects a list of partition entries (dicts), got %r" % (what, partitions))
    return partitions


def partition_layout(partitions, label="gpt", disk_id=None, seed=None, filesystems=True):
    """The layout image_partitions takes: ``label``, ``disk_id`` when given,
    and each entry with only the keys image_partitions reads (without the
    filesystem keys when ``filesystems`` is false: the table alone);
    identifiers derived from ``seed`` when given (see ids.seeded_layout)."""
    entries = _entries(partitions, "partition_layout")
    keys = LAYOUT_ENTRY_KEYS if filesystems else TABLE_KEYS
    layout = {"label": label or "gpt",
              "partitions": [dict((k, v) for k, v in entry.items() if k in keys and v is not None)
                             for entry in entries]}
    if disk_id:
        layout["disk_id"] = disk_id
    return ids.seeded_layout(layout, str(seed)) if seed else layout


def tree_mounts(partitions, numbers):
    """[{path, partition, fstype, opts}] for the entries with a ``mountpoint``,
    shortest path first, by the partition number image_partitions returned for
    each entry: ``numbers`` is its result's entry_partitions, or the result."""
    entries = _entries(partitions, "tree_mounts")
    if isinstance(numbers, dict):
        numbers = numbers.get("entry_partitions")
    if not isinstance(numbers, list):
        raise DiskImageError("tree_mounts expects the entry_partitions of image_partitions (or its result), got %r"
                             % (numbers,))
    mounts = []
    for index, entry in enumerate(entries):
        if not entry.get("mountpoint"):
            continue
        if index >= len(numbers) or numbers[index] is None:
            raise DiskImageError("partition entry %d (mount point %s) has no partition in the table" % (
                index + 1, entry["mountpoint"]), hint="Give the result of image_partitions with these entries as layout")
        mount = {"path": normalize_path(entry["mountpoint"]), "partition": numbers[index]}
        if entry.get("fstype"):
            mount["fstype"] = mkfs.ALIASES.get(entry["fstype"], entry["fstype"])
        if entry.get("mount_options"):
            mount["opts"] = entry["mount_options"]
        mounts.append(mount)
    return mount_order(mounts)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identifiers derived from a seed instead of drawn at random.

Every identifier is a name-based (version 5) UUID in the namespace of the seed. A
partition is named by its type and how many partitions of that type come before it
(the way systemd-repart names them), so adding a partition of another type does not
change the others' identifiers. A filesystem is named by its partition's UUID.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

# The namespace of all seeds of this collection.
COLLECTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://galaxy.ansible.com/diskimage/loop")
_DEFAULT_TYPE = "linux"


def _space(seed):
    return uuid.uuid5(COLLECTION_NAMESPACE, "seed:%s" % seed)


def derived(seed, name):
    """The UUID of `name` for this seed, as a lower-case string."""
    return str(uuid.uuid5(_space(seed), name))


def disk_guid(seed):
    return derived(seed, "disk")


def dos_disk_id(seed):
    """A dos disk identifier, 0x followed by 8 hex digits, never zero (zero means none)."""
    value = uuid.UUID(derived(seed, "dos-disk-id")).int >> 96
    return "0x%08x" % (value or 1)


def partition_names(partitions):
    """'<type>#<n>' for each declared partition: its type and its rank among that type."""
    seen = {}
    names = []
    for part in partitions:
        kind = str(part.get("type") or _DEFAULT_TYPE).strip().lower()
        seen[kind] = seen.get(kind, 0) + 1
        names.append("%s#%d" % (kind, seen[kind]))
    return names


def seeded_layout(layout, seed):
    """The layout with a disk identifier and GPT partition UUIDs wherever none is declared."""
    out = dict(layout)
    label = out.get("label") or "gpt"
    if not out.get("disk_id"):
        out["disk_id"] = disk_guid(seed) if label == "gpt" else dos_disk_id(seed)
    parts = []
    for part, name in zip(out.get("partitions") or [], partition_names(out.get("partitions") or [])):
        part = dict(part)
        if label == "gpt" and not part.get("uuid"):
            part["uuid"] = derived(seed, "partition:" + name)
        parts.append(part)
    out["partitions"] = parts
    return out


def filesystem_uuid(seed, partuuid):
    """The filesystem UUID of the partition with this PARTUUID."""
    return derived(seed, "filesystem:%s" % str(partuuid).lower())


def hash_seed(fs_uuid):
    """The directory-hash seed of an ext filesystem, derived from its UUID."""
    return str(uuid.uuid5(uuid.UUID(fs_uuid), "hash_seed"))


def volume_id(fs_uuid):
    """The 32-bit FAT volume id (mkfs.vfat -i): the first 8 hex digits of the UUID."""
    return fs_uuid.replace("-", "")[:8]

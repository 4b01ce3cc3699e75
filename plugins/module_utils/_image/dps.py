# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the Discoverable Partitions rules mount each partition of a table.

The rules themselves (which type goes where, the no-auto bit, where the ESP
goes) live in ``_tree/plan.py``; this reads them per partition, for the
result of image_partitions and for the filter plugins. A partition that shares
its kind with another one gets no mount point: systemd-dissect mounts neither.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.diskimage.loop.plugins.module_utils._partition import types
from ansible_collections.diskimage.loop.plugins.module_utils._tree import plan as tree_plan


def kind_of(type_alias, attributes=0):
    """The Discoverable Partitions kind of a partition type alias ('root',
    'esp'...), or None: other types, verity, and the no-auto bit."""
    if (attributes or 0) & tree_plan.NO_AUTO:
        return None
    for kind, pattern, _path in tree_plan.DPS_PLACES:
        if re.search(pattern, type_alias or ""):
            return kind
    return None


def mount_point(type_alias, attributes=0, xbootldr=False):
    """The mount point of one partition, alone in its table except that an
    XBOOTLDR partition exists when ``xbootldr`` (the ESP then goes to /efi)."""
    kind = kind_of(type_alias, attributes)
    if kind is None:
        return None
    entry = {"path": dict((k, p) for k, _pattern, p in tree_plan.DPS_PLACES)[kind], "kind": kind}
    others = [{"path": "/boot", "kind": "xbootldr"}] if xbootldr and kind == "esp" else []
    return tree_plan.place_esp([entry] + others, boot_empty=True)[0]["path"]


def mount_points(partitions):
    """{partition number: mount point or None} for a table's partitions
    (objects with number, kind, type_alias and attributes), on an image whose
    /boot is empty - the case of an image being built."""
    kinds = dict((p.number, kind_of(p.type_alias, p.attributes)) for p in partitions if p.kind != "extended")
    counts = {}
    for kind in kinds.values():
        counts[kind] = counts.get(kind, 0) + 1
    xbootldr = counts.get("xbootldr") == 1
    out = {}
    for part in partitions:
        kind = kinds.get(part.number)
        unique = kind is not None and counts[kind] == 1
        out[part.number] = mount_point(part.type_alias, part.attributes, xbootldr) if unique else None
    return out


def mount_point_of(value, arch=None, xbootldr=False):
    """The mount point of a partition type (an alias, MBR id or GUID, read as
    a GPT type) or of a partition as image_partitions returns it (its type
    and attributes)."""
    attributes = 0
    if isinstance(value, dict):
        attributes = value.get("attributes") or 0
        alias = value.get("type_alias")
        if alias is None and value.get("type") is not None:
            label = "dos" if str(value["type"]).lower().startswith("0x") else "gpt"
            alias = types.type_alias(value["type"], label)
    else:
        alias = types.type_alias(types.resolve_type(value, "gpt", arch), "gpt")
    return mount_point(alias, attributes, xbootldr)

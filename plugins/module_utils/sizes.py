# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Byte sizes as playbooks write them: 4096, "8MiB", "8M", "1.5GiB", "100MB".

Units follow util-linux: a bare letter or the -iB form is a power of 1024
(K, KiB), the -B form a power of 1000 (KB). "s" suffixes count 512-byte sectors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGTPE]?)(IB|B)?|(S))?\s*$", re.IGNORECASE)


def parse_size(value, what="size"):
    """Return ``value`` as a whole number of bytes.

    Accepts non-negative ints and strings with units. A fractional value must
    come out as a whole number of bytes. Raises DiskImageError naming ``what``.
    """
    if isinstance(value, bool):
        raise DiskImageError("%s must be a number of bytes or a size like 8MiB, not a boolean" % what)
    if isinstance(value, int):
        if value < 0:
            raise DiskImageError("%s must not be negative (got %d)" % (what, value))
        return value
    if isinstance(value, float):
        if value < 0 or value != int(value):
            raise DiskImageError("%s must be a whole, non-negative number of bytes (got %r)" % (what, value))
        return int(value)
    text = str(value)
    if text.strip().startswith("-"):
        raise DiskImageError("%s must not be negative (got %r)" % (what, text))
    match = _SIZE_RE.match(text)
    if not match:
        raise DiskImageError(
            "%s %r is not a size" % (what, text),
            hint="Use a number of bytes or a number with a unit: 512, 4KiB, 8MiB, 2G, 100MB, 2048s",
        )
    number, prefix, suffix, sectors = match.groups()
    if sectors:
        multiplier = 512
    else:
        base = 1000 if (suffix or "").upper() == "B" and prefix else 1024
        multiplier = base ** _POWERS[(prefix or "").upper()]
    # Exact decimal arithmetic: "1.5GiB" must not pick up float rounding.
    whole, _dot, frac = number.partition(".")
    scale = 10 ** len(frac)
    total = int(whole + frac) * multiplier
    if total % scale:
        raise DiskImageError("%s %r is not a whole number of bytes" % (what, text))
    return total // scale


def format_size(num_bytes):
    """Shortest exact binary form: 8388608 -> '8MiB', 1000 -> '1000B'."""
    for unit, power in (("EiB", 6), ("PiB", 5), ("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        step = 1024 ** power
        if num_bytes and num_bytes % step == 0:
            return "%d%s" % (num_bytes // step, unit)
    return "%dB" % num_bytes

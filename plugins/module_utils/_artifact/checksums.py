# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checksum files in the format `sha256sum -c` (and its siblings) read."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

ALGORITHMS = ("sha1", "sha224", "sha256", "sha384", "sha512")


def file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def render(entries):
    """Lines '<hex>  <name>' for (name, hexdigest) pairs, names relative to the file.

    A name with a backslash or a newline is written the way coreutils escapes it: the
    line starts with a backslash and the characters are escaped.
    """
    lines = []
    for name, digest in entries:
        if "\\" in name or "\n" in name:
            lines.append("\\%s  %s\n" % (digest, name.replace("\\", "\\\\").replace("\n", "\\n")))
        else:
            lines.append("%s  %s\n" % (digest, name))
    return "".join(lines)


def relative_name(path, sums_path):
    """The name of path as seen from the directory of the checksum file."""
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(sums_path)))

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and write the artifacts of an image: compressed copies, bmap, checksum file.

Each file is written beside its final name and renamed into place, so an interrupted
run leaves no artifact that looks finished; a rerun writes it again. An artifact is
up to date when it exists and is not older than the image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._artifact import bmap, checksums, compress, extents


class Plan(object):
    """Which files the declaration asks for, and which of them are missing or stale."""

    def __init__(self, src, formats, level, want_bmap, algorithm, checksum_path):
        self.src = src
        self.formats = list(formats)
        self.level = level
        self.algorithm = algorithm
        self.paths = [(fmt, src + compress.SUFFIXES[fmt]) for fmt in self.formats]
        if want_bmap:
            self.paths.append(("bmap", src + ".bmap"))
        self.checksum_path = None
        if algorithm:
            self.checksum_path = checksum_path or "%s.%sSUMS" % (src, algorithm.upper())
            self.paths.append(("checksums", self.checksum_path))

    def stale(self):
        """The (kind, path) pairs to write, in the order they are written."""
        try:
            image = os.stat(self.src)
        except OSError as exc:
            raise DiskImageError.from_oserror("cannot read the image %s" % self.src, exc,
                                              hint="Build the image first, or correct src")
        out = []
        for kind, path in self.paths:
            try:
                if os.stat(path).st_mtime_ns >= image.st_mtime_ns:
                    continue
            except OSError:
                pass
            out.append((kind, path))
        # the checksum file lists the others, so it is rewritten with any of them
        if out and self.checksum_path and ("checksums", self.checksum_path) not in out:
            out.append(("checksums", self.checksum_path))
        return out


def _write_atomically(path, mode, writer):
    part = path + ".part"
    try:
        with open(part, "wb") as out:
            writer(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(part, mode)
        os.replace(part, path)
    except BaseException:
        if os.path.lexists(part):
            os.unlink(part)
        raise


def write(plan, todo, mode, digest_of=checksums.file_digest):
    """Write the stale artifacts; return their descriptions and the image's."""
    backends = dict((fmt, compress.backend(fmt, plan.level)) for fmt in plan.formats)
    scan = extents.scan(plan.src, plan.algorithm or "sha256", image_digest=bool(plan.algorithm))
    written = {}
    for kind, path in todo:
        if kind in compress.FORMATS:
            comp = backends[kind]
            _write_atomically(path, mode, lambda out, comp=comp: compress.write_compressed(
                plan.src, extents.segments(scan), comp, out, scan.block_size))
        elif kind == "bmap":
            text = bmap.render(scan).encode("ascii")
            _write_atomically(path, mode, lambda out, text=text: out.write(text))
        written[path] = kind
    artifacts = []
    entries = [(checksums.relative_name(plan.src, plan.checksum_path or plan.src), scan.digest)]
    for kind, path in plan.paths:
        if kind == "checksums":
            continue
        digest = digest_of(path, plan.algorithm or "sha256")
        entries.append((checksums.relative_name(path, plan.checksum_path or path), digest))
        artifacts.append({"kind": kind, "path": path, "size": os.stat(path).st_size,
                          "checksum": digest, "written": path in written})
    if ("checksums", plan.checksum_path) in todo:
        text = checksums.render(entries).encode("utf-8")
        _write_atomically(plan.checksum_path, mode, lambda out: out.write(text))
        artifacts.append({"kind": "checksums", "path": plan.checksum_path,
                          "size": len(text), "checksum": None, "written": True})
    image = {"path": plan.src, "size": scan.size, "mapped_bytes": scan.mapped_blocks * scan.block_size,
             "checksum": scan.digest}
    return image, artifacts, dict((fmt, b.backend) for fmt, b in backends.items())

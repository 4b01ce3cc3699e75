# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and write the artifacts of an image: compressed copies, converted copies
(written by a ``conversion`` the caller gives: _nbd/convert.py for qcow2), bmap,
checksum file.

Each file is written beside its final name and renamed into place, so an interrupted
run leaves no artifact that looks finished; a rerun writes it again. An artifact is
up to date when it exists and is not older than the image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import image as images
from ansible_collections.diskimage.loop.plugins.module_utils._artifact import bmap, checksums, compress, extents

# The image the artifacts are made from: a file (its mtime says when they are stale).
IMAGE = images.SRC.but(missing="cannot read the image %s", missing_hint="Build the image first, or correct src",
                       missing_is_oserror=True,
                       neither="src %s is not an image file", neither_hint="Name the image file")

UP_TO_DATE = "up to date"


class ArtifactPlan(Plan):
    """Which files the declaration asks for, which of them are missing or stale,
    and the steps that write those."""

    def __init__(self, src, formats, level, want_bmap, algorithm, checksum_path, mode=0o644, conversions=()):
        super(ArtifactPlan, self).__init__()
        self.src = src
        self.formats = list(formats)
        self.level = level
        self.algorithm = algorithm
        self.mode = mode
        self.conversions = dict((c.kind, c) for c in conversions)
        self.paths = [(fmt, src + compress.SUFFIXES[fmt]) for fmt in self.formats]
        self.paths += [(c.kind, c.path(src)) for c in conversions]
        if want_bmap:
            self.paths.append(("bmap", src + ".bmap"))
        self.checksum_path = None
        if algorithm:
            self.checksum_path = checksum_path or "%s.%sSUMS" % (src, algorithm.upper())
            self.paths.append(("checksums", self.checksum_path))
        self.states = {}      # path -> 'absent', 'older than the image' or UP_TO_DATE, as planned
        self.todo = []        # (kind, path) to write, in order
        self.backends = {}    # format -> compress.Backend
        self._scan = None
        self.image = {}
        self.artifacts = []   # as written (a real run), see result()

    def stale(self):
        """The (kind, path) pairs to write, in the order they are written."""
        image = images.stat_image(self.src, IMAGE)
        if not stat.S_ISREG(image.st_mode):
            raise DiskImageError(IMAGE.neither % self.src, hint=IMAGE.neither_hint)
        out = []
        for kind, path in self.paths:
            try:
                if os.stat(path).st_mtime_ns >= image.st_mtime_ns:
                    self.states[path] = UP_TO_DATE
                    continue
                self.states[path] = "older than the image"
            except OSError:
                self.states[path] = "absent"
            out.append((kind, path))
        # the checksum file lists the others, so it is rewritten with any of them
        if out and self.checksum_path and ("checksums", self.checksum_path) not in out:
            out.append(("checksums", self.checksum_path))
        return out

    def scan(self):
        if self._scan is None:
            self._scan = extents.scan(self.src, self.algorithm or "sha256", image_digest=bool(self.algorithm))
        return self._scan

    def result(self, check_mode=False):
        out = {"checksum_path": self.checksum_path, "image": self.image, "artifacts": self.artifacts}
        if not self.artifacts:  # nothing written (yet): what would be
            out["artifacts"] = [{"kind": kind, "path": path, "size": None, "checksum": None,
                                 "written": (kind, path) in self.todo} for kind, path in self.paths]
        if self.image:
            out["backends"] = dict((fmt, b.backend) for fmt, b in self.backends.items())
        return out

    def diff(self):
        return {"before": {"artifacts": dict((path, self.states.get(path, UP_TO_DATE)) for _kind, path in self.paths)},
                "after": {"artifacts": dict((path, UP_TO_DATE) for _kind, path in self.paths)}}

    def apply(self):
        try:
            return super(ArtifactPlan, self).apply()
        except (IOError, OSError) as exc:
            raise DiskImageError.from_oserror("writing the artifacts of %s" % self.src, exc)

    # steps

    def write_one(self, kind, path):
        scan = self.scan()
        if kind in compress.FORMATS:
            comp = self.backends[kind]
            _write_atomically(path, self.mode, lambda out: compress.write_compressed(
                self.src, extents.segments(scan), comp, out, scan.block_size))
        elif kind in self.conversions:
            def convert(part):
                self.conversions[kind].write(self.src, part)
                _fsync_path(part)

            _replace_with(path, self.mode, convert)
        elif kind == "bmap":
            text = bmap.render(scan).encode("ascii")
            _write_atomically(path, self.mode, lambda out: out.write(text))

    def finish(self, digest_of=checksums.file_digest):
        """Describe the image and every artifact; write the checksum file when it is due."""
        scan = self.scan()
        written = set(path for _kind, path in self.todo)
        artifacts = []
        entries = [(checksums.relative_name(self.src, self.checksum_path or self.src), scan.digest)]
        for kind, path in self.paths:
            if kind == "checksums":
                continue
            digest = digest_of(path, self.algorithm or "sha256")
            entries.append((checksums.relative_name(path, self.checksum_path or path), digest))
            artifacts.append({"kind": kind, "path": path, "size": os.stat(path).st_size,
                              "checksum": digest, "written": path in written})
        if ("checksums", self.checksum_path) in self.todo:
            text = checksums.render(entries).encode("utf-8")
            _write_atomically(self.checksum_path, self.mode, lambda out: out.write(text))
            artifacts.append({"kind": "checksums", "path": self.checksum_path,
                              "size": len(text), "checksum": None, "written": True})
        self.artifacts = artifacts
        self.image = {"path": self.src, "size": scan.size, "mapped_bytes": scan.mapped_blocks * scan.block_size,
                      "checksum": scan.digest}


def plan_artifacts(src, formats, level=None, want_bmap=False, algorithm="sha256", checksum_path=None,
                   mode=0o644, force=False, conversions=()):
    """An ArtifactPlan with a step for each file to write, the checksum file last.
    ``conversions``: objects with ``kind``, ``path(src)`` and ``write(src, dest)``
    that write a copy of the image in another format."""
    plan = ArtifactPlan(src, formats, level, want_bmap, algorithm, checksum_path, mode, conversions)
    # a missing backend fails before anything is written
    plan.backends = dict((fmt, compress.backend(fmt, level)) for fmt in plan.formats)
    stale = plan.stale()
    plan.todo = list(plan.paths) if force else stale
    for kind, path in plan.todo:
        if kind != "checksums":
            plan.add("write %s %s" % (kind, path), lambda kind=kind, path=path: plan.write_one(kind, path))
    if plan.todo:
        what = "write %s" % plan.checksum_path if plan.checksum_path else "describe the artifacts of %s" % src
        plan.add(what, plan.finish)
    return plan


def _write_atomically(path, mode, writer):
    def make(part):
        with open(part, "wb") as out:
            writer(out)
            out.flush()
            os.fsync(out.fileno())

    _replace_with(path, mode, make)


def _fsync_path(path):
    """Flush ``path``, which another program wrote, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_with(path, mode, make):
    """``make(part)`` writes the file beside ``path``; it is renamed into place
    once complete, and removed when it is not."""
    part = path + ".part"
    try:
        make(part)
        os.chmod(part, mode)
        os.replace(part, path)
    except BaseException:
        if os.path.lexists(part):
            os.unlink(part)
        raise

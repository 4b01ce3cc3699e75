# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a sparse image holds data, and which of its blocks are not all zeros.

The holes are found with SEEK_DATA/SEEK_HOLE and never read. The map that comes out
depends only on the image's bytes, not on how the file system of the build host
happened to allocate it: blocks of zeros inside allocated extents count as zeros too.
So two builds with the same bytes give the same block map and the same compressed
output, whatever the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os

BLOCK_SIZE = 4096
# How much is read at once, and the zeros that stand in for holes when hashing.
CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


def data_extents(fd, size):
    """(start, end) byte ranges that may hold data, in order; the rest are holes.

    A file system without SEEK_DATA (EINVAL) is read whole.
    """
    out = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return [(pos, size)] if not out else out + [(pos, size)]
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        end = min(end, size)
        if start >= size:
            break
        out.append((start, end))
        pos = end
    return out


def block_extents(extents, size, block_size=BLOCK_SIZE):
    """The extents widened to whole blocks and merged where they touch."""
    out = []
    for start, end in extents:
        start = start - start % block_size
        end = min(size, -(-end // block_size) * block_size)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


class Run(object):
    """Blocks first..last (inclusive) that are not all zeros, with their digest."""

    __slots__ = ("first", "last", "digest")

    def __init__(self, first, last, digest):
        self.first = first
        self.last = last
        self.digest = digest

    def __repr__(self):
        return "Run(%d, %d)" % (self.first, self.last)

    def __eq__(self, other):
        return (self.first, self.last, self.digest) == (other.first, other.last, other.digest)


class Scan(object):
    """The result of one pass over an image: its size, digest and non-zero runs."""

    def __init__(self, size, block_size, digest, runs, algorithm):
        self.size = size
        self.block_size = block_size
        self.digest = digest
        self.runs = runs
        self.algorithm = algorithm

    @property
    def blocks(self):
        return -(-self.size // self.block_size)

    @property
    def mapped_blocks(self):
        return sum(run.last - run.first + 1 for run in self.runs)


def _hash_zeros(digest, count):
    while count > 0:
        step = min(count, CHUNK)
        digest.update(_ZEROS[:step] if step < CHUNK else _ZEROS)
        count -= step


class _NoDigest(object):
    """Stands in for the image's digest when none is wanted: hashing the zeros of
    the holes is most of the cost of a scan of a mostly empty image."""

    def update(self, data):
        pass

    def hexdigest(self):
        return None


def scan(path, algorithm="sha256", block_size=BLOCK_SIZE, image_digest=True):
    """One pass over the image: its digest (None unless image_digest) and its runs of non-zero blocks.

    Only the data extents are read; holes are hashed from a buffer of zeros.
    """
    image_digest = hashlib.new(algorithm) if image_digest else _NoDigest()
    runs = []
    current = [None, None, None]  # first block, last block, digest of the open run

    def close_run():
        if current[0] is not None:
            runs.append(Run(current[0], current[1], current[2].hexdigest()))
            current[0] = current[1] = current[2] = None

    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        zero_block = _ZEROS[:block_size]
        for start, end in block_extents(data_extents(fd, size), size, block_size):
            if start > pos:
                close_run()
                _hash_zeros(image_digest, start - pos)
            pos = start
            while pos < end:
                chunk = os.pread(fd, min(CHUNK, end - pos), pos)
                if not chunk:
                    raise IOError("%s shrank while it was read" % path)
                image_digest.update(chunk)
                if chunk == _ZEROS[:len(chunk)]:
                    close_run()
                else:
                    view = memoryview(chunk)
                    for off in range(0, len(chunk), block_size):
                        block = view[off:off + block_size]
                        number = (pos + off) // block_size
                        if block == zero_block[:len(block)]:
                            close_run()
                            continue
                        if current[0] is None:
                            current[0] = number
                            current[2] = hashlib.new(algorithm)
                        current[1] = number
                        current[2].update(block)
                pos += len(chunk)
        close_run()
        if size > pos:
            _hash_zeros(image_digest, size - pos)
    finally:
        os.close(fd)
    return Scan(size, block_size, image_digest.hexdigest(), runs, algorithm)


def segments(scan_result, merge_gap=CHUNK):
    """The image as ('data', start, end) and ('zero', start, end) byte ranges.

    Runs closer than merge_gap bytes are read as one data range: a short stretch of
    zeros costs the compressor less than a separate stream does.
    """
    out = []
    bs = scan_result.block_size
    for run in scan_result.runs:
        start, end = run.first * bs, min(scan_result.size, (run.last + 1) * bs)
        if out and start - out[-1][2] < merge_gap:
            out[-1] = ("data", out[-1][1], end)
        else:
            out.append(("data", start, end))
    full = []
    pos = 0
    for kind, start, end in out:
        if start > pos:
            full.append(("zero", pos, start))
        full.append((kind, start, end))
        pos = end
    if pos < scan_result.size:
        full.append(("zero", pos, scan_result.size))
    return full

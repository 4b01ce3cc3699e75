# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compressed copies of a sparse image, written without reading its holes.

Both formats allow a file to be a series of complete streams (xz streams, zstd
frames) that decompress to their concatenation. The data ranges of the image are
compressed as streams of their own; a run of zeros is written as copies of streams
that each hold a power-of-two number of zero blocks, compressed once and reused.
So a mostly empty 4 GiB image costs a few small compressions, not 4 GiB of input,
and the output depends only on the image's bytes.

Backends: xz through Python's lzma; zstd through the standard library's
compression.zstd (Python 3.14 and later) or else the `zstd` program (Debian and
most distributions package it as zstd). No pip package is needed on the target.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import lzma
import os
import shutil
import subprocess
import tempfile

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

FORMATS = ("xz", "zstd")
SUFFIXES = {"xz": ".xz", "zstd": ".zst"}
DEFAULT_LEVELS = {"xz": 6, "zstd": 3}
# The largest run of zeros held by one stream (a power of two times the block size):
# zstd compresses zeros at memory speed, lzma about 50 times slower, so xz's is smaller.
MAX_ZERO_STREAM = {"xz": 8 << 20, "zstd": 64 << 20}
_READ = 1 << 20

try:
    from compression import zstd as _stdlib_zstd  # Python 3.14+
except ImportError:  # pragma: no cover - depends on the Python version
    _stdlib_zstd = None


class _InProcess(object):
    """A compressor of the Python standard library: one stream per call."""

    def __init__(self, name, backend_name, make):
        self.name = name
        self.backend = backend_name
        self.make = make

    def compress_to(self, chunks, out):
        comp = self.make()
        for chunk in chunks:
            out.write(comp.compress(chunk))
        out.write(comp.flush())


def _xz(level):
    return _InProcess("xz", "python-lzma", lambda: lzma.LZMACompressor(
        format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=level))


def _stdlib_zstd_backend(level):
    return _InProcess("zstd", "python-compression.zstd", lambda: _stdlib_zstd.ZstdCompressor(
        level=level, options={_stdlib_zstd.CParameter.checksum_flag: 1}))


class _ZstdProgram(object):
    name = "zstd"
    backend = "zstd-program"

    def __init__(self, level, program):
        self.level = level
        self.argv = [program, "-q", "-c", "--no-progress", "-%d" % level] + (["--ultra"] if level > 19 else [])

    def compress_to(self, chunks, out):
        out.flush()
        proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except (IOError, OSError):
            pass  # the exit status below says why
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            raise DiskImageError("zstd failed (exit status %d): %s" % (proc.returncode, err or "no message"))
        out.seek(0, os.SEEK_END)


def backend(fmt, level=None, which=shutil.which):
    """The compressor for a format, or a DiskImageError saying what to install."""
    if fmt not in FORMATS:
        raise DiskImageError("unknown compression %r; use one of %s" % (fmt, ", ".join(FORMATS)))
    level = DEFAULT_LEVELS[fmt] if level is None else int(level)
    if fmt == "xz":
        if not 0 <= level <= 9:
            raise DiskImageError("xz compression level %d is out of range; use 0 to 9" % level)
        return _xz(level)
    if not 1 <= level <= 22:
        raise DiskImageError("zstd compression level %d is out of range; use 1 to 22" % level)
    if _stdlib_zstd is not None:
        return _stdlib_zstd_backend(level)
    program = which("zstd")
    if not program:
        raise DiskImageError(
            "zstd compression needs the zstd program on the target (or Python 3.14's compression.zstd), "
            "and neither is there",
            hint="Install the zstd package (apt-get install zstd, dnf install zstd), or use compress: xz")
    return _ZstdProgram(level, program)


def _read_range(fd, start, end):
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_READ, end - pos), pos)
        if not chunk:
            raise DiskImageError("the image shrank while it was compressed (at byte %d)" % pos)
        yield chunk
        pos += len(chunk)


def _zeros(count):
    while count > 0:
        step = min(count, _READ)
        yield bytes(step)
        count -= step


class ZeroStreams(object):
    """Compressed streams of zeros, by length, each made once."""

    def __init__(self, comp, block_size):
        self.comp = comp
        self.block_size = block_size
        self.cache = {}
        self.largest = MAX_ZERO_STREAM[comp.name]

    def _stream(self, length):
        if length not in self.cache:
            buf = io.BytesIO()
            if isinstance(self.comp, _ZstdProgram):
                # the program needs a real file descriptor for its output
                with tempfile.TemporaryFile() as tmp:
                    self.comp.compress_to(_zeros(length), tmp)
                    tmp.seek(0)
                    buf.write(tmp.read())
            else:
                self.comp.compress_to(_zeros(length), buf)
            self.cache[length] = buf.getvalue()
        return self.cache[length]

    def pieces(self, length):
        """Lengths whose streams make up `length` zeros: whole maximal streams, then powers of two."""
        out = [self.largest] * (length // self.largest)
        rest = length % self.largest
        bit = self.largest >> 1
        while rest:
            if rest >= bit and bit >= self.block_size:
                out.append(bit)
                rest -= bit
            elif bit < self.block_size:
                out.append(rest)  # a short tail at the end of an image of odd size
                rest = 0
            bit >>= 1
        return out

    def write(self, length, out):
        for piece in self.pieces(length):
            out.write(self._stream(piece))


def write_compressed(image_path, segments, comp, out, block_size):
    """Write the image, described by extents.segments(), as one compressed file."""
    zeros = ZeroStreams(comp, block_size)
    fd = os.open(image_path, os.O_RDONLY)
    try:
        for kind, start, end in segments:
            if kind == "zero":
                zeros.write(end - start, out)
            else:
                comp.compress_to(_read_range(fd, start, end), out)
    finally:
        os.close(fd)

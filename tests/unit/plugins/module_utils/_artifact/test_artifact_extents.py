# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan of a sparse image: digest, non-zero runs, data and zero segments."""

import hashlib
import os

from ansible_collections.diskimage.loop.plugins.module_utils._artifact import extents

MiB = 1 << 20
BS = extents.BLOCK_SIZE


def _image(path, size, writes, sparse=True):
    """A file of `size` bytes with bytes written at offsets; dense files are all written."""
    with open(path, "wb") as handle:
        if sparse:
            handle.truncate(size)
        else:
            handle.write(bytes(size))
        for offset, data in writes:
            handle.seek(offset)
            handle.write(data)
    return str(path)


def _whole_digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_runs_and_digest_of_a_sparse_image(tmp_path):
    path = _image(tmp_path / "a.img", 8 * MiB, [(0, b"\x01" * 10), (BS, b"\x02" * BS), (5 * MiB + 7, b"x")])
    result = extents.scan(path)
    assert result.size == 8 * MiB
    assert result.digest == _whole_digest(path)
    assert [(r.first, r.last) for r in result.runs] == [(0, 1), (5 * MiB // BS, 5 * MiB // BS)]
    with open(path, "rb") as handle:
        assert result.runs[0].digest == hashlib.sha256(handle.read(2 * BS)).hexdigest()
    assert result.mapped_blocks == 3
    assert result.blocks == 8 * MiB // BS


def test_the_map_depends_on_the_bytes_not_on_the_allocation(tmp_path):
    writes = [(3 * BS, b"abc"), (3 * MiB, b"\xff" * (3 * BS))]
    sparse = extents.scan(_image(tmp_path / "s.img", 4 * MiB, writes))
    dense = extents.scan(_image(tmp_path / "d.img", 4 * MiB, writes, sparse=False))
    assert sparse.runs == dense.runs
    assert sparse.digest == dense.digest


def test_an_image_of_odd_size_ends_in_a_short_block(tmp_path):
    path = _image(tmp_path / "odd.img", 3 * BS + 100, [(3 * BS + 99, b"z")])
    result = extents.scan(path)
    assert result.blocks == 4
    assert [(r.first, r.last) for r in result.runs] == [(3, 3)]
    assert result.runs[0].digest == hashlib.sha256(bytes(99) + b"z").hexdigest()
    assert extents.segments(result)[-1] == ("data", 3 * BS, 3 * BS + 100)


def test_an_empty_image_has_no_runs(tmp_path):
    result = extents.scan(_image(tmp_path / "e.img", 2 * MiB, []))
    assert result.runs == []
    assert result.digest == hashlib.sha256(bytes(2 * MiB)).hexdigest()
    assert extents.segments(result) == [("zero", 0, 2 * MiB)]


def test_segments_cover_the_image_and_merge_close_runs(tmp_path):
    path = _image(tmp_path / "g.img", 16 * MiB, [(0, b"a"), (4 * BS, b"b"), (10 * MiB, b"c")])
    segs = extents.segments(extents.scan(path), merge_gap=MiB)
    assert segs == [("data", 0, 5 * BS), ("zero", 5 * BS, 10 * MiB), ("data", 10 * MiB, 10 * MiB + BS),
                    ("zero", 10 * MiB + BS, 16 * MiB)]
    apart = extents.segments(extents.scan(path), merge_gap=BS)
    assert [s[0] for s in apart] == ["data", "zero", "data", "zero", "data", "zero"]


def test_block_extents_widen_and_merge():
    assert extents.block_extents([(10, 20), (4000, 4200), (9000, 9001)], 10000) == [(0, 10000)]
    assert extents.block_extents([(10, 20), (12300, 12301)], 20000) == [(0, 4096), (12288, 16384)]


def test_data_extents_skip_holes(tmp_path):
    path = _image(tmp_path / "h.img", 64 * MiB, [(32 * MiB, b"data")])
    fd = os.open(path, os.O_RDONLY)
    try:
        found = extents.data_extents(fd, 64 * MiB)
    finally:
        os.close(fd)
    covered = sum(end - start for start, end in found)
    assert covered < 64 * MiB or len(found) == 1  # a file system without holes reports it whole
    assert any(start <= 32 * MiB < end for start, end in found)


def test_a_scan_without_the_image_digest_finds_the_same_runs(tmp_path):
    path = _image(tmp_path / "n.img", 4 * MiB, [(BS, b"q"), (3 * MiB, b"r")])
    with_digest, without = extents.scan(path), extents.scan(path, image_digest=False)
    assert without.digest is None and with_digest.digest == _whole_digest(path)
    assert without.runs == with_digest.runs

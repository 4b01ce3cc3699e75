# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.golden: the copy is sparse, complete or absent, and records its origin."""
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files import golden
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1 << 20


def make_golden(path):
    with open(path, "wb") as handle:
        handle.truncate(8 * MiB)
        handle.seek(MiB + 100)
        handle.write(b"data")
        handle.seek(4 * MiB)
        handle.write(bytes(2 * MiB))  # written zeros: a hole in the copy
        handle.seek(7 * MiB)
        handle.write(b"tail" * 1000)
    return str(path)


def test_the_copy_has_the_same_bytes_and_fewer_blocks(tmp_path):
    source = make_golden(tmp_path / "golden.img")
    dest = str(tmp_path / "copy.img")
    how = golden.copy(source, dest, os.stat(source))
    assert how in ("sparse", "reflink")
    with open(source, "rb") as one, open(dest, "rb") as other:
        assert one.read() == other.read()
    if how == "sparse":
        assert os.stat(dest).st_blocks * 512 <= 3 * golden.BLOCK
    assert not os.path.exists(dest + golden.PART_SUFFIX)


def test_a_leftover_side_file_is_replaced(tmp_path):
    source = make_golden(tmp_path / "golden.img")
    dest = str(tmp_path / "copy.img")
    with open(dest + golden.PART_SUFFIX, "wb") as handle:
        handle.write(b"half a copy")
    golden.copy(source, dest, os.stat(source))
    assert os.path.getsize(dest) == 8 * MiB and not os.path.exists(dest + golden.PART_SUFFIX)


def test_the_origin_is_recorded_where_xattrs_exist(tmp_path):
    source = make_golden(tmp_path / "golden.img")
    dest = str(tmp_path / "copy.img")
    golden.copy(source, dest, os.stat(source))
    record = golden.recorded_origin(dest)
    if record is None:
        pytest.skip("no user extended attributes on %s" % tmp_path)
    assert record == golden.origin_of(os.stat(source))
    with open(source, "r+b") as handle:
        handle.write(b"changed")
    os.utime(source, ns=(1, 1))
    assert golden.recorded_origin(dest) != golden.origin_of(os.stat(source))


def test_bad_golden_images_are_refused(tmp_path):
    with pytest.raises(DiskImageError, match="cannot be read"):
        golden.check_golden(str(tmp_path / "missing.img"), str(tmp_path / "copy.img"))
    with pytest.raises(DiskImageError, match="not a regular file"):
        golden.check_golden(str(tmp_path), str(tmp_path / "copy.img"))
    source = make_golden(tmp_path / "golden.img")
    with pytest.raises(DiskImageError, match="is the golden image itself"):
        golden.check_golden(source, source)
    os.link(source, str(tmp_path / "hard.img"))
    with pytest.raises(DiskImageError, match="is the golden image itself"):
        golden.check_golden(source, str(tmp_path / "hard.img"))

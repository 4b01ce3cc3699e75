# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bmap text, compressed streams, checksum files and the plan of what is stale."""

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._artifact import (
    bmap, checksums, compress, extents, outputs)

MiB = 1 << 20
BS = extents.BLOCK_SIZE


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as handle:
        handle.truncate(12 * MiB + 512)
        handle.write(b"MBR" * 100)
        handle.seek(5 * MiB)
        handle.write(os.urandom(3 * BS))
        handle.seek(12 * MiB + 500)
        handle.write(b"end")
    return str(path)


def test_bmap_fields_and_its_own_checksum(image):
    scan = extents.scan(image)
    text = bmap.render(scan)
    root = ET.fromstring(text)
    assert root.get("version") == "2.0"
    assert int(root.findtext("ImageSize")) == os.path.getsize(image)
    assert int(root.findtext("BlockSize")) == BS
    assert int(root.findtext("BlocksCount")) == -(-os.path.getsize(image) // BS)
    assert int(root.findtext("MappedBlocksCount")) == 5
    own = root.findtext("BmapFileChecksum").strip()
    zeroed = text.replace(own, "0" * 64)
    assert hashlib.sha256(zeroed.encode()).hexdigest() == own
    with open(image, "rb") as handle:
        data = handle.read()
    for rng in root.iter("Range"):
        ends = rng.text.strip().split("-")
        first, last = int(ends[0]), int(ends[-1])
        assert hashlib.sha256(data[first * BS:(last + 1) * BS]).hexdigest() == rng.get("chksum")


def test_xz_output_decompresses_to_the_image(image, tmp_path):
    scan = extents.scan(image)
    out = tmp_path / "disk.img.xz"
    with open(out, "wb") as handle:
        compress.write_compressed(image, extents.segments(scan), compress.backend("xz", 1), handle, BS)
    with open(image, "rb") as handle:
        assert lzma.decompress(out.read_bytes()) == handle.read()


@pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd program")
def test_zstd_output_decompresses_to_the_image_and_is_repeatable(image, tmp_path):
    scan = extents.scan(image)
    outs = []
    for name in ("a.zst", "b.zst"):
        with open(tmp_path / name, "wb") as handle:
            compress.write_compressed(image, extents.segments(scan), compress.backend("zstd"), handle, BS)
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    plain = subprocess.run(["zstd", "-dc", str(tmp_path / "a.zst")], stdout=subprocess.PIPE, check=True).stdout
    with open(image, "rb") as handle:
        assert plain == handle.read()


@pytest.mark.parametrize("length", [BS, 3 * BS, 8 * MiB + 5 * BS, 200 * MiB, 2 * BS + 100])
def test_zero_pieces_add_up(length):
    zeros = compress.ZeroStreams(compress.backend("xz", 0), BS)
    pieces = zeros.pieces(length)
    assert sum(pieces) == length
    assert len(set(pieces)) <= 24


def test_backend_errors_name_the_fix():
    with pytest.raises(DiskImageError, match="unknown compression"):
        compress.backend("gzip")
    with pytest.raises(DiskImageError, match="0 to 9"):
        compress.backend("xz", 12)
    with pytest.raises(DiskImageError, match="1 to 22"):
        compress.backend("zstd", 0)
    if compress._stdlib_zstd is None:
        with pytest.raises(DiskImageError, match="apt-get install zstd"):
            compress.backend("zstd", which=lambda name: None)


def test_checksum_lines_read_by_sha256sum(tmp_path):
    text = checksums.render([("disk.img", "ab" * 32), ("odd\\name", "cd" * 32)])
    assert text.splitlines()[0] == "%s  disk.img" % ("ab" * 32)
    assert text.splitlines()[1] == "\\%s  odd\\\\name" % ("cd" * 32)
    assert checksums.relative_name(str(tmp_path / "x" / "a.img"), str(tmp_path / "SUMS")) == "x/a.img"


def test_plan_names_and_staleness(image):
    plan = outputs.ArtifactPlan(image, ["zstd", "xz"], None, True, "sha256", None)
    assert [entry[1] for entry in plan.paths] == [image + ".zst", image + ".xz", image + ".bmap", image + ".SHA256SUMS"]
    assert plan.stale() == plan.paths
    assert set(plan.states.values()) == {"absent"}
    image_mtime = os.stat(image).st_mtime_ns
    for path in [entry[1] for entry in plan.paths]:
        open(path, "w").close()
        os.utime(path, ns=(image_mtime, image_mtime))
    assert plan.stale() == []
    os.utime(image + ".xz", ns=(image_mtime - 10 ** 9, image_mtime - 10 ** 9))
    assert plan.stale() == [("xz", image + ".xz"), ("checksums", image + ".SHA256SUMS")]
    assert plan.states[image + ".xz"] == "older than the image"


def test_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(DiskImageError, match="Build the image first"):
        outputs.plan_artifacts(str(tmp_path / "none.img"), [])


def test_a_directory_is_not_an_image(tmp_path):
    with pytest.raises(DiskImageError, match="is a directory"):
        outputs.plan_artifacts(str(tmp_path), ["xz"])


def test_nothing_stale_is_no_step(image):
    outputs.plan_artifacts(image, ["xz"], 0, True).apply()
    again = outputs.plan_artifacts(image, ["xz"], 0, True)
    report = again.report()
    assert report["changed"] is False and report["actions"] == []
    assert [a["written"] for a in report["artifacts"]] == [False, False, False]
    assert report["diff"]["before"] == report["diff"]["after"]


def test_check_mode_report_names_what_would_be_written(image, tmp_path):
    plan = outputs.plan_artifacts(image, ["xz"], 0, True)
    report = plan.report(check_mode=True)
    assert report["changed"] is True
    assert report["actions"] == ["write xz %s.xz" % image, "write bmap %s.bmap" % image,
                                 "write %s.SHA256SUMS" % image]
    assert all(a["written"] for a in report["artifacts"]) and report["image"] == {}
    assert report["diff"]["before"]["artifacts"][image + ".xz"] == "absent"
    assert os.listdir(str(tmp_path)) == ["disk.img"]


def test_write_lists_every_artifact_in_the_checksum_file(image, tmp_path):
    plan = outputs.plan_artifacts(image, ["xz"], 0, True, mode=0o640).apply()
    report = plan.report()
    assert report["backends"] == {"xz": "python-lzma"}
    assert report["image"]["mapped_bytes"] == 5 * BS
    lines = (tmp_path / "disk.img.SHA256SUMS").read_text().splitlines()
    assert [re.split(" +", line)[1] for line in lines] == ["disk.img", "disk.img.xz", "disk.img.bmap"]
    assert all(a["written"] for a in report["artifacts"])
    assert oct(os.stat(image + ".xz").st_mode & 0o777) == "0o640"
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(".part")]


@pytest.mark.skipif(not shutil.which("bmaptool"), reason="needs bmap-tools")
def test_bmaptool_copy_of_the_compressed_image_is_the_image(image, tmp_path):
    plan = outputs.plan_artifacts(image, ["xz"], 0, True).apply()
    copy = str(tmp_path / "copy.img")
    subprocess.run(["bmaptool", "-q", "copy", "--bmap", image + ".bmap", image + ".xz", copy], check=True)
    with open(image, "rb") as want, open(copy, "rb") as got:
        assert want.read() == got.read()
    subprocess.run(["sha256sum", "--check", "--strict", "--quiet", os.path.basename(plan.checksum_path)],
                   cwd=str(tmp_path), check=True)

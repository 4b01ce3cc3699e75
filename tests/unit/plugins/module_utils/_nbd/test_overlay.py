# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""qcow2 overlays on a golden image, made with the real qemu-img (no kernel
support needed), checked with qemu-img info: the backing file and its format,
the virtual size, a killed run's side file swept, another image refused."""

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import overlay
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1 << 20

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")


def info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", path], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.fixture
def golden(tmp_path):
    path = tmp_path / "golden.img"
    with open(str(path), "wb") as handle:
        handle.truncate(8 * MiB)
    return str(path)


@needs_qemu_img
def test_an_overlay_is_made_once_over_a_killed_runs_side_file(golden, tmp_path):
    host = str(tmp_path / "host.qcow2")
    with open(host + overlay.PART_SUFFIX, "wb") as handle:
        handle.write(b"half an overlay from a run that was killed")
    assert overlay.ensure_overlay(golden, host) is True
    assert not os.path.exists(host + overlay.PART_SUFFIX)
    found = info(host)
    assert found["format"] == "qcow2"
    assert found["backing-filename"] == golden and found["backing-filename-format"] == "raw"
    assert found["virtual-size"] == 8 * MiB
    assert overlay.overlay_state(golden, host) == "current"
    before = os.stat(host).st_mtime_ns
    assert overlay.ensure_overlay(golden, host) is False
    assert os.stat(host).st_mtime_ns == before


@needs_qemu_img
def test_size_and_remake(golden, tmp_path):
    host = str(tmp_path / "host.qcow2")
    assert overlay.ensure_overlay(golden, host, size=24 * MiB) is True
    assert info(host)["virtual-size"] == 24 * MiB
    overlay.resize(host, 32 * MiB)
    assert info(host)["virtual-size"] == 32 * MiB
    inode = os.stat(host).st_ino
    assert overlay.ensure_overlay(golden, host, remake=True) is True
    assert os.stat(host).st_ino != inode and info(host)["virtual-size"] == 8 * MiB


@needs_qemu_img
def test_another_file_or_another_golden_image_is_refused_unless_forced(golden, tmp_path):
    other = str(tmp_path / "other.img")
    shutil.copy(golden, other)
    host = str(tmp_path / "host.qcow2")
    overlay.ensure_overlay(other, host)
    with pytest.raises(DiskImageError, match="is an overlay of .*other.img, not of"):
        overlay.ensure_overlay(golden, host)
    assert info(host)["backing-filename"] == other
    assert overlay.ensure_overlay(golden, host, force=True) is True
    assert info(host)["backing-filename"] == golden
    plain = str(tmp_path / "plain.img")
    shutil.copy(golden, plain)
    with pytest.raises(DiskImageError, match="not a qcow2 overlay"):
        overlay.ensure_overlay(golden, plain)
    with pytest.raises(DiskImageError, match="its own backing file"):
        overlay.ensure_overlay(golden, golden)


def test_check_mode_and_a_failing_qemu_img_leave_nothing(golden, tmp_path, monkeypatch):
    host = str(tmp_path / "host.qcow2")
    assert overlay.ensure_overlay(golden, host, check_mode=True) is True
    assert sorted(os.listdir(str(tmp_path))) == ["golden.img"]
    monkeypatch.setattr(overlay, "qemu_img", lambda: shutil.which("false"))
    with pytest.raises(DiskImageError, match="cannot make an overlay"):
        overlay.ensure_overlay(golden, host)
    assert sorted(os.listdir(str(tmp_path))) == ["golden.img"]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image file: created sparse at its size with its mode, another size refused."""

import os
import stat

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._image import image_file
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.plan import Plan


def apply(steps):
    plan = Plan()
    for what, action in steps:
        plan.add(what, lambda action=action: action(plan))
    return plan.apply()


@pytest.mark.parametrize("value,mode", [("0600", 0o600), ("644", 0o644), (0o640, 0o640), (None, None)])
def test_modes_are_octal_strings_or_numbers(value, mode):
    assert image_file.parse_mode(value) == mode


@pytest.mark.parametrize("value", ["u+rw", "0800", True, "077777"])
def test_bad_modes_are_refused(value):
    with pytest.raises(DiskImageError):
        image_file.parse_mode(value)


def test_a_missing_image_is_planned_and_created_sparse_with_its_mode(tmp_path):
    path = str(tmp_path / "new.img")
    source, steps = image_file.plan_file(path, "1.5GiB", "0640")
    assert source.planned and source.size == 1536 * 1024 ** 2 and not source.is_block
    assert [what for what, _action in steps] == ["create %s as a sparse file of 1536MiB with mode 0640" % path]
    assert not os.path.exists(path)
    plan = apply(steps)
    info = os.stat(path)
    assert info.st_size == 1536 * 1024 ** 2 and info.st_blocks == 0
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert plan.image_created


def test_a_created_image_is_removed_when_a_later_step_fails(tmp_path):
    path = str(tmp_path / "new.img")
    _source, steps = image_file.plan_file(path, "1MiB")
    plan = Plan()
    for what, action in steps:
        plan.add(what, lambda action=action: action(plan))

    def fail():
        raise DiskImageError("later step")
    plan.add("fail", fail)
    with pytest.raises(DiskImageError):
        plan.apply()
    assert not os.path.exists(path)


def test_default_mode_is_private(tmp_path):
    path = str(tmp_path / "new.img")
    apply(image_file.plan_file(path, 4096)[1])
    assert stat.S_IMODE(os.stat(path).st_mode) == image_file.DEFAULT_MODE


def test_an_existing_image_of_its_size_needs_nothing(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    os.chmod(str(path), 0o600)
    assert image_file.plan_file(str(path), "8s", "0600") == (None, [])
    assert image_file.plan_file(str(path)) == (None, [])


def test_a_smaller_size_is_refused_naming_both(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(DiskImageError, match=r"exists with 4096 bytes \(4KiB\), more than the declared 2048 "
                                             r"\(2KiB\): shrinking an image is not supported"):
        image_file.plan_file(str(path), "2KiB")
    assert path.stat().st_size == 4096


def test_a_larger_size_is_left_to_growing_the_image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    assert image_file.plan_file(str(path), "8KiB") == (None, [])
    assert path.stat().st_size == 4096


def test_the_mode_of_an_existing_image_is_set(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 512)
    os.chmod(str(path), 0o644)
    source, steps = image_file.plan_file(str(path), 512, "0600")
    assert source is None and len(steps) == 1 and "0600 (from 0644)" in steps[0][0]
    apply(steps)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_without_size_is_left_to_the_usual_error(tmp_path):
    assert image_file.plan_file(str(tmp_path / "nope.img")) == (None, [])


def test_missing_directory_and_zero_size_are_refused(tmp_path):
    with pytest.raises(DiskImageError, match="directory of"):
        image_file.plan_file(str(tmp_path / "no" / "disk.img"), "1MiB")
    with pytest.raises(DiskImageError, match="must not be 0"):
        image_file.plan_file(str(tmp_path / "disk.img"), 0)


def test_a_file_that_appears_meanwhile_is_not_overwritten(tmp_path):
    path = tmp_path / "disk.img"
    _source, steps = image_file.plan_file(str(path), "1MiB")
    path.write_bytes(b"keep")
    with pytest.raises(DiskImageError, match="created by another program"):
        apply(steps)
    assert path.read_bytes() == b"keep"

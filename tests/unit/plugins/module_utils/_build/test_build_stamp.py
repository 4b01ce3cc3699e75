# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build stamp: finished while digest, size and mtime match; a stale one goes."""
import json
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._build.stamp import plan_stamp


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    return str(path)


def applied(*args, **kwargs):
    plan = plan_stamp(*args, **kwargs)
    plan.apply()
    return plan.report()


def test_present_then_verified_is_finished_and_changes_nothing(image):
    written = applied(image, None, "d1", "present")
    assert written["changed"] and written["finished"]
    stamp = json.load(open(image + ".build-stamp"))
    st = os.stat(image)
    assert stamp == {"spec": "d1", "size": st.st_size, "mtime": st.st_mtime}
    assert oct(os.stat(image + ".build-stamp").st_mode & 0o777) == "0o644"
    again = applied(image, None, "d1", "present")
    assert not again["changed"]
    verified = applied(image, None, "d1", "verified")
    assert verified["finished"] and not verified["changed"] and verified["reason"] is None
    assert os.path.exists(image + ".build-stamp")


def test_the_stamp_of_earlier_versions_is_read(image):
    """The role used to write it with to_nice_json from ansible's stat."""
    st = os.stat(image)
    with open(image + ".build-stamp", "w") as handle:
        handle.write(json.dumps({"spec": "d1", "size": st.st_size, "mtime": st.st_mtime}, indent=4) + "\n")
    assert applied(image, None, "d1", "verified")["finished"]


@pytest.mark.parametrize("change,reason", [
    ("digest", "the declaration changed since the last build"),
    ("touch", "the image was modified since the last build"),
    ("rebuild", "a rebuild was asked for"),
])
def test_a_stale_stamp_is_removed(image, change, reason):
    applied(image, None, "d1", "present")
    if change == "touch":
        os.utime(image, (1, 1))
    result = applied(image, None, "d2" if change == "digest" else "d1", "verified", rebuild=change == "rebuild")
    assert not result["finished"] and result["changed"] and result["reason"] == reason
    assert result["actions"] == ["remove the stamp %s.build-stamp" % image]
    assert not os.path.exists(image + ".build-stamp")


def test_no_image_and_no_stamp(tmp_path, image):
    missing = str(tmp_path / "none.img")
    result = applied(missing, None, "d1", "verified")
    assert not result["finished"] and not result["changed"] and result["reason"] == "there is no image"
    result = applied(image, None, "d1", "verified")
    assert result["reason"] == "there is no stamp of a finished build" and not result["changed"]
    with pytest.raises(DiskImageError, match="no image"):
        plan_stamp(missing, None, "d1", "present")


def test_check_mode_plans_without_removing(image):
    applied(image, None, "d1", "present")
    plan = plan_stamp(image, None, "d2", "verified")
    report = plan.report(check_mode=True)
    assert report["changed"] and not report["finished"]
    assert os.path.exists(image + ".build-stamp")
    assert report["diff"]["after"] == {"stamp": None}


def test_a_garbled_stamp_counts_as_none_and_absent_removes_it(image, tmp_path):
    stamp = str(tmp_path / "custom-stamp")
    with open(stamp, "w") as handle:
        handle.write("{not json")
    result = applied(image, stamp, "d1", "verified")
    assert not result["finished"] and result["changed"] and not os.path.exists(stamp)
    applied(image, stamp, "d1", "present")
    result = applied(image, stamp, None, "absent")
    assert result["changed"] and not os.path.exists(stamp)
    assert not applied(image, stamp, None, "absent")["changed"]


def test_digest_is_required(image):
    with pytest.raises(DiskImageError, match="needs the digest"):
        plan_stamp(image, None, "", "verified")

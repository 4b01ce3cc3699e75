# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The qcow2 copy of an image as an artifact: where it goes, the fixed options,
and (with qemu-img) the same bytes twice, the same contents as the image."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._artifact import outputs
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import convert
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1 << 20


def test_the_copy_goes_beside_the_image_and_never_over_it():
    assert convert.qcow2_path("/srv/disk.img") == "/srv/disk.qcow2"
    assert convert.qcow2_path("/srv/disk.raw") == "/srv/disk.qcow2"
    assert convert.qcow2_path("/srv/disk") == "/srv/disk.qcow2"
    assert convert.qcow2_path("/srv/disk.qcow2") == "/srv/disk.qcow2.qcow2"
    assert convert.Conversion("/srv/out/vm.qcow2", binary="qemu-img").path("/srv/disk.img") == "/srv/out/vm.qcow2"
    with pytest.raises(DiskImageError, match="over the image itself"):
        convert.Conversion("/srv/disk.img", binary="qemu-img").path("/srv/disk.img")


def test_every_option_that_shapes_the_file_is_given():
    cmd = convert.command("/usr/bin/qemu-img", "a.img", "a.qcow2")
    assert cmd[:7] == ["/usr/bin/qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2"]
    assert "compat=1.1" in cmd[cmd.index("-o") + 1] and "cluster_size=65536" in cmd[cmd.index("-o") + 1]
    assert "-W" not in cmd  # writes in order: the same layout every time
    assert cmd[-2:] == ["a.img", "a.qcow2"]


def test_without_qemu_img_the_message_says_what_to_install(monkeypatch):
    def missing():
        raise DiskImageError("qemu-img is not installed")

    monkeypatch.setattr(convert.overlay, "qemu_img", missing)
    with pytest.raises(DiskImageError, match="writes the qcow2 copy") as info:
        convert.Conversion()
    assert "qemu-utils" in info.value.hint


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as handle:
        handle.truncate(16 * MiB)
        handle.write(b"boot" * 128)
        handle.seek(9 * MiB)
        handle.write(os.urandom(64 * 1024))
    return str(path)


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img (qemu-utils)")
def test_the_qcow2_artifact_is_the_image_the_same_twice_and_listed(image, tmp_path):
    plan = outputs.plan_artifacts(image, [], conversions=[convert.Conversion()])
    qcow2 = str(tmp_path / "disk.qcow2")
    assert plan.descriptions()[0] == "write qcow2 %s" % qcow2
    plan.apply()
    info = subprocess.run(["qemu-img", "info", "--output=json", qcow2], stdout=subprocess.PIPE, check=True).stdout
    assert b'"format": "qcow2"' in info
    compared = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", image, qcow2],
                              stdout=subprocess.PIPE, check=False)
    assert compared.returncode == 0, compared.stdout
    assert os.path.getsize(qcow2) < 2 * MiB  # holes and zeros are not written
    with open(qcow2, "rb") as handle:
        first = handle.read()
    sums = open(image + ".SHA256SUMS").read()
    assert "  disk.qcow2\n" in sums and not os.path.exists(qcow2 + ".part")
    assert outputs.plan_artifacts(image, [], conversions=[convert.Conversion()]).steps == []
    outputs.plan_artifacts(image, [], force=True, conversions=[convert.Conversion()]).apply()
    with open(qcow2, "rb") as handle:
        assert handle.read() == first


class Failing(object):
    kind = "qcow2"

    def path(self, src):
        return src + ".qcow2"

    def write(self, src, dest):
        with open(dest, "wb") as handle:
            handle.write(b"half")
        raise DiskImageError("qemu-img cannot convert")


def test_a_failed_conversion_leaves_no_file(image):
    plan = outputs.plan_artifacts(image, [], algorithm="", conversions=[Failing()])
    with pytest.raises(DiskImageError, match="cannot convert"):
        plan.apply()
    assert not os.path.exists(image + ".qcow2") and not os.path.exists(image + ".qcow2.part")

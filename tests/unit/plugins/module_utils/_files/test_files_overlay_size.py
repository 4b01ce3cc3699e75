# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_files' decisions about overlays and the per-host size, before anything changes."""
import struct

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files import image_size, job
from ansible_collections.diskimage.loop.plugins.module_utils._partition.layout import write_layout
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

MiB = 1024 * 1024


def qcow2(path, size, backing=None):
    offset = 0x200 if backing else 0
    head = b"QFI\xfb" + struct.pack(">IQIIQ", 3, offset, len(backing or b""), 16, size)
    path.write_bytes(head.ljust(0x200, b"\0") + (backing or b""))
    return str(path)


def raw(path, size, table=False):
    with open(str(path), "wb") as handle:
        handle.truncate(size)
    if table:
        with open(str(path), "r+b") as handle:
            write_layout(handle, {"label": "gpt", "partitions": [{"size": "rest"}]}, size)
    return str(path)


def test_disk_size_is_the_file_or_the_virtual_size(tmp_path):
    assert image_size.disk_size(raw(tmp_path / "a.img", 3 * MiB)) == ("raw", 3 * MiB)
    assert image_size.disk_size(qcow2(tmp_path / "a.qcow2", 80 * MiB)) == ("qcow2", 80 * MiB)
    vmdk = tmp_path / "a.vmdk"
    vmdk.write_bytes(b"KDMV" + b"\0" * 508)
    with pytest.raises(DiskImageError, match="size grows raw and qcow2 images only"):
        image_size.disk_size(str(vmdk))


def test_a_size_smaller_than_an_image_is_refused(tmp_path):
    golden = raw(tmp_path / "golden.img", 64 * MiB, table=True)
    host = qcow2(tmp_path / "host.qcow2", 96 * MiB)
    assert image_size.wanted(None, [golden]) is None
    assert image_size.wanted("96MiB", [golden, host]) == 96 * MiB
    assert image_size.wanted(128 * MiB, [golden, host]) == 128 * MiB
    with pytest.raises(DiskImageError, match="host.qcow2: the image is 100663296 bytes, larger than size 67108864: "
                                             "shrinking an image is not supported"):
        image_size.wanted("64MiB", [golden, host])
    with pytest.raises(DiskImageError, match="not a whole number of 512-byte sectors"):
        image_size.wanted(96 * MiB + 1, [golden])
    with pytest.raises(DiskImageError, match="size"):
        image_size.wanted("lots", [golden])
    with pytest.raises(DiskImageError, match="bare.img has no partition table"):
        image_size.wanted("96MiB", [raw(tmp_path / "bare.img", 64 * MiB)])


def test_an_overlay_needs_its_golden_image():
    with pytest.raises(DiskImageError, match="overlay needs copy_from"):
        job.Request("/srv/web1.qcow2", overlay=True)


def request(tmp_path, golden, **options):
    return job.Request(str(tmp_path / "web1.qcow2"), copy_from=golden, overlay=True, **options)


def result():
    return {"copied": False, "actions": []}


@pytest.mark.parametrize("existing,message", [
    (lambda p: qcow2(p, 64 * MiB, backing=b"/srv/other.img"), "is an overlay of /srv/other.img, not of"),
    (lambda p: raw(p, 64 * MiB), "is not a qcow2 overlay (raw)"),
])
def test_another_file_at_src_is_refused_unless_force_copy(tmp_path, existing, message):
    golden = raw(tmp_path / "golden.img", 64 * MiB)
    existing(tmp_path / "web1.qcow2")
    with pytest.raises(DiskImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        job._overlay_step(request(tmp_path, golden), None, True, result())
    forced = result()
    # check mode: reported as to be made again, nothing read from the old file, nothing written
    assert job._overlay_step(request(tmp_path, golden, force_copy=True), None, True, forced) is False
    assert forced["copied"] is True and forced["copy_method"] == "overlay"
    assert forced["actions"] == ["make %s a qcow2 overlay of %s" % (tmp_path / "web1.qcow2", golden)]


def test_an_overlay_of_the_golden_image_is_kept(tmp_path):
    golden = raw(tmp_path / "golden.img", 64 * MiB)
    qcow2(tmp_path / "web1.qcow2", 64 * MiB, backing=golden.encode())
    kept = result()
    assert job._overlay_step(request(tmp_path, golden), None, False, kept) is True
    assert kept == result()
    again = result()
    assert job._overlay_step(request(tmp_path, golden, force_copy=True), 96 * MiB, True, again) is False
    made = "make %s a qcow2 overlay of %s of %d bytes" % (tmp_path / "web1.qcow2", golden, 96 * MiB)
    assert again["actions"] == [made]

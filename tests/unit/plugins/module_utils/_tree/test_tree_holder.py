# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image connection's holder mounts raw images only: a qcow2 image is refused
before anything is set up, with the way out."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._tree import holder
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def test_a_qcow2_image_is_refused_and_a_raw_or_missing_one_is_not(tmp_path):
    qcow2 = tmp_path / "cloud.qcow2"
    qcow2.write_bytes(b"QFI\xfb" + b"\0" * 508)
    with pytest.raises(DiskImageError, match="qcow2 image, and the image connection mounts raw images only") as info:
        holder.refuse_not_raw(str(qcow2))
    assert "image_tree" in info.value.hint
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * 512)
    holder.refuse_not_raw(str(raw))
    holder.refuse_not_raw(str(tmp_path / "missing.img"))

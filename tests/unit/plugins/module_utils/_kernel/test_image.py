# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image: the one check that a path is an image file or a block device."""
import errno
import os

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import image
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

WORDS = image.Words(missing="%s is missing", missing_hint="Make it", directory="%s is a directory",
                    directory_hint="Name a file", neither="%s is neither", neither_hint="Name something else")


def test_a_regular_file_passes(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    assert image.stat_image(str(path), WORDS).st_size == 4096


@pytest.mark.parametrize("kind,message,code", [
    ("missing", "{p} is missing. Make it", errno.ENOENT),
    ("directory", "{p} is a directory. Name a file", errno.EISDIR),
    ("fifo", "{p} is neither. Name something else", None),
])
def test_each_refusal_in_the_callers_words(tmp_path, kind, message, code):
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(str(path))
    with pytest.raises(DiskImageError) as info:
        image.stat_image(str(path), WORDS)
    assert str(info.value) == message.format(p=path) and info.value.errno == code


def test_missing_as_an_oserror_names_the_reason(tmp_path):
    words = WORDS.but(missing="cannot look up %s", missing_is_oserror=True)
    with pytest.raises(DiskImageError, match=r"cannot look up .*: No such file or directory \(ENOENT\). Make it"):
        image.stat_image(str(tmp_path / "gone"), words)


def test_image_source_of_a_file(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 8192)
    source = image.ImageSource(str(path))
    assert (source.path, source.is_block, source.devno, source.kernel_name, source.loop_number, source.size) == (
        str(path), False, None, None, None, 8192)


def test_image_source_words_are_the_src_words(tmp_path):
    with pytest.raises(DiskImageError, match="src .* does not exist. Create the image first, or fix src"):
        image.ImageSource(str(tmp_path / "missing.img"))

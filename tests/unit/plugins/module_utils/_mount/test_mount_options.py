# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mount_options: the words for the kernel and fstab, and read-only by request or by nature."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._mount import options as ms
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


@pytest.mark.parametrize("opts,read_only,fstype,optical,words,ro", [
    (None, False, "ext4", False, [], False),
    ("noatime,nodev", False, "ext4", False, ["noatime", "nodev"], False),
    ("noatime", True, "ext4", False, ["ro", "noatime"], True),
    ("ro,noatime", False, "ext4", False, ["ro", "noatime"], True),
    (None, False, "squashfs", False, ["ro"], True),
    (None, False, "erofs", False, ["ro"], True),
    (None, False, "iso9660", False, ["ro"], True),
    (None, False, "udf", True, ["ro"], True),       # a UDF bridge ISO
    (None, False, "udf", False, [], False),         # a writable UDF image
    (["noatime", "nofail"], False, "xfs", False, ["noatime", "nofail"], False),
    ("rw,ro", False, "ext4", False, ["rw", "ro"], True),   # the last word wins, as in mount(8)
    ("ro,rw", False, "ext4", False, ["ro", "rw"], False),
])
def test_options(opts, read_only, fstype, optical, words, ro):
    options = ms.requested_options(opts, read_only, fstype, optical)
    assert options.words == words and options.read_only == ro
    assert options.explicit_ro == (bool(read_only) or (ro and fstype == "ext4"))


def test_fstab_only_words_stay_out_of_the_kernel():
    options = ms.requested_options("noatime,nofail,x-systemd.automount,noauto", False, "ext4")
    assert options.kernel_words() == ["noatime"]


@pytest.mark.parametrize("opts,read_only,fstype,fragment", [
    ("loop", False, "ext4", "opts must not contain 'loop'"),
    ("offset=1048576", False, "ext4", "opts must not contain 'offset'"),
    ("sizelimit=4096", False, "ext4", "opts must not contain 'sizelimit'"),
    ("bind", False, "ext4", "opts must not contain 'bind'"),
    ("rw", True, "ext4", "opts say rw, and read_only is true"),
    ("rw", False, "squashfs", "squashfs is read-only by nature"),
])
def test_bad_options(opts, read_only, fstype, fragment):
    with pytest.raises(DiskImageError, match=fragment):
        ms.requested_options(opts, read_only, fstype)

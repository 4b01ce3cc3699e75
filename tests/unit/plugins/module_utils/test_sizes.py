# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils.sizes import format_size, parse_size


@pytest.mark.parametrize("value,expected", [
    (0, 0), (4096, 4096), ("4096", 4096), ("8MiB", 8 << 20), ("8M", 8 << 20), ("8m", 8 << 20),
    ("8MB", 8000000), ("4k", 4096), ("4KiB", 4096), ("1.5GiB", 3 << 29), ("2048s", 1 << 20),
    (" 1 GiB ", 1 << 30), ("1T", 1 << 40), ("10B", 10), (2.0, 2),
])
def test_parse_size_accepts(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value,fragment", [
    (-1, "must not be negative"), ("-4k", "must not be negative"), ("1.3", "whole number"),
    ("8 parsecs", "is not a size"), ("", "is not a size"), (True, "boolean"), (1.5, "whole"),
    ("0x10", "is not a size"),
])
def test_parse_size_rejects_with_clear_message(value, fragment):
    with pytest.raises(DiskImageError) as info:
        parse_size(value, "sizelimit")
    assert fragment in str(info.value)
    assert "sizelimit" in str(info.value)


@pytest.mark.parametrize("value,expected", [
    (8 << 20, "8MiB"), (1000, "1000B"), (0, "0B"), (3 << 30, "3GiB"), (1536, "1536B"), (4096, "4KiB"),
])
def test_format_size(value, expected):
    assert format_size(value) == expected
    assert parse_size(expected) == value

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make this checkout importable as ansible_collections.diskimage.loop.

pytest-ansible does it when pytest runs from the collection root (next to
galaxy.yml): it links the checkout into collections/ansible_collections/diskimage/loop
and installs Ansible's collection finder over that tree, so the tests import the
collection the way Ansible itself loads it. Where the plugin is not loaded (the VM
tier turns plugin autoloading off to spare imports over 9p) or pytest runs from
elsewhere, the collections path of scripts/lib/setup.sh (.cache/collections, whose
diskimage/loop entry links to this checkout) goes on sys.path instead.
"""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FALLBACK = os.path.join(ROOT, ".cache", "collections")


def _importable():
    try:
        return importlib.util.find_spec("ansible_collections.diskimage.loop") is not None
    except ImportError:
        return False


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if _importable():
        return
    link = os.path.join(FALLBACK, "ansible_collections", "diskimage", "loop")
    if not os.path.islink(link) and not os.path.isdir(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if FALLBACK not in sys.path:
        sys.path.insert(0, FALLBACK)

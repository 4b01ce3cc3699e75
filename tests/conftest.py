# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make this checkout importable as ansible_collections.diskimage.loop.

The collection's code imports itself by its full name, so tests put a
collections root on sys.path whose diskimage/loop entry is this checkout.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
_link = os.path.join(COLLECTIONS, "ansible_collections", "diskimage", "loop")

if not os.path.islink(_link) and not os.path.isdir(_link):
    os.makedirs(os.path.dirname(_link), exist_ok=True)
    os.symlink(ROOT, _link)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

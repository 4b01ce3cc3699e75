# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layers of module_utils import one way: each only from the layers below it."""
import ast
import os

import pytest

PACKAGE = "ansible_collections.diskimage.loop.plugins.module_utils"
ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "module_utils")
# Bottom first; a module may import from its own layer and the ones before it.
LAYERS = ["", "_kernel", "_probe", "_loop", "_nbd", "_partition", "_mount", "_tree", "_artifact", "_reproducible", "_image",
          "_files", "_build"]
# Packages beside the stack rather than on it: exactly what each may import (besides itself).
BESIDE = {"_artifact": ["", "_kernel"], "_reproducible": ["", "_kernel", "_probe"]}


def layer_of(dotted):
    rest = dotted[len(PACKAGE):].lstrip(".")
    first = rest.split(".", 1)[0]
    return first if first.startswith("_") else ""


def imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            if node.module == PACKAGE:
                for alias in node.names:
                    yield "%s.%s" % (PACKAGE, alias.name)
            else:
                yield node.module


def modules():
    for directory, _dirs, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, ROOT)
                yield relative, path


@pytest.mark.parametrize("relative,path", list(modules()))
def test_imports_point_down(relative, path):
    here = relative.split(os.sep)[0] if os.sep in relative else ""
    for target in imports(path):
        there = layer_of(target)
        if here in BESIDE and there != here:
            assert there in BESIDE[here], "%s imports %s (layer %s, not one of %s)" % (
                relative, target, there or "top", BESIDE[here])
            continue
        assert LAYERS.index(there) <= LAYERS.index(here), "%s imports %s (layer %s above %s)" % (
            relative, target, there or "top", here or "top")


def test_every_package_is_a_known_layer():
    packages = sorted(d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d)) and d != "__pycache__")
    assert packages == sorted(layer for layer in LAYERS if layer)

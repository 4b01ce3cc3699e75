# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a module compiles before it reads its arguments.

Ansible ships module_utils as source and Python compiles every imported file on
every task, so the change machinery (attach, mount calls, teardown,
device-mapper, BLKPG, the partition table reader) must be imported by the code
paths that change something, not by a module's first line. A fresh interpreter
imports the module and lists what came with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

PREFIX = "ansible_collections.diskimage.loop.plugins.module_utils."

# module: (a file it does import, files only a changing, mapping or tearing-down run loads)
NOT_AT_IMPORT = {
    "image_mount": ("_mount.state", ["_loop.loopdev", "_kernel.mountsys", "_kernel.devmapper", "_kernel.blkpg",
                                     "_mount.teardown", "_partition.table", "_partition.types",
                                     "_kernel.holders"]),
    "loop_device_info": ("_loop.query", ["_loop.loopdev", "_kernel.blkpg", "_kernel.holders"]),
}


def imported_by(module):
    code = ("import json, sys\n"
            "import ansible_collections.diskimage.loop.plugins.modules.%s\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(%r))))\n" % (module, PREFIX))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return [name[len(PREFIX):] for name in json.loads(out.stdout)]


@pytest.mark.parametrize("module", sorted(NOT_AT_IMPORT))
def test_a_module_does_not_import_the_change_machinery_up_front(module):
    used, unused = NOT_AT_IMPORT[module]
    loaded = imported_by(module)
    assert used in loaded  # the import really happened
    assert [name for name in unused if name in loaded] == []

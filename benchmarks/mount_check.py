# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_mount state=mounted for a list of partitions, without Ansible: what the
module does per task (plan, apply, report), in one Python process. Prints one
line per mount that changed. Used by bench_roles.py as a contender of its own.

    python benchmarks/mount_check.py SPECS.json   # [[image, partition, path], ...]
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "collections"))

from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state  # noqa: E402  pylint: disable=wrong-import-position


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        specs = json.load(handle)
    for image, number, path in specs:
        plan = mount_state.plan("mounted", image, path, selector=("partition", number))
        plan.apply()
        if plan.report(False)["changed"]:
            print("changed %s" % path)


if __name__ == "__main__":
    main()

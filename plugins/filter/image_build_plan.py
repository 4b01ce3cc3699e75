# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: image_build_plan
short_description: Check an image declaration and turn it into the arguments of the image modules
version_added: 0.2.0
description:
  - The decisions of the C(diskimage.loop.image_build) role, in one place - checks the declaration
    (sizes with the modules' grammar, absolute and unique mount points, a filesystem for every mounted
    partition, the population entries) and returns what each module call of the role takes.
  - Raises an error that names the entry and the fix when the declaration is not usable, before
    anything is changed.
options:
  _input:
    description:
      - The declaration, a dict with C(path), C(size), C(label), C(disk_id), C(partitions), C(populate),
        C(populate_tasks), C(populate_tasks_content), C(revision), C(reproducible),
        C(source_date_epoch) and C(seed) - the role's variables without their C(image_build_) prefix.
    type: dict
    required: true
  table:
    description:
      - The result of M(diskimage.loop.image_partitions) for the image, once it ran. With it, the plan
        also pairs each declared partition with its partition in the table.
    type: dict
  tree:
    description:
      - The result of M(diskimage.loop.image_tree) once the tree is mounted; the returned C(table)
        then has the device of each mounted partition.
    type: dict
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Write the table and make the filesystems of a declaration
  diskimage.loop.image_partitions:
    src: /srv/images/disk.img
    size: "{{ plan.size }}"
    layout: "{{ plan.layout }}"
  vars:
    plan: "{{ {'path': '/srv/images/disk.img', 'size': '1GiB', 'label': 'gpt',
               'partitions': [{'type': 'root', 'fstype': 'ext4', 'mountpoint': '/'}]}
              | diskimage.loop.image_build_plan }}"
"""

RETURN = r"""
_value:
  description:
    - C(size) (bytes), C(reproducible), C(epoch), C(layout) (for image_partitions; with the filesystems
      unless reproducible, seeded when reproducible), C(partitions) (the declared data partitions,
      normalized), C(populate) (C(dirs), C(archives), C(files), each in declared order) and C(digest)
      (what the build stamp records).
    - With O(table), also C(mounts) (for image_tree, by partition number), C(filesystems) (for
      image_mkfs) and C(table) (the table, with the devices of the mounted partitions from O(tree)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._build.declaration import build_plan


def image_build_plan(declaration, table=None, tree=None):
    if not isinstance(declaration, dict):
        raise AnsibleFilterError("image_build_plan expects the declaration as a dict, got %s"
                                 % type(declaration).__name__)
    try:
        return build_plan(declaration, table if isinstance(table, dict) else None,
                          tree if isinstance(tree, dict) else None)
    except DiskImageError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"image_build_plan": image_build_plan}

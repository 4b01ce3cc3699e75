# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: tree_mounted
short_description: The mounts of an image tree, as the image roles hand them to your tasks
version_added: 0.2.0
description:
  - Takes the registered result of M(diskimage.loop.image_tree) (I(state=mounted)) and returns its
    mounts, each with C(where) (the mount point on the host) and C(type_alias) (the partition type,
    such as C(root-x86-64) or C(esp); empty for a whole image) beside the module's own keys
    (C(path), C(target), C(device), C(fstype), C(read_only), C(kind), C(selector), C(partition)).
  - The C(diskimage.loop.image_customize) role exposes it as C(image_customize_mounted).
options:
  _input:
    description: The result of M(diskimage.loop.image_tree).
    type: dict
    required: true
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Write a marker into every filesystem of the tree
  ansible.builtin.copy:
    dest: "{{ item.where }}/marker"
    content: "{{ item.path }}\n"
    mode: "0644"
  loop: "{{ tree | diskimage.loop.tree_mounted }}"
"""

RETURN = r"""
_value:
  description: The mounts, in the order image_tree mounted them.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.module_utils._build.report import mounted_entries


def tree_mounted(tree):
    if tree is not None and not isinstance(tree, dict):
        raise AnsibleFilterError("tree_mounted expects the result of image_tree, got %s" % type(tree).__name__)
    return mounted_entries(tree)


class FilterModule(object):
    def filters(self):
        return {"tree_mounted": tree_mounted}

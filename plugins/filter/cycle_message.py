# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: cycle_message
short_description: The closing message of a mount-work-teardown cycle - the failed step and what the teardown did
version_added: 0.2.0
description:
  - Used by the image roles after their teardown. Returns the message a role fails with - the step
    that failed and why (for a loop, the reason of the item that failed), what the teardown did
    (unmounted, removed the partition devices, detached, removed the root) and what it left (busy
    mounts with the processes that hold them) - or an empty string when the cycle went well.
options:
  _input:
    description: The failure as recorded in a rescue section, C({step, result}), or an empty dict.
    type: dict
    required: true
  subject:
    description: What ran, such as C(image_build of /srv/images/disk.img).
    type: str
    required: true
  teardown:
    description:
      - The registered results of the teardown tasks, in order - M(diskimage.loop.image_tree) with
        I(state=unmounted), M(diskimage.loop.image_partitions) with I(state=absent),
        M(ansible.builtin.file) with I(state=absent). Skipped ones are left out.
    type: list
    elements: dict
    required: true
  outcome:
    description: The verb phrase of a successful run, for a teardown that left something (C(was built)).
    type: str
    default: ran
author:
  - diskimage.loop contributors (@diskimage)
"""

EXAMPLES = r"""
- name: Report the failure and the teardown
  ansible.builtin.fail:
    msg: "{{ failure | diskimage.loop.cycle_message('image_build of ' ~ path, [teardown]) }}"
  when: failure | diskimage.loop.cycle_message('image_build of ' ~ path, [teardown]) | length > 0
"""

RETURN = r"""
_value:
  description: The message, or an empty string.
  type: str
  sample: >-
    image_build of /srv/disk.img failed at "Fail in the middle": it broke. Teardown: unmounted
    /run/diskimage-loop/trees/disk.img-2049-13/var; unmounted /run/diskimage-loop/trees/disk.img-2049-13;
    detached /dev/loop4; removed /run/diskimage-loop/trees/disk.img-2049-13. Nothing is left attached or mounted.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.module_utils._build.report import cycle_message as _message


def cycle_message(failure, subject, teardown, outcome="ran"):
    if failure is not None and not isinstance(failure, dict):
        raise AnsibleFilterError("cycle_message expects the failure as a dict, got %s" % type(failure).__name__)
    if not isinstance(teardown, (list, tuple)):
        teardown = [teardown]
    return _message(subject, failure or {}, list(teardown), outcome)


class FilterModule(object):
    def filters(self):
        return {"cycle_message": cycle_message}

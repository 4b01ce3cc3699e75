#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_stamp
short_description: Tell a finished image build by a stamp file, and write or forget the stamp
version_added: 0.1.0
description:
  - A finished image carries a stamp, a small JSON file next to it (C(<image>.build-stamp)) that
    records a digest of the declaration the image was built from, and the image's size and
    modification time when the build finished.
  - With I(state=verified) the module says whether the image is finished - the stamp matches
    O(digest) and the image file as it is now. A stamp that does not match is removed, so that a
    build that is interrupted afterwards never looks finished; the result says why the image is
    not finished.
  - With I(state=present) it stamps the image as it is now; with I(state=absent) it removes the stamp.
  - The stamp is replaced atomically; a new one is mode 0644, an existing one keeps its mode.
  - Used by the C(diskimage.loop.image_build) role, whose rerun on a finished image changes nothing.
author:
  - diskimage.loop contributors (@diskimage)
attributes:
  check_mode:
    support: full
    description: Says whether the image is finished, and reports the stamp it would write or remove.
  diff_mode:
    support: full
    description: The stamp before and after.
options:
  src:
    description: The image file.
    type: path
    required: true
    aliases: [image]
  path:
    description: The stamp file. C(<src>.build-stamp) when not given.
    type: path
  digest:
    description:
      - The digest of the declaration the image is (to be) built from, any text that changes when
        the declaration does. Required with I(state=verified) and I(state=present).
    type: str
  state:
    description:
      - C(verified) keeps a stamp that matches and removes one that does not.
      - C(present) writes the stamp for the image as it is now (its size and modification time).
      - C(absent) removes the stamp.
    type: str
    choices: [verified, present, absent]
    default: verified
  rebuild:
    description: With I(state=verified), treat the image as not finished whatever the stamp says.
    type: bool
    default: false
notes:
  - A change the stamp cannot see - the content of a file the build copies in, say - needs a new
    O(digest); the C(image_build) role puts C(image_build_revision) into it for that.
"""

EXAMPLES = r"""
- name: Is the image finished?
  diskimage.loop.image_stamp:
    src: /srv/images/disk.img
    digest: "{{ declaration | to_json(sort_keys=true) | hash('sha256') }}"
  register: stamp

- name: Build the image
  ansible.builtin.include_tasks: build.yml
  when: not stamp.finished

- name: Stamp the finished image
  diskimage.loop.image_stamp:
    src: /srv/images/disk.img
    digest: "{{ declaration | to_json(sort_keys=true) | hash('sha256') }}"
    state: present
"""

RETURN = r"""
finished:
  description: Whether the image is finished - its stamp matches the digest and the image (always true after I(state=present)).
  returned: success
  type: bool
  sample: false
reason:
  description: Why the image is not finished, in words; null when it is, or with I(state=present) and I(state=absent).
  returned: success
  type: str
  sample: the declaration changed since the last build
stamp:
  description: The stamp's content (C(spec), the digest; C(size); C(mtime)), as found or as written; null when there is none.
  returned: success
  type: dict
  sample: {spec: 5f1c..., size: 100663296, mtime: 1764640000.123}
stamp_path:
  description: The stamp file.
  returned: success
  type: str
  sample: /srv/images/disk.img.build-stamp
actions:
  description: What the task did (or would do in check mode), in words.
  returned: always
  type: list
  elements: str
  sample: ["remove the stamp /srv/images/disk.img.build-stamp"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.diskimage.loop.plugins.module_utils.plan import run
from ansible_collections.diskimage.loop.plugins.module_utils._build.stamp import plan_stamp


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True, aliases=["image"]),
            path=dict(type="path"),
            digest=dict(type="str"),
            state=dict(type="str", choices=["verified", "present", "absent"], default="verified"),
            rebuild=dict(type="bool", default=False),
        ),
        required_if=[("state", "verified", ["digest"]), ("state", "present", ["digest"])],
        supports_check_mode=True,
    )
    p = module.params
    run(module, lambda: plan_stamp(p["src"], p["path"], p["digest"], p["state"], p["rebuild"]))


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters' one way to fail: the core's DiskImageError, message and hint, as a template error."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def call(name, function, *args, **kwargs):
    """``function(*args, **kwargs)``, a DiskImageError turned into an AnsibleFilterError naming the filter."""
    try:
        return function(*args, **kwargs)
    except DiskImageError as exc:
        raise AnsibleFilterError("%s: %s" % (name, exc))

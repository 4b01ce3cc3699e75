# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type the core raises.

Every failure a user can meet is a DiskImageError whose message names the problem
and, where there is one, the fix. Modules turn it into fail_json(msg=..., errno=...).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno as _errno
import os


class DiskImageError(Exception):
    """A failure with a message a user can act on.

    ``errno`` is the OS error number behind it (or None), ``hint`` an optional
    sentence telling how to fix it, appended to the message. ``details`` are
    result keys the failed task returns beside the message (what a teardown
    did before it stopped, and what is left).
    """

    def __init__(self, message, errno=None, hint=None, details=None):
        self.message = message
        self.errno = errno
        self.hint = hint
        self.details = details
        full = message if not hint else "%s. %s" % (message.rstrip("."), hint)
        super(DiskImageError, self).__init__(full)

    @property
    def errno_name(self):
        if self.errno is None:
            return None
        return _errno.errorcode.get(self.errno, str(self.errno))

    def to_result(self):
        """Fields for AnsibleModule.fail_json."""
        result = dict(self.details or {})
        result["msg"] = str(self)
        if self.errno is not None:
            result["errno"] = self.errno
            result["errno_name"] = self.errno_name
        return result

    @classmethod
    def from_oserror(cls, what, exc, hint=None):
        """Wrap an OSError: '<what>: <strerror> (<ENAME>)'."""
        code = getattr(exc, "errno", None)
        reason = os.strerror(code) if code else str(exc)
        name = _errno.errorcode.get(code, "") if code else ""
        msg = "%s: %s%s" % (what, reason, " (%s)" % name if name else "")
        return cls(msg, errno=code, hint=hint)

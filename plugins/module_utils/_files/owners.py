# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Users and groups as an image's own /etc/passwd and /etc/group name them.

The build host's users mean nothing inside an image: a name is looked up in the
image's files, and a number is taken as it is. Pure functions over the files'
text, so that they are tested without an image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


class User(object):
    __slots__ = ("name", "uid", "gid", "home")

    def __init__(self, name, uid, gid, home):
        self.name, self.uid, self.gid, self.home = name, uid, gid, home


def parse_passwd(text):
    """{name: User} from passwd(5) text; malformed lines are skipped, the
    first entry of a name wins (as getpwnam's does)."""
    users = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#") or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        users.setdefault(fields[0], User(fields[0], int(fields[2]), int(fields[3]), fields[5]))
    return users


def parse_group(text):
    """{name: gid} from group(5) text."""
    groups = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) < 3 or line.startswith("#") or not fields[2].isdigit():
            continue
        groups.setdefault(fields[0], int(fields[2]))
    return groups


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


class Accounts(object):
    """The image's users and groups; ``passwd`` and ``group`` are the files' text."""

    def __init__(self, passwd="", group=""):
        self.users = parse_passwd(passwd)
        self.groups = parse_group(group)

    def user(self, name):
        try:
            return self.users[name]
        except KeyError:
            raise DiskImageError("the image's /etc/passwd has no user %s" % name,
                                 hint="Create the user in the image first, or give the owner as a number")

    def uid(self, value):
        """A user name or number -> uid; None stays None."""
        if value is None or value == "":
            return None
        number = _number(value)
        return number if number is not None else self.user(str(value)).uid

    def gid(self, value, owner=None):
        """A group name or number -> gid. Without a group but with an owner,
        the owner's login group when the image knows the owner (as
        ``chown user:`` does); else None (left as it is)."""
        if value is None or value == "":
            if owner is None or owner == "":
                return None
            number = _number(owner)
            if number is None:
                return self.user(str(owner)).gid
            found = [u.gid for u in self.users.values() if u.uid == number]
            return found[0] if found else None
        number = _number(value)
        if number is not None:
            return number
        try:
            return self.groups[str(value)]
        except KeyError:
            raise DiskImageError("the image's /etc/group has no group %s" % value,
                                 hint="Create the group in the image first, or give the group as a number")

    def expand(self, path):
        """'~alice/.ssh' -> alice's home from the image's passwd + '/.ssh'."""
        if not path.startswith("~"):
            return path
        name, _sep, rest = path[1:].partition("/")
        if not name:
            raise DiskImageError("path %s names no user after ~" % path, hint="Write ~user/... or an absolute path")
        home = self.user(name).home
        if not home.startswith("/"):
            raise DiskImageError("user %s has no absolute home directory in the image's /etc/passwd (%r)"
                                 % (name, home), hint="Give the path without ~")
        return (home.rstrip("/") + "/" + rest) if rest else home

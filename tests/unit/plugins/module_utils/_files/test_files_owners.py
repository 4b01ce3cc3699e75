# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.owners: names from the image's own passwd and group, numbers as they are,
the owner's login group, and ~user paths."""
import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files.owners import Accounts
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "# a comment:x:1:1:::\n"
          "broken line\n"
          "alice:x:1000:1001:Alice:/home/alice/:/bin/sh\n"
          "alice:x:2000:2000:second entry:/nowhere:/bin/sh\n"
          "daemon:x:2:2:daemon:/:/usr/sbin/nologin\n")
GROUP = "root:x:0:\nstaff:x:50:alice\nalice:x:1001:\n"


def test_names_resolve_in_the_image_and_numbers_stay():
    accounts = Accounts(PASSWD, GROUP)
    assert accounts.uid("alice") == 1000  # the first entry wins, as getpwnam's
    assert accounts.uid("1234") == 1234 and accounts.uid(0) == 0 and accounts.uid(None) is None
    assert accounts.gid("staff") == 50 and accounts.gid("77") == 77


def test_group_defaults_to_the_owners_login_group():
    accounts = Accounts(PASSWD, GROUP)
    assert accounts.gid(None, "alice") == 1001
    assert accounts.gid(None, 1000) == 1001
    assert accounts.gid(None, 4242) is None  # a number the image does not know: left as it is
    assert accounts.gid(None, None) is None
    assert accounts.gid("staff", "alice") == 50


def test_unknown_names_are_errors_that_name_the_file():
    accounts = Accounts(PASSWD, GROUP)
    with pytest.raises(DiskImageError, match="the image's /etc/passwd has no user bob"):
        accounts.uid("bob")
    with pytest.raises(DiskImageError, match="the image's /etc/group has no group wheel"):
        accounts.gid("wheel")


def test_home_paths_come_from_the_image():
    accounts = Accounts(PASSWD, GROUP)
    assert accounts.expand("~alice/.ssh/authorized_keys") == "/home/alice/.ssh/authorized_keys"
    assert accounts.expand("~root") == "/root"
    assert accounts.expand("~daemon/.ssh") == "/.ssh"
    assert accounts.expand("/etc/hostname") == "/etc/hostname"
    with pytest.raises(DiskImageError, match="no user bob"):
        accounts.expand("~bob/.ssh")
    with pytest.raises(DiskImageError, match="names no user"):
        accounts.expand("~/.ssh")


def test_relative_home_is_refused():
    with pytest.raises(DiskImageError, match="no absolute home"):
        Accounts("odd:x:5:5::home/odd:/bin/sh\n").expand("~odd/x")

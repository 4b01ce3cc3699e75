# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.tree_files on a plain directory standing in for a mounted tree: what is
planned, what is written, check mode, idempotence, and links that must not lead out."""
import os
import stat

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._files import entries, tree_files
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="sets owners: needs root")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "home" / "alice").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    (root / "etc" / "hostname").write_text("golden\n")
    (root / "etc" / "machine-id").write_text("0123\n")
    return root


def run(root, raws, check_mode=False):
    return tree_files.run(str(root), entries.normalize_all(raws), check_mode=check_mode)


@ROOT_ONLY
def test_files_directories_lines_and_removals_then_nothing_to_do(tree):
    raws = [
        {"path": "/etc/hostname", "content": "web1\n", "mode": "0644"},
        {"path": "/etc/hosts", "state": "line", "regexp": r"^127\.0\.1\.1\s", "line": "127.0.1.1\tweb1"},
        {"path": "/etc/machine-id", "content": "", "mode": "0444", "create": False},
        {"path": "/etc/adjtime", "content": "", "create": False},
        {"path": "~alice/.ssh", "state": "directory", "owner": "alice", "mode": "0700"},
        {"path": "~alice/.ssh/authorized_keys", "content": "ssh-ed25519 K\n", "owner": "alice", "mode": "0600"},
        {"path": "/etc/systemd/network/10-web1.network", "content": "[Match]\n"},
        {"path": "/etc/passwd-", "state": "absent"},
    ]
    changes = run(tree, raws)
    assert [c.path for c in changes][4:6] == ["/home/alice/.ssh", "/home/alice/.ssh/authorized_keys"]
    assert [c.result()["changed"] for c in changes] == [True, True, True, False, True, True, True, False]
    assert changes[6].actions == ["create directory /etc/systemd", "create directory /etc/systemd/network",
                                  "create /etc/systemd/network/10-web1.network"]
    assert (tree / "etc" / "hostname").read_text() == "web1\n"
    assert (tree / "etc" / "hosts").read_text() == "127.0.1.1\tweb1\n"
    assert (tree / "etc" / "machine-id").read_bytes() == b""
    assert stat.S_IMODE(os.stat(tree / "etc" / "machine-id").st_mode) == 0o444
    assert not (tree / "etc" / "adjtime").exists()
    keys = os.stat(tree / "home" / "alice" / ".ssh" / "authorized_keys")
    assert (keys.st_uid, keys.st_gid, stat.S_IMODE(keys.st_mode)) == (1000, 1000, 0o600)
    ssh = os.stat(tree / "home" / "alice" / ".ssh")
    assert (ssh.st_uid, ssh.st_gid, stat.S_IMODE(ssh.st_mode)) == (1000, 1000, 0o700)
    network = os.stat(tree / "etc" / "systemd")
    assert (network.st_uid, stat.S_IMODE(network.st_mode)) == (0, 0o755)
    assert not [name for name in os.listdir(tree / "etc") if name.startswith(tree_files.TEMP_MARK)]

    again = run(tree, raws)
    assert [c.actions for c in again] == [[]] * len(raws)


@ROOT_ONLY
def test_check_mode_changes_nothing_and_reports_each_directory_once(tree):
    before = sorted(os.walk(tree))
    changes = run(tree, [{"path": "/etc/a/b", "state": "directory"}, {"path": "/etc/a/b/c", "content": "x"},
                         {"path": "/etc/hostname", "content": "web1\n"}], check_mode=True)
    assert sorted(os.walk(tree)) == before and (tree / "etc" / "hostname").read_text() == "golden\n"
    assert changes[0].actions == ["create directory /etc/a", "create directory /etc/a/b"]
    assert changes[1].actions == ["create /etc/a/b/c"]
    assert changes[2].diff == {"before_header": "/etc/hostname", "after_header": "/etc/hostname",
                               "before": "golden\n", "after": "web1\n"}


@ROOT_ONLY
def test_mode_and_owner_changes_alone_are_reported(tree):
    changes = run(tree, [{"path": "/etc/hostname", "content": "golden\n", "mode": "0600", "owner": "alice"}])
    assert changes[0].actions == ["set mode 0600, owner 1000, group 1000 of /etc/hostname"]
    assert changes[0].diff["before"] == "mode 0644, owner 0, group 0\n"


def test_an_absolute_link_in_the_image_stays_in_the_image(tree, tmp_path):
    outside = tmp_path / "host-etc"
    outside.mkdir()
    os.symlink(str(outside), str(tree / "etc" / "escape"))  # an absolute link, as the image has it
    (tree / str(outside).lstrip("/")).mkdir(parents=True)
    run(tree, [{"path": "/etc/escape/file", "content": "inside\n"}])
    assert os.listdir(outside) == []
    assert (tree / str(outside).lstrip("/") / "file").read_text() == "inside\n"


def test_absent_removes_a_link_not_its_target(tree):
    os.symlink("/etc/hostname", str(tree / "etc" / "link"))
    run(tree, [{"path": "/etc/link", "state": "absent"}])
    assert not os.path.lexists(tree / "etc" / "link") and (tree / "etc" / "hostname").exists()


def test_absent_removes_a_directory_tree(tree):
    (tree / "etc" / "old" / "deep").mkdir(parents=True)
    (tree / "etc" / "old" / "deep" / "f").write_text("x")
    os.symlink("/etc", str(tree / "etc" / "old" / "ln"))
    changes = run(tree, [{"path": "/etc/old", "state": "absent"}])
    assert changes[0].actions == ["remove /etc/old"] and not (tree / "etc" / "old").exists()
    assert (tree / "etc" / "hostname").exists()


@pytest.mark.parametrize("raw, message", [
    ({"path": "/etc", "content": "x"}, "/etc is in the image, but not a regular file"),
    ({"path": "/etc/hostname", "state": "directory"}, "/etc/hostname is in the image, but not a directory"),
    ({"path": "/etc/hostname/x", "content": "x"}, "/etc/hostname is in the image, but not a directory"),
    ({"path": "~bob/.ssh", "state": "directory"}, "the image's /etc/passwd has no user bob"),
    ({"path": "/etc/x", "content": "", "owner": "bob"}, "the image's /etc/passwd has no user bob"),
])
def test_conflicts_fail_before_that_entry_changes_anything(tree, raw, message):
    before = sorted(os.walk(tree))
    with pytest.raises(DiskImageError, match=message):
        run(tree, [raw])
    assert sorted(os.walk(tree)) == before

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module tier: the modules run by Ansible on localhost through pytest-ansible.

``modules`` calls a module the way a playbook task does (pytest-ansible's
``ansible_module`` fixture: a one-task play through Ansible's task queue, the
collection loaded by Ansible's collection finder) and returns the task's result
dictionary. ``workspace`` is a directory for the test's images; whatever a test left
mounted below it or attached from it is released afterwards, even when the test
failed, and a test that left something behind fails. util-linux reads the kernel's
state back (``losetup --json``, ``findmnt --json``, ``sfdisk --json``; oracles.py).
"""

import os

import pytest

from oracles import attached, mounts_below, run


HERE = os.path.dirname(os.path.abspath(__file__))
# pytest-ansible's fixtures run modules on the hosts of this inventory that match the
# host pattern: localhost, connection local, the Python that runs pytest and Ansible.
ON_LOCALHOST = pytest.mark.ansible(inventory=os.path.join(HERE, "inventory.yml"), host_pattern="localhost")


def pytest_collection_modifyitems(config, items):
    usable = os.geteuid() == 0 and os.path.exists("/dev/loop-control")
    skip = pytest.mark.skip(reason="needs root and /dev/loop-control")
    for item in items:
        if str(item.path).startswith(HERE + os.sep):
            item.add_marker(ON_LOCALHOST)
            if not usable:
                item.add_marker(skip)


@pytest.fixture
def workspace(tmp_path):
    """A directory for the test's files; released (and checked) after the test."""
    yield tmp_path
    left_mounts = mounts_below(tmp_path)
    for target in sorted(left_mounts, reverse=True):
        if run("umount", target, check=False).returncode:
            run("umount", "--lazy", target, check=False)
    left_devices = [dev["name"] for dev in attached(tmp_path)]
    for name in left_devices:
        run("losetup", "--detach", name, check=False)
    if left_mounts or left_devices:
        pytest.fail("the test left mounts %s and loop devices %s behind (released now)"
                    % (left_mounts, left_devices))


class Modules:
    """Runs diskimage.loop modules on the inventory's localhost and returns each result.

    pytest-ansible's ad-hoc play has no check-mode switch of its own (its --check
    option is parsed but never handed on), so check=True sets the task keyword
    check_mode on the one task of the play it builds. Every task runs with diff on.
    """

    def __init__(self, dispatcher):
        self._dispatcher = dispatcher
        self._check = False
        build = dispatcher._build_play_ds

        def play_with_keywords(complex_args):
            play = build(complex_args)
            play["tasks"][0].update(check_mode=self._check, diff=True)
            return play

        dispatcher._build_play_ds = play_with_keywords

    def __call__(self, name, check=False, **args):
        self._check = check
        results = getattr(self._dispatcher, "diskimage.loop." + name)(**args)
        assert list(results.keys()) == ["localhost"], results.contacted
        return dict(results["localhost"])


@pytest.fixture
def modules(ansible_module):
    return Modules(ansible_module)

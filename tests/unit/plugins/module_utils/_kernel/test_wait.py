# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""wait_until: the one poll-until-deadline loop."""
import time

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until


def test_returns_at_once_when_the_condition_holds():
    calls = []
    start = time.monotonic()
    assert wait_until(lambda: calls.append(1) or "yes", 5) == "yes"
    assert calls == [1] and time.monotonic() - start < 0.5


def test_polls_until_the_condition_holds():
    values = iter([None, 0, False, "done"])
    assert wait_until(lambda: next(values), 5, interval=0.001) == "done"


def test_gives_up_at_the_deadline_with_the_last_value():
    calls = []
    start = time.monotonic()
    assert wait_until(lambda: calls.append(1) or 0, 0.1, interval=0.01) == 0
    assert 0.1 <= time.monotonic() - start < 1.0
    assert len(calls) >= 2  # once at the start and once at the deadline at least


def test_a_zero_timeout_checks_once():
    calls = []
    assert wait_until(lambda: calls.append(1), 0) is None
    assert calls == [1]

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for the kernel (or udev, or another process) to reach a state.

Detaches finish on the last close, udev makes nodes a moment after an event,
locks and busy counts clear when another program is done: every such wait
polls a condition until it holds or a deadline passes, here and nowhere else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


FIRST_SLEEP = 0.0005


def wait_until(condition, timeout, interval=0.02):
    """Call ``condition()`` until it returns something true or ``timeout``
    seconds have passed; return its last value.

    The condition is checked at once (no sleep when it already holds) and once
    more at the deadline, so a state reached during the last sleep counts.
    The sleeps start at half a millisecond and double up to ``interval``:
    most waits (a detach completing, a node appearing) end within a
    millisecond, and a fixed 20 ms poll would cost that much every time.
    """
    deadline = time.monotonic() + timeout
    sleep = min(FIRST_SLEEP, interval)
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(sleep, max(0.0, deadline - time.monotonic())))
        sleep = min(sleep * 2, interval)

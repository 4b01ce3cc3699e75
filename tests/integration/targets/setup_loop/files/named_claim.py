# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Claim or release a block of loop device numbers for the named-device tests.

claim CLAIMS WORKSPACE COUNT FIRST LAST [BASE]: print the first number N of a block
N..N+COUNT-1 in which no device is bound and that no other workspace has claimed,
trying FIRST, FIRST+COUNT, ... below LAST (only BASE when given), and record the
claim as the file CLAIMS/N holding WORKSPACE. A claim whose workspace no longer
exists was left by a run that was killed; it is taken over.
release CLAIMS WORKSPACE: remove the claims WORKSPACE holds.

Claims are made under an exclusive lock on CLAIMS/.lock, so runs started at the
same moment get different blocks. Exit status 1 with a message when no block is free.
"""

from __future__ import annotations

import fcntl
import os
import sys


def _bound(number):
    return os.path.exists("/sys/block/loop%d/loop/backing_file" % number)


def _holder(claims, base):
    try:
        with open(os.path.join(claims, str(base)), encoding="utf-8") as claim:
            return claim.read().strip()
    except FileNotFoundError:
        return None


def claim(claims, workspace, count, first, last, base=None):
    bases = [base] if base is not None else range(first, last - count + 1, count)
    for candidate in bases:
        holder = _holder(claims, candidate)
        if holder and holder != workspace and os.path.isdir(holder):
            continue
        if any(_bound(number) for number in range(candidate, candidate + count)):
            continue
        with open(os.path.join(claims, str(candidate)), "w", encoding="utf-8") as record:
            record.write(workspace + "\n")
        return candidate
    return None


def release(claims, workspace):
    for name in os.listdir(claims):
        if name.isdigit() and _holder(claims, name) == workspace:
            os.unlink(os.path.join(claims, name))


def main(argv):
    action, claims, workspace = argv[1:4]
    os.makedirs(claims, exist_ok=True)
    with open(os.path.join(claims, ".lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if action == "release":
            release(claims, workspace)
            return 0
        count, first, last = (int(value) for value in argv[4:7])
        base = int(argv[7]) if len(argv) > 7 and argv[7] else None
        found = claim(claims, workspace, count, first, last, base)
    if found is None:
        where = "block %d" % base if base is not None else "range %d-%d" % (first, last - 1)
        sys.stderr.write(
            "no %d consecutive free loop device numbers in %s: every block is bound or claimed"
            " (claims in %s; a claim whose workspace is gone is reused). Pick another block"
            " with -e setup_loop_named_base=N.\n" % (count, where, claims))
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

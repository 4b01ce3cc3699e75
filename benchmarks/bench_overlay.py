# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A 12-host fleet from one golden image: qcow2 overlays vs full copies.

The golden image is a 1 GiB sparse raw image with 128 MiB of
data in it (what a small built image holds). Each round makes twelve per-host
images: with ``_nbd/overlay.ensure_overlay`` (qemu-img create -f qcow2 -b golden
-F raw, atomically renamed into place), or with ``cp --sparse=always``, the
copy a user makes otherwise (holes stay holes, data is read and written). The
note says how much disk each fleet takes.
"""

import os
import shutil

from common import Group, Row, interleaved, run, skipped_group
# pylint: disable=wrong-import-position
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import overlay  # noqa: E402

HOSTS = 12
MIB = 1 << 20


def make_golden(path):
    with open(path, "wb") as handle:
        handle.truncate(1024 * MIB)
        for offset in range(16 * MIB, 144 * MIB, 4 * MIB):
            handle.seek(offset)
            handle.write(os.urandom(4 * MIB))
    return path


def fleet_dir(workdir, name):
    path = os.path.join(workdir, name)
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path)
    return path


def overlays(golden, directory):
    for host in range(HOSTS):
        overlay.ensure_overlay(golden, os.path.join(directory, "host%02d.qcow2" % host))
    return directory


def copies(golden, directory):
    for host in range(HOSTS):
        run(["cp", "--sparse=always", golden, os.path.join(directory, "host%02d.img" % host)])
    return directory


def used(directory):
    return sum(os.stat(os.path.join(directory, name)).st_blocks * 512 for name in os.listdir(directory))


def bench_fleet(workdir, rounds):
    golden = make_golden(os.path.join(workdir, "golden.img"))
    over, full = os.path.join(workdir, "overlays"), os.path.join(workdir, "copies")
    sizes = {}

    def check(kind):
        def verify(directory):
            assert len(os.listdir(directory)) == HOSTS
            sizes[kind] = used(directory)
        return verify

    samples = interleaved([
        ("overlays", lambda: overlays(golden, over), lambda: fleet_dir(workdir, "overlays"), check("overlays")),
        ("copies", lambda: copies(golden, full), lambda: fleet_dir(workdir, "copies"), check("copies")),
    ], rounds)
    group = Group("7. A %d-host fleet from a 1 GiB golden image (128 MiB of data)" % HOSTS, [
        "disk used by the fleet: overlays %.1f MiB, sparse copies %.1f MiB" % (
            sizes["overlays"] / MIB, sizes["copies"] / MIB)])
    group.pair(Row("12 qcow2 overlays (ensure_overlay)", samples["overlays"]),
               Row("12 copies (cp --sparse=always)", samples["copies"]))
    shutil.rmtree(over, ignore_errors=True)
    shutil.rmtree(full, ignore_errors=True)
    return group


def run_all(workdir, quick):

    if shutil.which("qemu-img") is None:
        return [skipped_group("7. A 12-host fleet from a golden image", [], ("overlays", "copies"),
                              "qemu-img not found (apt-get install qemu-utils)")]
    return [bench_fleet(workdir, 1 if quick else 3)]

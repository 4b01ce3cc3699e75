# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Claims on loop devices: valid only for the attachment that made them."""
import os

from ansible_collections.diskimage.loop.plugins.module_utils import ownership


def _device(root, name, diskseq, backing="/img/disk.img", offset=0):
    base = os.path.join(root, "block", name)
    os.makedirs(os.path.join(base, "loop"), exist_ok=True)
    for rel, value in (("diskseq", diskseq), ("dev", "7:0"), ("loop/backing_file", backing),
                       ("loop/offset", offset)):
        with open(os.path.join(base, rel), "w") as handle:
            handle.write("%s\n" % value)


def test_claim_and_owner(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    assert ownership.owner("loop3", run, sys_root) is None
    ownership.claim("loop3", "image_partitions", run, sys_root)
    assert ownership.owner("loop3", run, sys_root) == "image_partitions"
    ownership.release("loop3", run)
    assert ownership.owner("loop3", run, sys_root) is None


def test_a_claim_dies_with_its_attachment(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    ownership.claim("loop3", "image_mount", run, sys_root)
    _device(sys_root, "loop3", 19)  # detached and attached again by someone else
    assert ownership.owner("loop3", run, sys_root) is None
    assert not os.path.exists(os.path.join(run, "loop3.json"))  # the stale claim is gone


def test_without_diskseq_the_backing_file_decides(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop1", "")
    os.unlink(os.path.join(sys_root, "block", "loop1", "diskseq"))
    ownership.claim("loop1", "image_mount", run, sys_root)
    assert ownership.owner("loop1", run, sys_root) == "image_mount"
    _device(sys_root, "loop1", "", backing="/img/other.img")
    os.unlink(os.path.join(sys_root, "block", "loop1", "diskseq"))
    assert ownership.owner("loop1", run, sys_root) is None


def test_garbage_claims_are_ignored(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop2", 5)
    os.makedirs(run)
    with open(os.path.join(run, "loop2.json"), "w") as handle:
        handle.write("{not json")
    assert ownership.owner("loop2", run, sys_root) is None

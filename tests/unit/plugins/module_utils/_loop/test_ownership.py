# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Claims on loop devices: valid only for the attachment that made them."""
import os
import threading

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._loop import ownership


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


def test_claim_into_a_directory_another_run_just_made(tmp_path, monkeypatch):
    # The race: the directory appears between a check and makedirs. makedirs
    # then fails with EEXIST, which must not fail the claim.
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    real_makedirs = os.makedirs

    def racing_makedirs(path, *args, **kwargs):
        real_makedirs(path)  # the other run wins
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(ownership.os, "makedirs", racing_makedirs)
    ownership.claim("loop3", "image_mount", run, sys_root)
    assert ownership.owner("loop3", run, sys_root) == "image_mount"


def test_claim_into_an_existing_directory(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    os.makedirs(run)
    ownership.claim("loop3", "image_mount", run, sys_root)
    ownership.claim("loop3", "image_partitions", run, sys_root)
    assert ownership.owner("loop3", run, sys_root) == "image_partitions"


def test_a_file_where_the_directory_should_be_still_fails(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    with open(run, "w") as handle:
        handle.write("not a directory")
    with pytest.raises(OSError):
        ownership.claim("loop3", "image_mount", run, sys_root)


def test_parallel_claims_all_land_and_leave_no_temporary_files(tmp_path):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    names = ["loop%d" % n for n in range(16)]
    for n, name in enumerate(names):
        _device(sys_root, name, 100 + n)
    errors = []

    def work(name):
        try:
            for _round in range(20):
                ownership.claim(name, "image_mount", run, sys_root)
                ownership.claim("loop0", "image_mount", run, sys_root)  # every thread, one claim
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(os.listdir(run)) == sorted("%s.json" % name for name in names)
    for name in names:
        assert ownership.owner(name, run, sys_root) == "image_mount"


def test_a_failed_write_keeps_the_old_claim_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    sys_root, run = str(tmp_path / "sys"), str(tmp_path / "run")
    _device(sys_root, "loop3", 17)
    ownership.claim("loop3", "image_mount", run, sys_root)

    def broken_dump(record, handle):
        handle.write('{"owner": "half')
        raise IOError(28, "No space left on device")

    monkeypatch.setattr(ownership.json, "dump", broken_dump)
    with pytest.raises(IOError):
        ownership.claim("loop3", "image_partitions", run, sys_root)
    monkeypatch.undo()
    assert os.listdir(run) == ["loop3.json"]
    assert ownership.owner("loop3", run, sys_root) == "image_mount"

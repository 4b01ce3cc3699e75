# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_tree's core on the real kernel: a GPT image with Discoverable
Partitions mounted as one tree and taken down again, with findmnt and
losetup --json as the oracles; foreign mounts inside the tree, a busy path,
and a failure in the middle that leaves nothing attached or mounted."""
import json
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel.wait import wait_until
from ansible_collections.diskimage.loop.plugins.module_utils._tree import root as tree_root
from ansible_collections.diskimage.loop.plugins.module_utils._tree import state as tree_state
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

from .conftest import MiB, devices_backed_under, losetup_json, release_under

ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
VAR = "4d21b016-b534-45c2-a9fb-5c16e091fd2d"
HOME = "933ac7e1-2eb4-4f13-b844-0e14e2aef915"

pytestmark = pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs mkfs.ext4")


def make_image(workdir):
    """GPT: root (x86-64) with /var but no /home directory, var, home; each ext4 with a marker file."""
    trees = {}
    for name in ("root", "var", "home"):
        tree = workdir / ("fs-" + name)
        tree.mkdir()
        (tree / "mark").write_text(name + "\n")
        trees[name] = tree
    for sub in ("var", "proc", "dev", "tmp", "etc"):
        (trees["root"] / sub).mkdir()
    image = workdir / "disk.img"
    with open(str(image), "wb") as handle:
        handle.truncate(60 * MiB)
    subprocess.run(["sfdisk", "-q", str(image)], check=True, text=True, input=(
        "label: gpt\nstart=2048, size=32768, type=%s\nsize=24576, type=%s\nsize=24576, type=%s\n"
        % (ROOT_X86_64, VAR, HOME)))
    for name, offset, size in (("root", 1, 16), ("var", 17, 12), ("home", 29, 12)):
        part = workdir / ("%s.fs" % name)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(trees[name]), str(part), "%dM" % size], check=True)
        subprocess.run(["dd", "if=%s" % part, "of=%s" % image, "bs=1M", "seek=%d" % offset, "conv=notrunc",
                        "status=none"], check=True)
        os.unlink(str(part))
    return str(image)


def findmnt_under(root):
    out = subprocess.run(["findmnt", "--json", "--list", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"],
                         check=True, capture_output=True, text=True).stdout
    return [m for m in json.loads(out)["filesystems"] if m["target"] == root or m["target"].startswith(root + "/")]


def loops_of(image):
    return sorted((d["name"], int(d["offset"])) for d in losetup_json()
                  if (d.get("back-file") or "").split(" (deleted)")[0] == image)


def wait_no_loops(image):
    wait_until(lambda: not loops_of(image), 5.0, interval=0.05)
    return loops_of(image)


def apply(state, image, **kwargs):
    plan = tree_state.plan(state, image, **kwargs)
    plan.apply()
    return plan, plan.report()


@pytest.fixture
def tree(workdir):
    image = make_image(workdir)
    root = str(workdir / "tree")
    yield image, root
    release_under(str(workdir))


def test_dps_tree_mounted_shortest_first_then_unmounted(tree):
    image, root = tree
    checked = tree_state.plan("mounted", image, root=root)
    assert checked.descriptions()[-1].startswith("once / is mounted: ")
    assert not findmnt_under(root) and not loops_of(image)  # planning changes nothing

    _plan, report = apply("mounted", image, root=root)
    assert report["changed"] and report["root_created"]
    seen = dict((m["target"], m) for m in findmnt_under(root))
    assert sorted(seen) == [root, root + "/home", root + "/var"]
    assert all(m["fstype"] == "ext4" for m in seen.values())
    for path, kind in (("/", "root"), ("/var", "var"), ("/home", "home")):
        with open(os.path.join(root + path, "mark")) as handle:
            assert handle.read() == kind + "\n"
    assert [(m["path"], m["kind"]) for m in report["mounts"]] == [("/", "root"), ("/home", "home"), ("/var", "var")]
    # One loop device per partition, at its offset, autoclear so none outlives its mount.
    offsets = sorted(offset for _name, offset in loops_of(image))
    assert offsets == sorted([1 * MiB, 17 * MiB, 29 * MiB])
    assert sorted(report["loop_devices"]) == sorted(name for name, _o in loops_of(image))
    assert all(d["autoclear"] for d in losetup_json() if d["name"] in report["loop_devices"])
    # /home was made inside the root filesystem.
    assert os.path.isdir(root + "/home")

    again = tree_state.plan("mounted", image, root=root)
    assert again.steps == [] and all(not m["changed"] for m in again.report()["mounts"])

    _plan, down = apply("unmounted", image, root=root)
    assert [u["target"] for u in down["unmounted"]][-1] == root
    assert not any(u["foreign"] for u in down["unmounted"])
    assert not findmnt_under(root) and wait_no_loops(image) == []
    assert down["left"] == [] and not down["root_removed"] and os.path.isdir(root)
    assert tree_state.plan("unmounted", image, root=root).steps == []


def host_mounts_under(path):
    with open("/proc/self/mountinfo") as handle:
        return sorted(line.split()[4] for line in handle if (line.split()[4] + "/").startswith(path + "/"))


def test_foreign_mounts_inside_the_tree_come_down_first_and_the_host_keeps_its_own(tree):
    image, root = tree
    apply("mounted", image, root=root)
    host_dev = host_mounts_under("/dev")
    subprocess.run(["mount", "--rbind", "/dev", root + "/dev"], check=True)
    subprocess.run(["mount", "--bind", "/proc", root + "/proc"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "scratch", root + "/tmp"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "again", root + "/tmp"], check=True)  # stacked on the first
    foreign = [m["target"] for m in findmnt_under(root) if m["fstype"] != "ext4"]

    check = tree_state.plan("unmounted", image, root=root)
    assert len([d for d in check.descriptions() if d.startswith("unmount ")]) == len(findmnt_under(root))

    _plan, down = apply("unmounted", image, root=root)
    assert sorted(u["target"] for u in down["unmounted"] if u["foreign"]) == sorted(foreign)
    order = [u["target"] for u in down["unmounted"]]
    # Children before parents: the image's root filesystem goes last, /dev after what is below it.
    assert order[-1] == root
    assert order.index(root + "/dev") > max(i for i, t in enumerate(order) if t.startswith(root + "/dev/")) \
        if any(t.startswith(root + "/dev/") for t in order) else True
    assert [u["source"] for u in down["unmounted"] if u["target"] == root + "/tmp"] == ["again", "scratch"]
    assert not findmnt_under(root) and wait_no_loops(image) == []
    assert host_mounts_under("/dev") == host_dev, "taking the tree down must leave the host's /dev submounts"
    assert os.path.ismount("/proc")


def test_a_busy_path_is_reported_with_its_process_and_the_rest_comes_down(tree):
    image, root = tree
    apply("mounted", image, root=root)
    loops = dict((m["path"], m["loop_device"]) for m in tree_state.plan("mounted", image, root=root).report()["mounts"])
    holder = subprocess.Popen(["sleep", "60"], cwd=root + "/var")
    try:
        with pytest.raises(DiskImageError) as caught:
            apply("unmounted", image, root=root)
        failure = caught.value
        assert "held by sleep (pid %d: cwd)" % holder.pid in str(failure)
        details = failure.details
        left = dict((item["target"], item) for item in details["left"])
        assert sorted(left) == [root, root + "/var"]
        assert [h["pid"] for h in left[root + "/var"]["holders"]] == [holder.pid]
        assert left[root + "/var"]["holders"][0]["uses"] == ["cwd"]
        assert "stays mounted below" in left[root]["reason"]
        # /home came down, and its loop device with it; the two still needed detach themselves later.
        assert sorted(m["target"] for m in findmnt_under(root)) == [root, root + "/var"]
        assert [u["target"] for u in details["unmounted"]] == [root + "/home"]
        assert details["detached"] == [loops["/home"]]
        assert sorted(details["pending"]) == sorted([loops["/"], loops["/var"]])
        assert all(d["autoclear"] for d in losetup_json() if d["name"] in details["pending"])
    finally:
        holder.kill()
        holder.wait()
    _plan, down = apply("unmounted", image, root=root)
    assert down["left"] == [] and not findmnt_under(root) and wait_no_loops(image) == []


def test_a_failure_in_the_middle_leaves_nothing_attached_or_mounted(tree, workdir):
    image, root = tree
    mounts = [{"path": "/", "partition": 1}, {"path": "/home", "partition": 3},
              {"path": "/var", "partition": 2, "fstype": "xfs"}]  # ext4 inside: the mount fails
    with pytest.raises(DiskImageError) as caught:
        apply("mounted", image, root=root, mounts=mounts)
    assert "xfs" in str(caught.value)
    assert not findmnt_under(root)
    assert wait_no_loops(image) == [] and devices_backed_under(str(workdir)) == []
    assert not os.path.exists(root), "the root this run made is removed again"


def test_default_root_is_named_by_the_image_identity_and_removed(tree, workdir):
    image, _root = tree
    alias = str(workdir / "alias.img")
    os.symlink(image, alias)
    _plan, up = apply("mounted", image, mounts=[{"path": "/", "partition": 1}])
    root = up["root"]
    try:
        assert root.startswith(tree_root.TREES_DIR + "/disk.img-") and os.path.ismount(root)
        assert tree_root.root_path(alias)[0] == root
        _plan, down = apply("unmounted", alias)
        assert down["root_removed"] and not os.path.exists(root) and wait_no_loops(image) == []
        assert tree_state.plan("unmounted", image).steps == []
    finally:
        release_under(root)


def test_read_only_tree_leaves_the_image_unchanged(tree):
    image, root = tree
    before = os.stat(image).st_mtime_ns
    with open(image, "rb") as handle:
        digest = hash(handle.read())
    _plan, up = apply("mounted", image, root=root, read_only=True, auto_exclude=["home"])
    assert [m["path"] for m in up["mounts"]] == ["/", "/var"] and all(m["read_only"] for m in up["mounts"])
    assert all("ro" in m["options"].split(",") for m in findmnt_under(root))
    assert all(d["ro"] for d in losetup_json() if d["name"] in up["loop_devices"])
    apply("unmounted", image, root=root)
    time.sleep(0)
    with open(image, "rb") as handle:
        assert hash(handle.read()) == digest
    assert os.stat(image).st_mtime_ns == before


def test_a_bind_of_a_shared_tree_comes_down_without_its_original(tree, workdir):
    # As /dev is on a systemd host: shared, with submounts. Unmounting a submount of
    # an rbind of it would take the original's submount with it (umount propagates
    # to the peers), unless the tree's mounts are made slaves first.
    image, root = tree
    host = workdir / "hostdev"
    host.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "hostdev", str(host)], check=True)
    try:
        (host / "pts").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "hostpts", str(host / "pts")], check=True)
        subprocess.run(["mount", "--make-rshared", str(host)], check=True)
        apply("mounted", image, root=root)
        subprocess.run(["mount", "--rbind", str(host), root + "/dev"], check=True)
        plan, down = apply("unmounted", image, root=root)
        assert plan.descriptions()[0].startswith("make the mounts under %s slaves" % root)
        assert [u["target"] for u in down["unmounted"][:2]] == [root + "/dev/pts", root + "/dev"]
        assert not findmnt_under(root) and wait_no_loops(image) == []
        assert os.path.ismount(str(host / "pts")), "the original's submount went with the bind"
    finally:
        subprocess.run(["umount", "-R", str(host)], check=False)


def test_a_device_a_killed_run_attached_but_never_mounted_is_detached(tree):
    from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership
    image, root = tree
    apply("mounted", image, root=root, mounts=[{"path": "/", "partition": 1}])
    # What a run killed between its attach and its mount of partition 2 leaves.
    orphan = loopdev.attach(image, offset=17 * MiB, sizelimit=12 * MiB)
    ownership.claim(orphan.name, "image_mount")
    theirs = loopdev.attach(image, offset=29 * MiB, sizelimit=12 * MiB)  # not this collection's: left alone
    try:
        _plan, down = apply("unmounted", image, root=root)
        assert orphan.device in down["detached"] and theirs.device not in down["detached"]
        assert [name for name, _offset in loops_of(image)] == [theirs.device]
    finally:
        loopdev.detach(theirs.device)

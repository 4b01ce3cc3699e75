# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_build role's declaration: checks, module arguments, pairing, digest."""
import hashlib
import json

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._build.declaration import build_plan

SEED = [
    {"size": "8MiB", "fstype": "ext4", "label": "p1", "mountpoint": "/"},
    {"size": "8MiB", "fstype": "ext4", "label": "p2", "mountpoint": "/p2"},
    {"size": "8MiB", "fstype": "ext4", "label": "p3", "mountpoint": "/p3/"},
    {"size": "8MiB", "fstype": "ext4", "label": "p5", "mountpoint": "/p5"},
    {"size": "8MiB", "fstype": "ext4", "label": "p6", "mountpoint": "/p5/p6", "mkfs_options": ["-m", "0"]},
    {"fstype": "ext4", "label": "p8", "mountpoint": "/p8"},
]


def declaration(**changes):
    base = {"path": "/srv/seed.img", "size": "96MiB", "label": "dos", "disk_id": "", "partitions": SEED,
            "populate": [], "populate_tasks": "", "populate_tasks_content": "", "revision": "",
            "reproducible": False, "source_date_epoch": "", "seed": "seed.img"}
    base.update(changes)
    return base


def seed_table():
    """image_partitions' result for the seed: 1-3 primary, 4 extended, 5-7 logical."""
    parts = [{"number": n, "kind": "extended" if n == 4 else "primary" if n < 4 else "logical",
              "device": None, "uuid": "0x1234abcd-%02d" % n} for n in range(1, 8)]
    return {"partitions": parts, "entry_partitions": [1, 2, 3, 5, 6, 7]}


def test_sizes_follow_the_modules_grammar():
    assert build_plan(declaration(size="1.5GiB"))["size"] == 3 << 29
    assert build_plan(declaration(size="2048s"))["size"] == 1 << 20
    assert build_plan(declaration(size=4096))["size"] == 4096


@pytest.mark.parametrize("changes,fragment", [
    ({"path": ""}, "image_build_path is empty"),
    ({"size": "8 parsecs"}, "is not a size"),
    ({"size": 0}, "must be positive"),
    ({"partitions": []}, "at least one partition"),
    ({"partitions": [{"fstype": "ext4", "mountpoint": "boot"}]}, "is not absolute"),
    ({"partitions": [{"fstype": "ext4", "mountpoint": "/"}, {"fstype": "ext4", "mountpoint": "//"}]},
     "are both mounted at /"),
    ({"partitions": [{"mountpoint": "/"}]}, "no fstype"),
    ({"partitions": [{"fstype": "swap", "mountpoint": "/swap"}]}, "is swap"),
    ({"partitions": [{"fstype": "ext4", "mkfs_options": "-m 0"}]}, "must be a list"),
    ({"partitions": [{"type": "extended", "mountpoint": "/x", "fstype": "ext4"}, {"fstype": "ext4"}]},
     "the extended partition"),
    ({"populate": [{"content": "x", "src": "y", "dest": "/a"}]}, "exactly one of archive, src or content"),
    ({"populate": [{"content": "x", "dest": "etc/motd"}]}, "absolute dest"),
    ({"populate": [{"content": "x"}]}, "absolute dest"),
    ({"source_date_epoch": "yesterday"}, "number of seconds"),
])
def test_a_bad_declaration_is_refused_naming_the_problem(changes, fragment):
    with pytest.raises(DiskImageError) as err:
        build_plan(declaration(**changes))
    assert fragment in str(err.value)
    assert str(err.value).startswith("image_build: ")


def test_layout_keeps_the_table_and_filesystem_keys_only():
    plan = build_plan(declaration())
    assert plan["layout"]["label"] == "dos"
    assert "disk_id" not in plan["layout"]
    assert plan["layout"]["partitions"][0] == {"size": "8MiB", "fstype": "ext4", "label": "p1"}
    assert plan["layout"]["partitions"][4]["mkfs_options"] == ["-m", "0"]
    assert all("mountpoint" not in p for p in plan["layout"]["partitions"])


def test_reproducible_layout_is_seeded_and_leaves_filesystems_to_image_mkfs():
    plan = build_plan(declaration(label="gpt", source_date_epoch="1700000000",
                                  partitions=[{"type": "root", "fstype": "ext4", "mountpoint": "/"}]))
    assert plan["reproducible"] and plan["epoch"] == 1700000000
    part = plan["layout"]["partitions"][0]
    assert set(part) == {"type", "uuid"}
    assert plan["layout"]["disk_id"]
    again = build_plan(declaration(label="gpt", source_date_epoch="1700000000",
                                   partitions=[{"type": "root", "fstype": "ext4", "mountpoint": "/"}]))
    assert again["layout"] == plan["layout"]
    assert build_plan(declaration(reproducible=True))["epoch"] == 315532800


def test_pairing_skips_the_extended_partition_and_sorts_mounts():
    plan = build_plan(declaration(), table=seed_table())
    assert sorted((m["path"], m["partition"]) for m in plan["mounts"]) == [
        ("/", 1), ("/p2", 2), ("/p3", 3), ("/p5", 5), ("/p5/p6", 6), ("/p8", 7)]
    paths = [m["path"] for m in plan["mounts"]]
    assert paths.index("/") == 0 and paths.index("/p5") < paths.index("/p5/p6")
    assert plan["mounts"][0] == {"path": "/", "partition": 1, "fstype": "ext4"}
    assert [f["partuuid"] for f in plan["filesystems"]][:4] == [
        "0x1234abcd-01", "0x1234abcd-02", "0x1234abcd-03", "0x1234abcd-05"]
    assert plan["filesystems"][4]["mkfs_options"] == ["-m", "0"]


def test_mount_options_and_devices_of_mounted_partitions():
    parts = [{"fstype": "ext4", "mountpoint": "/", "mount_options": "noatime"}, {"fstype": "swap"}]
    table = {"partitions": [{"number": 1, "kind": "primary", "device": None},
                            {"number": 2, "kind": "primary", "device": None}], "entry_partitions": [1, 2]}
    tree = {"mounts": [{"path": "/", "device": "/dev/loop9", "partition": {"number": 1}}]}
    plan = build_plan(declaration(partitions=parts), table=table, tree=tree)
    assert plan["mounts"] == [{"path": "/", "partition": 1, "fstype": "ext4", "opts": "noatime"}]
    assert [p["device"] for p in plan["table"]["partitions"]] == ["/dev/loop9", None]


def test_a_table_that_does_not_match_is_an_error():
    with pytest.raises(DiskImageError, match="partition #1 of the declaration has no partition in the table"):
        build_plan(declaration(), table={"partitions": [{"number": 1, "kind": "primary"}], "entry_partitions": [1]})
    with pytest.raises(DiskImageError, match="no entry_partitions"):
        build_plan(declaration(), table={"partitions": [{"number": 1, "kind": "primary"}]})


def test_population_by_kind_in_declared_order():
    plan = build_plan(declaration(populate=[
        {"content": "a\n", "dest": "/hello"},
        {"content": "", "dest": "/p5/p6/deep/hello", "mode": "0600"},
        {"archive": "/srv/root.tar.gz"},
        {"src": "files/motd", "dest": "/etc/motd", "owner": "0"},
        {"archive": "/srv/p7.tar", "dest": "/p7", "extra_opts": ["--strip-components=1"], "remote_src": False},
    ]))
    populate = plan["populate"]
    assert populate["dirs"] == [{"path": "/p5/p6/deep", "mode": "0755"}, {"path": "/", "mode": "0755"},
                                {"path": "/etc", "mode": "0755"}, {"path": "/p7", "mode": "0755"}]
    assert populate["archives"] == [
        {"src": "/srv/root.tar.gz", "dest": "/", "remote_src": True},
        {"src": "/srv/p7.tar", "dest": "/p7", "remote_src": False, "extra_opts": ["--strip-components=1"]}]
    assert populate["files"] == [
        {"content": "a\n", "dest": "/hello", "remote_src": False, "mode": "0644"},
        {"content": "", "dest": "/p5/p6/deep/hello", "remote_src": False, "mode": "0600"},
        {"src": "files/motd", "owner": "0", "dest": "/etc/motd", "remote_src": False, "mode": "0644"}]


def test_reproducible_population_gives_the_staged_root_its_mode():
    assert build_plan(declaration(reproducible=True))["populate"]["dirs"] == [{"path": "/", "mode": "0755"}]


def test_digest_is_the_one_earlier_versions_wrote():
    """Stamps written before the role was rewritten stay valid: the same record,
    serialized as Ansible's to_json(sort_keys=True) did, hashed with sha256."""
    record = {"size": 96 << 20, "label": "dos", "disk_id": "", "partitions": SEED, "populate": [],
              "populate_tasks": "", "populate_tasks_content": "", "revision": "", "reproducible": False}
    expected = hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()
    assert build_plan(declaration())["digest"] == expected


def test_digest_changes_with_every_input_of_the_build():
    base = build_plan(declaration())["digest"]
    for changes in ({"revision": "2"}, {"populate_tasks_content": "- name: x"}, {"size": "97MiB"},
                    {"reproducible": True}, {"populate": [{"content": "x", "dest": "/x"}]}):
        assert build_plan(declaration(**changes))["digest"] != base, changes
    assert build_plan(declaration(reproducible=True, seed="a"))["digest"] != \
        build_plan(declaration(reproducible=True, seed="b"))["digest"]

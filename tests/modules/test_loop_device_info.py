# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.loop_device_info through Ansible: queries agree with losetup and change nothing."""

import os

from oracles import MiB, attached, losetup, run, sparse


def test_devices_of_a_file_agree_with_losetup(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)
    ours = modules("loop_device", file=image)["device"]
    # one attachment made by hand, read-only at 1 MiB: the module must find it too
    by_hand = run("losetup", "--find", "--show", "--read-only", "--offset", str(MiB), image).stdout.strip()

    info = modules("loop_device_info", file=image)
    in_check_mode = modules("loop_device_info", check=True, file=image)

    assert info["changed"] is False
    assert [dev["device"] for dev in info["devices"]] == sorted([ours, by_hand], key=lambda d: int(d[9:]))
    oracle = {dev["name"]: dev for dev in attached(image)}
    for dev in info["devices"]:
        assert dev["backing_file"] == oracle[dev["device"]]["back-file"] == image
        assert (dev["offset"], dev["read_only"]) == (oracle[dev["device"]]["offset"], oracle[dev["device"]]["ro"])
    assert in_check_mode["devices"] == info["devices"]

    at_offset = modules("loop_device_info", file=image, offset="1MiB")
    assert [dev["device"] for dev in at_offset["devices"]] == [by_hand]

    everything = modules("loop_device_info")
    assert {ours, by_hand} <= {dev["device"] for dev in everything["devices"]}
    assert {dev["device"] for dev in everything["devices"]} <= {dev["name"] for dev in losetup()} | {ours, by_hand}

    assert modules("loop_device", file=image, state="absent")["changed"] is True
    assert attached(image) == []
    assert modules("loop_device_info", file=image)["devices"] == []


def test_find_free_names_an_unbound_device(modules, workspace):
    bound_before = {dev["name"] for dev in losetup()}
    result = modules("loop_device_info", find_free=True)
    bound_after = {dev["name"] for dev in losetup()}

    assert result["changed"] is False
    free = result["free_device"]
    assert free.startswith("/dev/loop")
    # Other processes attach and detach meanwhile: the device was unbound when the
    # module looked, so at least one of the two listings around the call shows it free.
    assert free not in bound_before or free not in bound_after
    assert result["free_device_exists"] == os.path.exists("/sys/block/" + os.path.basename(free))


def test_bad_queries_fail_with_the_fix(modules, workspace):
    for device, expect in (("/dev/null", "'/dev/null' is not a loop device name"),
                           ("foo", "'foo' is not a loop device name")):
        result = modules("loop_device_info", device=device)
        assert result["failed"] is True and expect in result["msg"]

    offset_alone = modules("loop_device_info", offset="1MiB")
    assert offset_alone["failed"] is True
    assert "offset" in offset_alone["msg"] and "file" in offset_alone["msg"]

    directory = modules("loop_device_info", file=str(workspace))
    assert directory["failed"] is True and str(workspace) in directory["msg"]

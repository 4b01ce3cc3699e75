# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.loop_device through Ansible: attach, idempotence, check mode, detach, bad input."""

from oracles import MiB, attached, sparse


def test_attach_is_idempotent_and_detach_undoes_it(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)

    predicted = modules("loop_device", check=True, file=image)
    assert predicted["changed"] is True
    assert predicted["device"].startswith("/dev/loop")
    assert attached(image) == [], "check mode attached the image"

    first = modules("loop_device", file=image)
    assert first["changed"] is True and first["created"] is True
    oracle = attached(image)
    assert [dev["name"] for dev in oracle] == [first["device"]]
    assert oracle[0]["offset"] == first["status"]["offset"] == 0
    assert oracle[0]["ro"] is first["status"]["read_only"] is False
    assert first["status"]["size"] == 8 * MiB
    assert first["diff"]["before"] != first["diff"]["after"]

    again = modules("loop_device", file=image)
    assert again["changed"] is False and again["created"] is False
    assert again["device"] == first["device"]
    assert [dev["name"] for dev in attached(image)] == [first["device"]]

    detach_check = modules("loop_device", check=True, file=image, state="absent")
    assert detach_check["changed"] is True
    assert [dev["name"] for dev in attached(image)] == [first["device"]], "check mode detached"

    detached = modules("loop_device", file=image, state="absent")
    assert detached["changed"] is True
    assert detached["detached"] == [first["device"]]
    assert attached(image) == []

    assert modules("loop_device", file=image, state="absent")["changed"] is False


def test_offset_sizelimit_read_only_reach_the_kernel(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)

    result = modules("loop_device", file=image, offset="1MiB", sizelimit="2MiB", read_only=True)

    assert result["changed"] is True
    (oracle,) = attached(image)
    assert oracle["name"] == result["device"]
    assert (oracle["offset"], oracle["sizelimit"], oracle["ro"]) == (MiB, 2 * MiB, True)
    assert (result["status"]["offset"], result["status"]["sizelimit"]) == (MiB, 2 * MiB)
    assert result["status"]["read_only"] is True and result["status"]["size"] == 2 * MiB
    # the whole image is another attachment: asking for it attaches a second device
    whole = modules("loop_device", file=image)
    assert whole["changed"] is True and whole["device"] != result["device"]
    assert sorted(dev["name"] for dev in attached(image)) == sorted([result["device"], whole["device"]])

    gone = modules("loop_device", file=image, state="absent")
    assert sorted(gone["detached"]) == sorted([result["device"], whole["device"]])
    assert attached(image) == []


def test_bad_input_fails_with_the_fix_and_changes_nothing(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)

    unaligned = modules("loop_device", file=image, offset=100)
    assert unaligned["failed"] is True and unaligned["changed"] is False
    assert "offset 100 is not a multiple of the 512-byte sector size" in unaligned["msg"]
    assert "Use 0 or 512" in unaligned["msg"]

    too_long = modules("loop_device", file=image, sizelimit="9MiB")
    assert too_long["failed"] is True
    assert "reaches past the end" in too_long["msg"]

    missing = modules("loop_device", file=str(workspace / "missing.img"))
    assert missing["failed"] is True and "missing.img" in missing["msg"]

    assert attached(workspace) == []

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""diskimage.loop.image_partitions through Ansible: a small dos and gpt image, present and absent."""

import hashlib
import os

import pytest

from oracles import MiB, attached, sfdisk, sparse

SECTOR = 512

LAYOUTS = {
    "dos": {"label": "dos", "partitions": [{"size": "2MiB"}, {"size": "rest", "type": "linux"}]},
    "gpt": {"label": "gpt", "partitions": [{"size": "2MiB", "type": "esp", "name": "ESP"},
                                           {"size": "rest", "type": "linux", "name": "data"}]},
}


def digest(path):
    with open(path, "rb") as image:
        return hashlib.sha1(image.read()).hexdigest()


@pytest.mark.parametrize("label", sorted(LAYOUTS))
def test_present_then_absent(modules, workspace, label):
    image = sparse(workspace / "disk.img", 8 * MiB)
    empty = digest(image)

    planned = modules("image_partitions", check=True, src=image, backend="partscan", layout=LAYOUTS[label])
    assert planned["changed"] is True
    assert planned["device"] is None and planned["loop_attached"] is True
    assert [part["number"] for part in planned["partitions"]] == [1, 2]
    assert digest(image) == empty, "check mode wrote the image"
    assert attached(image) == []

    made = modules("image_partitions", src=image, backend="partscan", layout=LAYOUTS[label])
    assert made["changed"] is True and made["backend"] == "partscan"
    table = sfdisk(image)
    assert table["label"] == label == made["table"]["label"]
    oracle = [(part["start"], part["size"]) for part in table["partitions"]]
    assert oracle == [(part["start_sector"], part["size_sectors"]) for part in made["partitions"]]
    assert oracle[0][1] * SECTOR == 2 * MiB
    assert [dev["name"] for dev in attached(image)] == [made["device"]]
    for part in made["partitions"]:
        assert part["device"] == "%sp%d" % (made["device"], part["number"])
        name = os.path.basename(part["device"])
        with open("/sys/class/block/%s/start" % name, encoding="ascii") as start:
            assert int(start.read()) == part["start_sector"]

    again = modules("image_partitions", src=image, backend="partscan", layout=LAYOUTS[label])
    assert again["changed"] is False and again["device"] == made["device"]
    assert sfdisk(image) == table

    down_check = modules("image_partitions", check=True, src=image, state="absent")
    assert down_check["changed"] is True
    assert [dev["name"] for dev in attached(image)] == [made["device"]], "check mode detached"

    down = modules("image_partitions", src=image, state="absent")
    assert down["changed"] is True and down["detached"] == [made["device"]]
    assert attached(image) == []
    for part in made["partitions"]:
        assert not os.path.exists("/sys/class/block/" + os.path.basename(part["device"]))
    assert sfdisk(image) == table, "absent must leave the table in the image"

    assert modules("image_partitions", src=image, state="absent")["changed"] is False


def test_a_different_table_is_refused_and_nothing_changes(modules, workspace):
    image = sparse(workspace / "disk.img", 8 * MiB)
    assert modules("image_partitions", src=image, layout=LAYOUTS["dos"], state="present")["changed"] is True
    assert modules("image_partitions", src=image, state="absent")["changed"] is True
    written = digest(image)

    refused = modules("image_partitions", src=image, layout=LAYOUTS["gpt"])

    assert refused["failed"] is True and refused["changed"] is False
    assert "already has a different partition table: the label is dos, not gpt" in refused["msg"]
    assert digest(image) == written
    assert attached(image) == []

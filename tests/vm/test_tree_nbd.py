# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_tree on an image that is not raw, and unmounts by path alone that end an NBD connection.

The seed's eight-partition layout as qcow2 (the ``seed`` fixture) is mounted as a
declared tree the way image_tree's main() plans it (``_tree.state.planner``):
connected once, reused by a rerun that changes nothing, taken down with its
connection by ``unmounted``. ``qemu-img check`` says the image is sound after
the writes, and a read-only tree reads them back; an unmount by the root alone,
and image_mount's by the path alone, disconnect what the modules connected and
leave a connection made by hand. One playbook run of the image_customize role
writes into a copy of the qcow2 image (on request: it takes minutes in the guest).
"""

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountinfo
from ansible_collections.diskimage.loop.plugins.module_utils._mount import state as mount_state
from ansible_collections.diskimage.loop.plugins.module_utils._tree import state as tree_state
from nbd_helpers import check_clean, connected, servers
from vm_helpers import run

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("nbd_leak_check")]

TREE = [{"path": "/", "partition": 1}, {"path": "/var", "label": "part5"}, {"path": "/srv", "partition": 7}]


def tree(state, src, root, check_mode=False, **kwargs):
    """image_tree as its main() runs it: plan, then apply or give back."""
    plan = tree_state.planner(state, src, root=root, check_mode=check_mode, **kwargs)()
    if check_mode:
        report = plan.report(True)
        assert plan.roll_back() == []
        return report
    return plan.apply().report()


def mounts_under(root):
    return [m.mount_point for m in mountinfo.mounts_under(root, mountinfo.read_mountinfo())]


def test_a_qcow2_tree_mounts_is_reused_and_goes_with_its_connection(tmp_path, seed):
    qcow2 = str(tmp_path / "tree.qcow2")
    shutil.copyfile(seed[1], qcow2)
    root = str(tmp_path / "root")

    checked = tree("mounted", qcow2, root, check_mode=True, mounts=TREE)
    assert checked["changed"] and checked["image_format"] == "qcow2"
    assert not connected() and not os.path.exists(root)

    up = tree("mounted", qcow2, root, mounts=TREE)
    try:
        device = up["nbd_device"]
        assert up["changed"] and up["src"] == qcow2 and up["image_format"] == "qcow2"
        assert list(connected()) == [device]
        assert [m["path"] for m in up["mounts"]] == ["/", "/srv", "/var"]
        assert all(m["device"].startswith(device) or m["loop_device"] for m in up["mounts"])
        with open(os.path.join(root, "var", "written"), "w") as handle:
            handle.write("through the tree\n")
        again = tree("mounted", qcow2, root, mounts=TREE)
        assert again["changed"] is False and again["nbd_device"] == device and list(connected()) == [device]
    finally:
        down = tree("unmounted", qcow2, root)
    assert down["changed"] and device in down["detached"]
    assert mounts_under(root) == [] and not connected() and not servers()
    check_clean(qcow2)
    assert tree("unmounted", qcow2, root)["changed"] is False

    # read back through a read-only tree, taken down by its root alone
    back = tree("mounted", qcow2, root, mounts=TREE, read_only=True)
    try:
        with open(os.path.join(root, "var", "written")) as handle:
            assert handle.read() == "through the tree\n"
        assert all(m["read_only"] for m in back["mounts"])
    finally:
        by_root = tree("unmounted", None, root)
    assert back["nbd_device"] in by_root["detached"] and mounts_under(root) == [] and not connected()


def test_image_mount_by_path_alone_disconnects_only_what_the_modules_connected(tmp_path, seed):
    qcow2 = seed[1]
    root = str(tmp_path / "one")
    up = tree("mounted", qcow2, root, mounts=[{"path": "/", "label": "part6"}], read_only=True)
    try:
        down = mount_state.plan("unmounted", None, root).apply().report()
    finally:
        tree("unmounted", qcow2, root)
    assert up["nbd_device"] in down["detached"] and not connected()

    # connected by hand: the mount goes, the connection stays
    by_hand = "/dev/nbd7"
    run("qemu-nbd", "--connect=%s" % by_hand, "--format=qcow2", "--read-only", qcow2)
    try:
        mounted = tree("mounted", qcow2, root, mounts=[{"path": "/", "label": "part6"}], read_only=True)
        assert mounted["nbd_device"] == by_hand
        down = mount_state.plan("unmounted", None, root).apply().report()
        assert down["detached"] == [] and by_hand in connected() and mounts_under(root) == []
    finally:
        tree("unmounted", None, root)
        run("qemu-nbd", "--disconnect", by_hand)
    assert not connected()


PLAY = """
- name: Customize a qcow2 image
  hosts: localhost
  gather_facts: false
  roles:
    - role: diskimage.loop.image_customize
      image_customize_image: {image}
      image_customize_mounts: [{{path: /, label: part8}}]
      image_customize_tasks: {tasks}
"""

TASKS = """
- name: Write the hostname
  ansible.builtin.copy:
    content: "customized\\n"
    dest: "{{ image_customize_tree }}/hostname"
    mode: "0644"
"""


@pytest.mark.skipif(os.environ.get("DISKIMAGE_VM_PLAYBOOKS") != "1",
                    reason="a playbook in the guest takes about 9 minutes under TCG (Ansible's imports over 9p); "
                           "DISKIMAGE_VM_PLAYBOOKS=1 runs it")
def test_image_customize_writes_into_a_qcow2_image(tmp_path, seed):
    qcow2 = str(tmp_path / "cloud.qcow2")
    shutil.copyfile(seed[1], qcow2)
    home = tmp_path / "ansible"
    home.mkdir()
    (tmp_path / "tasks.yml").write_text(TASKS)
    (tmp_path / "play.yml").write_text(PLAY.format(image=qcow2, tasks=tmp_path / "tasks.yml"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The guest's root filesystem is read-only: Ansible's own directories go under tmp_path.
    env = dict(os.environ, HOME=str(home), ANSIBLE_REMOTE_TMP=str(home / "remote"),
               ANSIBLE_LOCAL_TEMP=str(home / "local"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(root, ".cache", "collections"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    played = run(os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                 "-c", "local", str(tmp_path / "play.yml"), env=env, stdin=subprocess.DEVNULL, check=False)
    assert played.returncode == 0, played.stdout + played.stderr
    assert not connected() and not servers()
    check_clean(qcow2)
    back = str(tmp_path / "back")
    tree("mounted", qcow2, back, mounts=[{"path": "/", "label": "part8"}], read_only=True)
    try:
        with open(os.path.join(back, "hostname")) as handle:
            assert handle.read() == "customized\n"
    finally:
        tree("unmounted", qcow2, back)


def test_a_tree_of_an_image_replaced_since_comes_down_with_its_connection(tmp_path, seed):
    qcow2 = str(tmp_path / "replaced.qcow2")
    shutil.copyfile(seed[1], qcow2)
    root = str(tmp_path / "root")
    up = tree("mounted", qcow2, root, mounts=[{"path": "/", "label": "part5"}], read_only=True)
    try:
        os.rename(qcow2, qcow2 + ".old")
        shutil.copyfile(seed[1], qcow2)  # the same name, another file: no device serves it
        down = tree("unmounted", qcow2, root)
    finally:
        tree("unmounted", None, root)
    assert up["nbd_device"] in down["detached"] and mounts_under(root) == [] and not connected()

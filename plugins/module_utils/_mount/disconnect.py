# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nbd connections under mounts taken down by path alone.

Without ``src`` (image_mount's ``umount PATH``, image_tree's ``root`` alone)
there is no image to ask which devices serve it; the mounts themselves say.
Each mount resolves to the device at the bottom of its chain (a partition of
/dev/nbdN, a loop device or a map over it: ``extent.extent_of``). A
connection found that way is disconnected when the mounting modules made it
(its record's owner, ``_nbd/connect.owner``: a connection made by hand, by
another server or for another image has none) and nothing else of it stays
mounted - as an owned loop device under such a mount is detached; that
holds also when the image file was renamed or replaced since (the record
names the server and the file it holds open). The disconnect itself waits
for the loop devices over it to go, and leaves the connection when anything
still uses it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._mount.extent import extent_of, mount_devno


def nbd_number(entry):
    """N of the /dev/nbdN under a mountinfo entry, or None."""
    devno = mount_devno(entry)
    extent = extent_of(*devno) if devno else None
    if extent is None or extent.key[0] != "dev" or extent.key[1] != nbd.NBD_MAJOR:
        return None
    return nbd.parse_name(sysfs.name_by_devno(extent.key[1], extent.key[2]) or "")


def unused_after(unmounting, table, number_of=nbd_number):
    """The nbd numbers under ``unmounting`` (mountinfo entries) that no other
    mount of ``table`` uses, in the order found."""
    found = []
    for entry in unmounting:
        number = number_of(entry)
        if number is not None and number not in found:
            found.append(number)
    if not found:
        return []
    going = set(entry.mount_id for entry in unmounting)
    staying = set(number_of(entry) for entry in table if entry.mount_id not in going)
    return [number for number in found if number not in staying]


def plan_disconnect(plan, unmounting, table, owner):
    """Add to ``plan`` the disconnect of each nbd connection under
    ``unmounting`` that ``owner`` made and that nothing else mounts; what
    went is added to ``plan.detached``."""
    numbers = unused_after(unmounting, table)
    if not numbers:
        return
    # Imported here: only a teardown over an nbd device needs the servers and records.
    from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect
    from ansible_collections.diskimage.loop.plugins.module_utils._nbd import source as nbd_source
    for number in numbers:
        current = nbd_source.recorded_connection(number)
        if current is None or connect.owner(current) != owner:
            continue  # another NBD client, or connected by hand or by image_partitions: left as it is

        def down(current=current):
            if nbd_source.disconnect(current, owner):
                plan.detached.append(current.device)

        plan.add("disconnect %s (%s, connected by %s) once nothing uses it" % (current.device, current.image, owner),
                 down)

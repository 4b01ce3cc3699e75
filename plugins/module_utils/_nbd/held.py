# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image that is not raw (qcow2, VMDK, VHDX) served through NBD for the
life of one process that mounts its tree in a mount namespace of its own:
image_files' module, the image connection's holder.

``with Held(path, fmt, owner) as connection:`` connects the image to a free
/dev/nbdN with the discipline of connect.py (the allocation lock, the
reaping of what killed runs left, verification, a record under /run), and
on the way out flushes and disconnects it, whatever happened. Inside, the
device stands for the image file: the tree is mounted from a loop device
with autoclear over it (the same offsets, the same TreeMount).

It is entered before the process makes its private mount namespace: the
qemu-nbd it starts must stay in the host's namespace, or it would keep the
private one - and the mounts in it - alive after the process is gone.

The record names this process as the connection's holder (its pid and
start time). A SIGKILL at any moment takes the private namespace with its
mounts, and the loop device over /dev/nbdN, with the process; what stays is
/dev/nbdN, connected and unused, and a record whose holder is dead. The next
connect of any module of the collection takes it down, under the allocation
lock, before it picks a device (connect.reap). A process killed while
qemu-nbd starts is reaped as connect.py says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, formats, server
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError


def refuse_served(path):
    """An image some nbd device serves already (image_mount, image_partitions,
    qemu-nbd by hand) is refused, as an attached raw image is: one filesystem
    mounted through two devices at once is corrupted."""
    ident = server.identity(path)
    serving = server.serving(ident) if ident is not None else []
    if serving:
        raise DiskImageError("%s is connected to %s already" % (path, ", ".join(c.device for c in serving)),
                             errno=errno.EBUSY,
                             hint="Take it down first (image_mount state=unmounted, image_partitions state=absent, "
                                  "qemu-nbd --disconnect): one filesystem mounted twice is corrupted")


def declared_size(path, fmt):
    """The disk size the image's header declares, which the device must show
    (qcow2 only; None for the formats whose header is not read here)."""
    return formats.qcow2_virtual_size(formats.read_header(path)) if fmt == "qcow2" else None


class Held(object):
    """The image ``path`` (format ``fmt``) on a /dev/nbdN for this process.

    ``read_only`` connects it read-only; ``check_mode`` (a run that changes
    nothing) also leaves what killed runs left for the next real run to reap."""

    def __init__(self, path, fmt, owner, read_only=False, check_mode=False):
        self.path = path
        self.format = fmt
        self.owner = owner
        self.read_only = bool(read_only or check_mode)
        self.check_mode = check_mode
        self.connection = None

    def __enter__(self):
        size = declared_size(self.path, self.format)
        with connect.settled(check_mode=self.check_mode):
            refuse_served(self.path)
            self.connection = connect.connect(self.path, self.format, self.read_only, self.owner, size=size,
                                              holder=connect.holder_of())
        return self.connection

    def __exit__(self, *exc):
        self.release()
        return False

    def release(self):
        """Flush (unless read-only) and disconnect; the device, or None when nothing was connected."""
        if self.connection is None:
            return None
        device = self.connection.device
        try:
            if not self.read_only:
                sync(device)
        finally:
            connect.take_down(self.connection.number, self.connection.pid)
            self.connection = None
        return device


def sync(device):
    """Write what the device's page cache holds to the server (an NBD flush)."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

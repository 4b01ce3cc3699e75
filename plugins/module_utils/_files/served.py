# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image that is not raw (a qcow2 overlay, any qcow2 ``src``) served
through NBD for the time of one image_files run.

``with Served(path, fmt, read_only) as connection:`` connects the image to a
free /dev/nbdN with the discipline of _nbd/connect.py (the allocation lock,
the reaping of what killed runs left, verification, a record under /run),
and disconnects it on the way out, whatever happened. Inside, the device is
used as the loop path uses the image file: growth on it, and the tree
mounted from a loop device with autoclear over it (the same offsets, the
same TreeMount).

It is entered before the module makes its own mount namespace: the qemu-nbd
it starts must stay in the host's namespace, or it would keep the private
one - and the mounts in it - alive after the module is gone.

The record names this process as the connection's holder (its pid and
start time). A SIGKILL at any moment takes the private namespace with its
mounts, and the loop device over /dev/nbdN, with the process; what stays is
/dev/nbdN, connected and unused, and a record whose holder is dead. The next
connect of any module of the collection - image_files' rerun first - takes
it down, under the allocation lock, before it picks a device (connect.reap).
A run killed while qemu-nbd starts is reaped as connect.py says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, formats, server
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

OWNER = "image_files"


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


class Served(object):
    """The image ``path`` (format ``fmt``) on a /dev/nbdN of this run."""

    def __init__(self, path, fmt, read_only=False):
        self.path = path
        self.format = fmt
        self.read_only = read_only
        self.connection = None

    def __enter__(self):
        header = formats.read_header(self.path)
        size = formats.qcow2_virtual_size(header) if self.format == "qcow2" else None
        # check mode changes nothing: no reaping, and a read-only connection
        with connect.settled(check_mode=self.read_only):
            refuse_served(self.path)
            self.connection = connect.connect(self.path, self.format, self.read_only, OWNER, size=size,
                                              holder=connect.holder_of())
        return self.connection

    def __exit__(self, *exc):
        if self.connection is not None:
            if not self.read_only:
                _sync(self.connection.device)
            connect.take_down(self.connection.number, self.connection.pid)
            self.connection = None
        return False


def _sync(device):
    """Write what the device's page cache holds to the server (an NBD flush)."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook between a module's ``src`` and the core: an image that is not raw
is shown to the rest of the run as the /dev/nbdN that serves it.

``block_source`` is the one function other code calls: a raw image, a block
device or a missing path come back as they are (loop devices stay their
backend); a qcow2, VMDK or VHDX image comes back as a connected, verified
/dev/nbdN - one already serving that very file is reused. ``RunConnections``
wraps it for a module's plan: the connection this run made becomes the plan's first
step and its last undo, so a failed run, a failed planning and check mode
(which connects read-only, only to read the image) all disconnect it again,
and a successful run keeps it. ``RunConnections.release`` plans the teardown side:
what ``build`` takes down on every device that serves the image, then the
disconnect of those this module connected.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import nbd, sysfs
from ansible_collections.diskimage.loop.plugins.module_utils._nbd import connect, formats, server
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

UNUSED_WAIT = 3.0


class BlockSource(object):
    """What to hand the core for ``src``: ``path`` (the image, or /dev/nbdN),
    its ``format``, and the ``connection`` when one serves it."""

    def __init__(self, path, fmt, connection=None, connected_now=False):
        self.path = path
        self.format = fmt
        self.connection = connection
        self.connected_now = connected_now

    @property
    def device(self):
        return self.connection.device if self.connection is not None else None


def _image_file(src):
    path = os.path.abspath(src)
    try:
        info = os.stat(path)
    except OSError:
        return path, None
    return path, (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def block_source(src, image_format="auto", read_only=False, owner=None, connect_missing=True, check_mode=False):
    """The BlockSource of ``src``; see the module docstring."""
    path, ident = _image_file(src)
    if ident is None:
        if image_format not in ("auto", formats.RAW):
            raise DiskImageError("image_format %s needs src to be an image file; %s is not one" % (image_format, path))
        return BlockSource(src, formats.RAW)
    header = formats.read_header(path)
    fmt = formats.resolve(path, image_format, header)
    if fmt == formats.RAW:
        return BlockSource(src, fmt)
    if not connect_missing:
        return BlockSource(path, fmt, _reusable(path, ident, read_only))
    with connect.settled(check_mode=check_mode):
        reused = _reusable(path, ident, read_only)
        if reused is not None:
            return BlockSource(path, fmt, reused)
        connection = connect.connect(path, fmt, bool(read_only) or check_mode, owner,
                                     size=formats.qcow2_virtual_size(header))
    settle_partitions(connection.device)
    return BlockSource(path, fmt, connection, connected_now=True)


def settle_partitions(device):
    """Open a device just connected once, and close it. The kernel scans its
    partition table again on the first open after the connect (it drops every
    partition and adds them back); when another program (udev's probe) opens
    it first, that scan holds the disk's open mutex, so this open returns once
    it is done. Either way the partitions the rest of the run looks up stay."""
    try:
        fd = os.open(device, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return  # reading the table will say what is wrong, in its own words
    os.close(fd)


def _reusable(path, ident, read_only):
    """A connection serving the image that this task may use, or None when there is none."""
    existing = server.serving(ident)
    usable = [c for c in existing if c.read_only == bool(read_only)] or \
        ([c for c in existing if not c.read_only] if read_only else [])
    if usable:
        return usable[0]
    if existing:
        devices = ", ".join(c.device for c in existing)
        raise DiskImageError("%s is connected read-only to %s, and this task writes to it" % (path, devices),
                             hint="Set read_only: true, or take down what uses %s first" % devices)
    return None


def refuse_fstab(src, image_format):
    path, ident = _image_file(src)
    if ident is None or image_format == formats.RAW:
        return
    fmt = formats.resolve(path, image_format)
    if fmt != formats.RAW:
        raise DiskImageError("%s is a %s image, and an fstab entry cannot mount it: mount(8) has no step that "
                             "connects an NBD device" % (path, fmt),
                             hint="Drop fstab (and state: present), or convert the image to raw with qemu-img "
                                  "convert")


def partitions_backend(path, requested):
    """The image_partitions backend for ``path``: ``auto`` on an nbd device whose
    driver has partition minors (max_part, 16 by default) is ``partscan``, the
    kernel partitions it made on connecting, reconciled with BLKPG; else as asked."""
    number = nbd.parse_name(os.path.basename(path or ""))
    if requested != "auto" or number is None or not path.startswith("/dev/"):
        return requested
    text = sysfs.read_attr(os.path.join(sysfs.block_dir("nbd%d" % number), "ext_range"))
    return "partscan" if text and text.isdigit() and int(text) > 1 else requested


def recorded_connection(number):
    """The Connection of /dev/nbdN as its record knows it, also when its image
    file was renamed or replaced since (``server.connection`` then sees no
    image): the task in NBD_DO_IT belongs to a server started for the record,
    and that server holds open the very file recorded. None otherwise."""
    current = server.connection(number)
    if current is not None:
        return current
    record = connect.read_record(number)
    task = nbd.task_of(number)
    pid = nbd.process_of_task(task) if task is not None and record is not None else None
    if pid is None or pid not in record["pids"]:
        return None
    ident = tuple(record.get("identity") or ())
    if len(ident) != 2 or not server.holds_open(pid, ident):
        return None
    return server.Connection(number, pid, record.get("image"), ident, nbd.read_only(number), nbd.size_bytes(number))


def disconnect(connection, owner):
    """Take down a connection ``owner`` made, when nothing uses it; True when it went."""
    if connect.owner(connection) != owner:
        return False
    return connect.take_down_unused(connection.number, connection.pid, UNUSED_WAIT)


def annotate(plan, source):
    """Add ``image_format`` and ``nbd_device`` to the plan's result; ``src``
    stays the image, not the device that served it."""
    result = plan.result

    def annotated(check_mode=False):
        values = result(check_mode)
        values["image_format"] = source.format
        values["nbd_device"] = source.device
        if source.connection is not None:
            values["src"] = source.path
        return values

    plan.result = annotated
    return plan


class RunConnections(object):
    """The NBD connections of one module run (``owner``, the module's name)."""

    def __init__(self, owner, check_mode=False):
        self.owner = owner
        self.check_mode = check_mode
        self.made = {}  # number -> Connection this run connected

    def _disconnect(self, connection):
        self.made.pop(connection.number, None)
        connect.take_down(connection.number, connection.pid)

    def plan(self, src, build, image_format="auto", read_only=False, fstab=False):
        """``build(path)``'s plan for ``src`` seen through its block source.
        ``fstab``: the plan writes an fstab entry, which only a raw image can have."""
        if fstab:
            refuse_fstab(src, image_format)
        source = block_source(src, image_format, read_only, self.owner, check_mode=self.check_mode)
        if source.connection is None:
            return annotate(build(source.path), source)
        connection = source.connection
        if source.connected_now:
            self.made[connection.number] = connection
        ours = connection.number in self.made
        try:
            plan = build(connection.device)
        except BaseException:
            if ours:
                self._disconnect(connection)
            raise
        if ours:
            plan.steps.insert(0, ("connect %s (%s) to %s with qemu-nbd%s" % (
                source.path, source.format, connection.device, " read-only" if connection.read_only else ""),
                lambda: None))
            plan.undo.insert(0, ("disconnect %s" % connection.device, lambda: self._disconnect(connection)))
        return annotate(plan, source)

    def release(self, src, build, merge, image_format="auto"):
        """The teardown plan for ``src``: ``build(path, unserved)`` for each
        device that serves the image, merged with ``merge(plan, other)``, then
        the disconnect of each one this module connected, once nothing uses
        it. A raw image is ``build(src, False)``; an image that is not raw and
        that no device serves is ``build(image, True)``: none of it can be in
        use, so the plan has only the image file's own bytes to look at."""
        path, ident = _image_file(src)
        if ident is None or formats.resolve(path, image_format) == formats.RAW:
            return annotate(build(src, False), BlockSource(src, formats.RAW))
        source = BlockSource(path, formats.resolve(path, image_format))
        with connect.settled(check_mode=self.check_mode):
            pass  # a run killed while it connected left a server: it is stopped, or is a connection now
        serving = server.serving(ident)
        if not serving:
            return annotate(build(source.path, True), source)
        plan = build(serving[0].device, False)
        for other in serving[1:]:
            merge(plan, build(other.device, False))
        for connection in serving:
            if connect.owner(connection) != self.owner or not (plan.steps or not connect.in_use(connection.number)):
                continue  # not ours, or in use by what this run leaves in place

            def down(connection=connection):
                if disconnect(connection, self.owner):
                    plan.detached.append(connection.device)

            plan.add("disconnect %s (connected by %s) once nothing uses it" % (connection.device, self.owner),
                     down)
        source.connection = serving[0]
        return annotate(plan, source)


def merge_lists(plan, other, names):
    """Add the list attributes ``names`` of ``other`` (a plan of another device
    serving the same image) to ``plan``."""
    for name in names:
        getattr(plan, name).extend(getattr(other, name))
    return plan

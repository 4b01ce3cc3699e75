# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only views of /sys/block for loop devices and their partitions.

sysfs is the cheapest and most complete source of loop status (no device open,
no udev event), so status is read here first and the ioctl only fills in what
sysfs lacks. Every function takes ``root`` so tests can point it at a fixture tree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

SYS_ROOT = "/sys"


def read_attr(path):
    """The stripped text of a sysfs attribute, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape").rstrip("\n")
    except (IOError, OSError):
        return None


def _int_attr(path, default=None):
    text = read_attr(path)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        return default


def parse_devno(text):
    """'7:3' -> (7, 3); None for anything else."""
    if not text:
        return None
    major, sep, minor = text.strip().partition(":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def block_dir(name, root=SYS_ROOT):
    return os.path.join(root, "block", name)


def class_dir(name, root=SYS_ROOT):
    """/sys/class/block/NAME: disks and partitions alike."""
    return os.path.join(root, "class", "block", name)


def is_partition(name, root=SYS_ROOT):
    return read_attr(os.path.join(class_dir(name, root), "partition")) is not None


def parent_disk(name, root=SYS_ROOT):
    """The disk a partition belongs to (its directory's parent in sysfs)."""
    return os.path.basename(os.path.dirname(os.path.realpath(class_dir(name, root))))


def read_only(name, root=SYS_ROOT):
    return read_attr(os.path.join(class_dir(name, root), "ro")) == "1"


def size_bytes(name, root=SYS_ROOT):
    """The size of a disk or partition; sysfs counts 512-byte units."""
    return (_int_attr(os.path.join(class_dir(name, root), "size"), 0) or 0) * 512


def loop_max_part(root=SYS_ROOT):
    """The loop module's max_part parameter (0 when unset or unreadable)."""
    return _int_attr(os.path.join(root, "module", "loop", "parameters", "max_part"), 0) or 0


def devno(name, root=SYS_ROOT):
    """(major, minor) of a block device or partition by kernel name, or None."""
    path = block_dir(name, root)
    if not os.path.isdir(path):
        # partitions live below their disk: /sys/class/block has them all
        path = class_dir(name, root)
    return parse_devno(read_attr(os.path.join(path, "dev")))


def name_by_devno(major, minor, root=SYS_ROOT):
    """Kernel name of the block device with this number, or None."""
    link = os.path.join(root, "dev", "block", "%d:%d" % (major, minor))
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return None


def loop_numbers(root=SYS_ROOT):
    """Numbers of every loop device the kernel has, bound or not, ascending."""
    try:
        names = os.listdir(os.path.join(root, "block"))
    except OSError:
        return []
    return sorted(int(name[4:]) for name in names if name.startswith("loop") and name[4:].isdigit())


def loop_exists(number, root=SYS_ROOT):
    return os.path.isdir(block_dir("loop%d" % number, root))


def loop_is_bound(number, root=SYS_ROOT):
    """A loop device has a loop/ directory exactly while a file is attached."""
    return os.path.isdir(os.path.join(block_dir("loop%d" % number, root), "loop"))


def loop_backing_file(number, root=SYS_ROOT):
    """(path, deleted) of the file attached to loopN, or None when unbound."""
    backing = read_attr(os.path.join(block_dir("loop%d" % number, root), "loop", "backing_file"))
    if backing is None:
        return None
    deleted = backing.endswith(" (deleted)")
    return (backing[:-len(" (deleted)")] if deleted else backing), deleted


def loop_status(number, root=SYS_ROOT):
    """Status of loopN from sysfs as a dict, or None when nothing is attached."""
    base = block_dir("loop%d" % number, root)
    loop = os.path.join(base, "loop")
    backing = loop_backing_file(number, root)
    if backing is None:
        return None
    backing, deleted = backing
    return {
        "name": "loop%d" % number,
        "number": number,
        "devno": parse_devno(read_attr(os.path.join(base, "dev"))),
        "backing_file": backing,
        "backing_file_deleted": deleted,
        "offset": _int_attr(os.path.join(loop, "offset"), 0),
        "sizelimit": _int_attr(os.path.join(loop, "sizelimit"), 0),
        "autoclear": _int_attr(os.path.join(loop, "autoclear"), 0) == 1,
        "partscan": _int_attr(os.path.join(loop, "partscan"), 0) == 1,
        "direct_io": _int_attr(os.path.join(loop, "dio"), 0) == 1,
        "read_only": _int_attr(os.path.join(base, "ro"), 0) == 1,
        "size": _int_attr(os.path.join(base, "size"), 0) * 512,
        "sector_size": _int_attr(os.path.join(base, "queue", "logical_block_size"), 512),
    }


def partitions(name, root=SYS_ROOT):
    """Partitions of a disk: list of (kernel name, partition number), by number."""
    base = block_dir(name, root)
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    found = []
    for entry in entries:
        # Partitions are named after their disk (loop0p1, sda1); reading only
        # those keeps this from opening every attribute of the disk.
        if not entry.startswith(name):
            continue
        number = _int_attr(os.path.join(base, entry, "partition"))
        if number is not None:
            found.append((entry, number))
    return sorted(found, key=lambda item: item[1])


def partition_geometry(disk, part, root=SYS_ROOT):
    """(start, size) in bytes of a partition; sysfs counts 512-byte units."""
    base = os.path.join(block_dir(disk, root), part)
    return _int_attr(os.path.join(base, "start"), 0) * 512, _int_attr(os.path.join(base, "size"), 0) * 512


def holders(name, root=SYS_ROOT, disk=None):
    """Kernel names of the devices stacked on ``name`` (dm maps, md arrays)."""
    base = os.path.join(block_dir(disk, root), name) if disk else block_dir(name, root)
    try:
        return sorted(os.listdir(os.path.join(base, "holders")))
    except OSError:
        return []


def dm_name(name, root=SYS_ROOT):
    """The device-mapper name of dm-N, or None."""
    return read_attr(os.path.join(block_dir(name, root), "dm", "name"))


def dm_uuid(name, root=SYS_ROOT):
    """The device-mapper UUID of dm-N, or None."""
    return read_attr(os.path.join(block_dir(name, root), "dm", "uuid"))


def diskseq(name, root=SYS_ROOT):
    """The disk sequence number (Linux 5.15+) as text, or None."""
    return read_attr(os.path.join(block_dir(name, root), "diskseq"))


def misc_devno(name, root=SYS_ROOT):
    """(major, minor) of a misc character device such as loop-control."""
    return parse_devno(read_attr(os.path.join(root, "class", "misc", name, "dev")))

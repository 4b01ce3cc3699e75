# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount options image_mount is asked for, split and checked once.

``requested_options`` turns ``opts`` and ``read_only`` into the MountOptions
for the kernel and fstab, and says whether the mount (and the loop device under it) must be
read-only: asked for, or by the nature of the filesystem (squashfs, erofs, an
ISO). Words that would make mount(8) or the kernel attach loop devices or bind
mounts themselves are refused, since image_mount does that part itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountopts
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# Words that would make mount(8) or the kernel do what this module does itself.
_MANAGED_WORDS = ("loop", "bind", "rbind", "remount", "move")
_MANAGED_PREFIXES = ("loop=", "offset=", "sizelimit=", "encryption=")


def requested_options(opts, read_only, fstype, optical=False):
    """The MountOptions image_mount mounts with: ``opts`` checked, and "ro" in
    front when the mount must be read-only (asked, or by the filesystem's nature)."""
    words = mountopts.split_options([str(w).strip() for w in opts] if isinstance(opts, (list, tuple)) else opts)
    for word in words:
        key = word.split("=", 1)[0]
        if word in _MANAGED_WORDS or word.startswith(_MANAGED_PREFIXES):
            raise DiskImageError(
                "opts must not contain %r: image_mount attaches loop devices itself" % key,
                hint="Drop it; the partition is chosen with partition, partlabel, partuuid, label, "
                     "uuid or parttype")
    asked = mountopts.MountOptions(words)
    explicit_ro = bool(read_only) or asked.read_only
    if explicit_ro and asked.cleared & mountopts.MS_RDONLY:
        raise DiskImageError("opts say rw, and %s" % ("read_only is true" if read_only else "also ro"),
                             hint="Drop rw from opts, or set read_only: false")
    by_nature = fstype in mountopts.READ_ONLY_FSTYPES or (optical and fstype == "udf")
    if by_nature and asked.cleared & mountopts.MS_RDONLY:
        raise DiskImageError("opts say rw, but %s is read-only by nature" % (
            "this ISO" if optical else fstype), hint="Drop rw from opts")
    if (explicit_ro or by_nature) and not asked.read_only:
        words = ["ro"] + words
    options = mountopts.MountOptions(words)
    options.explicit_ro = explicit_ro
    return options

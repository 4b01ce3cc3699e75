# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount options image_mount is asked for, split and checked once.

``Options`` turns ``opts`` and ``read_only`` into the words for the kernel and
fstab, and says whether the mount (and the loop device under it) must be
read-only: asked for, or by the nature of the filesystem (squashfs, erofs, an
ISO). Words that would make mount(8) or the kernel attach loop devices or bind
mounts themselves are refused, since image_mount does that part itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

# The kernel never writes these, and refuses rw for most of them.
READ_ONLY_FSTYPES = mountsys.READ_ONLY_FSTYPES
# Words that would make mount(8) or the kernel do what this module does itself.
_MANAGED_WORDS = ("loop", "bind", "rbind", "remount", "move")
_MANAGED_PREFIXES = ("loop=", "offset=", "sizelimit=", "encryption=")


class Options(object):
    """What the user asked for, split once: the words for the kernel and fstab,
    and whether the mount (and the loop device under it) must be read-only."""

    def __init__(self, opts, read_only, fstype, optical=False):
        if isinstance(opts, (list, tuple)):
            words = [str(w).strip() for w in opts if str(w).strip()]
        else:
            words = mountsys.split_options(opts or "")
        for word in words:
            key = word.split("=", 1)[0]
            if word in _MANAGED_WORDS or word.startswith(_MANAGED_PREFIXES):
                raise DiskImageError(
                    "opts must not contain %r: image_mount attaches loop devices itself" % key,
                    hint="Drop it; the partition is chosen with partition, partlabel, partuuid, label, "
                         "uuid or parttype")
        parsed = mountsys.parse_options(words)
        self.explicit_ro = bool(read_only) or bool(parsed.flags & mountsys.MS_RDONLY)
        if self.explicit_ro and parsed.cleared & mountsys.MS_RDONLY:
            raise DiskImageError("opts say rw, and %s" % ("read_only is true" if read_only else "also ro"),
                                 hint="Drop rw from opts, or set read_only: false")
        self.by_nature = fstype in READ_ONLY_FSTYPES or (optical and fstype == "udf")
        if self.by_nature and parsed.cleared & mountsys.MS_RDONLY:
            raise DiskImageError("opts say rw, but %s is read-only by nature" % (
                "this ISO" if optical else fstype), hint="Drop rw from opts")
        self.read_only = self.explicit_ro or self.by_nature
        if self.read_only and not parsed.flags & mountsys.MS_RDONLY:
            words = ["ro"] + words
        self.words = words
        self.parsed = mountsys.parse_options(words)

    @property
    def string(self):
        return ",".join(self.words)

    def kernel_words(self):
        """The words mount(2) acts on (without fstab-only ones like noauto)."""
        userspace = set(self.parsed.userspace)
        return [w for w in self.words if w not in userspace]

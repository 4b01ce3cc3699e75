# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How each filesystem is made, and made the same way twice.

For each type: the command that makes it with a given label and UUID, whether it can
take the content from a directory itself, and what keeps the bytes the same from
one build to the next (or why nothing can, with the tools of today's distributions).

- ext2/3/4: mke2fs -U and -E hash_seed=, E2FSPROGS_FAKE_TIME for every time it
  writes, -d for the content; it copies each file's ctime too, which is the time of
  the build, so debugfs sets those afterwards (set_inode_field ... ctime).
- vfat: mkfs.vfat --invariant (fixed boot code, times and serial) then -i for the
  serial; content with mcopy, which stamps creation and access dates with the
  current time: run under faketime when it is installed.
- swap: mkswap -U; nothing else varies.
- xfs, btrfs and the rest: the UUID is set (mkfs.xfs -m uuid=, mkfs.btrfs -U), but
  the tools of Debian 12 (xfsprogs 6.1, btrfs-progs 6.2) write random inode
  generations, other random identifiers and the current time; such an image differs
  from build to build and a warning says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.diskimage.loop.plugins.module_utils._reproducible import ids

EXT = ("ext2", "ext3", "ext4")
ALIASES = {"fat": "vfat", "msdos": "vfat", "fat32": "vfat"}
LABEL_OPTION = {"vfat": "-n", "f2fs": "-l"}
FORCE_OPTION = {"ext2": ["-F"], "ext3": ["-F"], "ext4": ["-F"], "xfs": ["-f"], "btrfs": ["-f"], "f2fs": ["-f"],
                "swap": ["-f"]}
REPRODUCIBLE = EXT + ("vfat", "swap")


class Recipe(object):
    """argv and environment of the mkfs call, the content step, and a warning if any."""

    def __init__(self, argv, env=None, content=None, warning=None):
        self.argv = argv
        self.env = env or {}
        self.content = content  # 'mkfs' (given to mkfs), 'mcopy', 'mount' or None
        self.warning = warning


def recipe(fs, fs_uuid=None, epoch=None, has_content=False, hidden_sectors=None):
    """The Recipe for one filesystem entry (fstype, device, label, mkfs_options, mkfs_program).

    ``hidden_sectors``: for vfat, the partition's first sector, which mkfs.vfat
    reads from the device itself when it is a partition device, but not when
    it is a loop device over the partition alone."""
    fstype = ALIASES.get(fs["fstype"], fs["fstype"])
    program = fs.get("mkfs_program") or ("mkswap" if fstype == "swap" else "mkfs." + fstype)
    label = fs.get("label")
    argv = [program] + FORCE_OPTION.get(fstype, [])
    env = {}
    content = None
    warning = None
    if fstype in EXT:
        argv = [fs.get("mkfs_program") or "mke2fs", "-t", fstype] + FORCE_OPTION[fstype] + ["-q"]
        if fs_uuid:
            argv += ["-U", fs_uuid, "-E", "hash_seed=" + ids.hash_seed(fs_uuid)]
        if epoch is not None:
            env["E2FSPROGS_FAKE_TIME"] = str(epoch)
        if has_content:
            content = "mkfs"
    elif fstype == "vfat":
        if fs_uuid:
            argv += ["--invariant", "-i", ids.volume_id(fs_uuid)]
        if hidden_sectors is not None:
            argv += ["-h", str(hidden_sectors)]
        if has_content:
            content = "mcopy"
    elif fstype == "swap":
        if fs_uuid:
            argv += ["-U", fs_uuid]
    elif fstype == "xfs":
        if fs_uuid:
            argv += ["-m", "uuid=" + fs_uuid]
        content = "mount" if has_content else None
    elif fstype == "btrfs":
        if fs_uuid:
            argv += ["-U", fs_uuid]
        content = "mkfs" if has_content else None
    else:
        content = "mount" if has_content else None
    if epoch is not None and fstype not in REPRODUCIBLE:
        warning = ("%s on %s is not reproducible: %s writes random identifiers and the time of the build "
                   "that no option sets; the image will differ from build to build"
                   % (fstype, fs["device"], program))
    if label is not None:
        argv += [LABEL_OPTION.get(fstype, "-L"), label]
    if content == "mkfs":
        argv += ["-d" if fstype in EXT else "--rootdir", "@CONTENT@"]
    argv += list(fs.get("mkfs_options") or []) + [fs["device"]]
    return Recipe(argv, env, content, warning)


def debugfs_ctime_commands(top, epoch, walk):
    """debugfs requests that set the ctime of every path below top to epoch."""
    lines = []
    for rel in walk(top):
        if '"' in rel or "\n" in rel:
            continue  # debugfs cannot quote these; their ctime stays the build's
        lines.append('sif "/%s" ctime @%d\n' % (rel, epoch))
    return "".join(lines)

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A mounted image tree made fit to chroot into: /proc, /sys, /dev (with
/dev/pts), a /run tmpfs, the host's resolver, and a policy-rc.d that stops
package scripts from starting services.

Meant for a private mount namespace: every mount here vanishes with it. Files
are changed in the image only where a mount cannot do the job (a missing
resolv.conf or policy-rc.d needs a file to exist); such files carry MARKER, are
removed at teardown, and a leftover one (from a killed run) is recognised and
removed by the next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.diskimage.loop.plugins.module_utils._kernel import mountsys
from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError
from ansible_collections.diskimage.loop.plugins.module_utils._tree import paths

MARKER = b"diskimage.loop.image: temporary"
POLICY_RC_D = "/usr/sbin/policy-rc.d"
RESOLV_CONF = "/etc/resolv.conf"
# Exit status 101: "action forbidden by policy" (Debian policy, invoke-rc.d).
POLICY_SCRIPT = b"#!/bin/sh\n# " + MARKER + b": no services start while the image is prepared\nexit 101\n"
STAGE = "/run/.diskimage-loop"  # inside the tree's /run tmpfs


def _inside(root, path):
    return paths.resolve_in(root.rstrip("/"), path)


def _is_ours(path):
    try:
        with open(path, "rb") as handle:
            return MARKER in handle.read(4096)
    except (IOError, OSError):
        return False


class WorkRoot(object):
    """The kernel trees and guards in the tree at ``root``; undo() takes them away."""

    def __init__(self, root, writable=True):
        self.root = root.rstrip("/")
        self.writable = writable
        self.mounts = []   # host paths, in mounting order
        self.created = []  # files created in the image, removed by undo()
        self.done = []

    def _mount(self, source, path, fstype=None, flags=0, data=None):
        target = _inside(self.root, path)
        if not os.path.isdir(target):
            if not self.writable:
                raise DiskImageError("%s does not exist in the read-only image" % path,
                                     hint="Mount the image writable, or create %s in it" % path)
            os.makedirs(target, 0o755)
        mountsys.mount(source, target, fstype, flags, data)
        self.mounts.append(target)

    def kernel_trees(self):
        nosuid_nodev_noexec = mountsys.MS_NOSUID | mountsys.MS_NODEV | mountsys.MS_NOEXEC
        self._mount("proc", "/proc", "proc", nosuid_nodev_noexec)
        # Recursive binds of the host's /sys and /dev: sysfs cannot always be
        # mounted afresh, and /dev brings its /dev/pts, /dev/shm and /dev/mqueue.
        self._mount("/sys", "/sys", None, mountsys.MS_BIND | mountsys.MS_REC)
        self._mount("/dev", "/dev", None, mountsys.MS_BIND | mountsys.MS_REC)
        self._mount("tmpfs", "/run", "tmpfs", mountsys.MS_NOSUID | mountsys.MS_NODEV, "mode=0755")
        os.makedirs(_inside(self.root, STAGE), 0o700)
        if not os.path.isdir(_inside(self.root, "/run/lock")):
            os.mkdir(_inside(self.root, "/run/lock"), 0o1777)
        self.done.append("mounted /proc, /sys, /dev and a /run tmpfs")

    def _stage(self, name, content, mode):
        path = os.path.join(_inside(self.root, STAGE), name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        return path

    def _cover(self, path, content, mode):
        """Make ``path`` in the image read as ``content`` for the duration: a
        bind mount over the image's own file, or a marked file where there is none."""
        # Resolved in the tree: an image's absolute link must not lead a write to the host.
        target = paths.parent_in(self.root, path)
        staged = self._stage(os.path.basename(path), content, mode)
        if os.path.islink(target):
            link = os.readlink(target)
            real = os.path.normpath(os.path.join(os.path.dirname(path), link)) if not link.startswith("/") else link
            resolved = _inside(self.root, path)
            if real.startswith("/run/") and not os.path.lexists(resolved):
                # A link into /run (systemd-resolved's stub): the fresh tmpfs holds the target.
                os.makedirs(os.path.dirname(resolved), 0o755, exist_ok=True)
                os.rename(staged, resolved)
                return "wrote %s (the target of %s) in the /run tmpfs" % (real, path)
            if not os.path.exists(resolved):
                return "left %s alone: a link to %s, outside /run" % (path, link)
            target = resolved
        if os.path.exists(target) and not _is_ours(target):
            mountsys.mount(staged, target, None, mountsys.MS_BIND)
            self.mounts.append(target)
            return "covered %s for the duration" % path
        if not self.writable:
            return "left %s alone: the image is read-only" % path
        if not os.path.isdir(os.path.dirname(target)):
            return "left %s alone: %s is missing in the image" % (path, os.path.dirname(path))
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        self.created.append(target)
        return "wrote %s for the duration" % path

    def resolver(self, host_resolv="/etc/resolv.conf"):
        try:
            with open(host_resolv, "rb") as handle:
                content = handle.read()
        except (IOError, OSError):
            return
        content = b"# " + MARKER + b": the host's resolver for the duration\n" + content
        self.done.append(self._cover(RESOLV_CONF, content, 0o644))

    def service_guard(self):
        self.done.append(self._cover(POLICY_RC_D, POLICY_SCRIPT, 0o755))

    def undo(self):
        """Remove the files made in the image, then unmount newest first.
        Returns (done, problems)."""
        done, problems = [], []
        for target in reversed(self.created):
            try:
                if _is_ours(target):
                    os.unlink(target)
                    done.append("removed %s" % target[len(self.root):])
            except OSError as exc:
                problems.append("could not remove %s: %s" % (target[len(self.root):], exc))
        self.created = []
        for target in reversed(self.mounts):
            try:
                mountsys.umount2(target, mountsys.MNT_DETACH)
            except DiskImageError as exc:
                problems.append("could not unmount %s: %s" % (target[len(self.root):] or "/", exc))
        if self.mounts:
            done.append("unmounted the working root")
        self.mounts = []
        return done, problems

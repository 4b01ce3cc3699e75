# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The C library, for the system calls Python has no wrapper for (mount,
umount2, unshare, setns, prctl, the new mount API through syscall)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util


def load():
    """A new handle on libc that keeps errno for ctypes.get_errno(). Each
    user keeps its own (and sets the prototypes it needs on it)."""
    name = ctypes.util.find_library("c")
    # CDLL(None) is the running program, which links libc on glibc and musl.
    return ctypes.CDLL(name, use_errno=True) if name else ctypes.CDLL(None, use_errno=True)

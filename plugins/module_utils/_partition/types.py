# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Partition types: MBR ids and GPT type GUIDs, and the friendly names for them.

A type is given as an alias ('linux', 'esp', 'root-x86-64'...), an MBR id
(0x83, '83', '0x83') or a GPT GUID. ``resolve_type`` turns any of these into
the form a label stores: '0x83' (two lowercase hex digits) for dos, the
lowercase GUID for gpt. ``type_alias`` goes back to the friendly name.

'root' and 'usr' (Discoverable Partitions) mean the root/usr type of an
architecture; without an explicit suffix ('root-arm64') the managed host's
own architecture is used, as systemd-repart does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import platform
import re
import uuid

from ansible_collections.diskimage.loop.plugins.module_utils.errors import DiskImageError

LABELS = ("dos", "gpt")

DOS_EMPTY = 0x00
DOS_PROTECTIVE = 0xEE
DOS_EXTENDED_TYPES = frozenset((0x05, 0x0F, 0x85))

# alias -> MBR id. The first alias listed for an id is the one type_alias returns.
_DOS = (
    ("linux", 0x83),
    ("swap", 0x82),
    ("extended", 0x05),
    ("extended-lba", 0x0F),
    ("linux-extended", 0x85),
    ("esp", 0xEF),
    ("fat32", 0x0C),
    ("fat32-chs", 0x0B),
    ("fat16", 0x0E),
    ("fat16-chs", 0x06),
    ("fat12", 0x01),
    ("ntfs", 0x07),
    ("lvm", 0x8E),
    ("raid", 0xFD),
    ("xbootldr", 0xEA),
    ("protective", 0xEE),
)

# alias -> GPT type GUID. The first alias listed for a GUID is the one type_alias returns.
_GPT = (
    ("linux", "0fc63daf-8483-4772-8e79-3d69d8477de4"),
    ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172"),
    ("bios-boot", "21686148-6449-6e6f-744e-656564454649"),
    ("lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928"),
    ("raid", "a19d880f-05fc-4d3b-a006-743f0f84911e"),
    ("basic-data", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"),
    ("home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"),
    ("srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"),
    ("var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"),
    ("tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1"),
    ("linux-reserved", "8da63339-0007-60c0-c436-083ac8230908"),
    ("root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("usr-x86-64", "8484680c-9521-48c6-9c11-b0720656f69e"),
    ("root-x86", "44479540-f297-41b2-9af7-d131d5f0458a"),
    ("usr-x86", "75250d76-8cc6-458e-bd66-bd47cc81a812"),
    ("root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("usr-arm64", "b0e01050-ee5f-4390-949a-9101b17104e9"),
    ("root-arm", "69dad710-2ce4-4e3c-b16c-21a1d49abed3"),
    ("usr-arm", "7d0359a3-02b3-4f0a-865c-654403e70625"),
    ("root-riscv64", "72ec70a6-cf74-40e6-bd49-4bda08e8f224"),
    ("usr-riscv64", "beaec34b-8442-439b-a40b-984381ed097d"),
    ("root-ppc64le", "c31c45e6-3f39-412e-80fb-4809c4980599"),
    ("usr-ppc64le", "15bb03af-77e7-4d4a-b12b-c0d084f7491c"),
    ("root-s390x", "5eead9a9-fe09-4a1e-a1d7-520d00531306"),
    ("usr-s390x", "8a4f5770-50aa-4ed3-874a-99b710db6fea"),
    ("root-loongarch64", "77055800-792c-4f94-b39a-98c91b762bb6"),
    ("usr-loongarch64", "e611c702-575c-4cbe-9a46-434fa0bf7e3f"),
    ("root-verity-x86-64", "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"),
    ("usr-verity-x86-64", "77ff5f63-e7b6-4633-acf4-1565b864c0e6"),
    ("root-verity-arm64", "df3300ce-d69f-4c92-978c-9bfb0f38d820"),
    ("usr-verity-arm64", "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e"),
)

# Other spellings users reach for; they resolve but are never returned.
_SYNONYMS = {
    "linux-data": "linux",
    "linux-generic": "linux",
    "efi": "esp",
    "uefi": "esp",
    "extended-boot": "xbootldr",
    "bios": "bios-boot",
    "bios-grub": "bios-boot",
    "msdata": "basic-data",
    "var-tmp": "tmp",
    "root-amd64": "root-x86-64",
    "usr-amd64": "usr-x86-64",
    "root-aarch64": "root-arm64",
    "usr-aarch64": "usr-arm64",
    "root-i386": "root-x86",
    "usr-i386": "usr-x86",
}

# GPT has no dedicated FAT/NTFS types: those live in Microsoft basic data.
_GPT_FROM_DOS_ONLY = {"fat32": "basic-data", "fat32-chs": "basic-data", "fat16": "basic-data",
                      "fat16-chs": "basic-data", "fat12": "basic-data", "ntfs": "basic-data"}

# platform.machine() -> Discoverable Partitions architecture suffix.
_ARCHES = {
    "x86_64": "x86-64", "amd64": "x86-64",
    "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86",
    "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv7": "arm", "armv6l": "arm",
    "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x", "loongarch64": "loongarch64",
}

DOS_BY_ALIAS = dict(_DOS)
GPT_BY_ALIAS = dict(_GPT)
_DOS_ALIAS = {}
for _alias, _value in _DOS:
    _DOS_ALIAS.setdefault(_value, _alias)
_GPT_ALIAS = {}
for _alias, _value in _GPT:
    _GPT_ALIAS.setdefault(_value, _alias)

_HEX_RE = re.compile(r"^(?:0x)?([0-9a-f]{1,2})$", re.IGNORECASE)
_GUID_RE = re.compile(r"^\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?$", re.IGNORECASE)


class PartitionTypeError(DiskImageError):
    """A partition type that cannot be used on the requested label."""


def normalize_guid(value, what="GUID"):
    """Return ``value`` as a lowercase 8-4-4-4-12 GUID string."""
    text = str(value).strip()
    if not _GUID_RE.match(text):
        raise DiskImageError("%s %r is not a GUID" % (what, value),
                             hint="Write it as 8-4-4-4-12 hex digits, e.g. 0fc63daf-8483-4772-8e79-3d69d8477de4")
    return str(uuid.UUID(text.strip("{}")))


def is_guid(value):
    return isinstance(value, str) and bool(_GUID_RE.match(value.strip()))


def native_arch(machine=None):
    """The Discoverable Partitions suffix for ``machine`` (default: this host), or None."""
    return _ARCHES.get((machine or platform.machine() or "").lower())


def format_dos_type(code):
    return "0x%02x" % code


def _dos_code(value):
    """An MBR id from an int or a hex string, or None when ``value`` is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 0xFF else None
    match = _HEX_RE.match(str(value).strip())
    return int(match.group(1), 16) if match else None


def _canonical_alias(name, arch):
    name = _SYNONYMS.get(name, name)
    if name in ("root", "usr", "root-verity", "usr-verity"):
        machine = str(arch if arch else platform.machine()).strip().lower()
        suffix = _ARCHES.get(machine) or (machine if machine in _ARCHES.values() else None)
        if not suffix or "%s-%s" % (name, suffix) not in GPT_BY_ALIAS:
            raise PartitionTypeError(
                "partition type %r needs an architecture; %r (%s) has no %s type here"
                % (name, machine, "given" if arch else "this host's", name),
                hint="Name it explicitly, e.g. %s-x86-64 or %s-arm64" % (name, name))
        name = "%s-%s" % (name, suffix)
    return name


def _known_aliases(label):
    table = DOS_BY_ALIAS if label == "dos" else GPT_BY_ALIAS
    return ", ".join(sorted(table))


def resolve_type(value, label, arch=None):
    """Resolve an alias, MBR id or GUID into ``label``'s type string.

    dos returns '0x83'-style strings, gpt lowercase GUIDs. An MBR id or GUID
    given for the other label is translated when a common alias exists
    ('0x82' on gpt is swap). ``arch`` picks the variant of 'root'/'usr'
    (default: this host). Raises PartitionTypeError when there is no match.
    """
    if label not in LABELS:
        raise PartitionTypeError("unknown partition table label %r" % (label,), hint="Use dos or gpt")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PartitionTypeError("partition type is empty", hint="Give an alias such as linux, a hex id or a GUID")
    if isinstance(value, bool):
        raise PartitionTypeError("partition type %r is not a type" % (value,))
    if isinstance(value, str) and is_guid(value):
        guid = normalize_guid(value)
        if label == "gpt":
            return guid
        alias = _GPT_ALIAS.get(guid)
        if alias in DOS_BY_ALIAS:
            return format_dos_type(DOS_BY_ALIAS[alias])
        raise PartitionTypeError("GPT type %s has no MBR equivalent" % guid,
                                 hint="Use an MBR id such as 0x83, or the alias linux")
    code = _dos_code(value)
    if code is not None:
        if label == "dos":
            return format_dos_type(code)
        alias = _DOS_ALIAS.get(code)
        alias = _GPT_FROM_DOS_ONLY.get(alias, alias)
        if alias in GPT_BY_ALIAS:
            return GPT_BY_ALIAS[alias]
        raise PartitionTypeError("MBR id 0x%02x has no GPT equivalent" % code,
                                 hint="Use a GPT type GUID or one of: %s" % _known_aliases("gpt"))
    if not isinstance(value, str):
        raise PartitionTypeError("partition type %r is not an alias, MBR id or GUID" % (value,))
    name = _canonical_alias(value.strip().lower().replace("_", "-"), arch)
    if label == "dos":
        if name in DOS_BY_ALIAS:
            return format_dos_type(DOS_BY_ALIAS[name])
        if name in GPT_BY_ALIAS:
            raise PartitionTypeError("partition type %r exists only on gpt" % value,
                                     hint="On dos use linux (0x83) or another MBR id")
    else:
        if name in GPT_BY_ALIAS:
            return GPT_BY_ALIAS[name]
        if name in _GPT_FROM_DOS_ONLY:
            return GPT_BY_ALIAS[_GPT_FROM_DOS_ONLY[name]]
        if name in DOS_BY_ALIAS:
            raise PartitionTypeError("partition type %r exists only on dos" % value,
                                     hint="GPT needs no extended partition: it holds up to 128 partitions")
    raise PartitionTypeError("unknown partition type %r for a %s label" % (value, label),
                             hint="Use a hex id, a GUID or one of: %s" % _known_aliases(label))


def type_alias(type_value, label):
    """The friendly name of a stored type ('0x83' or a GUID), or None."""
    if label == "dos":
        code = _dos_code(type_value)
        return _DOS_ALIAS.get(code) if code is not None else None
    if label == "gpt" and is_guid(type_value):
        return _GPT_ALIAS.get(normalize_guid(type_value))
    return None


def is_extended(type_value):
    """True for the MBR ids that start an EBR chain (0x05, 0x0f, 0x85)."""
    code = _dos_code(type_value)
    return code in DOS_EXTENDED_TYPES

# -*- coding: utf-8 -*-
# Copyright: contributors to the diskimage.loop collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The block map of an image in the bmap XML format 2.0 that `bmaptool copy` reads.

Format facts: the ranges are inclusive block numbers ("3-5", or "7" for one block),
each with the checksum of its bytes (the last block may be short); BmapFileChecksum
is the checksum of the whole file written with that field as ASCII zeros.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

BMAP_VERSION = "2.0"
_PLACEHOLDER = "@CHECKSUM@"


def _range(run):
    text = "%d" % run.first if run.first == run.last else "%d-%d" % (run.first, run.last)
    return '        <Range chksum="%s"> %s </Range>\n' % (run.digest, text)


def render(scan_result):
    """The bmap file of a scan.Scan as text, its own checksum filled in."""
    algorithm = scan_result.algorithm
    length = hashlib.new(algorithm).digest_size * 2
    head = (
        '<?xml version="1.0" ?>\n'
        '<bmap version="%s">\n'
        "    <ImageSize> %d </ImageSize>\n"
        "    <BlockSize> %d </BlockSize>\n"
        "    <BlocksCount> %d </BlocksCount>\n"
        "    <MappedBlocksCount> %d </MappedBlocksCount>\n"
        "    <ChecksumType> %s </ChecksumType>\n"
        "    <BmapFileChecksum> %s </BmapFileChecksum>\n"
        "    <BlockMap>\n"
    ) % (BMAP_VERSION, scan_result.size, scan_result.block_size, scan_result.blocks,
         scan_result.mapped_blocks, algorithm, _PLACEHOLDER)
    text = head + "".join(_range(run) for run in scan_result.runs) + "    </BlockMap>\n</bmap>\n"
    digest = hashlib.new(algorithm, text.replace(_PLACEHOLDER, "0" * length).encode("ascii")).hexdigest()
    return text.replace(_PLACEHOLDER, digest)

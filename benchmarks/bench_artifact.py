# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compressing a mostly empty 4 GiB image: image_artifact's core vs zstd on the raw file.

The image is what a fresh build looks like: a 4 GiB sparse file holding an ext4
filesystem (metadata spread over its block groups) and 64 MiB of file data. The
core finds the holes with SEEK_DATA/SEEK_HOLE and writes ready-made zero streams
for them; zstd reads all 4 GiB. The core's run also yields the image's sha256 and
the bmap ranges, which the tool row does not compute; a third row adds
`sha256sum` to the tool for the same outputs.
"""

import os
import subprocess

from common import Group, Row, interleaved, run
# pylint: disable=wrong-import-position
from ansible_collections.diskimage.loop.plugins.module_utils._artifact import compress, extents  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20


def make_image(path):
    with open(path, "wb") as handle:
        handle.truncate(4 * GIB)
    run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,nodiscard", path])
    # file data: compressible text at 1 GiB and random bytes at 2 GiB, 32 MiB each
    text = b"".join(b"line %08d of a log file in the image\n" % n for n in range(32 * MIB // 38 + 1))[:32 * MIB]
    with open(path, "r+b") as handle:
        handle.seek(GIB)
        handle.write(text)
        handle.seek(2 * GIB)
        handle.write(os.urandom(32 * MIB))
    return path


def core(image, out, digest=True):
    scan = extents.scan(image, image_digest=digest)
    with open(out, "wb") as handle:
        compress.write_compressed(image, extents.segments(scan), compress.backend("zstd", 3), handle, scan.block_size)
    return out


def tool(image, out, with_sum=False):
    with open(out, "wb") as handle:
        subprocess.run(["zstd", "-q", "-c", "-3", image], stdout=handle, check=True)
    if with_sum:
        run(["sha256sum", image])
    return out


def same_content(image):
    def verify(out):
        proc = subprocess.run("zstd -dc '%s' | cmp - '%s'" % (out, image), shell=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("%s does not decompress to the image" % out)
    return verify


def run_all(workdir, quick):
    image = make_image(os.path.join(workdir, "empty4g.img"))
    ours, ours_sum, theirs, theirs_sum = (os.path.join(workdir, name)
                                          for name in ("core.zst", "core-sum.zst", "tool.zst", "tool-sum.zst"))
    samples = interleaved([("core", lambda: core(image, ours, digest=False)),
                           ("core+sum", lambda: core(image, ours_sum)),
                           ("tool", lambda: tool(image, theirs)),
                           ("tool+sum", lambda: tool(image, theirs_sum, with_sum=True))],
                          2 if quick else 5)
    same_content(image)(ours)
    sizes = dict((name, os.path.getsize(path)) for name, path in (("core", ours), ("tool", theirs)))
    mapped = extents.scan(image).mapped_blocks * extents.BLOCK_SIZE
    group = Group("5. Compress a mostly empty 4 GiB image (ext4 + 64 MiB of data, %d MiB in non-zero blocks) to .zst"
                  % (mapped // MIB),
                  ["core: extents.scan() (SEEK_DATA/SEEK_HOLE, bmap ranges) + compress.write_compressed(zstd -3);",
                   "      core+sum: the same with the image's sha256 (the zeros of the holes hashed from memory)",
                   "tool: zstd -3 -c IMAGE > IMAGE.zst (reads the holes); tool+sum: the same, then sha256sum IMAGE",
                   "output size: core %.2f MiB, tool %.2f MiB" % (sizes["core"] / MIB, sizes["tool"] / MIB)])
    group.pair(Row("compress 4 GiB sparse image (core)", samples["core"]),
               Row("compress 4 GiB sparse image (zstd -3)", samples["tool"]))
    group.pair(Row("compress + sha256 (core)", samples["core+sum"]),
               Row("compress + sha256 (zstd -3; sha256sum)", samples["tool+sum"]))
    return [group]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of the benchmarks: timing, the result table, the seed image,
commands, and the clean-up of everything a benchmark attached or mounted.

Every comparison runs its two (or more) contenders in alternating rounds, so
that a change in machine load during the run hits all of them alike; each
contender is timed per repetition and reported by its median.
"""

import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.diskimage.loop.plugins.module_utils._kernel import blkpg, sysfs  # noqa: E402
from ansible_collections.diskimage.loop.plugins.module_utils._loop import loopdev, ownership  # noqa: E402

MIB = 1 << 20

# The seed's worked example, as the VM tier and the image_build role test use it:
# three primaries, an extended partition (4), and logical partitions 5-8 in it.
SEED_IMAGE_SIZE = 80 * MIB
with open(os.path.join(ROOT, "tests", "data", "seed.sfdisk")) as _handle:
    SEED_SFDISK = _handle.read()
SEED_PARTITIONS = 8
SEED_DATA_PARTITIONS = (1, 2, 3, 5, 6, 7, 8)


# ---------------------------------------------------------------- commands

def run(cmd, check=True, **kwargs):
    """Run a command, output captured; raise with its stderr when it fails."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s%s" % (
            " ".join(cmd), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def make_seed_image(path):
    """A sparse image with the seed's partition table (no filesystems)."""
    with open(path, "wb") as handle:
        handle.truncate(SEED_IMAGE_SIZE)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path], input=SEED_SFDISK)
    return path


def kernel_partition_numbers(device):
    """Partition numbers the kernel has for /dev/loopN (from sysfs)."""
    return sorted(number for _name, number in sysfs.partitions(os.path.basename(device)))


# ---------------------------------------------------------------- timing

class Row(object):
    """One line of the table: a contender's samples (seconds), or why it has none.

    ``baseline`` is the Row it is compared with (ratio = baseline median / own
    median, so above 1 means faster than the baseline); a baseline shows 1.00x.
    """

    def __init__(self, label, samples=None, baseline=None, skipped=None, note=""):
        self.label = label
        self.samples = list(samples or [])
        self.baseline = baseline
        self.skipped = skipped
        self.note = note
        self.is_baseline = False

    @property
    def median(self):
        return statistics.median(self.samples)

    @property
    def spread(self):
        """Half the interquartile range, relative to the median."""
        if len(self.samples) < 4:
            return (max(self.samples) - min(self.samples)) / 2 / self.median
        quartiles = statistics.quantiles(self.samples, n=4)
        return (quartiles[2] - quartiles[0]) / 2 / self.median

    def ratio(self):
        if self.baseline is None or self.baseline.skipped or not self.baseline.samples:
            return None
        return self.baseline.median / self.median

    def to_dict(self):
        return {"label": self.label, "samples": self.samples, "skipped": self.skipped, "note": self.note}


class Group(object):
    """Rows measured together, with a title and lines that say what is compared."""

    def __init__(self, title, notes=(), rows=()):
        self.title = title
        self.notes = list(notes)
        self.rows = list(rows)

    def pair(self, ours, theirs):
        """Add a contender and its baseline; returns both rows."""
        ours.baseline = theirs
        theirs.is_baseline = True
        self.rows += [ours, theirs]
        return ours, theirs

    def to_dict(self):
        rows = []
        for row in self.rows:
            entry = row.to_dict()
            entry["baseline"] = self.rows.index(row.baseline) if row.baseline in self.rows else None
            entry["is_baseline"] = row.is_baseline
            rows.append(entry)
        return {"title": self.title, "notes": self.notes, "rows": rows}

    @classmethod
    def from_dict(cls, data):
        group = cls(data["title"], data["notes"])
        group.rows = [Row(r["label"], r["samples"], skipped=r["skipped"], note=r["note"]) for r in data["rows"]]
        for row, entry in zip(group.rows, data["rows"]):
            row.is_baseline = entry["is_baseline"]
            if entry["baseline"] is not None:
                row.baseline = group.rows[entry["baseline"]]
        return group


def skipped_group(title, notes, labels, reason):
    """A group whose rows could not be measured: each says why."""
    group = Group(title, notes)
    ours, theirs = labels
    group.pair(Row(ours, skipped=reason), Row(theirs, skipped=reason))
    return group


def interleaved(contenders, rounds, warmup=1):
    """Time each contender ``rounds`` times, in alternating order.

    ``contenders`` is a list of (label, action) or (label, action, prepare,
    verify): ``prepare()`` runs before each timed ``action()`` and
    ``verify(result)`` after it, both untimed. The order rotates every round
    so that no contender always runs first. Returns {label: [seconds]}.
    """
    samples = dict((entry[0], []) for entry in contenders)
    for number in range(warmup + rounds):
        shift = number % len(contenders)
        for entry in contenders[shift:] + contenders[:shift]:
            label, action = entry[0], entry[1]
            prepare = entry[2] if len(entry) > 2 else None
            verify = entry[3] if len(entry) > 3 else None
            if prepare is not None:
                prepare()
            start = time.perf_counter()
            result = action()
            elapsed = time.perf_counter() - start
            if verify is not None:
                try:
                    verify(result)
                except Exception as exc:
                    raise RuntimeError("%s (round %d): %s" % (label, number, exc)) from exc
            if number >= warmup:
                samples[label].append(elapsed)
    return samples


def process_start_cost(rounds=50):
    """Median seconds to start and reap a trivial program (/bin/true)."""
    samples = interleaved([("true", lambda: subprocess.run(["true"], check=True))], rounds)
    return statistics.median(samples["true"])


# ---------------------------------------------------------------- the table

def format_seconds(seconds):
    if seconds >= 1:
        return "%.2f s" % seconds
    if seconds >= 1e-3:
        return "%.2f ms" % (seconds * 1e3)
    return "%.0f us" % (seconds * 1e6)


def format_rate(per_second):
    if per_second >= 100:
        return "%.0f" % per_second
    if per_second >= 1:
        return "%.1f" % per_second
    return "%.3f" % per_second


def format_table(groups):
    width = 62
    lines = ["%-*s %4s %10s %11s %6s %8s" % (width, "operation", "n", "median", "per second", "+/-", "ratio"),
             "-" * (width + 45)]
    for group in groups:
        lines.append("")
        lines.append(group.title)
        for note in group.notes:
            lines.append("  | " + note)
        for row in group.rows:
            label = "  " + row.label
            if row.skipped:
                lines.append("%-*s %s" % (width, label, "skipped (%s)" % row.skipped))
                continue
            ratio = row.ratio()
            if row.is_baseline:
                shown = "1.00x"
            elif ratio is None:
                shown = "-"
            else:
                shown = "%.2fx" % ratio
            lines.append("%-*s %4d %10s %11s %5.0f%% %8s" % (
                width, label, len(row.samples), format_seconds(row.median), format_rate(1.0 / row.median),
                100 * row.spread, shown))
            if row.note:
                lines.append("%-*s %s" % (width, "", row.note))
    return "\n".join(lines)


def machine_description():
    """Lines for the header: date, kernel, CPU, memory, load."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = ", %.1f GiB RAM" % (int(line.split()[1]) / 1024.0 / 1024.0)
    except (OSError, ValueError):
        pass
    return [
        "date:    %s" % time.strftime("%Y-%m-%d %H:%M %Z"),
        "kernel:  Linux %s (%s)" % (platform.release(), platform.machine()),
        "machine: %d CPUs (%s)%s" % (os.cpu_count() or 0, cpu, memory),
    ]


def load_average():
    return "%.2f %.2f %.2f" % os.getloadavg()


# ---------------------------------------------------------------- clean-up

def under(path, directory):
    return os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)


def mounts_under(directory):
    """Mount points at or below ``directory`` (deepest last), from mountinfo."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ").replace("\\011", "\t").replace(
                "\\012", "\n").replace("\\134", "\\")
            if point == directory or under(point, directory):
                found.append(point)
    return found


def release_under(directory, remove_maps=None):
    """Unmount, unmap and detach whatever is still backed by files below
    ``directory``, and nothing else. Returns what it had to release: after a
    clean run, nothing. ``remove_maps(device)`` takes device-mapper maps down."""
    released = []
    for point in reversed(mounts_under(directory)):
        run(["umount", "--lazy", point], check=False)
        released.append("mount " + point)
    for current in loopdev.list_attached():
        if not current.backing_file or not under(current.backing_file, directory):
            continue
        if remove_maps is not None:
            released += ["map " + name for name in remove_maps(current.device)]
        if blkpg.kernel_partitions(current.name):
            blkpg.remove_all(current.device)
        loopdev.detach(current.device, force=True)
        ownership.release(current.name)
        released.append("loop device " + current.device)
    return released

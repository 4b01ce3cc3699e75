#!/usr/bin/env bash
# Run the tests marked `vm` inside a QEMU guest that boots a full distribution kernel.
#
# The host kernel may lack device-mapper, iso9660, vfat and the partition-table
# parsers; the packaged Debian kernel has them all as modules. virtme-ng boots that
# kernel on the host's own root filesystem (read-only in the guest), so the guest
# sees this checkout and its venv at the same paths. The one writable directory
# shared with the guest carries the results back: the pytest log, a junit file,
# the guest's kernel log and the exit code, which this script then exits with.
#
# usage: scripts/vm-tests.sh [PYTEST_ARGS...]     (default: tests/vm)
# environment:
#   VM_KERNEL   kernel image to boot (default: the newest /boot/vmlinuz-*)
#   VM_MEMORY   guest memory (default 2G)          VM_CPUS  guest CPUs (default 2)
#   VM_TIMEOUT  seconds before the VM is killed (default 900)
#   VM_KVM      1 to use KVM; default off, since nested KVM is often unusable
#   VM_OUT      results directory (default .cache/vm-tests in the checkout)
#   DISKIMAGE_VM_PLAYBOOKS  1 to run the tests that start ansible-playbook in the guest
#               (minutes each under TCG: Ansible's imports cross 9p)
set -euo pipefail

SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
# shellcheck source=scripts/lib/setup.sh
source "$(dirname "$SCRIPT")/lib/setup.sh"

die() {
  echo "vm-tests: $*" >&2
  exit 1
}

# Inside the guest: load the modules the tests need, then run pytest and leave the
# exit code where the host can read it.
inside() {
  local out=$1
  shift
  [ $# -gt 0 ] || set -- tests/vm
  # unbuffered: the log in the results directory shows how far a slow run got
  export DISKIMAGE_VM_TIER=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
  # Every file the guest reads crosses 9p without a cache, which makes Python
  # imports the slowest part of a run; skipping pytest's scan of every installed
  # package for plugins (none of which these tests use) saves much of it.
  export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
  echo "vm-tests: guest kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime)s"
  # loop is built in or a module depending on the kernel; modprobe -a accepts both.
  # nls_* are the code pages vfat mounts ask for by default.
  modprobe -a loop dm_mod isofs vfat nls_cp437 nls_ascii nls_utf8 \
    || echo "vm-tests: warning: some kernel modules did not load" >&2

  # The guest's /tmp is an overlay whose upper layer lives in guest memory; a fresh
  # tmpfs keeps the images off the host's /tmp entirely.
  local scratch
  scratch=$(mktemp -d /tmp/vm-tier.XXXXXX)
  mount -t tmpfs -o size=1536m,mode=0700 vm-tier "$scratch"
  export TMPDIR=$scratch

  cd "$ROOT"
  local rc
  # The checkout is read-only here: no cache provider, no bytecode files.
  set +e
  "$VENV/bin/python" -m pytest -m vm -p no:cacheprovider --basetemp="$scratch/pytest" \
    --durations=5 --junitxml="$out/junit.xml" "$@" 2>&1 | tee "$out/pytest.log"
  rc=${PIPESTATUS[0]}
  set -e
  # the kernel log says why an ioctl was refused (device-mapper logs its reasons)
  dmesg >"$out/dmesg.txt" 2>&1 || true
  echo "$rc" >"$out/rc"
  return "$rc"
}

newest_kernel() {
  local images=()
  shopt -s nullglob
  images=(/boot/vmlinuz-*)
  shopt -u nullglob
  [ ${#images[@]} -gt 0 ] || return 1
  printf '%s\n' "${images[@]}" | sort -V | tail -n 1
}

outside() {
  local kernel version out rc vng_rc=0 started elapsed
  kernel=${VM_KERNEL:-$(newest_kernel)} \
    || die "no kernel image in /boot: install one (apt-get install linux-image-amd64) or set VM_KERNEL"
  [ -r "$kernel" ] || die "cannot read kernel image $kernel (run as root, or set VM_KERNEL)"
  version=${kernel##*/vmlinuz-}
  [ -d "/lib/modules/$version" ] \
    || die "no modules for $version in /lib/modules: install the matching linux-image package"
  [ -x "$VENV/bin/vng" ] \
    || die "virtme-ng is not in $VENV: run scripts/test.sh once, or pip install -r scripts/requirements.txt"
  command -v qemu-system-x86_64 >/dev/null \
    || die "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"

  out=${VM_OUT:-$CACHE/vm-tests}
  mkdir -p "$out"
  rm -f "$out/rc" "$out/junit.xml" "$out/pytest.log" "$out/dmesg.txt"
  # The guest cannot write the checkout, so the import link the tests need
  # (.cache/collections/...) has to exist before boot.
  collection_path
  # vng starts its helpers (virtme-run) by name from the venv.
  export PATH="$VENV/bin:$PATH"

  local inner
  inner=$(printf '%q ' env "DISKIMAGE_VM_PLAYBOOKS=${DISKIMAGE_VM_PLAYBOOKS:-0}" "$SCRIPT" --inside "$out" "$@")
  local args=(--run "$kernel" --memory "${VM_MEMORY:-2G}" --cpus "${VM_CPUS:-2}"
    --user root --rwdir "$out" --exec "$inner")
  [ "${VM_KVM:-0}" = 1 ] || args+=(--disable-kvm)

  echo "vm-tests: booting $kernel (results in $out)"
  started=$(date +%s)
  # timeout signals its whole process group, so qemu goes down with vng. QEMU
  # reopens /proc/self/fd/1 and 2 for the guest's output: through a pipe that
  # output stays in order even when the caller sends ours to a file.
  set +e
  timeout --kill-after=30 "${VM_TIMEOUT:-900}" "$VENV/bin/vng" "${args[@]}" </dev/null 2>&1 | cat
  vng_rc=${PIPESTATUS[0]}
  set -e
  elapsed=$(($(date +%s) - started))

  if [ ! -s "$out/rc" ]; then
    if [ "$vng_rc" = 124 ]; then
      die "the VM timed out after ${VM_TIMEOUT:-900}s before pytest finished"
    fi
    die "the VM did not run the tests (vng exit $vng_rc after ${elapsed}s): boot failure?"
  fi
  rc=$(cat "$out/rc")
  echo "vm-tests: pytest exit $rc in the guest; ${elapsed}s including boot; log $out/pytest.log"
  exit "$rc"
}

if [ "${1:-}" = --inside ]; then
  shift
  inside "$@"
else
  outside "$@"
fi

# shellcheck shell=bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: Debian packages, a pinned
# venv, and a collection path through which Ansible finds this checkout as
# diskimage.loop. Every step is skipped when it is already done, so running twice is safe.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"

log() { printf '\n==> %s\n' "$*" >&2; }

require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "This needs root: it attaches loop devices and mounts filesystems." >&2
    exit 1
  fi
}

# apt_install PKG...: install the Debian packages that are missing.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for the dpkg lock instead of failing: the second lane of scripts/test.sh
  # installs its packages while the first lane runs, and so may anything else here.
  local lock=(-o DPkg::Lock::Timeout=600)
  # Once per run: the scripts test.sh starts inherit APT_UPDATED.
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get "${lock[@]}" update -qq
    export APT_UPDATED=1
  fi
  # No fsync per unpacked file: a machine that crashes mid-install reinstalls anyway.
  apt-get "${lock[@]}" install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io \
    "${missing[@]}" >/dev/null
}

# make_venv REQUIREMENTS: a venv at .venv with exactly the pinned requirements.
make_venv() {
  local req="$1" stamp
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
    mkdir -p "$CACHE"
    "$VENV/bin/pip" install -q --upgrade pip 2>>"$CACHE/pip.log"
  fi
  stamp="$VENV/.stamp-$(basename "$req")-$(cat "$req" "$ROOT/scripts/requirements-demo.txt" | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    log "installing pinned Python packages from ${req#"$ROOT"/}"
    mkdir -p "$CACHE"
    # --no-compile: byte-compiling the 19,000 files of the ansible package costs a
    # minute of CPU; Python compiles the few modules the tests import on first use.
    (cd "$(dirname "$req")" && "$VENV/bin/pip" install -q --no-compile -r "$(basename "$req")") 2>>"$CACHE/pip.log" ||
      { tail -20 "$CACHE/pip.log" >&2; return 1; }
    touch "$stamp"
  fi
}

# collection_path: ANSIBLE_COLLECTIONS_PATH that resolves diskimage.loop to this checkout.
collection_path() {
  mkdir -p "$CACHE/collections/ansible_collections/diskimage"
  ln -sfn "$ROOT" "$CACHE/collections/ansible_collections/diskimage/loop"
  export ANSIBLE_COLLECTIONS_PATH="$CACHE/collections"
  export PATH="$VENV/bin:$PATH"
}

# shellcheck disable=SC2034  # read by the scripts that source this file
DEMO_PACKAGES=(python3 python3-venv util-linux mount fdisk e2fsprogs)
# shellcheck disable=SC2034
TEST_PACKAGES=("${DEMO_PACKAGES[@]}" kpartx dmsetup dosfstools xfsprogs btrfs-progs
  squashfs-tools erofs-utils xorriso busybox-static shellcheck git rsync
  zstd xz-utils bmap-tools mtools faketime mmdebstrap qemu-user-static qemu-utils)
# The large ones only the molecule stage (docker.io, mmdebstrap) and the vm stage
# (qemu-system-x86, linux-image-amd64, and qemu-utils: qemu-nbd and qemu-img for the
# NBD tests, which the guest runs from this root filesystem) need: scripts/test.sh installs them while the
# first lane of stages already runs. A package the integration targets or the other
# first-lane stages need belongs in TEST_PACKAGES (installed before the lanes start),
# even when it is also listed here: the image_connection target builds its images
# with mmdebstrap and runs arm64 binaries through qemu-user-static, and image_artifact's
# qcow2 copy (unit tests, role_image_build) is written by qemu-img.
# shellcheck disable=SC2034
CONTAINER_VM_PACKAGES=(docker.io mmdebstrap qemu-system-x86 linux-image-amd64 qemu-utils)

# shellcheck shell=bash
# Docker for the molecule scenarios: a daemon that answers, and a locally built base
# image (no registry can be reached, so nothing is ever pulled).
# Source after scripts/lib/setup.sh, which defines ROOT, CACHE, log and apt_install.

# Packages of the base image. python3 runs Ansible's modules; util-linux (losetup) and
# mount are the oracles the scenarios check the modules against; e2fsprogs and fdisk let
# scenarios put filesystems and partition tables into images; dosfstools makes the vfat
# ESP of the customize scenario on hosts whose kernel can mount vfat.
MOLECULE_IMAGE_PACKAGES=(python3 util-linux mount e2fsprogs fdisk dosfstools)
MOLECULE_IMAGE_SUITE=bookworm
MOLECULE_IMAGE_REPO=diskimage-loop-molecule-base
# How long dockerd may take to answer after it was started.
DOCKERD_WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

# docker_up: make sure a Docker daemon answers, starting dockerd in the background
# when none does. The daemon is left running for later runs and other users.
docker_up() {
  # Only when there is no Docker at all: docker.io conflicts with Docker's own packages.
  command -v dockerd >/dev/null || apt_install docker.io
  docker info >/dev/null 2>&1 && return 0

  local lock_fd logfile waited=0 pid
  mkdir -p "$CACHE"
  logfile="$CACHE/dockerd.log"
  # Two runs starting at once must not both start a daemon: the second one would
  # fail on dockerd's pid file. Whoever gets the lock starts it; the other waits.
  mkdir -p /run/lock
  exec {lock_fd}>/run/lock/diskimage-loop-molecule-dockerd.lock
  flock -w "$DOCKERD_WAIT_SECONDS" "$lock_fd" || {
    echo "timed out waiting for another run to start dockerd" >&2
    return 1
  }
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: ${logfile#"$ROOT"/})"
    # setsid: the daemon must outlive this script and its process group.
    setsid dockerd >>"$logfile" 2>&1 </dev/null &
    pid=$!
    until docker info >/dev/null 2>&1; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "dockerd exited; last lines of $logfile:" >&2
        tail -n 20 "$logfile" >&2
        exec {lock_fd}>&-
        return 1
      fi
      if [ "$waited" -ge $((DOCKERD_WAIT_SECONDS * 2)) ]; then
        echo "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s; last lines of $logfile:" >&2
        tail -n 20 "$logfile" >&2
        exec {lock_fd}>&-
        return 1
      fi
      sleep 0.5
      waited=$((waited + 1))
    done
  fi
  exec {lock_fd}>&-
}

# debian_mirrors: the sources mmdebstrap should use, one "deb URI SUITE main" line
# each, taken from the archives this machine's apt already uses; nothing when it
# uses none (mmdebstrap then picks the public Debian mirror itself).
debian_mirrors() {
  local id="" codename="" targets archive security
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    id=$(. /etc/os-release && echo "${ID:-}")
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  fi
  [ "$id" = debian ] && [ -n "$codename" ] || return 0
  # apt's own view of its sources, whichever format they are written in.
  # shellcheck disable=SC2016 # $(...) are apt's format fields, not shell
  targets=$(apt-get indextargets --no-release-info --format '$(RELEASE) $(REPO_URI)' 2>/dev/null) || return 0
  archive=$(awk -v s="$codename" '$1 == s { print $2; exit }' <<<"$targets")
  security=$(awk -v s="$codename-security" '$1 == s { print $2; exit }' <<<"$targets")
  [ -n "$archive" ] || return 0
  echo "deb $archive $MOLECULE_IMAGE_SUITE main"
  echo "deb $archive $MOLECULE_IMAGE_SUITE-updates main"
  [ -z "$security" ] || echo "deb $security $MOLECULE_IMAGE_SUITE-security main"
}

# docker_image: build the scenarios' base image unless it exists; exports its name
# as DISKIMAGE_LOOP_MOLECULE_IMAGE, which the scenarios' platforms read.
docker_image() {
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap
  local tag rootfs buildlog mirrors=() packages
  packages=$(IFS=,; echo "${MOLECULE_IMAGE_PACKAGES[*]}")
  # The tag hashes the package list and this recipe, so changing either rebuilds.
  tag=$(printf '%s\n' "$MOLECULE_IMAGE_SUITE" "$packages" "$(declare -f docker_image)" |
    sha256sum | cut -c1-12)
  export DISKIMAGE_LOOP_MOLECULE_IMAGE="$MOLECULE_IMAGE_REPO:$tag"
  if docker image inspect "$DISKIMAGE_LOOP_MOLECULE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  log "building $DISKIMAGE_LOOP_MOLECULE_IMAGE ($MOLECULE_IMAGE_SUITE: $packages)"
  mapfile -t mirrors < <(debian_mirrors)
  mkdir -p "$CACHE"
  rootfs=$(mktemp "$CACHE/molecule-rootfs.XXXXXX.tar")
  # Documentation, manuals and translations are of no use in a test container. The
  # merged-usr hook lays out /usr itself, so the usrmerge package (and the 50 MB of
  # perl it pulls in) stays out.
  buildlog="$CACHE/molecule-image.log"
  if ! mmdebstrap --variant=minbase --include="$packages" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      "$MOLECULE_IMAGE_SUITE" "$rootfs" "${mirrors[@]}" >"$buildlog" 2>&1; then
    rm -f "$rootfs"
    echo "mmdebstrap failed to build the base image; last lines of $buildlog:" >&2
    tail -n 20 "$buildlog" >&2
    return 1
  fi
  # The scenarios' containers only need to stay up; they run nothing of their own.
  if ! docker import --change 'CMD ["sleep", "infinity"]' \
      --change 'LABEL diskimage-loop-molecule=base' "$rootfs" "$DISKIMAGE_LOOP_MOLECULE_IMAGE" >/dev/null; then
    rm -f "$rootfs"
    echo "docker import of the base image failed" >&2
    return 1
  fi
  rm -f "$rootfs"
}

# docker_privileged_probe: whether this host lets a container run with --privileged
# (see extensions/molecule/resources/create.yml), asked once here rather than by every
# scenario's create step; exported as DISKIMAGE_LOOP_MOLECULE_PRIVILEGED, unless that is
# set already (true or false to force one).
docker_privileged_probe() {
  [ -z "${DISKIMAGE_LOOP_MOLECULE_PRIVILEGED:-}" ] || return 0
  local name="$MOLECULE_IMAGE_REPO-probe-$$"
  if docker run --name "$name" --privileged --network none "$DISKIMAGE_LOOP_MOLECULE_IMAGE" true >/dev/null 2>&1; then
    DISKIMAGE_LOOP_MOLECULE_PRIVILEGED=true
  else
    DISKIMAGE_LOOP_MOLECULE_PRIVILEGED=false
  fi
  # A container that could not start is left created: remove it either way.
  docker rm --force "$name" >/dev/null 2>&1 || true
  export DISKIMAGE_LOOP_MOLECULE_PRIVILEGED
  log "containers run $([ "$DISKIMAGE_LOOP_MOLECULE_PRIVILEGED" = true ] && echo with --privileged ||
    echo 'with a capability set and device cgroup rules: --privileged fails on this host')"
}

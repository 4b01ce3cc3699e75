#!/usr/bin/env bash
# debian-image.sh ARCH CACHE_DIR: print the path of a cached Debian bookworm image
# for ARCH (amd64 or arm64): a GPT with one Discoverable Partitions root partition
# holding ext4. amd64: an mmdebstrap minbase root with python3 and python3-apt for
# Ansible's modules. arm64: the few packages dpkg needs, extracted (not configured:
# nothing runs under emulation while the image is built, and no binfmt_misc entry
# is made for it) and recorded as installed, plus a hello .deb in /root to install.
# Built once and kept in CACHE_DIR; callers copy it before changing it.
set -euo pipefail
arch=$1
cache=$2
mkdir -p "$cache"
image="$cache/debian-$arch.img"
if [ -s "$image" ]; then
  echo "$image"
  exit 0
fi
case "$arch" in
  amd64) root_type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 ;;
  arm64) root_type=b921b045-1df0-41c3-af44-4c6f280d3fae ;;
  *) echo "unknown architecture $arch" >&2; exit 2 ;;
esac
tarball="$cache/debian-$arch.tar"
if [ ! -s "$tarball" ]; then
  # In a private mount namespace: the /dev, /proc and /sys mmdebstrap mounts in
  # its chroot never show in the host's mount table, even if the build is killed.
  if [ "$arch" = amd64 ]; then
    unshare -m --propagation private mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-apt bookworm "$tarball.part" >&2
  else
    # Configuring minbase under qemu-user takes minutes; extracting takes seconds.
    # The extract hook sees the downloaded packages: their control data, marked
    # installed, is the dpkg database that lets dpkg -i inside resolve hello's
    # dependency on libc6.
    # shellcheck disable=SC2016  # the hook is expanded by mmdebstrap's shell
    unshare -m --propagation private mmdebstrap --quiet --format=tar --arch="$arch" --variant=extract \
      --include=dpkg,dash,coreutils,diffutils,tar,libc-bin \
      --extract-hook='for deb in "$1"/var/cache/apt/archives/*.deb; do
          dpkg-deb --field "$deb"; printf "Status: install ok installed\n\n"
        done >>"$1/var/lib/dpkg/status"' \
      bookworm "$tarball.part" >&2
  fi
  mv "$tarball.part" "$tarball"
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
tar -C "$work/root" -xf "$tarball"
rm -f "$work/root/etc/resolv.conf"
if [ "$arch" != amd64 ]; then
  # One package of the image's architecture to install inside it, fetched by the
  # host's apt with a throwaway state (native speed, no emulated apt-get update).
  mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial"
  echo "deb http://deb.debian.org/debian bookworm main" >"$work/apt/sources.list"
  apt_opts=(-q -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::Archives=$work/apt/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/none" -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update >&2
  mkdir -p "$work/root/root"
  (cd "$work/root/root" && apt-get "${apt_opts[@]}" download hello >&2 && mv hello_*.deb hello.deb)
fi
truncate -s 1G "$work/fs.img"
mkfs.ext4 -q -F -L root -d "$work/root" "$work/fs.img"
truncate -s 1026M "$work/disk.img"
printf 'label: gpt\nstart=2048, size=%d, type=%s, name=root\n' $((1024 * 2048)) "$root_type" | sfdisk -q "$work/disk.img"
dd if="$work/fs.img" of="$work/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
mv "$work/disk.img" "$image"
echo "$image"

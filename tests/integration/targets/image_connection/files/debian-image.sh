#!/usr/bin/env bash
# debian-image.sh ARCH CACHE_DIR: print the path of a cached Debian bookworm image
# for ARCH (amd64 or arm64): a GPT with one Discoverable Partitions root partition
# holding ext4 made from an mmdebstrap minbase root (amd64 with python3 and python3-apt
# for Ansible's modules; arm64 without Python, plus a hello .deb in /root to install).
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
  amd64) root_type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709 qemu='' extra=python3,python3-apt ;;
  # No Python: its packages take minutes to configure under emulation; the test uses raw.
  arm64) root_type=b921b045-1df0-41c3-af44-4c6f280d3fae qemu=aarch64 extra= ;;
  *) echo "unknown architecture $arch" >&2; exit 2 ;;
esac
tarball="$cache/debian-$arch.tar"
if [ ! -s "$tarball" ]; then
  if [ -n "$qemu" ]; then
    # mmdebstrap runs the foreign maintainer scripts through binfmt_misc: register
    # qemu under a name of this run (PID namespace, pid, random part), removed
    # after; a killed run's entry is removed by the next run in the same PID
    # namespace. binfmt_misc is machine-wide: the private mount namespace only
    # keeps its mount out of the host's table.
    # The line goes to the kernel as text: \xNN stays four characters (echo, not
    # printf), and anything but \x escapes in magic and mask is refused (raw
    # bytes there once made an entry that matched every ELF program).
    # shellcheck disable=SC2016  # the backslashes are meant literally
    magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    # shellcheck disable=SC2016  # the script is expanded by the inner shell
    unshare -m --propagation private bash -euc '
      dir=/proc/sys/fs/binfmt_misc
      mountpoint -q $dir || mount -t binfmt_misc binfmt_misc $dir
      pidns=$(readlink /proc/self/ns/pid | tr -dc 0-9)
      for entry in "$dir"/debian-image-"$pidns"-*; do
        [ -e "$entry" ] || continue
        pid=${entry#"$dir"/debian-image-"$pidns"-}; pid=${pid%%-*}
        [ -d "/proc/$pid" ] || echo -1 >"$entry"
      done
      name=debian-image-$pidns-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d " ")
      line=":$name:M::$5:$6:/usr/bin/qemu-$3-static:F"
      escapes="^(\\\\x[0-9a-f]{2})+\$"
      if ! [[ $5 =~ $escapes && $6 =~ $escapes && ${#5} == "${#6}" ]] || [[ $line == *[![:print:]]* ]]; then
        echo "refusing a malformed binfmt_misc registration: $line" >&2; exit 1
      fi
      echo "$line" >$dir/register
      trap "echo -1 >$dir/$name" EXIT
      mmdebstrap --quiet --format=tar --arch="$1" --variant=minbase ${2:+--include="$2"} bookworm "$4.part"
    ' sh "$arch" "$extra" "$qemu" "$tarball" "$magic" "$mask" >&2
  else
    mmdebstrap --quiet --format=tar --variant=minbase --include="$extra" bookworm "$tarball.part" >&2
  fi
  mv "$tarball.part" "$tarball"
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
tar -C "$work/root" -xf "$tarball"
rm -f "$work/root/etc/resolv.conf"
if [ -n "$qemu" ]; then
  # One package of the image's architecture to install inside it, fetched by the
  # host's apt with a throwaway state (native speed, no emulated apt-get update).
  mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial"
  echo "deb http://deb.debian.org/debian bookworm main" >"$work/apt/sources.list"
  apt_opts=(-q -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::Archives=$work/apt/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/none" -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update >&2
  (cd "$work/root/root" && apt-get "${apt_opts[@]}" download hello >&2 && mv hello_*.deb hello.deb)
fi
truncate -s 1G "$work/fs.img"
mkfs.ext4 -q -F -L root -d "$work/root" "$work/fs.img"
truncate -s 1026M "$work/disk.img"
printf 'label: gpt\nstart=2048, size=%d, type=%s, name=root\n' $((1024 * 2048)) "$root_type" | sfdisk -q "$work/disk.img"
dd if="$work/fs.img" of="$work/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
mv "$work/disk.img" "$image"
echo "$image"

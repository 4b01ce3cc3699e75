# shellcheck shell=bash
# The seed image built by hand, the way the image_build role's declaration in
# bench_roles.py builds it: an 80 MiB dos image with p1-p3 primary, p4 extended
# and p5-p8 logical, ext4 on each (labels p1..p8), p1 mounted at TREE and the
# others at TREE/pN, one file written, and everything taken down again.
# Whatever fails, what was mounted and attached is released.
#
# usage: bash benchmarks/seed_build.sh IMAGE TREE      (as root)
set -euo pipefail

image=$1
tree=$2
device=""
mounted=()

teardown() {
  local rc=$? i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" || rc=1
  done
  if [ -n "$device" ]; then
    partx -d "$device" || rc=1
    losetup -d "$device" || rc=1
  fi
  exit "$rc"
}
trap teardown EXIT

truncate -s 80M "$image"
sfdisk --quiet "$image" <"$(dirname "$0")/../tests/data/seed.sfdisk"

device=$(losetup -P -f --show "$image")
partx -a "$device"
for n in 1 2 3 5 6 7 8; do
  mkfs.ext4 -q -F -L "p$n" "${device}p$n"
done

mkdir -p "$tree"
mount "${device}p1" "$tree"
mounted+=("$tree")
for n in 2 3 5 6 7 8; do
  mkdir -p "$tree/p$n"
  mount "${device}p$n" "$tree/p$n"
  mounted+=("$tree/p$n")
done
echo "built by hand" >"$tree/hello"
# the teardown (umount children first, partx -d, losetup -d) runs on exit

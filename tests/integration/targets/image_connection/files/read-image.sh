#!/bin/sh
# read-image.sh IMAGE PATH...: print each PATH of the image's root partition (the
# first partition, at 1 MiB), or "ABSENT PATH", read through mount(8) -o loop in a
# private mount namespace: an oracle independent of the collection.
set -eu
image=$1
shift
# shellcheck disable=SC2016  # the script is expanded by the inner shell
exec unshare -m --propagation private sh -eu -c '
  image=$1; shift
  dir=$(mktemp -d)
  mount -o ro,loop,offset=1048576 "$image" "$dir"
  for path in "$@"; do
    if [ -e "$dir$path" ] || [ -L "$dir$path" ]; then cat "$dir$path"; else echo "ABSENT $path"; fi
  done
  umount "$dir"
  rmdir "$dir"
' sh "$image" "$@"

#!/bin/sh
# Run by destroy.yml inside a scenario's container (docker exec ... sh -c SCRIPT sh DIR):
# detach every loop device backed by a file below DIR, the scenario's scratch directory,
# then remove the loop devices the scenario had the kernel create (listed, one number a
# line, in DIR/.created-loop-devices) once nothing is bound to them.
# It uses losetup rather than the collection's modules, which are what is under test.
# Prints one line per action; exits non-zero when a device stays attached.
set -eu
dir=$1
[ -d "$dir" ] || exit 0

# A container whose /dev is a snapshot may lack the node of a device made after it started.
ensure_node() { # PATH TYPE SYSFS-DEV-FILE
  [ -e "$1" ] && return 0
  devno=$(cat "$3") || return 1
  mknod "$1" "$2" "${devno%%:*}" "${devno##*:}"
}

status=0
devices=$(find "$dir" -type f -exec losetup --list --noheadings --output NAME --associated {} \; | sort -u)
for device in $devices; do
  if ensure_node "$device" b "/sys/block/${device#/dev/}/dev" && losetup --detach "$device"; then
    echo "detached $device"
  else
    echo "could not detach $device" >&2
    status=1
  fi
done

if [ -f "$dir/.created-loop-devices" ]; then
  while read -r number; do
    # Gone already, or bound again (by anyone): not for us to remove.
    [ -d "/sys/block/loop$number" ] || continue
    [ ! -d "/sys/block/loop$number/loop" ] || continue
    ensure_node /dev/loop-control c /sys/class/misc/loop-control/dev || continue
    # LOOP_CTL_REMOVE; the kernel refuses a device that is bound or open.
    if python3 -c 'import fcntl, os, sys
fcntl.ioctl(os.open("/dev/loop-control", os.O_RDWR), 0x4C81, int(sys.argv[1]))' "$number" 2>/dev/null; then
      echo "removed /dev/loop$number"
    fi
  done <"$dir/.created-loop-devices"
fi
exit "$status"

# shellcheck shell=bash
# A snapshot of what the kernel holds that tests could leak: attached loop
# devices (with their backing files), device-mapper maps, and mounts of loop
# or mapped devices. Comparing the snapshot before and after a run tells what
# the run left behind.
leak_snapshot() {
  {
    losetup --list --noheadings -O NAME,BACK-FILE 2>/dev/null | sed 's/^/loop /'
    if [ -d /sys/block ]; then
      for dm in /sys/block/dm-*/dm/name; do
        [ -e "$dm" ] && printf 'map %s\n' "$(cat "$dm")"
      done
    fi
    awk '$1 ~ "^/dev/(loop|mapper/|dm-)" {print "mount " $1 " " $2}' /proc/self/mounts
  } | sort
}

# leak_check BEFORE_FILE: fail, listing them, if anything new is held now.
leak_check() {
  local new
  new=$(comm -13 "$1" <(leak_snapshot))
  if [ -n "$new" ]; then
    printf 'LEAK: the run left these behind:\n%s\n' "$new" >&2
    return 1
  fi
}

# shellcheck shell=bash
# The fleet by hand: for each host, a sparse copy of the golden image with the
# same content the image_personalize role writes in benchmarks/bench_fleet.py -
# host name, the 127.0.1.1 line of /etc/hosts, an empty machine-id, a
# systemd-networkd file, the motd, root's and alice's authorized keys (alice's
# in the home partition, owned by her uid from the image's passwd).
# Whatever fails, what was mounted is released (mount -o loop detaches itself).
#
# usage: bash fleet_floor.sh GOLDEN OUTDIR MOUNTDIR ROOT_OFFSET ROOT_SIZE HOME_OFFSET HOME_SIZE HOST...
set -euo pipefail

golden=$1 out=$2 tree=$3 root_offset=$4 root_size=$5 home_offset=$6 home_size=$7
shift 7
trap 'umount "$tree" 2>/dev/null || true' EXIT
mkdir -p "$out" "$tree"
n=0
for host in "$@"; do
  n=$((n + 1))
  image="$out/$host.img"
  cp --sparse=always --reflink=auto -- "$golden" "$image.part"
  mv -f -- "$image.part" "$image"
  mount -o loop,offset="$root_offset",sizelimit="$root_size" "$image" "$tree"
  printf '%s\n' "$host" >"$tree/etc/hostname"
  sed -i '/^127\.0\.1\.1\s/d' "$tree/etc/hosts"
  printf '127.0.1.1\t%s\n' "$host" >>"$tree/etc/hosts"
  : >"$tree/etc/machine-id"
  mkdir -p "$tree/etc/systemd/network"
  printf '# Ansible managed\n[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.0.%d/24\nGateway=10.0.0.1\nDNS=10.0.0.1\n' $((10 + n)) \
    >"$tree/etc/systemd/network/10-$host.network"
  printf 'Welcome to %s (10.0.0.%d/24)\n' "$host" $((10 + n)) >"$tree/etc/motd"
  install -d -m 0700 "$tree/root/.ssh"
  printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKeyOf%s admin@example\n' "$host" >"$tree/root/.ssh/authorized_keys"
  chmod 0600 "$tree/root/.ssh/authorized_keys"
  uid=$(awk -F: '$1 == "alice" {print $3 ":" $4}' "$tree/etc/passwd")
  umount "$tree"
  mount -o loop,offset="$home_offset",sizelimit="$home_size" "$image" "$tree"
  install -d -m 0700 -o "${uid%:*}" -g "${uid#*:}" "$tree/alice/.ssh"
  printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceKey alice@example\nssh-rsa AAAAB3NzaSecond alice@laptop\n' \
    >"$tree/alice/.ssh/authorized_keys"
  chown "$uid" "$tree/alice/.ssh/authorized_keys"
  chmod 0600 "$tree/alice/.ssh/authorized_keys"
  umount "$tree"
done

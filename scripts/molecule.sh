#!/usr/bin/env bash
# Runs every molecule scenario under extensions/molecule in Docker containers, then
# checks that no loop device on the host is still backed by a scenario's files.
# Usage: scripts/molecule.sh [SCENARIO...]   (default: all scenarios)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"
# shellcheck source=lib/docker.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/docker.sh"

require_root
apt_install python3 python3-venv util-linux mount
make_venv "$ROOT/scripts/requirements.txt"
collection_path
docker_up
docker_image

# molecule finds the collection (galaxy.yml) and its scenarios from the working directory.
cd "$ROOT"
# molecule keys its working files by the checkout's directory name only; a home inside
# the checkout keeps two checkouts of the same name apart.
export ANSIBLE_HOME="$CACHE/ansible"

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  shopt -s nullglob
  for file in extensions/molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$file")")")
  done
  shopt -u nullglob
  if [ ${#scenarios[@]} -eq 0 ]; then
    echo "no scenarios under extensions/molecule" >&2
    exit 1
  fi
fi

started=$SECONDS
passed=() failed=()
for scenario in "${scenarios[@]}"; do
  log "molecule test --scenario-name $scenario"
  if molecule test --scenario-name "$scenario"; then
    passed+=("$scenario")
  else
    failed+=("$scenario")
  fi
done

# The containers are gone now. Their files are named by the same path on the host
# (see extensions/molecule/resources/vars/names.yml), so a device still backed by one leaked.
prefix="/var/tmp/diskimage-loop-molecule-$(pwd -P | tr -d '\n' | sha1sum | cut -c1-8)-"
leaked=$(losetup --list --noheadings --output NAME,BACK-FILE | awk -v p="$prefix" 'index($2, p) == 1')
if [ -n "$leaked" ]; then
  echo "loop devices left attached to scenario files:" >&2
  echo "$leaked" >&2
fi

summary="molecule: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ] || summary+=" (${failed[*]})"
[ -z "$leaked" ] || summary+=", loop devices leaked"
echo "$summary in $((SECONDS - started))s"
[ ${#failed[@]} -eq 0 ] && [ -z "$leaked" ]

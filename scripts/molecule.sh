#!/usr/bin/env bash
# Runs every molecule scenario under extensions/molecule in Docker containers, then
# checks that no loop device on the host is still backed by a scenario's files.
# Usage: [MOLECULE_JOBS=N] scripts/molecule.sh [SCENARIO...]   (default: all scenarios,
# one per CPU at a time)
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
docker_privileged_probe

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

# Scenarios run side by side, MOLECULE_JOBS at a time (default: one per CPU): a
# scenario spends much of its time waiting for round trips to its containers, so two at
# a time take little more than half as long on two cores. Each scenario has its own
# containers, files and molecule directory; the loop devices they share are allocated
# under the kernel's and the modules' rules. With more than one job, a scenario's
# output goes to .cache/molecule-<scenario>.log and is shown when it ends;
# MOLECULE_JOBS=1 runs one after the other, output as it comes.
jobs=${MOLECULE_JOBS:-$(nproc)}
case $jobs in '' | *[!0-9]* | 0) echo "MOLECULE_JOBS must be a positive number" >&2; exit 1 ;; esac

started=$SECONDS
passed=() failed=() durations=()
declare -A running=() begun=()

# finish SCENARIO STATUS: record a scenario that ended (and show its log).
finish() {
  if [ "$jobs" -gt 1 ]; then
    log "molecule test --scenario-name $1 (exit status $2):"
    cat "$CACHE/molecule-$1.log"
  fi
  if [ "$2" -eq 0 ]; then passed+=("$1"); else failed+=("$1"); fi
  durations+=("$1 $((SECONDS - ${begun[$1]}))s")
}

# reap: wait for one of the running scenarios to end, and record it.
reap() {
  local pid status=0
  wait -n -p pid "${!running[@]}" || status=$?
  finish "${running[$pid]}" "$status"
  unset "running[$pid]"
}

for scenario in "${scenarios[@]}"; do
  if [ "$jobs" -eq 1 ]; then
    begun[$scenario]=$SECONDS
    log "molecule test --scenario-name $scenario"
    status=0
    molecule test --scenario-name "$scenario" || status=$?
    finish "$scenario" "$status"
    continue
  fi
  while [ ${#running[@]} -ge "$jobs" ]; do reap; done
  begun[$scenario]=$SECONDS
  log "started molecule test --scenario-name $scenario"
  molecule test --scenario-name "$scenario" >"$CACHE/molecule-$scenario.log" 2>&1 &
  running[$!]=$scenario
done
while [ ${#running[@]} -gt 0 ]; do reap; done

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
times=$(printf '%s, ' "${durations[@]}")
echo "$summary in $((SECONDS - started))s (${times%, })"
[ ${#failed[@]} -eq 0 ] && [ -z "$leaked" ]

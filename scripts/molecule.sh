#!/usr/bin/env bash
# Runs every molecule scenario under extensions/molecule in Docker containers, each as
# one pytest test through pytest-ansible's molecule plugin, then checks that no loop
# device on the host is still backed by a scenario's files.
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

cd "$ROOT"
# molecule keys its working files by the project directory's name only; a home inside
# the checkout keeps two checkouts' runs apart.
export ANSIBLE_HOME="$CACHE/ansible"

scenarios=()
if [ $# -gt 0 ]; then
  for scenario in "$@"; do
    [ -f "extensions/molecule/$scenario/molecule.yml" ] ||
      { echo "no scenario extensions/molecule/$scenario" >&2; exit 2; }
    scenarios+=("extensions/molecule/$scenario/molecule.yml")
  done
else
  scenarios=(extensions/molecule)
fi

# Scenarios run side by side, MOLECULE_JOBS at a time (default: one per CPU): a
# scenario spends much of its time waiting for round trips to its containers, so two at
# a time take little more than half as long on two cores. Each scenario has its own
# containers, files and molecule directory; the loop devices they share are allocated
# under the kernel's and the modules' rules.
jobs=${MOLECULE_JOBS:-$(nproc)}
case $jobs in '' | *[!0-9]* | 0) echo "MOLECULE_JOBS must be a positive number" >&2; exit 1 ;; esac
parallel=()
[ "$jobs" -eq 1 ] || parallel=(-n "$jobs" --dist worksteal)

# pytest-ansible collects every molecule.yml as one test and runs `molecule test -s
# SCENARIO` for it from the directory above molecule/ (extensions/), where molecule
# finds the scenarios but not the collection's base config: that is passed explicitly.
# Each scenario gets its own PASSED or FAILED line; its output is shown when it fails.
started=$SECONDS
status=0
python -m pytest -p no:cacheprovider --molecule \
  --molecule_base_config "$ROOT/extensions/molecule/config.yml" \
  "${parallel[@]}" --durations=0 --durations-min=1 -v "${scenarios[@]}" || status=$?

# The containers are gone now. Their files are named by the same path on the host
# (see extensions/molecule/resources/vars/names.yml), so a device still backed by one leaked.
# The hash is of molecule's project directory, extensions/ (see above).
prefix="/var/tmp/diskimage-loop-molecule-$(cd extensions && pwd -P | tr -d '\n' | sha1sum | cut -c1-8)-"
leaked=$(losetup --list --noheadings --output NAME,BACK-FILE | awk -v p="$prefix" 'index($2, p) == 1')
if [ -n "$leaked" ]; then
  echo "loop devices left attached to scenario files:" >&2
  echo "$leaked" >&2
  status=1
fi
echo "molecule: pytest exit status $status in $((SECONDS - started))s"
exit "$status"

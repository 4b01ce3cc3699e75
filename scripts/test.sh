#!/usr/bin/env bash
# Every test of the collection, as CI runs them. Installs what it needs first
# (Debian packages, pinned venvs, the VM kernel, the docker daemon and image).
#   scripts/test.sh            all stages
#   scripts/test.sh unit lint  only those stages
# Stages run in two lanes side by side (TEST_LANES=1: one after another); each stage's
# output is shown when it ends and kept in tests/output/stages/STAGE.log, and a table
# of the stages' times ends the run.
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
source "$(dirname "$0")/lib/leaks.sh"
require_root

ALL_STAGES=(unit kernel modules integration vm molecule sanity lint docs package)
# The second lane: stages that leave the host's kernel state alone (sanity, lint, docs
# read files; vm has a guest kernel of its own) or share it the way any other user of
# this host does (molecule and package allocate loop devices under the kernel's rules
# and release them). The first lane keeps the tiers that test the modules on this
# host's kernel in order, cheap ones first so a broken build fails fast. Molecule starts
# the second lane: building its container image waits on the network, not the CPU.
SECOND_LANE=(molecule vm sanity lint docs package)
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=("${ALL_STAGES[@]}")
for stage in "${stages[@]}"; do
  case " ${ALL_STAGES[*]} " in *" $stage "*) ;; *) echo "unknown stage: $stage (stages: ${ALL_STAGES[*]})" >&2; exit 2 ;; esac
done

first=() second=()
for stage in "${stages[@]}"; do
  if [ "${TEST_LANES:-$(nproc)}" -gt 1 ] && [[ " ${SECOND_LANE[*]} " == *" $stage "* ]]; then
    second+=("$stage")
  else
    first+=("$stage")
  fi
done
# The packages of the molecule and vm stages are the pseudo-stage `packages`, ahead of
# the first of those stages in its lane.
for lane in first second; do
  declare -n stages_of=$lane
  for i in "${!stages_of[@]}"; do
    case ${stages_of[$i]} in molecule | vm)
      stages_of=("${stages_of[@]:0:$i}" packages "${stages_of[@]:$i}")
      break ;;
    esac
  done
  unset -n stages_of
done

run_start=$SECONDS
apt_install "${TEST_PACKAGES[@]}"
make_venv "$ROOT/scripts/requirements.txt"
collection_path
cd "$ROOT"
# Collect the pytest tiers once before the lanes start: pytest-ansible makes its
# collections/ link tree here rather than in two lanes at once, and an import error
# fails the run at once.
python -m pytest --collect-only -q -p no:cacheprovider tests/unit tests/kernel tests/modules >/dev/null
setup_seconds=$((SECONDS - run_start))

run_stage() {
  case "$1" in
    packages) apt_install "${CONTAINER_VM_PACKAGES[@]}" ;;
    unit) python -m pytest tests/unit -q -p no:cacheprovider ;;
    kernel) python -m pytest tests/kernel -q -p no:cacheprovider ;;
    modules) python -m pytest tests/modules -q -p no:cacheprovider ;;
    integration) bash scripts/integration.sh ;;
    sanity) bash scripts/sanity.sh ;;
    lint) ansible-lint --nocolor ;;
    molecule) bash scripts/molecule.sh ;;
    vm) bash scripts/vm-tests.sh ;;
    docs) bash scripts/docs.sh ;;
    package) bash scripts/package-check.sh ;;
  esac
}

LOGS="$ROOT/tests/output/stages"
mkdir -p "$LOGS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run_lane STAGE...: run the stages one after another; each one's output goes to its
# log, shown in one piece when the stage ends, and its result to $work/STAGE.
run_lane() {
  local stage start status
  for stage in "$@"; do
    start=$SECONDS
    status=passed
    run_stage "$stage" >"$LOGS/$stage.log" 2>&1 </dev/null || status=failed
    echo "$status $((SECONDS - start))" >"$work/$stage"
    {
      printf '\n==> stage %s %s in %d s (log: %s)\n' "$stage" "$status" $((SECONDS - start)) "${LOGS#"$ROOT"/}/$stage.log"
      cat "$LOGS/$stage.log"
      printf '==> end of stage %s\n' "$stage"
    } | flock "$work" cat
  done
}

before=$(mktemp)
trap 'rm -rf "$work" "$before"' EXIT
leak_snapshot >"$before"
log "lane 1: ${first[*]:-nothing}; lane 2, beside it: ${second[*]:-nothing}"
stages_start=$SECONDS
pids=()
[ ${#first[@]} -eq 0 ] || { run_lane "${first[@]}" & pids+=($!); }
[ ${#second[@]} -eq 0 ] || { run_lane "${second[@]}" & pids+=($!); }
wait "${pids[@]}" || true
stages_seconds=$((SECONDS - stages_start))

log "leak guard"
passed=0 failed=0 failures=()
if leak_check "$before"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(leak-guard); fi

printf '\n%-12s %-6s %-7s %8s\n' stage lane result seconds
printf '%-12s %-6s %-7s %8d\n' set-up - - "$setup_seconds"
for stage in "${first[@]}" "${second[@]}"; do
  lane=1
  [[ " ${second[*]:-} " == *" $stage "* ]] && lane=2
  if [ -s "$work/$stage" ]; then
    read -r status took <"$work/$stage"
  else
    status=failed took=0
  fi
  printf '%-12s %-6s %-7s %8d\n' "$stage" "$lane" "$status" "$took"
  if [ "$status" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$stage"); fi
done
printf '%-12s %-6s %-7s %8d\n' stages both - "$stages_seconds"
printf '%-12s %-6s %-7s %8d\n' total - - $((SECONDS - run_start))

[ $failed -eq 0 ] || log "failed: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]

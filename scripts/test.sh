#!/usr/bin/env bash
# Every test of the collection, as CI runs them. Installs what it needs first
# (Debian packages, pinned venvs, the VM kernel, the docker daemon and image).
#   scripts/test.sh            all stages
#   scripts/test.sh unit lint  only those stages
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
source "$(dirname "$0")/lib/leaks.sh"
require_root

# Cheap stages first, so a broken build fails fast.
ALL_STAGES=(unit kernel integration vm molecule sanity lint docs package)
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=("${ALL_STAGES[@]}")

apt_install "${TEST_PACKAGES[@]}"
make_venv "$ROOT/scripts/requirements.txt"
collection_path
cd "$ROOT"

run_stage() {
  case "$1" in
    unit) python -m pytest tests/unit -q -p no:cacheprovider ;;
    kernel) python -m pytest tests/kernel -q -p no:cacheprovider ;;
    integration) bash scripts/integration.sh ;;
    sanity) bash scripts/sanity.sh ;;
    lint) ansible-lint --nocolor ;;
    molecule) bash scripts/molecule.sh ;;
    vm) bash scripts/vm-tests.sh ;;
    docs) bash scripts/docs.sh ;;
    package) bash scripts/package-check.sh ;;
    *) echo "unknown stage: $1 (stages: ${ALL_STAGES[*]})" >&2; return 2 ;;
  esac
}

before=$(mktemp)
trap 'rm -f "$before"' EXIT
leak_snapshot >"$before"
passed=0 failed=0 failures=()
for stage in "${stages[@]}"; do
  log "stage: $stage"
  start=$SECONDS
  if run_stage "$stage"; then
    passed=$((passed + 1))
    log "stage $stage passed in $((SECONDS - start)) s"
  else
    failed=$((failed + 1))
    failures+=("$stage")
    log "stage $stage FAILED after $((SECONDS - start)) s"
  fi
done
log "leak guard"
if leak_check "$before"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(leak-guard); fi

[ $failed -eq 0 ] || log "failed: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ $failed -eq 0 ]

#!/usr/bin/env bash
# Run the integration targets (tests/integration/targets/*) against localhost with
# ansible-playbook: one playbook run per target, the target applied as a role.
# The same targets run under `ansible-test integration`; this runner needs neither
# network nor the ansible_collections/ directory layout.
#
# Usage: scripts/integration.sh [-v] [TARGET...] [-- EXTRA ANSIBLE-PLAYBOOK ARGS]
#   TARGET   target names (default: every target not prefixed setup_/prepare_ and
#            not marked disabled, unsupported or slow in its aliases)
#   -v       show the full ansible-playbook output (it is always kept in the log dir)
# Examples:
#   scripts/integration.sh
#   scripts/integration.sh loop_device -- -e '{"loop_test_groups": ["absent"]}'
#   INTEGRATION_SLOW=1 scripts/integration.sh      also the targets marked slow
# Words of a target's aliases file this runner reads:
#   slow          opt-in: runs when named or with INTEGRATION_SLOW=1
#   time/SECONDS  how long the target takes on a 2-core machine; the longest start first
#
# Exits non-zero when any target fails. Needs root and the loop kernel module.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/setup.sh source-path=SCRIPTDIR disable=SC1091
. "$ROOT/scripts/lib/setup.sh"

verbose=0
targets=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -v) verbose=1 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

require_root
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
  make_venv "$ROOT/scripts/requirements.txt"
fi
collection_path

TARGETS_DIR="$ROOT/tests/integration/targets"
LOGS="$ROOT/tests/output/integration"

# aliases_word NAME REGEX: the first word of target NAME's aliases file matching REGEX.
aliases_word() {
  [ -f "$TARGETS_DIR/$1/aliases" ] || return 0
  sed 's/#.*//' "$TARGETS_DIR/$1/aliases" | grep -Eo "^[[:space:]]*($2)[[:space:]]*$" | head -n 1 | tr -d '[:space:]' || true
}

# expected_seconds NAME: the target's time in the last run here (LOGS/NAME.seconds),
# else its time/SECONDS alias, else 0.
expected_seconds() {
  local took
  if [ -s "$LOGS/$1.seconds" ] && read -r took <"$LOGS/$1.seconds" && [[ $took =~ ^[0-9]+$ ]]; then
    echo "$took"
    return
  fi
  took=$(aliases_word "$1" 'time/[0-9]+')
  took=${took#time/}
  echo "${took:-0}"
}

if [ ${#targets[@]} -eq 0 ]; then
  for dir in "$TARGETS_DIR"/*/; do
    name=$(basename "$dir")
    case "$name" in setup_* | prepare_*) continue ;; esac
    word=$(aliases_word "$name" 'disabled|unsupported')
    if [ -n "$word" ]; then
      echo "skipping $name (aliases: $word)"
      continue
    fi
    if [ -n "$(aliases_word "$name" slow)" ] && [ "${INTEGRATION_SLOW:-0}" != 1 ]; then
      echo "skipping $name (aliases: slow; INTEGRATION_SLOW=1 or naming the target runs it)"
      continue
    fi
    targets+=("$name")
  done
fi
# Longest first: with INTEGRATION_JOBS > 1 a long target then overlaps all the short
# ones instead of starting last and running alone.
mapfile -t targets < <(for name in "${targets[@]}"; do echo "$(expected_seconds "$name") $name"; done | sort -k1,1nr -k2,2 | cut -d' ' -f2)
for name in "${targets[@]}"; do
  if [ ! -f "$TARGETS_DIR/$name/tasks/main.yml" ]; then
    echo "no such target: $name" >&2
    exit 2
  fi
done

# A YAML error in an included file aborts ansible-playbook before any clean-up
# runs, so parse every file first, before anything is attached.
"$VENV/bin/python" - "$TARGETS_DIR" <<'PY'
import pathlib, sys, yaml
bad = 0
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.yml")):
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        bad += 1
        print("YAML error in %s: %s" % (path, exc), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

WORK=$(mktemp -d "${TMPDIR:-/tmp}/loop-integration.XXXXXX")
mkdir -p "$LOGS"
cat >"$WORK/inventory.ini" <<EOF
[testgroup]
testhost ansible_connection=local ansible_host=127.0.0.1 ansible_python_interpreter=$VENV/bin/python
EOF

export ANSIBLE_ROLES_PATH="$TARGETS_DIR"
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
# One process per task instead of copying each module to a file first: half the time.
export ANSIBLE_PIPELINING=1
export ANSIBLE_HOST_KEY_CHECKING=0
export ANSIBLE_DEPRECATION_WARNINGS=0
export ANSIBLE_LOCALHOST_WARNING=0
export ANSIBLE_INVENTORY_UNPARSED_WARNING=0
export PYTHONDONTWRITEBYTECODE=1

# run_target NAME: one ansible-playbook run; writes NAME.result (status and group
# counts on the first line, then the summary lines).
run_target() {
  local name=$1 playbook="$WORK/$1.yml" log="$LOGS/$1.log" t0=$SECONDS rc=0 took recap passed failed
  cat >"$playbook" <<EOF
- name: Integration target $name
  hosts: testhost
  gather_facts: false
  roles:
    - $name
EOF
  if [ "$verbose" = 1 ]; then
    ansible-playbook -i "$WORK/inventory.ini" "$playbook" "${extra[@]}" 2>&1 | tee "$log" || rc=$?
  else
    ansible-playbook -i "$WORK/inventory.ini" "$playbook" "${extra[@]}" >"$log" 2>&1 || rc=$?
  fi
  took=$((SECONDS - t0))
  [ "$rc" -ne 0 ] || echo "$took" >"$LOGS/$name.seconds"
  recap=$(grep -E '^testhost +:' "$log" | tail -n 1 | sed -E 's/^testhost +: +//; s/ +/ /g' || true)
  passed=$(grep -c 'TEST GROUP PASSED: ' "$log" || true)
  failed=$(grep -c 'TEST GROUP FAILED: ' "$log" || true)
  {
    if [ "$rc" -eq 0 ]; then
      echo "ok $passed 0"
      echo "PASS $name: $passed groups passed in ${took}s [$recap]"
    else
      # a failure outside any group (set-up or clean-up) still counts as one
      echo "fail $passed $((failed > 0 ? failed : 1))"
      echo "FAIL $name (rc $rc): $passed groups passed, $failed failed in ${took}s [${recap:-no recap}]"
      grep -oE '"msg": "TEST GROUP FAILED: .*"$' "$log" | sed -E 's/^"msg": "TEST GROUP FAILED: /       /; s/"$//' || true
    fi
  } >"$WORK/$name.result"
  if [ "$rc" -ne 0 ] && [ "$verbose" = 0 ]; then
    echo "---- last lines of $name's log ----"
    tail -n 40 "$log"
    echo "----"
  fi
  echo "==> $name done in ${took}s (rc $rc)"
}

# INTEGRATION_JOBS targets run side by side (default: one per CPU). Each works in its
# own workspace, and the named-device tests get a block of device numbers that
# setup_loop allocates for that run alone (files/named_claim.py), so no two targets
# touch the same device.
jobs=${INTEGRATION_JOBS:-$(nproc)}
case $jobs in '' | *[!0-9]* | 0) echo "INTEGRATION_JOBS must be a positive number" >&2; exit 2 ;; esac
started=$SECONDS
running=0
for name in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "==> $name (log: ${LOGS#"$ROOT"/}/$name.log)"
  run_target "$name" &
  running=$((running + 1))
done
wait || true

summary=()
groups_passed=0
groups_failed=0
failed_targets=0
for name in "${targets[@]}"; do
  if [ ! -s "$WORK/$name.result" ]; then
    summary+=("FAIL $name: no result (its runner died)")
    failed_targets=$((failed_targets + 1))
    groups_failed=$((groups_failed + 1))
    continue
  fi
  read -r status passed failed <"$WORK/$name.result"
  groups_passed=$((groups_passed + passed))
  groups_failed=$((groups_failed + failed))
  [ "$status" = ok ] || failed_targets=$((failed_targets + 1))
  while IFS= read -r line; do
    summary+=("$line")
  done < <(tail -n +2 "$WORK/$name.result")
done
rm -rf "$WORK"

echo
echo "==> integration summary ($((SECONDS - started))s)"
printf '%s\n' "${summary[@]}"
echo "integration: $groups_passed passed, $groups_failed failed"
[ "$failed_targets" -eq 0 ]

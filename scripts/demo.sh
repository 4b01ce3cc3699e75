#!/usr/bin/env bash
# The demo: installs what it needs (Debian packages, a pinned venv) and runs
# playbooks/demo.yml against this machine. Safe to run again.
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
require_root
apt_install "${DEMO_PACKAGES[@]}"
make_venv "$ROOT/scripts/requirements-demo.txt"
collection_path
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
# Tables and trees print as text blocks rather than JSON strings.
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_PIPELINING=1
log "running playbooks/demo.yml"
ansible-playbook -i "$ROOT/playbooks/inventory/localhost.yml" "$ROOT/playbooks/demo.yml" "$@"

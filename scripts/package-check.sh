#!/usr/bin/env bash
# Check the collection as users get it: the artifact, not the checkout.
#   1. ansible-galaxy collection build into a temporary directory; report its size
#      and check its file list (no caches, venvs, test output or VCS data; every
#      module, role and the metadata present);
#   2. a fresh venv with only ansible-core, at the version scripts/requirements.txt
#      pins (pip may serve it from its cache);
#   3. ansible-galaxy collection install --offline of the tarball into a temporary
#      collections path, the only one Ansible is given;
#   4. ansible-doc for every module and role, from the installed copy;
#   5. a localhost playbook that lists loop devices with loop_device_info, attaches
#      a temporary sparse file with loop_device and detaches it again.
# Everything is removed on exit, and a loop device left attached to the temporary
# file by a failed run is detached (that one only). Needs root.
set -euo pipefail
# shellcheck source=lib/setup.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"
require_root

# pinned_version NAME FILE: the NAME==VERSION pin of a requirements file, following -r.
pinned_version() {
  local name="$1" file="$2" line found lines=()
  mapfile -t lines <"$file"
  for line in "${lines[@]}"; do
    line=${line%%#*}
    case "$line" in
      "$name=="*) found=${line#"$name=="}; printf '%s\n' "${found%%[ ;]*}"; return 0 ;;
      "-r "*) pinned_version "$name" "$(dirname "$file")/${line#-r }" && return 0 ;;
    esac
  done
  return 1
}

core_version=$(pinned_version ansible-core "$ROOT/scripts/requirements.txt") ||
  { echo "no ansible-core==VERSION pin in scripts/requirements.txt" >&2; exit 1; }

work=$(mktemp -d)
image="$work/sparse.img"
cleanup() {
  local rc=$? dev
  # a failed run may leave the temporary image attached: detach it, and only it
  if [ -e "$image" ]; then
    for dev in $(losetup --noheadings --output NAME --associated "$image" 2>/dev/null); do
      losetup --detach "$dev" || rc=1
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

start=$SECONDS
venv="$work/venv"
log "fresh venv with ansible-core==$core_version only"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$core_version" >"$work/pip.log" 2>&1 ||
  { cat "$work/pip.log" >&2; exit 1; }
export PATH="$venv/bin:$PATH" ANSIBLE_NOCOLOR=1
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
unset ANSIBLE_CONFIG PYTHONPATH
# Only the temporary collections path: neither this checkout nor ~/.ansible/collections.
export ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_HOME="$work/ansible-home"
cd "$work"

log "ansible-galaxy collection build"
ansible-galaxy collection build --output-path "$work/build" "$ROOT" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; exit 1; }
if grep -q WARNING "$work/build.log"; then
  cat "$work/build.log" >&2
  echo "package: the build reported warnings" >&2
  exit 1
fi
tarball=$(find "$work/build" -name 'diskimage-loop-*.tar.gz')
[ -n "$tarball" ] || { echo "package: no diskimage-loop-*.tar.gz was built" >&2; exit 1; }
size=$(stat -c %s "$tarball")
tar -tzf "$tarball" | sed 's|^\./||; s|/$||' | sort >"$work/files.txt"
count=$(wc -l <"$work/files.txt")
log "$(basename "$tarball"): $size bytes, $count entries"

# What must never be in the artifact.
junk='(^|/)(\.git|\.venv[^/]*|\.cache|\.ansible|\.hypothesis|\.pytest_cache|\.mypy_cache|\.tox|__pycache__)(/|$)|^tests/output(/|$)|\.(pyc|pyo|retry|tar\.gz)$'
if grep -E "$junk" "$work/files.txt" >"$work/junk.txt"; then
  head -20 "$work/junk.txt" >&2
  echo "package: the artifact holds $(wc -l <"$work/junk.txt") entries that build_ignore in galaxy.yml should keep out" >&2
  exit 1
fi
# What must be there: the metadata, every module and role of the checkout.
expected=(MANIFEST.json FILES.json README.md LICENSE meta/runtime.yml)
for module in "$ROOT"/plugins/modules/*.py; do
  expected+=("plugins/modules/$(basename "$module")")
done
for role in "$ROOT"/roles/*/; do
  expected+=("roles/$(basename "$role")/meta/argument_specs.yml" "roles/$(basename "$role")/tasks/main.yml")
done
for path in "${expected[@]}"; do
  grep -qxF "$path" "$work/files.txt" || { echo "package: $path is missing from the artifact" >&2; exit 1; }
done
# A collection of a few hundred kilobytes; megabytes mean something slipped in.
if [ "$size" -gt $((5 * 1024 * 1024)) ]; then
  echo "package: the artifact is $size bytes, more than 5 MiB; check build_ignore in galaxy.yml" >&2
  exit 1
fi

log "ansible-galaxy collection install --offline"
ansible-galaxy collection install --offline -p "$work/collections" "$tarball" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; exit 1; }
installed="$work/collections/ansible_collections/diskimage/loop"
[ -f "$installed/MANIFEST.json" ] || { echo "package: nothing installed at $installed" >&2; exit 1; }

modules=()
for module in "$installed"/plugins/modules/*.py; do
  modules+=("$(basename "$module" .py)")
done
roles=()
for role in "$installed"/roles/*/; do
  roles+=("$(basename "$role")")
done
log "ansible-doc: ${#modules[@]} modules, ${#roles[@]} roles"
for module in "${modules[@]}"; do
  ansible-doc "diskimage.loop.$module" >"$work/doc.txt" 2>"$work/doc.err" ||
    { cat "$work/doc.err" >&2; echo "package: ansible-doc diskimage.loop.$module failed" >&2; exit 1; }
  # the documentation must come from the installed artifact, not from the checkout
  grep -qF "$installed/plugins/modules/$module.py" "$work/doc.txt" ||
    { echo "package: ansible-doc did not read diskimage.loop.$module from $installed" >&2; exit 1; }
  if [ -s "$work/doc.err" ]; then
    cat "$work/doc.err" >&2
    echo "package: ansible-doc diskimage.loop.$module warned" >&2
    exit 1
  fi
done
for role in "${roles[@]}"; do
  if ! ansible-doc -t role "diskimage.loop.$role" >/dev/null 2>"$work/doc.err" || [ -s "$work/doc.err" ]; then
    cat "$work/doc.err" >&2
    echo "package: ansible-doc -t role diskimage.loop.$role failed or warned" >&2
    exit 1
  fi
done

log "playbook: loop_device_info, loop_device attach and detach of a sparse file"
truncate -s 8M "$image"
cat >"$work/check.yml" <<'YAML'
- name: The installed collection on this machine
  hosts: localhost
  gather_facts: false
  vars:
    image: "{{ lookup('ansible.builtin.env', 'PACKAGE_CHECK_IMAGE') }}"
  tasks:
    - name: Every attached loop device
      diskimage.loop.loop_device_info:
      register: all_devices

    - name: Attach the sparse file
      diskimage.loop.loop_device:
        file: "{{ image }}"
      register: attached

    - name: Attaching again changes nothing
      diskimage.loop.loop_device:
        file: "{{ image }}"
      register: again

    - name: Devices of the sparse file
      diskimage.loop.loop_device_info:
        file: "{{ image }}"
      register: of_image

    - name: Detach it
      diskimage.loop.loop_device:
        file: "{{ image }}"
        state: absent
      register: detached

    - name: Devices of the sparse file afterwards
      diskimage.loop.loop_device_info:
        file: "{{ image }}"
      register: after

    - name: Check the results
      ansible.builtin.assert:
        that:
          - all_devices.devices is sequence
          - attached is changed
          - attached.device is match('/dev/loop[0-9]+$')
          - again is not changed
          - again.device == attached.device
          - of_image.devices | map(attribute='device') | list == [attached.device]
          - of_image.devices[0].size == 8388608
          - detached is changed
          - detached.detached == [attached.device]
          - after.devices == []
        quiet: true
YAML
PACKAGE_CHECK_IMAGE="$image" ansible-playbook "$work/check.yml" >"$work/play.log" 2>&1 ||
  { cat "$work/play.log" >&2; echo "package: the playbook failed" >&2; exit 1; }
grep -qE 'localhost +: ok=7 +changed=2 +unreachable=0 +failed=0' "$work/play.log" ||
  { cat "$work/play.log" >&2; echo "package: unexpected play recap" >&2; exit 1; }
if grep -q '\[WARNING\]\|\[DEPRECATION WARNING\]' "$work/play.log"; then
  cat "$work/play.log" >&2
  echo "package: the playbook run warned" >&2
  exit 1
fi

echo "package: OK - $(basename "$tarball") $size bytes, $count entries; installed offline with" \
  "ansible-core $core_version; ansible-doc for ${#modules[@]} modules and ${#roles[@]} roles;" \
  "localhost playbook passed; in $((SECONDS - start)) s"

#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection, with ansible-test's own pinned
# requirements and no network bootstrap (see scripts/lib/get-pip-offline.py).
set -euo pipefail
source "$(dirname "$0")/lib/setup.sh"
source "$(dirname "$0")/lib/collection-copy.sh"

SANITY_VENV="$ROOT/.venv-sanity"
stamp="$SANITY_VENV/.stamp-$(sha256sum "$ROOT/scripts/requirements-sanity.txt" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  log "creating $SANITY_VENV"
  rm -rf "$SANITY_VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$SANITY_VENV"
  "$SANITY_VENV/bin/pip" install -q --upgrade pip 2>>"$CACHE/pip.log"
  "$SANITY_VENV/bin/pip" install -q --no-compile -r "$ROOT/scripts/requirements-sanity.txt" 2>>"$CACHE/pip.log"
  touch "$stamp"
fi

pip_version=$("$SANITY_VENV/bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
class Python:  # get_venv_packages only reads .version
    version = "%d.%d" % __import__("sys").version_info[:2]
print(get_venv_packages(Python())["pip"])
PY
)
pip_cache="$HOME/.ansible/test/cache"
mkdir -p "$pip_cache/wheels"
cp "$ROOT/scripts/lib/get-pip-offline.py" "$pip_cache/get_pip_${pip_version//./_}.py"
ls "$pip_cache/wheels/pip-${pip_version}-"*.whl >/dev/null 2>&1 ||
  "$SANITY_VENV/bin/pip" download -q --no-deps -d "$pip_cache/wheels" "pip==$pip_version" 2>>"$CACHE/pip.log"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy=$(collection_copy "$work")
log "ansible-test sanity (Python 3.11)"
cd "$copy"
"$SANITY_VENV/bin/ansible-test" sanity --python 3.11 --color no "$@"

#!/usr/bin/env bash
# Build the module and role documentation with antsibull-docs, offline, into
# .cache/docs-build, and fail on any error or warning it reports:
#   1. antsibull-docs lint-collection-docs --plugin-docs: schema and markup of every
#      module's and role's documentation, references to this collection and to
#      ansible.builtin, and rstcheck on the RST it generates;
#   2. antsibull-docs collection --use-current: the RST pages for a Sphinx docsite
#      (.cache/docs-build/rst);
#   3. the same pages in the simplified RST format, turned into standalone HTML with
#      docutils, warnings being errors (.cache/docs-build/html/index.html).
# The collection is found through ANSIBLE_COLLECTIONS_PATH (this checkout, see
# collection_path in lib/setup.sh); nothing is fetched from Galaxy.
set -euo pipefail
# shellcheck source=lib/setup.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"

make_venv "$ROOT/scripts/requirements.txt"
collection_path
cd "$ROOT"

pinned=$(sed -n 's/^antsibull-docs==\([^ ;#]*\).*/\1/p' "$ROOT/scripts/requirements.txt")
have=$(antsibull-docs --version)
if [ "$have" != "$pinned" ]; then
  echo "antsibull-docs is $have, scripts/requirements.txt pins ${pinned:-nothing}" >&2
  exit 1
fi

OUT="$CACHE/docs-build"
COLLECTION="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/diskimage/loop"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=true

# quiet_or_fail NAME COMMAND...: run COMMAND; any output at all (antsibull-docs
# prints nothing when everything is right) or a non-zero exit is a failure.
quiet_or_fail() {
  local name="$1" rc=0
  shift
  "$@" >"$work/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ -s "$work/$name.log" ]; then
    sed 's/^/    /' "$work/$name.log" >&2
    echo "docs: $name failed (exit $rc$([ -s "$work/$name.log" ] && echo ', with the messages above'))" >&2
    return 1
  fi
}

# antsibull-docs writes only into a directory that only its owner can write to.
fresh_dir() { rm -rf "$1" && mkdir -p "$1" && chmod 0700 "$1"; }

start=$SECONDS
log "antsibull-docs lint-collection-docs --plugin-docs"
quiet_or_fail lint antsibull-docs lint-collection-docs --plugin-docs \
  --validate-collection-refs dependent "$COLLECTION"

log "antsibull-docs collection: RST for a docsite into ${OUT#"$ROOT"/}/rst"
fresh_dir "$OUT"
fresh_dir "$OUT/rst"
quiet_or_fail rst antsibull-docs collection --use-current --fail-on-error --squash-hierarchy \
  --dest-dir "$OUT/rst" diskimage.loop

log "antsibull-docs collection: standalone HTML into ${OUT#"$ROOT"/}/html"
fresh_dir "$work/simplified"
quiet_or_fail simplified antsibull-docs collection --use-current --fail-on-error --squash-hierarchy \
  --output-format simplified-rst --dest-dir "$work/simplified" diskimage.loop
mkdir -p "$OUT/html"
for page in "$work/simplified"/*.rst; do
  name=$(basename "$page" .rst)
  quiet_or_fail "html-$name" rst2html5 --halt=warning --report=warning --no-datestamp \
    "$page" "$OUT/html/$name.html"
  # the pages link to each other by their .rst names
  sed -i 's/href="\([a-z0-9_]*\)\.rst\(#[^"]*\)\{0,1\}"/href="\1.html\2"/g' "$OUT/html/$name.html"
done

for expected in "$OUT/rst/index.rst" "$OUT/html/index.html"; do
  [ -s "$expected" ] || { echo "docs: $expected was not written" >&2; exit 1; }
done
pages=$(find "$OUT/html" -name '*.html' | wc -l)
echo "docs: OK - lint clean, $pages pages in ${OUT#"$ROOT"/} (rst/, html/) in $((SECONDS - start)) s"

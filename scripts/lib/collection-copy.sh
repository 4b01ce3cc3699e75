# shellcheck shell=bash
# collection_copy DEST: copy the files git tracks (staged ones included) to
# DEST/ansible_collections/diskimage/loop, the layout ansible-test and
# ansible-galaxy need (they resolve symlinks, so a linked tree will not do).
# Prints the path of the copy.
collection_copy() {
  local dest="$1/ansible_collections/diskimage/loop"
  rm -rf "$dest"
  mkdir -p "$dest"
  (cd "$ROOT" && git ls-files -z --cached | xargs -0 -I{} find {} -maxdepth 0 -type f -print0 |
    cpio -0 -pdm --quiet "$dest")
  # ansible-test lists files through git when it finds a repository
  (cd "$dest" && git init -q && git add -A) >/dev/null 2>&1
  printf '%s\n' "$dest"
}

#!/usr/bin/env bash
# Runs every case of tests/golden/cases.txt with the given llmem binary and compares stdout, stderr's first line
# and the exit code with tests/golden/out/<n>.out byte for byte (see cases.txt). --update rewrites the outputs.
set -uo pipefail
bin=$(realpath "$1")
update=${2:-}
cd "$(dirname "$0")/../.."
out=tests/golden/out
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# No Hugging Face cache and no network: every SOURCE resolves to the embedded catalog or a file in the repo.
export HF_HUB_CACHE="$tmp/no-cache" HF_HOME="$tmp/no-home" HOME="$tmp/home" XDG_CACHE_HOME="$tmp/xdg" HF_HUB_OFFLINE=1 LLMEM_HEADER_CACHE="$tmp/headers"
unset HUGGINGFACE_HUB_CACHE HF_ENDPOINT HF_TOKEN HF_TOKEN_PATH
n=0 failed=0
while IFS= read -r line; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  n=$((n + 1))
  name=$(printf '%03d' "$n")
  read -ra args <<<"$line"
  "$bin" "${args[@]}" >"$tmp/stdout" 2>"$tmp/stderr"
  rc=$?
  { printf '$ llmem %s\n' "$line"; printf 'exit %d\n' "$rc"; head -n 1 "$tmp/stderr"; printf -- '--- stdout\n'; cat "$tmp/stdout"; } >"$tmp/got"
  if [[ "$update" == "--update" ]]; then
    cp "$tmp/got" "$out/$name.out"
  elif ! cmp -s "$tmp/got" "$out/$name.out"; then
    echo "golden case $name differs: llmem $line"
    diff "$out/$name.out" "$tmp/got" | head -n 20
    failed=$((failed + 1))
  fi
done <tests/golden/cases.txt
if [[ "$update" == "--update" ]]; then echo "wrote $n golden outputs"; exit 0; fi
echo "$n golden cases, $failed differ"
[[ $failed -eq 0 ]]

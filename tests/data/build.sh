#!/usr/bin/env bash
# Builds the data-ABI guests (docs/data-abi.md) into target/data-guests/:
#   rust/data_plugin.wasm   an Extism plugin from crates.io's extism-pdk (tests/data/rust)
#   c/guest.wasm            a C guest declaring the same imports by hand (tests/data/c)
#   c/reactor.wasm          a WASI reactor (wasi-libc) using them too
# skipping what is newer than its sources (FORCE=1 rebuilds). Needs the wasm32-unknown-unknown
# Rust target and clang (scripts/setup-guests.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${DATA_GUESTS_DIR:-$ROOT/target/data-guests}
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1mdata guests:\033[0m %s\n' "$*"; }
stale() { # output, sources...
  local out=$1; shift
  [ "${FORCE:-0}" = 1 ] || [ ! -f "$out" ] || [ -n "$(find "$@" -type f -newer "$out" -print -quit)" ]
}
mkdir -p "$OUT/rust" "$OUT/c"
if stale "$OUT/rust/data_plugin.wasm" "$HERE/rust/src" "$HERE/rust/Cargo.toml" "$HERE/rust/Cargo.lock"; then
  cargo build --release --locked --quiet --target wasm32-unknown-unknown \
    --manifest-path "$HERE/rust/Cargo.toml" --target-dir "$OUT/cargo"
  cp "$OUT/cargo/wasm32-unknown-unknown/release/data_plugin.wasm" "$OUT/rust/data_plugin.wasm"
  say "rust: built $(wc -c < "$OUT/rust/data_plugin.wasm") bytes"
else
  say "rust: up to date"
fi
if stale "$OUT/c/guest.wasm" "$HERE/c"; then
  clang --target=wasm32 -nostdlib -O2 -Wall -Wextra -Werror -Wl,--no-entry \
    -Wl,--strip-debug -o "$OUT/c/guest.wasm" "$HERE/c/guest.c"
  say "c: built $(wc -c < "$OUT/c/guest.wasm") bytes"
else
  say "c: up to date"
fi
# A WASI reactor (wasi-libc) that is a data guest too: _initialize, then calls.
if stale "$OUT/c/reactor.wasm" "$HERE/c"; then
  clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
    -Wl,--strip-debug -o "$OUT/c/reactor.wasm" "$HERE/c/reactor.c"
  say "c: built reactor, $(wc -c < "$OUT/c/reactor.wasm") bytes"
else
  say "c: reactor up to date"
fi

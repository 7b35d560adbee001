#!/usr/bin/env bash
# Installs what `make demo` / `make test` need on a fresh Debian 12 machine, and nothing that
# is already there (idempotent; a second run takes about a second).
#
#   scripts/setup.sh rust      Rust targets and components only (native demo, native tests)
#   scripts/setup.sh web       + wasm-pack, wasm-bindgen-cli, Chromium and ChromeDriver, and the
#                              npm devDependencies (TypeScript, playwright-core, wabt)
#   scripts/setup.sh browsers  + Firefox ESR, WebKitGTK's WebKitWebDriver and Xvfb (Debian),
#                              geckodriver (crates.io), for `make browsers-test`
#
# Everything comes from the package registries: crates.io (cargo install), Debian (apt), npm
# (npm ci, from package-lock.json). playwright-core drives Debian's Chromium: no browser is
# downloaded.
# Nothing downloads a prebuilt binary from a website.
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130   # must equal the `wasm-bindgen = "=…"` pin in crate/Cargo.toml
WASM_PACK_VERSION=0.15.1

export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

need_rust() {
  command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup first)" >&2; exit 1; }
  local installed
  installed=$(rustup target list --installed)
  for t in wasm32-unknown-unknown; do
    grep -qx "$t" <<<"$installed" || { say "rustup target add $t"; rustup target add "$t"; }
  done
  local comps
  comps=$(rustup component list --installed)
  for c in clippy rustfmt; do
    grep -q "^$c" <<<"$comps" || { say "rustup component add $c"; rustup component add "$c"; }
  done
}

# cargo install, --locked first; if the lock file names a version the registry no longer
# serves (seen: webpki-roots 1.0.11 for wasm-bindgen-cli 0.2.130), resolve afresh.
cargo_install() {
  local crate=$1 version=$2
  say "cargo install $crate $version"
  cargo install "$crate" --version "=$version" --locked \
    || cargo install "$crate" --version "=$version"
}

need_web() {
  if ! wasm-pack --version 2>/dev/null | grep -q "$WASM_PACK_VERSION"; then
    cargo_install wasm-pack "$WASM_PACK_VERSION"
  fi
  # wasm-pack finds this on PATH instead of downloading its own copy.
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    cargo_install wasm-bindgen-cli "$WASM_BINDGEN_VERSION"
  fi
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "apt-get install chromium chromium-driver"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
}

# npm ci when node_modules is absent or the lock file changed since the last install (npm ci
# writes node_modules/.package-lock.json, so a newer package-lock.json means it changed).
need_npm() {
  command -v node >/dev/null && command -v npm >/dev/null \
    || { echo "setup: node and npm not found (install Node.js >= 20, e.g. Debian's nodejs)" >&2; exit 1; }
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if [ ! -f "$root/node_modules/.package-lock.json" ] \
    || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    say "npm ci"
    (cd "$root" && npm ci --no-audit --no-fund)
  fi
}

GECKODRIVER_VERSION=0.37.1

# Firefox ESR and WebKitGTK (Debian), driven over WebDriver by npm selenium-webdriver:
# geckodriver from crates.io, WebKitWebDriver from webkit2gtk-driver, which needs a display
# (Xvfb, through xvfb-run).
need_browsers() {
  if ! command -v firefox-esr >/dev/null || ! command -v WebKitWebDriver >/dev/null || ! command -v xvfb-run >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "apt-get install firefox-esr webkit2gtk-driver xvfb"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq firefox-esr webkit2gtk-driver xvfb >/dev/null
  fi
  if ! geckodriver --version 2>/dev/null | grep -q "$GECKODRIVER_VERSION"; then
    cargo_install geckodriver "$GECKODRIVER_VERSION"
  fi
}

case "${1:-web}" in
  rust) need_rust ;;
  web) need_rust; need_web; need_npm ;;
  browsers) need_rust; need_web; need_npm; need_browsers ;;
  *) echo "usage: scripts/setup.sh [rust|web|browsers]" >&2; exit 2 ;;
esac

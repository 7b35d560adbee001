# The two commands of the README:
#   make demo   build the playground page, run it once in headless Chromium (printed), then
#               serve it on 127.0.0.1 until Ctrl-C (DEMO_ONCE=1: exit after the headless run)
#   make test   everything CI checks (installs what it needs)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export CHROMEDRIVER ?= /usr/bin/chromedriver
CARGO ?= cargo

.PHONY: setup-guests guests wasi-node
.PHONY: demo test setup-rust setup-web setup-browsers browsers-test lint native-test build web-test package browser-test bench clean
.PHONY: demo-native www demo-smoke bench-browser size-breakdown
.PHONY: bench-wasi-browser bench-wasi fuzz fuzz-smoke node-test soak bench-data

# Port 8080 (PORT=… to change), or a free one when it is taken; the URL is printed.
demo: setup-web www
	node scripts/demo-headless.mjs

# The same guest natively, through the Rust core and the CLI (no browser).
demo-native: setup-rust
	$(CARGO) run --release -q -p nestbox-cli -- demo

test: setup-web lint guests native-test fuzz-smoke wasi-node build web-test package node-test browser-test browsers-test demo-smoke

setup-rust:
	@scripts/setup.sh rust

setup-web:
	@scripts/setup.sh web

setup-browsers:
	@scripts/setup.sh browsers

# Layering and import cycles: the core's modules (scripts/check-rust-layers.mjs) and the
# package's TypeScript files (scripts/check-ts-imports.mjs) use only what is below them.
lint:
	node scripts/check-rust-layers.mjs
	node scripts/check-ts-imports.mjs
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p nestbox --target wasm32-unknown-unknown --all-targets -- -D warnings
	$(CARGO) clippy -p nestbox --features native-tier --all-targets -- -D warnings
	$(CARGO) clippy -p nestbox --features native-tier --target wasm32-unknown-unknown --all-targets -- -D warnings
	$(CARGO) fmt --check --manifest-path tests/wasi/rust/Cargo.toml
	$(CARGO) fmt --check --manifest-path tests/wasi/work/rust/Cargo.toml
	$(CARGO) fmt --check --manifest-path tests/data/rust/Cargo.toml

# The native tier's instrumentation (feature `native-tier`, off in the default build) too.
native-test:
	$(CARGO) test --workspace
	$(CARGO) test -p nestbox --features native-tier --test native

# The release module: opt-level 3, fat LTO, wasmi's indirect dispatch, wasm-opt off
# (Debian's binaryen 108 breaks it; see crate/Cargo.toml); with the native tier (feature
# `native-tier`: the instrumentation pass and the books of `engine: 'native'`).
build:
	wasm-pack build --release --target web --out-dir ../pkg --out-name nestbox crate -- --features native-tier
	@ls -l pkg/nestbox_bg.wasm | awk '{print "pkg/nestbox_bg.wasm: " $$5 " bytes"}'
	@gzip -9c pkg/nestbox_bg.wasm | wc -c | awk '{print "gzip -9: " $$1 " bytes"}'

# The fuzz harness (fuzz/): wasm-smith modules through load, instantiate and calls, and pure
# ones against wasmi alone. A bounded run here (seeded, so the same cases every time); `make fuzz`
# runs longer from a random start. Failing cases land in fuzz/regressions/ (replayed by the tests).
fuzz-smoke:
	$(CARGO) run --profile fuzz -q -p nestbox-fuzz -- --seconds 60
	$(CARGO) run --profile fuzz -q -p nestbox-fuzz -- --native --seconds 20

fuzz:
	$(CARGO) run --profile fuzz -q -p nestbox-fuzz -- --seconds $${FUZZ_SECONDS:-1800} --seed $$RANDOM$$RANDOM

# In plain Node (no browser): the TypeScript constants against the core's coreConstants(), the
# page's SHA-256 and HTTP URL checks, the extism-pdk plugin under Extism's own JS runtime
# (@extism/extism) against `nestbox call` (hence guests), and the package on Node.js
# (node-platform.test.mjs: createSandbox on worker_threads, nestbox/worker, the README example).
node-test: package guests
	node --test tests/node/*.test.mjs

# The binding layer in headless Chromium, inside a dedicated worker.
web-test:
	wasm-pack test --headless --chrome crate --test web

# The npm package: crate/js/*.ts compiled by tsc (strict) into pkg/ next to wasm-pack's output,
# and pkg/package.json (version from crate/Cargo.toml, exports map, explicit file list).
package: node_modules/.package-lock.json
	node_modules/.bin/prettier --check --log-level warn crate/js tests/browser scripts/build-package.mjs scripts/check-rust-layers.mjs scripts/check-ts-imports.mjs tests/node
	node scripts/build-package.mjs

# npm ci when node_modules is missing or older than the lock file (npm ci rewrites
# node_modules/.package-lock.json, so it is newer afterwards).
node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

# The package in headless Chromium (Debian's, driven by playwright-core): page sandboxes in
# workers, capabilities, cancellation, watchdog, crash recovery, nestbox/worker, the tarball,
# and the important WASI guests of tests/wasi/programs.json (hence `guests`) through runWasi;
# and the playground (www/dist, hence `www`) used as a user would (playground.test.mjs, which
# writes a screenshot of each state to target/playground-screenshots/).
browser-test: package guests www
	node --test --test-concurrency=1 tests/browser/*.test.mjs

# The same suite in Firefox ESR and WebKitGTK (Debian's, over WebDriver with npm
# selenium-webdriver: geckodriver, WebKitWebDriver under xvfb-run); what needs Chromium or
# playwright skips with its reason (tests/browser/README.md). Pass/skip counts are printed.
browsers-test: setup-browsers package guests
	node tests/browser/run-browsers.mjs

# The playground (www/) bundled by webpack 5 (webpack.config.js) into www/dist/, with the
# package from pkg/, the WAT guests compiled and checked against their pinned digests, and the
# example WASI programs of www/examples.json (built by `guests`) with their SHA-256.
WWW_SOURCES := www webpack.config.js scripts/wat-loader.cjs scripts/serve.mjs scripts/chromium.mjs \
	scripts/demo-headless.mjs bench
www: build package guests
	node_modules/.bin/prettier --check --log-level warn $(WWW_SOURCES)
	node_modules/.bin/webpack --config webpack.config.js --mode production --stats summary

# `make demo`'s headless run, once, on any free port (a few seconds once www/dist is built).
demo-smoke: www
	node scripts/demo-headless.mjs --once --port 0

# The WASI guest suite (tests/wasi/): real Rust, C and Go programs built from source here.
setup-guests:
	@scripts/setup-guests.sh

guests: setup-guests
	tests/wasi/build.sh
	tests/data/build.sh
	tests/gojs/build.sh

# Second opinion: the same programs under Node's built-in node:wasi (tests/wasi/DIFFERENCES.md).
wasi-node: guests
	node tests/wasi/node-runner.mjs

bench: setup-web build package guests size-breakdown
	$(CARGO) bench -p nestbox --bench compute
	node bench/browser/run.mjs
	$(MAKE) --no-print-directory bench-data
	tests/wasi/work/bench-native.sh

# Data calls in headless Chromium: a call passing 1 KiB in and out (a C guest and an extism-pdk
# plugin) next to a numeric call, from the page and in nestbox/worker. Printed, not asserted.
bench-data: setup-web build package guests
	DATA_BENCH=1 node --test --test-concurrency=1 --test-name-pattern=benchmark tests/browser/data.test.mjs

# The "real work" WASI benchmark natively (tests/wasi/work/README.md): Rust and Go, median of 3.
bench-wasi: guests
	tests/wasi/work/bench-native.sh

# In headless Chromium: cold start, capability calls vs a bare postMessage, cancel latency,
# the four compute kernels (fib, LCG, SHA-256, matmul) as the plain module, on the native tier
# and on the interpreter, package size and the core's wasm by part (from size-breakdown); then
# the WASI "real work" benchmark on the native tier vs @bjorn3/browser_wasi_shim (hence
# guests). Printed, not asserted (about a minute, plus the names build the first time).
bench-browser: setup-web build package guests size-breakdown
	node bench/browser/run.mjs
	node tests/browser/bench-wasi.mjs --engines native

# Where the bytes of pkg/nestbox_bg.wasm are: the core built again with the cargo profile
# `names` (release with its function names kept: the same code, never shipped; about as long
# as `build` the first time, seconds when nothing changed), each function attributed to a part
# (wasmi's translator and executor, wasmparser, nestbox's modules, serde, ed25519, fmt…) by
# scripts/wasm-breakdown.mjs into target/size-breakdown.json, which `bench-browser` prints.
size-breakdown: build
	$(CARGO) build -q -p nestbox --lib --target wasm32-unknown-unknown --profile names
	node scripts/wasm-breakdown.mjs target/wasm32-unknown-unknown/names/nestbox.wasm pkg/nestbox_bg.wasm target/size-breakdown.json

# The soak (bench/browser/soak.mjs): 5 rounds × 100 sandboxes (a dedicated worker and a
# capability each) × 1,000 capability calls, all concurrent, disposed and recreated every
# round; page and worker memory per round (measureUserAgentSpecificMemory in a
# cross-origin-isolated page, and Chromium's RSS), failing unless the last round ≤ the first
# × 1.5 + 16 MiB. SOAK_SANDBOXES / SOAK_CALLS / SOAK_ROUNDS change the sizes. Printed.
soak: setup-web build package
	node bench/browser/soak.mjs

# The WASI benchmark's browser half: the same guests (tests/wasi/work's programs, stdio over
# 4 MiB) in nestbox's runWasi (interpreter and native tier) and on Chromium's own engine under
# @bjorn3/browser_wasi_shim, wall ms and the ratios. Printed, not asserted (about a minute).
bench-wasi-browser: setup-web guests build package
	node tests/browser/bench-wasi.mjs

clean:
	$(CARGO) clean
	rm -rf pkg node_modules www/dist

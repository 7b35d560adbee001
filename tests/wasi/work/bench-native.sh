#!/usr/bin/env bash
# The "real work" benchmark, natively: each program of tests/wasi/work/ under the release
# `nestbox run`, RUNS times (default 3), printing the median wall time of the whole process,
# the median time of the call as nestbox measures it, the fuel and Mfuel/s. Every run is
# checked: exit 0, the same stdout every time (and, with the default sizes, the one in
# expected/), the Rust and Go programs agree on every input digest, and the files the guest
# left in its preopen (written out with --out-dir) hash to what it printed, the .gz ones
# through the host's gunzip.
#
#   tests/wasi/work/bench-native.sh        environment: RUNS=3 MIB=4 FILES=4
#
# The browser half runs the same modules with the same arguments (README.md in this folder).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RUNS=${RUNS:-3}
MIB=${MIB:-4}
FILES=${FILES:-4}
# Go guests burn fuel far faster than they execute instructions (README.md, "Fuel"), so the
# budget is 10^12 instead of the default 10^10; the timeout is 5 minutes.
FUEL=1000000000000
TIMEOUT_MS=300000
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --quiet -p nestbox-cli --manifest-path "$ROOT/Cargo.toml"
NESTBOX="$ROOT/target/release/nestbox"
"$ROOT/tests/wasi/build.sh" work >/dev/null
GUESTS=${GUESTS_DIR:-$ROOT/target/wasi-guests}/work

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

now_ns() { date +%s%N; }
json_field() { grep -o "\"$1\":[0-9]*" "$2" | head -1 | cut -d: -f2; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
fail() { echo "bench-native: $*" >&2; exit 1; }

# The lines both programs must agree on: everything but their gzip sizes.
digests() { sed -E 's/ gzip [0-9]+ bytes( \([0-9.]+%\))?//' "$1"; }

printf '%-6s %6s %10s %10s %16s %10s  %s\n' program runs "wall ms" "call ms" fuel "Mfuel/s" module
for program in rust go; do
  wasm="$GUESTS/$program.wasm"
  [ -f "$wasm" ] || fail "$wasm is missing (tests/wasi/build.sh work)"
  : > "$TMP/$program.wall"
  : > "$TMP/$program.call"
  : > "$TMP/$program.fuel"
  for run in $(seq "$RUNS"); do
    dir="$TMP/$program-$run"
    mkdir -p "$dir/work"
    start=$(now_ns)
    status=0
    "$NESTBOX" run --fuel "$FUEL" --timeout-ms "$TIMEOUT_MS" --dir "$dir/work::/work" \
      --out-dir "$dir/out" --metrics "$dir/metrics.json" \
      -- "$wasm" /work "$MIB" "$FILES" >"$dir/stdout" 2>"$dir/stderr" || status=$?
    end=$(now_ns)
    [ "$status" = 0 ] || fail "$program run $run: exit $status: $(tail -1 "$dir/stderr")"
    [ -s "$dir/stdout" ] || fail "$program run $run: no output"
    if [ "$run" = 1 ]; then
      cp "$dir/stdout" "$TMP/$program.stdout"
      if [ "$MIB/$FILES" = 4/4 ] && ! cmp -s "$dir/stdout" "$HERE/expected/$program.txt"; then
        diff "$HERE/expected/$program.txt" "$dir/stdout" >&2 || true
        fail "$program: stdout differs from expected/$program.txt"
      fi
    elif ! cmp -s "$dir/stdout" "$TMP/$program.stdout"; then
      fail "$program run $run: stdout differs from run 1"
    fi
    # What the guest left in memory, written out by --out-dir, is what it printed.
    for i in $(seq 0 $((FILES - 1))); do
      want=$(grep "^file-$i.txt " "$dir/stdout" | awk '{print $5}')
      got=$(sha256sum <"$dir/out/work/input/file-$i.txt" | cut -d' ' -f1)
      gz=$(gunzip -c <"$dir/out/work/output/file-$i.txt.gz" | sha256sum | cut -d' ' -f1)
      [ "$want" = "$got" ] || fail "$program run $run: file-$i.txt hashes to $got, printed $want"
      [ "$want" = "$gz" ] || fail "$program run $run: file-$i.txt.gz gunzips to $gz, printed $want"
    done
    echo $(((end - start) / 1000000)) >>"$TMP/$program.wall"
    echo $(($(json_field wallTimeUs "$dir/metrics.json") / 1000)) >>"$TMP/$program.call"
    json_field fuelConsumed "$dir/metrics.json" >>"$TMP/$program.fuel"
    rm -rf "$dir"
  done
  wall=$(median <"$TMP/$program.wall")
  call=$(median <"$TMP/$program.call")
  fuel=$(median <"$TMP/$program.fuel")
  mfuel=$(awk -v f="$fuel" -v ms="$call" 'BEGIN { printf "%.0f", (ms > 0 ? f / ms / 1000 : 0) }')
  printf '%-6s %6s %10s %10s %16s %10s  %s\n' "$program" "$RUNS" "$wall" "$call" "$fuel" "$mfuel" \
    "${wasm#"$ROOT"/}, $(wc -c <"$wasm") bytes"
done
if ! diff <(digests "$TMP/rust.stdout") <(digests "$TMP/go.stdout") >/dev/null; then
  diff <(digests "$TMP/rust.stdout") <(digests "$TMP/go.stdout") >&2 || true
  fail "the Rust and Go programs disagree on the input digests"
fi
echo "checked: exit 0, stdout equal in every run$([ "$MIB/$FILES" = 4/4 ] && echo " and to expected/"), Rust and Go agree on every input digest,"
echo "         the preopen's files (--out-dir) hash to what was printed, .gz through gunzip"
echo "$(tail -1 "$TMP/rust.stdout" | sed -E 's/.*sha256-of-digests /sha256 of the input digests: /')"

#!/usr/bin/env bash
# Benchmark (not a timed test): `opsg-audit verify` on a >= 1 GB ledger, side by side with
# `openssl dgst -sha256` on the same file (the SHA-256 floor: OpenSSL uses the CPU's SHA
# extensions). Prints both throughputs, their ratio (target >= 0.5) and the peak RSS of verify on
# the full ledger and on a quarter of it (target: flat, not growing with the ledger).
#
#   tests/bench/audit_verify.sh            # 1.1 GB ledger in a temporary directory
#   SIZE=4000000000 WORK=/big tests/bench/audit_verify.sh
#
# Uses hyperfine when installed (apt-get install hyperfine), else a plain loop; /usr/bin/time -v
# for peak memory. The ledger is deleted afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE=${SIZE:-1100000000}
RUNS=${RUNS:-5}
WORK=${WORK:-$(mktemp -d)}
LEDGER="$WORK/bench-ledger.jsonl"
QUARTER="$WORK/bench-ledger-quarter.jsonl"
trap 'rm -f "$LEDGER" "$QUARTER"' EXIT

cargo build --release --quiet -p opsg --bin opsg-audit
cargo build --release --quiet -p opsg-audit --example gen_ledger
TARGET=${CARGO_TARGET_DIR:-target}
AUDIT=$TARGET/release/opsg-audit

echo "== generating ledgers in $WORK"
"$TARGET/release/examples/gen_ledger" "$LEDGER" "$SIZE"
"$TARGET/release/examples/gen_ledger" "$QUARTER" $((SIZE / 4))
bytes=$(stat -c %s "$LEDGER")
cat "$LEDGER" > /dev/null # warm the page cache for both tools alike

verify_cmd="$AUDIT verify --quiet --ledger $LEDGER"
openssl_cmd="openssl dgst -sha256 $LEDGER"
$verify_cmd # must pass, or the numbers mean nothing

mean_seconds() { # command -> mean wall seconds over $RUNS runs
  if command -v hyperfine > /dev/null; then
    hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" "$1" > /dev/null 2>&1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$WORK/h.json"
  else
    $1 > /dev/null 2>&1 # warm-up
    local start end
    start=$(date +%s.%N)
    for _ in $(seq "$RUNS"); do $1 > /dev/null 2>&1; done
    end=$(date +%s.%N)
    python3 -c "print(($end - $start) / $RUNS)"
  fi
}

peak_kb() { # command -> peak RSS in KiB
  /usr/bin/time -v $1 2>&1 >/dev/null | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}'
}

echo "== timing ($RUNS runs each; $(command -v hyperfine > /dev/null && echo hyperfine || echo loop))"
t_verify=$(mean_seconds "$verify_cmd")
t_openssl=$(mean_seconds "$openssl_cmd")
rss_verify=$(peak_kb "$verify_cmd")
rss_quarter=$(peak_kb "$AUDIT verify --quiet --ledger $QUARTER")
rss_openssl=$(peak_kb "$openssl_cmd")

python3 - "$bytes" "$t_verify" "$t_openssl" "$rss_verify" "$rss_quarter" "$rss_openssl" "$(nproc)" << 'EOF'
import sys
size, tv, to, rv, rq, ro, cpus = sys.argv[1:]
size, tv, to = int(size), float(tv), float(to)
mbs = lambda t: size / t / 1e6
print(f"ledger:                  {size / 1e9:.2f} GB ({cpus} CPUs)")
print(f"opsg-audit verify:       {tv:.2f} s  {mbs(tv):7.0f} MB/s  peak RSS {int(rv) / 1024:.0f} MiB "
      f"(quarter-size ledger: {int(rq) / 1024:.0f} MiB)")
print(f"openssl dgst -sha256:    {to:.2f} s  {mbs(to):7.0f} MB/s  peak RSS {int(ro) / 1024:.0f} MiB")
print(f"throughput ratio verify/openssl: {to / tv:.2f} (target >= 0.5)")
EOF

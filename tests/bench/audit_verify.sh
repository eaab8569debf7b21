#!/usr/bin/env bash
# Benchmark (not a timed test): `opsg-audit verify` on a >= 1 GB ledger, side by side with
# `openssl dgst -sha256` on the same file (the SHA-256 floor: OpenSSL uses the CPU's SHA
# extensions). Prints both throughputs (best and mean of RUNS), their ratio (target >= 0.5), the
# CPU time each spends per GB, and the peak RSS of verify on the full ledger and on a quarter of it
# (target: flat, not growing with the ledger).
#
#   tests/bench/audit_verify.sh            # 1.1 GB ledger in a temporary directory
#   SIZE=4000000000 WORK=/big RUNS=10 tests/bench/audit_verify.sh
#
# verify hashes every byte twice (the ledger line's seal and its record's, HASHING.md section 5
# rules 2 and 5) on all cores; openssl hashes once on one core. On a loaded machine the parallel
# verifier loses more wall time than the single-threaded openssl: compare the CPU lines too.
# Uses hyperfine when installed (apt-get install hyperfine), else a plain loop; /usr/bin/time -v
# for CPU time and peak memory. The ledgers are deleted afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE=${SIZE:-1100000000}
RUNS=${RUNS:-5}
WORK=${WORK:-$(mktemp -d)}
LEDGER="$WORK/bench-ledger.jsonl"
QUARTER="$WORK/bench-ledger-quarter.jsonl"
trap 'rm -f "$LEDGER" "$QUARTER" "$WORK/h.json"' EXIT

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

times() { # command -> "min mean" wall seconds over $RUNS runs
  if command -v hyperfine > /dev/null; then
    hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" "$1" > /dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(r["min"], r["mean"])' "$WORK/h.json"
  else
    $1 > /dev/null 2>&1 # warm-up
    local all=() start end
    for _ in $(seq "$RUNS"); do
      start=$(date +%s.%N); $1 > /dev/null 2>&1; end=$(date +%s.%N)
      all+=("$(python3 -c "print($end - $start)")")
    done
    python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print(min(v), sum(v)/len(v))' "${all[@]}"
  fi
}

usage() { # command -> "cpu_seconds peak_kib" from /usr/bin/time -v
  /usr/bin/time -v $1 2>&1 >/dev/null | awk -F': ' '
    /User time/ {u=$2} /System time/ {s=$2} /Maximum resident set size/ {m=$2}
    END {print u+s, m}'
}

echo "== timing ($RUNS runs each; $(command -v hyperfine > /dev/null && echo hyperfine || echo loop)); load: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r v_min v_mean < <(times "$verify_cmd")
read -r o_min o_mean < <(times "$openssl_cmd")
read -r v_cpu v_rss < <(usage "$verify_cmd")
read -r q_cpu q_rss < <(usage "$AUDIT verify --quiet --ledger $QUARTER")
read -r o_cpu o_rss < <(usage "$openssl_cmd")

python3 - "$bytes" "$v_min" "$v_mean" "$o_min" "$o_mean" "$v_cpu" "$o_cpu" "$v_rss" "$q_rss" "$o_rss" "$(nproc)" << 'EOF'
import sys
size = int(sys.argv[1])
v_min, v_mean, o_min, o_mean, v_cpu, o_cpu = map(float, sys.argv[2:8])
v_rss, q_rss, o_rss = (int(x) / 1024 for x in sys.argv[8:11])
cpus = sys.argv[11]
gb = size / 1e9
mbs = lambda t: size / t / 1e6
print(f"ledger: {gb:.2f} GB, {cpus} CPUs")
print(f"opsg-audit verify     best {v_min:5.2f} s {mbs(v_min):6.0f} MB/s | mean {v_mean:5.2f} s {mbs(v_mean):6.0f} MB/s"
      f" | CPU {v_cpu / gb:.2f} s/GB | peak RSS {v_rss:.0f} MiB (quarter-size ledger: {q_rss:.0f} MiB)")
print(f"openssl dgst -sha256  best {o_min:5.2f} s {mbs(o_min):6.0f} MB/s | mean {o_mean:5.2f} s {mbs(o_mean):6.0f} MB/s"
      f" | CPU {o_cpu / gb:.2f} s/GB | peak RSS {o_rss:.0f} MiB")
print(f"throughput ratio verify/openssl: best {o_min / v_min:.2f}, mean {o_mean / v_mean:.2f} (target >= 0.5)")
EOF

#!/usr/bin/env bash
# Replay throughput (issue 6): cases per second through triage, plan and gate, on 1 and 2 threads,
# measured side by side in one run. Not a test: run it by hand, report the figures.
#
#   bash tests/bench/replay_throughput.sh [COPIES]
#
# The corpus is examples/incidents replicated COPIES times (default 12, about 1,000 cases) so
# start-up is amortized. Needs: the Rust toolchain; hyperfine if installed (else a plain timer).
set -euo pipefail
cd "$(dirname "$0")/../.."
copies="${1:-12}"
[ "${BUILD:-1}" = 1 ] && cargo build --release --quiet --bin opsg-replay
bin=target/release/opsg-replay
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$copies"); do
  mkdir -p "$work/corpus/copy-$i"
  cp -r examples/incidents/. "$work/corpus/copy-$i/"
done
cases=$(find "$work/corpus" -name case.json | wc -l)
echo "corpus: $cases cases ($copies copies of examples/incidents)"

time_run() { # threads -> seconds (median of 5)
  local t=$1 runs=() s e
  for _ in 1 2 3 4 5; do
    s=$(date +%s.%N)
    "$bin" "$work/corpus" -j "$t" -q >/dev/null 2>&1 || { echo "replay failed" >&2; exit 1; }
    e=$(date +%s.%N)
    runs+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p
}

if command -v hyperfine >/dev/null 2>&1; then
  hyperfine --warmup 1 --runs 7 -N \
    "$bin $work/corpus -j 1 -q" "$bin $work/corpus -j 2 -q" \
    --export-json "$work/h.json" >/dev/null
  t1=$(python3 -c "import json;print(json.load(open('$work/h.json'))['results'][0]['median'])")
  t2=$(python3 -c "import json;print(json.load(open('$work/h.json'))['results'][1]['median'])")
else
  t1=$(time_run 1)
  t2=$(time_run 2)
fi
python3 - "$cases" "$t1" "$t2" <<'PY'
import sys
cases, t1, t2 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"1 thread : {t1*1000:8.1f} ms  {cases/t1:8.0f} cases/s")
print(f"2 threads: {t2*1000:8.1f} ms  {cases/t2:8.0f} cases/s")
print(f"scaling 1 -> 2 threads: {t1/t2:.2f}x (ideal 2.00x)")
PY

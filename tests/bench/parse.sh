#!/usr/bin/env bash
# Parse throughput and peak memory of opsg-expo against Python's prometheus_client parser,
# `promtool check metrics` and a plain newline count (the floor), side by side in one run on
# the same >= 50 MB payload. Not run by `cargo test` (timings are not test assertions).
#
# usage: tests/bench/parse.sh [NODE_REPLICAS VLLM_MODELS VLLM_ENGINES]   (default 60 120 8: ~58 MB)
# needs: python3 (+ `pip install prometheus_client`), promtool (`apt-get install prometheus`),
#        GNU time at /usr/bin/time. A missing competitor is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-60} models=${2:-120} engines=${3:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
payload=$work/payload.prom

cargo build --quiet --release -p opsg-expo --example parse_bench
bin=target/release/examples/parse_bench
python3 tests/bench/gen_prom.py crates/opsg-expo/tests/fixtures/node_exporter/e2e-output.txt \
    "$payload" "$reps" "$models" "$engines"
bytes=$(stat -c %s "$payload")
lines=$(wc -l < "$payload")
printf 'payload: %s bytes (%.1f MB), %s lines (node_exporter x%s + vLLM %s models x %s engines)\n' \
    "$bytes" "$(echo "$bytes/1000000" | bc -l)" "$lines" "$reps" "$models" "$engines"
cat "$payload" > /dev/null # page cache

cat > "$work/py_parse.py" <<'PY'
import sys
from prometheus_client.parser import text_fd_to_metric_families
n = 0
with open(sys.argv[1]) as f:
    for fam in text_fd_to_metric_families(f):
        n += len(fam.samples)
print("python samples", n)
PY

# run NAME RUNS CMD...: best wall time (nanosecond clock) and the peak RSS of that run (GNU time).
results=()
run() {
    local name=$1 runs=$2; shift 2
    local best="" rss="" i t0 t1 t
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N)
        /usr/bin/time -o "$work/time.txt" -f '%M' "$@" > "$work/out.txt" 2> "$work/err.txt" || true
        t1=$(date +%s%N)
        t=$(( (t1 - t0) / 1000 )) # microseconds
        if [[ -z $best ]] || (( t < best )); then best=$t rss=$(tail -n1 "$work/time.txt"); fi
    done
    results+=("$name|$best|$rss")
    printf '  %-36s %9.3f s  %8.1f MB peak RSS   (%s)\n' "$name" "$(echo "$best/1000000" | bc -l)" \
        "$(echo "$rss/1024" | bc -l)" "$(head -c 100 "$work/out.txt" | tr '\n' ' ')"
}

echo "timings (best of N runs, wall clock, file in page cache):"
run "wc -l (floor)" 5 wc -l "$payload"
run "line count, Rust (floor)" 5 "$bin" lines "$payload"
run "opsg-expo parse_reader (streaming)" 5 "$bin" stream "$payload"
run "opsg-expo parse (materialized)" 3 "$bin" parse "$payload"
if command -v promtool > /dev/null; then
    run "promtool check metrics" 2 sh -c 'promtool check metrics < "$1" > /dev/null 2>&1; echo "promtool exit $?"' sh "$payload"
else
    echo "  promtool not found: apt-get install prometheus"
fi
if python3 -c 'import prometheus_client' 2> /dev/null; then
    run "python prometheus_client" 1 python3 "$work/py_parse.py" "$payload"
else
    echo "  python prometheus_client not found: pip install prometheus_client"
fi

echo
echo "ratios against opsg-expo streaming (same run, same bytes):"
ours=""
for r in "${results[@]}"; do
    IFS='|' read -r n t m <<< "$r"
    [[ $n == "opsg-expo parse_reader (streaming)" ]] && ours=$t
done
for r in "${results[@]}"; do
    IFS='|' read -r n t m <<< "$r"
    mbs=$(echo "$bytes / $t" | bc -l) # bytes per microsecond = MB/s
    if (( t >= ours )); then
        printf '  %-36s %8.1f MB/s   opsg-expo is %6.1fx faster\n' "$n" "$mbs" "$(echo "$t / $ours" | bc -l)"
    else
        printf '  %-36s %8.1f MB/s   opsg-expo takes %5.1fx its time\n' "$n" "$mbs" "$(echo "$ours / $t" | bc -l)"
    fi
done
echo "payload: $(echo "$bytes/1048576" | bc -l | xargs printf '%.1f') MiB; the streaming parse must peak far below it"

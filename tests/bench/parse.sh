#!/usr/bin/env bash
# Parse throughput and peak memory of opsg-expo against Python's prometheus_client parser,
# `promtool check metrics` and a plain newline count (the floor), side by side in one run on
# the same >= 50 MB payload. Not run by `cargo test` (timings are not test assertions).
#
# usage: tests/bench/parse.sh [NODE_REPLICAS VLLM_MODELS VLLM_ENGINES]   (default 60 120 8: ~58 MB)
# needs: python3 (+ `pip install prometheus_client`), promtool (`apt-get install prometheus`), bc,
#        GNU time at /usr/bin/time.
# A missing competitor is reported and skipped.
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

# One measured run: wall clock and user+sys CPU from wait4(2) (microseconds; Linux reports the
# child plus the descendants it waited for), peak RSS from GNU time (a small C parent, so the
# figure is the command's own and not that of a forked Python image).
cat > "$work/measure.py" <<'PY'
import os, subprocess, sys, time
out = open(sys.argv[1], "w")
rss_file = sys.argv[1] + ".rss"
t0 = time.perf_counter()
p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + sys.argv[2:],
                     stdout=out, stderr=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
rss = open(rss_file).read().split()[-1]
print(int(wall * 1e6), int((ru.ru_utime + ru.ru_stime) * 1e6), rss)
PY

# run NAME RUNS CMD...: the best run by wall clock, with its CPU time and peak RSS.
results=()
run() {
    local name=$1 runs=$2; shift 2
    local best="" cpu="" rss="" i w c m
    for ((i = 0; i < runs; i++)); do
        read -r w c m < <(python3 "$work/measure.py" "$work/out.txt" "$@")
        if [[ -z $best ]] || (( w < best )); then best=$w cpu=$c rss=$m; fi
    done
    results+=("$name|$best|$rss|$cpu")
    printf '  %-40s %8.3f s wall  %7.3f s CPU  %7.1f MB peak RSS   (%s)\n' "$name" \
        "$(echo "$best/1000000" | bc -l)" "$(echo "$cpu/1000000" | bc -l)" "$(echo "$rss/1024" | bc -l)" \
        "$(head -c 90 "$work/out.txt" | tr '\n' ' ')"
}

echo "timings (best of N runs by wall clock, file in page cache; load average: $(cut -d' ' -f1-3 /proc/loadavg)):"
run "wc -l (floor)" 5 wc -l "$payload"
run "line count, Rust (floor)" 5 "$bin" lines "$payload"
run "line count, read_until (anchors' floor)" 5 "$bin" lines-bufread "$payload"
run "opsg-expo parse_reader (streaming)" 5 "$bin" stream "$payload"
run "opsg-expo parse (materialized)" 3 "$bin" parse "$payload"
if command -v promtool > /dev/null; then
    run "promtool check metrics" 2 sh -c 'promtool check metrics < "$1" > /dev/null 2>&1; echo "promtool exit $? (3 = lint findings)"' sh "$payload"
else
    echo "  promtool not found: apt-get install prometheus"
fi
if python3 -c 'import prometheus_client' 2> /dev/null; then
    run "python prometheus_client" 1 python3 "$work/py_parse.py" "$payload"
else
    echo "  python prometheus_client not found: pip install prometheus_client"
fi

echo
echo "ratios against opsg-expo streaming (same run, same bytes; CPU = user+sys):"
ours="" ours_cpu=""
for r in "${results[@]}"; do
    IFS='|' read -r n t m c <<< "$r"
    [[ $n == "opsg-expo parse_reader (streaming)" ]] && ours=$t ours_cpu=$c
done
for r in "${results[@]}"; do
    IFS='|' read -r n t m c <<< "$r"
    mbs=$(echo "$bytes / $t" | bc -l) # bytes per microsecond = MB/s
    cpu_ratio=$(echo "$c / $ours_cpu" | bc -l)
    if (( t >= ours )); then
        printf '  %-40s %8.1f MB/s   opsg-expo is %6.1fx faster (wall), %6.1fx (CPU)\n' "$n" "$mbs" \
            "$(echo "$t / $ours" | bc -l)" "$cpu_ratio"
    else
        printf '  %-40s %8.1f MB/s   opsg-expo takes %5.1fx its time (wall), %5.1fx (CPU)\n' "$n" "$mbs" \
            "$(echo "$ours / $t" | bc -l)" "$(echo "1 / $cpu_ratio" | bc -l)"
    fi
done
echo "payload: $(echo "$bytes/1048576" | bc -l | xargs printf '%.1f') MiB; the streaming parse must peak far below it"

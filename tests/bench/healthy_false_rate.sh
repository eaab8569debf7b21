#!/usr/bin/env bash
# False-incident rate of triage on healthy windows recorded from a real opsg-sim, beyond the
# committed corpus (issue 4: at most 1 false incident in 100 healthy windows). Zero false
# incidents in 84 windows cannot show that rate; zero in N >= 300 can (95% upper bound 3/N).
#
#   tests/bench/healthy_false_rate.sh [N] [PARALLEL] [DIR]   (default 300 10 a temporary dir)
#
# Records N healthy windows at 8, 10 and 12 requests/s (tests/bench/record_sim_corpus.sh with
# HEALTHY_EXTRA=N ONLY_HEALTHY_EXTRA=1: real time, about 2 minutes per batch of PARALLEL), then
# replays them with opsg-replay (the same triage and plan code as the binaries) and prints the
# count, the rate and its exact 95% upper bound (Clopper-Pearson). Not run by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-300} parallel=${2:-10}
dir=${3:-}
if [ -z "$dir" ]; then dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT; fi
have=$(find "$dir" -name case.json | wc -l)
if [ "$have" -eq 0 ]; then
  HEALTHY_EXTRA=$n ONLY_HEALTHY_EXTRA=1 tests/bench/record_sim_corpus.sh "$dir" "$parallel"
elif [ "$have" -lt "$n" ]; then
  # Never record over a partial set: re-recording rewrites every case from seed 31 on.
  echo "healthy_false_rate: $dir holds $have cases, fewer than $n; use an empty directory" >&2
  exit 2
fi
cargo build --quiet --release --bin opsg-replay
set +e
target/release/opsg-replay "$dir" --quiet --csv "$dir/results.csv" 2> "$dir/summary.txt"
set -e
cat "$dir/summary.txt"
python3 - "$dir/results.csv" << 'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
n = len(rows)
false = sum(1 for r in rows if r.get("actual_class", "none") not in ("none", ""))
# Exact one-sided 95% upper bound for a binomial proportion (Clopper-Pearson), by bisection.
from math import comb
def cdf(k, n, p): return sum(comb(n, i) * p**i * (1 - p)**(n - i) for i in range(k + 1))
lo, hi = 0.0, 1.0
for _ in range(60):
    mid = (lo + hi) / 2
    if cdf(false, n, mid) > 0.05: lo = mid
    else: hi = mid
print(f"healthy windows: {n}, false incidents: {false} ({100 * false / max(n, 1):.2f} per 100), "
      f"95% upper bound {100 * hi:.2f} per 100 (target <= 1)")
PY

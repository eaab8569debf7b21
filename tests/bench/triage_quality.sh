#!/usr/bin/env bash
# Triage and plan quality on the incident corpus (examples/incidents/): per-class precision and
# recall, first-action accuracy, and the false-incident rate on healthy/noisy windows.
# Targets (issue 4): precision and recall >= 0.95, <= 1 false incident per 100 healthy windows.
#
#   tests/bench/triage_quality.sh [CORPUS_DIR]     (builds release binaries first)
#
# Each case runs the real binaries as the cron job would, with the case's recorded clock:
#   opsg-triage --now T < observation.jsonl | opsg-plan --now T [--fleet-state fleet-state.json]
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus="${1:-examples/incidents}"
cargo build --release --quiet --bin opsg-triage --bin opsg-plan
bin=target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

results="$tmp/results.tsv"
: > "$results"
for case in "$corpus"/*/; do
  id=$(basename "$case")
  now=$(jq -r .now "$case/case.json")
  want_class=$(jq -r .expected_class "$case/case.json")
  want_action=$(jq -r .expected_first_action "$case/case.json")
  fleet=()
  [ -f "$case/fleet-state.json" ] && fleet=(--fleet-state "$case/fleet-state.json")
  "$bin/opsg-triage" --now "$now" < "$case/observation.jsonl" 2>/dev/null \
    | "$bin/opsg-plan" --now "$now" "${fleet[@]}" > "$tmp/out.jsonl" 2>/dev/null
  got_class=$(jq -r 'select(.kind=="finding") | .body.class' "$tmp/out.jsonl")
  got_action=$(jq -r 'select(.kind=="plan") | (.body.actions[0].action // "none")' "$tmp/out.jsonl")
  printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$want_class" "$got_class" "$want_action" "$got_action" >> "$results"
done

python3 - "$results" <<'PY'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
classes = sorted({r[1] for r in rows if r[1] != "none"} | {r[2] for r in rows if r[2] != "none"})
print(f"cases: {len(rows)}  (incidents: {sum(r[1] != 'none' for r in rows)}, healthy/noisy: {sum(r[1] == 'none' for r in rows)})")
print(f"{'class':<22}{'n':>4}{'precision':>11}{'recall':>8}{'first action':>14}")
worst = 1.0
for c in classes:
    tp = sum(r[1] == c and r[2] == c for r in rows)
    fp = sum(r[1] != c and r[2] == c for r in rows)
    fn = sum(r[1] == c and r[2] != c for r in rows)
    n = sum(r[1] == c for r in rows)
    p = tp / (tp + fp) if tp + fp else float("nan")
    rc = tp / (tp + fn) if tp + fn else float("nan")
    act = sum(r[1] == c and r[3] == r[4] for r in rows) / n if n else float("nan")
    worst = min(worst, p if p == p else 1, rc if rc == rc else 1)
    print(f"{c:<22}{n:>4}{p:>11.3f}{rc:>8.3f}{act:>14.3f}")
healthy = [r for r in rows if r[1] == "none"]
false = sum(r[2] != "none" for r in healthy)
rate = 100.0 * false / len(healthy) if healthy else float("nan")
print(f"false incidents: {false} of {len(healthy)} healthy windows = {rate:.1f} per 100")
for r in rows:
    if r[1] != r[2] or r[3] != r[4]:
        print("MISS", *r)
ok = worst >= 0.95 and rate <= 1.0
print("targets (precision, recall >= 0.95; <= 1 false per 100):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY

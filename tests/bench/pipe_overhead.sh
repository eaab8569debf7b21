#!/usr/bin/env bash
# Benchmark (not a timed test): the overhead of the pipe itself. Wall time of the seven opsg
# processes on a recorded incident (dry-run: nothing is executed, no settle wait, no actuator
# latency), side by side with a pipe of seven `cat` processes over the same input bytes.
# Target: the opsg pipe within 4x of the `cat` pipe.
#
#   tests/bench/pipe_overhead.sh                 # release build, 30 runs each
#   PROFILE=debug RUNS=10 tests/bench/pipe_overhead.sh
#   BUILD=0 tests/bench/pipe_overhead.sh         # time the binaries already built
#
# The incident is recorded first from a real opsg-sim (manual clock, fixed seed): a KV-cache
# saturation on `stable`, every replica's /metrics saved to a file and /state as the fleet
# snapshot; the pipe then replays those files (`opsg-scrape --file`), so no network is timed.
# Uses hyperfine when installed, else a plain loop. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILE=${PROFILE:-release}
RUNS=${RUNS:-30}
WORK=$(mktemp -d)
SIM_PID=
cleanup() {
  if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

bins=(opsg-sim opsg-scrape opsg-triage opsg-plan opsg-gate opsg-exec opsg-verify opsg-audit)
args=()
for b in "${bins[@]}"; do args+=(--bin "$b"); done
BIN=target/$([ "$PROFILE" = release ] && echo release || echo debug)
if [ "${BUILD:-1}" = 1 ]; then # BUILD=0 times the binaries already there
  if [ "$PROFILE" = release ]; then
    cargo build --release --quiet -p opsg "${args[@]}"
  else
    cargo build --quiet -p opsg "${args[@]}"
  fi
fi

echo "== recording an incident from opsg-sim"
"$BIN/opsg-sim" --listen 127.0.0.1:0 --seed 7 --manual-clock > "$WORK/sim.out" 2> /dev/null &
SIM_PID=$!
for _ in $(seq 50); do [ -s "$WORK/sim.out" ] && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listen"])' "$WORK/sim.out")
curl -sf -XPOST "http://$ADDR/tick" -d '{"seconds": 60}' > /dev/null
curl -sf -XPOST "http://$ADDR/chaos/kv_cache_saturation" -d '{"target": "stable", "intensity": 0.9}' > /dev/null
curl -sf -XPOST "http://$ADDR/tick" -d '{"seconds": 90}' > /dev/null
curl -sf "http://$ADDR/state" > "$WORK/state.json"
# Each capture is named after its replica: `opsg-scrape --file` names the target after the file,
# so the planner finds the replicas in the fleet snapshot.
mkdir "$WORK/captures"
files=()
i=0
while read -r name url; do
  curl -sf "$url" > "$WORK/captures/$name"
  files+=(--file "$WORK/captures/$name")
  i=$((i + 1))
done < <(python3 -c 'import json,sys; [print(t["replica"], t["url"]) for t in json.load(open(sys.argv[1]))["targets"] if t["job"]=="vllm"]' "$WORK/state.json")
kill "$SIM_PID"; wait "$SIM_PID" 2> /dev/null || true; SIM_PID=
input_bytes=$(cat "$WORK"/captures/* | wc -c)
# A replayed capture is stale by definition, which caps triage's confidence; the bench policy
# accepts that (dry-run, as the built-in) so the plan is approved and printed, not blocked.
python3 - "$WORK/policy.json" << 'EOF'
import json, sys
json.dump({"mode": "dry_run", "allow_actions": ["shift_traffic", "set_deployment_status", "rollback_config",
           "restart_replica", "scale_replicas", "noop", "escalate"], "min_confidence": 0.3,
           "max_blast_radius": {"replicas": 4, "traffic_share": 1.0}, "require_approval": ["destructive"],
           "max_actions_per_hour": 1000}, open(sys.argv[1], "w"))
EOF
echo "   $i replica captures, $input_bytes bytes"

NOW=2026-11-22T06:00:00Z
pipe="$BIN/opsg-scrape ${files[*]} --samples 3 --interval 10s --now $NOW \
 | $BIN/opsg-triage --now $NOW \
 | $BIN/opsg-plan --fleet-state $WORK/state.json --now $NOW \
 | $BIN/opsg-gate --policy $WORK/policy.json --now $NOW --state-dir $WORK/state \
 | $BIN/opsg-exec --state-dir $WORK/state \
 | $BIN/opsg-verify --settle 0s --state-dir $WORK/state \
 | $BIN/opsg-audit --ledger $WORK/ledger.jsonl"
opsg_pipe="exec 2> /dev/null; $pipe > /dev/null; true"
cat_pipe="cat $WORK/captures/* | cat | cat | cat | cat | cat | cat > /dev/null"

# Once, to show the pipe really runs the incident (the records' kinds and the outcome).
sh -c "$pipe > $WORK/out.jsonl 2> $WORK/err.txt" || true
python3 - "$WORK/out.jsonl" << 'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
kinds = " -> ".join(r["kind"] for r in recs)
ver = [r["body"] for r in recs if r["kind"] == "verification"]
print(f"   records: {kinds}")
print(f"   outcome: {ver[-1]['outcome'] if ver else '?'}")
ex = [r["body"] for r in recs if r["kind"] == "execution"]
for a in (ex[-1]["actions"] if ex else []):
    print(f"   would call: {a['request'].get('method')} {a['request'].get('url')} {a['request'].get('body')}")
EOF
rm -f "$WORK/ledger.jsonl"

mean_seconds() { # command -> mean wall seconds over $RUNS runs
  if command -v hyperfine > /dev/null; then
    hyperfine --style none -N --warmup 2 --runs "$RUNS" --export-json "$WORK/h.json" "sh -c '$1'" > /dev/null 2>&1 \
      || hyperfine --style none --warmup 2 --runs "$RUNS" --export-json "$WORK/h.json" "$1" > /dev/null 2>&1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$WORK/h.json"
  else
    sh -c "$1"; sh -c "$1" # warm-up
    local start end
    start=$(date +%s%N)
    for _ in $(seq "$RUNS"); do sh -c "$1"; done
    end=$(date +%s%N)
    python3 -c "print(($end - $start) / 1e9 / $RUNS)"
  fi
}

echo "== timing ($PROFILE build, $RUNS runs each)"
t_opsg=$(mean_seconds "$opsg_pipe")
t_cat=$(mean_seconds "$cat_pipe")
python3 - "$t_opsg" "$t_cat" << 'EOF'
import sys
o, c = float(sys.argv[1]), float(sys.argv[2])
ratio = o / c
print(f"   seven opsg processes: {o * 1000:8.2f} ms")
print(f"   seven cat processes:  {c * 1000:8.2f} ms")
print(f"   ratio:                {ratio:8.2f}x   (target <= 4x: {'met' if ratio <= 4 else 'NOT met'})")
EOF

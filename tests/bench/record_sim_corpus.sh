#!/usr/bin/env bash
# Record incidents from a real opsg-sim into examples/incidents/sim-*/ (the corpus that
# tests/bench/triage_quality.sh scores). For each case: start opsg-sim (real-time clock, seeded),
# let it warm up, inject one fault (or none), let it develop, then scrape every replica, DCGM
# exporter and node_exporter target 12 times 5 s apart with opsg-scrape. The recording is trimmed
# to the series triage reads and re-sealed (crates/opsg-triage/examples/trim_recording.rs), and
# the sim's GET /state settings are kept as fleet-state.json for `opsg-plan --fleet-state`.
#
#   tests/bench/record_sim_corpus.sh [OUT_DIR] [PARALLEL]      (takes about 2 minutes per batch)
#   HEALTHY_EXTRA=N adds N healthy windows at 8, 10 and 12 requests/s (ONLY_HEALTHY_EXTRA=1: just those;
#   HEALTHY_SEED0=S: their seeds start at S, default 31)
#   ONLY=REGEX records just the cases whose name matches (e.g. ONLY='^sim-network_latency-1[67]$')
#
# Timing is real time, so re-recording gives similar, not identical, windows.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-examples/incidents}"
parallel="${2:-8}"
cargo build --quiet --bin opsg-sim --bin opsg-scrape
cargo build --quiet -p opsg-triage --example trim_recording
B="$PWD/target/debug"
TRIM="$PWD/target/debug/examples/trim_recording"

record() { # name fault target seed class first_action [rate] [develop_s] [samples]
  local name=$1 fault=$2 target=$3 seed=$4 class=$5 action=$6 rate=${7:-12} develop=${8:-30}
  local samples=${9:-12}
  local dir="$out/$name" tmp
  tmp=$(mktemp -d)
  mkdir -p "$dir"
  coproc SIM { exec "$B/opsg-sim" --listen 127.0.0.1:0 --seed "$seed" --rate "$rate" --exit-on-stdin-eof 2>/dev/null; }
  local hello base
  read -r hello <&"${SIM[0]}"
  base="http://$(echo "$hello" | jq -r .listen)"
  sleep 20
  if [ "$fault" != healthy ]; then
    local body='{"intensity":0.9}'
    [ -n "$target" ] && body="{\"target\":\"$target\",\"intensity\":0.9}"
    curl -sf -XPOST "$base/chaos/$fault" -d "$body" > /dev/null
  fi
  sleep "$develop"
  curl -sf "$base/state" > "$tmp/state.json"
  # The settings opsg-plan needs (weights, statuses, config versions, replicas), as the cron job
  # would pass them with --fleet-state.
  jq '{deployments: (.deployments | map_values({name, weight, status, config_version,
        config_history: [.config_history[] | {version}], replicas})),
       replicas: (.replicas | map_values({deployment, node})),
       nodes: (.nodes | map_values({cordoned}))}' "$tmp/state.json" > "$dir/fleet-state.json"
  jq '{targets: [.targets[] | if .job == "vllm"
        then {name: .replica, url: .url, labels: {deployment: .deployment, role: .role, node: .node}}
        else {name: "\(.job)-\(.node)", url: .url, labels: {node: .node, job: .job}} end]}' \
    "$tmp/state.json" > "$tmp/targets.json"
  "$B/opsg-scrape" --targets "$tmp/targets.json" --samples "$samples" --interval 5s 2>/dev/null \
    | "$TRIM" > "$dir/observation.jsonl"
  kill "$SIM_PID" 2>/dev/null || true
  local end now
  end=$(jq -r '.body.window.end' "$dir/observation.jsonl")
  now=$(date -u -d "$end + 5 seconds" +%Y-%m-%dT%H:%M:%S.000Z)
  jq -n --arg id "$name" --arg class "$class" --arg action "$action" --arg now "$now" --arg rate "$rate" \
        --arg fault "$fault" --arg target "$target" --argjson seed "$seed" --argjson develop "$develop" --argjson samples "$samples" \
    '{id: $id, expected_class: $class, expected_first_action: $action, now: $now,
      scenario: (if $fault == "healthy" then "healthy at \($rate) requests/s" else "opsg-sim fault \($fault) on \($target | if . == "" then "fleet" else . end), intensity 0.9\(if $develop == 30 and $samples == 12 then "" else ", \($samples) samples from \($develop) s after the onset" end)" end),
      seed: $seed,
      source: "recorded: opsg-sim (real-time clock) scraped by opsg-scrape, trimmed and re-sealed (tests/bench/record_sim_corpus.sh)"}' \
    > "$dir/case.json"
  rm -rf "$tmp"
}

cases=()
for seed in 11 12 13 14 15; do
  dep=$([ $((seed % 2)) -eq 0 ] && echo stable || echo canary)
  rep=$([ $((seed % 2)) -eq 0 ] && echo stable-$((seed % 3)) || echo canary-0)
  node=gpu-node-$([ $((seed % 2)) -eq 0 ] && echo a || echo b)
  # A saturated stable cannot shed its excess onto the one canary: the plan scales it up.
  kv_fix=$([ "$dep" = stable ] && echo scale_replicas || echo shift_traffic)
  cases+=("sim-kv_cache_saturation-$seed kv_cache_saturation $dep $seed kv_cache_saturation $kv_fix")
  cases+=("sim-traffic_surge-$seed traffic_surge '' $seed traffic_surge scale_replicas")
  cases+=("sim-canary_regression-$seed canary_regression canary $seed canary_regression rollback_config")
  cases+=("sim-replica_down-$seed replica_crash $rep $seed replica_down restart_replica")
  cases+=("sim-gpu_fault-$seed gpu_fault $rep $seed gpu_fault cordon_node")
  cases+=("sim-memory_leak-$seed memory_leak $rep $seed memory_leak restart_replica")
  cases+=("sim-network_latency-$seed network_latency $rep $seed network_latency cordon_node")
  cases+=("sim-disk_pressure-$seed disk_pressure $node $seed disk_pressure cleanup_node")
done
# A slow link on a stable replica, which has peers to compare with (itl_above_peers fires);
# 18 and 19 are 5 samples from 5 s after the onset, as the first cron run after it sees it,
# before users' latency SLOs break: there the peer comparison is what makes it actionable.
for seed in 16 17; do
  cases+=("sim-network_latency-$seed network_latency stable-$((seed % 3)) $seed network_latency cordon_node")
done
for seed in 18 19; do
  cases+=("sim-network_latency-$seed network_latency stable-$((seed % 3)) $seed network_latency cordon_node 12 5 5")
done
for seed in 21 22 23 24 25 26 27 28 29 30; do
  cases+=("sim-healthy-$seed healthy '' $seed none none")
done
# Healthy windows at other arrival rates (quiet to busy), for the false-incident rate.
fixed=${#cases[@]}
extra="${HEALTHY_EXTRA:-0}"
for ((i = 0; i < extra; i++)); do
  seed=$((${HEALTHY_SEED0:-31} + i))
  rate=$((8 + 2 * (i % 3)))
  cases+=("sim-healthy-$seed healthy '' $seed none none $rate")
done
if [ -n "${ONLY_HEALTHY_EXTRA:-}" ]; then
  cases=("${cases[@]:fixed}")
fi

running=0
recorded=0
for c in "${cases[@]}"; do
  eval "set -- $c"
  if [ -n "${ONLY:-}" ] && ! [[ $1 =~ $ONLY ]]; then continue; fi
  recorded=$((recorded + 1))
  record "$@" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "recorded $recorded cases under $out" >&2

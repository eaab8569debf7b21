#!/usr/bin/env bash
# Run a campaign file with its arms side by side: one `opsg-replay campaign` process (and so one
# opsg-sim) per arm, in parallel, then one CSV and one summary for them all.
#
#   tests/bench/campaign.sh examples/campaign/readme-run.json examples/campaign/results/readme-run
#
# writes OUT.csv (every trial's row, arms in file order) and OUT.summary.txt (each arm's summary
# table). Arms share nothing but the machine: each sim runs on its own clock at the file's speed,
# and every time is sim time, so the arms do not slow each other's figures down unless the machine
# cannot keep up with the sims (keep the speed at 5 or less on 2 cores). Needs jq and release
# binaries (cargo build --release --bins).
set -euo pipefail
file=${1:?usage: campaign.sh CAMPAIGN.json OUT_PREFIX}
out=${2:?usage: campaign.sh CAMPAIGN.json OUT_PREFIX}
root=$(cd "$(dirname "$0")/../.." && pwd)
bins=${OPSG_BIN_DIR:-$root/target/release}
dir=$(cd "$(dirname "$file")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

arms=$(jq '.arms | length' "$file")
pids=()
for ((i = 0; i < arms; i++)); do
    # The per-arm file sits next to the original, so relative policy paths still resolve.
    one="$dir/.campaign-arm-$i-$$.json"
    jq --argjson i "$i" '.arms = [.arms[$i]]' "$file" >"$one"
    "$bins/opsg-replay" campaign "$one" --bin-dir "$bins" --csv "$tmp/$i.csv" -q \
        --work-dir "$tmp/work-$i" 2>"$tmp/$i.summary" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
rm -f "$dir"/.campaign-arm-*-$$.json
if [ "$status" -ne 0 ]; then
    cat "$tmp"/*.summary >&2
    echo "campaign.sh: an arm failed (exit $status)" >&2
    exit "$status"
fi
{
    head -n 1 "$tmp/0.csv"
    for ((i = 0; i < arms; i++)); do tail -n +2 "$tmp/$i.csv"; done
} >"$out.csv"
for ((i = 0; i < arms; i++)); do grep -E '^(arm |[^ ]+ +[a-z_]+ +[0-9])' "$tmp/$i.summary" || true; done \
    >"$out.summary.txt"
cat "$out.summary.txt"

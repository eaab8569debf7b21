#!/usr/bin/env bash
# CI: replay the recorded incident corpus against the rules, catalog and policy in this repository,
# the way `promtool test rules` tests alert rules. Fails the build (exit 6) when any case no longer
# meets its expectations, printing a diff per failed case; keeps per-case results as an artifact.
#
#   examples/scripts/ci-replay.sh [CORPUS] [RESULTS_CSV]
set -euo pipefail
corpus="${1:-examples/incidents}"
results="${2:-replay-results.csv}"
args=()
[ -f examples/rules.json ] && args+=(--rules examples/rules.json)
[ -f examples/catalog.json ] && args+=(--catalog examples/catalog.json)
opsg-replay "$corpus" --csv "$results" --quiet "${args[@]}"
echo "replay: all cases meet their expectations (results in $results)"

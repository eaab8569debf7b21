#!/usr/bin/env bash
# The cron job: one pass of the whole pipe against a fleet, acting on the outcome.
#
#   * * * * * /usr/local/lib/opsg/cron-job.sh >>/var/log/opsg/cron.log 2>&1
#
# Configuration by environment (all optional):
#   OPSG_TARGETS   scrape targets file                 (default /etc/opsg/targets.json)
#   OPSG_POLICY    gate policy                          (default /etc/opsg/policy.json)
#   OPSG_ACTUATORS exec/verify actuators                (default: built-in opsg-sim admin API)
#   OPSG_LEDGER    the audit ledger                     (default /var/lib/opsg/ledger.jsonl)
#   OPSG_STATE_DIR cooldowns, idempotency keys, spent approvals (default /var/lib/opsg/state)
#   OPSG_NOTIFY    webhook URL for incident summaries   (default: none)
#   OPSG_FLEET_STATE  the fleet's settings for exact plans (weights, config versions): a file,
#                  or an http(s) URL of the fleet admin API's GET /state, fetched once per run
#                  (default: none; the plan then reads them from the targets' labels)
#   OPSG_SAMPLES, OPSG_INTERVAL  samples per run and time between them (default 4 and 15s)
# Overlapping runs are safe (idempotency keys, the ledger lock); flock just avoids wasted work.
set -uo pipefail

targets="${OPSG_TARGETS:-/etc/opsg/targets.json}"
policy="${OPSG_POLICY:-/etc/opsg/policy.json}"
export OPSG_LEDGER="${OPSG_LEDGER:-/var/lib/opsg/ledger.jsonl}"
export OPSG_STATE_DIR="${OPSG_STATE_DIR:-/var/lib/opsg/state}"
actuators=()
[ -n "${OPSG_ACTUATORS:-}" ] && actuators=(--actuators "$OPSG_ACTUATORS")
notify=()
[ -n "${OPSG_NOTIFY:-}" ] && notify=(--notify "$OPSG_NOTIFY")
mkdir -p "$OPSG_STATE_DIR"
fleet=()
case "${OPSG_FLEET_STATE:-}" in
  "") ;;
  http://* | https://*)
    snapshot=$(mktemp) && trap 'rm -f "$snapshot"' EXIT
    if curl -sf --max-time 10 "$OPSG_FLEET_STATE" > "$snapshot"; then
      fleet=(--fleet-state "$snapshot")
    else
      echo "opsg cron: fleet state unavailable from $OPSG_FLEET_STATE; planning without it"
    fi ;;
  *) fleet=(--fleet-state "$OPSG_FLEET_STATE") ;;
esac

exec 9>"$OPSG_STATE_DIR/cron.lock"
flock -n 9 || { echo "opsg cron: previous run still going; skipping"; exit 0; }

opsg-scrape --targets "$targets" --samples "${OPSG_SAMPLES:-4}" --interval "${OPSG_INTERVAL:-15s}" --quiet \
  | opsg-triage --history "$OPSG_LEDGER" \
  | opsg-plan --history "$OPSG_LEDGER" "${fleet[@]}" \
  | opsg-gate --policy "$policy" --ledger "$OPSG_LEDGER" \
  | opsg-exec --execute "${actuators[@]}" \
  | opsg-verify "${actuators[@]}" \
  | opsg-audit append "${notify[@]}" >/dev/null
status=$?

# One exit-code table for every opsg binary (see `man opsg-audit`, EXIT STATUS).
case $status in
  0)  echo "opsg: incident resolved" ;;
  10) : ;;                                             # no incident: the quiet, common case
  11) echo "opsg: a plan awaits approval: opsg-audit show --ledger $OPSG_LEDGER | tail" ;;
  12) echo "opsg: policy blocked the plan" ;;
  13) echo "opsg: the fix did not work and was rolled back: page a human" ;;
  14) echo "opsg: an action failed: page a human" ;;
  15) echo "opsg: could not verify (telemetry missing or stale)" ;;
  16) echo "opsg: dry run only (policy mode is dry_run)" ;;
  5)  echo "opsg: TAMPERING detected in the ledger: page security" ;;
  *)  echo "opsg: the pipe failed with status $status" ;;
esac
exit "$status"

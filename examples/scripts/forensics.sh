#!/usr/bin/env bash
# Ad hoc forensics over an opsg ledger with jq: verify it first, then ask it questions.
#
#   examples/scripts/forensics.sh LEDGER [INCIDENT]
#
# Each ledger line is {"ledger","seq","appended","record":{…the record…},"prev","hash"}, so every
# query below starts from .record (schemas/HASHING.md, section 5).
set -euo pipefail
ledger="$1"
incident="${2:-}"

echo "== integrity"
opsg-audit verify --ledger "$ledger"

echo "== incidents: id, class, first seen, outcome"
jq -r 'select(.record.kind == "report")
       | [.record.incident // "-", .record.body.class // "-", .record.body.milestones.first_anomalous // "-",
          .record.body.outcome] | @tsv' "$ledger"

echo "== actions executed (live), by target"
jq -r 'select(.record.kind == "execution") | .record.body.actions[]
       | select(.outcome == "succeeded") | [.started, .request.url // (.request.argv | join(" ")), .status] | @tsv' "$ledger"

echo "== rollbacks"
jq -r 'select(.record.kind == "verification" and .record.body.rollback != null)
       | [.record.incident, .record.created, (.record.body.rollback.actions | length)] | @tsv' "$ledger"

echo "== decisions that were blocked, and every reason"
jq -r 'select(.record.kind == "decision" and .record.body.verdict == "blocked")
       | .record.incident as $i | .record.body.reasons[] | [$i, .code, .message] | @tsv' "$ledger"

if [ -n "$incident" ]; then
  echo "== timeline of $incident"
  opsg-audit show --ledger "$ledger" --incident "$incident"
fi

echo "== MTTR per class"
opsg-audit stats --ledger "$ledger" --format table

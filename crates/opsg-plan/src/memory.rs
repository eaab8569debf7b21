//! Runbook memory: what resolved the same class (and fingerprint) before, from a verified ledger.
//!
//! Each past incident in the ledger contributes its class and fingerprint (finding), its first
//! action (plan) and how it ended (report, else verification) with the time to resolve. A
//! candidate plan is scored by the Laplace-smoothed success rate of its first action on the same
//! class, `(resolved + 1) / (attempts + 2)`, where a past incident with the same fingerprint counts
//! twice (the same targets failing the same way is the strongest precedent). Candidates are
//! ranked by score, ties kept in catalog order, so an empty history changes nothing.

use opsg_core::exit::Outcome;
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::plan::{ActionType, Precedent};
use opsg_core::time::Timestamp;
use opsg_triage::history::LedgerEntry;
use serde_json::Value;
use std::collections::BTreeMap;

/// One past incident as the ledger tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastIncident {
    /// Incident id.
    pub incident: String,
    /// Its class.
    pub class: Option<IncidentClass>,
    /// Its fingerprint.
    pub fingerprint: Option<String>,
    /// The first planned action.
    pub first_action: Option<ActionType>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Seconds from first anomaly to resolution.
    pub time_to_resolve_s: Option<f64>,
    /// Ledger sequence of its last record (recency).
    pub last_seq: u64,
}

/// Past incidents in ledger order.
pub fn past_incidents(entries: &[LedgerEntry]) -> Vec<PastIncident> {
    let mut by_id: BTreeMap<String, PastIncident> = BTreeMap::new();
    let mut first_anomalous: BTreeMap<String, Timestamp> = BTreeMap::new();
    for e in entries {
        let r = &e.record;
        let Some(id) = r.get("incident").and_then(Value::as_str) else { continue };
        let body = &r["body"];
        let p = by_id.entry(id.to_string()).or_insert_with(|| PastIncident {
            incident: id.to_string(),
            class: None,
            fingerprint: None,
            first_action: None,
            outcome: None,
            time_to_resolve_s: None,
            last_seq: 0,
        });
        p.last_seq = e.seq;
        match r.get("kind").and_then(Value::as_str) {
            Some("finding") => {
                p.class = serde_json::from_value(body["class"].clone()).ok();
                p.fingerprint = body["fingerprint"].as_str().map(str::to_string);
                if let Some(t) = body["first_anomalous_at"]
                    .as_str()
                    .and_then(|t| Timestamp::parse_rfc3339(t).ok())
                {
                    first_anomalous.insert(id.to_string(), t);
                }
            }
            Some("plan") => {
                if let Some(a) = body["actions"].get(0) {
                    p.first_action = serde_json::from_value(a["action"].clone()).ok();
                }
            }
            Some("verification") if p.outcome.is_none() || p.time_to_resolve_s.is_none() => {
                p.outcome = serde_json::from_value(body["outcome"].clone()).ok().or(p.outcome);
                let verified =
                    body["verified_at"].as_str().and_then(|t| Timestamp::parse_rfc3339(t).ok());
                if p.outcome == Some(Outcome::Resolved)
                    && let (Some(v), Some(f)) = (verified, first_anomalous.get(id))
                {
                    p.time_to_resolve_s = Some(((v.millis() - f.millis()).max(0)) as f64 / 1000.0);
                }
            }
            Some("report") => {
                if let Ok(o) = serde_json::from_value(body["outcome"].clone()) {
                    p.outcome = Some(o);
                }
                if let Some(m) = body["mttr_s"].as_f64() {
                    p.time_to_resolve_s = Some(m);
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<PastIncident> = by_id.into_values().collect();
    out.sort_by_key(|p| p.last_seq);
    out
}

fn attempted(o: Outcome) -> bool {
    matches!(o, Outcome::Resolved | Outcome::RolledBack | Outcome::Failed | Outcome::Inconclusive)
}

/// The score of a first action for a class and fingerprint, and the counts behind it.
pub fn score(
    past: &[PastIncident],
    class: IncidentClass,
    fingerprint: &str,
    action: ActionType,
) -> (f64, u32, u32) {
    let (mut wins, mut tries) = (0u32, 0u32);
    for p in past.iter().filter(|p| p.class == Some(class) && p.first_action == Some(action)) {
        let Some(o) = p.outcome.filter(|o| attempted(*o)) else { continue };
        let w = if p.fingerprint.as_deref() == Some(fingerprint) { 2 } else { 1 };
        tries += w;
        if o == Outcome::Resolved {
            wins += w;
        }
    }
    ((wins as f64 + 1.0) / (tries as f64 + 2.0), wins, tries)
}

/// Precedents to cite: same class with a known first action and outcome; same fingerprint first,
/// then most recent; at most `limit`.
pub fn precedents(
    past: &[PastIncident],
    class: IncidentClass,
    fingerprint: &str,
    limit: usize,
) -> Vec<Precedent> {
    let mut rel: Vec<&PastIncident> = past
        .iter()
        .filter(|p| p.class == Some(class) && p.first_action.is_some() && p.outcome.is_some())
        .collect();
    rel.sort_by(|a, b| {
        let fa = a.fingerprint.as_deref() == Some(fingerprint);
        let fb = b.fingerprint.as_deref() == Some(fingerprint);
        fb.cmp(&fa).then(b.last_seq.cmp(&a.last_seq))
    });
    rel.into_iter()
        .take(limit)
        .filter_map(|p| {
            Some(Precedent {
                incident: p.incident.clone(),
                action: p.first_action?,
                outcome: p.outcome?,
                time_to_resolve_s: p.time_to_resolve_s,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(id: &str, fp: &str, action: ActionType, outcome: Outcome, seq: u64) -> PastIncident {
        PastIncident {
            incident: id.into(),
            class: Some(IncidentClass::ReplicaDown),
            fingerprint: Some(fp.into()),
            first_action: Some(action),
            outcome: Some(outcome),
            time_to_resolve_s: None,
            last_seq: seq,
        }
    }

    #[test]
    fn laplace_score_counts_the_same_fingerprint_twice() {
        let history = [
            past("a", "fp", ActionType::RestartReplica, Outcome::Resolved, 1),
            past("b", "other", ActionType::RestartReplica, Outcome::RolledBack, 2),
            // Blocked or dry-run incidents were never attempted: they do not count.
            past("c", "fp", ActionType::RestartReplica, Outcome::Blocked, 3),
        ];
        let (s, wins, tries) =
            score(&history, IncidentClass::ReplicaDown, "fp", ActionType::RestartReplica);
        assert_eq!((wins, tries), (2, 3));
        assert!((s - 3.0 / 5.0).abs() < 1e-12);
        // No history: 1/2, so catalog order decides.
        assert_eq!(score(&[], IncidentClass::ReplicaDown, "fp", ActionType::RestartReplica).0, 0.5);
        // Another class does not count.
        assert_eq!(score(&history, IncidentClass::GpuFault, "fp", ActionType::RestartReplica).2, 0);
    }

    #[test]
    fn precedents_cite_the_same_fingerprint_first_then_the_most_recent() {
        let history = [
            past("old-same", "fp", ActionType::RestartReplica, Outcome::Resolved, 1),
            past("new-other", "x", ActionType::RestartReplica, Outcome::Failed, 9),
            past("mid-other", "y", ActionType::RestartReplica, Outcome::Resolved, 5),
        ];
        let cited: Vec<String> = precedents(&history, IncidentClass::ReplicaDown, "fp", 2)
            .into_iter()
            .map(|p| p.incident)
            .collect();
        assert_eq!(cited, ["old-same", "new-other"]);
    }
}

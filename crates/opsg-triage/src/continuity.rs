//! One incident id across cron runs of the same ongoing problem.
//!
//! A finding's fingerprint (class + sorted affected targets) is looked up among earlier findings,
//! from a state directory (`DIR/incidents.json`, written atomically by triage) or from an
//! `opsg-audit` ledger (verified first). When the same fingerprint was last seen within the
//! continuity window, and its incident was not reported resolved, the id is reused; otherwise a
//! new id is derived from the fingerprint and the time the anomaly began, so a replay with the
//! same input writes the same id.

use crate::history::LedgerEntry;
use opsg_core::Result;
use opsg_core::seal::HashHex;
use opsg_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An earlier finding with an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its incident id.
    pub incident: String,
    /// When the incident was first raised (RFC 3339).
    pub opened: String,
    /// When it was last seen (RFC 3339).
    pub last_seen: String,
    /// True once a report said it was resolved.
    #[serde(default)]
    pub resolved: bool,
}

/// A new incident id: `inc-` + 16 hex of SHA-256 over the fingerprint and the opening time.
pub fn new_id(fingerprint: &str, opened: Timestamp) -> String {
    let material = format!("{fingerprint}\n{}", opened.to_rfc3339());
    format!("inc-{}", HashHex::of(material.as_bytes()).short(16))
}

/// The incident id for a fingerprint now: a prior one continued (with its opening time), or new.
pub fn incident_id(
    fingerprint: &str,
    opened: Timestamp,
    now: Timestamp,
    window_ms: i64,
    priors: &[Prior],
) -> (String, Option<String>) {
    let best = priors
        .iter()
        .filter(|p| p.fingerprint == fingerprint && !p.resolved)
        .filter(|p| {
            Timestamp::parse_rfc3339(&p.last_seen)
                .is_ok_and(|seen| seen <= now && now.millis() - seen.millis() <= window_ms)
        })
        .max_by(|a, b| a.last_seen.cmp(&b.last_seen));
    match best {
        Some(p) => (p.incident.clone(), Some(p.opened.clone())),
        None => (new_id(fingerprint, opened), None),
    }
}

/// Earlier findings recorded in a verified ledger, with resolution from its reports.
pub fn from_ledger(entries: &[LedgerEntry]) -> Vec<Prior> {
    let mut priors: Vec<Prior> = Vec::new();
    for e in entries {
        let r = &e.record;
        let kind = r.get("kind").and_then(|k| k.as_str());
        let incident = r.get("incident").and_then(|i| i.as_str());
        let created = r.get("created").and_then(|c| c.as_str()).unwrap_or_default();
        match (kind, incident) {
            (Some("finding"), Some(id)) => {
                let body = &r["body"];
                if body.get("status").and_then(|s| s.as_str()) != Some("incident") {
                    continue;
                }
                let Some(fp) = body.get("fingerprint").and_then(|f| f.as_str()) else { continue };
                match priors.iter_mut().find(|p| p.incident == id && p.fingerprint == fp) {
                    Some(p) => p.last_seen = created.to_string(),
                    None => priors.push(Prior {
                        fingerprint: fp.to_string(),
                        incident: id.to_string(),
                        opened: body
                            .get("first_anomalous_at")
                            .and_then(|f| f.as_str())
                            .unwrap_or(created)
                            .to_string(),
                        last_seen: created.to_string(),
                        resolved: false,
                    }),
                }
            }
            (Some("report" | "verification"), Some(id))
                if r["body"].get("outcome").and_then(|o| o.as_str()) == Some("resolved") =>
            {
                for p in priors.iter_mut().filter(|p| p.incident == id) {
                    p.resolved = true;
                }
            }
            _ => {}
        }
    }
    priors
}

/// The state file in a `--state-dir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version (1).
    pub version: u32,
    /// Open incidents by fingerprint.
    pub incidents: Vec<Prior>,
}

/// Entries not seen for this long are dropped from the state file.
const KEEP_MS: i64 = 7 * 86_400_000;

impl State {
    /// Load `DIR/incidents.json` (empty when absent).
    pub fn load(dir: &Path) -> Result<State> {
        let state = crate::state_dir::load(dir, "incidents.json", "triage state")?;
        Ok(state.unwrap_or(State { version: 1, incidents: Vec::new() }))
    }

    /// The priors it holds.
    pub fn priors(&self) -> Vec<Prior> {
        self.incidents.clone()
    }

    /// Record that `fingerprint` is incident `id` as of `now`; forget entries unseen for a week.
    pub fn record(
        mut self,
        fingerprint: &str,
        id: &str,
        opened: Timestamp,
        now: Timestamp,
    ) -> State {
        let seen = now.to_rfc3339();
        match self.incidents.iter_mut().find(|p| p.fingerprint == fingerprint && p.incident == id) {
            Some(p) => p.last_seen = seen,
            None => self.incidents.push(Prior {
                fingerprint: fingerprint.to_string(),
                incident: id.to_string(),
                opened: opened.to_rfc3339(),
                last_seen: seen,
                resolved: false,
            }),
        }
        self.incidents.retain(|p| {
            Timestamp::parse_rfc3339(&p.last_seen)
                .is_ok_and(|t| now.millis() - t.millis() <= KEEP_MS)
        });
        self.version = 1;
        self
    }

    /// Write atomically (a temporary file renamed into place).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::state_dir::save(dir, "incidents.json", self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(fp: &str, id: &str, seen: i64, resolved: bool) -> Prior {
        Prior {
            fingerprint: fp.into(),
            incident: id.into(),
            opened: Timestamp(0).to_rfc3339(),
            last_seen: Timestamp(seen).to_rfc3339(),
            resolved,
        }
    }

    #[test]
    fn same_fingerprint_within_the_window_continues() {
        let now = Timestamp(3_600_000);
        let priors = [prior("fp", "inc-old", 3_000_000, false)];
        assert_eq!(incident_id("fp", now, now, 1_800_000, &priors).0, "inc-old");
        // Outside the window, resolved, or another fingerprint: a new id.
        assert_ne!(incident_id("fp", now, now, 60_000, &priors).0, "inc-old");
        assert_ne!(
            incident_id("fp", now, now, 1_800_000, &[prior("fp", "inc-old", 3_000_000, true)]).0,
            "inc-old"
        );
        assert_ne!(incident_id("other", now, now, 1_800_000, &priors).0, "inc-old");
        // New ids are deterministic.
        assert_eq!(incident_id("x", now, now, 0, &[]).0, incident_id("x", now, now, 0, &[]).0);
    }

    #[test]
    fn state_round_trips_and_forgets_old_entries() {
        let dir = std::env::temp_dir().join(format!("opsg-triage-state-{}", std::process::id()));
        let s = State::load(&dir).unwrap().record("fp", "inc-1", Timestamp(0), Timestamp(1000));
        s.save(&dir).unwrap();
        let back = State::load(&dir).unwrap();
        assert_eq!(back, s);
        let later = back.record("fp2", "inc-2", Timestamp(0), Timestamp(KEEP_MS + 2000));
        assert_eq!(later.incidents.len(), 1);
        assert_eq!(later.incidents[0].incident, "inc-2");
        std::fs::remove_dir_all(dir).ok();
    }
}

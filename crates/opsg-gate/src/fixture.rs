//! Sealed chains built in code: what tests (here, in `opsg-exec`, `opsg-verify` and the end-to-end
//! suite) feed the acting stages when they do not run the whole pipe.

use opsg_core::kinds::finding::{FindingBody, FindingStatus, IncidentClass, Method};
use opsg_core::kinds::plan::{Action, ActionType, BlastRadius, PlanBody, SafetyClass};
use opsg_core::record::{Kind, Stamp};
use opsg_core::seal::GENESIS;
use opsg_core::stream::{Chain, ChainWriter, Limits, read_chain};
use opsg_core::time::Timestamp;
use std::collections::BTreeMap;

/// Builds a sealed chain record by record.
pub struct ChainBuilder {
    now: Timestamp,
    out: Vec<u8>,
    last: opsg_core::seal::HashHex,
    run: String,
    incident: Option<String>,
}

impl ChainBuilder {
    /// A new chain whose records are stamped `now`.
    pub fn new(now: Timestamp) -> ChainBuilder {
        ChainBuilder {
            now,
            out: Vec::new(),
            last: GENESIS,
            run: "run-fixture".into(),
            incident: None,
        }
    }

    /// Continue an existing chain (a real observation from `opsg-scrape`, say): the records
    /// appended link to its last one and join its run.
    pub fn after(bytes: &[u8], now: Timestamp) -> ChainBuilder {
        let chain = read_chain(bytes, "fixture", &Limits::default()).unwrap_or_default();
        ChainBuilder {
            now,
            out: bytes.to_vec(),
            last: chain.last_hash(),
            run: chain.run().unwrap_or("run-fixture").to_string(),
            incident: chain.incident().map(str::to_string),
        }
    }

    /// Set the incident id for the following records.
    pub fn incident(mut self, id: &str) -> ChainBuilder {
        self.incident = Some(id.into());
        self
    }

    /// Append a record of `kind` written by `tool`.
    pub fn push<B: serde::Serialize>(
        mut self,
        kind: Kind,
        tool: &'static str,
        body: B,
    ) -> ChainBuilder {
        let stamp = Stamp { tool, version: "0.0.0", now: self.now };
        let mut rec =
            opsg_core::Record::new(kind, &stamp, self.run.clone(), self.incident.clone(), body);
        let mut w = ChainWriter::new(&mut self.out, self.last);
        if let Ok(h) = w.append(&mut rec) {
            self.last = h;
        }
        let _ = w.finish();
        self
    }

    /// A finding (incident or not) of `class`.
    pub fn finding(self, class: IncidentClass, incident: bool) -> ChainBuilder {
        let body = FindingBody {
            status: if incident { FindingStatus::Incident } else { FindingStatus::NoIncident },
            class: if incident { class } else { IncidentClass::None },
            fingerprint: "0".repeat(64),
            summary: format!("{class}"),
            affected_targets: Vec::new(),
            first_anomalous_at: None,
            anomalies: Vec::new(),
            hypotheses: Vec::new(),
            telemetry: Default::default(),
            method: Method::rules(),
        };
        self.incident("inc-fixture").push(Kind::Finding, "opsg-triage", body)
    }

    /// A plan.
    pub fn plan(self, plan: PlanBody) -> ChainBuilder {
        self.push(Kind::Plan, "opsg-plan", plan)
    }

    /// The bytes (JSON Lines).
    pub fn bytes(&self) -> Vec<u8> {
        self.out.clone()
    }

    /// The checked chain.
    pub fn chain(&self) -> Chain {
        read_chain(&self.out[..], "fixture", &Limits::default()).unwrap_or_default()
    }
}

/// A plan with one action per `(action, target, safety)`.
pub fn plan(
    class: IncidentClass,
    confidence: f64,
    actions: &[(ActionType, &str, SafetyClass)],
) -> PlanBody {
    PlanBody {
        class,
        confidence,
        rationale: "fixture".into(),
        actions: actions
            .iter()
            .enumerate()
            .map(|(i, (action, target, safety))| Action {
                index: i as u32,
                action: *action,
                target: (*target).into(),
                params: BTreeMap::new(),
                safety: *safety,
                blast_radius: BlastRadius { replicas: 1, traffic_share: 0.1 },
                expected_effect: None,
                inverse: None,
                prior_state: BTreeMap::new(),
            })
            .collect(),
        precedents: Vec::new(),
        method: Method::rules(),
    }
}

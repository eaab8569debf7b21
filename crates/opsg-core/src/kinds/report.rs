//! `opsg.report/v1`: the incident summary `opsg-audit` writes after the chain it appended.

use crate::exit::Outcome;
use serde::{Deserialize, Serialize};

/// The milestones of an incident (RFC 3339 each, absent when not reached).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Milestones {
    /// The first anomalous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomalous: Option<String>,
    /// The finding that raised the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<String>,
    /// The first action executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated: Option<String>,
    /// The verification that showed the fix worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

/// Where the chain landed in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerPosition {
    /// The ledger path as given.
    pub path: String,
    /// The first ledger sequence number of this append.
    pub first_seq: u64,
    /// The last ledger sequence number of this append (the report's own line is the next).
    pub last_seq: u64,
}

/// The report body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportBody {
    /// The incident's outcome.
    pub outcome: Outcome,
    /// The incident class, when there was an incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Milestones.
    pub milestones: Milestones,
    /// Seconds from first anomalous sample to verified resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mttr_s: Option<f64>,
    /// Seconds from first anomalous sample to detection (the finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_detect_s: Option<f64>,
    /// Seconds from first anomalous sample to the first action executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_mitigate_s: Option<f64>,
    /// Actions executed, total and by safety class.
    pub actions: ActionCounts,
    /// Where the records were appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerPosition>,
    /// Why the outcome is what it is, when the chain alone does not say (e.g. no finding on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How many records the report summarizes (the chain it follows), by kind in pipeline order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordCounts>,
    /// The webhook notification made for this report (`opsg-audit --notify`), and how it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
}

/// A webhook notification and its result. A failure is recorded here, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Where it went, scheme and host only (a webhook's path is often its secret).
    pub endpoint: String,
    /// `sent` (a 2xx answer) or `failed`.
    pub status: String,
    /// The HTTP status, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReportBody {
    /// A report with an outcome and nothing else known yet (milestones, counts and the ledger
    /// position are filled in by `opsg-audit`).
    pub fn new(outcome: Outcome) -> ReportBody {
        ReportBody {
            outcome,
            class: None,
            milestones: Milestones::default(),
            mttr_s: None,
            time_to_detect_s: None,
            time_to_mitigate_s: None,
            actions: ActionCounts::default(),
            ledger: None,
            note: None,
            records: None,
            notification: None,
        }
    }
}

/// Records of each kind on the chain a report follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// All records.
    pub total: u32,
    /// Observations.
    pub observation: u32,
    /// Findings.
    pub finding: u32,
    /// Plans.
    pub plan: u32,
    /// Decisions.
    pub decision: u32,
    /// Executions.
    pub execution: u32,
    /// Verifications.
    pub verification: u32,
    /// Earlier reports (a chain that was audited before).
    pub report: u32,
}

/// Actions counted by safety class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionCounts {
    /// All executed actions.
    pub total: u32,
    /// Safe ones.
    pub safe: u32,
    /// Impactful ones.
    pub impactful: u32,
    /// Destructive ones.
    pub destructive: u32,
    /// Inverses run by a rollback.
    pub rolled_back: u32,
}

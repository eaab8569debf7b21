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
    /// Actions executed, total and by safety class.
    pub actions: ActionCounts,
    /// Where the records were appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerPosition>,
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

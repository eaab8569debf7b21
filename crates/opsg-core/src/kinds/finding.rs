//! `opsg.finding/v1`: anomalies, the incident class, and ranked root-cause hypotheses.

use crate::float::Float;
use serde::{Deserialize, Serialize};

/// Whether triage found an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Something is wrong: later stages plan, gate, act.
    Incident,
    /// Nothing is wrong: later stages pass the chain through and do nothing.
    NoIncident,
}

/// The typed incident classes triage can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentClass {
    /// KV cache near full, preemptions climbing.
    KvCacheSaturation,
    /// Requests waiting far beyond capacity.
    QueueBacklog,
    /// A regression on the canary alone, after a config change on it.
    CanaryRegression,
    /// A replica stopped answering.
    ReplicaDown,
    /// XID / ECC / thermal or power throttling on a GPU.
    GpuFault,
    /// Process memory growing without bound.
    MemoryLeak,
    /// Arrivals well above normal across the fleet.
    TrafficSurge,
    /// Latency added on one replica's network path.
    NetworkLatency,
    /// A node's filesystem near full.
    DiskPressure,
    /// Host memory pressure or OOM kills.
    HostMemoryPressure,
    /// Anomalies that fit no known class.
    Unknown,
    /// No incident (used with `status: no_incident`).
    None,
}

impl IncidentClass {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentClass::KvCacheSaturation => "kv_cache_saturation",
            IncidentClass::QueueBacklog => "queue_backlog",
            IncidentClass::CanaryRegression => "canary_regression",
            IncidentClass::ReplicaDown => "replica_down",
            IncidentClass::GpuFault => "gpu_fault",
            IncidentClass::MemoryLeak => "memory_leak",
            IncidentClass::TrafficSurge => "traffic_surge",
            IncidentClass::NetworkLatency => "network_latency",
            IncidentClass::DiskPressure => "disk_pressure",
            IncidentClass::HostMemoryPressure => "host_memory_pressure",
            IncidentClass::Unknown => "unknown",
            IncidentClass::None => "none",
        }
    }
}

impl std::fmt::Display for IncidentClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The finding body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingBody {
    /// Incident or not.
    pub status: FindingStatus,
    /// The leading class (`none` when there is no incident).
    pub class: IncidentClass,
    /// Stable across runs of the same ongoing problem: SHA-256 of class + sorted affected targets.
    pub fingerprint: String,
    /// One line for humans.
    pub summary: String,
    /// Targets the incident touches.
    #[serde(default)]
    pub affected_targets: Vec<String>,
    /// The first anomalous sample time (RFC 3339): the start of MTTR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_anomalous_at: Option<String>,
    /// Rules that fired, with the series, values and thresholds.
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
    /// Ranked root-cause hypotheses, best first.
    #[serde(default)]
    pub hypotheses: Vec<Hypothesis>,
    /// What the telemetry was like (partial, stale): it lowers confidence and is said here.
    #[serde(default)]
    pub telemetry: TelemetryQuality,
    /// How the finding was produced (rules, or an LLM advisor, and any fallback).
    pub method: Method,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The rule's name.
    pub rule: String,
    /// The target it fired on.
    pub target: String,
    /// The signal (normalized metric name or derived signal like `ttft_p95_s`).
    pub signal: String,
    /// The observed value (last sample in the window).
    pub value: Float,
    /// The comparison: `>`, `>=`, `<`, `<=`.
    pub op: String,
    /// The threshold.
    pub threshold: Float,
    /// Samples in the window that breached the threshold.
    pub samples_breaching: u32,
    /// Samples required (`for`).
    pub for_samples: u32,
    /// When the breach began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// A candidate root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// The class it would make the incident.
    pub class: IncidentClass,
    /// The cause in words.
    pub cause: String,
    /// Confidence in [0, 1] (see the triage man page for how it is computed).
    pub confidence: f64,
    /// Targets it implicates.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Rules (anomaly names) and evidence hashes supporting it.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// How trustworthy the telemetry behind a finding was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryQuality {
    /// Targets observed.
    pub targets_total: u32,
    /// Targets up at the last sample.
    pub targets_up: u32,
    /// Targets whose samples were stale.
    #[serde(default)]
    pub stale_targets: Vec<String>,
    /// Notes (missing series, partial windows).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Which method produced a finding or plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    /// `rules` (deterministic) or `llm` (an advisor's answer, validated).
    pub kind: String,
    /// The model, when an advisor was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why the advisor's answer was not used, when it was asked and fell back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

impl Method {
    /// The deterministic rules method.
    pub fn rules() -> Method {
        Method { kind: "rules".into(), model: None, fallback_reason: None }
    }
}

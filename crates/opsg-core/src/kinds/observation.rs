//! `opsg.observation/v1`: the signals `opsg-scrape` collected over a window.
//!
//! Raw payloads never travel in the record: each target's scrape is summarized into the compact
//! series triage needs, and the payload itself is referenced by content hash in the envelope's
//! `evidence`. Metric names are normalized to vLLM's current (V1) names, so triage need not know
//! which vLLM version served them; the name the server used is kept in `source_name`.

use crate::float::Float;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything one run of `opsg-scrape` saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservationBody {
    /// First and last sample time of the window (RFC 3339).
    pub window: Window,
    /// Seconds between samples (`--interval`); 0 for a single sample.
    pub interval_s: f64,
    /// One entry per scraped target (HTTP `/metrics`, a file, stdin).
    #[serde(default)]
    pub targets: Vec<TargetObservation>,
    /// Results of Prometheus HTTP API queries (`--prometheus URL --query PROMQL`).
    #[serde(default)]
    pub queries: Vec<QueryResult>,
    /// Host signals from procfs (`--host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<serde_json::Value>,
    /// GPU state from NVML (`--gpu`); says "unavailable" and why when there is no NVML or GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<serde_json::Value>,
    /// cgroup v2 stats of named services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<serde_json::Value>,
    /// Active alerts from an Alertmanager or a webhook payload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<serde_json::Value>,
    /// Error-signature counts from bounded log tails (`--log`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<serde_json::Value>,
    /// How to repeat each HTTP target's request (header sources, CA file), by target name, so a
    /// later re-scrape (`opsg-verify`) reaches a target that needs them. References only: a secret
    /// is named by the environment variable or file it comes from, never written here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scrape_configs: BTreeMap<String, ScrapeConfig>,
}

/// Per-target HTTP request settings, as a targets file gives them (`headers`, `ca_file`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeConfig {
    /// Request headers by name, each a literal (non-secret) value or where to read the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderSource>,
    /// A PEM file of the CA certificates to trust for this target (an internal CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// For a target read through a Prometheus' `/federate` (`source` `federate:<URL>`): the
    /// `match[]` selectors, so a re-measurement federates the same series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federate: Vec<String>,
}

impl ScrapeConfig {
    /// True when there is nothing to repeat (no headers, no CA file, no selectors).
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.ca_file.is_none() && self.federate.is_empty()
    }
}

/// Where a request header's value comes from. Secrets come from the environment or a file read
/// at request time, so only the variable's name or the file's path is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderSource {
    /// A literal value, for what is not secret (a tenant id such as `X-Scope-OrgID`).
    Value(String),
    /// The value of an environment variable, after an optional prefix (`Bearer `).
    Env {
        /// The variable's name.
        env: String,
        /// Text put before the value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// The first line of a file (as Prometheus' `bearer_token_file`), after an optional prefix.
    File {
        /// The file's path.
        file: String,
        /// Text put before the value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

/// The time span an observation covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First sample time.
    pub start: String,
    /// Last sample time.
    pub end: String,
}

/// How a target answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Every sample scraped and parsed.
    Up,
    /// Connection refused or host unreachable: the target is not serving.
    Down,
    /// Connected but no answer within the timeout.
    Timeout,
    /// Answered with something unusable (HTTP 500, a body over the cap, unparseable exposition).
    Error,
}

/// One scraped target over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetObservation {
    /// The target's name (from the targets file, else derived from the URL or path).
    pub name: String,
    /// Where it was read from: a URL, a file path, or `-` for stdin.
    pub source: String,
    /// Labels from the targets file: `deployment`, `role` (canary/stable), `route`, `node`, …
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The status of the last sample (the one triage trusts most).
    pub status: TargetStatus,
    /// Why, when not `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One entry per sample attempt.
    #[serde(default)]
    pub samples: Vec<SampleInfo>,
    /// The series triage needs, compact: one entry per series, one point per successful sample.
    #[serde(default)]
    pub series: Vec<Series>,
}

/// One sample attempt of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleInfo {
    /// When the scrape started (RFC 3339).
    pub at: String,
    /// How it went.
    pub status: TargetStatus,
    /// How long it took, milliseconds.
    pub duration_ms: f64,
    /// Why, when not `up`; for an `up` sample marked stale by its timestamps, why it is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True when the payload's own timestamps (or a replayed capture) are older than the window
    /// allows: the values are not current and lower triage's confidence.
    #[serde(default)]
    pub stale: bool,
    /// SHA-256 of the raw payload, when `--evidence-dir` stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::seal::HashHex>,
}

/// The metric type of a series, as the exposition declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A classic histogram (buckets, sum, count).
    Histogram,
    /// A summary (quantiles, sum, count).
    Summary,
    /// Untyped / unknown.
    Untyped,
}

/// One series over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The normalized metric name (vLLM V1 spelling, e.g. `vllm:kv_cache_usage_perc`); for a
    /// histogram, the family name without `_bucket`. Counters keep their exposed sample name
    /// (`vllm:prompt_tokens_total`) in both text 0.0.4 and OpenMetrics; a summary gives one series
    /// per `quantile` plus `_sum` and `_count`; `_created` samples are never series.
    pub name: String,
    /// The name the server exposed, when normalization changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The type.
    #[serde(rename = "type")]
    pub metric_type: MetricType,
    /// Labels (without `le` for histograms).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// For histograms: the upper bounds of the buckets, ascending, ending with `+Inf`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub le: Vec<Float>,
    /// One point per successful sample, in time order.
    pub points: Vec<Point>,
}

/// A value at a time. Scalar series use `v`; histograms use `count`, `sum` and `buckets`
/// (cumulative counts aligned with the series' `le`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Milliseconds since the epoch (the sample time, or the exposition's own timestamp).
    pub t: i64,
    /// The value of a scalar series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Float>,
    /// A histogram's `_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Float>,
    /// A histogram's `_sum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<Float>,
    /// A histogram's cumulative bucket counts, aligned with `le`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<Float>,
}

/// The result of one Prometheus HTTP API query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The Prometheus base URL.
    pub endpoint: String,
    /// The PromQL expression.
    pub query: String,
    /// `ok`, or the error Prometheus (or the connection) gave.
    pub status: String,
    /// Why, when not ok; for an ok answer, the warnings Prometheus attached (a partial result,
    /// e.g. a Thanos store down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Result series as compact series (`name` from `__name__` or the query).
    #[serde(default)]
    pub series: Vec<Series>,
}

//! Detection rules: what to compute from which series, the threshold, and how long it must hold.
//!
//! A rules file (JSON, `schemas/rules.schema.json`) replaces the built-in set as a whole; the
//! built-in set is [`Rules::builtin`] and is checked in as `examples/rules.json`. Loading checks, in
//! order: JSON syntax, the schema (unknown fields are refused, naming the field), then meaning: a
//! metric name that is not a known vLLM / node_exporter / DCGM series is refused with the nearest
//! known name (a typo must not silently disable a rule), and the function must suit the metric's
//! type (a quantile needs a histogram, a rate a counter).

use opsg_core::kinds::finding::IncidentClass;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The rules schema, embedded.
pub const SCHEMA: &str = include_str!("../../../schemas/rules.schema.json");

/// How a rule turns series into one value per evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    /// The sample value (gauges); with `over`, divided by another gauge with the same labels.
    #[default]
    Value,
    /// Per-second reset-aware increase of a counter over `range` samples.
    Rate,
    /// Reset-aware increase of a counter over `range` samples.
    Increase,
    /// Increase of the `match`-ed series over the increase of all series of the metric.
    Ratio,
    /// The `q` quantile of a histogram's bucket increases over `range` samples.
    Quantile,
    /// The mean of a histogram's observations over `range` samples: the increase of its `_sum`
    /// over the increase of its `_count` (exact, unlike a quantile interpolated within a bucket).
    Mean,
    /// The fraction of a histogram's observations above `bound` over `range` samples.
    FractionAbove,
    /// SLO burn rate: the bad fraction (a `ratio` for counters, `fraction_above` for histograms)
    /// divided by the error budget `1 - slo`.
    BurnRate,
    /// Growth per hour as a fraction of the mean, from a least-squares fit over the whole window;
    /// 0 unless the fit explains the data (r² >= 0.8), so noise and sawtooth GC do not count.
    Growth,
    /// The gauge value AND `mask`, for bit fields such as DCGM clock event reasons.
    Mask,
}

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    /// The symbol.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    /// True when `v op threshold` holds.
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => v > threshold,
            Op::Ge => v >= threshold,
            Op::Lt => v < threshold,
            Op::Le => v <= threshold,
        }
    }

    /// True for `<` and `<=` (low values are bad).
    pub fn is_low(self) -> bool {
        matches!(self, Op::Lt | Op::Le)
    }
}

/// Persistence: the rule fires when its last N evaluations all breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Persistence {
    /// N consecutive evaluations.
    Samples(u32),
    /// A duration (`45s`, `2m`), converted to samples with the observation's interval.
    Duration(String),
}

impl Persistence {
    /// The number of consecutive breaching evaluations needed, given the sample interval.
    pub fn samples(&self, interval_s: f64) -> u32 {
        match self {
            Persistence::Samples(n) => (*n).max(1),
            Persistence::Duration(d) => {
                let ms = opsg_core::time::parse_duration_ms(d).unwrap_or(0) as f64;
                if interval_s <= 0.0 {
                    1
                } else {
                    ((ms / 1000.0 / interval_s).ceil() as u32).max(1)
                }
            }
        }
    }
}

/// Which targets a rule is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// Every target that has the series.
    #[default]
    All,
    /// Only serving replicas (targets with a `deployment` or `role` label, or `vllm:` series).
    Replicas,
}

/// Peer comparison: judge a target's value against the same value on its peers, the other
/// targets that share its `by` labels (the replicas of one deployment, same role and config),
/// instead of against a fixed number. The rule's value becomes the target's value over the
/// peers' median at the same evaluation time, and `threshold` is that ratio (above 1 for `>`,
/// below 1 for `<`). An evaluation that cannot be compared fairly is not a breach: fewer than
/// `min_peers` peers with data, a peers' median of 0, both sides below `min_value`, or the
/// target's own load (each `load` gauge) above `max_load_ratio` times its peers' median.
///
/// Why: a fixed latency threshold cannot tell "this replica is slow" from "the fleet is busy";
/// replicas of one deployment under the same load should serve at the same speed, so one that
/// is several times slower than its peers has a problem of its own (its node, its GPU, its
/// network path) even while it is below every absolute SLO threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    /// The target labels peers share (a label absent on both counts as shared); a target with
    /// none of them is not compared. Including `role` and `config_version` keeps a canary
    /// with a different config from being judged against stable: that is a canary regression.
    #[serde(default = "default_peer_labels")]
    pub by: Vec<String>,
    /// Peers with a value at the same evaluation time needed for a comparison (default 2): with
    /// one peer, either of the two could be the odd one out.
    #[serde(default = "default_min_peers")]
    pub min_peers: u32,
    /// The larger of the target's value and the peers' median must reach this for the
    /// evaluation to count (default 0): ratios between tiny values are noise, not a problem.
    #[serde(default)]
    pub min_value: f64,
    /// Load gauges (mean over the evaluation's samples, worst label set); when the target's
    /// exceeds `max_load_ratio` times its peers' median on any of them, its extra load explains
    /// the difference and the evaluation does not count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<String>,
    /// See `load` (default 1.5).
    #[serde(default = "default_max_load_ratio")]
    pub max_load_ratio: f64,
}

fn default_peer_labels() -> Vec<String> {
    vec!["deployment".into(), "role".into(), "config_version".into()]
}

fn default_min_peers() -> u32 {
    2
}

fn default_max_load_ratio() -> f64 {
    1.5
}

/// One detection rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A unique name; anomalies cite it.
    pub name: String,
    /// The metric (normalized name), or `up` / `scrape_duration_seconds` (from the scrape itself).
    pub signal: String,
    /// The function.
    #[serde(default, rename = "fn")]
    pub func: Func,
    /// Quantile for `quantile`, in (0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
    /// Bucket bound for `fraction_above` / histogram `burn_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    /// SLO target for `burn_rate` (0.999 = 99.9%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<f64>,
    /// Label filter: a series matches when each named label has one of the listed values (the
    /// numerator of `ratio`/`burn_rate`).
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, Vec<String>>,
    /// For `value`: divide by this gauge (same labels), e.g. available over size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
    /// For `mask`: the bits that count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<u64>,
    /// Samples per evaluation for rate-like functions (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<u32>,
    /// Compare with the target's peers instead of a fixed value; `threshold` is then a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Peers>,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
    /// Persistence.
    #[serde(rename = "for")]
    pub persistence: Persistence,
    /// The incident class this rule points at; absent for symptoms (latency, errors, burn rate),
    /// which are attributed to a cause during correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<IncidentClass>,
    /// How much a firing of this rule alone supports its class, in (0, 1] (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Which targets it applies to.
    #[serde(default, skip_serializing_if = "is_default_applies")]
    pub applies_to: Applies,
    /// Accept a metric name this build does not know (a custom exporter).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub custom_metric: bool,
}

fn is_default_applies(a: &Applies) -> bool {
    *a == Applies::All
}

impl Rule {
    /// The rule's weight (default 0.8).
    pub fn weight(&self) -> f64 {
        self.weight.unwrap_or(0.8)
    }

    /// The derived signal name anomalies report (`vllm:time_to_first_token_seconds:p95`); with
    /// `peers`, `/peer_median` is appended, and the anomaly's value is that ratio.
    pub fn signal_name(&self) -> String {
        let name = self.own_signal_name();
        if self.peers.is_some() { format!("{name}/peer_median") } else { name }
    }

    fn own_signal_name(&self) -> String {
        match self.func {
            Func::Value if self.over.is_some() => {
                format!("{}/{}", self.signal, self.over.as_deref().unwrap_or(""))
            }
            Func::Value => self.signal.clone(),
            Func::Quantile => format!("{}:p{}", self.signal, fmt_q(self.q.unwrap_or(0.95))),
            Func::Mean => format!("{}:mean", self.signal),
            Func::FractionAbove => {
                format!("{}:fraction_above_{}", self.signal, self.bound.unwrap_or(0.0))
            }
            Func::BurnRate => format!("{}:burn_rate", self.signal),
            Func::Rate => format!("rate({})", self.signal),
            Func::Increase => format!("increase({})", self.signal),
            Func::Ratio => format!("{}:ratio", self.signal),
            Func::Growth => format!("{}:growth_per_hour", self.signal),
            Func::Mask => format!("{}&{}", self.signal, self.mask.unwrap_or(0)),
        }
    }
}

fn fmt_q(q: f64) -> String {
    let p = q * 100.0;
    if (p - p.round()).abs() < 1e-9 { format!("{}", p.round() as i64) } else { format!("{p}") }
}

/// A rule set with the correlation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Format version (1).
    pub version: u32,
    /// The leading hypothesis needs at least this confidence to raise an incident (default 0.3).
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// The rules.
    pub rules: Vec<Rule>,
}

fn default_min_confidence() -> f64 {
    0.3
}

/// The metric type a known metric has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A gauge.
    Gauge,
    /// A counter.
    Counter,
    /// A histogram.
    Histogram,
}

/// Metrics this build knows, with their type: vLLM V1 (normalized names), the process collector,
/// node_exporter and DCGM exporter, plus the two signals every scrape produces.
pub const KNOWN_METRICS: &[(&str, Shape)] = &[
    ("up", Shape::Gauge),
    ("scrape_duration_seconds", Shape::Gauge),
    ("vllm:num_requests_running", Shape::Gauge),
    ("vllm:num_requests_waiting", Shape::Gauge),
    ("vllm:num_requests_waiting_by_reason", Shape::Gauge),
    ("vllm:kv_cache_usage_perc", Shape::Gauge),
    ("vllm:num_preemptions_total", Shape::Counter),
    ("vllm:request_success_total", Shape::Counter),
    ("vllm:prompt_tokens_total", Shape::Counter),
    ("vllm:generation_tokens_total", Shape::Counter),
    ("vllm:prefix_cache_queries_total", Shape::Counter),
    ("vllm:prefix_cache_hits_total", Shape::Counter),
    ("vllm:admission_rejections_total", Shape::Counter),
    ("vllm:corrupted_requests_total", Shape::Counter),
    ("vllm:time_to_first_token_seconds", Shape::Histogram),
    ("vllm:inter_token_latency_seconds", Shape::Histogram),
    ("vllm:e2e_request_latency_seconds", Shape::Histogram),
    ("vllm:request_queue_time_seconds", Shape::Histogram),
    ("vllm:request_prefill_time_seconds", Shape::Histogram),
    ("vllm:request_decode_time_seconds", Shape::Histogram),
    ("vllm:request_inference_time_seconds", Shape::Histogram),
    ("vllm:request_time_per_output_token_seconds", Shape::Histogram),
    ("vllm:iteration_tokens_total", Shape::Histogram),
    ("process_resident_memory_bytes", Shape::Gauge),
    ("process_virtual_memory_bytes", Shape::Gauge),
    ("process_open_fds", Shape::Gauge),
    ("process_cpu_seconds_total", Shape::Counter),
    ("node_filesystem_avail_bytes", Shape::Gauge),
    ("node_filesystem_size_bytes", Shape::Gauge),
    ("node_memory_MemAvailable_bytes", Shape::Gauge),
    ("node_memory_MemTotal_bytes", Shape::Gauge),
    ("node_vmstat_oom_kill", Shape::Counter),
    ("node_pressure_memory_waiting_seconds_total", Shape::Counter),
    ("node_pressure_memory_stalled_seconds_total", Shape::Counter),
    ("DCGM_FI_DEV_XID_ERRORS", Shape::Gauge),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", Shape::Counter),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", Shape::Counter),
    ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", Shape::Gauge),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", Shape::Gauge),
    ("DCGM_FI_DEV_GPU_TEMP", Shape::Gauge),
    ("DCGM_FI_DEV_POWER_USAGE", Shape::Gauge),
    ("DCGM_FI_DEV_FB_USED", Shape::Gauge),
    ("DCGM_FI_DEV_FB_FREE", Shape::Gauge),
    ("DCGM_FI_DEV_GPU_UTIL", Shape::Gauge),
];

/// The type of a known metric: an exporter series, or a field of a host or GPU snapshot
/// ([`crate::snapshot::SNAPSHOT_SERIES`]).
pub fn shape_of(name: &str) -> Option<Shape> {
    use opsg_core::kinds::observation::MetricType;
    KNOWN_METRICS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).or_else(|| {
        crate::snapshot::SNAPSHOT_SERIES.iter().find(|(n, _)| *n == name).map(|(_, t)| match t {
            MetricType::Counter => Shape::Counter,
            MetricType::Histogram => Shape::Histogram,
            _ => Shape::Gauge,
        })
    })
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known metric nearest to `name`, when it is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    KNOWN_METRICS
        .iter()
        .map(|(n, _)| *n)
        .chain(crate::snapshot::SNAPSHOT_SERIES.iter().map(|(n, _)| *n))
        .map(|n| (levenshtein(name, n), n))
        .filter(|(d, n)| *d <= (n.len() / 4).max(2))
        .min()
        .map(|(_, n)| n)
}

fn rule(name: &str, signal: &str, func: Func, op: Op, threshold: f64, n: u32) -> Rule {
    Rule {
        name: name.into(),
        signal: signal.into(),
        func,
        q: None,
        bound: None,
        slo: None,
        matchers: BTreeMap::new(),
        over: None,
        mask: None,
        range: None,
        peers: None,
        op,
        threshold,
        persistence: Persistence::Samples(n),
        class: None,
        weight: None,
        applies_to: Applies::All,
        custom_metric: false,
    }
}

/// The built-in rules on host and GPU snapshots (`opsg-scrape --host --gpu`, see
/// [`crate::snapshot`]). Persistence counts snapshots, one per observation in the chain, so:
///
/// - pressure stall averages are over 60 s already: one snapshot is enough. `full` (every task
///   stalled on memory) 10% of the last minute is severe; `some` 40% is a host paging hard;
/// - available memory is one instantaneous reading: weight 0.35, so it raises an incident alone
///   only far below 5% (2.5% and less) and otherwise corroborates the stall averages;
/// - counters (OOM kills, uncorrected ECC errors since the driver loaded) count only when they
///   increase between two snapshots: a count since boot says nothing about this window;
/// - an XID raised during the watch, a GPU NVML reports lost (fallen off the bus), a failed or
///   pending row remap and a pending page retirement are faults or latched states (the GPU needs a
///   reset or service): one snapshot;
/// - clock throttling for heat or a hardware slowdown (not the power cap, which is normal at full
///   load) is instantaneous: two snapshots in a row, like the DCGM rule's persistence.
fn snapshot_rules() -> Vec<Rule> {
    use IncidentClass as C;
    let with = |mut r: Rule, class: C, weight: f64, range: Option<u32>| {
        r.class = Some(class);
        r.weight = Some(weight);
        r.range = range;
        r
    };
    let mut available = with(
        rule(
            "host_memory_available_low",
            "host.memory.available_bytes",
            Func::Value,
            Op::Lt,
            0.05,
            1,
        ),
        C::HostMemoryPressure,
        0.35,
        None,
    );
    available.over = Some("host.memory.total_bytes".into());
    let mut throttled = with(
        rule("gpu_clocks_throttled", "gpu.throttle_reasons", Func::Mask, Op::Gt, 0.0, 2),
        C::GpuFault,
        0.75,
        None,
    );
    throttled.mask = Some(0x08 | 0x20 | 0x40 | 0x80);
    vec![
        with(
            rule(
                "host_memory_stall_full",
                "host.pressure.memory.full.avg60",
                Func::Value,
                Op::Gt,
                10.0,
                1,
            ),
            C::HostMemoryPressure,
            0.85,
            None,
        ),
        with(
            rule(
                "host_memory_stall_some",
                "host.pressure.memory.some.avg60",
                Func::Value,
                Op::Gt,
                40.0,
                1,
            ),
            C::HostMemoryPressure,
            0.6,
            None,
        ),
        available,
        with(
            rule("host_oom_kills", "host.vm.oom_kill", Func::Increase, Op::Gt, 0.0, 1),
            C::HostMemoryPressure,
            0.8,
            Some(1),
        ),
        with(
            rule(
                "process_rss_growing",
                "host.processes.total_rss_bytes",
                Func::Growth,
                Op::Gt,
                0.5,
                1,
            ),
            C::MemoryLeak,
            0.85,
            None,
        ),
        with(
            rule("gpu_xid_event", "gpu.xid_events.xid", Func::Value, Op::Gt, 0.0, 1),
            C::GpuFault,
            0.95,
            None,
        ),
        with(
            rule("gpu_lost", "gpu.unsupported.gpu_lost", Func::Value, Op::Gt, 0.0, 1),
            C::GpuFault,
            0.95,
            None,
        ),
        with(
            rule(
                "gpu_ecc_uncorrected_new",
                "gpu.ecc.volatile.uncorrected",
                Func::Increase,
                Op::Gt,
                0.0,
                1,
            ),
            C::GpuFault,
            0.9,
            Some(1),
        ),
        with(
            rule("gpu_row_remap_failed", "gpu.remapped_rows.failure", Func::Value, Op::Gt, 0.0, 1),
            C::GpuFault,
            0.9,
            None,
        ),
        with(
            rule("gpu_row_remap_pending", "gpu.remapped_rows.pending", Func::Value, Op::Gt, 0.0, 1),
            C::GpuFault,
            0.8,
            None,
        ),
        with(
            rule(
                "gpu_page_retirement_pending",
                "gpu.retired_pages.pending",
                Func::Value,
                Op::Gt,
                0.0,
                1,
            ),
            C::GpuFault,
            0.8,
            None,
        ),
        throttled,
    ]
}

impl Rules {
    /// The built-in rules: thresholds for a typical chat-serving vLLM fleet scraped every 15 s.
    pub fn builtin() -> Rules {
        use IncidentClass as C;
        let bad_reasons = || {
            let mut m = BTreeMap::new();
            m.insert("finished_reason".to_string(), vec!["abort".to_string(), "error".to_string()]);
            m
        };
        let with = |mut r: Rule, class: Option<C>, weight: f64| {
            r.class = class;
            r.weight = Some(weight);
            r
        };
        let mut rules = vec![
            with(
                rule("replica_down", "up", Func::Value, Op::Lt, 1.0, 2),
                Some(C::ReplicaDown),
                0.95,
            ),
            with(
                rule(
                    "kv_cache_usage_high",
                    "vllm:kv_cache_usage_perc",
                    Func::Value,
                    Op::Gt,
                    0.92,
                    3,
                ),
                Some(C::KvCacheSaturation),
                0.85,
            ),
            with(
                rule(
                    "preemption_rate_high",
                    "vllm:num_preemptions_total",
                    Func::Rate,
                    Op::Gt,
                    0.2,
                    3,
                ),
                Some(C::KvCacheSaturation),
                0.8,
            ),
            with(
                rule(
                    "requests_waiting_high",
                    "vllm:num_requests_waiting",
                    Func::Value,
                    Op::Gt,
                    20.0,
                    3,
                ),
                Some(C::QueueBacklog),
                0.8,
            ),
            with(
                rule(
                    "ttft_p95_high",
                    "vllm:time_to_first_token_seconds",
                    Func::Quantile,
                    Op::Gt,
                    1.0,
                    3,
                ),
                None,
                0.7,
            ),
            with(
                rule(
                    "itl_p95_high",
                    "vllm:inter_token_latency_seconds",
                    Func::Quantile,
                    Op::Gt,
                    0.2,
                    3,
                ),
                None,
                0.6,
            ),
            with(
                rule(
                    "e2e_p95_high",
                    "vllm:e2e_request_latency_seconds",
                    Func::Quantile,
                    Op::Gt,
                    30.0,
                    3,
                ),
                None,
                0.6,
            ),
            with(
                rule(
                    "error_ratio_high",
                    "vllm:request_success_total",
                    Func::Ratio,
                    Op::Gt,
                    0.05,
                    3,
                ),
                None,
                0.75,
            ),
            with(
                rule(
                    "availability_burn_fast",
                    "vllm:request_success_total",
                    Func::BurnRate,
                    Op::Gt,
                    14.4,
                    3,
                ),
                None,
                0.6,
            ),
            with(
                rule(
                    "ttft_slo_burn_fast",
                    "vllm:time_to_first_token_seconds",
                    Func::BurnRate,
                    Op::Gt,
                    14.4,
                    3,
                ),
                None,
                0.6,
            ),
            with(
                rule("gpu_xid_error", "DCGM_FI_DEV_XID_ERRORS", Func::Value, Op::Gt, 0.0, 2),
                Some(C::GpuFault),
                0.95,
            ),
            with(
                rule(
                    "gpu_ecc_uncorrectable",
                    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                    Func::Increase,
                    Op::Gt,
                    0.0,
                    1,
                ),
                Some(C::GpuFault),
                0.9,
            ),
            with(
                rule(
                    "gpu_throttled",
                    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
                    Func::Mask,
                    Op::Gt,
                    0.0,
                    3,
                ),
                Some(C::GpuFault),
                0.75,
            ),
            with(
                rule("rss_growing", "process_resident_memory_bytes", Func::Growth, Op::Gt, 0.5, 1),
                Some(C::MemoryLeak),
                0.85,
            ),
            with(
                rule(
                    "host_memory_low",
                    "node_memory_MemAvailable_bytes",
                    Func::Value,
                    Op::Lt,
                    0.05,
                    3,
                ),
                Some(C::HostMemoryPressure),
                0.85,
            ),
            with(
                rule("oom_kills", "node_vmstat_oom_kill", Func::Increase, Op::Gt, 0.0, 1),
                Some(C::HostMemoryPressure),
                0.8,
            ),
            with(
                rule(
                    "filesystem_nearly_full",
                    "node_filesystem_avail_bytes",
                    Func::Value,
                    Op::Lt,
                    0.05,
                    3,
                ),
                Some(C::DiskPressure),
                0.9,
            ),
            with(
                rule("scrape_slow", "scrape_duration_seconds", Func::Value, Op::Gt, 0.5, 3),
                Some(C::NetworkLatency),
                0.6,
            ),
            with(
                rule(
                    "itl_above_peers",
                    "vllm:inter_token_latency_seconds",
                    Func::Mean,
                    Op::Gt,
                    2.0,
                    3,
                ),
                None,
                0.7,
            ),
        ];
        rules.extend(snapshot_rules());
        for r in &mut rules {
            match r.name.as_str() {
                "replica_down" | "scrape_slow" => r.applies_to = Applies::Replicas,
                // A replica generating tokens at less than half its peers' speed under the same
                // load (not the whole deployment: that is load; not a canary with another config:
                // that is a regression) has a problem of its own. ITL is the purest engine-speed
                // signal (TPOT and e2e per token add queueing and prefill); a mean of 50 ms or
                // more is what users notice; 0.7 makes it, with slow scrapes, enough to act on.
                "itl_above_peers" => {
                    r.applies_to = Applies::Replicas;
                    r.peers = Some(Peers {
                        by: default_peer_labels(),
                        min_peers: default_min_peers(),
                        min_value: 0.05,
                        load: vec![
                            "vllm:num_requests_running".into(),
                            "vllm:kv_cache_usage_perc".into(),
                        ],
                        max_load_ratio: default_max_load_ratio(),
                    });
                }
                "ttft_p95_high" | "itl_p95_high" | "e2e_p95_high" => r.q = Some(0.95),
                "error_ratio_high" => r.matchers = bad_reasons(),
                "availability_burn_fast" => {
                    r.matchers = bad_reasons();
                    r.slo = Some(0.999);
                }
                "ttft_slo_burn_fast" => {
                    r.bound = Some(2.5);
                    r.slo = Some(0.99);
                }
                "gpu_throttled" => r.mask = Some(0x08 | 0x20 | 0x40 | 0x80),
                "host_memory_low" => r.over = Some("node_memory_MemTotal_bytes".into()),
                "filesystem_nearly_full" => r.over = Some("node_filesystem_size_bytes".into()),
                _ => {}
            }
        }
        Rules { version: 1, min_confidence: default_min_confidence(), rules }
    }

    /// Parse and check a rules file's text; errors name the file, the rule and the field.
    pub fn parse(text: &str, source: &str) -> Result<Rules> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("malformed JSON: {e}")).in_source(source))?;
        let schema: serde_json::Value = serde_json::from_str(SCHEMA)
            .map_err(|e| Error::internal(format!("embedded rules schema: {e}")))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| Error::internal(format!("embedded rules schema does not compile: {e}")))?;
        if let Some(err) = validator.iter_errors(&value).next() {
            let field = opsg_core::schema::pointer_to_dotted(&err.instance_path().to_string());
            let e = Error::invalid(format!("does not match `rules.schema.json`: {err}"));
            let e = if field.is_empty() { e } else { e.at_field(field) };
            return Err(e.in_source(source));
        }
        let rules: Rules = serde_json::from_value(value)
            .map_err(|e| Error::invalid(format!("invalid rules: {e}")).in_source(source))?;
        rules.check().map_err(|e| e.in_source(source))?;
        Ok(rules)
    }

    /// Load a rules file.
    pub fn load(path: &std::path::Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Rules::parse(&text, &path.display().to_string())
    }

    /// Check meaning: unique names, known metrics, functions that suit the metric type.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            let bad = |field: &str, msg: String| Err(Error::invalid(msg).at_field(at(field)));
            if !seen.insert(r.name.as_str()) {
                return bad("name", format!("duplicate rule name `{}`", r.name));
            }
            for name in std::iter::once(&r.signal).chain(r.over.as_ref()) {
                if shape_of(name).is_none() && !r.custom_metric {
                    let hint =
                        suggest(name).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_else(
                            || " (set `custom_metric: true` for a custom exporter's series)".into(),
                        );
                    let field = if name == &r.signal { "signal" } else { "over" };
                    return bad(field, format!("rule `{}`: unknown metric `{name}`{hint}", r.name));
                }
            }
            let shape = shape_of(&r.signal);
            let need = match r.func {
                Func::Quantile | Func::FractionAbove | Func::Mean => Some(Shape::Histogram),
                Func::Rate | Func::Increase | Func::Ratio => Some(Shape::Counter),
                Func::Value | Func::Growth | Func::Mask => Some(Shape::Gauge),
                Func::BurnRate => None,
            };
            if let (Some(need), Some(have)) = (need, shape)
                && need != have
            {
                return bad(
                    "fn",
                    format!(
                        "rule `{}`: `{:?}` needs a {need:?} but `{}` is a {have:?}",
                        r.name, r.func, r.signal
                    )
                    .to_lowercase(),
                );
            }
            match r.func {
                Func::Quantile if !r.q.is_some_and(|q| q > 0.0 && q < 1.0) => {
                    return bad("q", format!("rule `{}`: `quantile` needs `q` in (0, 1)", r.name));
                }
                Func::FractionAbove if r.bound.is_none() => {
                    return bad(
                        "bound",
                        format!("rule `{}`: `fraction_above` needs `bound`", r.name),
                    );
                }
                Func::BurnRate => {
                    if !r.slo.is_some_and(|s| s > 0.0 && s < 1.0) {
                        return bad(
                            "slo",
                            format!("rule `{}`: `burn_rate` needs `slo` in (0, 1)", r.name),
                        );
                    }
                    if shape == Some(Shape::Histogram) && r.bound.is_none() {
                        return bad(
                            "bound",
                            format!("rule `{}`: a latency burn rate needs `bound`", r.name),
                        );
                    }
                    if shape == Some(Shape::Counter) && r.matchers.is_empty() {
                        return bad(
                            "match",
                            format!("rule `{}`: an error burn rate needs `match`", r.name),
                        );
                    }
                }
                Func::Ratio if r.matchers.is_empty() => {
                    return bad(
                        "match",
                        format!("rule `{}`: `ratio` needs `match` (the numerator)", r.name),
                    );
                }
                Func::Mask if r.mask.is_none() => {
                    return bad("mask", format!("rule `{}`: `mask` needs `mask`", r.name));
                }
                _ => {}
            }
            if let Some(p) = &r.peers {
                let ratio = if r.op.is_low() {
                    r.threshold > 0.0 && r.threshold < 1.0
                } else {
                    r.threshold > 1.0
                };
                if !ratio {
                    return bad(
                        "threshold",
                        format!(
                            "rule `{}`: with `peers` the threshold is a ratio to the peers' median: above 1 for `>`, in (0, 1) for `<`",
                            r.name
                        ),
                    );
                }
                for (j, name) in p.load.iter().enumerate() {
                    let field = format!("peers.load[{j}]");
                    match shape_of(name) {
                        Some(Shape::Gauge) => {}
                        None if r.custom_metric => {}
                        None => {
                            let hint = suggest(name)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            return bad(
                                &field,
                                format!("rule `{}`: unknown metric `{name}`{hint}", r.name),
                            );
                        }
                        Some(have) => {
                            return bad(
                                &field,
                                format!(
                                    "rule `{}`: a load signal must be a gauge, not the {} `{name}`",
                                    r.name,
                                    if have == Shape::Counter { "counter" } else { "histogram" }
                                ),
                            );
                        }
                    }
                }
            }
            if let Persistence::Duration(d) = &r.persistence {
                opsg_core::time::parse_duration_ms(d).map_err(|e| e.at_field(at("for")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_pass_their_own_checks_and_schema() {
        let rules = Rules::builtin();
        rules.check().unwrap();
        let text = serde_json::to_string_pretty(&rules).unwrap();
        assert_eq!(Rules::parse(&text, "builtin").unwrap(), rules);
    }

    #[test]
    fn checked_in_example_is_the_builtin_set() {
        // examples/rules.json documents the defaults; regenerate with OPSG_BLESS=1.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules.json");
        let text = serde_json::to_string_pretty(&Rules::builtin()).unwrap() + "\n";
        if std::env::var_os("OPSG_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == text,
            "examples/rules.json drifted from Rules::builtin(): rerun with OPSG_BLESS=1"
        );
    }

    #[test]
    fn typo_in_metric_name_is_named_with_a_suggestion() {
        let mut rules = Rules::builtin();
        rules.rules[1].signal = "vllm:kv_cache_usge_perc".into();
        let text = serde_json::to_string(&rules).unwrap();
        let err = Rules::parse(&text, "rules.json").unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.status().code(), 3);
        assert!(msg.contains("rules.json"), "{msg}");
        assert!(msg.contains("rules[1].signal"), "{msg}");
        assert!(msg.contains("`vllm:kv_cache_usge_perc`"), "{msg}");
        assert!(msg.contains("did you mean `vllm:kv_cache_usage_perc`"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named() {
        let text = r#"{"version":1,"rules":[{"name":"x","signal":"up","op":"<","threshold":1,"for":2,"thresold":3}]}"#;
        let err = Rules::parse(text, "rules.json").unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.status().code(), 3);
        assert!(msg.contains("thresold"), "{msg}");
        assert!(msg.contains("rules[0]"), "{msg}");
    }

    #[test]
    fn function_must_suit_the_metric_type() {
        let text = r#"{"version":1,"rules":[{"name":"x","signal":"vllm:kv_cache_usage_perc","fn":"quantile","q":0.9,"op":">","threshold":1,"for":2}]}"#;
        let msg = Rules::parse(text, "r").unwrap_err().to_string();
        assert!(msg.contains("needs a histogram"), "{msg}");
    }

    #[test]
    fn persistence_in_samples_or_duration() {
        assert_eq!(Persistence::Samples(3).samples(15.0), 3);
        assert_eq!(Persistence::Duration("45s".into()).samples(15.0), 3);
        assert_eq!(Persistence::Duration("50s".into()).samples(15.0), 4);
        assert_eq!(Persistence::Samples(0).samples(15.0), 1);
    }
}

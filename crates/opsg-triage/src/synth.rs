//! Synthetic, deterministic observations of a small vLLM fleet, healthy or with one fault.
//!
//! Used by the tests and by the incident corpus generator (`cargo run -p opsg-triage --example
//! gen_corpus`), until recordings from `opsg-sim` replace them. The fleet is four replicas: three
//! of deployment `llama-stable` (traffic weight 0.9) and one of `llama-canary` (weight 0.1, a newer
//! config), each on its own node, plus one exporter target per node carrying node_exporter and
//! DCGM exporter series. Replicas serve vLLM V1 metric names, types, labels and histogram buckets
//! (`../shared/reference/vllm-metrics.md`). Latencies are log-normal; bucket counts are exact
//! expectations, so the only randomness is a seeded jitter: the same seed gives the same bytes.
//!
//! Records made here say what they are: producer `opsg-synth`, `replay: true`.

use opsg_core::float::Float;
use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::observation::{
    MetricType, ObservationBody, Point, SampleInfo, Series, TargetObservation, TargetStatus, Window,
};
use opsg_core::record::{Kind, Record, Stamp};
use opsg_core::seal::GENESIS;
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use std::collections::BTreeMap;

/// Samples per window.
pub const POINTS: usize = 12;
/// Seconds between samples.
pub const INTERVAL_S: i64 = 15;

/// vLLM V1 (>= 0.8) TTFT histogram bounds.
pub const TTFT_LE: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM V1 (>= 0.8) inter-token latency histogram bounds.
pub const ITL_LE: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM V1 (>= 0.8) end-to-end latency histogram bounds.
pub const E2E_LE: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// What a synthetic window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing wrong; `variant` picks a kind of harmless noise (0 = none; see [`NOISE_KINDS`]).
    Healthy {
        /// Which noise.
        variant: u8,
    },
    /// One fault of this class, starting part-way through the window.
    Fault(IncidentClass),
}

/// Names of the healthy-window noise variants, by `variant` number.
pub const NOISE_KINDS: &[&str] = &[
    "quiet",
    "kv_spike_one_sample",
    "one_failed_scrape_mid_window",
    "counter_reset_mid_window",
    "stale_target_fine_values",
    "traffic_up_30_percent",
    "ttft_spike_one_step",
    "nan_samples",
    "exporter_down",
    "busy_but_fine",
    "rss_sawtooth",
    "last_scrape_failed_once",
];

/// The fault classes the generator can produce.
pub const FAULT_CLASSES: &[IncidentClass] = &[
    IncidentClass::KvCacheSaturation,
    IncidentClass::QueueBacklog,
    IncidentClass::CanaryRegression,
    IncidentClass::ReplicaDown,
    IncidentClass::GpuFault,
    IncidentClass::MemoryLeak,
    IncidentClass::TrafficSurge,
    IncidentClass::NetworkLatency,
    IncidentClass::DiskPressure,
    IncidentClass::HostMemoryPressure,
];

/// splitmix64: a tiny, well-mixed, seedable generator (no dependency for test data).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7): plenty for expected bucket counts.
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

fn lognormal_cdf(x: f64, median: f64, sigma: f64) -> f64 {
    if x <= 0.0 { 0.0 } else { normal_cdf((x.ln() - median.ln()) / sigma) }
}

/// The state of one replica at one sample.
#[derive(Debug, Clone, Copy)]
struct ReplicaStep {
    up: bool,
    stale: bool,
    scrape_ms: f64,
    arrivals_per_s: f64,
    throughput: f64,
    waiting: f64,
    running: f64,
    kv: f64,
    preemptions: f64,
    error_frac: f64,
    abort_frac: f64,
    ttft_median: f64,
    itl_median: f64,
    e2e_median: f64,
    rss: f64,
    reset: bool,
    nan_kv: bool,
}

#[derive(Debug, Clone, Copy)]
struct NodeStep {
    up: bool,
    fs_avail_frac: f64,
    mem_avail_frac: f64,
    oom_kills: f64,
    xid: f64,
    ecc_dbe: f64,
    clock_events: f64,
    temp_c: f64,
}

struct Replica {
    name: &'static str,
    deployment: &'static str,
    role: &'static str,
    node: &'static str,
    base_rate: f64,
}

const REPLICAS: [Replica; 4] = [
    Replica {
        name: "stable-0",
        deployment: "llama-stable",
        role: "stable",
        node: "node-a",
        base_rate: 6.0,
    },
    Replica {
        name: "stable-1",
        deployment: "llama-stable",
        role: "stable",
        node: "node-b",
        base_rate: 6.0,
    },
    Replica {
        name: "stable-2",
        deployment: "llama-stable",
        role: "stable",
        node: "node-c",
        base_rate: 6.0,
    },
    Replica {
        name: "canary-0",
        deployment: "llama-canary",
        role: "canary",
        node: "node-d",
        base_rate: 2.0,
    },
];

fn replica_labels(r: &Replica, start_ms: i64) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("deployment".into(), r.deployment.into());
    l.insert("role".into(), r.role.into());
    l.insert("node".into(), r.node.into());
    l.insert("route".into(), "llama".into());
    l.insert("model".into(), "llama-3-8b".into());
    if r.role == "canary" {
        l.insert("weight".into(), "0.1".into());
        l.insert("replicas".into(), "1".into());
        l.insert("config_version".into(), "v8".into());
        l.insert("previous_config_version".into(), "v7".into());
        l.insert("config_changed_at".into(), Timestamp(start_ms - 600_000).to_rfc3339());
    } else {
        l.insert("weight".into(), "0.9".into());
        l.insert("replicas".into(), "3".into());
        l.insert("config_version".into(), "v7".into());
    }
    l
}

/// Build the observation body for a scenario. `start_ms` is the first sample's time.
pub fn observation(scenario: Scenario, seed: u64, start_ms: i64) -> ObservationBody {
    let mut rng = Rng::new(seed);
    let onset = 3 + rng.below(POINTS - 7); // 3..=7: at least 5 faulty samples at the end
    let mut reps: Vec<Vec<ReplicaStep>> = REPLICAS
        .iter()
        .map(|r| {
            (0..POINTS)
                .map(|_| ReplicaStep {
                    up: true,
                    stale: false,
                    scrape_ms: rng.range(3.0, 9.0),
                    arrivals_per_s: r.base_rate * rng.range(0.93, 1.07),
                    throughput: 1.0,
                    waiting: rng.range(0.0, 2.5).floor(),
                    running: rng.range(14.0, 24.0).floor(),
                    kv: rng.range(0.38, 0.55),
                    preemptions: if rng.unit() < 0.08 { 1.0 } else { 0.0 },
                    error_frac: 0.0,
                    abort_frac: rng.range(0.0, 0.004),
                    ttft_median: 0.12 * rng.range(0.9, 1.1),
                    itl_median: 0.028 * rng.range(0.95, 1.05),
                    e2e_median: 4.0 * rng.range(0.92, 1.08),
                    rss: 6.0e9 + rng.range(-1.5e7, 1.5e7),
                    reset: false,
                    nan_kv: false,
                })
                .collect()
        })
        .collect();
    let mut nodes: Vec<Vec<NodeStep>> = (0..REPLICAS.len())
        .map(|_| {
            let fs = rng.range(0.35, 0.6);
            let mem = rng.range(0.35, 0.5);
            (0..POINTS)
                .map(|_| NodeStep {
                    up: true,
                    fs_avail_frac: fs - rng.range(0.0, 0.002),
                    mem_avail_frac: mem + rng.range(-0.01, 0.01),
                    oom_kills: 3.0,
                    xid: 0.0,
                    ecc_dbe: 0.0,
                    clock_events: 0.0,
                    temp_c: rng.range(55.0, 66.0),
                })
                .collect()
        })
        .collect();
    let victim = rng.below(3); // a stable replica / its node
    let after = |i: usize| i >= onset;
    match scenario {
        Scenario::Healthy { variant } => {
            apply_noise(variant, &mut reps, &mut nodes, victim, onset, &mut rng)
        }
        Scenario::Fault(class) => match class {
            IncidentClass::KvCacheSaturation => {
                // The whole stable deployment runs out of KV blocks; preemptions storm.
                for r in reps.iter_mut().take(3) {
                    for (i, s) in r.iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                        let ramp = ((i - onset) as f64 / 2.0).min(1.0);
                        s.kv = 0.55 + (0.992 - 0.55) * ramp + rng.range(-0.004, 0.006);
                        s.preemptions = (6.0 + 20.0 * rng.unit()) * ramp;
                        s.waiting = (4.0 + 12.0 * rng.unit()) * ramp;
                        s.ttft_median *= 1.0 + 2.5 * ramp;
                        s.itl_median *= 1.0 + 0.8 * ramp;
                    }
                }
            }
            IncidentClass::QueueBacklog => {
                // One replica's engine slows: throughput falls and its queue grows.
                for (i, s) in reps[victim].iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                    let k = (i - onset + 1) as f64;
                    s.throughput = 0.45;
                    s.waiting = (25.0 * k + rng.range(0.0, 10.0)).min(180.0);
                    s.kv = rng.range(0.62, 0.8);
                    s.ttft_median *= 4.0 + k;
                    s.e2e_median *= 1.8;
                }
            }
            IncidentClass::TrafficSurge => {
                let factor = rng.range(2.4, 3.6);
                for r in reps.iter_mut() {
                    for (i, s) in r.iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                        let ramp = ((i - onset + 1) as f64 / 2.0).min(1.0);
                        s.arrivals_per_s *= 1.0 + (factor - 1.0) * ramp;
                        s.waiting = (30.0 + 50.0 * rng.unit()) * ramp;
                        s.running = 60.0 + rng.range(0.0, 4.0);
                        s.kv = 0.72 + 0.14 * ramp + rng.range(0.0, 0.02);
                        s.ttft_median *= 1.0 + 4.0 * ramp;
                        s.e2e_median *= 1.0 + 0.6 * ramp;
                    }
                }
            }
            IncidentClass::CanaryRegression => {
                let slow = rng.range(6.0, 12.0);
                for (i, s) in reps[3].iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                    let _ = i;
                    s.ttft_median *= slow;
                    s.itl_median *= 2.5;
                    s.e2e_median *= 2.2;
                    s.error_frac = rng.range(0.0, 0.01);
                }
            }
            IncidentClass::ReplicaDown => {
                for s in reps[victim].iter_mut().skip(onset) {
                    s.up = false;
                }
            }
            IncidentClass::GpuFault => {
                let kind = rng.below(3);
                for (i, s) in nodes[victim].iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                    match kind {
                        0 => s.xid = 79.0,
                        1 => s.ecc_dbe = (i - onset + 1) as f64,
                        _ => {
                            s.clock_events = 64.0; // HW thermal slowdown
                            s.temp_c = rng.range(92.0, 96.0);
                        }
                    }
                }
                for s in reps[victim].iter_mut().skip(onset) {
                    s.error_frac = rng.range(0.02, 0.2);
                    s.itl_median *= 2.0;
                }
            }
            IncidentClass::MemoryLeak => {
                let per_step = rng.range(5.0e7, 1.2e8);
                for (i, s) in reps[victim].iter_mut().enumerate() {
                    s.rss = 6.0e9 + per_step * i as f64 + rng.range(-5.0e6, 5.0e6);
                }
            }
            IncidentClass::NetworkLatency => {
                let extra = rng.range(0.8, 2.0);
                for s in reps[victim].iter_mut().skip(onset) {
                    s.ttft_median += extra;
                    s.e2e_median += extra * 1.5;
                    s.scrape_ms = extra * 1000.0 * rng.range(0.8, 1.2);
                }
            }
            IncidentClass::DiskPressure => {
                for (i, s) in nodes[victim].iter_mut().enumerate() {
                    if after(i) {
                        s.fs_avail_frac = rng.range(0.01, 0.035);
                    }
                }
            }
            IncidentClass::HostMemoryPressure => {
                let mut kills = 3.0;
                for (i, s) in nodes[victim].iter_mut().enumerate().filter(|(i, _)| after(*i)) {
                    s.mem_avail_frac = rng.range(0.01, 0.035);
                    if (i - onset).is_multiple_of(2) {
                        kills += 1.0;
                    }
                    s.oom_kills = kills;
                }
                let last = nodes[victim][onset].oom_kills;
                for s in nodes[victim].iter_mut().take(onset) {
                    s.oom_kills = s.oom_kills.min(last);
                }
            }
            IncidentClass::Unknown | IncidentClass::None => {}
        },
    }
    build(&reps, &nodes, start_ms)
}

fn apply_noise(
    variant: u8,
    reps: &mut [Vec<ReplicaStep>],
    nodes: &mut [Vec<NodeStep>],
    victim: usize,
    onset: usize,
    rng: &mut Rng,
) {
    let mid = onset.min(POINTS - 3);
    match variant as usize % NOISE_KINDS.len() {
        1 => reps[victim][mid].kv = 0.97,
        2 => reps[victim][mid].up = false,
        3 => {
            for s in reps[victim].iter_mut().skip(mid) {
                s.reset = true;
            }
        }
        4 => {
            for s in reps[victim].iter_mut() {
                s.stale = true;
            }
        }
        5 => {
            for r in reps.iter_mut() {
                for (i, s) in r.iter_mut().enumerate() {
                    s.arrivals_per_s *= 1.0 + 0.3 * i as f64 / POINTS as f64;
                }
            }
        }
        6 => reps[victim][mid].ttft_median *= 15.0,
        7 => {
            reps[victim][mid].nan_kv = true;
            reps[(victim + 1) % 4][mid + 1].nan_kv = true;
        }
        8 => {
            for s in nodes[victim].iter_mut().skip(mid) {
                s.up = false;
            }
        }
        9 => {
            for r in reps.iter_mut() {
                for s in r.iter_mut() {
                    s.kv = rng.range(0.8, 0.87);
                    s.waiting = rng.range(2.0, 6.0).floor();
                    s.running = rng.range(40.0, 55.0).floor();
                }
            }
        }
        10 => {
            for (i, s) in reps[victim].iter_mut().enumerate() {
                s.rss = 6.0e9 + 4.0e8 * (i % 4) as f64;
            }
        }
        11 => reps[victim][POINTS - 1].up = false,
        _ => {}
    }
}

fn series(name: &str, t: MetricType, labels: &[(&str, &str)], points: Vec<Point>) -> Series {
    Series {
        name: name.to_string(),
        source_name: None,
        metric_type: t,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        le: Vec::new(),
        points,
    }
}

fn scalar(t: i64, v: f64) -> Point {
    Point { t, v: Some(Float(v)), count: None, sum: None, buckets: Vec::new() }
}

struct Hist {
    cum: Vec<f64>,
    count: f64,
    sum: f64,
}

impl Hist {
    fn new(n: usize) -> Hist {
        Hist { cum: vec![0.0; n + 1], count: 0.0, sum: 0.0 }
    }

    fn observe(&mut self, le: &[f64], n: f64, median: f64, sigma: f64) {
        let n = n.round();
        for (i, bound) in le.iter().enumerate() {
            self.cum[i] += (n * lognormal_cdf(*bound, median, sigma)).round();
        }
        let last = le.len();
        self.cum[last] += n;
        // Rounding each bucket separately must not break monotonicity.
        for i in 1..=last {
            if self.cum[i] < self.cum[i - 1] {
                self.cum[i] = self.cum[i - 1];
            }
        }
        self.count += n;
        self.sum += n * median * (sigma * sigma / 2.0).exp();
    }

    fn point(&self, t: i64) -> Point {
        Point {
            t,
            v: None,
            count: Some(Float(self.count)),
            sum: Some(Float((self.sum * 1000.0).round() / 1000.0)),
            buckets: self.cum.iter().map(|c| Float(*c)).collect(),
        }
    }
}

fn le_with_inf(le: &[f64]) -> Vec<Float> {
    le.iter().copied().chain([f64::INFINITY]).map(Float).collect()
}

fn build(reps: &[Vec<ReplicaStep>], nodes: &[Vec<NodeStep>], start_ms: i64) -> ObservationBody {
    let at = |i: usize| start_ms + i as i64 * INTERVAL_S * 1000;
    let mut targets = Vec::new();
    for (r, steps) in REPLICAS.iter().zip(reps) {
        let mut samples = Vec::new();
        let names = ["running", "waiting", "kv", "preempt", "rss"];
        let mut scalars: BTreeMap<&str, Vec<Point>> =
            names.iter().map(|n| (*n, Vec::new())).collect();
        let mut success: BTreeMap<&str, (f64, Vec<Point>)> =
            ["abort", "error", "length", "stop"].iter().map(|n| (*n, (0.0, Vec::new()))).collect();
        let mut preempt_total = 0.0;
        let (mut ttft, mut itl, mut e2e) =
            (Hist::new(TTFT_LE.len()), Hist::new(ITL_LE.len()), Hist::new(E2E_LE.len()));
        let (mut ttft_p, mut itl_p, mut e2e_p) = (Vec::new(), Vec::new(), Vec::new());
        let mut was_reset = false;
        for (i, s) in steps.iter().enumerate() {
            let t = at(i);
            samples.push(SampleInfo {
                at: Timestamp(t).to_rfc3339(),
                status: if s.up { TargetStatus::Up } else { TargetStatus::Down },
                duration_ms: if s.up { (s.scrape_ms * 10.0).round() / 10.0 } else { 0.4 },
                reason: (!s.up).then(|| "connection refused".to_string()),
                stale: s.stale,
                evidence: None,
            });
            if s.reset && !was_reset {
                // The process restarted: every counter and histogram starts again from zero.
                was_reset = true;
                preempt_total = 0.0;
                for (_, (total, _)) in success.iter_mut() {
                    *total = 0.0;
                }
                ttft = Hist::new(TTFT_LE.len());
                itl = Hist::new(ITL_LE.len());
                e2e = Hist::new(E2E_LE.len());
            }
            let done = s.arrivals_per_s * s.throughput * INTERVAL_S as f64;
            preempt_total += s.preemptions.round();
            let errors = (done * s.error_frac).round();
            let aborts = (done * s.abort_frac).round();
            let ok = (done - errors - aborts).max(0.0);
            let length = (ok * 0.12).round();
            for (reason, add) in
                [("abort", aborts), ("error", errors), ("length", length), ("stop", ok - length)]
            {
                if let Some(entry) = success.get_mut(reason) {
                    entry.0 += add;
                }
            }
            ttft.observe(TTFT_LE, done, s.ttft_median, 0.55);
            itl.observe(ITL_LE, done * 180.0, s.itl_median, 0.35);
            e2e.observe(E2E_LE, done, s.e2e_median, 0.5);
            if !s.up {
                continue;
            }
            let kv =
                if s.nan_kv { f64::NAN } else { (s.kv.min(1.0) * 10_000.0).round() / 10_000.0 };
            for (name, v) in [
                ("running", s.running),
                ("waiting", s.waiting.round()),
                ("kv", kv),
                ("preempt", preempt_total),
                ("rss", s.rss.round()),
            ] {
                if let Some(p) = scalars.get_mut(name) {
                    p.push(scalar(t, v));
                }
            }
            for (_, (total, points)) in success.iter_mut() {
                points.push(scalar(t, *total));
            }
            ttft_p.push(ttft.point(t));
            itl_p.push(itl.point(t));
            e2e_p.push(e2e.point(t));
        }
        let base = [("engine", "0"), ("model_name", "llama-3-8b")];
        let take = |m: &mut BTreeMap<&str, Vec<Point>>, k: &str| m.remove(k).unwrap_or_default();
        let mut out = vec![
            series(
                "vllm:num_requests_running",
                MetricType::Gauge,
                &base,
                take(&mut scalars, "running"),
            ),
            series(
                "vllm:num_requests_waiting",
                MetricType::Gauge,
                &base,
                take(&mut scalars, "waiting"),
            ),
            series("vllm:kv_cache_usage_perc", MetricType::Gauge, &base, take(&mut scalars, "kv")),
            series(
                "vllm:num_preemptions_total",
                MetricType::Counter,
                &base,
                take(&mut scalars, "preempt"),
            ),
        ];
        for (reason, (_, points)) in success {
            out.push(series(
                "vllm:request_success_total",
                MetricType::Counter,
                &[("engine", "0"), ("finished_reason", reason), ("model_name", "llama-3-8b")],
                points,
            ));
        }
        for (name, le, points) in [
            ("vllm:time_to_first_token_seconds", TTFT_LE, ttft_p),
            ("vllm:inter_token_latency_seconds", ITL_LE, itl_p),
            ("vllm:e2e_request_latency_seconds", E2E_LE, e2e_p),
        ] {
            let mut s = series(name, MetricType::Histogram, &base, points);
            s.le = le_with_inf(le);
            out.push(s);
        }
        out.push(series(
            "process_resident_memory_bytes",
            MetricType::Gauge,
            &[],
            take(&mut scalars, "rss"),
        ));
        let last = steps.last().is_none_or(|s| s.up);
        targets.push(TargetObservation {
            name: r.name.to_string(),
            source: format!("http://{}.llama.svc:8000/metrics", r.name),
            labels: replica_labels(r, start_ms),
            status: if last { TargetStatus::Up } else { TargetStatus::Down },
            reason: (!last).then(|| "connection refused".to_string()),
            samples,
            series: out,
        });
    }
    for (r, steps) in REPLICAS.iter().zip(nodes) {
        targets.push(exporter(r.node, steps, &at));
    }
    ObservationBody {
        window: Window {
            start: Timestamp(at(0)).to_rfc3339(),
            end: Timestamp(at(POINTS - 1)).to_rfc3339(),
        },
        interval_s: INTERVAL_S as f64,
        targets,
        ..ObservationBody::default()
    }
}

fn exporter(node: &str, steps: &[NodeStep], at: &dyn Fn(usize) -> i64) -> TargetObservation {
    const FS_SIZE: f64 = 1.0e12;
    const MEM_TOTAL: f64 = 5.12e11;
    let mut samples = Vec::new();
    let mut cols: Vec<Vec<Point>> = vec![Vec::new(); 8];
    for (i, s) in steps.iter().enumerate() {
        let t = at(i);
        samples.push(SampleInfo {
            at: Timestamp(t).to_rfc3339(),
            status: if s.up { TargetStatus::Up } else { TargetStatus::Timeout },
            duration_ms: if s.up { 12.0 } else { 5000.0 },
            reason: (!s.up).then(|| "no answer within 5s".to_string()),
            stale: false,
            evidence: None,
        });
        if !s.up {
            continue;
        }
        let values = [
            (s.fs_avail_frac * FS_SIZE).round(),
            FS_SIZE,
            (s.mem_avail_frac * MEM_TOTAL).round(),
            MEM_TOTAL,
            s.oom_kills,
            s.xid,
            s.ecc_dbe,
            s.clock_events,
        ];
        for (col, v) in cols.iter_mut().zip(values) {
            col.push(scalar(t, v));
        }
        let _ = s.temp_c;
    }
    let fs = [("device", "/dev/nvme0n1p1"), ("fstype", "ext4"), ("mountpoint", "/")];
    let gpu =
        [("Hostname", node), ("UUID", "GPU-3f0e2a4c-0000-0000-0000-000000000000"), ("gpu", "0")];
    let mut it = cols.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let series = vec![
        series("node_filesystem_avail_bytes", MetricType::Gauge, &fs, next()),
        series("node_filesystem_size_bytes", MetricType::Gauge, &fs, next()),
        series("node_memory_MemAvailable_bytes", MetricType::Gauge, &[], next()),
        series("node_memory_MemTotal_bytes", MetricType::Gauge, &[], next()),
        series("node_vmstat_oom_kill", MetricType::Counter, &[], next()),
        series("DCGM_FI_DEV_XID_ERRORS", MetricType::Gauge, &gpu, next()),
        series("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", MetricType::Counter, &gpu, next()),
        series("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", MetricType::Gauge, &gpu, next()),
    ];
    let last = steps.last().is_none_or(|s| s.up);
    let mut labels = BTreeMap::new();
    labels.insert("node".to_string(), node.to_string());
    labels.insert("job".to_string(), "node".to_string());
    TargetObservation {
        name: format!("exporter-{node}"),
        source: format!("http://{node}.llama.svc:9100/metrics"),
        labels,
        status: if last { TargetStatus::Up } else { TargetStatus::Timeout },
        reason: (!last).then(|| "no answer within 5s".to_string()),
        samples,
        series,
    }
}

/// One replica of a [`traffic`] fleet: a steady stream of requests of one prompt length, under a
/// fixed load.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficReplica {
    /// Target name; a `canary-` prefix makes it role and deployment `canary`, else `stable`.
    pub name: String,
    /// Requests finished per second.
    pub finished_per_s: f64,
    /// Prompt tokens of every request.
    pub prompt_tokens: f64,
    /// Running requests (constant over the window).
    pub running: f64,
    /// Waiting requests (constant: the queue neither grows nor drains).
    pub waiting: f64,
    /// KV cache use, 0 to 1.
    pub kv: f64,
}

/// Four replicas (`stable-0..2`, `canary-0`) sharing `rate` requests per second of `prompt`
/// tokens each, comfortably loaded (12 running, KV 40%).
pub fn steady_traffic(rate: f64, prompt: f64) -> Vec<TrafficReplica> {
    ["stable-0", "stable-1", "stable-2", "canary-0"]
        .iter()
        .map(|name| TrafficReplica {
            name: name.to_string(),
            finished_per_s: rate / 4.0,
            prompt_tokens: prompt,
            running: 12.0,
            waiting: 0.0,
            kv: 0.4,
        })
        .collect()
}

/// A window of [`POINTS`] samples [`INTERVAL_S`] apart from `start_ms` of a fleet whose traffic is
/// exactly as given: the load gauges, `vllm:request_success_total` and `vllm:prompt_tokens_total`
/// (as opsg-sim exposes them), no latency histograms. For judging traffic against the usual
/// ([`crate::baseline`]).
pub fn traffic(replicas: &[TrafficReplica], start_ms: i64) -> ObservationBody {
    let times: Vec<i64> = (0..POINTS as i64).map(|k| start_ms + k * INTERVAL_S * 1000).collect();
    let at = |t: i64| Timestamp(t).to_rfc3339();
    let targets = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let role = if r.name.starts_with("canary") { "canary" } else { "stable" };
            let of = |name: &str, kind: MetricType, v: &dyn Fn(usize) -> f64| {
                let points = times.iter().enumerate().map(|(k, t)| scalar(*t, v(k))).collect();
                series(name, kind, &[("engine", "0")], points)
            };
            let done = |k: usize| 1000.0 + r.finished_per_s * (INTERVAL_S as usize * k) as f64;
            let labels = [("deployment", role), ("role", role), ("config_version", "v7")];
            let mut labels: BTreeMap<String, String> =
                labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.insert("node".into(), format!("node-{i}"));
            TargetObservation {
                name: r.name.clone(),
                source: format!("http://{}:8000/metrics", r.name),
                labels,
                status: TargetStatus::Up,
                reason: None,
                samples: times
                    .iter()
                    .map(|t| SampleInfo {
                        at: at(*t),
                        status: TargetStatus::Up,
                        duration_ms: 5.0,
                        reason: None,
                        stale: false,
                        evidence: None,
                    })
                    .collect(),
                series: vec![
                    of("vllm:num_requests_running", MetricType::Gauge, &|_| r.running),
                    of("vllm:num_requests_waiting", MetricType::Gauge, &|_| r.waiting),
                    of("vllm:kv_cache_usage_perc", MetricType::Gauge, &|_| r.kv),
                    of("vllm:request_success_total", MetricType::Counter, &done),
                    of("vllm:prompt_tokens_total", MetricType::Counter, &|k| {
                        done(k) * r.prompt_tokens
                    }),
                ],
            }
        })
        .collect();
    ObservationBody {
        window: Window { start: at(times[0]), end: at(*times.last().unwrap_or(&start_ms)) },
        interval_s: INTERVAL_S as f64,
        targets,
        ..ObservationBody::default()
    }
}

/// Seal an observation body as the first record of a chain (producer `opsg-synth`, marked as a
/// replay), stamped at `now`; returns the line with its newline.
pub fn sealed(body: &ObservationBody, now: Timestamp, run: &str) -> Result<Vec<u8>> {
    let stamp = Stamp { tool: "opsg-synth", version: env!("CARGO_PKG_VERSION"), now };
    let mut record = Record::new(Kind::Observation, &stamp, run.to_string(), None, body);
    record.envelope.replay = true;
    let (mut line, _) = record.seal(GENESIS)?;
    line.push(b'\n');
    if line.is_empty() {
        return Err(Error::internal("empty record"));
    }
    Ok(line)
}

//! The value of an expected effect's signal on a set of targets, from their compact series.
//!
//! Signal names are the ones triage reports (`schemas/plan.schema.json`, `expected_effect`):
//!
//! - `up`: 1 when every matching target answered every sample, else 0;
//! - `scrape_duration_seconds` (triage's `scrape_slow`): how long a target took to answer, the
//!   median of its successful samples in the window (one slow answer is not a slow path), the
//!   slowest target;
//! - a metric name (`vllm:kv_cache_usage_perc`, `vllm:num_requests_waiting`): the last sample of
//!   the worst label set and the worst target for the direction (the highest when it should
//!   decrease, the lowest when it should increase), so one hot replica is not averaged away;
//! - `<histogram>:pNN` (`vllm:time_to_first_token_seconds:p95`) and the short forms `ttft_p95_s`,
//!   `itl_p95_s`, `tpot_p95_s`, `e2e_p95_s`: the quantile (PromQL `histogram_quantile`) of the
//!   bucket increases over the window, buckets summed across the matching targets;
//! - `rate(<counter>)`: the per-second increase over the window, summed across targets;
//! - `<counter>:ratio` (`vllm:request_success_total:ratio`, triage's `error_ratio_high`): the
//!   share of the counter's increase over the window whose `finished_reason` is `abort` or
//!   `error`, summed across targets (a restarted replica's reset counter counts from zero);
//! - `<gauge>/<gauge>` (`node_filesystem_avail_bytes/node_filesystem_size_bytes`): the ratio of
//!   the last samples of two series with the same labels, the worst label set and target for the
//!   direction (so the fullest mount point counts, not a small `/boot` that never changes).

use opsg_core::kinds::observation::{Series, TargetObservation, TargetStatus};

/// A parsed signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Scrape success.
    Up,
    /// How long a scrape took (s): the scrape itself, not a series the target exposes.
    ScrapeDuration,
    /// A gauge (or a counter's raw value).
    Value(String),
    /// A histogram quantile over the window.
    Quantile(String, f64),
    /// A counter's per-second rate over the window.
    Rate(String),
    /// One gauge over another with the same labels (a share, such as free disk).
    Ratio(String, String),
    /// The failed share (`finished_reason` `abort` or `error`) of a counter's window increase.
    FailedShare(String),
}

/// The `finished_reason` values that count as failures (triage's `error_ratio_high`).
pub const FAILED_REASONS: [&str; 2] = ["abort", "error"];

/// Parse a signal name.
pub fn parse(name: &str) -> Signal {
    let name = name.trim();
    if name == "up" {
        return Signal::Up;
    }
    if name == "scrape_duration_seconds" {
        return Signal::ScrapeDuration;
    }
    if let Some(inner) = name.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        return Signal::Rate(inner.to_string());
    }
    if let Some(counter) = name.strip_suffix(":ratio")
        && !counter.is_empty()
    {
        return Signal::FailedShare(counter.to_string());
    }
    // `/` is never part of a metric name: a quotient of two.
    if let Some((num, den)) = name.split_once('/')
        && !num.trim().is_empty()
        && !den.trim().is_empty()
    {
        return Signal::Ratio(num.trim().to_string(), den.trim().to_string());
    }
    for (short, family) in [
        ("ttft", "vllm:time_to_first_token_seconds"),
        ("itl", "vllm:inter_token_latency_seconds"),
        ("tpot", "vllm:inter_token_latency_seconds"),
        ("e2e", "vllm:e2e_request_latency_seconds"),
        ("queue", "vllm:request_queue_time_seconds"),
    ] {
        if let Some(q) = name
            .strip_prefix(short)
            .and_then(|r| r.strip_prefix("_p"))
            .and_then(|r| r.strip_suffix("_s"))
            && let Some(q) = quantile_digits(q)
        {
            return Signal::Quantile(family.into(), q);
        }
    }
    if let Some((family, q)) = name.rsplit_once(":p")
        && let Some(q) = quantile_digits(q)
    {
        return Signal::Quantile(family.into(), q);
    }
    Signal::Value(name.to_string())
}

/// `95` → 0.95, `999` → 0.999, `50` → 0.5.
fn quantile_digits(d: &str) -> Option<f64> {
    if d.is_empty() || d.len() > 4 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: f64 = format!("0.{d}").parse().ok()?;
    (v > 0.0 && v < 1.0).then_some(v)
}

/// True when `t` is one of the targets an effect on `name` speaks about: by target name, or by
/// its `deployment`, `replica` or `node` label.
pub fn target_matches(t: &TargetObservation, name: &str) -> bool {
    t.name == name
        || ["deployment", "replica", "node"]
            .iter()
            .any(|k| t.labels.get(*k).is_some_and(|v| v == name))
}

/// What a measurement found.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// A value.
    Value(f64),
    /// No value, and why.
    Missing(String),
}

fn scalar(s: &Series) -> Vec<(i64, f64)> {
    s.points.iter().filter_map(|p| p.v.map(|v| (p.t, v.0))).filter(|(_, v)| !v.is_nan()).collect()
}

/// Measure `signal` over `targets` (already filtered to the matching ones). `higher_is_worse`
/// picks the worst label set and target for plain values.
pub fn measure(signal: &Signal, targets: &[&TargetObservation], higher_is_worse: bool) -> Measured {
    if targets.is_empty() {
        return Measured::Missing("no observed target matches".into());
    }
    match signal {
        Signal::Up => {
            let all_up = targets.iter().all(|t| {
                t.status == TargetStatus::Up
                    && t.samples.iter().all(|s| s.status == TargetStatus::Up)
            });
            Measured::Value(if all_up { 1.0 } else { 0.0 })
        }
        Signal::ScrapeDuration => {
            let slowest = targets
                .iter()
                .filter_map(|t| {
                    let secs: Vec<f64> = t
                        .samples
                        .iter()
                        .filter(|s| s.status == TargetStatus::Up && s.duration_ms.is_finite())
                        .map(|s| s.duration_ms / 1000.0)
                        .collect();
                    let m = opsg_expo::quantile(0.5, &secs);
                    m.is_finite().then_some(m)
                })
                .reduce(f64::max);
            slowest.map_or_else(
                || Measured::Missing("no successful scrape to time".into()),
                Measured::Value,
            )
        }
        Signal::Value(name) => {
            let mut worst: Option<f64> = None;
            for t in targets {
                for s in t.series.iter().filter(|s| &s.name == name) {
                    if let Some(&(_, v)) = scalar(s).last() {
                        worst = Some(match worst {
                            None => v,
                            Some(w) if higher_is_worse => w.max(v),
                            Some(w) => w.min(v),
                        });
                    }
                }
            }
            worst.map_or_else(|| Measured::Missing(format!("no `{name}` series")), Measured::Value)
        }
        Signal::FailedShare(name) => {
            let (mut failed, mut all) = (0.0, 0.0);
            for t in targets {
                for s in t.series.iter().filter(|s| &s.name == name) {
                    let pts = scalar(s);
                    let (Some(first), Some(last)) = (pts.first(), pts.last()) else { continue };
                    if pts.len() < 2 {
                        continue;
                    }
                    // A reset (restart) in the window: the new count is the increase.
                    let inc = if last.1 < first.1 { last.1 } else { last.1 - first.1 };
                    all += inc;
                    if s.labels
                        .get("finished_reason")
                        .is_some_and(|r| FAILED_REASONS.contains(&r.as_str()))
                    {
                        failed += inc;
                    }
                }
            }
            if all > 0.0 {
                Measured::Value(failed / all)
            } else {
                Measured::Missing(format!("no `{name}` increase in the window"))
            }
        }
        Signal::Ratio(num, den) => {
            let mut worst: Option<f64> = None;
            for t in targets {
                for n in t.series.iter().filter(|s| &s.name == num) {
                    let Some(d) = t.series.iter().find(|s| &s.name == den && s.labels == n.labels)
                    else {
                        continue;
                    };
                    let (Some(&(_, nv)), Some(&(_, dv))) = (scalar(n).last(), scalar(d).last())
                    else {
                        continue;
                    };
                    if dv == 0.0 {
                        continue;
                    }
                    let v = nv / dv;
                    worst = Some(match worst {
                        None => v,
                        Some(w) if higher_is_worse => w.max(v),
                        Some(w) => w.min(v),
                    });
                }
            }
            worst.map_or_else(
                || Measured::Missing(format!("no `{num}` and `{den}` series with the same labels")),
                Measured::Value,
            )
        }
        Signal::Rate(name) => {
            let mut total = None;
            for t in targets {
                for s in t.series.iter().filter(|s| &s.name == name) {
                    let r = opsg_expo::rate(&scalar(s));
                    if r.is_finite() {
                        total = Some(total.unwrap_or(0.0) + r);
                    }
                }
            }
            total.map_or_else(
                || Measured::Missing(format!("`rate({name})` needs two samples or more")),
                Measured::Value,
            )
        }
        Signal::Quantile(name, q) => {
            // Bucket increases over the window, summed over every series of every target.
            let mut sum: Vec<(f64, f64)> = Vec::new();
            for t in targets {
                for s in t.series.iter().filter(|s| &s.name == name && !s.le.is_empty()) {
                    let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else {
                        continue;
                    };
                    if s.points.len() < 2
                        || first.buckets.len() != s.le.len()
                        || last.buckets.len() != s.le.len()
                    {
                        continue;
                    }
                    for (i, le) in s.le.iter().enumerate() {
                        let d = last.buckets[i].0 - first.buckets[i].0;
                        // A reset (restart) in the window: the new count is the increase.
                        let d = if d < 0.0 { last.buckets[i].0 } else { d };
                        match sum.iter_mut().find(|(b, _)| *b == le.0) {
                            Some(e) => e.1 += d,
                            None => sum.push((le.0, d)),
                        }
                    }
                }
            }
            if sum.is_empty() {
                return Measured::Missing(format!(
                    "no `{name}` histogram with two samples or more"
                ));
            }
            let v = opsg_expo::histogram_quantile(*q, &sum);
            if v.is_finite() {
                Measured::Value(v)
            } else {
                Measured::Missing(format!("no `{name}` observations in the window"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsg_core::float::Float;
    use opsg_core::kinds::observation::{MetricType, Point, SampleInfo};
    use std::collections::BTreeMap;

    fn target(name: &str, deployment: &str, series: Vec<Series>) -> TargetObservation {
        TargetObservation {
            name: name.into(),
            source: "http://x/metrics".into(),
            labels: [("deployment".to_string(), deployment.to_string())].into(),
            status: TargetStatus::Up,
            reason: None,
            samples: vec![SampleInfo {
                at: "2026-01-01T00:00:00Z".into(),
                status: TargetStatus::Up,
                duration_ms: 1.0,
                reason: None,
                stale: false,
                evidence: None,
            }],
            series,
        }
    }

    fn gauge(name: &str, values: &[f64]) -> Series {
        Series {
            name: name.into(),
            source_name: None,
            metric_type: MetricType::Gauge,
            labels: BTreeMap::new(),
            le: vec![],
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| Point {
                    t: i as i64 * 1000,
                    v: Some(Float(*v)),
                    count: None,
                    sum: None,
                    buckets: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn scrape_duration_is_the_median_answer_time_of_the_slowest_target() {
        // Regression test: a slow network path's fix (triage's `scrape_slow`) was planned with
        // this effect, and verify had no series of that name, so it was never confirmed.
        assert_eq!(parse("scrape_duration_seconds"), Signal::ScrapeDuration);
        let timed = |name: &str, ms: &[f64]| {
            let mut t = target(name, "stable", vec![]);
            let one = t.samples[0].clone();
            t.samples = ms.iter().map(|d| SampleInfo { duration_ms: *d, ..one.clone() }).collect();
            t
        };
        let fast = timed("stable-0", &[20.0, 900.0, 30.0]);
        let slow = timed("stable-1", &[1600.0, 1700.0, 1650.0]);
        assert_eq!(measure(&Signal::ScrapeDuration, &[&fast], true), Measured::Value(0.03));
        assert_eq!(measure(&Signal::ScrapeDuration, &[&fast, &slow], true), Measured::Value(1.65));
        let mut down = timed("stable-2", &[5.0]);
        down.samples[0].status = TargetStatus::Down;
        assert!(matches!(measure(&Signal::ScrapeDuration, &[&down], true), Measured::Missing(_)));
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse("up"), Signal::Up);
        assert_eq!(
            parse("ttft_p95_s"),
            Signal::Quantile("vllm:time_to_first_token_seconds".into(), 0.95)
        );
        assert_eq!(
            parse("vllm:e2e_request_latency_seconds:p99"),
            Signal::Quantile("vllm:e2e_request_latency_seconds".into(), 0.99)
        );
        assert_eq!(
            parse("rate(vllm:num_preemptions)"),
            Signal::Rate("vllm:num_preemptions".into())
        );
        assert_eq!(
            parse("vllm:kv_cache_usage_perc"),
            Signal::Value("vllm:kv_cache_usage_perc".into())
        );
    }

    #[test]
    fn plain_values_take_the_worst_target_for_the_direction() {
        let a = target("a", "stable", vec![gauge("kv", &[0.5, 0.9])]);
        let b = target("b", "stable", vec![gauge("kv", &[0.2, 0.3])]);
        let both = [&a, &b];
        assert_eq!(measure(&Signal::Value("kv".into()), &both, true), Measured::Value(0.9));
        assert_eq!(measure(&Signal::Value("kv".into()), &both, false), Measured::Value(0.3));
        assert!(matches!(
            measure(&Signal::Value("nope".into()), &both, true),
            Measured::Missing(_)
        ));
        assert!(
            target_matches(&a, "stable")
                && target_matches(&a, "a")
                && !target_matches(&a, "canary")
        );
    }

    #[test]
    fn quantiles_use_the_window_increase() {
        let mut h = gauge("lat", &[]);
        h.metric_type = MetricType::Histogram;
        h.le = vec![Float(0.1), Float(1.0), Float(f64::INFINITY)];
        // Before the window: 1000 slow requests; in the window: 100 fast ones.
        let p = |t: i64, b: [f64; 3]| Point {
            t,
            v: None,
            count: None,
            sum: None,
            buckets: b.iter().map(|v| Float(*v)).collect(),
        };
        h.points = vec![p(0, [0.0, 1000.0, 1000.0]), p(1000, [100.0, 1100.0, 1100.0])];
        let t = target("a", "d", vec![h]);
        match measure(&Signal::Quantile("lat".into(), 0.95), &[&t], true) {
            Measured::Value(v) => assert!(v <= 0.1, "the window's requests were all fast: {v}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ratio_pairs_label_sets_and_takes_the_fullest_mount() {
        // Regression: the smallest `node_filesystem_avail_bytes` was a 512 MB `/boot/efi` that
        // never changes, so a cleanup that freed 1.5 TB on `/` measured as no change at all.
        let with = |mut s: Series, mount: &str| {
            s.labels.insert("mountpoint".into(), mount.into());
            s
        };
        let t = target(
            "node_exporter-a",
            "",
            vec![
                with(gauge("avail", &[19.0, 1500.0]), "/"),
                with(gauge("avail", &[0.53, 0.53]), "/boot/efi"),
                with(gauge("size", &[1900.0, 1900.0]), "/"),
                with(gauge("size", &[0.54, 0.54]), "/boot/efi"),
            ],
        );
        let sig = parse("avail/size");
        assert_eq!(sig, Signal::Ratio("avail".into(), "size".into()));
        match measure(&sig, &[&t], false) {
            Measured::Value(v) => assert!((v - 1500.0 / 1900.0).abs() < 1e-12, "{v}"),
            other => panic!("{other:?}"),
        }
        // Without a denominator of the same labels there is nothing to measure.
        let lone = target("x", "", vec![with(gauge("avail", &[1.0]), "/")]);
        assert!(matches!(measure(&sig, &[&lone], false), Measured::Missing(_)));
    }

    #[test]
    fn a_failed_share_counts_abort_and_error_over_the_window() {
        let reason = |r: &str, values: &[f64]| {
            let mut s = gauge("vllm:request_success_total", values);
            s.labels.insert("finished_reason".into(), r.into());
            s
        };
        let t = target(
            "stable-0",
            "stable",
            vec![
                reason("stop", &[100.0, 130.0]),
                reason("length", &[50.0, 60.0]),
                reason("error", &[40.0, 50.0]),
                reason("abort", &[5.0, 5.0]),
            ],
        );
        let sig = parse("vllm:request_success_total:ratio");
        assert_eq!(sig, Signal::FailedShare("vllm:request_success_total".into()));
        match measure(&sig, &[&t], true) {
            Measured::Value(v) => assert!((v - 10.0 / 50.0).abs() < 1e-12, "{v}"),
            other => panic!("{other:?}"),
        }
        // A restart reset the counters: what finished since counts.
        let t =
            target("s", "d", vec![reason("stop", &[500.0, 20.0]), reason("error", &[90.0, 0.0])]);
        assert_eq!(measure(&sig, &[&t], true), Measured::Value(0.0));
        let idle = target("s", "d", vec![reason("stop", &[7.0, 7.0])]);
        assert!(matches!(measure(&sig, &[&idle], true), Measured::Missing(_)));
    }

    #[test]
    fn up_is_zero_when_any_sample_failed() {
        let mut t = target("r1", "stable", vec![]);
        assert_eq!(measure(&Signal::Up, &[&t], false), Measured::Value(1.0));
        t.samples[0].status = TargetStatus::Down;
        assert_eq!(measure(&Signal::Up, &[&t], false), Measured::Value(0.0));
    }
}

//! Canary analysis: each canary replica judged against the stable replicas under the same traffic.
//!
//! An absolute latency threshold misses a canary whose latency is many times stable's but hovers
//! around the SLO: opsg-sim's `canary_regression` at 0.8 puts the canary's TTFT p95 at 0.7 to
//! 2.4 s (a few dozen first tokens per window) while stable serves in 0.1 s, so `ttft_p95_high`
//! fired on some cron runs and not on the next ones while the bad config still ran. Canary
//! analysis as SREs do it (Kayenta, Argo Rollouts) compares the canary with the baseline serving
//! the same traffic mix instead.
//!
//! For each of [`COMPARISONS`] (TTFT p95), each evaluation of a canary (`role` label `canary`)
//! is divided by the median of the stable replicas' (every other replica that is up) at the same
//! time, the nearest within half a sample interval, as [`crate::peers`] does for same-config
//! peers. It breaches when that ratio is at least [`RATIO`] and the canary's value reaches the
//! comparison's floor (0.03 s against 0.01 s is noise, not a regression users see). An
//! evaluation is not compared, which breaks a run of breaches, when no stable replica has a value
//! then, stable's median is 0, the load of either side is unknown, or the canary carries more
//! than [`MAX_LOAD_RATIO`] times the stable median's arriving requests (completed plus backlog
//! growth) or prompt tokens per second over the same window: a canary that simply got more
//! traffic is slower for a reason. Arrivals, not running requests, measure load here, because a
//! regressed canary holds each request longer and so runs more of them at once without
//! receiving more; a backlog that grows counts, so a canary whose KV cache is full (its
//! completions throttled) is judged by the demand it got, not by what it managed to serve.
//!
//! A comparison fires after [`FOR_EVALUATIONS`] breaching evaluations in a row, the persistence of
//! the histogram rules. Its anomaly reports the canary's own value against the bound it crossed
//! at the last evaluation (the larger of [`RATIO`] times stable's median and the floor), so the
//! signal stays one opsg-verify can measure after a rollback; its strength for correlation is
//! taken from the ratio (0.6 at 3x, full at 4.5x), and it is evidence of a canary regression
//! only ([`crate::correlate`]).
//!
//! It is part of correlation, like the detection of a config change: a rules file does not
//! switch it off (the rules schema has no field for a comparison against another deployment).

use crate::correlate::Fired;
use crate::math::median;
use crate::peers::{NEUTRAL, at};
use crate::rules::{Applies, Func, Op, Persistence, Rule};
use crate::signals::{self, is_replica};
use opsg_core::float::Float;
use opsg_core::kinds::finding::{Anomaly, IncidentClass};
use opsg_core::kinds::observation::{ObservationBody, TargetObservation, TargetStatus};
use opsg_core::time::Timestamp;
use std::collections::BTreeMap;

/// One latency the canary is compared on.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// The name its anomalies cite.
    pub name: &'static str,
    /// The histogram.
    pub signal: &'static str,
    /// `quantile` (with `q`) or `mean`.
    pub func: Func,
    /// The quantile, for `quantile`.
    pub q: Option<f64>,
    /// The canary's value must reach this for the evaluation to count (seconds).
    pub floor: f64,
}

/// The comparisons: TTFT p95, what a config change such as a smaller step budget or eager mode
/// hurts first. Not inter-token latency: latency added on a canary's network path raises it
/// about as much (opsg-sim's `network_latency` at 0.8 on `canary-0`: 3.2x stable's mean), and
/// that is `itl_above_peers`' and `scrape_slow`'s to judge, not a config's.
pub const COMPARISONS: &[Comparison] = &[Comparison {
    name: "ttft_p95_above_stable",
    signal: "vllm:time_to_first_token_seconds",
    func: Func::Quantile,
    q: Some(0.95),
    floor: 0.5,
}];

/// The canary's value over stable's median at which an evaluation breaches.
pub const RATIO: f64 = 3.0;
/// How much a comparison alone supports a canary regression (at full strength).
pub const WEIGHT: f64 = 0.7;
/// Breaching evaluations in a row needed, as for `ttft_p95_high`.
pub const FOR_EVALUATIONS: u32 = 3;
/// Samples per evaluation, as for the built-in histogram rules.
pub const RANGE: u32 = 2;
/// A canary whose load (see [`LOAD`]) exceeds stable's median by more than this is not compared.
pub const MAX_LOAD_RATIO: f64 = 1.5;
/// The counters load is measured on, per second over the evaluation's window (those both the
/// canary and stable have; at least one): requests arriving (completed, plus the growth of the
/// running and waiting requests, so a saturated replica's backlog counts as load) and prompt
/// tokens prefilled.
pub const LOAD: &[&str] = &["vllm:request_success_total", "vllm:prompt_tokens_total"];

/// Requests arriving per second: `completed` (per evaluation time) plus the growth of running and
/// waiting requests (summed over label sets) across the same window of [`RANGE`] samples.
fn arrivals(t: &TargetObservation, completed: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    let mut queue: BTreeMap<i64, f64> = BTreeMap::new();
    for s in t
        .series
        .iter()
        .filter(|s| s.name == "vllm:num_requests_waiting" || s.name == "vllm:num_requests_running")
    {
        for p in &s.points {
            if let Some(v) = p.v.map(|v| v.0).filter(|v| v.is_finite()) {
                *queue.entry(p.t).or_default() += v;
            }
        }
    }
    let times: Vec<i64> = queue.keys().copied().collect();
    completed
        .into_iter()
        .map(|(at, rate)| {
            let grew = times.iter().position(|x| *x == at).and_then(|k| {
                let start = times[k.checked_sub(RANGE as usize)?];
                let secs = (at - start) as f64 / 1000.0;
                (secs > 0.0).then(|| (queue[&at] - queue[&start]).max(0.0) / secs)
            });
            (at, rate + grew.unwrap_or(0.0))
        })
        .collect()
}

/// An internal rule: how one series is evaluated, per target, with the engine's semantics.
fn internal(name: &str, signal: &str, func: Func, q: Option<f64>) -> Rule {
    Rule {
        name: name.to_string(),
        signal: signal.to_string(),
        func,
        q,
        bound: None,
        slo: None,
        matchers: BTreeMap::new(),
        over: None,
        mask: None,
        range: Some(RANGE),
        peers: None,
        op: Op::Ge,
        threshold: RATIO,
        persistence: Persistence::Samples(FOR_EVALUATIONS),
        class: Some(IncidentClass::CanaryRegression),
        weight: Some(WEIGHT),
        applies_to: Applies::Replicas,
        custom_metric: false,
    }
}

fn is_canary(t: &TargetObservation) -> bool {
    t.labels.get("role").is_some_and(|r| r == "canary")
}

/// Compare every canary replica with the stable replicas; one [`Fired`] per comparison that
/// breached for [`FOR_EVALUATIONS`] evaluations in a row. Nothing without a canary and at least
/// one stable replica that is up.
pub fn evaluate(obs: &ObservationBody) -> Vec<Fired> {
    let targets = &obs.targets;
    let replicas: Vec<usize> = (0..targets.len()).filter(|i| is_replica(&targets[*i])).collect();
    let canaries: Vec<usize> =
        replicas.iter().copied().filter(|i| is_canary(&targets[*i])).collect();
    let stables: Vec<usize> = replicas
        .iter()
        .copied()
        .filter(|i| !is_canary(&targets[*i]) && targets[*i].status == TargetStatus::Up)
        .collect();
    if canaries.is_empty() || stables.is_empty() {
        return Vec::new();
    }
    let tolerance = (obs.interval_s.max(0.0) * 500.0) as i64;
    let load_of = |i: usize| -> Vec<Vec<(i64, f64)>> {
        LOAD.iter()
            .map(|name| {
                let rate = internal("load", name, Func::Rate, None);
                let points = signals::evaluate(&rate, &targets[i]).points;
                if *name == LOAD[0] { arrivals(&targets[i], points) } else { points }
            })
            .collect()
    };
    let loads: BTreeMap<usize, Vec<Vec<(i64, f64)>>> =
        canaries.iter().chain(&stables).map(|i| (*i, load_of(*i))).collect();
    let mut fired = Vec::new();
    for c in COMPARISONS {
        let rule = internal(c.name, c.signal, c.func, c.q);
        let stable_evs: Vec<Vec<(i64, f64)>> =
            stables.iter().map(|i| signals::evaluate(&rule, &targets[*i]).points).collect();
        for &ci in &canaries {
            let own = signals::evaluate(&rule, &targets[ci]).points;
            // (t, ratio, the bound the canary's value is held to) per evaluation.
            let judged: Vec<(i64, f64, f64)> = own
                .iter()
                .map(|&(t, v)| {
                    let values: Vec<f64> =
                        stable_evs.iter().filter_map(|p| at(p, t, tolerance)).collect();
                    match median(&values) {
                        Some(m)
                            if m > 0.0
                                && v >= c.floor
                                && lighter(&loads, ci, &stables, t, tolerance) =>
                        {
                            (t, v / m, (RATIO * m).max(c.floor))
                        }
                        _ => (t, NEUTRAL, c.floor),
                    }
                })
                .collect();
            let ratios: Vec<(i64, f64)> = judged.iter().map(|p| (p.0, p.1)).collect();
            let (n, last, since) = signals::trailing_breach(&rule, &ratios);
            let (Some(ratio), Some(&(_, _, bound))) = (last, judged.last()) else { continue };
            if n < FOR_EVALUATIONS {
                continue;
            }
            let value = own.last().map(|p| p.1).unwrap_or_default();
            fired.push(Fired {
                anomaly: Anomaly {
                    rule: c.name.to_string(),
                    target: targets[ci].name.clone(),
                    signal: rule.signal_name(),
                    value: Float((value * 1e6).round() / 1e6),
                    op: Op::Ge.as_str().to_string(),
                    threshold: Float((bound * 1e6).round() / 1e6),
                    samples_breaching: n,
                    for_samples: FOR_EVALUATIONS,
                    since: since.map(|t| Timestamp(t).to_rfc3339()),
                },
                class: Some(IncidentClass::CanaryRegression),
                score: WEIGHT * crate::correlate::strength(&rule, ratio),
                target: ci,
                since_ms: since,
                versus_peers: false,
                versus_stable: true,
            });
        }
    }
    fired
}

/// True when the canary's load at `t` is at most [`MAX_LOAD_RATIO`] times the stable
/// replicas' median on every load counter both sides have, and there is at least one: stable
/// carries comparable or more load. Unknown load is not comparable.
fn lighter(
    loads: &BTreeMap<usize, Vec<Vec<(i64, f64)>>>,
    canary: usize,
    stables: &[usize],
    t: i64,
    tolerance: i64,
) -> bool {
    let Some(own) = loads.get(&canary) else { return false };
    let mut compared = 0;
    for (k, points) in own.iter().enumerate() {
        let Some(mine) = at(points, t, tolerance) else { continue };
        let theirs: Vec<f64> = stables
            .iter()
            .filter_map(|s| loads.get(s).and_then(|l| at(&l[k], t, tolerance)))
            .collect();
        let Some(m) = median(&theirs) else { continue };
        if mine > MAX_LOAD_RATIO * m {
            return false;
        }
        compared += 1;
    }
    compared > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rules;
    use crate::correlate::{Correlation, correlate};
    use serde_json::json;

    const T0: i64 = 1_795_000_000_000;
    const SAMPLES: i64 = 6;
    /// TTFT bucket bounds: every replica's first tokens fall in one bucket, so its p95 is the
    /// bucket's lower bound plus 95% of its width.
    const LE: [f64; 7] = [0.05, 0.1, 0.5, 0.95, 1.95, 2.5, f64::INFINITY];

    /// One replica of a test fleet.
    struct Replica {
        name: &'static str,
        role: &'static str,
        config: &'static str,
        /// The upper bound of the TTFT bucket holding all its first tokens: 0.1 gives a p95 of
        /// 0.0975 s, 0.95 of 0.9275 s, 1.95 of 1.9 s.
        ttft_le: f64,
        /// Requests finished (and first tokens served) per second.
        rps: f64,
    }

    fn stable(name: &'static str) -> Replica {
        Replica { name, role: "stable", config: "v7", ttft_le: 0.1, rps: 3.0 }
    }

    /// The canary: a tenth of the traffic in a fleet of four (a third of a stable replica's),
    /// a new config, its TTFT p95 1.9 s.
    fn canary() -> Replica {
        Replica { name: "canary-0", role: "canary", config: "v8", ttft_le: 1.95, rps: 1.0 }
    }

    fn fleet_of(canary: Replica) -> Vec<Replica> {
        vec![stable("stable-0"), stable("stable-1"), stable("stable-2"), canary]
    }

    /// The fleet with the canary's first tokens in the bucket up to `canary_le` and stable's in
    /// the one up to `stable_le`.
    fn slower(canary_le: f64, stable_le: f64) -> Vec<Replica> {
        let mut fleet = fleet_of(Replica { ttft_le: canary_le, ..canary() });
        for r in &mut fleet[..3] {
            r.ttft_le = stable_le;
        }
        fleet
    }

    /// A fleet sampled 6 times 15 s apart: 4 evaluations of 2 samples each.
    fn observe(replicas: &[Replica]) -> ObservationBody {
        let times: Vec<i64> = (0..SAMPLES).map(|k| T0 + k * 15_000).collect();
        let at = |t: i64| Timestamp(t).to_rfc3339();
        let targets: Vec<serde_json::Value> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                // A counter `per_request` times the requests finished, sample by sample.
                let counter = |name: &str, labels: serde_json::Value, per_request: f64| {
                    let points: Vec<serde_json::Value> = times
                        .iter()
                        .enumerate()
                        .map(|(k, t)| json!({"t": t, "v": per_request * r.rps * 15.0 * k as f64}))
                        .collect();
                    json!({"name": name, "type": "counter", "labels": labels, "points": points})
                };
                let hist = times
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let count = 100.0 + r.rps * 15.0 * k as f64;
                        let buckets: Vec<f64> = LE
                            .iter()
                            .map(|le| if r.ttft_le <= *le { count } else { 0.0 })
                            .collect();
                        json!({"t": t, "count": count, "sum": count * r.ttft_le * 0.9,
                               "buckets": buckets})
                    })
                    .collect::<Vec<_>>();
                json!({
                    "name": r.name,
                    "source": format!("http://{}:8000/metrics", r.name),
                    "labels": {"deployment": r.role, "role": r.role,
                               "config_version": r.config, "node": format!("node-{i}")},
                    "status": "up",
                    "samples": times.iter().map(|t| json!({"at": at(*t), "status": "up",
                        "duration_ms": 20.0, "stale": false})).collect::<Vec<_>>(),
                    "series": [
                        counter("vllm:request_success_total",
                                json!({"engine": "0", "finished_reason": "stop"}), 1.0),
                        counter("vllm:prompt_tokens_total", json!({"engine": "0"}), 1000.0),
                        {"name": "vllm:time_to_first_token_seconds", "type": "histogram",
                         "labels": {"engine": "0"},
                         "le": [0.05, 0.1, 0.5, 0.95, 1.95, 2.5, "+Inf"], "points": hist},
                    ],
                })
            })
            .collect();
        serde_json::from_value(json!({
            "window": {"start": at(times[0]), "end": at(*times.last().unwrap())},
            "interval_s": 15.0,
            "targets": targets,
        }))
        .unwrap()
    }

    /// The built-in rules without `ttft_p95_high`: what triage concludes when the absolute
    /// threshold does not fire on this run (the value hovers around it).
    fn without_absolute() -> Rules {
        let mut rules = Rules::builtin();
        rules.rules.retain(|r| r.name != "ttft_p95_high");
        rules
    }

    fn versus_stable(obs: &ObservationBody) -> Vec<String> {
        evaluate(obs).iter().map(|f| format!("{}@{}", f.anomaly.rule, f.anomaly.target)).collect()
    }

    fn canary_regression(c: &Correlation) -> Option<&opsg_core::kinds::finding::Hypothesis> {
        c.hypotheses.iter().find(|h| h.class == IncidentClass::CanaryRegression)
    }

    // Regression (fault campaign, canary_regression at 0.8): the canary's TTFT p95 hovered around
    // the absolute threshold, so `ttft_p95_high` fired on some cron runs and not the next ones
    // while the bad config still ran, and the page found nothing to approve. Against stable
    // (0.1 s) the canary is regressed on every run.
    #[test]
    fn a_canary_many_times_slower_than_stable_is_a_regression_without_the_absolute_rule() {
        let obs = observe(&fleet_of(canary()));
        assert_eq!(versus_stable(&obs), ["ttft_p95_above_stable@canary-0"]);
        let f = &evaluate(&obs)[0];
        // The canary's own p95 against the bound it crossed: 3x stable's 0.0975 s, or the floor.
        assert_eq!(f.anomaly.signal, "vllm:time_to_first_token_seconds:p95");
        assert!((f.anomaly.value.0 - 1.9).abs() < 1e-6, "{}", f.anomaly.value.0);
        assert_eq!(f.anomaly.threshold.0, 0.5);
        assert_eq!((f.anomaly.samples_breaching, f.anomaly.for_samples), (4, 3));
        // 19.5x stable: full strength.
        assert!((f.score - WEIGHT).abs() < 1e-9);

        for rules in [without_absolute(), Rules::builtin()] {
            let c = correlate(&obs, &rules);
            let h = &c.hypotheses[0];
            assert_eq!(h.class, IncidentClass::CanaryRegression, "{:?}", c.hypotheses);
            assert_eq!(h.targets, ["canary-0"]);
            assert!(h.confidence >= 0.8, "{}", h.confidence);
            assert!(h.evidence.contains(&"ttft_p95_above_stable@canary-0".into()), "{h:?}");
        }
        // The comparison and the config change alone: 1 - (1 - 0.7)(1 - 0.5).
        let h = correlate(&obs, &without_absolute()).hypotheses[0].clone();
        assert_eq!(h.confidence, 0.85);
        assert!(h.cause.contains("config v8"), "{}", h.cause);

        // Under the absolute threshold altogether (0.93 s, 9.5x stable): the same conclusion.
        let obs = observe(&fleet_of(Replica { ttft_le: 0.95, ..canary() }));
        let c = correlate(&obs, &Rules::builtin());
        assert!(c.fired.iter().all(|f| f.anomaly.rule != "ttft_p95_high"));
        let h = &c.hypotheses[0];
        assert_eq!(h.class, IncidentClass::CanaryRegression, "{:?}", c.hypotheses);
        assert_eq!(h.confidence, 0.85);
    }

    #[test]
    fn nothing_when_the_canary_serves_like_stable() {
        let same = observe(&fleet_of(Replica { ttft_le: 0.1, ..canary() }));
        assert!(versus_stable(&same).is_empty());
        assert!(correlate(&same, &Rules::builtin()).hypotheses.is_empty());
        // Twice as slow is not three times.
        assert!(versus_stable(&observe(&slower(0.95, 0.5))).is_empty());
    }

    #[test]
    fn nothing_below_the_floor() {
        // 10x stable, but a p95 of 0.48 s is not a regression users see.
        assert!(versus_stable(&observe(&slower(0.5, 0.05))).is_empty());
    }

    #[test]
    fn nothing_without_stable_replicas_to_compare_with() {
        let alone = observe(&[canary()]);
        assert!(versus_stable(&alone).is_empty());
        // Stable replicas that serve no first tokens give no median either.
        let mut obs = observe(&fleet_of(canary()));
        for t in &mut obs.targets[..3] {
            t.series.retain(|s| s.name != "vllm:time_to_first_token_seconds");
        }
        assert!(versus_stable(&obs).is_empty());
        assert!(canary_regression(&correlate(&obs, &without_absolute())).is_none());
    }

    #[test]
    fn nothing_when_the_canary_carries_more_load_than_stable() {
        // 9 requests per second against stable's 3: its slowness has a reason.
        let busy = observe(&fleet_of(Replica { rps: 9.0, ..canary() }));
        assert!(versus_stable(&busy).is_empty());
        assert!(canary_regression(&correlate(&busy, &without_absolute())).is_none());
        // Somewhat busier (1.33x) is no excuse.
        let bit = observe(&fleet_of(Replica { rps: 4.0, ..canary() }));
        assert_eq!(versus_stable(&bit), ["ttft_p95_above_stable@canary-0"]);
    }

    #[test]
    fn nothing_for_a_surge_that_slows_everyone() {
        let mut all = fleet_of(canary());
        for r in &mut all {
            (r.ttft_le, r.rps) = (1.95, r.rps * 2.0);
        }
        let obs = observe(&all);
        assert!(versus_stable(&obs).is_empty());
        let c = correlate(&obs, &Rules::builtin());
        assert!(canary_regression(&c).is_none(), "{:?}", c.hypotheses);
    }

    #[test]
    fn a_slow_window_must_persist() {
        // Slow in the last two evaluations only: 2 of the 3 needed.
        let mut obs = observe(&fleet_of(Replica { ttft_le: 0.1, ..canary() }));
        let slow = observe(&fleet_of(canary()));
        let from = T0 + 3 * 15_000;
        let hist = |o: &ObservationBody| {
            o.targets[3]
                .series
                .iter()
                .position(|s| s.name == "vllm:time_to_first_token_seconds")
                .unwrap()
        };
        let (k, ks) = (hist(&obs), hist(&slow));
        // From sample 3 on the canary's new first tokens all land in the slow bucket.
        let base = obs.targets[3].series[k].points[3].buckets.clone();
        for (p, ps) in
            obs.targets[3].series[k].points.iter_mut().zip(&slow.targets[3].series[ks].points)
        {
            if p.t > from {
                let added = ps.buckets[6].0 - slow.targets[3].series[ks].points[3].buckets[6].0;
                for (j, b) in p.buckets.iter_mut().enumerate() {
                    b.0 = base[j].0 + if LE[j] >= 1.95 { added } else { 0.0 };
                }
                p.count = Some(opsg_core::float::Float(p.buckets[6].0));
            }
        }
        let rule = internal("t", COMPARISONS[0].signal, Func::Quantile, Some(0.95));
        let p95: Vec<f64> =
            signals::evaluate(&rule, &obs.targets[3]).points.iter().map(|p| p.1).collect();
        assert_eq!(p95.len(), 4);
        assert!(p95[..2].iter().all(|v| *v < 0.1) && p95[2..].iter().all(|v| *v > 1.0), "{p95:?}");
        assert!(versus_stable(&obs).is_empty());
    }
}

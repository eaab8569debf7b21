//! Peer comparison: a target judged against the other replicas of its deployment.
//!
//! A rule with `peers` ([`crate::rules::Peers`]) is first evaluated on every target alone (for
//! example the mean inter-token latency over each window of `range` samples). Each evaluation
//! of a target is then divided by the median of its peers' evaluations at the same time (the
//! nearest within half a sample interval): the rule's value is that ratio, and its `threshold`
//! (say 2) and persistence apply to the ratio as to any other value.
//!
//! Peers are the other targets the rule applies to that carry the same values of the `by`
//! labels (`deployment`, `role`, `config_version`), so a canary running another config is never
//! judged against stable. An evaluation is compared only when it is fair to; otherwise it gets
//! the neutral ratio 1, which breaks a run of breaches like any value within the threshold:
//!
//! - at least `min_peers` peers have a value at that time: with one peer, either could be the
//!   odd one out, and a deployment of one has nothing to compare with;
//! - the peers' median is above 0, and the larger side reaches `min_value` (a floor below which
//!   differences do not matter to users);
//! - the target's own load is not what makes it different: on each `load` gauge (mean over the
//!   evaluation's samples, the worst label set) it is at most `max_load_ratio` times its peers'
//!   median. A replica holding twice its peers' running requests is slower for a reason.
//!
//! Because the median is taken over the peers, a whole deployment that is slow (load) compares
//! at about 1 everywhere and nothing fires; one slow replica among three or more fires alone.

use crate::math::median;
use crate::rules::{Func, Op, Rule};
use crate::signals::{self, Evaluation};
use opsg_core::kinds::observation::{ObservationBody, TargetObservation};

/// The ratio an evaluation gets when it cannot be compared fairly: never a breach, because a
/// peer rule's threshold is above 1 for `>` and below 1 for `<` (checked when rules load).
pub const NEUTRAL: f64 = 1.0;

/// Evaluate a peer rule on every target of `obs`: one [`Evaluation`] per target, in order, whose
/// points are ratios to the peers' median (empty where `applies` is false or the rule has no
/// `peers`).
pub fn evaluate(rule: &Rule, obs: &ObservationBody, applies: &[bool]) -> Vec<Evaluation> {
    let n = obs.targets.len();
    let Some(cfg) = &rule.peers else { return vec![Evaluation::default(); n] };
    let on = |i: usize| applies.get(i).copied().unwrap_or(false);
    let own: Vec<Evaluation> =
        (0..n)
            .map(|i| {
                if on(i) { signals::evaluate(rule, &obs.targets[i]) } else { Evaluation::default() }
            })
            .collect();
    let loads: Vec<Vec<Vec<(i64, f64)>>> = (0..n)
        .map(|i| {
            cfg.load
                .iter()
                .map(|name| {
                    if on(i) {
                        signals::evaluate(&load_rule(rule, name), &obs.targets[i]).points
                    } else {
                        Vec::new()
                    }
                })
                .collect()
        })
        .collect();
    let keys: Vec<Option<Vec<Option<&str>>>> =
        obs.targets.iter().map(|t| group_key(t, &cfg.by)).collect();
    let interval_ms = (obs.interval_s.max(0.0) * 1000.0) as i64;
    let tolerance = interval_ms / 2;
    // The load window: the samples the evaluation's own window spans.
    let window = rule.range.unwrap_or(2).max(1) as i64 * interval_ms + tolerance;

    let mut out: Vec<Evaluation> = Vec::with_capacity(n);
    for i in 0..n {
        let mut ev = Evaluation { points: Vec::new(), notes: own[i].notes.clone() };
        let Some(key) = keys[i].as_ref().filter(|_| on(i)) else {
            out.push(ev);
            continue;
        };
        let peers: Vec<usize> =
            (0..n).filter(|j| *j != i && on(*j) && keys[*j].as_ref() == Some(key)).collect();
        for &(t, v) in &own[i].points {
            let values: Vec<f64> =
                peers.iter().filter_map(|j| at(&own[*j].points, t, tolerance)).collect();
            let ratio = match median(&values) {
                Some(m)
                    if values.len() >= cfg.min_peers as usize
                        && m > 0.0
                        && v.max(m) >= cfg.min_value
                        && !heavier(&loads, i, &peers, t, window, cfg.max_load_ratio) =>
                {
                    v / m
                }
                _ => NEUTRAL,
            };
            ev.points.push((t, ratio));
        }
        out.push(ev);
    }
    out
}

/// The rule that reads one load gauge: its value, the worst (highest) label set.
fn load_rule(rule: &Rule, name: &str) -> Rule {
    let mut r = rule.clone();
    r.signal = name.to_string();
    r.func = Func::Value;
    r.op = Op::Gt;
    r.over = None;
    r.matchers.clear();
    r.peers = None;
    r
}

/// The values of the `by` labels; `None` when the target has none of them.
fn group_key<'a>(t: &'a TargetObservation, by: &[String]) -> Option<Vec<Option<&'a str>>> {
    let key: Vec<Option<&str>> = by.iter().map(|k| t.labels.get(k).map(String::as_str)).collect();
    key.iter().any(Option::is_some).then_some(key)
}

/// The value of the point nearest to `t`, within `tolerance` ms.
pub(crate) fn at(points: &[(i64, f64)], t: i64, tolerance: i64) -> Option<f64> {
    points
        .iter()
        .filter(|(pt, _)| (pt - t).abs() <= tolerance)
        .min_by_key(|(pt, _)| (pt - t).abs())
        .map(|p| p.1)
}

/// The mean of the points in `(t - window, t]`.
fn mean_within(points: &[(i64, f64)], t: i64, window: i64) -> Option<f64> {
    let vals: Vec<f64> =
        points.iter().filter(|(pt, _)| *pt > t - window && *pt <= t).map(|p| p.1).collect();
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

/// True when target `i` carries more than `max_ratio` times its peers' median load on any load
/// gauge around time `t`.
fn heavier(
    loads: &[Vec<Vec<(i64, f64)>>],
    i: usize,
    peers: &[usize],
    t: i64,
    window: i64,
    max_ratio: f64,
) -> bool {
    loads[i].iter().enumerate().any(|(k, own)| {
        let Some(mine) = mean_within(own, t, window) else { return false };
        let theirs: Vec<f64> =
            peers.iter().filter_map(|j| mean_within(&loads[*j][k], t, window)).collect();
        median(&theirs).is_some_and(|m| mine > max_ratio * m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rules;
    use crate::correlate::correlate;
    use opsg_core::kinds::finding::IncidentClass;
    use serde_json::json;

    const T0: i64 = 1_795_000_000_000;
    const SAMPLES: i64 = 8;

    /// One replica of a test fleet: its mean ITL (s), running requests, KV use and scrape time.
    struct Replica {
        name: &'static str,
        deployment: &'static str,
        role: &'static str,
        config: &'static str,
        itl_s: f64,
        running: f64,
        kv: f64,
        scrape_ms: f64,
    }

    fn replica(name: &'static str, itl_s: f64) -> Replica {
        Replica {
            name,
            deployment: "stable",
            role: "stable",
            config: "v7",
            itl_s,
            running: 16.0,
            kv: 0.4,
            scrape_ms: 30.0,
        }
    }

    /// A fleet sampled 8 times 5 s apart; each replica emits 1,000 tokens per sample at its ITL.
    fn fleet(replicas: &[Replica]) -> ObservationBody {
        let times: Vec<i64> = (0..SAMPLES).map(|k| T0 + k * 5_000).collect();
        let at = |t: i64| opsg_core::time::Timestamp(t).to_rfc3339();
        let targets: Vec<serde_json::Value> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let gauge = |name: &str, v: f64| {
                    json!({"name": name, "type": "gauge", "labels": {"engine": "0"},
                           "points": times.iter().map(|t| json!({"t": t, "v": v})).collect::<Vec<_>>()})
                };
                let hist = times
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let count = 1000.0 * (k as f64 + 1.0) + 7.0 * i as f64;
                        let sum = count * r.itl_s;
                        // Every observation in the bucket holding the mean: p95 stays under
                        // `itl_p95_high`'s 0.2 s, so only the peer rule judges these replicas.
                        let buckets: Vec<f64> = [0.05, 0.1, 0.2, f64::INFINITY]
                            .iter()
                            .map(|le| if r.itl_s <= *le { count } else { 0.0 })
                            .collect();
                        json!({"t": t, "count": count, "sum": sum, "buckets": buckets})
                    })
                    .collect::<Vec<_>>();
                json!({
                    "name": r.name,
                    "source": format!("http://{}:8000/metrics", r.name),
                    "labels": {"deployment": r.deployment, "role": r.role,
                               "config_version": r.config, "node": format!("node-{i}")},
                    "status": "up",
                    "samples": times.iter().map(|t| json!({"at": at(*t), "status": "up",
                        "duration_ms": r.scrape_ms, "stale": false})).collect::<Vec<_>>(),
                    "series": [
                        gauge("vllm:num_requests_running", r.running),
                        gauge("vllm:kv_cache_usage_perc", r.kv),
                        {"name": "vllm:inter_token_latency_seconds", "type": "histogram",
                         "labels": {"engine": "0"}, "le": [0.05, 0.1, 0.2, "+Inf"], "points": hist},
                    ],
                })
            })
            .collect();
        serde_json::from_value(json!({
            "window": {"start": at(times[0]), "end": at(*times.last().unwrap())},
            "interval_s": 5.0,
            "targets": targets,
        }))
        .unwrap()
    }

    fn peer_rule() -> Rule {
        Rules::builtin().rules.into_iter().find(|r| r.name == "itl_above_peers").unwrap()
    }

    /// The targets `itl_above_peers` fires on, through the whole rule engine.
    fn fired_on(obs: &ObservationBody) -> Vec<String> {
        let rules = Rules::builtin();
        let (fired, _) = crate::correlate::evaluate(obs, &rules);
        fired
            .iter()
            .filter(|f| f.anomaly.rule == "itl_above_peers")
            .map(|f| f.anomaly.target.clone())
            .collect()
    }

    fn stable(slow: f64) -> Vec<Replica> {
        vec![
            replica("stable-0", 0.016),
            replica("stable-1", slow),
            replica("stable-2", 0.017),
            replica("stable-3", 0.015),
        ]
    }

    #[test]
    fn fires_on_the_outlier_replica_only() {
        let obs = fleet(&stable(0.09));
        assert_eq!(fired_on(&obs), vec!["stable-1".to_string()]);
        let rules = Rules::builtin();
        let (fired, _) = crate::correlate::evaluate(&obs, &rules);
        let f = fired.iter().find(|f| f.anomaly.rule == "itl_above_peers").unwrap();
        // 0.09 over the peers' median 0.016: 5.6x, reported as a ratio to a threshold of 2.
        assert_eq!(f.anomaly.signal, "vllm:inter_token_latency_seconds:mean/peer_median");
        assert!((f.anomaly.value.0 - 0.09 / 0.016).abs() < 1e-3, "{}", f.anomaly.value.0);
        assert_eq!(f.anomaly.threshold.0, 2.0);
        assert!(f.class.is_none(), "a symptom, attributed during correlation");
        // Every evaluation after the first window compares: 8 samples, range 2.
        let ev = &evaluate(&peer_rule(), &obs, &[true; 4])[1];
        assert_eq!(ev.points.len(), 6);
    }

    #[test]
    fn does_not_fire_with_fewer_than_two_peers() {
        let mut two = stable(0.09);
        two.truncate(2);
        assert!(fired_on(&fleet(&two)).is_empty());
        // Peers without data do not count either: stable-2 and stable-3 serve no tokens.
        let mut obs = fleet(&stable(0.09));
        for t in &mut obs.targets[2..] {
            t.series.retain(|s| s.name != "vllm:inter_token_latency_seconds");
        }
        assert!(fired_on(&obs).is_empty());
    }

    #[test]
    fn does_not_fire_when_the_whole_deployment_is_slow() {
        // Load, not one replica's path: every replica at 80-95 ms.
        let all = vec![
            replica("stable-0", 0.08),
            replica("stable-1", 0.095),
            replica("stable-2", 0.085),
            replica("stable-3", 0.09),
        ];
        assert!(fired_on(&fleet(&all)).is_empty());
    }

    #[test]
    fn does_not_fire_on_a_replica_under_much_heavier_load() {
        let mut busy = stable(0.09);
        busy[1].running = 40.0;
        assert!(fired_on(&fleet(&busy)).is_empty());
        let mut full = stable(0.09);
        full[1].kv = 0.95;
        assert!(fired_on(&fleet(&full)).is_empty());
        // Somewhat busier (1.25x) is not an excuse.
        let mut bit = stable(0.09);
        bit[1].running = 20.0;
        assert_eq!(fired_on(&fleet(&bit)), vec!["stable-1".to_string()]);
    }

    #[test]
    fn does_not_fire_below_the_absolute_floor() {
        // 3x its peers, but 40 ms per token is not a problem users see.
        let mut fast = stable(0.04);
        for r in &mut fast {
            if r.name != "stable-1" {
                r.itl_s = 0.013;
            }
        }
        assert!(fired_on(&fleet(&fast)).is_empty());
    }

    #[test]
    fn does_not_fire_on_a_canary_with_another_config() {
        // A canary labelled into the stable deployment: its config differs, so it has no peers
        // (that is a canary regression), and stable is not judged against it either.
        let mut mixed = stable(0.016);
        mixed.push(Replica { role: "canary", config: "v8", ..replica("canary-0", 0.09) });
        assert!(fired_on(&fleet(&mixed)).is_empty());
        // The usual layout: the canary is a deployment of its own.
        let mut own = stable(0.016);
        own.push(Replica { deployment: "canary", role: "canary", ..replica("canary-0", 0.09) });
        let obs = fleet(&own);
        assert!(fired_on(&obs).is_empty());
    }

    #[test]
    fn one_slow_canary_among_canaries_is_not_a_canary_regression() {
        // Regression test: a peer outlier on a canary replica must not count as the canary's
        // config regressing, since its canary peers run the same config and are fine.
        let mut fleet_of = stable(0.016);
        for (name, itl) in [("canary-0", 0.012), ("canary-1", 0.09), ("canary-2", 0.013)] {
            fleet_of.push(Replica {
                deployment: "canary",
                role: "canary",
                config: "v8",
                ..replica(name, itl)
            });
        }
        fleet_of[5].scrape_ms = 1800.0;
        let corr = correlate(&fleet(&fleet_of), &Rules::builtin());
        assert_eq!(corr.hypotheses[0].class, IncidentClass::NetworkLatency);
        assert_eq!(corr.hypotheses[0].targets, vec!["canary-1".to_string()]);
        assert!(corr.hypotheses[0].confidence >= 0.8);
        assert!(corr.hypotheses.iter().all(|h| h.class != IncidentClass::CanaryRegression));
    }

    #[test]
    fn a_window_without_peers_breaks_the_run() {
        // Peers answer only in the first half of the window: the last evaluations cannot
        // compare, so the replica is not judged on the earlier ones.
        let mut obs = fleet(&stable(0.09));
        let cut = T0 + 4 * 5_000;
        for t in &mut obs.targets {
            if t.name != "stable-1" {
                for s in &mut t.series {
                    s.points.retain(|p| p.t < cut);
                }
            }
        }
        let ev = &evaluate(&peer_rule(), &obs, &[true; 4])[1];
        assert_eq!(ev.points.last().map(|p| p.1), Some(NEUTRAL));
        assert!(fired_on(&obs).is_empty());
    }

    #[test]
    fn slow_scrapes_and_an_itl_outlier_reach_the_autonomous_threshold() {
        let rules = Rules::builtin();
        // Slow scrapes alone: one signal, no symptom on the target, 0.6 x 0.7 = 0.42.
        let mut scrape_only = stable(0.016);
        scrape_only[1].scrape_ms = 1800.0;
        let h = &correlate(&fleet(&scrape_only), &rules).hypotheses[0];
        assert_eq!(h.class, IncidentClass::NetworkLatency);
        assert!((h.confidence - 0.42).abs() < 1e-9, "{}", h.confidence);
        // With its tokens 5.6x slower than its peers' under the same load: noisy-OR of 0.6 and
        // 0.7, 0.88, enough for the autonomous policy's 0.80.
        let mut both = stable(0.09);
        both[1].scrape_ms = 1800.0;
        let corr = correlate(&fleet(&both), &rules);
        let fired: Vec<&str> = corr.fired.iter().map(|f| f.anomaly.rule.as_str()).collect();
        assert_eq!(fired, ["scrape_slow", "itl_above_peers"]);
        let h = &corr.hypotheses[0];
        assert_eq!(h.class, IncidentClass::NetworkLatency);
        assert_eq!(h.targets, vec!["stable-1".to_string()]);
        assert!(h.confidence >= 0.8, "{}", h.confidence);
        assert!((h.confidence - 0.88).abs() < 1e-9, "{}", h.confidence);
        assert!(h.evidence.contains(&"itl_above_peers@stable-1".to_string()), "{:?}", h.evidence);
        // The ITL outlier alone points at the replica's path too, but not strongly enough to act.
        let corr = correlate(&fleet(&stable(0.09)), &rules);
        let h = &corr.hypotheses[0];
        assert_eq!(h.class, IncidentClass::NetworkLatency);
        assert!(h.confidence < 0.8 && h.confidence >= 0.3, "{}", h.confidence);
    }

    #[test]
    fn a_peer_rule_needs_a_ratio_threshold_and_gauge_loads() {
        let mut rules = Rules::builtin();
        let i = rules.rules.iter().position(|r| r.name == "itl_above_peers").unwrap();
        rules.rules[i].threshold = 0.5;
        let msg = rules.check().unwrap_err().to_string();
        assert!(msg.contains("ratio to the peers' median"), "{msg}");
        rules.rules[i].threshold = 2.0;
        rules.rules[i].peers.as_mut().unwrap().load[0] = "vllm:num_preemptions_total".into();
        let msg = rules.check().unwrap_err().to_string();
        assert!(msg.contains("peers.load[0]") && msg.contains("must be a gauge"), "{msg}");
    }
}

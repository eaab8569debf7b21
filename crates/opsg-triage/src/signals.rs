//! Evaluating one rule on one target: series in, one value per evaluation time out.
//!
//! Aggregation across label sets (several engines, GPUs or mount points on one target): counters
//! and histograms are summed before the function is applied (the target's total); gauges take the
//! worst label set for the rule's direction (the highest for `>`, the lowest for `<`), so one full
//! filesystem is not averaged away by an empty one.
//!
//! A rule with `peers` is evaluated here on each target alone, then compared with its peers by
//! [`crate::peers`].

use crate::math;
use crate::rules::{Func, Rule};
use opsg_core::kinds::observation::{Series, TargetObservation, TargetStatus};
use opsg_core::time::Timestamp;
use std::collections::BTreeMap;

/// The evaluations of a rule on a target, in time order, and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// `(t_ms, value)` per evaluation time; never NaN.
    pub points: Vec<(i64, f64)>,
    /// Problems met (NaN samples, a histogram without `+Inf`), for the finding's telemetry notes.
    pub notes: Vec<String>,
}

/// True when a target is a serving replica rather than an exporter.
pub fn is_replica(t: &TargetObservation) -> bool {
    t.labels.contains_key("deployment")
        || t.labels.contains_key("role")
        || t.series.iter().any(|s| s.name.starts_with("vllm:"))
}

fn matches(series: &Series, rule: &Rule) -> bool {
    rule.matchers
        .iter()
        .all(|(k, vals)| series.labels.get(k).is_some_and(|v| vals.iter().any(|x| x == v)))
}

fn scalar_points(s: &Series, nan: &mut u32) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(s.points.len());
    for p in &s.points {
        match p.v.map(|f| f.0) {
            Some(v) if v.is_finite() => out.push((p.t, v)),
            Some(_) => *nan += 1,
            None => {}
        }
    }
    out
}

fn combine(per_series: Vec<Vec<(i64, f64)>>, how: fn(f64, f64) -> f64) -> Vec<(i64, f64)> {
    let mut by_t: BTreeMap<i64, f64> = BTreeMap::new();
    for points in per_series {
        for (t, v) in points {
            by_t.entry(t).and_modify(|acc| *acc = how(*acc, v)).or_insert(v);
        }
    }
    by_t.into_iter().collect()
}

/// Per-series windows of `range` samples: `(t_end, seconds, increase)`.
fn windowed_increase(points: &[(i64, f64)], range: usize) -> Vec<(i64, f64, f64)> {
    let mut out = Vec::new();
    for i in range..points.len() {
        let slice: Vec<f64> = points[i - range..=i].iter().map(|p| p.1).collect();
        let secs = (points[i].0 - points[i - range].0) as f64 / 1000.0;
        if secs > 0.0 {
            out.push((points[i].0, secs, math::increase(&slice)));
        }
    }
    out
}

/// Evaluate `rule` on `target`.
pub fn evaluate(rule: &Rule, target: &TargetObservation) -> Evaluation {
    let mut ev = Evaluation::default();
    let range = rule.range.unwrap_or(2).max(1) as usize;
    match rule.signal.as_str() {
        "up" => {
            ev.points = target
                .samples
                .iter()
                .filter_map(|s| {
                    let t = Timestamp::parse_rfc3339(&s.at).ok()?.millis();
                    Some((t, if s.status == TargetStatus::Up { 1.0 } else { 0.0 }))
                })
                .collect();
            return ev;
        }
        "scrape_duration_seconds" => {
            ev.points = target
                .samples
                .iter()
                .filter(|s| s.status == TargetStatus::Up && s.duration_ms.is_finite())
                .filter_map(|s| {
                    Some((Timestamp::parse_rfc3339(&s.at).ok()?.millis(), s.duration_ms / 1000.0))
                })
                .collect();
            return ev;
        }
        _ => {}
    }
    let all: Vec<&Series> = target.series.iter().filter(|s| s.name == rule.signal).collect();
    if all.is_empty() {
        return ev;
    }
    let selected: Vec<&Series> = all.iter().copied().filter(|s| matches(s, rule)).collect();
    let mut nan = 0u32;
    let worst: fn(f64, f64) -> f64 = if rule.op.is_low() { f64::min } else { f64::max };
    match rule.func {
        Func::Value | Func::Mask => {
            let mut per = Vec::new();
            for s in &selected {
                let mut pts = scalar_points(s, &mut nan);
                if let Some(over) = &rule.over {
                    let Some(den) =
                        target.series.iter().find(|d| &d.name == over && d.labels == s.labels)
                    else {
                        ev.notes.push(format!(
                            "`{}` on `{}` has no `{over}` with the same labels: rule `{}` skipped",
                            rule.signal, target.name, rule.name
                        ));
                        continue;
                    };
                    let den: BTreeMap<i64, f64> =
                        scalar_points(den, &mut nan).into_iter().collect();
                    pts = pts
                        .into_iter()
                        .filter_map(|(t, v)| den.get(&t).filter(|d| **d > 0.0).map(|d| (t, v / d)))
                        .collect();
                }
                if rule.func == Func::Mask {
                    let mask = rule.mask.unwrap_or(0);
                    pts = pts
                        .into_iter()
                        .map(|(t, v)| (t, if v >= 0.0 { ((v as u64) & mask) as f64 } else { 0.0 }))
                        .collect();
                }
                per.push(pts);
            }
            ev.points = combine(per, worst);
        }
        Func::Growth => {
            let mut per = Vec::new();
            for s in &selected {
                let pts = scalar_points(s, &mut nan);
                let mean = pts.iter().map(|p| p.1).sum::<f64>() / pts.len().max(1) as f64;
                if let (Some((slope, r2)), Some(last)) = (math::slope(&pts), pts.last())
                    && mean > 0.0
                {
                    let growth = if r2 >= 0.8 { slope * 3600.0 / mean } else { 0.0 };
                    per.push(vec![(last.0, growth)]);
                }
            }
            ev.points = combine(per, worst);
        }
        Func::Rate | Func::Increase => {
            let per: Vec<Vec<(i64, f64)>> = selected
                .iter()
                .map(|s| {
                    windowed_increase(&scalar_points(s, &mut nan), range)
                        .into_iter()
                        .map(|(t, secs, inc)| {
                            (t, if rule.func == Func::Rate { inc / secs } else { inc })
                        })
                        .collect()
                })
                .collect();
            ev.points = combine(per, |a, b| a + b);
        }
        Func::Ratio | Func::BurnRate if all.iter().all(|s| s.le.is_empty()) => {
            let inc = |set: &[&Series], nan: &mut u32| {
                let per: Vec<Vec<(i64, f64)>> = set
                    .iter()
                    .map(|s| {
                        windowed_increase(&scalar_points(s, nan), range)
                            .into_iter()
                            .map(|(t, _, inc)| (t, inc))
                            .collect()
                    })
                    .collect();
                combine(per, |a, b| a + b)
            };
            let num: BTreeMap<i64, f64> = inc(&selected, &mut nan).into_iter().collect();
            let den = inc(&all, &mut nan);
            let budget =
                if rule.func == Func::BurnRate { 1.0 - rule.slo.unwrap_or(0.999) } else { 1.0 };
            ev.points = den
                .into_iter()
                .filter(|(_, d)| *d > 0.0)
                .map(|(t, d)| (t, num.get(&t).copied().unwrap_or(0.0) / d / budget))
                .collect();
        }
        Func::Mean => {
            ev.points = histogram_mean(&selected, range);
        }
        Func::Quantile | Func::FractionAbove | Func::BurnRate | Func::Ratio => {
            ev.points = histogram_eval(rule, target, &selected, range, &mut ev.notes);
        }
    }
    if nan > 0 {
        ev.notes.push(format!(
            "{nan} NaN sample(s) of `{}` on `{}` were skipped",
            rule.signal, target.name
        ));
    }
    ev
}

fn histogram_eval(
    rule: &Rule,
    target: &TargetObservation,
    selected: &[&Series],
    range: usize,
    notes: &mut Vec<String>,
) -> Vec<(i64, f64)> {
    // Sum bucket increases across series with the same bounds.
    let mut le: Option<Vec<f64>> = None;
    let mut sums: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for s in selected {
        let bounds: Vec<f64> = s.le.iter().map(|f| f.0).collect();
        if bounds.last() != Some(&f64::INFINITY) {
            notes.push(format!(
                "histogram `{}` on `{}` has no `+Inf` bucket: rule `{}` skipped",
                s.name, target.name, rule.name
            ));
            continue;
        }
        match &le {
            None => le = Some(bounds.clone()),
            Some(l) if *l != bounds => {
                notes.push(format!(
                    "histogram `{}` on `{}` has series with different bucket bounds: one skipped",
                    s.name, target.name
                ));
                continue;
            }
            Some(_) => {}
        }
        let pts: Vec<&opsg_core::kinds::observation::Point> =
            s.points.iter().filter(|p| p.buckets.len() == bounds.len()).collect();
        for i in range..pts.len() {
            let before: Vec<f64> = pts[i - range].buckets.iter().map(|f| f.0).collect();
            let after: Vec<f64> = pts[i].buckets.iter().map(|f| f.0).collect();
            let Some(inc) = math::bucket_increase(&before, &after) else { continue };
            let acc = sums.entry(pts[i].t).or_insert_with(|| vec![0.0; inc.len()]);
            for (a, v) in acc.iter_mut().zip(inc) {
                *a += v;
            }
        }
    }
    let Some(le) = le else { return Vec::new() };
    let mut out = Vec::new();
    for (t, cum) in sums {
        let buckets: Vec<(f64, f64)> = le.iter().copied().zip(cum).collect();
        let v = match rule.func {
            Func::Quantile => math::histogram_quantile(rule.q.unwrap_or(0.95), &buckets),
            Func::FractionAbove => math::fraction_above(rule.bound.unwrap_or(0.0), &buckets),
            _ => math::fraction_above(rule.bound.unwrap_or(0.0), &buckets)
                .map(|f| f / (1.0 - rule.slo.unwrap_or(0.99))),
        };
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.push((t, v));
        }
    }
    out
}

/// The mean observation of histograms over `range` samples: the summed increase of `_sum` over
/// the summed increase of `_count` (the `+Inf` bucket when `_count` is missing), per evaluation
/// time; a count or sum that went down is a reset, and the later point is the increase itself.
/// No evaluation where nothing was observed.
fn histogram_mean(selected: &[&Series], range: usize) -> Vec<(i64, f64)> {
    let mut acc: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for s in selected {
        let pts: Vec<(i64, f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| {
                let count = p.count.map(|c| c.0).or_else(|| p.buckets.last().map(|b| b.0))?;
                let sum = p.sum?.0;
                (count.is_finite() && sum.is_finite()).then_some((p.t, count, sum))
            })
            .collect();
        for i in range..pts.len() {
            let (_, c0, s0) = pts[i - range];
            let (t, c1, s1) = pts[i];
            let (dc, ds) = if c1 < c0 || s1 < s0 { (c1, s1) } else { (c1 - c0, s1 - s0) };
            let e = acc.entry(t).or_insert((0.0, 0.0));
            e.0 += dc;
            e.1 += ds;
        }
    }
    acc.into_iter().filter(|(_, (c, _))| *c > 0.0).map(|(t, (c, s))| (t, s / c)).collect()
}

/// The trailing run of breaching evaluations: `(count, value of the last, time the run began)`.
pub fn trailing_breach(rule: &Rule, points: &[(i64, f64)]) -> (u32, Option<f64>, Option<i64>) {
    let mut n = 0u32;
    let mut since = None;
    for (t, v) in points.iter().rev() {
        if rule.op.holds(*v, rule.threshold) {
            n += 1;
            since = Some(*t);
        } else {
            break;
        }
    }
    (n, points.last().map(|p| p.1), since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn itl(points: &[(i64, f64, f64)]) -> Series {
        serde_json::from_value(serde_json::json!({
            "name": "vllm:inter_token_latency_seconds", "type": "histogram", "labels": {},
            "le": [0.1, "+Inf"],
            "points": points.iter().map(|(t, count, sum)| serde_json::json!(
                {"t": t, "count": count, "sum": sum, "buckets": [count, count]})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn histogram_mean_is_the_sum_increase_over_the_count_increase() {
        // 100 tokens at 20 ms, then a restart (the counters start again), then 50 at 80 ms.
        let s =
            itl(&[(0, 100.0, 1.0), (5_000, 200.0, 3.0), (10_000, 300.0, 5.0), (15_000, 50.0, 4.0)]);
        assert_eq!(histogram_mean(&[&s], 1), vec![(5_000, 0.02), (10_000, 0.02), (15_000, 0.08)]);
        // Nothing observed in a window: no evaluation rather than 0/0.
        let idle = itl(&[(0, 100.0, 1.0), (5_000, 100.0, 1.0)]);
        assert!(histogram_mean(&[&idle], 1).is_empty());
    }
}

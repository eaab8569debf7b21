//! Prometheus query results as targets (`--as-targets`), so a fleet watched through its
//! Prometheus (or Thanos, Mimir, VictoriaMetrics) reaches triage the way scraped replicas do.
//!
//! Series are grouped by their `instance` label into one [`TargetObservation`] each (series
//! without `instance` stay in `queries` only). `instance` and `job` become the target's identity
//! and are dropped from the series' labels, as a direct scrape would not carry them; the target's
//! `source` is `prometheus:<endpoint>` (not a `/metrics` URL anyone should re-scrape); `job`,
//! `deployment`, `role`, `route` and `node` become target labels. vLLM names are normalized as in
//! a scrape. Classic histograms are rebuilt from their `_bucket{le}`, `_sum` and `_count` series
//! (`_bucket` with `le` is a histogram; other series keep the type the metadata API gave them,
//! else `_total` is a counter and anything else a gauge). An `up` series of 0 marks the instance
//! `down` at that time: Prometheus' own scrape of it failed.

use crate::normalize;
use opsg_core::float::Float;
use opsg_core::kinds::observation::{
    MetricType, Point, QueryResult, SampleInfo, Series, TargetObservation, TargetStatus,
};
use opsg_core::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Labels copied from series to the target they are grouped into.
pub const TARGET_LABELS: &[&str] = &["job", "deployment", "role", "route", "node"];

type Labels = BTreeMap<String, String>;

#[derive(Default)]
struct HistogramParts {
    /// `le` → points of that bucket.
    buckets: BTreeMap<String, (f64, Vec<Point>)>,
    sum: Vec<Point>,
    count: Vec<Point>,
    source_name: Option<String>,
}

#[derive(Default)]
struct Instance {
    endpoint: String,
    labels: Labels,
    scalars: BTreeMap<(String, Labels), Series>,
    histograms: BTreeMap<(String, Labels), HistogramParts>,
}

fn split_family(name: &str) -> Option<(&str, &str)> {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix).map(|base| (base, *suffix)))
}

/// Group the series of successful queries into targets by `instance`, in instance order.
pub fn targets_from_queries(results: &[QueryResult]) -> Vec<TargetObservation> {
    // Families that have buckets: their `_sum` and `_count` belong to the histogram.
    let mut bucket_families: BTreeSet<String> = BTreeSet::new();
    let mut exposed: BTreeSet<String> = BTreeSet::new();
    for s in results.iter().filter(|r| r.status == "ok").flat_map(|r| &r.series) {
        exposed.insert(s.name.clone());
        if s.labels.contains_key("le")
            && let Some(base) = s.name.strip_suffix("_bucket")
        {
            bucket_families.insert(base.to_string());
            exposed.insert(base.to_string());
        }
    }
    let present = |name: &str| exposed.contains(name);
    let mut instances: BTreeMap<String, Instance> = BTreeMap::new();
    for result in results.iter().filter(|r| r.status == "ok") {
        for s in &result.series {
            let Some(instance_name) = s.labels.get("instance") else { continue };
            let inst = instances.entry(instance_name.clone()).or_default();
            // Not an `http://` source: it is not a `/metrics` URL a later stage could re-scrape.
            inst.endpoint = format!("prometheus:{}", result.endpoint);
            for key in TARGET_LABELS {
                if let Some(v) = s.labels.get(*key) {
                    inst.labels.entry((*key).to_string()).or_insert_with(|| v.clone());
                }
            }
            let mut labels: Labels = s.labels.clone();
            labels.remove("instance");
            labels.remove("job");
            let family = split_family(&s.name).filter(|(base, _)| bucket_families.contains(*base));
            if let Some((base, suffix)) = family {
                if normalize::superseded(base, &present) {
                    continue;
                }
                let le = labels.remove("le");
                let current = normalize::current_name(base);
                let name = current.unwrap_or(base).to_string();
                let parts = inst.histograms.entry((name, labels)).or_default();
                parts.source_name = current.map(|_| base.to_string());
                match (suffix, le) {
                    ("_bucket", Some(le)) => {
                        let bound = match le.as_str() {
                            "+Inf" | "Inf" => f64::INFINITY,
                            other => match other.parse::<f64>() {
                                Ok(v) => v,
                                Err(_) => continue,
                            },
                        };
                        parts
                            .buckets
                            .entry(le)
                            .or_insert_with(|| (bound, Vec::new()))
                            .1
                            .extend(s.points.clone());
                    }
                    ("_sum", _) => parts.sum.extend(s.points.clone()),
                    ("_count", _) => parts.count.extend(s.points.clone()),
                    _ => {}
                }
                continue;
            }
            if normalize::superseded(&s.name, &present) {
                continue;
            }
            let current = normalize::current_name(&s.name);
            let name = current.unwrap_or(&s.name).to_string();
            // The metadata's type when the query was typed (`promapi::apply_types`), else the
            // naming convention.
            let metric_type = match s.metric_type {
                MetricType::Untyped if name.ends_with("_total") => MetricType::Counter,
                MetricType::Untyped => MetricType::Gauge,
                known => known,
            };
            let series =
                inst.scalars.entry((name.clone(), labels.clone())).or_insert_with(|| Series {
                    name,
                    source_name: current.map(|_| s.name.clone()),
                    metric_type,
                    labels,
                    le: Vec::new(),
                    points: Vec::new(),
                });
            series.points.extend(s.points.clone());
        }
    }
    instances.into_iter().map(|(name, inst)| build_target(name, inst)).collect()
}

fn value_at(points: &[Point], t: i64) -> Option<f64> {
    points.iter().find(|p| p.t == t).and_then(|p| p.v).map(|f| f.0)
}

fn build_target(name: String, inst: Instance) -> TargetObservation {
    let mut series: Vec<Series> = inst.scalars.into_values().collect();
    for ((hname, labels), parts) in inst.histograms {
        let mut buckets: Vec<(f64, Vec<Point>)> = parts.buckets.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let Some((last_le, inf_points)) = buckets.last() else { continue };
        if *last_le != f64::INFINITY {
            continue; // no total without +Inf: not a histogram triage can use
        }
        let mut points = Vec::new();
        for t in inf_points.iter().map(|p| p.t) {
            let counts: Option<Vec<Float>> =
                buckets.iter().map(|(_, pts)| value_at(pts, t).map(Float)).collect();
            let Some(counts) = counts else { continue };
            let count = value_at(&parts.count, t).map(Float).or(counts.last().copied());
            points.push(Point {
                t,
                v: None,
                count,
                sum: value_at(&parts.sum, t).map(Float),
                buckets: counts,
            });
        }
        series.push(Series {
            name: hname,
            source_name: parts.source_name,
            metric_type: MetricType::Histogram,
            labels,
            le: buckets.iter().map(|(le, _)| Float(*le)).collect(),
            points,
        });
    }
    for s in &mut series {
        s.points.sort_by_key(|p| p.t);
        s.points.dedup_by_key(|p| p.t);
    }
    let times: BTreeSet<i64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.t)).collect();
    let up = series.iter().find(|s| s.name == "up" && s.labels.is_empty()).cloned();
    let samples: Vec<SampleInfo> = times
        .iter()
        .map(|&t| {
            let down = up.as_ref().and_then(|u| value_at(&u.points, t)) == Some(0.0);
            SampleInfo {
                at: Timestamp(t).to_rfc3339(),
                status: if down { TargetStatus::Down } else { TargetStatus::Up },
                duration_ms: 0.0,
                reason: down.then(|| {
                    "Prometheus reports up=0: its scrape of this instance failed".to_string()
                }),
                stale: false,
                evidence: None,
            }
        })
        .collect();
    let last = samples.last();
    TargetObservation {
        name,
        source: inst.endpoint,
        labels: inst.labels,
        status: last.map_or(TargetStatus::Up, |s| s.status),
        reason: last.and_then(|s| s.reason.clone()),
        samples,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promapi::parse_response;

    fn result(json: &str) -> QueryResult {
        QueryResult {
            endpoint: "http://prom:9090".into(),
            query: "q".into(),
            status: "ok".into(),
            reason: None,
            series: parse_response(json.as_bytes(), "q").unwrap(),
        }
    }

    #[test]
    fn range_results_become_targets_with_histograms() {
        let r = result(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"vllm:gpu_cache_usage_perc","instance":"r1:8000","job":"vllm","deployment":"llama","role":"canary","model_name":"m"},"values":[[10,"0.5"],[20,"0.9"]]},
            {"metric":{"__name__":"vllm:num_preemptions_total","instance":"r1:8000","job":"vllm","model_name":"m"},"values":[[10,"1"],[20,"7"]]},
            {"metric":{"__name__":"vllm:time_to_first_token_seconds_bucket","instance":"r1:8000","job":"vllm","le":"0.5","model_name":"m"},"values":[[10,"1"],[20,"2"]]},
            {"metric":{"__name__":"vllm:time_to_first_token_seconds_bucket","instance":"r1:8000","job":"vllm","le":"+Inf","model_name":"m"},"values":[[10,"3"],[20,"8"]]},
            {"metric":{"__name__":"vllm:time_to_first_token_seconds_sum","instance":"r1:8000","job":"vllm","model_name":"m"},"values":[[10,"1.5"],[20,"9"]]},
            {"metric":{"__name__":"vllm:time_to_first_token_seconds_count","instance":"r1:8000","job":"vllm","model_name":"m"},"values":[[10,"3"],[20,"8"]]},
            {"metric":{"__name__":"up","instance":"r2:8000","job":"vllm"},"values":[[10,"1"],[20,"0"]]},
            {"metric":{"__name__":"no_instance"},"values":[[10,"1"]]}
            ]}}"#,
        );
        let targets = targets_from_queries(&[r]);
        assert_eq!(targets.len(), 2);
        let r1 = &targets[0];
        assert_eq!(r1.name, "r1:8000");
        assert_eq!(r1.source, "prometheus:http://prom:9090", "not mistaken for a /metrics URL");
        assert_eq!(r1.labels["role"], "canary");
        assert_eq!(r1.labels["job"], "vllm");
        assert_eq!(r1.status, TargetStatus::Up);
        assert_eq!(r1.samples.len(), 2);
        let kv = r1.series.iter().find(|s| s.name == "vllm:kv_cache_usage_perc").unwrap();
        assert_eq!(kv.source_name.as_deref(), Some("vllm:gpu_cache_usage_perc"));
        assert!(!kv.labels.contains_key("instance") && !kv.labels.contains_key("job"));
        assert_eq!(kv.labels["model_name"], "m");
        assert_eq!(kv.points.iter().map(|p| p.v.unwrap().0).collect::<Vec<_>>(), [0.5, 0.9]);
        let pre = r1.series.iter().find(|s| s.name == "vllm:num_preemptions_total").unwrap();
        assert_eq!(pre.metric_type, MetricType::Counter);
        let h = r1.series.iter().find(|s| s.name == "vllm:time_to_first_token_seconds").unwrap();
        assert_eq!(h.metric_type, MetricType::Histogram);
        assert_eq!(h.le, [Float(0.5), Float(f64::INFINITY)]);
        assert_eq!(h.points[1].buckets, [Float(2.0), Float(8.0)]);
        assert_eq!(h.points[1].count, Some(Float(8.0)));
        assert_eq!(h.points[1].sum, Some(Float(9.0)));
        assert!(!r1.series.iter().any(|s| s.name.ends_with("_bucket")), "no raw bucket series");
        let r2 = &targets[1];
        assert_eq!(r2.status, TargetStatus::Down);
        assert!(r2.reason.as_deref().unwrap().contains("up=0"));
        assert_eq!(r2.samples[0].status, TargetStatus::Up);
    }

    #[test]
    fn failed_queries_and_histograms_without_inf_are_left_out() {
        let mut failed = result(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"a","instance":"x"},"value":[1,"1"]}]}}"#,
        );
        failed.status = "error".into();
        assert!(targets_from_queries(&[failed]).is_empty());
        let r = result(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"h_bucket","instance":"x","le":"1"},"value":[1,"1"]},
            {"metric":{"__name__":"g","instance":"x"},"value":[1,"2"]}]}}"#,
        );
        let t = targets_from_queries(&[r]);
        assert_eq!(t[0].series.len(), 1);
        assert_eq!(t[0].series[0].name, "g");
    }
}

//! Prometheus `/federate` as a source (`--federate URL --match SELECTOR`): one request returns,
//! as an exposition with types and timestamps, the latest samples of every series the selectors
//! pick, across every instance that Prometheus scrapes. The page is split by `instance` into one
//! target each ([`crate::compact::reduce_split`]), so triage, which works per target, sees
//! federated vLLM replicas as it sees scraped ones: metric types come from the page's `# TYPE`
//! lines (unlike query results), histograms arrive whole, `instance` and `job` become the target's
//! identity and labels.
//!
//! Each of `--samples` rounds fetches the page once. An instance missing from a later round is
//! `down` for that sample (Prometheus stops federating a series when its scrapes stop); a failed
//! request marks every instance known so far with its reason. The call itself is recorded among
//! the body's `queries` (`/federate?match[]=…`), so a federation that failed before any instance
//! was seen is still data. Federated targets' `source` is `federate:<URL>`, not a `/metrics` URL a
//! later stage should re-scrape.

use crate::compact::{self, SeriesSet};
use crate::fetch;
use crate::metadata;
use crate::scrape::{ScrapeOptions, Scraped};
use opsg_core::kinds::observation::{QueryResult, SampleInfo, TargetObservation, TargetStatus};
use opsg_core::record::EvidenceRef;
use opsg_core::{Error, Result};
use std::collections::BTreeMap;
use std::time::Instant;

/// The label a federation answer is split by.
pub const SPLIT_LABEL: &str = "instance";

#[derive(Default)]
struct Instance {
    labels: BTreeMap<String, String>,
    set: SeriesSet,
    samples: Vec<SampleInfo>,
}

/// How the call is written in the record's `queries`: `/federate?match[]=A&match[]=B`.
pub fn describe(selectors: &[String]) -> String {
    let matches: Vec<String> = selectors.iter().map(|s| format!("match[]={s}")).collect();
    format!("/federate?{}", matches.join("&"))
}

/// Federate `selectors` from the Prometheus at `endpoint` (its base URL), `opts.samples` rounds
/// `opts.interval` apart. Fails only on local trouble (the evidence directory).
pub fn federate(
    endpoint: &str,
    selectors: &[String],
    opts: &ScrapeOptions,
) -> Result<(Scraped, QueryResult)> {
    let url = format!("{}/federate", endpoint.trim_end_matches('/'));
    let params: Vec<(&str, String)> = selectors.iter().map(|s| ("match[]", s.clone())).collect();
    let agent = fetch::agent(&opts.http);
    let samples = opts.samples.max(1);
    let mut instances: BTreeMap<String, Instance> = BTreeMap::new();
    let mut evidence: Vec<EvidenceRef> = Vec::new();
    let mut result = QueryResult {
        endpoint: endpoint.to_string(),
        query: describe(selectors),
        status: "ok".into(),
        reason: None,
        series: Vec::new(),
    };
    // Federation answers are untyped: restore the types from the metadata, else from the names.
    let types = metadata::lookup(endpoint, None, &opts.http).unwrap_or_else(|reason| {
        result.reason = Some(format!("types guessed from the names ({reason})"));
        metadata::Types::new()
    });
    let mut scraped = Scraped::default();
    for k in 0..samples {
        let started = Instant::now();
        let at = opts.clock.sample_time(k, opts.interval);
        if k == 0 {
            scraped.window.start = at.to_rfc3339();
        }
        scraped.window.end = at.to_rfc3339();
        let info = |status: TargetStatus, reason: Option<String>| SampleInfo {
            at: at.to_rfc3339(),
            status,
            duration_ms: opts.clock.elapsed_ms(started),
            reason,
            stale: false,
            evidence: None,
        };
        let page = match fetch::get(&agent, &url, &params, &opts.http) {
            Ok(fetched) => {
                let stored = match &opts.evidence {
                    Some(store) => {
                        let media = fetched.content_type.as_deref().unwrap_or("text/plain");
                        Some(store.put(&fetched.bytes, media, Some("federate"))?)
                    }
                    None => None,
                };
                let (_, parts) = compact::reduce_split(
                    &fetched.bytes,
                    fetched.content_type.as_deref(),
                    at.millis(),
                    &opts.keep,
                    SPLIT_LABEL,
                    Some(&types),
                );
                let hash = stored.as_ref().map(|e| e.sha256);
                if let Some(e) = stored
                    && !evidence.iter().any(|x| x.sha256 == e.sha256)
                {
                    evidence.push(e);
                }
                parts.map(|parts| (parts, hash)).map_err(|reason| (TargetStatus::Error, reason))
            }
            Err(failure) => Err((failure.status, failure.reason)),
        };
        let (parts, hash) = match page {
            Ok(page) => page,
            Err((status, reason)) => {
                for inst in instances.values_mut() {
                    inst.samples.push(info(status, Some(reason.clone())));
                }
                result.status = "error".into();
                result.reason = Some(reason);
                sleep_until_next(k, samples, opts, started);
                continue;
            }
        };
        let mut seen = Vec::with_capacity(parts.len());
        for part in parts {
            let inst = instances.entry(part.key.clone()).or_default();
            for (name, value) in part.labels {
                inst.labels.entry(name).or_insert(value);
            }
            let mut sample = info(TargetStatus::Up, None);
            sample.evidence = hash;
            match part.readings {
                Ok(readings) => {
                    let up = readings
                        .iter()
                        .find(|r| r.key.name == "up" && r.key.labels.is_empty())
                        .and_then(|r| r.point.v);
                    let oldest = readings.iter().filter_map(|r| r.exposed_at).min();
                    if up.is_some_and(|v| v.0 == 0.0) {
                        sample.status = TargetStatus::Down;
                        sample.reason = Some(
                            "Prometheus reports up=0: its scrape of this instance failed".into(),
                        );
                    } else if let Some(oldest) = oldest
                        && at.millis() - oldest > opts.stale_after_ms
                    {
                        sample.stale = true;
                        sample.reason = Some(format!(
                            "stale: the federated samples' oldest timestamp is {} s older than the sample",
                            (at.millis() - oldest) / 1000
                        ));
                    }
                    inst.set.add(readings);
                }
                Err(reason) => {
                    sample.status = TargetStatus::Error;
                    sample.reason = Some(reason);
                }
            }
            inst.samples.push(sample);
            seen.push(part.key);
        }
        for (key, inst) in &mut instances {
            if !seen.contains(key) {
                inst.samples.push(info(
                    TargetStatus::Down,
                    Some("absent from Prometheus' federation answer: it has no current series for this instance (its scrapes stopped)".into()),
                ));
            }
        }
        sleep_until_next(k, samples, opts, started);
    }
    scraped.targets = instances
        .into_iter()
        .map(|(name, inst)| {
            let mut series = inst.set.into_series();
            // Prometheus federates the last scraped value with its own timestamp: rounds closer
            // together than its scrape interval see the same point twice.
            for s in &mut series {
                s.points.sort_by_key(|p| p.t);
                s.points.dedup_by_key(|p| p.t);
            }
            let last = inst.samples.last();
            TargetObservation {
                name,
                source: format!("federate:{endpoint}"),
                labels: inst.labels,
                status: last.map_or(TargetStatus::Error, |s| s.status),
                reason: last.and_then(|s| s.reason.clone()),
                samples: inst.samples,
                series,
            }
        })
        .collect();
    scraped.evidence = evidence;
    if result.status == "ok" && scraped.targets.is_empty() {
        result.reason = Some(format!(
            "no series with an `{SPLIT_LABEL}` label matched (and were kept): check the selectors and --keep"
        ));
    }
    Ok((scraped, result))
}

fn sleep_until_next(k: u32, samples: u32, opts: &ScrapeOptions, started: Instant) {
    if k + 1 < samples {
        std::thread::sleep(opts.interval.saturating_sub(started.elapsed()));
    }
}

/// Check `--federate`/`--match` before anything is fetched.
pub fn check_args(endpoint: &str, selectors: &[String]) -> Result<()> {
    crate::target::check_url(endpoint)?;
    if selectors.is_empty() {
        return Err(Error::usage(
            "--federate needs at least one --match selector (e.g. --match '{job=\"vllm\"}')",
        ));
    }
    if let Some(s) = selectors.iter().find(|s| s.trim().is_empty()) {
        return Err(Error::usage(format!("--match `{s}` is empty")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Keep;

    #[test]
    fn a_federation_page_splits_by_instance() {
        // What Prometheus' /federate writes: families typed once, every series with its
        // `instance` and `job`, timestamps in ms; a V0 replica next to a V1 canary.
        let page = b"# TYPE vllm:gpu_cache_usage_perc untyped
vllm:gpu_cache_usage_perc{instance=\"r0:8000\",job=\"vllm\",role=\"stable\"} 0.5 1700000000000
# TYPE vllm:kv_cache_usage_perc untyped
vllm:kv_cache_usage_perc{instance=\"r1:8000\",job=\"vllm\",role=\"canary\"} 0.9 1700000000000
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{instance=\"r1:8000\",job=\"vllm\",le=\"0.5\"} 2 1700000000000
vllm:time_to_first_token_seconds_bucket{instance=\"r1:8000\",job=\"vllm\",le=\"+Inf\"} 8 1700000000000
vllm:time_to_first_token_seconds_sum{instance=\"r1:8000\",job=\"vllm\"} 9 1700000000000
vllm:time_to_first_token_seconds_count{instance=\"r1:8000\",job=\"vllm\"} 8 1700000000000
# TYPE up untyped
up{instance=\"r2:8000\",job=\"vllm\"} 0 1700000000000
up{job=\"vllm\"} 1 1700000000000
";
        let (_, parts) = compact::reduce_split(page, None, 0, &Keep::default(), SPLIT_LABEL, None);
        let parts = parts.unwrap();
        let keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["r0:8000", "r1:8000", "r2:8000"], "no instance, no part");
        let r0 = parts[0].readings.as_ref().unwrap();
        // Normalized on its own: the V1 name on another instance does not supersede it.
        assert_eq!(r0.len(), 1);
        assert_eq!(r0[0].key.name, "vllm:kv_cache_usage_perc");
        assert_eq!(r0[0].source_name.as_deref(), Some("vllm:gpu_cache_usage_perc"));
        assert_eq!(parts[0].labels["role"], "stable");
        assert_eq!(parts[0].labels["job"], "vllm");
        let r1 = parts[1].readings.as_ref().unwrap();
        let h = r1.iter().find(|r| r.key.name == "vllm:time_to_first_token_seconds").unwrap();
        assert_eq!(h.point.count.map(|c| c.0), Some(8.0));
        assert!(
            r1.iter().all(
                |r| !r.key.labels.contains_key("instance") && !r.key.labels.contains_key("job")
            )
        );
        assert_eq!(
            r1.iter().find(|r| r.key.name == "vllm:kv_cache_usage_perc").unwrap().point.t,
            1_700_000_000_000
        );
    }

    /// What Prometheus 2.x's /federate really writes: every family `untyped`, one per sample
    /// name (regression: histograms arrived as three unrelated untyped series).
    #[test]
    fn untyped_federation_families_get_their_types_back() {
        let page = b"# TYPE vllm:e2e_request_latency_seconds_bucket untyped
vllm:e2e_request_latency_seconds_bucket{instance=\"r:1\",job=\"sim\",le=\"1\"} 3 1700000000000
vllm:e2e_request_latency_seconds_bucket{instance=\"r:1\",job=\"sim\",le=\"+Inf\"} 5 1700000000000
# TYPE vllm:e2e_request_latency_seconds_count untyped
vllm:e2e_request_latency_seconds_count{instance=\"r:1\",job=\"sim\"} 5 1700000000000
# TYPE vllm:e2e_request_latency_seconds_sum untyped
vllm:e2e_request_latency_seconds_sum{instance=\"r:1\",job=\"sim\"} 2.5 1700000000000
# TYPE vllm:num_preemptions_total untyped
vllm:num_preemptions_total{instance=\"r:1\",job=\"sim\"} 7 1700000000000
# TYPE vllm:num_requests_running untyped
vllm:num_requests_running{instance=\"r:1\",job=\"sim\"} 2 1700000000000
";
        let typed = |types: &metadata::Types| {
            let (_, parts) =
                compact::reduce_split(page, None, 0, &Keep::default(), SPLIT_LABEL, Some(types));
            let mut readings = parts.unwrap().remove(0).readings.unwrap();
            readings.sort_by(|a, b| a.key.name.cmp(&b.key.name));
            readings.into_iter().map(|r| (r.key.name, r.metric_type)).collect::<Vec<_>>()
        };
        use opsg_core::kinds::observation::MetricType as T;
        // No metadata: the names tell histograms and counters; the rest stays untyped.
        assert_eq!(
            typed(&metadata::Types::new()),
            [
                ("vllm:e2e_request_latency_seconds".to_string(), T::Histogram),
                ("vllm:num_preemptions_total".to_string(), T::Counter),
                ("vllm:num_requests_running".to_string(), T::Untyped),
            ]
        );
        // With metadata, gauges are gauges.
        let types: metadata::Types =
            [("vllm:num_requests_running".to_string(), opsg_expo::MetricKind::Gauge)].into();
        assert_eq!(typed(&types)[2].1, T::Gauge);
        // Without retyping (a typed page path), the histogram would not be one.
        let (_, parts) = compact::reduce_split(page, None, 0, &Keep::default(), SPLIT_LABEL, None);
        let plain = parts.unwrap().remove(0).readings.unwrap();
        assert!(plain.iter().all(|r| r.metric_type == T::Untyped));
    }

    #[test]
    fn arguments_are_checked() {
        assert!(check_args("http://p:9090", &["{job=\"vllm\"}".into()]).is_ok());
        assert_eq!(check_args("http://p:9090", &[]).unwrap_err().status().code(), 2);
        assert!(check_args("p:9090", &["up".into()]).is_err());
        assert!(check_args("http://p:9090", &[" ".into()]).is_err());
        assert_eq!(
            describe(&["{job=\"vllm\"}".into(), "up".into()]),
            "/federate?match[]={job=\"vllm\"}&match[]=up"
        );
    }
}

//! Metric types from a Prometheus' metadata API (`/api/v1/metadata`), for what arrives without
//! them: query results carry none, and Prometheus' `/federate` writes every family `untyped`.
//! Triage treats a counter as a counter (rates, resets) only when it knows it is one.
//!
//! The lookup is an aid, never a requirement: it is bounded (a short timeout, no retries, a body
//! cap) and a failure only means the types are guessed from the names (`_total` is a counter,
//! `_bucket{le}` with `_sum`/`_count` a histogram), with the reason recorded.

use crate::fetch::{self, HttpOptions};
use opsg_expo::MetricKind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest a metadata lookup may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest metadata answer read (one entry per metric name is small; a big Prometheus has
/// tens of thousands of names).
pub const MAX_BYTES: u64 = 16 << 20;

/// Metric name → type, as the scraped targets declared it.
pub type Types = BTreeMap<String, MetricKind>;

/// Look up the types of every metric (`metric` = `None`) or of one, at the Prometheus whose base
/// URL is `endpoint`. The request headers of `opts` are sent (a Mimir tenant, a token).
pub fn lookup(endpoint: &str, metric: Option<&str>, opts: &HttpOptions) -> Result<Types, String> {
    let opts = HttpOptions {
        timeout: opts.timeout.min(TIMEOUT),
        connect_timeout: opts.connect_timeout.min(TIMEOUT),
        retries: 0,
        max_bytes: opts.max_bytes.min(MAX_BYTES),
        accept: "application/json",
        ..opts.clone()
    };
    let agent = fetch::agent(&opts);
    let url = format!("{}/api/v1/metadata", endpoint.trim_end_matches('/'));
    let mut params = vec![("limit_per_metric", "1".to_string())];
    if let Some(name) = metric {
        params.push(("metric", name.to_string()));
    }
    let body = fetch::get(&agent, &url, &params, &opts)
        .map_err(|f| format!("metadata lookup failed: {}", f.reason))?
        .bytes;
    parse(&body)
}

/// Parse a `/api/v1/metadata` answer: `{"status":"success","data":{"name":[{"type":…}]}}`.
/// Unknown types are left out (they say nothing).
pub fn parse(body: &[u8]) -> Result<Types, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the metadata answer is not JSON: {e}"))?;
    if value.get("status").and_then(Value::as_str) != Some("success") {
        let error = value.get("error").and_then(Value::as_str).unwrap_or("no `status: success`");
        return Err(format!("the metadata answer is an error: {error}"));
    }
    let data = value
        .get("data")
        .and_then(Value::as_object)
        .ok_or("the metadata answer has no `data` object")?;
    let mut types = Types::new();
    for (name, entries) in data {
        let kind = entries
            .as_array()
            .and_then(|e| e.first())
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .and_then(MetricKind::from_openmetrics)
            // `unknown` says nothing the exposition's own (lack of a) type does not.
            .filter(|k| *k != MetricKind::Unknown);
        if let Some(kind) = kind {
            types.insert(name.clone(), kind);
        }
    }
    Ok(types)
}

/// The type of series `name` by the metadata: its own entry, or its family's (an OpenMetrics
/// counter `x` exposes `x_total`; a histogram `x` exposes `x_bucket`, `x_sum`, `x_count`).
/// Returns the family name the type belongs to with the type.
pub fn type_of<'n>(types: &Types, name: &'n str) -> Option<(&'n str, MetricKind)> {
    if let Some(&kind) = types.get(name) {
        return Some((name, kind));
    }
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created", "_gsum", "_gcount"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(&kind) = types.get(base)
        {
            let fits = match suffix {
                "_total" => kind == MetricKind::Counter,
                "_bucket" => matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram),
                "_gsum" | "_gcount" => kind == MetricKind::GaugeHistogram,
                _ => matches!(
                    kind,
                    MetricKind::Histogram | MetricKind::Summary | MetricKind::Counter
                ),
            };
            if fits {
                return Some((base, kind));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_answer_is_parsed() {
        // The shape Prometheus 2.x answers (trimmed from a real one).
        let body = br#"{"status":"success","data":{
            "vllm:num_preemptions_total":[{"type":"counter","help":"Preemptions.","unit":""}],
            "vllm:e2e_request_latency_seconds":[{"type":"histogram","help":"E2E.","unit":""}],
            "vllm:num_requests_running":[{"type":"gauge","help":"Running.","unit":""}],
            "mystery":[{"type":"unknown","help":"","unit":""}]}}"#;
        let types = parse(body).unwrap();
        assert_eq!(types.len(), 3, "unknown says nothing");
        assert_eq!(types["vllm:num_preemptions_total"], MetricKind::Counter);
        assert_eq!(
            type_of(&types, "vllm:e2e_request_latency_seconds_bucket"),
            Some(("vllm:e2e_request_latency_seconds", MetricKind::Histogram))
        );
        assert_eq!(
            type_of(&types, "vllm:e2e_request_latency_seconds_count"),
            Some(("vllm:e2e_request_latency_seconds", MetricKind::Histogram))
        );
        assert_eq!(
            type_of(&types, "vllm:num_preemptions_total"),
            Some(("vllm:num_preemptions_total", MetricKind::Counter))
        );
        assert_eq!(type_of(&types, "vllm:num_requests_running_bucket"), None, "not a histogram");
        assert_eq!(type_of(&types, "nothing"), None);
        // OpenMetrics-scraped counters are known by their family name.
        let om = parse(br#"{"status":"success","data":{"x":[{"type":"counter"}]}}"#).unwrap();
        assert_eq!(type_of(&om, "x_total"), Some(("x", MetricKind::Counter)));
    }

    #[test]
    fn errors_are_reasons() {
        assert!(parse(b"<html>").unwrap_err().contains("not JSON"));
        let e = parse(br#"{"status":"error","error":"bad"}"#).unwrap_err();
        assert!(e.contains("bad"), "{e}");
        assert!(parse(br#"{"status":"success","data":[]}"#).is_err());
    }

    #[test]
    fn an_unreachable_prometheus_is_an_error_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = HttpOptions { retries: 5, ..HttpOptions::default() };
        let e = lookup(&format!("http://127.0.0.1:{port}"), Some("up"), &opts).unwrap_err();
        assert!(e.contains("metadata lookup failed") && e.contains("refused"), "{e}");
        assert!(!e.contains("attempts"), "no retries for an aid: {e}");
    }
}

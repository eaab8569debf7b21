//! The Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`): how a fleet too big to scrape
//! one replica at a time is watched, through the Prometheus (or Thanos, Mimir, VictoriaMetrics) it
//! already has. Results become compact [`Series`] in `ObservationBody::queries`; a failed query is
//! recorded with Prometheus' own error, never fatal.

use crate::fetch::{self, HttpOptions};
use opsg_core::float::Float;
use opsg_core::kinds::observation::{MetricType, Point, QueryResult, Series};
use opsg_core::time::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;

/// An instant query at one time, or a range query over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueryKind {
    /// `/api/v1/query`; `at` pins the evaluation time (else Prometheus' own now).
    Instant {
        /// Evaluation time.
        at: Option<Timestamp>,
    },
    /// `/api/v1/query_range` over `[end - range, end]` every `step`.
    Range {
        /// The window's end.
        end: Timestamp,
        /// Window length, ms.
        range_ms: i64,
        /// Resolution, ms.
        step_ms: i64,
    },
}

/// Run one query against `endpoint` (a base URL such as `http://prometheus:9090`).
pub fn query(
    agent: &ureq::Agent,
    endpoint: &str,
    promql: &str,
    kind: QueryKind,
    opts: &HttpOptions,
) -> QueryResult {
    let base = endpoint.trim_end_matches('/');
    let secs = |t: Timestamp| format!("{:.3}", t.seconds_f64());
    let (url, params) = match kind {
        QueryKind::Instant { at } => {
            let mut params = vec![("query", promql.to_string())];
            if let Some(at) = at {
                params.push(("time", secs(at)));
            }
            (format!("{base}/api/v1/query"), params)
        }
        QueryKind::Range { end, range_ms, step_ms } => (
            format!("{base}/api/v1/query_range"),
            vec![
                ("query", promql.to_string()),
                ("start", secs(end.plus_millis(-range_ms))),
                ("end", secs(end)),
                ("step", format!("{:.3}", step_ms as f64 / 1000.0)),
            ],
        ),
    };
    let mut result = QueryResult {
        endpoint: endpoint.to_string(),
        query: promql.to_string(),
        status: "ok".into(),
        reason: None,
        series: Vec::new(),
    };
    let body = match fetch::get(agent, &url, &params, opts) {
        Ok(fetched) => fetched.bytes,
        // Prometheus answers 400/422/503 with a JSON error body: prefer its own words.
        Err(failure) => match failure.body.as_deref().and_then(api_error) {
            Some(reason) => return fail(result, reason),
            None => return fail(result, failure.reason),
        },
    };
    match parse_response(&body, promql) {
        Ok(series) => {
            result.series = series;
            let warned = warnings(&body);
            if !warned.is_empty() {
                result.reason = Some(format!("partial answer: {}", warned.join("; ")));
            }
        }
        Err(reason) => result = fail(result, reason),
    }
    result
}

/// What a query asks for when it is a bare series selector (`vllm:num_requests_waiting`,
/// `up{job="vllm"}`, `{job="vllm"}`, `x[5m]`): `Some(Some(name))` with a metric name,
/// `Some(None)` without one. `None` for anything computed (`rate(x[5m])`, `a + b`): its results
/// are not the metric's samples, and its type says nothing about them.
pub fn bare_selector(promql: &str) -> Option<Option<String>> {
    let text = promql.trim();
    let name_len = text
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(text.len(), |(i, _)| i);
    let (name, mut rest) = text.split_at(name_len);
    rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix('{') {
        // Skip the matchers, honouring quoted values (which may hold `}` and escapes).
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if c == '}' => {
                    end = Some(i);
                    break;
                }
                None => {}
            }
        }
        rest = after[end? + 1..].trim_start();
    } else if name.is_empty() {
        return None;
    }
    if let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']')?;
        let range = &after[..close];
        if range.is_empty() || !range.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        rest = after[close + 1..].trim_start();
    }
    let keywords = ["and", "or", "unless", "by", "without", "offset", "bool", "on", "ignoring"];
    if !rest.is_empty() || keywords.contains(&name) {
        return None;
    }
    Some((!name.is_empty()).then(|| name.to_string()))
}

/// Give the series of a bare-selector query their types from the metadata (a query answer
/// carries none). Counters and gauges are themselves; the `_bucket`, `_sum` and `_count` series
/// of a histogram or summary are counters (cumulative counts, to be rated); a summary's quantile
/// series and everything gauge-like are gauges. Returns how many series got a type.
pub fn apply_types(result: &mut QueryResult, types: &crate::metadata::Types) -> usize {
    use opsg_expo::MetricKind;
    let mut typed = 0;
    for series in result.series.iter_mut().filter(|s| s.metric_type == MetricType::Untyped) {
        let Some((family, kind)) = crate::metadata::type_of(types, &series.name) else {
            continue;
        };
        let component = family != series.name;
        series.metric_type = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram | MetricKind::Summary if component => MetricType::Counter,
            MetricKind::Unknown => continue,
            _ => MetricType::Gauge,
        };
        typed += 1;
    }
    typed
}

/// The `warnings` Prometheus (or Thanos, when a store is down) attaches to a successful answer:
/// the result may be partial, and the record should say so.
pub fn warnings(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("warnings")
                .and_then(Value::as_array)
                .map(|w| w.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>())
        })
        .unwrap_or_default()
}

fn fail(mut result: QueryResult, reason: String) -> QueryResult {
    result.status = "error".into();
    result.reason = Some(reason);
    result
}

fn api_error(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?.as_str()?;
    let kind = value.get("errorType").and_then(Value::as_str).unwrap_or("error");
    Some(format!("{kind}: {error}"))
}

/// Turn an API answer into compact series: `vector` and `matrix` by series, `scalar` as one
/// unlabelled series named after the query. Samples are `[seconds, "value"]` pairs.
pub fn parse_response(body: &[u8], promql: &str) -> Result<Vec<Series>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    match value.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some(_) => return Err(api_error(body).unwrap_or_else(|| "query failed".into())),
        None => return Err("the answer has no `status` (is this a Prometheus API?)".into()),
    }
    let data = value.get("data").ok_or("the answer has no `data`")?;
    let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data.get("result").ok_or("the answer has no `data.result`")?;
    let mut series = Vec::new();
    match result_type {
        "vector" | "matrix" => {
            let items = result.as_array().ok_or("`data.result` is not an array")?;
            for (i, item) in items.iter().enumerate() {
                let mut labels: BTreeMap<String, String> = item
                    .get("metric")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                let name = labels.remove("__name__").unwrap_or_else(|| promql.to_string());
                let mut points = Vec::new();
                if let Some(sample) = item.get("value") {
                    points.push(point(sample).map_err(|e| format!("result[{i}].value: {e}"))?);
                }
                if let Some(values) = item.get("values").and_then(Value::as_array) {
                    for (j, sample) in values.iter().enumerate() {
                        points.push(
                            point(sample).map_err(|e| format!("result[{i}].values[{j}]: {e}"))?,
                        );
                    }
                }
                series.push(Series {
                    name,
                    source_name: None,
                    metric_type: MetricType::Untyped,
                    labels,
                    le: Vec::new(),
                    points,
                });
            }
        }
        "scalar" => series.push(Series {
            name: promql.to_string(),
            source_name: None,
            metric_type: MetricType::Gauge,
            labels: BTreeMap::new(),
            le: Vec::new(),
            points: vec![point(result).map_err(|e| format!("result: {e}"))?],
        }),
        other => return Err(format!("unsupported result type `{other}`")),
    }
    Ok(series)
}

fn point(sample: &Value) -> Result<Point, String> {
    let pair = sample.as_array().filter(|a| a.len() == 2).ok_or("expected [time, \"value\"]")?;
    let secs = pair[0].as_f64().ok_or("the time is not a number")?;
    let text = pair[1].as_str().ok_or("the value is not a string")?;
    let v = parse_value(text).ok_or_else(|| format!("`{text}` is not a number"))?;
    Ok(Point {
        t: (secs * 1000.0).round() as i64,
        v: Some(Float(v)),
        count: None,
        sum: None,
        buckets: Vec::new(),
    })
}

/// Prometheus renders values with Go's `strconv.FormatFloat`: `NaN`, `+Inf`, `-Inf` or a number.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_matrix_and_scalar() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"sim","instance":"127.0.0.1:1"},"value":[1700000000.5,"1"]}]}}"#;
        let s = parse_response(vector, "up").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "up");
        assert_eq!(s[0].labels["job"], "sim");
        assert!(!s[0].labels.contains_key("__name__"));
        assert_eq!(s[0].points[0].t, 1_700_000_000_500);
        assert_eq!(s[0].points[0].v, Some(Float(1.0)));

        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"job":"sim"},"values":[[1,"0.5"],[2,"NaN"],[3,"+Inf"]]}]}}"#;
        let s = parse_response(matrix, "rate(x[1m])").unwrap();
        assert_eq!(s[0].name, "rate(x[1m])");
        assert_eq!(s[0].points.len(), 3);
        assert!(s[0].points[1].v.unwrap().0.is_nan());
        assert_eq!(s[0].points[2].v, Some(Float(f64::INFINITY)));

        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[5,"42"]}}"#;
        assert_eq!(parse_response(scalar, "42").unwrap()[0].points[0].v, Some(Float(42.0)));
    }

    #[test]
    fn bare_selectors_are_told_from_computed_queries() {
        let name = |n: &str| Some(Some(n.to_string()));
        assert_eq!(bare_selector("vllm:num_requests_waiting"), name("vllm:num_requests_waiting"));
        assert_eq!(bare_selector(" up{job=\"vllm\"} "), name("up"));
        assert_eq!(bare_selector("x_bucket{le=~\"0.5|1\"}[5m]"), name("x_bucket"));
        assert_eq!(bare_selector("x {path=\"/a}b\\\"c\"}"), name("x"), "quoted `}}` and escapes");
        assert_eq!(bare_selector("{job=\"vllm\"}"), Some(None));
        for computed in [
            "rate(x[5m])",
            "sum(up)",
            "a + b",
            "up offset 5m",
            "x[5m:1m]",
            "up{job=\"a\"} > 0",
            "{job=\"a\"",
            "",
            "42",
            "sum by (job) (up)",
        ] {
            assert_eq!(bare_selector(computed), None, "{computed}");
        }
    }

    #[test]
    fn metadata_types_the_series_of_a_bare_query() {
        use opsg_expo::MetricKind;
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"vllm:num_preemptions_total"},"value":[1,"3"]},
            {"metric":{"__name__":"vllm:num_requests_running"},"value":[1,"2"]},
            {"metric":{"__name__":"vllm:ttft_seconds_bucket","le":"1"},"value":[1,"5"]},
            {"metric":{"__name__":"rpc_seconds","quantile":"0.9"},"value":[1,"0.2"]},
            {"metric":{"__name__":"unknown_thing"},"value":[1,"1"]}]}}"#;
        let mut result = QueryResult {
            endpoint: "http://p".into(),
            query: "{job=\"vllm\"}".into(),
            status: "ok".into(),
            reason: None,
            series: parse_response(body, "q").unwrap(),
        };
        let types: crate::metadata::Types = [
            ("vllm:num_preemptions_total".to_string(), MetricKind::Counter),
            ("vllm:num_requests_running".to_string(), MetricKind::Gauge),
            ("vllm:ttft_seconds".to_string(), MetricKind::Histogram),
            ("rpc_seconds".to_string(), MetricKind::Summary),
        ]
        .into();
        assert_eq!(apply_types(&mut result, &types), 4);
        let got: Vec<MetricType> = result.series.iter().map(|s| s.metric_type).collect();
        assert_eq!(
            got,
            [
                MetricType::Counter,
                MetricType::Gauge,
                MetricType::Counter,
                MetricType::Gauge,
                MetricType::Untyped
            ]
        );
    }

    #[test]
    fn warnings_of_a_partial_answer() {
        let body = br#"{"status":"success","warnings":["store 10.0.0.3:10901 unavailable"],"data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(warnings(body), ["store 10.0.0.3:10901 unavailable"]);
        assert!(parse_response(body, "up").unwrap().is_empty());
        assert!(warnings(br#"{"status":"success","data":{}}"#).is_empty());
    }

    #[test]
    fn errors_are_reasons() {
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(parse_response(err, "x").unwrap_err(), "bad_data: parse error at char 3");
        assert!(parse_response(b"<html>", "x").unwrap_err().contains("not JSON"));
        let bad = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert!(parse_response(bad, "x").unwrap_err().contains("result[0].value"));
    }
}

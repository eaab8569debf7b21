//! From a parsed exposition to the compact series a record carries.
//!
//! One payload becomes a list of [`Reading`]s: a series identity (normalized name, labels, type,
//! bucket bounds) and one [`Point`]. Readings of successive samples are merged into [`Series`] by
//! identity. Along the way the payload is checked the way a careful scraper must: a line that does
//! not parse, or (in a family the record keeps) a series exposed twice or a histogram whose
//! cumulative buckets go down, makes the whole sample an error (the values cannot be trusted, and
//! OpenMetrics says an invalid exposition is erroneous in its entirety), with a reason naming the
//! series and the line. Only kept families' samples are held in memory while parsing.

use crate::normalize::{self, Keep};
use opsg_core::float::Float;
use opsg_core::kinds::observation::{MetricType, Point, Series};
use opsg_expo::{Exposition, MetricFamily, MetricKind, Sample};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What identifies a series across samples.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Normalized name.
    pub name: String,
    /// Labels (without `le`).
    pub labels: BTreeMap<String, String>,
    /// Bucket bounds as text (histograms only): a changed bucket layout is a new series.
    pub le: Vec<String>,
}

/// One series' value in one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Identity.
    pub key: SeriesKey,
    /// Exposed name, when normalization changed it.
    pub source_name: Option<String>,
    /// Type.
    pub metric_type: MetricType,
    /// Bucket upper bounds (histograms).
    pub le: Vec<Float>,
    /// The value.
    pub point: Point,
    /// The exposition's own timestamp, if it carried one (ms).
    pub exposed_at: Option<i64>,
}

/// Reduce a parsed exposition to the kept readings; `at` is the sample time (ms), used for points
/// without their own timestamp. Errors are reasons for the record.
pub fn readings(expo: &Exposition<'_>, at: i64, keep: &Keep) -> Result<Vec<Reading>, String> {
    check(expo)?;
    let exposed: HashSet<&str> = expo
        .families
        .iter()
        .flat_map(|f| {
            std::iter::once(f.name.as_ref()).chain(f.samples.iter().map(|s| s.name.as_ref()))
        })
        .collect();
    let present = |name: &str| exposed.contains(name);
    let mut out = Vec::new();
    for family in &expo.families {
        if family.samples.is_empty() {
            continue;
        }
        match family.kind {
            MetricKind::Histogram | MetricKind::GaugeHistogram => {
                if !keep.keeps(&family.name) || normalize::superseded(&family.name, &present) {
                    continue;
                }
                histogram_readings(family, at, &mut out)?;
            }
            _ => {
                for sample in &family.samples {
                    if !(keep.keeps(&family.name) || keep.keeps(&sample.name))
                        || normalize::superseded(&sample.name, &present)
                        || normalize::superseded(&family.name, &present)
                    {
                        continue;
                    }
                    // A counter's or summary's `_created` is its start time, not a signal.
                    if matches!(family.kind, MetricKind::Counter | MetricKind::Summary)
                        && sample.name.ends_with("_created")
                    {
                        continue;
                    }
                    out.push(scalar_reading(family, sample, at));
                }
            }
        }
    }
    Ok(out)
}

fn metric_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge | MetricKind::Info | MetricKind::StateSet => MetricType::Gauge,
        MetricKind::Histogram | MetricKind::GaugeHistogram => MetricType::Histogram,
        MetricKind::Summary => MetricType::Summary,
        MetricKind::Unknown => MetricType::Untyped,
    }
}

fn labels_of(sample: &Sample<'_>, skip: &str) -> BTreeMap<String, String> {
    sample
        .labels
        .iter()
        // An empty label value is the same as the label being absent (Prometheus, OpenMetrics).
        .filter(|(n, v)| n != skip && !v.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn scalar_reading(family: &MetricFamily<'_>, sample: &Sample<'_>, at: i64) -> Reading {
    let exposed = sample.name.as_ref();
    let current = normalize::current_name(exposed).map(str::to_string).or_else(|| {
        // A renamed family whose samples carry suffixes (summary `_sum`, say).
        normalize::current_name(&family.name)
            .map(|new| format!("{new}{}", exposed.strip_prefix(family.name.as_ref()).unwrap_or("")))
    });
    let name = current.clone().unwrap_or_else(|| exposed.to_string());
    Reading {
        key: SeriesKey { name, labels: labels_of(sample, ""), le: Vec::new() },
        source_name: current.map(|_| exposed.to_string()),
        metric_type: metric_type(family.kind),
        le: Vec::new(),
        point: Point {
            t: sample.timestamp_ms.unwrap_or(at),
            v: Some(Float(sample.value)),
            count: None,
            sum: None,
            buckets: Vec::new(),
        },
        exposed_at: sample.timestamp_ms,
    }
}

#[derive(Default)]
struct HistogramParts {
    buckets: Vec<(f64, String, f64, u32)>,
    sum: Option<f64>,
    count: Option<f64>,
    timestamp: Option<i64>,
    first_line: u32,
    labels: BTreeMap<String, String>,
}

fn histogram_readings(
    family: &MetricFamily<'_>,
    at: i64,
    out: &mut Vec<Reading>,
) -> Result<(), String> {
    let base = family.name.as_ref();
    let (sum_suffix, count_suffix) = match family.kind {
        MetricKind::GaugeHistogram => ("_gsum", "_gcount"),
        _ => ("_sum", "_count"),
    };
    let mut order: Vec<BTreeMap<String, String>> = Vec::new();
    let mut parts: HashMap<BTreeMap<String, String>, HistogramParts> = HashMap::new();
    for sample in &family.samples {
        let suffix = sample.name.strip_prefix(base).unwrap_or("");
        let labels = labels_of(sample, "le");
        let entry = parts.entry(labels.clone()).or_insert_with(|| {
            order.push(labels.clone());
            HistogramParts { first_line: sample.line, labels, ..HistogramParts::default() }
        });
        if entry.timestamp.is_none() {
            entry.timestamp = sample.timestamp_ms;
        }
        match suffix {
            "_bucket" => {
                let Some(le_text) = sample.label("le") else {
                    return Err(format!(
                        "histogram `{base}`: bucket without an `le` label (line {})",
                        sample.line
                    ));
                };
                let Some(le) = parse_le(le_text) else {
                    return Err(format!(
                        "histogram `{base}`: `le=\"{le_text}\"` is not a number (line {})",
                        sample.line
                    ));
                };
                entry.buckets.push((le, le_text.to_string(), sample.value, sample.line));
            }
            s if s == sum_suffix => entry.sum = Some(sample.value),
            s if s == count_suffix => entry.count = Some(sample.value),
            _ => {} // `_created`: the start time, not a signal.
        }
    }
    let current = normalize::current_name(base);
    let name = current.unwrap_or(base).to_string();
    for labels in order {
        let Some(mut h) = parts.remove(&labels) else { continue };
        let shown = series_text(base, &h.labels);
        if h.buckets.is_empty() {
            return Err(format!("histogram `{shown}` has no buckets (line {})", h.first_line));
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in h.buckets.windows(2) {
            let (lo, hi) = (&pair[0], &pair[1]);
            if lo.0 == hi.0 {
                return Err(format!(
                    "histogram `{shown}` repeats the bucket le=\"{}\" (lines {} and {})",
                    hi.1, lo.3, hi.3
                ));
            }
        }
        let last = h.buckets[h.buckets.len() - 1].clone();
        if last.0 != f64::INFINITY {
            return Err(format!(
                "histogram `{shown}` has no le=\"+Inf\" bucket (line {})",
                h.first_line
            ));
        }
        let count = h.count.unwrap_or(last.2);
        out.push(Reading {
            key: SeriesKey {
                name: name.clone(),
                labels: h.labels,
                le: h.buckets.iter().map(|b| canonical_le(b.0)).collect(),
            },
            source_name: current.map(|_| base.to_string()),
            metric_type: MetricType::Histogram,
            le: h.buckets.iter().map(|b| Float(b.0)).collect(),
            point: Point {
                t: h.timestamp.unwrap_or(at),
                v: None,
                count: Some(Float(count)),
                sum: h.sum.map(Float),
                buckets: h.buckets.iter().map(|b| Float(b.2)).collect(),
            },
            exposed_at: h.timestamp,
        });
    }
    Ok(())
}

fn parse_le(text: &str) -> Option<f64> {
    match text.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        t => t.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn canonical_le(v: f64) -> String {
    if v == f64::INFINITY { "+Inf".into() } else { format!("{v:?}") }
}

fn series_text(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Refuse a payload whose values cannot be trusted: a series exposed twice (which value is it?),
/// a histogram without `+Inf` (no total) or whose buckets are not cumulative. A `_count` that
/// differs from the `+Inf` bucket is tolerated (client libraries read them at slightly different
/// moments under load); the exposed `_count` is kept.
fn check(expo: &Exposition<'_>) -> Result<(), String> {
    let problems: Vec<opsg_expo::Problem> = opsg_expo::validate(expo)
        .into_iter()
        .filter(|p| p.kind != opsg_expo::ProblemKind::HistogramCountMismatch)
        .collect();
    let Some(first) = problems.first() else { return Ok(()) };
    let more = match problems.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Err(format!("untrustworthy exposition: {first}{more}"))
}

/// Merges readings of successive samples into series, in first-seen order.
#[derive(Debug, Default)]
pub struct SeriesSet {
    index: HashMap<SeriesKey, usize>,
    series: Vec<Series>,
}

impl SeriesSet {
    /// Add one sample's readings.
    pub fn add(&mut self, readings: Vec<Reading>) {
        for r in readings {
            match self.index.get(&r.key) {
                Some(&i) => self.series[i].points.push(r.point),
                None => {
                    self.index.insert(r.key.clone(), self.series.len());
                    self.series.push(Series {
                        name: r.key.name,
                        source_name: r.source_name,
                        metric_type: r.metric_type,
                        labels: r.key.labels,
                        le: r.le,
                        points: vec![r.point],
                    });
                }
            }
        }
    }

    /// The merged series.
    pub fn into_series(self) -> Vec<Series> {
        self.series
    }
}

/// A payload reduced: how it was read and what it held.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// The format it was parsed as.
    pub format: opsg_expo::Format,
    /// Its media type (the `Content-Type`, else the detected format's), for the evidence store.
    pub media_type: String,
    /// The kept readings, or why the payload was refused.
    pub readings: Result<Vec<Reading>, String>,
}

/// Detect the format (from `Content-Type`, else the body), parse strictly, check and reduce.
pub fn reduce(bytes: &[u8], content_type: Option<&str>, at: i64, keep: &Keep) -> Reduced {
    let format = opsg_expo::detect_format(content_type, bytes);
    let media_type = content_type.map_or_else(|| default_media_type(format), str::to_string);
    let readings = check_utf8(bytes).and_then(|()| {
        let expo = parse_kept(bytes, format, keep).map_err(|e| {
            format!("invalid exposition ({format}): line {}:{}: {}", e.line, e.column, e.message)
        })?;
        readings(&expo, at, keep)
    });
    Reduced { format, media_type, readings }
}

impl Reduced {
    /// The same payload reduced at sample time `at` instead: what [`reduce`] returns for the same
    /// bytes and `at`, without parsing them again. `at` is only the time of the points whose
    /// exposition carried no timestamp of its own (`exposed_at`), so only those change.
    pub fn at(mut self, at: i64) -> Reduced {
        if let Ok(readings) = &mut self.readings {
            for r in readings.iter_mut().filter(|r| r.exposed_at.is_none()) {
                r.point.t = at;
            }
        }
        self
    }
}

/// One target's part of a page that holds many ([`reduce_split`]).
#[derive(Debug)]
pub struct Part {
    /// The value of the label the page was split by (a Prometheus `instance`).
    pub key: String,
    /// `job`, `deployment`, `role`, `route` and `node`, from the part's first sample carrying each.
    pub labels: BTreeMap<String, String>,
    /// The part's readings (without the split label and `job`), or why they were refused.
    pub readings: Result<Vec<Reading>, String>,
}

/// Labels a part of a split page takes from its series as its target's labels.
pub const PART_LABELS: &[&str] = &["job", "deployment", "role", "route", "node"];

/// Like [`reduce`], for a page holding the series of many targets (Prometheus `/federate`): the
/// kept samples are split by the value of label `by` (samples without it are left out), `by` and
/// `job` are removed from their labels, as a scrape of the target itself would not carry them,
/// and each part is reduced on its own, so normalization and the checks see one target at a time
/// (a vLLM V0 replica federated next to a V1 canary keeps its V0 series). The outer error is the
/// page's (not UTF-8, not an exposition); a part's error is that part's.
///
/// `types`, when given, restores the types of `untyped` families first ([`retype`]).
pub fn reduce_split(
    bytes: &[u8],
    content_type: Option<&str>,
    at: i64,
    keep: &Keep,
    by: &str,
    types: Option<&crate::metadata::Types>,
) -> (String, Result<Vec<Part>, String>) {
    let format = opsg_expo::detect_format(content_type, bytes);
    let media_type = content_type.map_or_else(|| default_media_type(format), str::to_string);
    let parts = check_utf8(bytes).and_then(|()| {
        let expo = parse_kept(bytes, format, keep).map_err(|e| {
            format!("invalid exposition ({format}): line {}:{}: {}", e.line, e.column, e.message)
        })?;
        Ok(split_by_label(expo, by)
            .into_iter()
            .map(|(key, (labels, part))| {
                let part = match types {
                    Some(types) => retype(part, types),
                    None => part,
                };
                Part { key, labels, readings: readings(&part, at, keep) }
            })
            .collect())
    });
    (media_type, parts)
}

fn default_media_type(format: opsg_expo::Format) -> String {
    match format {
        opsg_expo::Format::OpenMetrics => "application/openmetrics-text; version=1.0.0",
        opsg_expo::Format::PrometheusText => "text/plain; version=0.0.4",
    }
    .to_string()
}

/// Give `untyped` families the types they lost (Prometheus' `/federate` writes every family
/// `untyped`, one family per sample name): by the metadata in `types` first
/// ([`crate::metadata::type_of`]), else by the names, as Prometheus' own conventions have them:
/// `_bucket` samples with `le` next to `_sum`/`_count` are a histogram, `_total` is a counter.
/// A histogram's or summary's families are merged back into one. Typed families are left alone.
pub fn retype<'a>(expo: Exposition<'a>, types: &crate::metadata::Types) -> Exposition<'a> {
    let bucketed: HashSet<String> = expo
        .families
        .iter()
        .filter(|f| f.samples.iter().any(|s| s.label("le").is_some()))
        .filter_map(|f| f.name.strip_suffix("_bucket").map(str::to_string))
        .collect();
    let target = |name: &str| -> Option<(String, MetricKind)> {
        if let Some((base, kind)) = crate::metadata::type_of(types, name) {
            return Some((base.to_string(), kind));
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && !types.contains_key(base)
                && bucketed.contains(base)
            {
                return Some((base.to_string(), MetricKind::Histogram));
            }
        }
        name.ends_with("_total").then(|| (name.to_string(), MetricKind::Counter))
    };
    let mut out: Vec<MetricFamily<'a>> = Vec::with_capacity(expo.families.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for family in expo.families {
        let retyped = match family.kind {
            MetricKind::Unknown => target(&family.name),
            _ => None,
        };
        let Some((name, kind)) = retyped else {
            index.insert(family.name.to_string(), out.len());
            out.push(family);
            continue;
        };
        match index.get(&name) {
            Some(&i) if out[i].kind == kind => out[i].samples.extend(family.samples),
            _ => {
                index.insert(name.clone(), out.len());
                out.push(MetricFamily {
                    name: std::borrow::Cow::Owned(name),
                    kind,
                    help: family.help,
                    unit: family.unit,
                    samples: family.samples,
                });
            }
        }
    }
    Exposition { families: out, diagnostics: expo.diagnostics }
}

type SplitPart<'a> = (BTreeMap<String, String>, Exposition<'a>);

fn split_by_label<'a>(expo: Exposition<'a>, by: &str) -> BTreeMap<String, SplitPart<'a>> {
    let mut parts: BTreeMap<String, SplitPart<'a>> = BTreeMap::new();
    for family in expo.families {
        let mut samples_of: BTreeMap<String, Vec<Sample<'a>>> = BTreeMap::new();
        for mut sample in family.samples {
            let Some(key) = sample.label(by).filter(|v| !v.is_empty()).map(str::to_string) else {
                continue;
            };
            let (labels, _) = parts.entry(key.clone()).or_default();
            for name in PART_LABELS {
                if let Some(v) = sample.label(name).filter(|v| !v.is_empty()) {
                    labels.entry((*name).to_string()).or_insert_with(|| v.to_string());
                }
            }
            sample.labels.retain(|(n, _)| n != by && n != "job");
            samples_of.entry(key).or_default().push(sample);
        }
        for (key, samples) in samples_of {
            let (_, part) = parts.entry(key).or_default();
            part.families.push(MetricFamily {
                name: family.name.clone(),
                kind: family.kind,
                help: family.help.clone(),
                unit: family.unit.clone(),
                samples,
            });
        }
    }
    parts
}

/// Parse strictly (every line is checked) but hold on to the samples of kept families only: a
/// node_exporter page is mostly families no record carries, and a payload near the byte cap would
/// otherwise cost many times its size in memory. The checks of [`check`] then apply to what is
/// kept: a duplicate in a family the record leaves out changes nothing in the record.
fn parse_kept<'a>(
    bytes: &'a [u8],
    format: opsg_expo::Format,
    keep: &Keep,
) -> Result<Exposition<'a>, opsg_expo::ParseError> {
    let mut kept: Vec<Vec<Sample<'a>>> = Vec::new();
    // The family's verdict is computed once; a sample's own name only matters when it differs
    // (an OpenMetrics counter `x` exposes `x_total`).
    let mut family_kept: Vec<Option<bool>> = Vec::new();
    let summary =
        opsg_expo::parse_with(bytes, &opsg_expo::ParseOptions::new(format), |meta, sample| {
            if family_kept.len() <= meta.index {
                family_kept.resize(meta.index + 1, None);
            }
            let family = *family_kept[meta.index].get_or_insert_with(|| keep.keeps(meta.name));
            if family || (sample.name != meta.name && keep.keeps(&sample.name)) {
                if kept.len() <= meta.index {
                    kept.resize_with(meta.index + 1, Vec::new);
                }
                kept[meta.index].push(sample);
            }
        })?;
    kept.resize_with(summary.families.len(), Vec::new);
    let families = summary
        .families
        .into_iter()
        .zip(kept)
        .filter(|(_, samples)| !samples.is_empty())
        .map(|(info, samples)| MetricFamily {
            name: std::borrow::Cow::Owned(info.name),
            kind: info.kind,
            help: info.help.map(std::borrow::Cow::Owned),
            unit: info.unit.map(std::borrow::Cow::Owned),
            samples,
        })
        .collect();
    Ok(Exposition { families, diagnostics: Vec::new() })
}

/// Exposition formats are UTF-8; name the first bad byte by line and column.
fn check_utf8(bytes: &[u8]) -> Result<(), String> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let column =
                good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
            Err(format!(
                "invalid UTF-8 at line {line}:{column} (byte 0x{:02x}): expositions are UTF-8",
                bytes[e.valid_up_to()]
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/scrape")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn reduce_text(text: &str) -> Result<Vec<Reading>, String> {
        reduce(text.as_bytes(), Some("text/plain; version=0.0.4"), 1_000, &Keep::default()).readings
    }

    fn find<'r>(readings: &'r [Reading], name: &str) -> Vec<&'r Reading> {
        readings.iter().filter(|r| r.key.name == name).collect()
    }

    /// Guards the reuse of a replay's reduced payload across samples: re-timed, it must be what
    /// reducing the same bytes at the other time gives, timestamped samples (kept) included.
    #[test]
    fn a_reduced_payload_retimed_equals_the_payload_reduced_at_that_time() {
        let stamped = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 1 500\n\
            # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 4\n\
            # TYPE vllm:e2e_request_latency_seconds histogram\n\
            vllm:e2e_request_latency_seconds_bucket{le=\"1\"} 1 700\n\
            vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 2 700\n\
            vllm:e2e_request_latency_seconds_sum 3 700\nvllm:e2e_request_latency_seconds_count 2 700\n";
        for payload in [fixture("vllm_metrics_v0_opt125m_datadog.txt"), stamped.into()] {
            let ct = Some("text/plain; version=0.0.4");
            let at_1000 = reduce(&payload, ct, 1_000, &Keep::default());
            let at_9000 = reduce(&payload, ct, 9_000, &Keep::default());
            assert!(at_1000.readings.as_ref().is_ok_and(|r| !r.is_empty()));
            assert_ne!(at_1000, at_9000);
            assert_eq!(at_1000.at(9_000), at_9000);
        }
    }

    #[test]
    fn v0_capture_is_normalized() {
        let r =
            reduce(&fixture("vllm_metrics_v0_opt125m_datadog.txt"), None, 1_000, &Keep::default())
                .readings
                .unwrap();
        // gpu_cache_usage_perc is reported under its current name, the old one kept.
        let kv = find(&r, "vllm:kv_cache_usage_perc");
        assert_eq!(kv.len(), 1);
        assert_eq!(kv[0].source_name.as_deref(), Some("vllm:gpu_cache_usage_perc"));
        assert_eq!(kv[0].key.labels["model_name"], "facebook/opt-125m");
        assert!(find(&r, "vllm:gpu_cache_usage_perc").is_empty());
        let itl = find(&r, "vllm:inter_token_latency_seconds");
        assert_eq!(itl.len(), 1);
        assert_eq!(itl[0].metric_type, MetricType::Histogram);
        assert_eq!(itl[0].source_name.as_deref(), Some("vllm:time_per_output_token_seconds"));
        let h = find(&r, "vllm:time_to_first_token_seconds");
        assert_eq!(h.len(), 1);
        let h = h[0];
        assert_eq!(h.le.last(), Some(&Float(f64::INFINITY)));
        assert_eq!(h.le.len(), h.point.buckets.len());
        // The +Inf bucket equals _count.
        assert_eq!(h.point.buckets.last(), h.point.count.as_ref());
        // Python GC series are not kept by default; process_* are.
        assert!(r.iter().all(|x| !x.key.name.starts_with("python_")));
        assert!(!find(&r, "process_resident_memory_bytes").is_empty());
    }

    #[test]
    fn node_exporter_capture_keeps_only_the_selection() {
        let r = reduce(&fixture("node_exporter_e2e-output.txt"), None, 1_000, &Keep::default())
            .readings
            .unwrap();
        assert!(!r.is_empty());
        let keep = Keep::default();
        assert!(r.iter().all(|x| keep.keeps(&x.key.name)), "only selected families");
        let total = find(&r, "node_memory_MemTotal_bytes");
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].point.v, Some(Float(3.831959552e+09)));
        assert!(!find(&r, "node_load1").is_empty());
        let all = reduce(
            &fixture("node_exporter_e2e-output.txt"),
            None,
            1_000,
            &Keep::with_extra(&["*".into()]),
        )
        .readings
        .unwrap();
        assert!(all.len() > r.len() * 5, "{} vs {}", all.len(), r.len());
    }

    #[test]
    fn dcgm_capture_is_kept() {
        let r = reduce(
            &fixture("dcgm_exporter_t4_datadog_serve_metrics.txt"),
            None,
            1_000,
            &Keep::default(),
        )
        .readings
        .unwrap();
        assert!(r.iter().any(|x| x.key.name.starts_with("DCGM_FI_")), "{r:?}");
    }

    #[test]
    fn elided_docs_example_is_refused_with_a_line() {
        let red = reduce(
            &fixture("vllm_metrics_v1_docs_design_example_elided.txt"),
            None,
            1_000,
            &Keep::default(),
        );
        let err = red.readings.unwrap_err();
        assert!(err.contains("invalid exposition") && err.contains("line "), "{err}");
    }

    #[test]
    fn truncated_histogram_is_refused() {
        let red = reduce(
            &fixture("vllm_metrics_v0_qwen2.5coder_aibrix_partial.txt"),
            None,
            1_000,
            &Keep::default(),
        );
        let err = red.readings.unwrap_err();
        assert!(err.contains("+Inf"), "{err}");
    }

    #[test]
    fn duplicate_series_is_refused() {
        let text = "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n";
        let keep_a = Keep::with_extra(&["a".into()]);
        let err = reduce(text.as_bytes(), None, 0, &keep_a).readings.unwrap_err();
        assert!(
            err.contains("series `a{x=\"1\"}` repeats the one on line 2") && err.contains("line 3"),
            "{err}"
        );
        // A family the record leaves out cannot make what it keeps untrustworthy.
        let r = reduce(
            format!("{text}# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 2\n")
                .as_bytes(),
            None,
            0,
            &Keep::default(),
        )
        .readings
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key.name, "vllm:num_requests_running");
    }

    #[test]
    fn non_monotonic_histogram_is_refused() {
        let text = "# TYPE vllm:e2e_request_latency_seconds histogram\n\
            vllm:e2e_request_latency_seconds_bucket{le=\"0.5\"} 9\n\
            vllm:e2e_request_latency_seconds_bucket{le=\"1.0\"} 7\n\
            vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 9\n\
            vllm:e2e_request_latency_seconds_count 9\n\
            vllm:e2e_request_latency_seconds_sum 4.5\n";
        let err = reduce_text(text).unwrap_err();
        assert!(err.contains("not cumulative") && err.contains("histogram_non_monotonic"), "{err}");
    }

    #[test]
    fn count_mismatch_is_tolerated_and_the_exposed_count_kept() {
        let text = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 5\nh_count 6\nh_sum 3\n";
        let r =
            reduce(text.as_bytes(), None, 0, &Keep::with_extra(&["h".into()])).readings.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].point.count, Some(Float(6.0)));
        assert_eq!(r[0].point.buckets, vec![Float(2.0), Float(5.0)]);
    }

    #[test]
    fn summaries_give_a_series_per_quantile_and_sum_and_count() {
        let text = "# TYPE rpc_seconds summary\nrpc_seconds{quantile=\"0.5\"} 0.2\nrpc_seconds{quantile=\"0.99\"} 0.9\nrpc_seconds_sum 12\nrpc_seconds_count 40\n";
        let r = reduce(text.as_bytes(), None, 0, &Keep::with_extra(&["rpc_*".into()]))
            .readings
            .unwrap();
        let names: Vec<(&str, Option<&str>)> = r
            .iter()
            .map(|x| (x.key.name.as_str(), x.key.labels.get("quantile").map(String::as_str)))
            .collect();
        assert_eq!(
            names,
            [
                ("rpc_seconds", Some("0.5")),
                ("rpc_seconds", Some("0.99")),
                ("rpc_seconds_sum", None),
                ("rpc_seconds_count", None)
            ]
        );
        assert!(r.iter().all(|x| x.metric_type == MetricType::Summary));
    }

    #[test]
    fn non_utf8_is_refused_with_position() {
        let red = reduce(b"a 1\nb\xff 2\n", None, 0, &Keep::with_extra(&["*".into()]));
        let err = red.readings.unwrap_err();
        assert!(err.contains("UTF-8") && err.contains("line 2:2"), "{err}");
    }

    #[test]
    fn both_spellings_keep_only_the_current_one() {
        let text = "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{engine=\"0\"} 0.5\n\
            # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine=\"0\"} 0.5\n";
        let r = reduce_text(text).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key.name, "vllm:kv_cache_usage_perc");
        assert_eq!(r[0].source_name, None);
    }

    #[test]
    fn openmetrics_counters_and_created() {
        let text = "# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{engine=\"0\"} 12.0\n\
            vllm:prompt_tokens_created{engine=\"0\"} 1.7e9\n# EOF\n";
        let red = reduce(
            text.as_bytes(),
            Some("application/openmetrics-text; version=1.0.0"),
            5,
            &Keep::default(),
        );
        assert_eq!(red.format, opsg_expo::Format::OpenMetrics);
        let r = red.readings.unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].key.name, "vllm:prompt_tokens_total");
        assert_eq!(r[0].metric_type, MetricType::Counter);
        assert_eq!(
            r[0].point,
            Point { t: 5, v: Some(Float(12.0)), count: None, sum: None, buckets: vec![] }
        );
    }

    #[test]
    fn series_merge_across_samples() {
        let mut set = SeriesSet::default();
        set.add(
            reduce_text("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 1\n")
                .unwrap(),
        );
        set.add(
            reduce_text("# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 4\n")
                .unwrap(),
        );
        let series = set.into_series();
        assert_eq!(series.len(), 1);
        let values: Vec<f64> = series[0].points.iter().map(|p| p.v.unwrap().0).collect();
        assert_eq!(values, [1.0, 4.0]);
    }
}

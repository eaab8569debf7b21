//! The data model a parse produces: families of samples, borrowed from the input where possible.
//!
//! Strings are `Cow<'a, str>`: a name or label value that needed no unescaping borrows the input
//! bytes (zero-copy), one that did (`\"`, `\\`, `\n`) owns its decoded text.

use std::borrow::Cow;
use std::fmt;

use crate::error::ParseError;

/// The wire format of an exposition body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`): the format vLLM,
    /// node_exporter and dcgm-exporter serve by default.
    #[default]
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`): ends with `# EOF`,
    /// timestamps in seconds, exemplars, `info`/`stateset`/`gaugehistogram` types.
    OpenMetrics,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::PrometheusText => "prometheus-text-0.0.4",
            Format::OpenMetrics => "openmetrics-1.0",
        })
    }
}

/// The type of a metric family, from its `# TYPE` line (`Unknown` when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricKind {
    /// A monotonically increasing count (`_total` samples in OpenMetrics).
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le=..}`), `_sum`, `_count`, optional `_created`.
    Histogram,
    /// A histogram of current values (`_bucket`, `_gcount`, `_gsum`).
    GaugeHistogram,
    /// Client-side quantiles (`{quantile=..}`), `_sum`, `_count`, optional `_created`.
    Summary,
    /// Constant labels describing a target (`_info` samples, value 1).
    Info,
    /// A set of boolean states, one sample per state (label named like the family).
    StateSet,
    /// `untyped` in text 0.0.4, `unknown` in OpenMetrics, or no `# TYPE` line at all.
    #[default]
    Unknown,
}

impl MetricKind {
    /// The OpenMetrics spelling of the type (`unknown` for text 0.0.4's `untyped`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::GaugeHistogram => "gaugehistogram",
            MetricKind::Summary => "summary",
            MetricKind::Info => "info",
            MetricKind::StateSet => "stateset",
            MetricKind::Unknown => "unknown",
        }
    }

    /// The type an OpenMetrics `# TYPE` line (or Prometheus' metadata API) names: the inverse of
    /// [`MetricKind::as_str`]; `None` for anything else.
    pub fn from_openmetrics(text: &str) -> Option<MetricKind> {
        Some(match text {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "gaugehistogram" => MetricKind::GaugeHistogram,
            "summary" => MetricKind::Summary,
            "info" => MetricKind::Info,
            "stateset" => MetricKind::StateSet,
            "unknown" => MetricKind::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label pair, name then value, in the order the exposition wrote them.
pub type Label<'a> = (Cow<'a, str>, Cow<'a, str>);

/// An OpenMetrics exemplar attached to a sample (`# {trace_id="..."} 0.5 1700000000.1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// Exemplar labels (at most 128 UTF-8 characters of names and values together).
    pub labels: Vec<Label<'a>>,
    /// The exemplar's observed value.
    pub value: f64,
    /// Optional exemplar timestamp, converted to milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// One sample line: a series (name + labels) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The full sample name as exposed (`vllm:e2e_request_latency_seconds_bucket`), not the
    /// family name.
    pub name: Cow<'a, str>,
    /// Labels in exposition order (including `le` / `quantile`).
    pub labels: Vec<Label<'a>>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
    /// Optional timestamp in milliseconds since the Unix epoch (text 0.0.4 writes integer
    /// milliseconds, OpenMetrics float seconds; both land here as milliseconds, saturating).
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics exemplar, if the line carried one.
    pub exemplar: Option<Exemplar<'a>>,
    /// 1-based line number of the sample in the input (saturating at `u32::MAX`).
    pub line: u32,
}

impl<'a> Sample<'a> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }

    /// A copy that owns all its strings, detached from the input buffer.
    pub fn into_owned(self) -> Sample<'static> {
        Sample {
            name: Cow::Owned(self.name.into_owned()),
            labels: own_labels(self.labels),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
            exemplar: self.exemplar.map(|e| Exemplar {
                labels: own_labels(e.labels),
                value: e.value,
                timestamp_ms: e.timestamp_ms,
            }),
            line: self.line,
        }
    }
}

fn own_labels(labels: Vec<Label<'_>>) -> Vec<Label<'static>> {
    labels
        .into_iter()
        .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
        .collect()
}

/// A metric family: the metadata lines (`HELP`, `TYPE`, `UNIT`) and every sample that belongs to
/// it (`x_bucket`, `x_sum`, `x_count` of histogram `x`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily<'a> {
    /// The family name (`x` for a histogram whose samples are `x_bucket`, `x_sum`, `x_count`).
    pub name: Cow<'a, str>,
    /// The declared type (`Unknown` without a `# TYPE` line).
    pub kind: MetricKind,
    /// The `# HELP` text, unescaped (`None` when absent or empty).
    pub help: Option<Cow<'a, str>>,
    /// The OpenMetrics `# UNIT` (`None` when absent or empty, and always in text 0.0.4).
    pub unit: Option<Cow<'a, str>>,
    /// Samples in input order. Text 0.0.4 families split over the input are merged here, as
    /// Prometheus' own `expfmt` parser does.
    pub samples: Vec<Sample<'a>>,
}

/// A whole parsed exposition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition<'a> {
    /// Families in order of first appearance (including families that have metadata only).
    pub families: Vec<MetricFamily<'a>>,
    /// Lenient mode only: one entry per problem found; the offending lines were skipped (syntax)
    /// or kept (rule violations such as a negative counter). Empty in strict mode.
    pub diagnostics: Vec<ParseError>,
}

impl<'a> Exposition<'a> {
    /// The family called `name`, if any.
    pub fn family(&self, name: &str) -> Option<&MetricFamily<'a>> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every sample of every family, in family order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample<'a>> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The samples a PromQL-style selector picks (`vllm:num_requests_waiting{model_name="m"}`).
    pub fn select<'s>(
        &'s self,
        selector: &'s crate::selector::Selector,
    ) -> impl Iterator<Item = &'s Sample<'a>> + 's {
        self.samples().filter(move |s| selector.matches(s))
    }
}

/// How to parse: the format, strictness and resource limits.
///
/// Build it with `ParseOptions { format: Format::OpenMetrics, ..Default::default() }` so new
/// fields (always added with a permissive default) do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Which grammar to apply (see [`crate::detect_format`]).
    pub format: Format,
    /// `false` (strict): the first problem is returned as the error. `true`: each bad line becomes
    /// a diagnostic and parsing goes on with the next line.
    pub lenient: bool,
    /// Reject inputs longer than this many bytes (an error at the line where the cap is crossed),
    /// so a runaway target cannot make the parser hold an unbounded payload.
    pub max_bytes: Option<u64>,
    /// Stop with an error after this many samples.
    pub max_samples: Option<u64>,
    /// Lenient mode keeps at most this many diagnostics (the rest are counted, not stored), so a
    /// garbage payload cannot grow the diagnostic list without bound.
    pub max_diagnostics: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            format: Format::PrometheusText,
            lenient: false,
            max_bytes: None,
            max_samples: None,
            max_diagnostics: 1000,
        }
    }
}

impl ParseOptions {
    /// Strict options for `format`, without limits.
    pub fn new(format: Format) -> Self {
        ParseOptions { format, ..Default::default() }
    }

    /// The same options in lenient mode.
    pub fn lenient(mut self) -> Self {
        self.lenient = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::MetricKind;

    #[test]
    fn type_names_round_trip() {
        for kind in [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
            MetricKind::GaugeHistogram,
            MetricKind::Summary,
            MetricKind::Info,
            MetricKind::StateSet,
            MetricKind::Unknown,
        ] {
            assert_eq!(MetricKind::from_openmetrics(kind.as_str()), Some(kind));
        }
        assert_eq!(MetricKind::from_openmetrics("untyped"), None, "text 0.0.4 only");
        assert_eq!(MetricKind::from_openmetrics("Counter"), None, "types are lower case");
    }
}

//! Series views over a parsed family: classic histograms and summaries regrouped per series
//! (labels without `le` / `quantile`), ready for [`crate::histogram_quantile`].

use std::collections::HashMap;

use crate::line::parse_float;
use crate::model::{MetricFamily, MetricKind};

/// Label pairs of a series, sorted by name, borrowed from the exposition.
pub type SeriesLabels<'e> = Vec<(&'e str, &'e str)>;

/// One classic histogram series: `_bucket`, `_sum`, `_count` (and OpenMetrics `_created`) sharing
/// the same labels apart from `le`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries<'e> {
    /// The series labels (without `le`), sorted by name.
    pub labels: SeriesLabels<'e>,
    /// `(le, cumulative count)` in exposition order; unparsable `le` values are left out.
    pub buckets: Vec<(f64, f64)>,
    /// The `_sum` (or `_gsum`) value.
    pub sum: Option<f64>,
    /// The `_count` (or `_gcount`) value.
    pub count: Option<f64>,
    /// OpenMetrics `_created` (seconds since the epoch).
    pub created: Option<f64>,
    /// Line of the first sample of the series.
    pub line: u32,
}

impl HistogramSeries<'_> {
    /// PromQL `histogram_quantile(q, ...)` over this series' buckets.
    pub fn quantile(&self, q: f64) -> f64 {
        crate::promql::histogram_quantile(q, &self.buckets)
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// One summary series: quantiles, `_sum`, `_count` sharing the same labels apart from `quantile`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySeries<'e> {
    /// The series labels (without `quantile`), sorted by name.
    pub labels: SeriesLabels<'e>,
    /// `(quantile, value)` in exposition order.
    pub quantiles: Vec<(f64, f64)>,
    /// The `_sum` value.
    pub sum: Option<f64>,
    /// The `_count` value.
    pub count: Option<f64>,
    /// Line of the first sample of the series.
    pub line: u32,
}

fn key<'e>(labels: &'e [crate::model::Label<'_>], skip: &str) -> SeriesLabels<'e> {
    let mut k: SeriesLabels<'e> =
        labels.iter().filter(|(n, _)| n != skip).map(|(n, v)| (n.as_ref(), v.as_ref())).collect();
    k.sort_unstable();
    k
}

/// Regroups a histogram or gauge histogram family into its series, in order of first appearance.
/// Any other kind gives an empty list.
pub fn histogram_series<'e>(family: &'e MetricFamily<'_>) -> Vec<HistogramSeries<'e>> {
    if !matches!(family.kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
        return Vec::new();
    }
    let mut out: Vec<HistogramSeries<'e>> = Vec::new();
    let mut index: HashMap<SeriesLabels<'e>, usize> = HashMap::new();
    let base = family.name.as_ref();
    for s in &family.samples {
        let suffix = s.name.get(base.len()..).unwrap_or("");
        let k = key(&s.labels, if suffix == "_bucket" { "le" } else { "" });
        let i = *index.entry(k.clone()).or_insert_with(|| {
            out.push(HistogramSeries {
                labels: k,
                buckets: Vec::new(),
                sum: None,
                count: None,
                created: None,
                line: s.line,
            });
            out.len() - 1
        });
        let series = &mut out[i];
        match suffix {
            "_bucket" => {
                if let Some(le) = s.label("le").and_then(parse_float) {
                    series.buckets.push((le, s.value));
                }
            }
            "_sum" | "_gsum" => series.sum = Some(s.value),
            "_count" | "_gcount" => series.count = Some(s.value),
            "_created" => series.created = Some(s.value),
            _ => {}
        }
    }
    out
}

/// Regroups a summary family into its series, in order of first appearance. Any other kind gives
/// an empty list.
pub fn summary_series<'e>(family: &'e MetricFamily<'_>) -> Vec<SummarySeries<'e>> {
    if family.kind != MetricKind::Summary {
        return Vec::new();
    }
    let mut out: Vec<SummarySeries<'e>> = Vec::new();
    let mut index: HashMap<SeriesLabels<'e>, usize> = HashMap::new();
    let base = family.name.as_ref();
    for s in &family.samples {
        let suffix = s.name.get(base.len()..).unwrap_or("");
        let k = key(&s.labels, if suffix.is_empty() { "quantile" } else { "" });
        let i = *index.entry(k.clone()).or_insert_with(|| {
            out.push(SummarySeries {
                labels: k,
                quantiles: Vec::new(),
                sum: None,
                count: None,
                line: s.line,
            });
            out.len() - 1
        });
        let series = &mut out[i];
        match suffix {
            "" => {
                if let Some(q) = s.label("quantile").and_then(parse_float) {
                    series.quantiles.push((q, s.value));
                }
            }
            "_sum" => series.sum = Some(s.value),
            "_count" => series.count = Some(s.value),
            _ => {}
        }
    }
    out
}

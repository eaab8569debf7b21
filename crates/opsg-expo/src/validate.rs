//! Checks a parsed exposition for problems that are legal to write but wrong to trust: a series
//! exposed twice, histogram buckets that are not cumulative, a histogram without `+Inf`.
//!
//! Text 0.0.4 has no rule against these (expfmt accepts a histogram without `+Inf`), and
//! OpenMetrics strict parsing already rejects most of them, so they are reported here, apart from
//! parsing: `opsg-scrape` records them per target instead of dropping the target.

use std::collections::HashMap;
use std::fmt;

use crate::model::{Exposition, MetricKind};
use crate::series::histogram_series;

/// What kind of problem [`validate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The same series (name, labels, timestamp) appears more than once.
    DuplicateSeries,
    /// A histogram series has no `le="+Inf"` bucket (its total count is unknown).
    HistogramMissingInf,
    /// Bucket counts decrease as `le` grows (not cumulative).
    HistogramNonMonotonic,
    /// `_count` differs from the `+Inf` bucket.
    HistogramCountMismatch,
}

impl ProblemKind {
    /// A stable snake_case name for records.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::DuplicateSeries => "duplicate_series",
            ProblemKind::HistogramMissingInf => "histogram_missing_inf",
            ProblemKind::HistogramNonMonotonic => "histogram_non_monotonic",
            ProblemKind::HistogramCountMismatch => "histogram_count_mismatch",
        }
    }
}

/// One problem, located at the line of the offending sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line of the sample that shows the problem.
    pub line: u64,
    /// The family it belongs to.
    pub family: String,
    /// What is wrong, as a kind.
    pub kind: ProblemKind,
    /// What is wrong, for people (values in backticks).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ({})", self.line, self.message, self.kind.as_str())
    }
}

/// A series identity: sample name, sorted labels, timestamp.
type SeriesKey<'e> = (&'e str, Vec<(&'e str, &'e str)>, Option<i64>);

/// Every problem in `expo`, in family order.
pub fn validate(expo: &Exposition<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    // Sized up front: growing it re-hashes every key (SipHash over the labels) at each doubling,
    // which cost opsg-scrape more than the inserts themselves.
    let samples = expo.families.iter().map(|f| f.samples.len()).sum();
    let mut seen: HashMap<SeriesKey<'_>, u32> = HashMap::with_capacity(samples);
    for fam in &expo.families {
        for s in &fam.samples {
            let mut labels: Vec<(&str, &str)> =
                s.labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref())).collect();
            labels.sort_unstable();
            if let Some(first) = seen.insert((s.name.as_ref(), labels, s.timestamp_ms), s.line) {
                out.push(Problem {
                    line: u64::from(s.line),
                    family: fam.name.to_string(),
                    kind: ProblemKind::DuplicateSeries,
                    message: format!("series `{}` repeats the one on line {first}", series_text(s)),
                });
            }
        }
        if !matches!(fam.kind, MetricKind::Histogram | MetricKind::GaugeHistogram) {
            continue;
        }
        for series in histogram_series(fam) {
            let line = u64::from(series.line);
            let what = if series.labels.is_empty() {
                format!("`{}`", fam.name)
            } else {
                let l: Vec<String> =
                    series.labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
                format!("`{}{{{}}}`", fam.name, l.join(","))
            };
            if series.buckets.is_empty() {
                continue;
            }
            let mut buckets = series.buckets.clone();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let inf = buckets.iter().rev().find(|b| b.0 == f64::INFINITY).map(|b| b.1);
            if inf.is_none() {
                out.push(Problem {
                    line,
                    family: fam.name.to_string(),
                    kind: ProblemKind::HistogramMissingInf,
                    message: format!("histogram {what} has no `le=\"+Inf\"` bucket"),
                });
            }
            if let Some(w) = buckets.windows(2).find(|w| w[1].1 < w[0].1) {
                out.push(Problem {
                    line,
                    family: fam.name.to_string(),
                    kind: ProblemKind::HistogramNonMonotonic,
                    message: format!(
                        "histogram {what} is not cumulative: bucket `le={}` has {} but `le={}` has {}",
                        w[1].0, w[1].1, w[0].0, w[0].1
                    ),
                });
            }
            if let (Some(inf), Some(count)) = (inf, series.count)
                && inf != count
                && !(inf.is_nan() && count.is_nan())
            {
                out.push(Problem {
                    line,
                    family: fam.name.to_string(),
                    kind: ProblemKind::HistogramCountMismatch,
                    message: format!(
                        "histogram {what}: `_count` is {count} but the `+Inf` bucket is {inf}"
                    ),
                });
            }
        }
    }
    out
}

fn series_text(s: &crate::model::Sample<'_>) -> String {
    if s.labels.is_empty() {
        return s.name.to_string();
    }
    let l: Vec<String> = s.labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    format!("{}{{{}}}", s.name, l.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, ParseOptions, parse};

    fn problems(input: &str) -> Vec<Problem> {
        validate(&parse(input.as_bytes(), &ParseOptions::new(Format::PrometheusText)).unwrap())
    }

    #[test]
    fn duplicate_series_regardless_of_label_order() {
        let p = problems("a{x=\"1\",y=\"2\"} 1\nb 2\na{y=\"2\",x=\"1\"} 3\na{x=\"1\",y=\"3\"} 4\n");
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].kind, p[0].line), (ProblemKind::DuplicateSeries, 3));
        assert!(p[0].message.contains("line 1"), "{}", p[0]);
        // Same series at different timestamps is not a duplicate.
        assert!(problems("a 1 1000\na 2 2000\n").is_empty());
    }

    #[test]
    fn histogram_problems() {
        let h = "# TYPE h histogram\nh_bucket{p=\"a\",le=\"1\"} 5\nh_bucket{p=\"a\",le=\"2\"} 3\nh_bucket{p=\"a\",le=\"+Inf\"} 6\nh_count{p=\"a\"} 7\nh_bucket{p=\"b\",le=\"1\"} 1\nh_count{p=\"b\"} 1\n";
        let p = problems(h);
        let kinds: Vec<(ProblemKind, u64)> = p.iter().map(|p| (p.kind, p.line)).collect();
        assert_eq!(
            kinds,
            [
                (ProblemKind::HistogramNonMonotonic, 2),
                (ProblemKind::HistogramCountMismatch, 2),
                (ProblemKind::HistogramMissingInf, 6),
            ]
        );
        assert!(p[2].message.contains("h{p=\"b\"}"), "{}", p[2]);
    }

    #[test]
    fn a_clean_histogram_has_no_problem() {
        let h = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
        assert!(problems(h).is_empty());
    }
}

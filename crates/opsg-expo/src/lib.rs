//! Prometheus text 0.0.4 and OpenMetrics 1.0 exposition parser, with the PromQL helpers the
//! triage stage needs.
//!
//! ```
//! use opsg_expo::{parse, ParseOptions, Format};
//! let body = b"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 3\n";
//! let expo = parse(body, &ParseOptions::new(Format::PrometheusText)).unwrap();
//! assert_eq!(expo.families[0].samples[0].value, 3.0);
//! ```

mod detect;
mod error;
mod line;
mod model;
mod parse;
mod promql;
mod selector;
mod series;
mod validate;

pub use detect::detect_format;
pub use error::ParseError;
pub use model::{
    Exemplar, Exposition, Format, Label, MetricFamily, MetricKind, ParseOptions, Sample,
};
pub use parse::{
    FamilyInfo, FamilyMeta, MAX_LINE_BYTES, ParseSummary, StreamError, parse, parse_reader,
    parse_with,
};
pub use promql::{extrapolated_increase, extrapolated_rate, histogram_quantile, increase, rate};
pub use selector::{MatchOp, Matcher, Pattern, Selector};
pub use series::{HistogramSeries, SeriesLabels, SummarySeries, histogram_series, summary_series};
pub use validate::{Problem, ProblemKind, validate};

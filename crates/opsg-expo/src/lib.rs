//! Prometheus text 0.0.4 and OpenMetrics 1.0 exposition parser, with the PromQL helpers the
//! triage stage needs. No dependencies outside `std`.
//!
//! ```
//! use opsg_expo::{parse, Format, ParseOptions, histogram_series};
//! let body = b"# TYPE vllm:e2e_request_latency_seconds histogram
//! vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"1.0\"} 6
//! vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"5.0\"} 10
//! vllm:e2e_request_latency_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 10
//! vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 10
//! ";
//! let expo = parse(body, &ParseOptions::new(Format::PrometheusText)).unwrap();
//! let family = expo.family("vllm:e2e_request_latency_seconds").unwrap();
//! let series = &histogram_series(family)[0];
//! assert_eq!(series.label("model_name"), Some("m"));
//! assert_eq!(series.quantile(0.5), 1.0 * 5.0 / 6.0); // linear inside (0, 1.0]
//! ```
//!
//! # Entry points
//! - [`parse`]: the whole exposition as [`Exposition`]; names and label values borrow from the
//!   input (`Cow::Borrowed`) unless an escape had to be decoded.
//! - [`parse_with`]: the same engine, each sample handed to a callback (nothing collected).
//! - [`parse_reader`]: from any `io::Read` through a 256 KiB buffer: memory stays bounded
//!   whatever the payload size. [`ParseOptions`] caps bytes, samples and stored diagnostics.
//! - [`validate`]: duplicate series, non-cumulative histograms, missing `+Inf`, `_count`
//!   mismatch — legal to write, wrong to trust, reported per line.
//! - [`histogram_quantile`], [`increase`], [`rate`], [`extrapolated_increase`],
//!   [`extrapolated_rate`]: PromQL arithmetic; [`Selector`]: `name{a="b",c!~"x|y.*"}` matching.
//!
//! # Errors
//! Strict mode returns the first problem as a [`ParseError`] with a 1-based line and byte column
//! (`line:column: message`). Lenient mode returns everything that parsed plus one diagnostic per
//! problem: a syntax error drops its line; a rule violation (say a negative counter) keeps the
//! sample. Invalid UTF-8 is an error at the offending byte. No input makes the parser panic (the
//! fuzz target in `fuzz/` and the seeded mutation test check it).
//!
//! # Behaviour where the Prometheus parsers disagree
//! Text 0.0.4 follows prometheus/common `expfmt` (promtool, client libraries) except where the
//! Prometheus server's own scrape parser is more useful; OpenMetrics follows the OpenMetrics
//! conformance suite (every case of it is a test).
//!
//! | topic | text 0.0.4 | OpenMetrics 1.0 |
//! |---|---|---|
//! | final newline | optional (server parser; real captures lack it) | input must end with `# EOF` (optional final `\n`); nothing after it |
//! | blank lines, leading blanks | ignored | errors |
//! | comments | any `#` line; `# HELP`/`# TYPE` without a name are ignored | only `# HELP `, `# TYPE `, `# UNIT `, `# EOF` |
//! | blanks inside `{}` | allowed | none allowed |
//! | trailing comma in labels | allowed | error (conformance) |
//! | missing comma between labels | error (expfmt; the server parser's acceptance is called unintended in its test) | error |
//! | `}` directly followed by the value | allowed | error (one space) |
//! | floats | decimal, `NaN`, `±Inf` (any case); `1_2`, `0x1p-3`, `0b1`, `0o1` rejected | same |
//! | timestamps | integer milliseconds; float → error | float seconds → milliseconds (rounded); `NaN`/`Inf` → error |
//! | label value escapes | `\\`, `\"`, `\n`; any other → error (expfmt) | same three decoded, others kept verbatim |
//! | HELP escapes | `\\`, `\n`, `\"` decoded, others kept verbatim (server parser) | same |
//! | HELP without text | ignored (not a HELP) | empty HELP = absent |
//! | second HELP/TYPE, TYPE after samples | error (expfmt) | error |
//! | a family split over the input | merged (expfmt) | error (interleaving); lenient merges |
//! | TYPE keywords | `counter gauge histogram gaugehistogram gauge_histogram summary untyped` | `counter gauge histogram gaugehistogram summary info stateset unknown` |
//! | duplicate label name, `__name__` label | error | error |
//! | quoted UTF-8 names `{"my.metric","a.b"="c"}` | accepted, anywhere in the braces | accepted |
//! | `le` / `quantile` | must parse as floats in histograms/summaries; kept as written (no `1` → `1.0` rewrite) | plus OM rules: `le` canonical `+Inf`, quantile in [0, 1] |
//! | negative histogram counts | error (expfmt) | error; plus the conformance histogram rules (cumulative, `+Inf`, `_count` = `+Inf`, `_sum`/`_count` pairs, no `_sum` with negative buckets) |
//! | exemplars | not part of the format (error) | on counter `_total` and histogram `_bucket` only, ≤ 128 characters of labels |
//! | `_created` | an ordinary sample of its own family | a sample of its counter/histogram/summary family |
//! | NUL bytes | data inside label values and HELP | same |
//! | families with metadata and no samples | kept (expfmt drops them) | kept |
//! | CR before LF | tolerated | error |
//!
//! In lenient OpenMetrics mode the spellings Prometheus' own parser accepts (exemplars on
//! `_count`/`_sum`, a bare counter or info name, `_count` on a gauge histogram) are attached to
//! their family and reported. So are samples written with prometheus_client's default
//! `escaping=underscores` (0.26 writes `# TYPE vllm:x counter` then `vllm_x_total ...`, which
//! its own parser rejects): ask vLLM for `application/openmetrics-text; version=1.0.0;
//! escaping=allow-utf-8`, or for text 0.0.4, to get conformant output.
//!
//! [`detect_format`] trusts a `Content-Type` naming a text format and otherwise sniffs a final
//! `# EOF`. Protobuf is not supported (ask for text or OpenMetrics in `Accept`).

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
pub use promql::{
    extrapolated_increase, extrapolated_rate, histogram_quantile, increase, quantile, rate,
};
pub use selector::{MatchOp, Matcher, Pattern, Selector};
pub use series::{HistogramSeries, SeriesLabels, SummarySeries, histogram_series, summary_series};
pub use validate::{Problem, ProblemKind, validate};

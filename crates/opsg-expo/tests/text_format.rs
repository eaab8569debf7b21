//! Text format 0.0.4: every scenario of prometheus/common `expfmt` (text_parse_test.go,
//! decode_test.go) and prometheus/prometheus `PromParser` (promparse_test.go) listed in the
//! project's exposition edge-case reference, plus the choices made where those parsers disagree.

mod common;

use std::borrow::Cow;

use common::*;
use opsg_expo::MetricKind;

// ---- expfmt testTextParse (valid scenarios) ----

#[test]
fn expfmt_0_only_blank_lines() {
    assert!(text_ok("\n\n").families.is_empty());
}

#[test]
fn expfmt_1_minimal_case() {
    let e = text_ok(
        "\nminimal_metric 1.234\nanother_metric -3e3 103948\n# Even that:\nno_labels{} 3\n# HELP line for non-existing metric will be ignored.\n",
    );
    let m = find(&e, "minimal_metric", &[]);
    assert_eq!(m.value, 1.234);
    assert_eq!(m.timestamp_ms, None);
    let a = find(&e, "another_metric", &[]);
    assert_eq!((a.value, a.timestamp_ms), (-3000.0, Some(103948)));
    assert_eq!(find(&e, "no_labels", &[]).value, 3.0);
    assert!(e.families.iter().all(|f| f.kind == MetricKind::Unknown));
    // The HELP names a family `line` with no samples: kept as metadata (expfmt drops it).
    let line = e.family("line").expect("metadata-only family kept");
    assert!(line.samples.is_empty());
    assert_eq!(line.help.as_deref(), Some("for non-existing metric will be ignored."));
}

#[test]
fn expfmt_2_counters_gauges_docstrings_whitespace_escapes() {
    let e = text_ok(concat!(
        "\n# A normal comment.\n#\n# TYPE name counter\n",
        "name{labelname=\"val1\",basename=\"basevalue\"} NaN\n",
        "name {labelname=\"val2\",basename=\"base\\\"v\\\\al\\nue\"} 0.23 1234567890\n",
        "# HELP name two-line\\n doc  str\\\\ing\n\n",
        " # HELP  name2  \tdoc str\"ing 2\n",
        "  #    TYPE    name2 gauge\n",
        "name2{labelname=\"val2\"\t,basename   =   \"basevalue2\"\t\t} +Inf 54321\n",
        "name2{ labelname = \"val1\" , }-Inf\n",
    ));
    let name = e.family("name").unwrap();
    assert_eq!(name.kind, MetricKind::Counter);
    assert_eq!(name.help.as_deref(), Some("two-line\n doc  str\\ing"), "HELP after samples");
    assert!(find(&e, "name", &[("labelname", "val1"), ("basename", "basevalue")]).value.is_nan());
    let s = find(&e, "name", &[("labelname", "val2"), ("basename", "base\"v\\al\nue")]);
    assert_eq!((s.value, s.timestamp_ms), (0.23, Some(1234567890)));
    assert!(matches!(s.labels[1].1, Cow::Owned(_)), "unescaped value owns its text");
    assert!(matches!(s.labels[0].1, Cow::Borrowed("val2")), "plain value borrows the input");
    let name2 = e.family("name2").unwrap();
    assert_eq!(name2.kind, MetricKind::Gauge);
    assert_eq!(name2.help.as_deref(), Some("doc str\"ing 2"));
    let p = find(&e, "name2", &[("labelname", "val2"), ("basename", "basevalue2")]);
    assert_eq!((p.value, p.timestamp_ms), (f64::INFINITY, Some(54321)));
    assert_eq!(find(&e, "name2", &[("labelname", "val1")]).value, f64::NEG_INFINITY);
}

#[test]
fn expfmt_3_the_evil_summary() {
    let e = text_ok(concat!(
        "\n# TYPE my_summary summary\n",
        "my_summary{n1=\"val1\",quantile=\"0.5\"} 110\n",
        "decoy -1 -2\n",
        "my_summary{n1=\"val1\",quantile=\"0.9\"} 140 1\n",
        "my_summary_count{n1=\"val1\"} 42\n",
        "# Latest timestamp wins in case of a summary.\n",
        "my_summary_sum{n1=\"val1\"} 4711 2\n",
        "fake_sum{n1=\"val1\"} 2001\n",
        "# TYPE another_summary summary\n",
        "another_summary_count{n2=\"val2\",n1=\"val1\"} 20\n",
        "my_summary_count{n2=\"val2\",n1=\"val1\"} 5 5\n",
        "another_summary{n1=\"val1\",n2=\"val2\",quantile=\".3\"} -1.2\n",
        "my_summary_sum{n1=\"val2\"} 08 15\n",
        "my_summary{n1=\"val3\", quantile=\"0.2\"} 4711\n",
        "  my_summary{n1=\"val1\",n2=\"val2\",quantile=\"-12.34\",} NaN\n",
        "# some\n# funny comments\n# HELP\n# HELP\n# HELP my_summary\n# HELP my_summary\n",
    ));
    let s = e.family("my_summary").unwrap();
    assert_eq!(s.kind, MetricKind::Summary);
    assert_eq!(s.help, None, "HELP without text is ignored");
    assert_eq!(s.samples.len(), 8, "scattered lines regrouped into the summary");
    assert_eq!(find(&e, "my_summary_count", &[("n1", "val1")]).value, 42.0);
    let sum = find(&e, "my_summary_sum", &[("n1", "val1")]);
    assert_eq!((sum.value, sum.timestamp_ms), (4711.0, Some(2)));
    assert_eq!(
        find(&e, "my_summary", &[("n1", "val1"), ("quantile", "0.9")]).timestamp_ms,
        Some(1)
    );
    let s2 = find(&e, "my_summary_sum", &[("n1", "val2")]);
    assert_eq!((s2.value, s2.timestamp_ms), (8.0, Some(15)));
    assert!(
        find(&e, "my_summary", &[("n1", "val1"), ("n2", "val2"), ("quantile", "-12.34")])
            .value
            .is_nan()
    );
    let decoy = find(&e, "decoy", &[]);
    assert_eq!((decoy.value, decoy.timestamp_ms), (-1.0, Some(-2)));
    assert_eq!(e.family("decoy").unwrap().kind, MetricKind::Unknown);
    assert_eq!(e.family("fake_sum").unwrap().kind, MetricKind::Unknown);
    assert_eq!(e.family("another_summary").unwrap().samples.len(), 2);
}

const HISTOGRAM: &str = "\n# HELP request_duration_microseconds The response latency.\n# TYPE request_duration_microseconds histogram\nrequest_duration_microseconds_bucket{le=\"100\"} 123\nrequest_duration_microseconds_bucket{le=\"120\"} 412\nrequest_duration_microseconds_bucket{le=\"144\"} 592\nrequest_duration_microseconds_bucket{le=\"172.8\"} 1524\nrequest_duration_microseconds_bucket{le=\"+Inf\"} 2693\nrequest_duration_microseconds_sum 1.7560473e+06\nrequest_duration_microseconds_count 2693\n";

#[test]
fn expfmt_4_the_histogram() {
    let e = text_ok(HISTOGRAM);
    let f = &e.families[0];
    assert_eq!((f.name.as_ref(), f.kind), ("request_duration_microseconds", MetricKind::Histogram));
    assert_eq!(f.help.as_deref(), Some("The response latency."));
    let les: Vec<&str> = f.samples.iter().filter_map(|s| s.label("le")).collect();
    assert_eq!(les, ["100", "120", "144", "172.8", "+Inf"]);
    assert_eq!(find(&e, "request_duration_microseconds_sum", &[]).value, 1756047.3);
    assert_eq!(find(&e, "request_duration_microseconds_count", &[]).value, 2693.0);
}

#[test]
fn expfmt_5_to_11_quoted_utf8_names() {
    let e = text_ok(
        "\n# HELP \"my.noncompliant.metric\" help text\n# TYPE \"my.noncompliant.metric\" counter\n{\"my.noncompliant.metric\",\"label.name\"=\"value\"} 1\n",
    );
    let f = &e.families[0];
    assert_eq!((f.name.as_ref(), f.kind), ("my.noncompliant.metric", MetricKind::Counter));
    assert_eq!(f.samples[0].label("label.name"), Some("value"));

    let e = text_ok(
        "\n# HELP \"name.with.dots\" boring help\n# TYPE \"name.with.dots\" counter\n{\"name.with.dots\",labelname=\"val1\",basename=\"basevalue\"} 42.0\n{\"name.with.dots\",labelname=\"val2\",basename=\"basevalue\"} 0.23 1234567890\n",
    );
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].samples[1].timestamp_ms, Some(1234567890));

    // 7: leading tabs everywhere, no labels.
    let e = text_ok(
        "\n\t\t\t\t# HELP \"name.with.dots\" boring help\n\t\t\t\t# TYPE \"name.with.dots\" counter\n\t\t\t\t{\"name.with.dots\"} 42.0\n\t\t\t\t{\"name.with.dots\"} 0.23 1234567890\n\t\t\t\t",
    );
    assert_eq!(e.families[0].samples.len(), 2);
    assert!(e.families[0].samples[0].labels.is_empty());

    // 8: escapes in HELP, names and values; non-ASCII values.
    let e = text_ok(
        "# HELP \"gauge.name\" gauge\\ndoc\\nstr\\\"ing\n# TYPE \"gauge.name\" gauge\n{\"gauge.name\",\"name.1\"=\"val with\\nnew line\",\"name*2\"=\"val with \\\\backslash and \\\"quotes\\\"\"} +Inf\n{\"gauge.name\",\"name.1\"=\"Björn\",\"name*2\"=\"佖佥\"} 3.14e+42\n",
    );
    let f = &e.families[0];
    assert_eq!(f.help.as_deref(), Some("gauge\ndoc\nstr\"ing"));
    assert_eq!(f.samples[0].label("name*2"), Some("val with \\backslash and \"quotes\""));
    assert_eq!(f.samples[1].label("name.1"), Some("Björn"));
    assert_eq!(f.samples[1].value, 3.14e42);

    // 9: escapes inside quoted metric and label names.
    let e = text_ok(
        "\n# HELP \"my\\\"noncompliant\\nmetric\\\\\" help text\n# TYPE \"my\\\"noncompliant\\nmetric\\\\\" counter\n{\"my\\\"noncompliant\\nmetric\\\\\",\"label\\\"name\\n\"=\"value\"} 1\n",
    );
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].name, "my\"noncompliant\nmetric\\");
    assert_eq!(e.families[0].kind, MetricKind::Counter);
    assert_eq!(e.families[0].samples[0].label("label\"name\n"), Some("value"));

    // 10: the quoted name need not come first.
    let e = text_ok(
        "\n# HELP \"my.noncompliant.metric\" help text\n# TYPE \"my.noncompliant.metric\" counter\n{labelname=\"value\", \"my.noncompliant.metric\"} 1\n",
    );
    assert_eq!(e.families[0].samples[0].name, "my.noncompliant.metric");
    assert_eq!(e.families[0].samples[0].label("labelname"), Some("value"));

    // 11
    let e = text_ok("\n{\"name.1\"} 1\n{\"name.2\"} 1\n{\"name.3\"} 1\n");
    let names: Vec<&str> = e.families.iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(names, ["name.1", "name.2", "name.3"]);
}

#[test]
fn expfmt_12_to_17_float_and_gauge_histograms() {
    // 12: float counts everywhere.
    let input =
        HISTOGRAM.replace("} 123\n", "} 123.5\n").replace("_count 2693\n", "_count 2693.9\n");
    let e = text_ok(&input);
    assert_eq!(find(&e, "request_duration_microseconds_bucket", &[("le", "100")]).value, 123.5);
    assert_eq!(find(&e, "request_duration_microseconds_count", &[]).value, 2693.9);
    // 13: no +Inf bucket, float count: valid text 0.0.4 (validate() reports the missing +Inf).
    let no_inf = HISTOGRAM
        .replace("request_duration_microseconds_bucket{le=\"+Inf\"} 2693\n", "")
        .replace("_count 2693\n", "_count 2693.9\n");
    let e = text_ok(&no_inf);
    assert_eq!(e.families[0].samples.len(), 6);
    // 14: one float bucket.
    let input = HISTOGRAM.replace("} 1524\n", "} 1524.8\n");
    let e = text_ok(&input);
    assert_eq!(find(&e, "request_duration_microseconds_bucket", &[("le", "172.8")]).value, 1524.8);
    // 15-17: gauge histograms, both spellings.
    for spelling in ["gaugehistogram", "gauge_histogram"] {
        let input = HISTOGRAM.replace("histogram\n", &format!("{spelling}\n"));
        let e = text_ok(&input);
        assert_eq!(e.families[0].kind, MetricKind::GaugeHistogram, "{spelling}");
        assert_eq!(e.families[0].samples.len(), 7);
    }
}

// ---- expfmt testTextParseError ----

/// (input, expected line, a fragment of our message) for each expfmt error scenario.
const EXPFMT_ERRORS: &[(&str, u64, &str)] = &[
    // 0: expfmt requires a final newline; we follow PromParser instead (see
    // `choice_no_final_newline_needed`), so scenario 0 is not an error here.
    ("metric{label=\"\\t\"} 3.14", 1, "invalid escape sequence"),
    ("\nmetric{label=\"new\nline\"} 3.14\n", 2, "unterminated label value"),
    ("metric{@=\"bla\"} 3.14", 1, "expected label name"),
    ("metric{__name__=\"bla\"} 3.14", 1, "`__name__` is reserved"),
    ("metric{label+=\"bla\"} 3.14", 1, "expected `=` after label name"),
    ("metric{label=bla} 3.14", 1, "expected `\"` at start of value"),
    (
        "\n# TYPE metric summary\nmetric{quantile=\"bla\"} 3.14\n",
        3,
        "expected float as value for `quantile` label",
    ),
    ("metric{label=\"bla\"+} 3.14", 1, "expected `,` or `}`"),
    ("metric{label=\"bla\"} 3.14 2.72\n", 1, "expected integer"),
    ("metric{label=\"bla\"} 3.14 2 3\n", 1, "spurious string after timestamp"),
    ("metric{label=\"bla\"} blubb\n", 1, "expected float as value"),
    ("\n# HELP metric one\n# HELP metric two\n", 3, "second HELP line for metric"),
    (
        "\n# TYPE metric counter\n# TYPE metric untyped\n",
        3,
        "second TYPE line for metric `metric`, or TYPE reported after samples",
    ),
    (
        "\nmetric 4.12\n# TYPE metric counter\n",
        3,
        "second TYPE line for metric `metric`, or TYPE reported after samples",
    ),
    ("\n# TYPE metric bla\n", 2, "unknown metric type"),
    ("\n# TYPE met-ric\n", 2, "invalid metric name in comment"),
    ("@invalidmetric{label=\"bla\"} 3.14 2", 1, "invalid metric name"),
    ("{label=\"bla\"} 3.14 2", 1, "invalid metric name"),
    (
        "\n# TYPE metric histogram\nmetric_bucket{le=\"bla\"} 3.14\n",
        3,
        "expected float as value for `le` label",
    ),
    ("foo 1_2\n", 1, "expected float as value"),
    ("foo 0x1p-3\n", 1, "expected float as value"),
    ("foo 0x1P-3\n", 1, "expected float as value"),
    ("foo 0B1\n", 1, "expected float as value"),
    ("foo 0O1\n", 1, "expected float as value"),
    ("foo 0X1\n", 1, "expected float as value"),
    ("foo 0x1\n", 1, "expected float as value"),
    ("foo 0b1\n", 1, "expected float as value"),
    ("foo 0o1\n", 1, "expected float as value"),
    (
        "\n# TYPE metric histogram\nmetric_bucket{le=\"0x1p-3\"} 3.14\n",
        3,
        "expected float as value for `le` label",
    ),
    (
        "\n# TYPE metric summary\nmetric{quantile=\"0x1p-3\"} 3.14\n",
        3,
        "expected float as value for `quantile` label",
    ),
    ("metric{label=\"bla\",label=\"bla\"} 3.14", 1, "duplicate label name"),
    ("{\"one.name\",\"another.name\"} 3.14", 1, "multiple metric names"),
    ("{\"a\\xc5z\",label=\"bla\"} 3.14", 1, "invalid escape sequence"),
    ("{\"metric.name\".label=\"bla\"} 3.14", 1, "expected `,` or `}`"),
    (
        "\n# TYPE \"metric.name\\t\" counter\n{\"metric.name\\t\",label=\"bla\"} 3.14\n",
        2,
        "invalid escape sequence",
    ),
    (
        "\n# TYPE \"metric\nname\" counter\n{\"metric\nname\",label=\"bla\"} 3.14\n",
        2,
        "unterminated quoted metric name",
    ),
    ("\n{\"metric.name\",\"new\nline\"=\"bla\"} 3.14\n", 2, "unterminated quoted name"),
    ("{} 3.14", 1, "metric name not set"),
];

#[test]
fn expfmt_error_scenarios_fail_on_the_same_line() {
    for &(input, line, fragment) in EXPFMT_ERRORS {
        let e = text_err(input);
        assert_eq!(e.line, line, "{input:?}: {e}");
        assert!(e.message.contains(fragment), "{input:?}: got `{e}`, want `{fragment}`");
        assert!(e.column >= 1);
    }
}

#[test]
fn expfmt_20_invalid_utf8_in_label_value_has_line_and_column() {
    let e = parse_bytes(b"metric{l=\"\xbd\"} 3.14\n").unwrap_err();
    assert_eq!((e.line, e.column), (1, 11));
    assert!(e.message.contains("UTF-8"));
    let e = parse_bytes(b"ok 1\nfine{a=\"b\"} 2\nbad{a=\"x\xff\xfe\"} 3\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 9));
}

fn parse_bytes(b: &[u8]) -> Result<opsg_expo::Exposition<'_>, opsg_expo::ParseError> {
    opsg_expo::parse(b, &opsg_expo::ParseOptions::default())
}

#[test]
fn expfmt_41_42_dotted_names_parse_under_utf8_validation() {
    let e = text_ok("{\"metric.name\",foo=\"bla\"} 3.14\n");
    assert_eq!(e.families[0].name, "metric.name");
    let e = text_ok("metric_name{\"foo\"=\"bar\", \"dotted.label\"=\"bla\"} 3.14\n");
    assert_eq!(e.families[0].samples[0].label("dotted.label"), Some("bla"));
}

#[test]
fn expfmt_43_to_46_negative_histogram_counts() {
    let neg_count = HISTOGRAM.replace("_count 2693\n", "_count -2693\n");
    let e = text_err(&neg_count);
    assert_eq!(e.line, 10);
    assert!(e.message.contains("negative count for histogram `request_duration_microseconds`"));
    let e = text_err(&HISTOGRAM.replace("_count 2693\n", "_count -2693.123\n"));
    assert_eq!(e.line, 10);
    let e = text_err(&HISTOGRAM.replace("} 412\n", "} -412\n"));
    assert_eq!(e.line, 5);
    assert!(e.message.contains("negative bucket population"));
    let e = text_err(&HISTOGRAM.replace("} 412\n", "} -412.456\n"));
    assert_eq!(e.line, 5);
}

// ---- choices where the parsers disagree (text 0.0.4) ----

#[test]
fn choice_no_final_newline_needed() {
    // expfmt scenario 0 rejects this; Prometheus' own scrape parser (PromParser) accepts it, and
    // real captures (the vLLM and dcgm fixtures) end without a newline. We accept it.
    let e = text_ok("\nbla 3.14\nblubber 42");
    assert_eq!(find(&e, "blubber", &[]).value, 42.0);
}

#[test]
fn choice_missing_comma_between_labels_is_rejected() {
    // PromParser accepts `{ quantile = "2.0" a = "b" }` (its test calls that unintended);
    // expfmt and the OpenMetrics grammar reject it. So do we.
    let e = text_err("go_gc_duration_seconds { quantile = \"2.0\" a = \"b\" } 8.3835e-05\n");
    assert!(e.message.contains("expected `,` or `}`"), "{e}");
}

#[test]
fn choice_unknown_help_escapes_are_kept_verbatim() {
    // PromParser and OpenMetrics keep `\x` as written; expfmt would fail. We keep it.
    let e = text_ok("# HELP m a\\tb \\\\ \\n end\nm 1\n");
    assert_eq!(e.families[0].help.as_deref(), Some("a\\tb \\ \n end"));
}

#[test]
fn choice_split_families_are_merged() {
    // expfmt decode_test: mf2 before and after mf1 is one family.
    let e = text_ok(
        "\n# TYPE mf2 counter\nmf2 3\nmf1{label=\"value1\"} -3.14 123456\nmf1{label=\"value2\"} 42\nmf2 4\n",
    );
    assert_eq!(e.families.len(), 2);
    let mf2 = e.family("mf2").unwrap();
    assert_eq!(mf2.kind, MetricKind::Counter);
    assert_eq!(mf2.samples.iter().map(|s| s.value).collect::<Vec<_>>(), [3.0, 4.0]);
    assert_eq!(find(&e, "mf1", &[("label", "value1")]).timestamp_ms, Some(123456));
    assert_eq!(find(&e, "mf1", &[("label", "value2")]).timestamp_ms, None);
}

#[test]
fn choice_crlf_line_endings_are_tolerated_in_text() {
    let e = text_ok("# TYPE a gauge\r\na{b=\"c\"} 1 5\r\n");
    assert_eq!(find(&e, "a", &[("b", "c")]).timestamp_ms, Some(5));
}

#[test]
fn choice_exemplars_are_not_text_format() {
    let e = text_err("a_total 1 # {trace_id=\"x\"} 1\n");
    assert!(e.message.contains("timestamp"), "{e}");
}

#[test]
fn choice_le_and_quantile_values_are_kept_as_written() {
    // PromParser rewrites le="1" to "1.0"; we keep the exposition's text (helpers parse floats).
    let e = text_ok(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\ntestmetric{le=\"10\"} 1\n",
    );
    assert_eq!(e.families[0].samples[0].label("le"), Some("1"));
    assert_eq!(find(&e, "testmetric", &[("le", "10")]).value, 1.0);
}

// ---- PromParser (prometheus/prometheus model/textparse/promparse_test.go) ----

const PROM_PARSE_INPUT: &str = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds{quantile="0.8", a="b"} 8.3835e-05
go_gc_duration_seconds{ quantile="0.9", a="b"} 8.3835e-05
# HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.
# TYPE prometheus_http_request_duration_seconds histogram
prometheus_http_request_duration_seconds_bucket{handler="/",le="1"} 423
prometheus_http_request_duration_seconds_bucket{handler="/",le="2"} 1423
prometheus_http_request_duration_seconds_bucket{handler="/",le="+Inf"} 1423
prometheus_http_request_duration_seconds_sum{handler="/"} 2000
prometheus_http_request_duration_seconds_count{handler="/"} 1423
# Hrandom comment starting with prefix of HELP
#
wind_speed{A="2",c="3"} 12345
# comment with escaped \n newline
# comment with escaped \ escape character
# HELP nohelp1
# HELP nohelp2 
go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile= "1.0", a= "b", } 8.3835e-05
go_gc_duration_seconds { quantile = "1.0", a = "b" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"}	1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  	123123
# TYPE some_counter_total counter
# HELP some_counter_total Help after type.
some_counter_total 12
# HELP nohelp3
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
testmetric{le="10"} 1
# HELP type_and_unit_test1 Type specified in metadata overrides.
# TYPE type_and_unit_test1 gauge
type_and_unit_test1{__type__="counter"} 123
# HELP type_and_unit_test2 Type specified in label.
type_and_unit_test2{__type__="counter"} 123"#;

#[test]
fn promparse_input_parses() {
    // The missing-comma line of the original input is covered by
    // `choice_missing_comma_between_labels_is_rejected`; everything else parses.
    let mut input = PROM_PARSE_INPUT.to_string();
    input += "\n# HELP metric foo\x00bar";
    input += "\nnull_byte_metric{a=\"abc\x00\"} 1";
    let e = text_ok(&input);
    let gc = e.family("go_gc_duration_seconds").unwrap();
    assert_eq!(gc.kind, MetricKind::Summary);
    assert_eq!(gc.samples.len(), 10, "split family merged, _count included");
    assert_eq!(find(&e, "go_gc_duration_seconds_count", &[]).value, 99.0);
    assert_eq!(
        find(&e, "go_gc_duration_seconds", &[("quantile", "0.25")]).value,
        7.424100000000001e-05
    );
    let h = e.family("prometheus_http_request_duration_seconds").unwrap();
    assert_eq!((h.kind, h.samples.len()), (MetricKind::Histogram, 5));
    assert_eq!(find(&e, "wind_speed", &[("A", "2"), ("c", "3")]).value, 12345.0);
    assert_eq!(find(&e, "some:aggregate:rate5m", &[("a_b", "c")]).value, 1.0);
    let g = find(&e, "go_goroutines", &[]);
    assert_eq!((g.value, g.timestamp_ms), (33.0, Some(123123)));
    let c = e.family("some_counter_total").unwrap();
    assert_eq!((c.kind, c.help.as_deref()), (MetricKind::Counter, Some("Help after type.")));
    assert_eq!(find(&e, "_metric_starting_with_underscore", &[]).value, 1.0);
    assert_eq!(find(&e, "testmetric", &[("label", "\"bar\"")]).value, 1.0);
    assert_eq!(find(&e, "testmetric", &[("_label_starting_with_underscore", "foo")]).value, 1.0);
    assert_eq!(e.family("type_and_unit_test1").unwrap().kind, MetricKind::Gauge);
    assert_eq!(e.family("metric").unwrap().help.as_deref(), Some("foo\x00bar"));
    assert_eq!(find(&e, "null_byte_metric", &[("a", "abc\x00")]).value, 1.0);
    assert_eq!(e.family("nohelp1").map(|f| f.help.clone()), None, "`# HELP nohelp1` is ignored");
}

#[test]
fn promparse_utf8_input_parses() {
    let input = r#"# HELP "go.gc_duration_seconds" A summary of the GC invocation durations.
# 	TYPE "go.gc_duration_seconds" summary
{"go.gc_duration_seconds",quantile="0"} 4.9351e-05
{"go.gc_duration_seconds",quantile="0.25",} 7.424100000000001e-05
{"go.gc_duration_seconds",quantile="0.5",a="b"} 8.3835e-05
{"go.gc_duration_seconds",quantile="0.8", a="b"} 8.3835e-05
{"go.gc_duration_seconds", quantile="0.9", a="b"} 8.3835e-05
{"go.gc_duration_seconds", quantile="1.0", a="b" } 8.3835e-05
{ "go.gc_duration_seconds", quantile="1.0", a="b" } 8.3835e-05
{ "go.gc_duration_seconds", quantile= "1.0", a= "b", } 8.3835e-05
{ "go.gc_duration_seconds", quantile = "1.0", a = "b" } 8.3835e-05
{"go.gc_duration_seconds_count"} 99
{"Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}","strange©™\n'quoted' \"name\""="6"} 10.0"#;
    let e = text_ok(input);
    let gc = e.family("go.gc_duration_seconds").unwrap();
    assert_eq!((gc.kind, gc.samples.len()), (MetricKind::Summary, 10));
    let weird = "Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}";
    assert_eq!(find(&e, weird, &[("strange©™\n'quoted' \"name\"", "6")]).value, 10.0);
}

#[test]
fn promparse_errors() {
    let cases: &[&str] = &[
        "a",
        "a{b='c'} 1\n",
        "a{b=\n",
        "a{b=\"\u{ff}\" 1\n",
        "{\"a\", \"b = \"c\"}",
        "{\"a\",b\\nc=\"d\"} 1",
        "a true\n",
        "something_weird{problem=\"",
        "empty_label_name{=\"\"} 0",
        "{A}0",
        "foo 1_2\n",
        "foo 0x1p-3\n",
        "foo 0x1P-3\n",
        "foo 0 1_2\n",
        "{a=\"ok\"} 1",
        "# TYPE #\n#EOF\n",
        "# HELP #\n#EOF\n",
        "{A} 0\n",
        "a{b=\x00\"ssss\"} 1\n",
        "a{b=\"\x00",
        "a{b\x00=\"hiih\"}\t1",
        "a\x00{b=\"ddd\"} 1",
        "a 0 1\x00",
    ];
    for input in cases {
        let e = text_err(input);
        assert_eq!(e.line, 1, "{input:?}: {e}");
        assert!(e.column as usize <= input.len() + 1, "{input:?}: column {}", e.column);
    }
    let b = opsg_expo::parse(b"a{\xff=\"foo\"} 1\n", &Default::default()).unwrap_err();
    assert_eq!((b.line, b.column), (1, 3));
    let b = opsg_expo::parse(b"a{b=\"\xff\"} 1\n", &Default::default()).unwrap_err();
    assert_eq!((b.line, b.column), (1, 6));
}

#[test]
fn promparse_null_bytes_inside_values_are_data() {
    for input in ["null_byte_metric{a=\"abc\x00\"} 1", "a{b=\"\x00ss\"} 1\n", "a{b=\"\x00\"} 1\n"] {
        let e = text_ok(input);
        assert!(e.samples().next().unwrap().labels[0].1.contains('\x00'));
    }
}

// ---- decode_test content negotiation and leading tabs ----

#[test]
fn decode_content_type_and_leading_tabs() {
    use opsg_expo::{Format, detect_format};
    assert_eq!(detect_format(Some("text/plain; version=0.0.4"), b""), Format::PrometheusText);
    assert_eq!(detect_format(Some("text/plain"), b""), Format::PrometheusText);
    let e = text_ok("\n\t# TYPE foo gauge\n\tfoo 0\n\t");
    assert_eq!((e.families[0].kind, e.families[0].samples[0].value), (MetricKind::Gauge, 0.0));
}

#[test]
fn lenient_text_keeps_good_lines_and_reports_bad_ones() {
    let input = "good 1\nbad{ 2\n# TYPE h histogram\nh_bucket{le=\"x\"} 1\nalso_good 3\n";
    let e =
        opsg_expo::parse(input.as_bytes(), &opsg_expo::ParseOptions::default().lenient()).unwrap();
    assert_eq!(find(&e, "good", &[]).value, 1.0);
    assert_eq!(find(&e, "also_good", &[]).value, 3.0);
    let lines: Vec<u64> = e.diagnostics.iter().map(|d| d.line).collect();
    assert_eq!(lines, [2, 4]);
    // The rule violation (bad `le`) keeps its sample; the syntax error drops its line.
    assert_eq!(e.family("h").unwrap().samples.len(), 1);
    assert!(e.family("bad").is_none());
}

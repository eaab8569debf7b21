//! OpenMetrics as Prometheus' own `OpenMetricsParser` tests it (openmetricsparse_test.go).
//!
//! Where that parser is laxer than the OpenMetrics conformance suite (exemplars on `_count` and
//! `_sum`, a bare info name, interleaved families, `_count` without `_sum`), strict mode follows
//! the suite and lenient mode keeps every sample, reporting each deviation as a diagnostic. Both
//! are asserted here.

mod common;

use common::*;
use opsg_expo::{Format, MetricKind, ParseOptions, parse};

const OM_PARSE_INPUT: &str = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 1
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_count 1 # {id="gaugehistogram-count-test",xx="yy"} 4 123.123
# TYPE smr_seconds summary
smr_seconds_count 2.0 # {id="summary-count-test"} 1 123.321
smr_seconds_sum 42.0 # {id="summary-sum-test"} 1 123.321
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
ss{A="a"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# HELP foo Counter with and without labels to certify ST is parsed for both cases
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5
foo_created{a="b"} 1520872607.123
foo_total{le="c"} 21.0
foo_created{le="c"} 1520872621.123
foo_total{le="1"} 10.0
# HELP bar Summary with ST at the end, making sure we find ST even if it's multiple lines a far
# TYPE bar summary
bar_count 17.0
bar_sum 324789.3
bar{quantile="0.95"} 123.7
bar{quantile="0.99"} 150.0
bar_created 1520872608.124
# HELP baz Histogram with the same objective as above's summary
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_count 17
baz_sum 324789.3
baz_created 1520872609.125
# HELP fizz_created Gauge which shouldn't be parsed as ST
# TYPE fizz_created gauge
fizz_created 17.0
# HELP something Histogram with _created between buckets and summary
# TYPE something histogram
something_count 18
something_sum 324789.4
something_created 1520430001
something_bucket{le="0.0"} 1
something_bucket{le="1"} 2
something_bucket{le="+Inf"} 18
# HELP yum Summary with _created between sum and quantiles
# TYPE yum summary
yum_count 20
yum_sum 324789.5
yum_created 1520430003
yum{quantile="0.95"} 123.7
yum{quantile="0.99"} 150.0
# HELP foobar Summary with _created as the first line
# TYPE foobar summary
foobar_count 21
foobar_created 1520430004
foobar_sum 324789.6
foobar{quantile="0.95"} 123.8
foobar{quantile="0.99"} 150.1
# HELP nansum Summary with NaN value
# TYPE nansum summary
nansum_count 0
nansum_sum 0.0
nansum{quantile="0.95"} nan
nansum{quantile="0.99"} NaN"#;

fn full_om_input() -> String {
    let mut s = OM_PARSE_INPUT.to_string();
    s += "\n# HELP metric foo\x00bar";
    s += "\nnull_byte_metric{a=\"abc\x00\"} 1";
    s += "\n# EOF\n";
    s
}

#[test]
fn prometheus_om_input_lenient_keeps_every_sample() {
    let input = full_om_input();
    let e = parse(input.as_bytes(), &ParseOptions::new(Format::OpenMetrics).lenient()).unwrap();
    let sample_lines = input.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(e.samples().count(), sample_lines, "no sample dropped");

    let gc = e.family("go_gc_duration_seconds").unwrap();
    assert_eq!((gc.kind, gc.unit.as_deref()), (MetricKind::Summary, Some("seconds")));
    assert_eq!(gc.samples.len(), 5, "the interleaved samples are merged back");
    assert_eq!(e.family("nohelp1").unwrap().help, None, "empty HELP is absent");
    assert_eq!(e.family("help2").unwrap().help.as_deref(), Some("escape \\ \n \\ \" \\x chars"));
    assert_eq!(e.family("nounit").unwrap().unit, None);
    assert_eq!(find(&e, "go_goroutines", &[]).timestamp_ms, Some(123_123));
    let hhh = find(&e, "hhh_bucket", &[("le", "+Inf")]);
    let ex = hhh.exemplar.as_ref().unwrap();
    assert_eq!(
        (ex.labels[0].1.as_ref(), ex.value, ex.timestamp_ms),
        ("histogram-bucket-test", 4.0, None)
    );
    let ggh = find(&e, "ggh_bucket", &[("le", "+Inf")]).exemplar.as_ref().unwrap();
    assert_eq!((ggh.labels.len(), ggh.timestamp_ms), (2, Some(123_123)));
    let foo = find(&e, "foo_total", &[]);
    assert_eq!(foo.timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(foo.exemplar.as_ref().unwrap().value, 5.0);
    assert_eq!(find(&e, "foo_created", &[]).value, 1_520_872_607.123);
    assert_eq!(find(&e, "foo_total", &[("le", "c")]).value, 21.0, "le not special on a counter");
    assert_eq!(e.family("fizz_created").unwrap().kind, MetricKind::Gauge);
    assert!(find(&e, "nansum", &[("quantile", "0.95")]).value.is_nan());
    assert_eq!(e.family("ss").unwrap().kind, MetricKind::StateSet);
    assert_eq!(e.family("ii").unwrap().samples.len(), 1, "bare info name attached to `ii`");
    assert_eq!(e.family("metric").unwrap().help.as_deref(), Some("foo\x00bar"));
    assert_eq!(find(&e, "null_byte_metric", &[("a", "abc\x00")]).value, 1.0);

    // Each deviation from the conformance rules is reported on its own line.
    let mut lines: Vec<u64> = e.diagnostics.iter().map(|d| d.line).collect();
    lines.dedup();
    let line_of = |needle: &str| input.lines().position(|l| l == needle).unwrap() as u64 + 1;
    for needle in [
        "go_gc_duration_seconds{quantile=\"1.0\",a=\"b\"} 8.3835e-05", // interleaved family
        "hhh_count 1 # {id=\"histogram-count-test\"} 4",               // exemplar on _count
        "smr_seconds_sum 42.0 # {id=\"summary-sum-test\"} 1 123.321",  // exemplar on _sum
        "ii{foo=\"bar\"} 1",                                           // bare info name
        "ss{A=\"a\"} 0",                                               // stateset label missing
    ] {
        assert!(
            lines.contains(&line_of(needle)),
            "no diagnostic for `{needle}`: {:?}",
            e.diagnostics
        );
    }
}

#[test]
fn prometheus_om_input_strict_stops_at_the_first_deviation() {
    let input = full_om_input();
    let e = om_err(&input);
    // Line 10 re-opens go_gc_duration_seconds after three metadata-only families.
    assert_eq!(e.line, 10, "{e}");
    assert!(e.message.contains("interleaved"), "{e}");
}

#[test]
fn prometheus_om_utf8_input() {
    // Quoted names; the repeated `http.status` series and exemplars on `_count` are lenient-only.
    let input = r#"# HELP "go.gc_duration_seconds" A summary of the GC invocation durations.
# TYPE "go.gc_duration_seconds" summary
# UNIT "go.gc_duration_seconds" seconds
{"go.gc_duration_seconds",quantile="0"} 4.9351e-05
{"go.gc_duration_seconds",quantile="0.25"} 7.424100000000001e-05
{"go.gc_duration_seconds_created"} 1520872607.123
{"go.gc_duration_seconds",quantile="0.5",a="b"} 8.3835e-05
{"http.status",q="0.9",a="b"} 8.3835e-05
{"http.status",q="0.9",a="b"} 8.3835e-05
{q="0.9","http.status",a="b"} 8.3835e-05
{"go.gc_duration_seconds_sum"} 0.004304266
{"Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}","strange©™\n'quoted' \"name\""="6"} 10.0
quotedexemplar_count 1 # {"id.thing"="histogram-count-test"} 4
quotedexemplar2_count 1 # {"id.thing"="histogram-count-test",other="hello"} 4
# EOF
"#;
    let e = parse(input.as_bytes(), &ParseOptions::new(Format::OpenMetrics).lenient()).unwrap();
    assert_eq!(e.samples().count(), 11);
    let gc = e.family("go.gc_duration_seconds").unwrap();
    assert_eq!((gc.kind, gc.unit.as_deref()), (MetricKind::Summary, Some("seconds")));
    assert_eq!(e.family("http.status").unwrap().samples.len(), 3);
    let q = find(&e, "quotedexemplar2_count", &[]).exemplar.as_ref().unwrap();
    assert_eq!(q.labels[0], ("id.thing".into(), "histogram-count-test".into()));
    assert!(!e.diagnostics.is_empty());
}

/// TestOpenMetricsParseErrors: every input must fail (line 1 unless noted).
#[test]
fn prometheus_om_parse_errors() {
    let cases: &[(&str, u64)] = &[
        ("", 1),
        ("\n", 1),
        ("metric", 1),
        ("metric 1", 2),
        ("metric 1\n", 2),
        // No TYPE: an unknown family, which may not carry an exemplar.
        ("metric_total 1 # {aa=\"bb\"} 4", 1),
        ("a\n#EOF\n", 1),
        ("\n\n#EOF\n", 1),
        (" a 1\n#EOF\n", 1),
        ("9\n#EOF\n", 1),
        ("# TYPE u untyped\n#EOF\n", 1),
        ("# TYPE c counter \n#EOF\n", 1),
        ("#  TYPE c counter\n#EOF\n", 1),
        ("# TYPE \n#EOF\n", 1),
        ("# TYPE m\n#EOF\n", 1),
        ("# UNIT metric suffix\n#EOF\n", 1),
        ("# UNIT metricsuffix suffix\n#EOF\n", 1),
        ("# UNIT m suffix\n#EOF\n", 1),
        ("# UNIT \n#EOF\n", 1),
        ("# UNIT m\n#EOF\n", 1),
        ("# HELP \n#EOF\n", 1),
        ("# HELP m\n#EOF\n", 1),
        ("a\t1\n#EOF\n", 1),
        ("a 1\t2\n#EOF\n", 1),
        ("a 1 2 \n#EOF\n", 1),
        ("a 1 2 #\n#EOF\n", 1),
        ("a 1 1z\n#EOF\n", 1),
        (" # EOF\n", 1),
        ("# EOF\na 1", 2),
        ("# EOF\n\n", 2),
        ("# EOFa 1", 1),
        ("#\tTYPE c counter\n", 1),
        ("# TYPE c  counter\n", 1),
        ("a 1 1 1\n# EOF\n", 1),
        ("a{b='c'} 1\n# EOF\n", 1),
        ("a{,b=\"c\"} 1\n# EOF\n", 1),
        ("a{b=\"c\"d=\"e\"} 1\n# EOF\n", 1),
        ("a{b=\"c\",,d=\"e\"} 1\n# EOF\n", 1),
        ("a{b=\n# EOF\n", 1),
        ("{\"a\",\"b = \"c\"}\n# EOF\n", 1),
        ("{\"a\",b\\nc=\"d\"} 1\n# EOF\n", 1),
        ("a true\n", 1),
        ("something_weird{problem=\"\n# EOF\n", 1),
        ("empty_label_name{=\"\"} 0\n# EOF\n", 1),
        ("{A}0\n# EOF\n", 1),
        ("foo 1_2\n\n# EOF\n", 1),
        ("foo 0x1p-3\n\n# EOF\n", 1),
        ("foo 0x1P-3\n\n# EOF\n", 1),
        ("foo 0 1_2\n\n# EOF\n", 1),
        ("custom_metric_total 1 # {aa=bb}\n# EOF\n", 1),
        ("custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n", 1),
        ("custom_metric_total 1 # {aa=\"bb\"}", 1),
        ("custom_metric_total 1 # {bb}", 1),
        ("custom_metric_total 1 # {bb, a=\"dd\"}", 1),
        ("custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1", 1),
        ("custom_metric_total 1 # {aa=\"bb\"} 1_2", 1),
        ("custom_metric_total 1 # {aa=\"bb\"} 0x1p-3", 1),
        ("custom_metric_total 1 # {aa=\"bb\"} true", 1),
        ("custom_metric_total 1 # {aa=\"bb\",cc=}", 1),
        ("{b=\"c\",} 1", 1),
        ("a 1 NaN", 1),
        ("a 1 -Inf", 1),
        ("a 1 Inf", 1),
        ("# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN", 2),
        ("# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 -Inf", 2),
        // TestOMNullByteHandling failures.
        ("a{b=\x00\"ssss\"} 1\n# EOF\n", 1),
        ("a{b=\"\x00", 1),
        ("a{b\x00=\"hiih\"}\t1", 1),
        ("a\x00{b=\"ddd\"} 1", 1),
        ("#", 1),
        ("# H", 1),
        ("custom_metric_total 1 # {b=\x00\"ssss\"} 1\n", 1),
        ("custom_metric_total 1 # {b=\"\x00ss\"} 1\n", 1),
    ];
    for &(input, line) in cases {
        let e = om_err(input);
        assert_eq!(e.line, line, "{input:?}: {e}");
    }
    let b =
        parse(b"a{\xff=\"foo\"} 1\n# EOF\n", &ParseOptions::new(Format::OpenMetrics)).unwrap_err();
    assert_eq!((b.line, b.column), (1, 3));
    let b =
        parse(b"a{b=\"\xff\"} 1\n# EOF\n", &ParseOptions::new(Format::OpenMetrics)).unwrap_err();
    assert_eq!((b.line, b.column), (1, 6));
}

#[test]
fn prometheus_om_eof_and_null_bytes_that_parse() {
    assert!(om_ok("# EOF").families.is_empty());
    assert!(om_ok("# EOF\n").families.is_empty());
    for input in [
        "null_byte_metric{a=\"abc\x00\"} 1\n# EOF\n",
        "a{b=\"\x00ss\"} 1\n# EOF\n",
        "a{b=\"\x00\"} 1\n# EOF\n",
        "a{b=\"\x00\"} 1\n# EOF",
    ] {
        let e = om_ok(input);
        assert!(e.samples().next().unwrap().labels[0].1.contains('\x00'), "{input:?}");
    }
}

#[test]
fn prometheus_st_known_limitations_parse() {
    // TestSTParseFailures: `_created` first. Prometheus fails to associate it; we keep
    // `_created` as an ordinary sample of its family, so there is nothing to lose.
    let input = "# HELP thing histogram with _created as first line\n# TYPE thing histogram\nthing_created 1520872607.123\nthing_count 17\nthing_sum 324789.3\nthing_bucket{le=\"0.0\"} 0\nthing_bucket{le=\"+Inf\"} 17\n# HELP thing_c counter with _created as first line\n# TYPE thing_c counter\nthing_c_created 1520872607.123\nthing_c_total 14123.232\n# EOF\n";
    let e = om_ok(input);
    assert_eq!(e.family("thing").unwrap().samples.len(), 5);
    assert_eq!(find(&e, "thing_c_created", &[]).value, 1_520_872_607.123);
    // "maybe counter with no meta": without metadata each name is its own unknown family, so
    // `foo_total` coming back after `foo_created` interleaves families. Prometheus accepts it;
    // the conformance rules reject it in strict mode, and lenient mode merges and reports.
    let e = om_err(
        "foo_total 17.0\nfoo_created 1520872607.123\nfoo_total{a=\"b\"} 17.0\nfoo_created{a=\"b\"} 1520872608.123\n# EOF\n",
    );
    assert_eq!(e.line, 3);
    let lenient = parse(
        b"foo_total 17.0\nfoo_created 1520872607.123\nfoo_total{a=\"b\"} 17.0\n# EOF\n",
        &ParseOptions::new(Format::OpenMetrics).lenient(),
    )
    .unwrap();
    assert_eq!(lenient.family("foo_total").unwrap().samples.len(), 2);
    assert_eq!(lenient.diagnostics.len(), 1);
    assert!(lenient.families.iter().all(|f| f.kind == MetricKind::Unknown));
}

#[test]
fn om_escaping_case_values() {
    // Conformance `escaping`: `\"`, `\n`, `\\` are decoded; `\z` and `\t` (HELP) stay verbatim.
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openmetrics_parsers/escaping/metrics"
    ))
    .unwrap();
    let e = parse(&b, &ParseOptions::new(Format::OpenMetrics)).unwrap();
    let f = e.family("a").unwrap();
    assert_eq!(f.help.as_deref(), Some("he\n\\l\\tp"));
    let values: Vec<&str> = f.samples.iter().map(|s| s.label("foo").unwrap()).collect();
    assert_eq!(values, ["b\"a\nr", "b\\a\\z", "b\"a\nr # ", "b\\a\\z # "]);
}

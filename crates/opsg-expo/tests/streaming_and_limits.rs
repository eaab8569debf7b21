//! The streaming entry points and the resource limits: a payload of any size is parsed in
//! bounded memory, and the caps stop a runaway target with a located error.

mod common;

use std::io::{self, Read};

use opsg_expo::{Format, MetricKind, ParseOptions, StreamError, parse, parse_reader, parse_with};

const SMALL: &str = "# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nup{job=\"a\"} 1\n";

#[test]
fn parse_with_borrows_and_reports_families() {
    let mut kept = Vec::new();
    let summary = parse_with(SMALL.as_bytes(), &ParseOptions::default(), |meta, s| {
        if meta.kind == MetricKind::Histogram {
            assert_eq!(meta.name, "h");
            assert_eq!(meta.help, Some("Latency."));
        }
        kept.push((meta.index, s));
    })
    .unwrap();
    assert_eq!(summary.samples, 5);
    assert_eq!(summary.lines, 7);
    assert_eq!(summary.bytes, SMALL.len() as u64);
    assert_eq!(summary.families.len(), 2);
    assert_eq!(summary.families[0].samples, 4);
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), [0, 0, 0, 0, 1]);
    // The samples still borrow from SMALL.
    assert!(matches!(kept[4].1.name, std::borrow::Cow::Borrowed("up")));
}

/// A reader producing `lines` copies of one line without holding them in memory.
struct Endless {
    line: &'static [u8],
    left: u64,
    pos: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            let take = (self.line.len() - self.pos).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&self.line[self.pos..self.pos + take]);
            n += take;
            self.pos += take;
            if self.pos == self.line.len() {
                self.pos = 0;
                self.left -= 1;
            }
        }
        Ok(n)
    }
}

#[test]
fn parse_reader_streams_a_large_payload_without_holding_it() {
    // A million lines (~56 MB) go through a 256 KiB buffer; only counts are kept.
    let line: &'static [u8] = b"vllm:num_requests_waiting{model_name=\"m\",engine=\"0\"} 3\n";
    let n = 1_000_000u64;
    let mut sum = 0.0;
    let summary =
        parse_reader(Endless { line, left: n, pos: 0 }, &ParseOptions::default(), |_, s| {
            sum += s.value
        })
        .unwrap();
    assert_eq!((summary.samples, summary.lines), (n, n));
    assert_eq!(summary.bytes, n * line.len() as u64);
    assert_eq!(sum, 3.0 * n as f64);
}

#[test]
fn max_bytes_stops_a_huge_payload_at_the_cap() {
    let line: &'static [u8] = b"a_metric{x=\"y\"} 1\n"; // 18 bytes
    let opts = ParseOptions { max_bytes: Some(1000), ..Default::default() };
    let err = parse_reader(Endless { line, left: u64::MAX, pos: 0 }, &opts, |_, _| {}).unwrap_err();
    let StreamError::Parse(e) = err else { panic!("not a parse error: {err}") };
    // Byte 1000 is the 11th byte of line 56 (55 full lines are 990 bytes).
    assert_eq!((e.line, e.column), (56, 11));
    assert!(e.message.contains("1000-byte limit"), "{e}");
    // Same rule for a slice.
    let big = line.repeat(100);
    let e = parse(&big, &opts).unwrap_err();
    assert_eq!((e.line, e.column), (56, 11));
    // Under the cap nothing changes.
    let ok = ParseOptions { max_bytes: Some(big.len() as u64), ..Default::default() };
    assert_eq!(parse(&big, &ok).unwrap().samples().count(), 100);
}

#[test]
fn max_samples_and_max_diagnostics() {
    let body = "a 1\nb 2\nc 3\nd 4\n";
    let opts = ParseOptions { max_samples: Some(3), ..Default::default() };
    let e = parse(body.as_bytes(), &opts).unwrap_err();
    assert_eq!(e.line, 4);
    let garbage = "!\n".repeat(50);
    let opts = ParseOptions { lenient: true, max_diagnostics: 10, ..Default::default() };
    let mut seen = 0;
    let s = parse_with(garbage.as_bytes(), &opts, |_, _| seen += 1).unwrap();
    assert_eq!((s.diagnostics.len(), s.diagnostics_dropped, seen), (10, 40, 0));
    assert_eq!(s.diagnostics[9].line, 10);
}

#[test]
fn lenient_invalid_utf8_drops_only_its_line() {
    let body = b"a 1\nb{x=\"\xc3\x28\"} 2\nc 3\n";
    let e = parse(body, &ParseOptions::default().lenient()).unwrap();
    assert_eq!(e.samples().map(|s| s.name.to_string()).collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!((e.diagnostics[0].line, e.diagnostics[0].column), (2, 6));
    // Strict mode: the same error.
    let err = parse(body, &ParseOptions::default()).unwrap_err();
    assert_eq!((err.line, err.column), (2, 6));
}

#[test]
fn reader_errors_surface_as_io() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer went away"))
        }
    }
    let err = parse_reader(Broken, &ParseOptions::default(), |_, _| {}).unwrap_err();
    assert!(matches!(err, StreamError::Io(ref e) if e.kind() == io::ErrorKind::ConnectionReset));
    assert!(err.to_string().contains("peer went away"));
}

#[test]
fn openmetrics_stream_needs_its_eof() {
    let opts = ParseOptions::new(Format::OpenMetrics);
    let err = parse_reader(&b"a 1\n"[..], &opts, |_, _| {}).unwrap_err();
    let StreamError::Parse(e) = err else { panic!() };
    assert_eq!(e.line, 2);
    assert!(e.message.contains("# EOF"));
    let ok = parse_reader(&b"a 1\n# EOF\n"[..], &opts, |_, _| {}).unwrap();
    assert_eq!(ok.samples, 1);
}

#[test]
fn a_line_longer_than_the_read_buffer_still_parses() {
    let long_value = "x".repeat(600_000);
    let body = format!("a{{v=\"{long_value}\"}} 1\nb 2\n");
    let mut lens = Vec::new();
    let s = parse_reader(body.as_bytes(), &ParseOptions::default(), |_, s| {
        lens.push(s.labels.first().map_or(0, |l| l.1.len()))
    })
    .unwrap();
    assert_eq!(s.samples, 2);
    assert_eq!(lens, [600_000, 0]);
}

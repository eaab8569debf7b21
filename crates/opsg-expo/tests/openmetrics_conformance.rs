//! The whole OpenMetrics conformance suite (OpenObservability/OpenMetrics
//! `tests/testdata/parsers`, copied to `tests/fixtures/openmetrics_parsers/`): every case must
//! parse or be rejected exactly as its `test.json` says, in OpenMetrics mode.

use std::fs;
use std::path::PathBuf;

use opsg_expo::{Format, ParseOptions, parse};

fn cases() -> Vec<(String, Vec<u8>, bool)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openmetrics_parsers");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("conformance fixtures present") {
        let path = entry.expect("dir entry").path();
        let meta = fs::read_to_string(path.join("test.json")).expect("test.json");
        let compact: String = meta.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(compact.contains(r#""type":"text""#), "{}: not a text case", path.display());
        let should_parse = if compact.contains(r#""shouldParse":true"#) {
            true
        } else {
            assert!(compact.contains(r#""shouldParse":false"#), "{}", path.display());
            false
        };
        let metrics = fs::read(path.join("metrics")).expect("metrics file");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        out.push((name, metrics, should_parse));
    }
    out.sort();
    out
}

#[test]
fn the_suite_has_all_211_cases() {
    let all = cases();
    assert_eq!(all.len(), 211);
    assert_eq!(all.iter().filter(|c| c.2).count(), 44);
}

#[test]
fn strict_openmetrics_honours_every_should_parse() {
    let opts = ParseOptions::new(Format::OpenMetrics);
    let mut wrong = Vec::new();
    for (name, metrics, should_parse) in cases() {
        let got = parse(&metrics, &opts);
        match (should_parse, &got) {
            (true, Err(e)) => wrong.push(format!("{name}: should parse, got error {e}")),
            (false, Ok(_)) => wrong.push(format!("{name}: should be rejected, parsed")),
            _ => {}
        }
        if let Err(e) = got {
            // The error points inside the input (or one line past it for a missing `# EOF`).
            let lines = metrics.split(|&b| b == b'\n').count() as u64;
            assert!(e.line >= 1 && e.line <= lines + 1, "{name}: line {} of {lines}", e.line);
            assert!(e.column >= 1, "{name}: column {}", e.column);
        }
    }
    assert!(wrong.is_empty(), "{} cases wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn lenient_openmetrics_reports_instead_of_failing() {
    let opts = ParseOptions::new(Format::OpenMetrics).lenient();
    for (name, metrics, should_parse) in cases() {
        let expo = parse(&metrics, &opts).unwrap_or_else(|e| panic!("{name}: lenient failed: {e}"));
        if should_parse {
            assert!(expo.diagnostics.is_empty(), "{name}: {:?}", expo.diagnostics);
        } else {
            assert!(!expo.diagnostics.is_empty(), "{name}: no diagnostic in lenient mode");
        }
    }
}

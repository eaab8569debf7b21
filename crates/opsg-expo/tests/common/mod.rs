//! Helpers shared by the integration tests.
#![allow(dead_code)]

use opsg_expo::{Exposition, Format, ParseError, ParseOptions, Sample, parse};

pub fn text(input: &str) -> Result<Exposition<'_>, ParseError> {
    parse(input.as_bytes(), &ParseOptions::new(Format::PrometheusText))
}

pub fn om(input: &str) -> Result<Exposition<'_>, ParseError> {
    parse(input.as_bytes(), &ParseOptions::new(Format::OpenMetrics))
}

pub fn text_ok(input: &str) -> Exposition<'_> {
    text(input).unwrap_or_else(|e| panic!("should parse as text: {e}\n{input}"))
}

pub fn om_ok(input: &str) -> Exposition<'_> {
    om(input).unwrap_or_else(|e| panic!("should parse as OpenMetrics: {e}\n{input}"))
}

/// The error of a strict text parse that must fail.
pub fn text_err(input: &str) -> ParseError {
    match text(input) {
        Ok(e) => panic!("should fail as text, parsed {} families\n{input}", e.families.len()),
        Err(e) => e,
    }
}

pub fn om_err(input: &str) -> ParseError {
    match om(input) {
        Ok(e) => {
            panic!("should fail as OpenMetrics, parsed {} families\n{input}", e.families.len())
        }
        Err(e) => e,
    }
}

/// The sample with this name and exactly these labels (in any order).
pub fn find<'e, 'a>(
    expo: &'e Exposition<'a>,
    name: &str,
    labels: &[(&str, &str)],
) -> &'e Sample<'a> {
    expo.samples()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(n, v)| s.label(n) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

//! Fuzz target: any bytes, both formats, strict and lenient, whole-buffer and streaming. The
//! parser must not panic, must locate every error inside the input, and the streaming parse must
//! agree with the whole-buffer one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsg_expo::{Format, ParseOptions, parse, parse_reader, parse_with};

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count() as u64;
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        for lenient in [false, true] {
            let opts = ParseOptions { format, lenient, ..Default::default() };
            match parse(data, &opts) {
                Ok(expo) => {
                    for d in &expo.diagnostics {
                        assert!(d.line >= 1 && d.line <= lines + 1 && d.column >= 1);
                    }
                    for s in expo.samples() {
                        assert!(u64::from(s.line) >= 1 && u64::from(s.line) <= lines);
                    }
                }
                Err(e) => {
                    assert!(!lenient, "lenient mode has no fatal error without limits");
                    assert!(e.line >= 1 && e.line <= lines + 1 && e.column >= 1);
                }
            }
            let mut whole = Vec::new();
            let a = parse_with(data, &opts, |_, s| whole.push(s.into_owned()));
            let mut streamed = Vec::new();
            let b = parse_reader(data, &opts, |_, s| streamed.push(s.clone().into_owned()));
            assert_eq!(a.is_ok(), b.is_ok());
            if a.is_ok() {
                assert_eq!(format!("{whole:?}"), format!("{streamed:?}"));
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = opsg_expo::Selector::parse(text);
    }
});

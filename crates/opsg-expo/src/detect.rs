//! Choosing the grammar: from the HTTP `Content-Type` when there is one, else from the body.

use crate::model::Format;

/// The format of a `/metrics` body.
///
/// The `Content-Type` decides when it names a text format: `application/openmetrics-text` is
/// OpenMetrics, `text/plain` (any `version`) is text 0.0.4. Without a usable header (a file, stdin,
/// a server that sends `application/octet-stream`) the body decides: a body whose last non-blank
/// line is `# EOF` is OpenMetrics, anything else is text 0.0.4, the format every Prometheus
/// exporter serves when it was not asked for OpenMetrics.
pub fn detect_format(content_type: Option<&str>, body: &[u8]) -> Format {
    if let Some(ct) = content_type {
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            return Format::OpenMetrics;
        }
        if media.eq_ignore_ascii_case("text/plain") {
            return Format::PrometheusText;
        }
    }
    let mut end = body.len();
    while end > 0 && matches!(body[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let trimmed = &body[..end];
    let last_line = match trimmed.iter().rposition(|&b| b == b'\n') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    if last_line == b"# EOF" { Format::OpenMetrics } else { Format::PrometheusText }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_body() {
        let om = b"a 1\n# EOF\n";
        assert_eq!(detect_format(Some("text/plain; version=0.0.4"), om), Format::PrometheusText);
        assert_eq!(
            detect_format(
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                b"a 1\n"
            ),
            Format::OpenMetrics
        );
        assert_eq!(detect_format(Some("Application/OpenMetrics-Text"), b""), Format::OpenMetrics);
    }

    #[test]
    fn content_types_we_cannot_parse_fall_back_to_the_body() {
        // expfmt's negotiation table: protobuf is not ours to parse, and `version=0.0.3` is not
        // 0.0.4; in both cases the body decides (and text 0.0.4 is what such a server sends
        // when asked for text).
        let proto = "application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=\"delimited\"";
        assert_eq!(detect_format(Some(proto), b"a 1\n# EOF\n"), Format::OpenMetrics);
        assert_eq!(detect_format(Some(proto), b"a 1\n"), Format::PrometheusText);
        assert_eq!(
            detect_format(Some("text/plain; version=0.0.3"), b"a 1\n"),
            Format::PrometheusText
        );
    }

    #[test]
    fn body_sniffing_looks_for_a_final_eof_line() {
        assert_eq!(detect_format(None, b"a 1\n# EOF\n"), Format::OpenMetrics);
        assert_eq!(detect_format(None, b"a 1\n# EOF"), Format::OpenMetrics);
        assert_eq!(
            detect_format(Some("application/octet-stream"), b"# EOF\n\n"),
            Format::OpenMetrics
        );
        assert_eq!(detect_format(None, b"a 1\n"), Format::PrometheusText);
        assert_eq!(detect_format(None, b"# EOF is not last\na 1\n"), Format::PrometheusText);
        assert_eq!(detect_format(None, b""), Format::PrometheusText);
    }
}

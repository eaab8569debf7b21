//! The grammar of one line, in both formats: a sample, a metadata line, a comment or `# EOF`.
//!
//! This layer knows nothing about families; it turns one line (already known to be valid UTF-8,
//! without its `\n`) into a [`Line`] or a [`LineError`] with the byte offset of the problem.
//! Strings borrow from the line unless an escape had to be decoded.
//!
//! Where the Prometheus parsers disagree, text 0.0.4 follows `expfmt` (the client-side parser
//! behind promtool) and OpenMetrics follows the OpenMetrics conformance suite; the crate docs list
//! each choice.

use std::borrow::Cow;

use crate::model::{Exemplar, Format, Label, MetricKind, Sample};

/// A syntax problem at byte offset `at` (0-based) of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    pub at: usize,
    pub message: String,
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, LineError> {
    Err(LineError { at, message: message.into() })
}

/// What one line is.
#[derive(Debug, PartialEq)]
pub(crate) enum Line<'a> {
    /// Blank line (text 0.0.4 only; OpenMetrics forbids them).
    Blank,
    /// A comment, or a text 0.0.4 `# HELP`/`# TYPE` without a metric name (ignored, as expfmt does).
    Comment,
    /// `# HELP name text` (text unescaped; may be empty).
    Help { name: Cow<'a, str>, text: Cow<'a, str> },
    /// `# TYPE name kind`.
    Type { name: Cow<'a, str>, kind: MetricKind },
    /// `# UNIT name unit` (OpenMetrics only; unit may be empty).
    Unit { name: Cow<'a, str>, unit: &'a str },
    /// `# EOF` (OpenMetrics only).
    Eof,
    /// A sample line.
    Sample(Sample<'a>),
}

#[inline]
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Byte classes for the name scanners: one table lookup per byte instead of range compares.
const NAME_START: u8 = 1; // [a-zA-Z_:]
const NAME_CHAR: u8 = 2; // [a-zA-Z0-9_:]
const LABEL_START: u8 = 4; // [a-zA-Z_]
const LABEL_CHAR: u8 = 8; // [a-zA-Z0-9_]

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alpha = b.is_ascii_alphabetic();
        let digit = b.is_ascii_digit();
        let mut c = 0;
        if alpha || b == b'_' || b == b':' {
            c |= NAME_START | NAME_CHAR;
        }
        if digit {
            c |= NAME_CHAR | LABEL_CHAR;
        }
        if alpha || b == b'_' {
            c |= LABEL_START | LABEL_CHAR;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[inline]
fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & NAME_START != 0
}

#[inline]
fn is_name_char(b: u8) -> bool {
    CLASS[b as usize] & NAME_CHAR != 0
}

#[inline]
fn is_label_start(b: u8) -> bool {
    CLASS[b as usize] & LABEL_START != 0
}

#[inline]
fn is_label_char(b: u8) -> bool {
    CLASS[b as usize] & LABEL_CHAR != 0
}

/// Label-name equality with the cheap tests first (most names differ in length or first byte),
/// so the duplicate-label check does not call `memcmp` for every pair.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.as_bytes().first() == b.as_bytes().first()
        && bytes_eq(a.as_bytes(), b.as_bytes())
}

/// Byte-slice equality inlined eight bytes at a time: names here are short, and a `memcmp` call
/// per comparison showed up as the parser's single largest cost.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        if x != y {
            return false;
        }
        i += 8;
    }
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Position of the first `"` or `\\` in `b`, eight bytes at a time (label values are scanned
/// with this; most contain neither until their closing quote).
#[inline]
fn find_quote_or_backslash(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let v = u64::from_le_bytes(w);
        let q = v ^ QUOTE;
        let s = v ^ BACKSLASH;
        let found = (q.wrapping_sub(LO) & !q | s.wrapping_sub(LO) & !s) & HI;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
        i += 1;
    }
    i
}

/// A cursor over one line.
struct Cur<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    om: bool,
}

impl<'a> Cur<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// Text 0.0.4 allows spaces and tabs between tokens; OpenMetrics allows none.
    #[inline]
    fn skip_ws_text(&mut self) {
        if !self.om {
            while self.i < self.b.len() && is_ws(self.b[self.i]) {
                self.i += 1;
            }
        }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while self.i < self.b.len() && is_ws(self.b[self.i]) {
            self.i += 1;
        }
    }

    /// A legacy metric name `[a-zA-Z_:][a-zA-Z0-9_:]*`; empty when the next byte cannot start one.
    #[inline]
    fn metric_name(&mut self) -> &'a str {
        let start = self.i;
        if self.i < self.b.len() && is_name_start(self.b[self.i]) {
            self.i += 1;
            while self.i < self.b.len() && is_name_char(self.b[self.i]) {
                self.i += 1;
            }
        }
        &self.s[start..self.i]
    }

    /// A legacy label name `[a-zA-Z_][a-zA-Z0-9_]*`; empty when the next byte cannot start one.
    #[inline]
    fn label_name(&mut self) -> &'a str {
        let start = self.i;
        if self.i < self.b.len() && is_label_start(self.b[self.i]) {
            self.i += 1;
            while self.i < self.b.len() && is_label_char(self.b[self.i]) {
                self.i += 1;
            }
        }
        &self.s[start..self.i]
    }

    /// A double-quoted string starting at the cursor (which is on the `"`), unescaped.
    ///
    /// Both formats decode `\\`, `\"` and `\n`. Any other escape is an error in text 0.0.4 (as in
    /// expfmt) and kept verbatim in OpenMetrics (as the conformance suite's `escaping` case wants).
    fn quoted(&mut self, what: &str) -> Result<Cow<'a, str>, LineError> {
        let open = self.i;
        self.i += 1;
        let start = self.i;
        let b = self.b;
        self.i += find_quote_or_backslash(&b[self.i..]);
        if self.i >= b.len() {
            return err(open, format!("unterminated {what} (missing closing `\"`)"));
        }
        if b[self.i] == b'"' {
            let v = &self.s[start..self.i];
            self.i += 1;
            return Ok(Cow::Borrowed(v));
        }
        // Slow path: at least one escape.
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            if self.i >= b.len() {
                return err(open, format!("unterminated {what} (missing closing `\"`)"));
            }
            match b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    match b.get(self.i + 1) {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        None => {
                            return err(
                                open,
                                format!("unterminated {what} (missing closing `\"`)"),
                            );
                        }
                        Some(_) if self.om => {
                            // Kept verbatim: push the backslash, the escaped char follows as text.
                            out.push('\\');
                            self.i += 1;
                            continue;
                        }
                        Some(_) => {
                            let c = self.s[self.i + 1..].chars().next().unwrap_or('?');
                            return err(
                                self.i,
                                format!("invalid escape sequence `\\{c}` in {what}"),
                            );
                        }
                    }
                    self.i += 2;
                }
                _ => {
                    let run_start = self.i;
                    while self.i < b.len() && b[self.i] != b'"' && b[self.i] != b'\\' {
                        self.i += 1;
                    }
                    out.push_str(&self.s[run_start..self.i]);
                }
            }
        }
    }

    /// A metric name for a metadata line: legacy or quoted.
    fn meta_name(&mut self, keyword: &str) -> Result<Cow<'a, str>, LineError> {
        if self.peek() == Some(b'"') {
            return self.quoted("quoted metric name");
        }
        let at = self.i;
        let name = self.metric_name();
        if name.is_empty() {
            return err(at, format!("expected metric name after {keyword}"));
        }
        Ok(Cow::Borrowed(name))
    }

    /// The label set starting at `{`. Returns the labels and a quoted metric name found inside
    /// the braces (`{"my.metric",a="b"}`), when `allow_name`.
    fn label_set(
        &mut self,
        allow_name: bool,
        labels: &mut Vec<Label<'a>>,
    ) -> Result<Option<Cow<'a, str>>, LineError> {
        debug_assert_eq!(self.peek(), Some(b'{'));
        self.i += 1;
        let mut name: Option<Cow<'a, str>> = None;
        let mut first = true;
        loop {
            self.skip_ws_text();
            match self.peek() {
                None => return err(self.i, "unexpected end of line in label set (missing `}`)"),
                Some(b'}') if first || !self.om => {
                    self.i += 1;
                    return Ok(name);
                }
                _ => {}
            }
            let item_at = self.i;
            let lname: Cow<'a, str> = if self.peek() == Some(b'"') {
                let q = self.quoted("quoted name")?;
                self.skip_ws_text();
                if self.peek() != Some(b'=') {
                    if !allow_name {
                        return err(self.i, "expected `=` after label name");
                    }
                    if name.is_some() {
                        return err(item_at, "multiple metric names in label set");
                    }
                    name = Some(q);
                    first = false;
                    if self.after_label_item()? {
                        return Ok(name);
                    }
                    continue;
                }
                q
            } else {
                let n = self.label_name();
                if n.is_empty() {
                    return err(self.i, "expected label name");
                }
                Cow::Borrowed(n)
            };
            self.skip_ws_text();
            if self.peek() != Some(b'=') {
                return err(self.i, format!("expected `=` after label name `{lname}`"));
            }
            self.i += 1;
            self.skip_ws_text();
            if self.peek() != Some(b'"') {
                return err(self.i, format!("expected `\"` at start of value of label `{lname}`"));
            }
            let value = self.quoted("label value")?;
            if lname.starts_with("__") && lname == "__name__" {
                return err(item_at, "label name `__name__` is reserved");
            }
            if labels.iter().any(|(n, _)| same_name(n, &lname)) {
                return err(item_at, format!("duplicate label name `{lname}`"));
            }
            labels.push((lname, value));
            first = false;
            if self.after_label_item()? {
                return Ok(name);
            }
        }
    }

    /// After a label (or a quoted name inside braces): `,` (true = more) or `}` (false = done).
    /// Returns Ok(true) when the set is closed.
    #[inline]
    fn after_label_item(&mut self) -> Result<bool, LineError> {
        self.skip_ws_text();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(b'}') => {
                self.i += 1;
                Ok(true)
            }
            None => err(self.i, "unexpected end of line in label set (missing `}`)"),
            Some(_) => err(self.i, "expected `,` or `}` after label value"),
        }
    }

    /// The next token: bytes up to a space (or tab in text 0.0.4) or the end of the line.
    #[inline]
    fn token(&mut self) -> &'a str {
        let start = self.i;
        let b = self.b;
        if self.om {
            while self.i < b.len() && b[self.i] != b' ' {
                self.i += 1;
            }
        } else {
            while self.i < b.len() && !is_ws(b[self.i]) {
                self.i += 1;
            }
        }
        &self.s[start..self.i]
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` does for the Prometheus formats, minus the
/// Go-only syntaxes both Prometheus parsers reject (`1_2`, `0x1p-3`, `0b1`, `0o1`).
///
/// Accepted: decimal with optional sign, fraction and exponent; `NaN`, `Inf`, `+Inf`, `-Inf`,
/// `Infinity` in any letter case.
#[inline]
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    // Fast path for the common case: only digits, '.', sign, exponent.
    let first = b[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        let body = if first == b'-' || first == b'+' { &b[1..] } else { b };
        if body.first().is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
            if let Some(v) = fast_decimal(body) {
                return Some(if first == b'-' { -v } else { v });
            }
            if body
                .iter()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return s.parse::<f64>().ok();
            }
            return None;
        }
    }
    let (neg, word) = match first {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("infinity") {
        Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY })
    } else if word.eq_ignore_ascii_case("nan") && first != b'+' && first != b'-' {
        Some(f64::NAN)
    } else {
        None
    }
}

/// Exact powers of ten (every one up to 1e22 is representable in an f64).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for the values expositions are full of (`0.0`, `1423`, `27453.0`): a
/// plain decimal without exponent whose significant digits fit in 2^53 and whose fraction has
/// at most 22 digits is exactly `mantissa / 10^k`, one correctly rounded IEEE division, the same
/// result `str::parse` gives. Anything else returns `None` for the general parser.
#[inline]
fn fast_decimal(body: &[u8]) -> Option<f64> {
    let mut mant: u64 = 0;
    let mut significant = 0u32;
    let mut frac = 0u32;
    let mut any_digit = false;
    let mut dot = false;
    for &c in body {
        match c {
            b'0'..=b'9' => {
                any_digit = true;
                if mant != 0 || c != b'0' {
                    significant += 1;
                    if significant > 15 {
                        return None;
                    }
                }
                mant = mant * 10 + u64::from(c - b'0');
                if dot {
                    frac += 1;
                }
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if !any_digit || frac as usize >= POW10.len() {
        return None;
    }
    Some(mant as f64 / POW10[frac as usize])
}

/// A text 0.0.4 timestamp: a signed 64-bit integer of milliseconds.
fn parse_int_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = match b.first() {
        Some(b'-') | Some(b'+') => &b[1..],
        _ => b,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// An OpenMetrics timestamp: float seconds, finite, converted to milliseconds (rounded to the
/// nearest millisecond, saturating at the `i64` range).
fn parse_om_ts(s: &str) -> Result<i64, String> {
    let v = parse_float(s).ok_or_else(|| format!("invalid timestamp `{s}`"))?;
    if !v.is_finite() {
        return Err(format!("invalid timestamp `{s}` (must be finite)"));
    }
    Ok((v * 1000.0).round() as i64)
}

/// Parses one line (no `\n`; UTF-8 already checked). `line_no` is stored in samples.
pub(crate) fn parse_line<'a>(
    s: &'a str,
    format: Format,
    line_no: u32,
) -> Result<Line<'a>, LineError> {
    let om = format == Format::OpenMetrics;
    let mut c = Cur { s, b: s.as_bytes(), i: 0, om };
    if om {
        match c.peek() {
            None => return err(0, "blank line (OpenMetrics forbids them)"),
            Some(b'#') => return om_comment(s),
            Some(b) if is_name_start(b) || b == b'{' => {}
            Some(_) => return err(0, "expected a metric name, `{` or `#` at start of line"),
        }
    } else {
        c.skip_ws();
        match c.peek() {
            None => return Ok(Line::Blank),
            Some(b'#') => {
                c.i += 1;
                return text_comment(c);
            }
            _ => {}
        }
    }
    sample(c, line_no).map(Line::Sample)
}

/// Text 0.0.4 comments: `# HELP name text`, `# TYPE name type`, anything else is a comment.
fn text_comment(mut c: Cur<'_>) -> Result<Line<'_>, LineError> {
    c.skip_ws();
    let word = c.token();
    let is_help = word == "HELP";
    if !is_help && word != "TYPE" {
        return Ok(Line::Comment);
    }
    c.skip_ws();
    if c.at_end() {
        // `# HELP` / `# TYPE` alone: expfmt ignores it (scenario 3 of its tests).
        return Ok(Line::Comment);
    }
    let name_at = c.i;
    let name = if c.peek() == Some(b'"') {
        c.quoted("quoted metric name")?
    } else {
        let n = c.metric_name();
        if n.is_empty() || c.peek().is_some_and(|b| !is_ws(b)) {
            return err(name_at, "invalid metric name in comment");
        }
        Cow::Borrowed(n)
    };
    if c.peek().is_some_and(|b| !is_ws(b)) {
        return err(c.i, "expected whitespace after metric name in comment");
    }
    c.skip_ws();
    if is_help {
        let text = unescape_help(&c.s[c.i..]);
        return Ok(Line::Help { name, text });
    }
    let kind_at = c.i;
    let kind_word = c.token();
    let kind = match kind_word {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        "histogram" => MetricKind::Histogram,
        "gaugehistogram" | "gauge_histogram" => MetricKind::GaugeHistogram,
        "summary" => MetricKind::Summary,
        "untyped" => MetricKind::Unknown,
        "" => return err(kind_at, format!("expected metric type after `# TYPE {name}`")),
        other => return err(kind_at, format!("unknown metric type `{other}`")),
    };
    c.skip_ws();
    if !c.at_end() {
        return err(c.i, "unexpected text after metric type");
    }
    Ok(Line::Type { name, kind })
}

/// OpenMetrics allows exactly `# HELP `, `# TYPE `, `# UNIT ` and `# EOF`; no other comments.
fn om_comment(s: &str) -> Result<Line<'_>, LineError> {
    if s == "# EOF" {
        return Ok(Line::Eof);
    }
    let keyword = match s.get(..7) {
        Some("# HELP ") => "HELP",
        Some("# TYPE ") => "TYPE",
        Some("# UNIT ") => "UNIT",
        _ => {
            return err(
                0,
                "invalid line: OpenMetrics allows only `# HELP`, `# TYPE`, `# UNIT` and `# EOF` \
                 after `#`",
            );
        }
    };
    let mut c = Cur { s, b: s.as_bytes(), i: 7, om: true };
    let name = c.meta_name(keyword)?;
    match c.peek() {
        None => return err(c.i, format!("expected text in {keyword} after the metric name")),
        Some(b' ') => c.i += 1,
        Some(_) => return err(c.i, format!("expected a space after the metric name in {keyword}")),
    }
    let rest = &s[c.i..];
    match keyword {
        "HELP" => Ok(Line::Help { name, text: unescape_help(rest) }),
        "UNIT" => Ok(Line::Unit { name, unit: rest }),
        _ => {
            let kind = match rest {
                "counter" => MetricKind::Counter,
                "gauge" => MetricKind::Gauge,
                "histogram" => MetricKind::Histogram,
                "gaugehistogram" => MetricKind::GaugeHistogram,
                "summary" => MetricKind::Summary,
                "info" => MetricKind::Info,
                "stateset" => MetricKind::StateSet,
                "unknown" => MetricKind::Unknown,
                other => return err(c.i, format!("invalid metric type `{other}`")),
            };
            Ok(Line::Type { name, kind })
        }
    }
}

/// HELP text: `\\`, `\n` and `\"` are decoded, any other backslash stays as written.
fn unescape_help(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.peek() {
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                Some('n') => {
                    out.push('\n');
                    chars.next();
                }
                Some('"') => {
                    out.push('"');
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

/// A sample line, cursor at the first byte of the name (or `{`).
fn sample(mut c: Cur<'_>, line_no: u32) -> Result<Sample<'_>, LineError> {
    let name_at = c.i;
    let bare = c.metric_name();
    let mut labels = Vec::new();
    let mut name: Option<Cow<'_, str>> =
        if bare.is_empty() { None } else { Some(Cow::Borrowed(bare)) };
    if name.is_none() && c.peek() != Some(b'{') {
        return err(name_at, "invalid metric name");
    }
    let after_name = c.i;
    c.skip_ws_text();
    let ws_after_name = c.i > after_name;
    let mut closed_brace = false;
    if c.peek() == Some(b'{') {
        if let Some(q) = c.label_set(true, &mut labels)? {
            if name.is_some() {
                return err(name_at, "metric name given both before and inside the braces");
            }
            name = Some(q);
        }
        closed_brace = true;
    }
    let Some(name) = name else {
        return err(name_at, "invalid metric name (metric name not set)");
    };
    // Separator before the value.
    if c.om {
        match c.peek() {
            Some(b' ') => c.i += 1,
            None => return err(c.i, "expected value after metric"),
            Some(_) => return err(c.i, "expected a space before the value"),
        }
    } else {
        let before = c.i;
        c.skip_ws();
        if c.i == before && !closed_brace && !ws_after_name && !c.at_end() {
            return err(c.i, "expected whitespace or `{` after metric name");
        }
        if c.at_end() {
            return err(c.i, "expected value after metric");
        }
    }
    let value_at = c.i;
    let vtok = c.token();
    let Some(value) = parse_float(vtok) else {
        if vtok.is_empty() {
            return err(value_at, "expected value after metric");
        }
        return err(value_at, format!("expected float as value, got `{vtok}`"));
    };
    let mut timestamp_ms = None;
    let mut exemplar = None;
    if c.om {
        if !c.at_end() {
            // c.peek() == ' '
            c.i += 1;
            if c.peek() != Some(b'#') {
                let ts_at = c.i;
                let tok = c.token();
                if tok.is_empty() {
                    return err(ts_at, "expected timestamp or exemplar after the value");
                }
                timestamp_ms =
                    Some(parse_om_ts(tok).map_err(|m| LineError { at: ts_at, message: m })?);
                if !c.at_end() {
                    c.i += 1;
                    if c.peek() != Some(b'#') {
                        return err(
                            c.i,
                            "expected exemplar (`# {`) or end of line after timestamp",
                        );
                    }
                }
            }
            if !c.at_end() {
                exemplar = Some(om_exemplar(&mut c)?);
            }
        }
    } else {
        c.skip_ws();
        if !c.at_end() {
            let ts_at = c.i;
            let tok = c.token();
            timestamp_ms = Some(parse_int_ms(tok).ok_or_else(|| LineError {
                at: ts_at,
                message: format!("expected integer (milliseconds) as timestamp, got `{tok}`"),
            })?);
            c.skip_ws();
            if !c.at_end() {
                return err(c.i, "spurious string after timestamp");
            }
        }
    }
    Ok(Sample { name, labels, value, timestamp_ms, exemplar, line: line_no })
}

/// An OpenMetrics exemplar, cursor on the `#` after the value (and timestamp).
fn om_exemplar<'a>(c: &mut Cur<'a>) -> Result<Exemplar<'a>, LineError> {
    if c.b.get(c.i..c.i + 3) != Some(b"# {") {
        return err(c.i, "expected exemplar `# {labels} value`");
    }
    c.i += 2;
    let labels_at = c.i;
    let mut labels = Vec::new();
    c.label_set(false, &mut labels)?;
    let chars: usize = labels.iter().map(|(n, v)| n.chars().count() + v.chars().count()).sum();
    if chars > 128 {
        return err(
            labels_at,
            format!("exemplar labels have {chars} UTF-8 characters, more than the limit of 128"),
        );
    }
    if c.peek() != Some(b' ') {
        return err(c.i, "expected value after exemplar labels");
    }
    c.i += 1;
    let value_at = c.i;
    let vtok = c.token();
    let value = parse_float(vtok).ok_or_else(|| LineError {
        at: value_at,
        message: if vtok.is_empty() {
            "expected value after exemplar labels".to_string()
        } else {
            format!("expected float as exemplar value, got `{vtok}`")
        },
    })?;
    let mut timestamp_ms = None;
    if !c.at_end() {
        c.i += 1;
        let ts_at = c.i;
        let tok = c.token();
        if tok.is_empty() {
            return err(ts_at, "expected exemplar timestamp or end of line");
        }
        let ts = parse_om_ts(tok)
            .map_err(|m| LineError { at: ts_at, message: format!("exemplar {m}") })?;
        timestamp_ms = Some(ts);
        if !c.at_end() {
            return err(c.i, "unexpected text after exemplar timestamp");
        }
    }
    Ok(Exemplar { labels, value, timestamp_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<Line<'_>, LineError> {
        parse_line(s, Format::PrometheusText, 1)
    }
    fn om(s: &str) -> Result<Line<'_>, LineError> {
        parse_line(s, Format::OpenMetrics, 1)
    }
    fn sample_of(l: Result<Line<'_>, LineError>) -> Sample<'_> {
        match l {
            Ok(Line::Sample(s)) => s,
            other => panic!("not a sample: {other:?}"),
        }
    }

    #[test]
    fn floats_follow_go_minus_go_only_syntax() {
        assert_eq!(parse_float("1.5e3"), Some(1500.0));
        assert_eq!(parse_float("-3e3"), Some(-3000.0));
        assert_eq!(parse_float(".3"), Some(0.3));
        assert_eq!(parse_float("08"), Some(8.0));
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").unwrap().is_nan());
        assert!(parse_float("nan").unwrap().is_nan());
        for bad in ["1_2", "0x1p-3", "0X1", "0b1", "0o1", "0O1", "true", "", "1z", "1.1.1", "+NaN"]
        {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }

    #[test]
    fn fast_decimal_path_agrees_with_the_general_parser() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let r = next();
            let int = r % 10u64.pow((r >> 8) as u32 % 12);
            let frac_len = (r >> 20) as usize % 8;
            let frac: String = (0..frac_len)
                .map(|i| char::from(b'0' + ((r >> (24 + i * 4)) % 10) as u8))
                .collect();
            let lead = "0".repeat((r >> 60) as usize % 3);
            let s = match (r >> 56) % 4 {
                0 => format!("{lead}{int}"),
                1 => format!("{lead}{int}.{frac}"),
                2 => format!("-{int}.{frac}"),
                _ => format!(".{frac}0"),
            };
            let want = s.parse::<f64>().ok();
            let got = parse_float(&s);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{s}");
        }
        for s in ["0.1", "0.30000000000000004", "123456789012345.6", "9007199254740993", "5.", "-0"]
        {
            assert_eq!(
                parse_float(s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s}"
            );
        }
    }

    #[test]
    fn borrowed_unless_unescaped() {
        let s = sample_of(text(r#"m{a="plain",b="q\"x"} 1"#));
        assert!(matches!(s.name, Cow::Borrowed("m")));
        assert!(matches!(s.labels[0].1, Cow::Borrowed("plain")));
        assert!(matches!(&s.labels[1].1, Cow::Owned(v) if v == "q\"x"));
    }

    #[test]
    fn error_offsets_point_at_the_problem() {
        let e = text(r#"metric{label=bla} 3.14"#).unwrap_err();
        assert_eq!(e.at, 13);
        let e = text("metric{label=\"bla\"} 3.14 2.72").unwrap_err();
        assert_eq!(e.at, 25);
        assert!(e.message.contains("timestamp"), "{}", e.message);
        let e = om("a 1 2 ").unwrap_err();
        assert_eq!(e.at, 6);
    }

    #[test]
    fn om_timestamps_are_seconds() {
        let s = sample_of(om("a 1 123.123"));
        assert_eq!(s.timestamp_ms, Some(123_123));
        let s = sample_of(om("a 1 1520879607.789"));
        assert_eq!(s.timestamp_ms, Some(1_520_879_607_789));
        assert!(om("a 1 NaN").is_err());
        assert!(om("a 1 -Inf").is_err());
    }
}

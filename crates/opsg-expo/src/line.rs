//! The grammar of one line, in both formats: a sample, a metadata line, a comment or `# EOF`.
//!
//! This layer knows nothing about families; it turns one line (already known to be valid UTF-8,
//! without its `\n`) into a [`Line`] or a [`LineError`] with the byte offset of the problem.
//! Strings borrow from the input unless an escape had to be decoded (the one-pass sample parser
//! may borrow a name or label from the identical bytes of the line before).
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

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Every byte of a word set to `b`.
const fn splat(b: u8) -> u64 {
    LO * b as u64
}

/// The high bit of each byte of `v` whose value lies in `lo..=hi`, for a word whose bytes are all
/// below 0x80 (so no addition carries into the next byte) and `1 <= lo <= hi <= 0x7f`.
#[inline]
fn bytes_in(v: u64, lo: u8, hi: u8) -> u64 {
    let ge_lo = v + splat(0x80 - lo);
    let gt_hi = v + splat(0x7f - hi);
    ge_lo & !gt_hi & HI
}

/// The high bit of each byte of `w` that is NOT a name byte: `[a-zA-Z0-9_:]` for metric names
/// (`colon`), `[a-zA-Z0-9_]` for label names. Branch-free: three range tests over the word.
#[inline]
fn non_name_bytes(w: u64, colon: bool) -> u64 {
    let ascii = !w & HI;
    let v = w & !HI;
    let alpha = bytes_in(v | splat(0x20), b'a', b'z');
    let digit = bytes_in(v, b'0', if colon { b':' } else { b'9' });
    let under = bytes_in(v, b'_', b'_');
    !(alpha | digit | under) & HI | !ascii & HI
}

/// End of the run of name bytes starting at `i` (`[a-zA-Z0-9_:]` with `colon`, else
/// `[a-zA-Z0-9_]`), eight bytes at a time: names average 30-40 bytes and the byte loop was the
/// largest single cost of a sample line.
#[inline]
fn scan_name(b: &[u8], mut i: usize, colon: bool) -> usize {
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let bad = non_name_bytes(u64::from_le_bytes(w), colon);
        if bad != 0 {
            return i + (bad.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let is_char = if colon { is_name_char } else { is_label_char };
    while i < b.len() && is_char(b[i]) {
        i += 1;
    }
    i
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
/// per comparison showed up as the parser's single largest cost. The tail is one overlapping
/// word (or two overlapping halves for short slices), not a byte loop.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        return i == n || word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// The eight bytes at `b[i..]` as a word (the caller checked the length).
#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The four bytes at `b[i..]` as a word (the caller checked the length).
#[inline]
fn half(b: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(w)
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

/// Position of the first `"`, `\\` or `\n` in `b`, eight bytes at a time: the end of a label
/// value for the one-pass parser, which reads past the end of the line it is in.
#[inline]
fn find_value_end(b: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let v = u64::from_le_bytes(w);
        let q = v ^ splat(b'"');
        let s = v ^ splat(b'\\');
        let n = v ^ splat(b'\n');
        let found =
            (q.wrapping_sub(LO) & !q | s.wrapping_sub(LO) & !s | n.wrapping_sub(LO) & !n) & HI;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | b'\n') {
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
            self.i = scan_name(self.b, self.i + 1, true);
        }
        &self.s[start..self.i]
    }

    /// A legacy label name `[a-zA-Z_][a-zA-Z0-9_]*`; empty when the next byte cannot start one.
    #[inline]
    fn label_name(&mut self) -> &'a str {
        let start = self.i;
        if self.i < self.b.len() && is_label_start(self.b[self.i]) {
            self.i = scan_name(self.b, self.i + 1, false);
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

/// Whether [`parse_float`] accepts `s`, without computing the value: bucket bounds (`0.005`,
/// `10.0`) are plain decimals, checked with one loop; anything else asks [`parse_float`].
#[inline]
pub(crate) fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut dots = 0;
    for &c in b {
        if c == b'.' {
            dots += 1;
        } else if !c.is_ascii_digit() {
            return parse_float(s).is_some();
        }
    }
    (dots == 0 && !b.is_empty() || dots == 1 && b.len() > 1) || parse_float(s).is_some()
}

/// Exact powers of ten (every one up to 1e22 is representable in an f64).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for the values expositions are full of (`0.0`, `1423`, `27453.0`,
/// `7.589469e+08`): a decimal whose digits make an integer of at most 2^53 and whose power of ten (the
/// exponent minus the fraction digits) lies within ±22 is exactly `mantissa * 10^e` or
/// `mantissa / 10^-e`, one correctly rounded IEEE operation, the same result `str::parse` gives.
/// Anything else returns `None` for the general parser.
#[inline]
fn fast_decimal(body: &[u8]) -> Option<f64> {
    match decimal_prefix(body, 0) {
        Some((v, end)) if end == body.len() => Some(v),
        _ => None,
    }
}

/// The decimal starting at `b[i]` (an optional sign, then what [`fast_decimal`] accepts),
/// as its value and the position just past it; `None` when there is none or it is outside the
/// fast path. The one-pass sample parser reads the value with this, without a token scan first.
#[inline(always)]
fn decimal_prefix(b: &[u8], mut i: usize) -> Option<(f64, usize)> {
    let n = b.len();
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    let (mut mant, end) = digit_run(b, i, 0);
    i = end;
    let mut digits = i - int_start;
    let mut frac = 0;
    if i < n && b[i] == b'.' {
        i += 1;
        let start = i;
        (mant, i) = digit_run(b, i, mant);
        frac = (i - start) as i32;
        digits += i - start;
    }
    // At most 19 digits cannot overflow a u64; the mantissa must be exact in an f64.
    if digits == 0 || digits > 19 || mant > 1 << 53 {
        return None;
    }
    let mut exp10 = -frac;
    if i < n && b[i] | 0x20 == b'e' {
        // An exponent: `e`, an optional sign, then 1 to 4 digits (more: the general parser).
        i += 1;
        let eneg = b.get(i) == Some(&b'-');
        if eneg || b.get(i) == Some(&b'+') {
            i += 1;
        }
        let start = i;
        let mut e = 0i32;
        while i < n && b[i].is_ascii_digit() && i - start < 5 {
            e = e * 10 + i32::from(b[i] - b'0');
            i += 1;
        }
        if i == start || i - start > 4 {
            return None;
        }
        exp10 += if eneg { -e } else { e };
    }
    let m = mant as f64;
    let v = match exp10 {
        0..=22 => m * POW10[exp10 as usize],
        -22..=-1 => m / POW10[(-exp10) as usize],
        _ if mant == 0 => 0.0,
        _ => return None,
    };
    Some((if neg { -v } else { v }, i))
}

/// `10^k` for `k` in `0..=8`.
const POW10_INT: [u64; 9] =
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// The run of decimal digits starting at `b[i]`, appended to `mant` (`mant * 10^k + run`,
/// wrapping: the caller bounds the digit count), and the position just past it. Eight bytes
/// at a time: one class test finds the run's length and three multiplies combine up to eight
/// digits, instead of a compare, multiply and add per digit.
#[inline]
fn digit_run(b: &[u8], mut i: usize, mut mant: u64) -> (u64, usize) {
    if i + 8 <= b.len() {
        let w = word(b, i);
        let non_digit = !(bytes_in(w & !HI, b'0', b'9') & !w) & HI;
        let k = (non_digit.trailing_zeros() / 8) as usize;
        if k > 0 {
            mant = mant.wrapping_mul(POW10_INT[k]).wrapping_add(swar_digits(w, k));
        }
        if k < 8 {
            return (mant, i + k);
        }
        i += 8;
    }
    while i < b.len() && b[i].is_ascii_digit() {
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
        i += 1;
    }
    (mant, i)
}

/// The value of the first `k` (1 to 8) bytes of `w`, all ASCII digits, the first byte the most
/// significant digit. The bytes past `k` are shifted out (a borrow from them can only move
/// further up), then digit pairs, quads and octets are combined by multiply-and-add.
#[inline]
fn swar_digits(w: u64, k: usize) -> u64 {
    let v = w.wrapping_sub(splat(b'0')) << (8 * (8 - k));
    let v = (v.wrapping_mul(10).wrapping_add(v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100).wrapping_add(v >> 16)) & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000).wrapping_add(v >> 32)) & 0xffff_ffff
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
            let Some(kind) = MetricKind::from_openmetrics(rest) else {
                return err(c.i, format!("invalid metric type `{rest}`"));
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

/// What [`fast_sample`] remembers of the last line it parsed, so that the next line can skip
/// the part it shares with it. Consecutive samples of a family repeat the name and usually the
/// first labels (`..._bucket{model_name="m",engine="0",le="0.1"} 7`, then `le="0.5"`): when the
/// bytes up to the start of a label are the same as in the remembered line, parsing them again
/// would reach the same state, so the parser takes that state (the name and the labels before)
/// and goes on from there. The shared name and labels keep borrowing the remembered line's
/// bytes (the same text, equal bytes): the next line needs no slicing for them. Positions are
/// relative to the line start.
pub(crate) struct LineMemo<'s> {
    /// Offset of the remembered line in the text, `usize::MAX` when there is none.
    line: usize,
    /// The remembered name (its `{` follows).
    name: &'s str,
    /// How many labels the remembered line has; label `k` starts at `marks[k]` (just after the
    /// `{` or the `,` before it) and is `labels[k]`.
    count: usize,
    marks: [usize; MAX_FAST_LABELS],
    labels: [(&'s str, &'s str); MAX_FAST_LABELS],
}

impl<'s> LineMemo<'s> {
    /// No line remembered. One memo serves one text: offsets into another text mean nothing.
    pub(crate) fn new() -> Self {
        LineMemo {
            line: usize::MAX,
            name: "",
            count: 0,
            marks: [0; MAX_FAST_LABELS],
            labels: [("", ""); MAX_FAST_LABELS],
        }
    }

    /// How many of the remembered labels the line `b` shares with the remembered line `prev`
    /// (empty when none), bytes and all, up to the start of the next one, and whether it also
    /// shares the next one's `name="`; `None` when not even the name and `{`.
    #[inline]
    fn shared_labels(&self, prev: &[u8], b: &[u8]) -> Option<(usize, bool)> {
        if self.count == 0 {
            return None;
        }
        let value_at = |k: usize| self.marks[k] + self.labels[k].0.len() + 2;
        let limit = value_at(self.count - 1).min(b.len());
        if limit < self.marks[0] {
            return None;
        }
        let same = common_prefix(prev.get(..limit)?, &b[..limit]);
        let k = (0..self.count).rev().find(|&k| self.marks[k] <= same)?;
        Some((k, same >= value_at(k)))
    }
}

/// The length of the longest common prefix of two slices of equal length, eight bytes at a time.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = word(a, i) ^ word(b, i);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < n && n >= 8 {
        // The tail as one overlapping word: the bytes before `i` are already known equal.
        let x = word(a, n - 8) ^ word(b, n - 8);
        return if x == 0 { n } else { n - 8 + (x.trailing_zeros() / 8) as usize };
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The most labels [`fast_sample`] takes (more: the general parser).
const MAX_FAST_LABELS: usize = 16;

/// The common sample line, parsed in one forward pass over the rest of the input (the line
/// starts at `text[start]` and ends at the next `\n` or the end of `text`): a legacy name, an
/// optional label set of legacy names and escape-free values with nothing between the tokens,
/// a value and an optional timestamp. Returns the sample, the length of the line (without its
/// `\n`) and whether the line before it was parsed here too and has the same name (`memo` let
/// this line skip its name), or `None` as soon as anything else shows up (blanks inside the braces, an escape,
/// a quoted name, an exemplar, a CR, any error): the caller then splits the line off and hands
/// it to [`parse_line`], which decides and reports. Whenever this returns a sample, the general
/// parser returns the same one (a unit test compares them on the fuzz corpus, the fixtures and
/// their mutations, line after line). Finding the line's end while parsing saves a separate
/// newline scan; `memo` (see [`LineMemo`]) saves rescanning what the line shares with the last.
#[inline]
pub(crate) fn fast_sample<'s>(
    text: &'s str,
    start: usize,
    om: bool,
    line_no: u32,
    memo: &mut LineMemo<'s>,
    spare: &mut Vec<Label<'s>>,
) -> Option<(Sample<'s>, usize, bool)> {
    // Forgotten until this line parses: a line it declines leaves no memo.
    let remembered = std::mem::replace(&mut memo.line, usize::MAX);
    let rest = text.get(start..)?;
    let b = rest.as_bytes();
    let mut i;
    let mut count = 0;
    let mut braces = true;
    let mut labels_follow = true;
    let prev = text.as_bytes().get(remembered..start).unwrap_or(b"");
    let shared = memo.shared_labels(prev, b);
    // Label `count`'s `name="` is the remembered one: no scan, and its checks passed already.
    let mut name_known = false;
    if let Some((k, known)) = shared {
        name_known = known;
        // Same bytes as the remembered line up to label k: same name, same labels before it.
        i = memo.marks[k];
        count = k;
        if b.get(i) == Some(&b'}') {
            // `{}`, or a trailing comma (text 0.0.4 only), as the scan from the start decides.
            if k > 0 && om {
                return None;
            }
            i += 1;
            labels_follow = false;
        }
    } else {
        if !is_name_start(*b.first()?) {
            return None;
        }
        i = scan_name(b, 1, true);
        memo.name = &rest[..i];
        braces = b.get(i) == Some(&b'{');
        labels_follow = braces;
        if braces {
            i += 1;
            if b.get(i) == Some(&b'}') {
                i += 1;
                labels_follow = false;
            }
        }
    }
    // Labels are collected in the memo first, so the sample's Vec is allocated once at its
    // exact size (a growing Vec reallocates for the 5% of series with more than four labels).
    if labels_follow {
        loop {
            let lstart = i;
            let lname;
            if name_known {
                name_known = false;
                lname = memo.labels[count].0;
                i += lname.len();
            } else {
                if !is_label_start(*b.get(i)?) || count == MAX_FAST_LABELS {
                    return None;
                }
                i = scan_name(b, i + 1, false);
                if b.get(i..i + 2) != Some(b"=\"") {
                    return None;
                }
                lname = &rest[lstart..i];
                if lname == "__name__"
                    || memo.labels[..count].iter().any(|(n, _)| same_name(n, lname))
                {
                    return None;
                }
            }
            let vstart = i + 2;
            let vend = vstart + find_value_end(&b[vstart..]);
            if b.get(vend) != Some(&b'"') {
                return None;
            }
            memo.marks[count] = lstart;
            memo.labels[count] = (lname, &rest[vstart..vend]);
            count += 1;
            i = vend + 1;
            match b.get(i) {
                Some(b'}') => {
                    i += 1;
                    break;
                }
                Some(b',') => {
                    i += 1;
                    // Text 0.0.4 allows a trailing comma.
                    if !om && b.get(i) == Some(&b'}') {
                        i += 1;
                        break;
                    }
                }
                _ => return None,
            }
        }
    }
    // The separator: one space in OpenMetrics; blanks in text 0.0.4 (none needed after `}`).
    if om {
        if b.get(i) != Some(&b' ') {
            return None;
        }
        i += 1;
    } else {
        let before = i;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i == before && !braces {
            return None;
        }
    }
    // Token ends: a space, a tab in text 0.0.4, the newline or the end of the input.
    let ends_token = |i: usize| match b.get(i) {
        None | Some(b' ' | b'\n') => true,
        Some(b'\t') => !om,
        Some(_) => false,
    };
    let value_at = i;
    let value = match decimal_prefix(b, i) {
        Some((v, end)) if ends_token(end) => {
            i = end;
            v
        }
        _ => {
            while !ends_token(i) {
                i += 1;
            }
            parse_float(&rest[value_at..i])?
        }
    };
    let mut timestamp_ms = None;
    if b.get(i).is_some_and(|&c| c != b'\n') {
        if om {
            i += 1;
            let ts_at = i;
            while !ends_token(i) {
                i += 1;
            }
            let tok = &rest[ts_at..i];
            if tok.is_empty() || tok.as_bytes()[0] == b'#' || b.get(i).is_some_and(|&c| c != b'\n')
            {
                return None;
            }
            timestamp_ms = Some(parse_om_ts(tok).ok()?);
        } else {
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            if !ends_token(i) {
                let ts_at = i;
                while !ends_token(i) {
                    i += 1;
                }
                timestamp_ms = Some(parse_int_ms(&rest[ts_at..i])?);
                while i < b.len() && is_ws(b[i]) {
                    i += 1;
                }
                if !ends_token(i) {
                    return None;
                }
            }
        }
    }
    // The vector a lending sink handed back (empty otherwise: then this allocates, exactly).
    let mut labels = std::mem::take(spare);
    labels.extend(memo.labels[..count].iter().map(|&(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v))));
    memo.line = start;
    memo.count = count;
    let sample = Sample {
        name: Cow::Borrowed(memo.name),
        labels,
        value,
        timestamp_ms,
        exemplar: None,
        line: line_no,
    };
    Some((sample, i, shared.is_some()))
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
    fn digit_runs_agree_with_a_plain_loop() {
        let samples: [&[u8]; 8] = [
            b"0123456789012345678901234",
            b"9876543210.5e3 0 0 0 0 0 0",
            b"1.0} 5 x",
            b"12345678",
            b"1234567\xff8",
            b"00000000000000000001",
            b"42/43:44;",
            b"",
        ];
        for s in samples {
            for start in 0..=s.len() {
                let mut want = (7u64, start);
                while want.1 < s.len() && s[want.1].is_ascii_digit() {
                    want.0 = want.0.wrapping_mul(10).wrapping_add(u64::from(s[want.1] - b'0'));
                    want.1 += 1;
                }
                assert_eq!(digit_run(s, start, 7), want, "{:?} from {start}", s);
            }
        }
    }

    #[test]
    fn common_prefix_agrees_with_a_plain_scan() {
        let a = b"node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1";
        for n in 0..a.len() {
            for at in 0..n {
                let mut b = a[..n].to_vec();
                b[at] ^= 1;
                assert_eq!(common_prefix(&a[..n], &b), at, "len {n}, differs at {at}");
            }
            assert_eq!(common_prefix(&a[..n], &a[..n]), n);
        }
    }

    #[test]
    fn is_float_agrees_with_parse_float() {
        for s in [
            "", ".", "..", "1", "1.", ".1", "1.0", "1..0", "1.0.", "0.005", "+Inf", "-Inf", "inf",
            "NaN", "1e3", "1e", "x", "1x", " 1", "1 ", "-1", "+.5", "١",
        ] {
            assert_eq!(is_float(s), parse_float(s).is_some(), "{s:?}");
        }
    }

    #[test]
    fn bytes_eq_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(bytes_eq(a, a));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!bytes_eq(a, &b), "len {n}, differs at {at}");
            }
            assert!(!bytes_eq(a, &base[..n + 1]));
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
            let exp = ((r >> 40) % 61) as i64 - 30;
            let e = ["e", "E", "e+", "e-0"][((r >> 50) % 4) as usize];
            let s = match (r >> 56) % 6 {
                0 => format!("{lead}{int}"),
                1 => format!("{lead}{int}.{frac}"),
                2 => format!("-{int}.{frac}"),
                3 => format!("{int}.{frac}{e}{exp}"),
                4 => format!("-.{frac}1e{exp}"),
                _ => format!(".{frac}0"),
            };
            let want = s.parse::<f64>().ok();
            let got = parse_float(&s);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{s}");
        }
        for s in [
            "0.1",
            "0.30000000000000004",
            "123456789012345.6",
            "9007199254740993",
            "5.",
            "-0",
            "7.589469e+08",
            "1.0e-7",
            "5.e3",
            "1e22",
            "1e23",
            "123456789012345e22",
            "1e-22",
            "3e-23",
            "0e999",
            "-0e5",
            "0.0000000000000000000000001",
            "1e00022",
            "1E+5",
            "1e",
            "1e+",
            "1e5.3",
            "1ee5",
            "1e+-5",
            ".e5",
            "1.e",
        ] {
            assert_eq!(
                parse_float(s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s}"
            );
        }
    }

    /// Every line of the fuzz corpus, the fixtures and a list of tricky lines.
    fn seed_lines() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("fuzz/corpus/parse")];
        let mut files = Vec::new();
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        for d in ["tests/fixtures/vllm", "tests/fixtures/node_exporter", "tests/fixtures/dcgm"] {
            for e in std::fs::read_dir(root.join(d)).into_iter().flatten().flatten() {
                files.push(e.path());
            }
        }
        files.sort();
        let mut lines: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            lines.extend(text.split('\n').take(2000).map(str::to_string));
        }
        lines
    }

    const TRICKY: &[&str] = &[
        "m 1",
        "m\t1",
        "m  1  ",
        "m 1 2",
        "m 1 2 ",
        "m 1 2 3",
        "m 1 -2",
        "m 1 +2",
        "m 1 2.5",
        "m 1 99999999999999999999",
        "m{} 1",
        "m{}1",
        "m{a=\"b\"}1",
        "m{a=\"b\"} 1",
        "m{a=\"b\",} 1",
        "m{a=\"b\",,} 1",
        "m{,} 1",
        "m{a=\"b\" } 1",
        "m{ a=\"b\"} 1",
        "m{a = \"b\"} 1",
        "m {a=\"b\"} 1",
        "m{a=\"b\"c=\"d\"} 1",
        "m{a=\"b\",a=\"c\"} 1",
        "m{a=\"b\",b=\"c\",c=\"d\",d=\"e\",e=\"f\",a=\"g\"} 1",
        "m{__name__=\"x\"} 1",
        "m{__name=\"x\"} 1",
        "m{_=\"x\"} 1",
        "m{a=\"q\\\"x\"} 1",
        "m{a=\"q\\\\x\"} 1",
        "m{a=\"q\\nx\"} 1",
        "m{a=\"q\\tx\"} 1",
        "m{a=\"\u{e9}t\u{e9} \u{1f600}\"} 1",
        "m{a=\"x\ty\"} 1",
        "m{\"my.metric\",a=\"b\"} 1",
        "{\"my.metric\"} 1",
        "m{\"a.b\"=\"c\"} 1",
        "m{1a=\"b\"} 1",
        "m{a=\"b} 1",
        "m{a=\"b\"",
        "m{a=\"b\"}",
        "m{a=\"b\"} ",
        "m{a=\"b\"}  1",
        "m NaN",
        "m nan",
        "m +NaN",
        "m Inf",
        "m +Inf",
        "m -inf",
        "m Infinity",
        "m 1e308",
        "m 1e309",
        "m 1.7976931348623157e308",
        "m 4.9e-324",
        "m 123456789012345678901234567890",
        "m 0x1p-3",
        "m 1_2",
        "m 7.589469e+08",
        "m 1700159457.4582813",
        "m 1 1700000000000",
        "m 1 1700000000.123",
        "m 1 1700000000.123 ",
        "m 1 NaN",
        "m 1 # {a=\"b\"} 1",
        "m_total 1 # {a=\"b\"} 1 2",
        "m 1 2 # {a=\"b\"} 1",
        "m 1\r",
        "m{a=\"b\"} 1\r",
        "m 1 2\r",
        "m:x:y_total{a=\"b\"} 1",
        "0m 1",
        ":m 1",
        "_m 1",
        "m.x 1",
        "m\u{e9} 1",
        "m\u{0} 1",
        "m{a=\"\u{0}\"} 1",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa{bbbbbbbbbbbbbbbbbb=\"c\"} 1",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-{b=\"c\"} 1",
        "aaaaaaaaaaaa[aaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaa`aaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaa@aaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaa;aaaaaaaaaaaaaaaaaaaaaaaaaa 1",
        "aaaaaaaaaaaaZaaaaaaaaaaaaaaaaaaaaaaaaaaz 1",
        "m{abcdefgh:ijk=\"c\"} 1",
        "m{abcdefghijklmnopq=\"c\"} 1",
        "# HELP m x",
        "# TYPE m counter",
        "# EOF",
        "",
        " m 1",
    ];

    /// A deterministic mutation of `line` (byte edits that keep it valid UTF-8).
    fn mutations(line: &str, seed: u64) -> Vec<String> {
        const INSERT: &[&str] = &[
            " ", "\t", "\"", "\\", "{", "}", ",", "=", "#", ":", ".", "e", "-", "+", "\u{e9}", "_",
        ];
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let chars: Vec<char> = line.chars().collect();
        let mut out = Vec::new();
        for _ in 0..4 {
            let mut c = chars.clone();
            for _ in 0..1 + next() % 3 {
                let at = if c.is_empty() { 0 } else { (next() % (c.len() as u64 + 1)) as usize };
                match next() % 3 {
                    0 if at < c.len() => {
                        c.remove(at);
                    }
                    1 if at < c.len() => {
                        let ins = INSERT[(next() % INSERT.len() as u64) as usize];
                        c.splice(at..at + 1, ins.chars());
                    }
                    _ => {
                        let ins = INSERT[(next() % INSERT.len() as u64) as usize];
                        c.splice(at..at, ins.chars());
                    }
                }
            }
            out.push(c.into_iter().collect());
        }
        out
    }

    /// NaN != NaN: a sample with its value as bits, for comparisons.
    fn key<'s>(s: &Sample<'s>) -> (Sample<'s>, u64) {
        (Sample { value: 0.0, ..s.clone() }, s.value.to_bits())
    }

    /// Walks `text` line by line the way the driver does, with one memo throughout, and checks
    /// every answer of the one-pass parser: the same with a fresh memo, the line's end found,
    /// and the same sample as the general parser. Returns (answered, lines).
    fn walk(text: &str, om: bool) -> (usize, usize) {
        let format = if om { Format::OpenMetrics } else { Format::PrometheusText };
        let mut memo = LineMemo::new();
        let (mut fast, mut total) = (0, 0);
        let mut start = 0;
        let mut prev_name: Option<String> = None;
        // A label vector handed back after each sample, as a lending sink does.
        let mut spare = Vec::new();
        while start < text.len() {
            total += 1;
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            let line = &text[start..end];
            // What the driver hands the general parser: no `\n`, and no CR in text 0.0.4.
            let general = if om { line } else { line.strip_suffix('\r').unwrap_or(line) };
            let fresh = fast_sample(text, start, om, 7, &mut LineMemo::new(), &mut Vec::new());
            let got = fast_sample(text, start, om, 7, &mut memo, &mut spare);
            assert_eq!(
                fresh.as_ref().map(|(s, n, _)| (key(s), *n)),
                got.as_ref().map(|(s, n, _)| (key(s), *n)),
                "{line:?} om={om}: the memo of the line before changed the answer"
            );
            if let Some((s, _, true)) = &got {
                assert_eq!(Some(s.name.as_ref()), prev_name.as_deref(), "{line:?} om={om}");
            }
            prev_name = got.as_ref().map(|(s, _, _)| s.name.to_string());
            start = end + 1;
            let Some((got, len, _)) = got else {
                continue;
            };
            fast += 1;
            assert_eq!(len, line.len(), "{line:?} om={om}");
            match parse_line(general, format, 7) {
                Ok(Line::Sample(want)) => assert_eq!(key(&want), key(&got), "{line:?} om={om}"),
                other => panic!("{line:?} om={om}: fast {got:?}, general {other:?}"),
            }
            assert!(
                got.labels
                    .iter()
                    .all(|(n, v)| matches!((n, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
            );
            spare = got.labels;
            spare.clear();
        }
        (fast, total)
    }

    /// The one-pass sample parser must agree with the general one whenever it answers: alone,
    /// followed by another line, and after lines that share a prefix with it (the memo).
    #[test]
    fn fast_sample_agrees_with_the_general_parser() {
        let seeds = seed_lines();
        let (mut fast, mut total) = (0, 0);
        for om in [false, true] {
            // The tricky lines in order: neighbours share prefixes (`m{a="b"...`).
            let (f, t) = walk(&TRICKY.join("\n"), om);
            fast += f;
            total += t;
            for (i, line) in seeds.iter().enumerate() {
                let (f, _) = walk(line, om);
                fast += f;
                total += 1;
                walk(&format!("{line}\nm{{a=\"b\"}} 1 # x\n"), om);
                // The line, its mutations and the line again, one after the other.
                let m = mutations(line, i as u64 * 0x9e37_79b9 + 7);
                let run = [line, &m[0], &m[1], line, &m[2], &m[3], line];
                let run: Vec<&str> = run.iter().map(|s| s.as_str()).collect();
                let (f, t) = walk(&run.join("\n"), om);
                fast += f;
                total += t;
            }
        }
        // The fast path must actually cover the common lines.
        assert!(fast * 8 > total, "fast path taken for {fast} of {total}");
    }

    #[test]
    fn the_memo_resumes_only_where_the_bytes_are_the_same() {
        let runs = [
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",} 1\nm{a=\"b\",c=\"d\",a=\"x\"} 1",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"e\"} 2\nm{a=\"b\",c=\"e\"}} 2",
            "m{a=\"b\",c=\"d\"} 1\nmm{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"d\"} 1",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"d\"\nm{a=\"b\",c=\"d\"} 1",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"d\\\"\"} 1\nm{a=\"b\",c=\"d\"} 1 5",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"d\"}\nm{a=\"b\",cc=\"d\"} 1\nm{a=\"b\",c=\"d\"} 1",
            "m{a=\"b\"} 1\nm{} 1\nm{a=\"b\"} 1\nm 1\nm{a=\"b\"} 1",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",__name__=\"d\"} 1\nm{a=\"b\",a=\"d\"} 1",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=x\"d\"} 1\nm{a=\"b\",c=\"\"} 1\nm{a=\"b\",c=\"\n",
            "m{a=\"b\",c=\"d\"} 1\nm{a=\"b\",c=\"d\\n\"} 1\nm{a=\"b\",c=\"d\"}} 1\nm{a=\"b\",c=\"d\",} 1",
        ];
        for run in runs {
            for om in [false, true] {
                let (fast, _) = walk(run, om);
                assert!(fast >= 1, "{run:?}");
            }
        }
        // The memo is used: a bucket after a bucket resumes at `le`.
        let text = "h_bucket{m=\"x\",e=\"0\",le=\"0.1\"} 1\nh_bucket{m=\"x\",e=\"0\",le=\"0.5\"} 2";
        let mut memo = LineMemo::new();
        let (_, len, same) = fast_sample(text, 0, false, 1, &mut memo, &mut Vec::new()).unwrap();
        assert!(!same);
        let next = &text.as_bytes()[len + 1..];
        assert_eq!(memo.shared_labels(text.as_bytes(), next), Some((2, true)));
        assert_eq!(memo.shared_labels(b"", next), None);
        let (s, _, same) =
            fast_sample(text, len + 1, false, 2, &mut memo, &mut Vec::new()).unwrap();
        assert!(same);
        assert_eq!(s.label("le"), Some("0.5"));
        assert_eq!(s.label("m"), Some("x"));
        assert_eq!(s.value, 2.0);
    }

    #[test]
    fn value_end_scanner_agrees_with_a_plain_scan() {
        let data = b"abc\"defghijklm\\nop\nqrstuvwxyz0123456789\"\xc3\xa9\xff\"";
        for start in 0..data.len() {
            let want = data[start..]
                .iter()
                .position(|c| matches!(c, b'"' | b'\\' | b'\n'))
                .unwrap_or(data.len() - start);
            assert_eq!(find_value_end(&data[start..]), want, "from {start}");
        }
    }

    #[test]
    fn name_scanner_agrees_with_the_byte_classes() {
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        for &bad in &bytes {
            for pos in 0..20 {
                let mut line = vec![b'a'; 24];
                line[pos] = bad;
                for colon in [false, true] {
                    let ok = if colon { is_name_char } else { is_label_char };
                    let want = line.iter().position(|&c| !ok(c)).unwrap_or(line.len());
                    for start in 0..=pos {
                        let got = scan_name(&line, start, colon);
                        let want = want.max(start);
                        assert_eq!(got, want, "byte {bad:#x} at {pos} from {start}");
                    }
                }
            }
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

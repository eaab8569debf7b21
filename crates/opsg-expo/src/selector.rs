//! Series selection by metric name and label matchers, PromQL syntax:
//! `name{a="b",c!="d",e=~"x|y",f!~"tmp.*"}`.
//!
//! Semantics follow PromQL: a missing label equals the empty string (`a=""` matches series
//! without `a`), and regular expressions are fully anchored. Regular expressions are limited to
//! what needs no regex engine (this crate has no dependencies): alternatives separated by `|`,
//! each a literal that may contain `.*` (any text) and `.+` (any non-empty text), with `\`
//! escaping a metacharacter (`\.` is a literal dot). Anything else (`[a-z]`, `?`, `(`, `{2}`,
//! ...) is rejected by [`Selector::parse`] with its column, never silently mismatched.

use std::fmt;

use crate::error::ParseError;
use crate::model::Sample;

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the label value equals the given text.
    Equal,
    /// `!=`: the label value differs from the given text.
    NotEqual,
    /// `=~`: the label value matches the (restricted, anchored) pattern.
    RegexMatch,
    /// `!~`: the label value does not match the pattern.
    RegexNoMatch,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        })
    }
}

/// One piece of a pattern alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// `.*`
    Any,
    /// `.+`
    Some,
}

/// A restricted, anchored regular expression: alternatives of literals with `.*` / `.+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    alternatives: Vec<Vec<Piece>>,
}

impl Pattern {
    /// Compiles `re`; `offset` is added to error columns.
    fn compile(re: &str, column: u64) -> Result<Pattern, ParseError> {
        let mut alternatives = vec![Vec::new()];
        let mut lit = String::new();
        let mut chars = re.char_indices().peekable();
        let flush = |lit: &mut String, alt: &mut Vec<Piece>| {
            if !lit.is_empty() {
                alt.push(Piece::Lit(std::mem::take(lit)));
            }
        };
        while let Some((i, c)) = chars.next() {
            let alt = alternatives.last_mut().expect("at least one alternative");
            match c {
                '|' => {
                    flush(&mut lit, alt);
                    alternatives.push(Vec::new());
                }
                '\\' => match chars.next() {
                    Some((_, e)) if !e.is_alphanumeric() => lit.push(e),
                    _ => {
                        return Err(ParseError::new(
                            1,
                            column + i as u64,
                            "unsupported escape in regular expression (only `\\` before punctuation)",
                        ));
                    }
                },
                '.' => match chars.peek() {
                    Some((_, '*')) => {
                        chars.next();
                        flush(&mut lit, alt);
                        alt.push(Piece::Any);
                    }
                    Some((_, '+')) => {
                        chars.next();
                        flush(&mut lit, alt);
                        alt.push(Piece::Some);
                    }
                    _ => {
                        return Err(ParseError::new(
                            1,
                            column + i as u64,
                            "unsupported regular expression: `.` only as `.*` or `.+` (write `\\.` \
                             for a literal dot)",
                        ));
                    }
                },
                '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => {
                    return Err(ParseError::new(
                        1,
                        column + i as u64,
                        format!(
                            "unsupported regular expression syntax `{c}`: only literal \
                             alternatives with `.*`/`.+` are supported"
                        ),
                    ));
                }
                _ => lit.push(c),
            }
        }
        let alt = alternatives.last_mut().expect("at least one alternative");
        flush(&mut lit, alt);
        Ok(Pattern { alternatives })
    }

    /// Whether the whole of `s` matches one alternative.
    pub fn is_match(&self, s: &str) -> bool {
        self.alternatives.iter().any(|alt| match_pieces(alt, s))
    }
}

fn match_pieces(pieces: &[Piece], s: &str) -> bool {
    match pieces.split_first() {
        None => s.is_empty(),
        Some((Piece::Lit(l), rest)) => {
            s.strip_prefix(l.as_str()).is_some_and(|r| match_pieces(rest, r))
        }
        Some((wild, rest)) => {
            let min = if *wild == Piece::Some { 1 } else { 0 };
            // Try every split point on a char boundary (patterns here are tiny).
            s.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(s.len()))
                .filter(|&i| i >= min)
                .any(|i| match_pieces(rest, &s[i..]))
        }
    }
}

/// One label matcher of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label name.
    pub label: String,
    /// The comparison.
    pub op: MatchOp,
    /// The text or pattern as written (unescaped).
    pub value: String,
    pattern: Option<Pattern>,
}

impl Matcher {
    /// Whether a label value (`None` = label absent, which PromQL treats as `""`) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.pattern.as_ref().is_some_and(|p| p.is_match(v)),
            MatchOp::RegexNoMatch => !self.pattern.as_ref().is_some_and(|p| p.is_match(v)),
        }
    }
}

/// A series selector: an optional metric name and label matchers, all of which must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric (sample) name to match exactly, if given (`__name__="x"` lands here too).
    pub name: Option<String>,
    /// Label matchers (a `__name__` matcher other than `=` stays here and matches the name).
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parses `name`, `name{matchers}` or `{matchers}`; errors carry the 1-based column.
    pub fn parse(input: &str) -> Result<Selector, ParseError> {
        let b = input.as_bytes();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        let col = |i: usize| i as u64 + 1;
        skip_ws(&mut i);
        let start = i;
        if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b':') {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
        }
        let mut name = (i > start).then(|| input[start..i].to_string());
        let mut matchers = Vec::new();
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                skip_ws(&mut i);
                if i < b.len() && b[i] == b'}' {
                    i += 1;
                    break;
                }
                let ls = i;
                let label = if i < b.len() && b[i] == b'"' {
                    let (v, next) = quoted(input, i)?;
                    i = next;
                    v
                } else {
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    if i == ls || b[ls].is_ascii_digit() {
                        return Err(ParseError::new(1, col(ls), "expected label name"));
                    }
                    input[ls..i].to_string()
                };
                skip_ws(&mut i);
                let op = match b.get(i..i + 2) {
                    Some(b"!=") => MatchOp::NotEqual,
                    Some(b"=~") => MatchOp::RegexMatch,
                    Some(b"!~") => MatchOp::RegexNoMatch,
                    _ if b.get(i) == Some(&b'=') => MatchOp::Equal,
                    _ => {
                        return Err(ParseError::new(
                            1,
                            col(i),
                            "expected one of `=`, `!=`, `=~`, `!~` after label name",
                        ));
                    }
                };
                i += if op == MatchOp::Equal { 1 } else { 2 };
                skip_ws(&mut i);
                if b.get(i) != Some(&b'"') {
                    return Err(ParseError::new(
                        1,
                        col(i),
                        "expected `\"` to start the label value",
                    ));
                }
                let value_col = col(i) + 1;
                let (value, next) = quoted(input, i)?;
                i = next;
                let pattern = match op {
                    MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                        Some(Pattern::compile(&value, value_col)?)
                    }
                    _ => None,
                };
                if label == "__name__" && op == MatchOp::Equal && name.is_none() {
                    name = Some(value);
                } else {
                    matchers.push(Matcher { label, op, value, pattern });
                }
                skip_ws(&mut i);
                match b.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => {
                        return Err(ParseError::new(
                            1,
                            col(i),
                            "expected `,` or `}` after label matcher",
                        ));
                    }
                }
            }
        }
        skip_ws(&mut i);
        if i < b.len() {
            return Err(ParseError::new(1, col(i), "unexpected text after selector"));
        }
        if name.is_none() && matchers.is_empty() {
            return Err(ParseError::new(
                1,
                1,
                "empty selector: give a metric name or label matchers",
            ));
        }
        Ok(Selector { name, matchers })
    }

    /// Whether a series with this sample name and these labels is selected.
    pub fn matches_series<N: AsRef<str>, V: AsRef<str>>(
        &self,
        name: &str,
        labels: &[(N, V)],
    ) -> bool {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        self.matchers.iter().all(|m| {
            let value = if m.label == "__name__" {
                Some(name)
            } else {
                labels.iter().find(|(n, _)| n.as_ref() == m.label).map(|(_, v)| v.as_ref())
            };
            m.matches(value)
        })
    }

    /// Whether a parsed sample is selected (by its full sample name, as PromQL does).
    pub fn matches(&self, sample: &Sample<'_>) -> bool {
        self.matches_series(&sample.name, &sample.labels)
    }
}

/// A double-quoted string at `i` with PromQL escapes (`\\`, `\"`, `\n`, `\t`); returns the
/// text and the index after the closing quote.
fn quoted(input: &str, i: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = input[i + 1..].char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1 + j + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e)) => {
                    // Keep a backslash before regex punctuation for the pattern compiler.
                    if !matches!(e, '\\' | '"') {
                        out.push('\\');
                    }
                    out.push(e);
                }
                None => break,
            },
            _ => out.push(c),
        }
    }
    Err(ParseError::new(1, i as u64 + 1, "unterminated string in selector"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn equality_and_inequality() {
        let s = sel(r#"vllm:num_requests_running{model_name="m",engine!="1"}"#);
        assert!(
            s.matches_series("vllm:num_requests_running", &[("model_name", "m"), ("engine", "0")])
        );
        assert!(
            !s.matches_series("vllm:num_requests_running", &[("model_name", "m"), ("engine", "1")])
        );
        assert!(!s.matches_series("vllm:num_requests_waiting", &[("model_name", "m")]));
        // A missing label equals "" (PromQL): engine!="1" holds, model_name="m" does not.
        assert!(!s.matches_series("vllm:num_requests_running", &[("engine", "0")]));
        assert!(sel(r#"x{a=""}"#).matches_series("x", &[("b", "1")]));
        assert!(!sel(r#"x{a!=""}"#).matches_series("x", &[("b", "1")]));
    }

    #[test]
    fn restricted_regex() {
        let s =
            sel(r#"{__name__=~"vllm:.*_seconds_bucket", role=~"canary|stable", dev!~"loop.+"}"#);
        assert!(s.name.is_none());
        assert!(s.matches_series(
            "vllm:e2e_request_latency_seconds_bucket",
            &[("role", "canary"), ("dev", "sda")]
        ));
        assert!(
            !s.matches_series("vllm:e2e_request_latency_seconds_bucket", &[("role", "canaryX")])
        );
        assert!(
            !s.matches_series("vllm:x_seconds_bucket", &[("role", "stable"), ("dev", "loop0")])
        );
        // `loop.+` needs at least one char after "loop".
        assert!(s.matches_series("vllm:x_seconds_bucket", &[("role", "stable"), ("dev", "loop")]));
        assert!(!s.matches_series("node_cpu", &[("role", "stable")]));
        assert!(sel(r#"x{v=~"1\\.0"}"#).matches_series("x", &[("v", "1.0")]));
        assert!(!sel(r#"x{v=~"1\\.0"}"#).matches_series("x", &[("v", "1x0")]));
    }

    #[test]
    fn unsupported_regex_is_an_error_with_a_column() {
        let e = Selector::parse(r#"x{a=~"[0-9]+"}"#).unwrap_err();
        assert_eq!((e.line, e.column), (1, 7));
        assert!(Selector::parse(r#"x{a=~"a.b"}"#).is_err());
        assert!(Selector::parse(r#"x{a=~"(a|b)"}"#).is_err());
    }

    #[test]
    fn syntax_errors() {
        for bad in ["", "{}", "x{a}", "x{a=b}", r#"x{a="b""#, r#"x{a="b"} y"#, r#"x{1a="b"}"#] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(sel(r#"{__name__="up"}"#).name.as_deref(), Some("up"));
    }
}

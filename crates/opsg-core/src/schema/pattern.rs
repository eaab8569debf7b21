//! The regular expressions of our schemas' `pattern` keywords, matched without a regex engine.
//!
//! JSON Schema patterns are ECMA-262 regexes that match anywhere in the string unless anchored.
//! Ours use a small part of that language: anchors, literals, escapes (`\.` `\r` `\n` `\s`
//! `\uXXXX`), bracket classes, `*` `+` `?` `{n}` `{n,m}` quantifiers and groups with `|`. This
//! parses exactly that part and refuses anything else (look-around, back-references, `\d`,
//! `.`…), so a schema using more is validated by `jsonschema` instead (see `subset`). Matching
//! backtracks, but a repeated single character never recurses per character, and a repeated group
//! must have a small bound: a long string cannot exhaust the stack.

/// A parsed pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    alternatives: Vec<Vec<Node>>,
}

#[derive(Debug, Clone)]
enum Node {
    Start,
    End,
    Class { ranges: Vec<(char, char)>, negated: bool },
    Group(Vec<Vec<Node>>),
    Repeat { node: Box<Node>, min: u32, max: Option<u32> },
}

/// The most times a group may repeat: each repetition is a level of recursion.
const MAX_GROUP_REPEAT: u32 = 16;

/// ECMA-262 `\s`: WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP, every `Zs`) and LineTerminator.
const WHITESPACE: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
    ('\u{feff}', '\u{feff}'),
];

impl Pattern {
    /// Parse `source`; `None` when it uses anything outside the supported part.
    pub(crate) fn parse(source: &str) -> Option<Pattern> {
        let chars: Vec<char> = source.chars().collect();
        let mut parser = Parser { chars: &chars, pos: 0 };
        let alternatives = parser.alternation()?;
        (parser.pos == chars.len()).then_some(Pattern { alternatives })
    }

    /// Whether the pattern matches somewhere in `text` (ECMA-262 `test`, no flags).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let anchored = self.alternatives.iter().all(|seq| matches!(seq.first(), Some(Node::Start)));
        let last = if anchored { 0 } else { chars.len() };
        (0..=last).any(|start| {
            self.alternatives.iter().any(|seq| match_seq(seq, &chars, start, &mut |_| true))
        })
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn alternation(&mut self) -> Option<Vec<Vec<Node>>> {
        let mut alternatives = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alternatives.push(self.sequence()?);
        }
        Some(alternatives)
    }

    fn sequence(&mut self) -> Option<Vec<Node>> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            seq.push(self.quantified(atom)?);
        }
        Some(seq)
    }

    fn atom(&mut self) -> Option<Node> {
        match self.next()? {
            '^' => Some(Node::Start),
            '$' => Some(Node::End),
            '(' => {
                if self.peek() == Some('?') {
                    return None; // look-around and non-capturing groups: not supported
                }
                let alternatives = self.alternation()?;
                (self.next()? == ')').then_some(Node::Group(alternatives))
            }
            '[' => self.class(),
            '\\' => {
                let ranges = self.escape()?;
                Some(Node::Class { ranges, negated: false })
            }
            // `.` (any but line terminators), quantifiers with nothing to repeat, stray closers.
            '.' | '*' | '+' | '?' | '{' | '}' | ')' | ']' => None,
            c => Some(Node::Class { ranges: vec![(c, c)], negated: false }),
        }
    }

    /// After a backslash: the characters the escape stands for.
    fn escape(&mut self) -> Option<Vec<(char, char)>> {
        let c = self.next()?;
        let single = |c: char| Some(vec![(c, c)]);
        match c {
            's' => Some(WHITESPACE.to_vec()),
            'r' => single('\r'),
            'n' => single('\n'),
            't' => single('\t'),
            'u' => {
                let hex: String = (0..4).map(|_| self.next()).collect::<Option<String>>()?;
                if !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                single(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?)
            }
            // Identity escapes of syntax characters only (ECMA-262 with the `u` flag).
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
            | '/' | '-' => single(c),
            _ => None,
        }
    }

    fn class(&mut self) -> Option<Node> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            let c = self.next()?;
            if c == ']' {
                break;
            }
            let low = if c == '\\' {
                let escaped = self.escape()?;
                if escaped.len() != 1 || escaped[0].0 != escaped[0].1 {
                    ranges.extend(escaped); // a class escape (`\s`): cannot start a range
                    continue;
                }
                escaped[0].0
            } else if c == '[' {
                return None; // ECMA allows it as a literal; we keep the grammar unambiguous
            } else {
                c
            };
            let is_range = self.peek() == Some('-') && self.chars.get(self.pos + 1) != Some(&']');
            if !is_range {
                ranges.push((low, low));
                continue;
            }
            self.pos += 1; // '-'
            let high = match self.next()? {
                '\\' => {
                    let escaped = self.escape()?;
                    if escaped.len() != 1 || escaped[0].0 != escaped[0].1 {
                        return None;
                    }
                    escaped[0].0
                }
                '[' | ']' => return None,
                c => c,
            };
            if high < low {
                return None;
            }
            ranges.push((low, high));
        }
        Some(Node::Class { ranges, negated })
    }

    fn quantified(&mut self, node: Node) -> Option<Node> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number()?;
                let max = match self.next()? {
                    '}' => Some(min),
                    ',' if self.peek() == Some('}') => {
                        self.pos += 1;
                        None
                    }
                    ',' => {
                        let max = self.number()?;
                        (self.next()? == '}').then_some(())?;
                        Some(max)
                    }
                    _ => return None,
                };
                self.pos -= 1; // the `}`, consumed below
                (min, max)
            }
            _ => return Some(node),
        };
        self.pos += 1;
        if matches!(self.peek(), Some('?' | '*' | '+' | '{')) {
            return None; // lazy quantifiers and stacked quantifiers
        }
        if max.is_some_and(|max| max < min) {
            return None;
        }
        match node {
            Node::Class { .. } => {}
            Node::Group(_) if max.is_some_and(|max| max <= MAX_GROUP_REPEAT) => {}
            _ => return None, // anchors, unbounded groups
        }
        Some(Node::Repeat { node: Box::new(node), min, max })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        digits.parse().ok()
    }
}

fn class_matches(ranges: &[(char, char)], negated: bool, c: char) -> bool {
    ranges.iter().any(|&(low, high)| low <= c && c <= high) != negated
}

/// Match `seq` at `pos`, then hand the end position to `rest`; true when `rest` accepts one.
fn match_seq(seq: &[Node], text: &[char], pos: usize, rest: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((node, tail)) = seq.split_first() else {
        return rest(pos);
    };
    let mut then = |p: usize| match_seq(tail, text, p, rest);
    match node {
        Node::Start => pos == 0 && then(pos),
        Node::End => pos == text.len() && then(pos),
        Node::Class { ranges, negated } => {
            text.get(pos).is_some_and(|&c| class_matches(ranges, *negated, c)) && then(pos + 1)
        }
        Node::Group(alternatives) => {
            alternatives.iter().any(|alt| match_seq(alt, text, pos, &mut then))
        }
        Node::Repeat { node, min, max } => match node.as_ref() {
            Node::Class { ranges, negated } => {
                // Greedy without recursion per character: count the run, then back off.
                let limit = max.map_or(usize::MAX, |m| m as usize);
                let run = text[pos.min(text.len())..]
                    .iter()
                    .take(limit)
                    .take_while(|&&c| class_matches(ranges, *negated, c))
                    .count();
                (*min as usize..=run).rev().any(|n| then(pos + n))
            }
            group => repeat_group(group, *min, max.unwrap_or(0), 0, text, pos, &mut then),
        },
    }
}

/// Greedy repetition of a group, `count` times matched so far (bounded by `max`).
fn repeat_group(
    group: &Node,
    min: u32,
    max: u32,
    count: u32,
    text: &[char],
    pos: usize,
    rest: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if count < max {
        let one = std::slice::from_ref(group);
        let mut again =
            |p: usize| p != pos && repeat_group(group, min, max, count + 1, text, p, rest);
        if match_seq(one, text, pos, &mut again) {
            return true;
        }
    }
    count >= min && rest(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).unwrap_or_else(|| panic!("{pattern} does not parse")).is_match(text)
    }

    #[test]
    fn our_patterns() {
        let time = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$";
        assert!(m(time, "2026-11-22T06:00:00Z"));
        assert!(m(time, "2026-11-22T06:00:00.123+01:00"));
        assert!(!m(time, "2026-11-22T06:00:00."));
        assert!(!m(time, "2026-11-22T06:00:00Zx"));
        assert!(m(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$", "1.5ms"));
        assert!(!m(r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$", "1.5y"));
        assert!(m(r"^https?://", "http://x and more"));
        assert!(m(r"^https?://[^/?#\s]+", "https://h"));
        assert!(!m(r"^https?://[^/?#\s]+", "https:// h"));
        assert!(m(r"^[^\r\n\u0000]*$", "one line"));
        assert!(!m(r"^[^\r\n\u0000]*$", "two\nlines"));
        assert!(!m(r"^[^\r\n\u0000]*$", "nul\u{0}"));
        assert!(m(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "X-Token"));
        assert!(!m(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "X Token"));
        assert!(m(r"^[a-z_]+-[0-9a-f]{16}$", "plan-0123456789abcdef"));
        assert!(!m(r"^[a-z_]+-[0-9a-f]{16}$", "plan-0123456789abcde"));
        assert!(m("b", "abc"), "unanchored patterns match anywhere");
    }

    #[test]
    fn long_input_does_not_recurse_per_character() {
        assert!(m("^[0-9a-f]+$", &"a".repeat(1 << 20)));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for p in [r"^\d+$", "a.b", "(?=a)", "(a)*", r"\1", "a+?", "[a", "a{2,1}", r"[\w]"] {
            assert!(Pattern::parse(p).is_none(), "{p}");
        }
    }
}

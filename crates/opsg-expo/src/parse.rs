//! The parse driver: splits the input into lines, validates UTF-8, assembles samples into
//! families and enforces the per-format rules that need more than one line.
//!
//! Three entry points share one engine:
//! - [`parse`] materializes an [`Exposition`] whose strings borrow from the input;
//! - [`parse_with`] streams samples to a callback without collecting them;
//! - [`parse_reader`] streams from any `io::Read` through a fixed-size buffer, so a payload of
//!   any size is parsed in bounded memory.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use crate::error::ParseError;
use crate::line::{Line, LineMemo, bytes_eq, fast_sample, is_float, parse_float, parse_line};
use crate::model::{Exposition, Format, Label, MetricFamily, MetricKind, ParseOptions, Sample};

/// A family as seen by a streaming callback: its metadata so far and its index.
///
/// Indices are assigned in order of first appearance and never change, so a consumer can group
/// samples by `index` without comparing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyMeta<'m> {
    /// Position of the family in order of first appearance.
    pub index: usize,
    /// The family name.
    pub name: &'m str,
    /// The declared type (`Unknown` without a `# TYPE`).
    pub kind: MetricKind,
    /// HELP text seen so far (text 0.0.4 may put HELP after the samples).
    pub help: Option<&'m str>,
    /// OpenMetrics UNIT.
    pub unit: Option<&'m str>,
}

/// Owned metadata of one family, as reported at the end of a streaming parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInfo {
    /// The family name.
    pub name: String,
    /// The declared type.
    pub kind: MetricKind,
    /// HELP text, unescaped (`None` when absent or empty).
    pub help: Option<String>,
    /// OpenMetrics UNIT (`None` when absent or empty).
    pub unit: Option<String>,
    /// How many samples the family had.
    pub samples: u64,
}

/// What a streaming parse saw, returned when it completes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParseSummary {
    /// Every family in order of first appearance.
    pub families: Vec<FamilyInfo>,
    /// Lines read (the last line counts even without a final newline).
    pub lines: u64,
    /// Samples delivered to the callback.
    pub samples: u64,
    /// Bytes consumed.
    pub bytes: u64,
    /// Lenient mode: the problems found (at most `max_diagnostics` of them).
    pub diagnostics: Vec<ParseError>,
    /// Lenient mode: problems found beyond `max_diagnostics`, counted but not stored.
    pub diagnostics_dropped: u64,
}

/// An error from [`parse_reader`]: reading failed, or the bytes read do not parse.
#[derive(Debug)]
pub enum StreamError {
    /// The reader failed.
    Io(io::Error),
    /// The input is invalid (strict mode) or a limit was crossed.
    Parse(ParseError),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Io(e) => write!(f, "read error: {e}"),
            StreamError::Parse(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Io(e) => Some(e),
            StreamError::Parse(e) => Some(e),
        }
    }
}

impl From<ParseError> for StreamError {
    fn from(e: ParseError) -> Self {
        StreamError::Parse(e)
    }
}

/// Where the engine delivers samples. A sink that only looks at a sample hands its label
/// vector back, emptied, and the next sample of the chunk reuses it: with [`parse_reader`] no
/// sample costs an allocation.
trait SampleSink<'s> {
    fn take(&mut self, meta: &FamilyMeta<'_>, sample: Sample<'s>) -> Option<Vec<Label<'s>>>;
}

/// A sink that keeps the samples ([`parse`], [`parse_with`]).
struct Keep<F>(F);

impl<'s, F: FnMut(&FamilyMeta<'_>, Sample<'s>)> SampleSink<'s> for Keep<F> {
    #[inline]
    fn take(&mut self, meta: &FamilyMeta<'_>, sample: Sample<'s>) -> Option<Vec<Label<'s>>> {
        (self.0)(meta, sample);
        None
    }
}

/// A sink that lends each sample to a callback ([`parse_reader`]).
struct Lend<F>(F);

impl<'s, F: for<'x> FnMut(&FamilyMeta<'_>, &Sample<'x>)> SampleSink<'s> for Lend<F> {
    #[inline]
    fn take(&mut self, meta: &FamilyMeta<'_>, mut sample: Sample<'s>) -> Option<Vec<Label<'s>>> {
        (self.0)(meta, &sample);
        let mut labels = std::mem::take(&mut sample.labels);
        labels.clear();
        Some(labels)
    }
}

/// Parses a whole exposition into families.
///
/// Strict mode (`opts.lenient == false`) returns the first problem as the error; lenient mode
/// returns everything that parsed plus one diagnostic per problem. Never panics, whatever the
/// bytes.
pub fn parse<'a>(input: &'a [u8], opts: &ParseOptions) -> Result<Exposition<'a>, ParseError> {
    let mut per_family: Vec<Vec<Sample<'a>>> = Vec::new();
    let asm = run_slice(
        input,
        opts,
        &mut Keep(|meta: &FamilyMeta<'_>, s: Sample<'a>| {
            if per_family.len() <= meta.index {
                per_family.resize_with(meta.index + 1, Vec::new);
            }
            per_family[meta.index].push(s);
        }),
    )?;
    per_family.resize_with(asm.families.len(), Vec::new);
    let families = asm
        .families
        .into_iter()
        .zip(per_family)
        .map(|(f, samples)| MetricFamily {
            name: Cow::Owned(f.name),
            kind: f.kind,
            help: f.help.map(Cow::Owned),
            unit: f.unit.map(Cow::Owned),
            samples,
        })
        .collect();
    Ok(Exposition { families, diagnostics: asm.diags })
}

/// Parses `input`, handing each sample to `on_sample` instead of collecting them.
///
/// Samples still borrow from `input` (lifetime `'a`), so a consumer may keep the ones it wants.
pub fn parse_with<'a, F>(
    input: &'a [u8],
    opts: &ParseOptions,
    mut on_sample: F,
) -> Result<ParseSummary, ParseError>
where
    F: FnMut(&FamilyMeta<'_>, Sample<'a>),
{
    let asm = run_slice(input, opts, &mut Keep(&mut on_sample))?;
    Ok(asm.summary())
}

/// Size of the read buffer of [`parse_reader`]; lines longer than this grow it, up to
/// [`MAX_LINE_BYTES`].
const READ_CHUNK: usize = 256 * 1024;

/// The longest line [`parse_reader`] accepts (a bound on its memory).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Parses from a reader in bounded memory: a buffer of 256 KiB (grown only for a longer line,
/// up to [`MAX_LINE_BYTES`]). Samples borrow from that buffer, so the callback sees each one
/// only by reference for the duration of the call: `s.clone().into_owned()` keeps one. (Lending
/// instead of giving lets the parser reuse one label vector for every sample of a buffer: the
/// per-sample allocation and free were an eighth of the parse.)
///
/// Besides the buffer, the parser keeps one small record per distinct metric family (names,
/// HELP, UNIT) and, in OpenMetrics mode, one hash per series of the current family; nothing per
/// sample. Set `max_bytes` to bound a hostile payload with millions of distinct family names.
pub fn parse_reader<R, F>(
    mut reader: R,
    opts: &ParseOptions,
    on_sample: F,
) -> Result<ParseSummary, StreamError>
where
    R: Read,
    F: for<'s> FnMut(&FamilyMeta<'_>, &Sample<'s>),
{
    let mut on_sample = Lend(on_sample);
    let mut asm = Assembler::new(opts);
    let mut buf: Vec<u8> = vec![0; READ_CHUNK];
    let mut filled = 0usize;
    let mut total: u64 = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_LINE_BYTES {
                return Err(StreamError::Parse(ParseError::new(
                    asm.line_no + 1,
                    1,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )));
            }
            let new_len = (buf.len() * 2).min(MAX_LINE_BYTES);
            buf.resize(new_len, 0);
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Io(e)),
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        if let Some(max) = opts.max_bytes
            && total > max
        {
            // Locate the cap inside what was read, for an honest line/column.
            let over = (n as u64 - (total - max)) as usize;
            let upto = filled + over;
            let (line, col) = line_col(&buf[..upto], asm.line_no + 1);
            return Err(StreamError::Parse(ParseError::new(
                line,
                col,
                format!("input larger than the {max}-byte limit"),
            )));
        }
        filled += n;
        // Process every complete line in the buffer; keep the partial last one.
        if let Some(last_nl) = buf[..filled].iter().rposition(|&b| b == b'\n') {
            asm.feed_bytes(&buf[..=last_nl], &mut on_sample)?;
            buf.copy_within(last_nl + 1..filled, 0);
            filled -= last_nl + 1;
        }
    }
    if filled > 0 {
        asm.feed_bytes(&buf[..filled], &mut on_sample)?;
    }
    asm.bytes = total;
    asm.finish()?;
    Ok(asm.summary())
}

/// Line and column (1-based) of the byte just past `prefix`, where `prefix` starts a line.
fn line_col(prefix: &[u8], first_line: u64) -> (u64, u64) {
    let newlines = prefix.iter().filter(|&&b| b == b'\n').count() as u64;
    let col = match prefix.iter().rposition(|&b| b == b'\n') {
        Some(i) => prefix.len() - i,
        None => prefix.len() + 1,
    };
    (first_line + newlines, col as u64)
}

fn run_slice<'a, S>(
    input: &'a [u8],
    opts: &ParseOptions,
    sink: &mut S,
) -> Result<Assembler, ParseError>
where
    S: SampleSink<'a>,
{
    let mut asm = Assembler::new(opts);
    let mut body = input;
    let mut over_cap = None;
    if let Some(max) = opts.max_bytes
        && input.len() as u64 > max
    {
        body = &input[..max as usize];
        // Report the cap where it is crossed, once everything before it has been parsed.
        let (line, col) = line_col(body, 1);
        over_cap =
            Some(ParseError::new(line, col, format!("input larger than the {max}-byte limit")));
    }
    if let Some(e) = over_cap {
        // Parse only whole lines before the cap, so strict mode still reports an earlier error.
        let whole = match body.iter().rposition(|&b| b == b'\n') {
            Some(i) => &body[..=i],
            None => &body[..0],
        };
        asm.feed_bytes(whole, sink)?;
        return Err(e);
    }
    asm.bytes = body.len() as u64;
    asm.feed_bytes(body, sink)?;
    asm.finish()?;
    Ok(asm)
}

/// Per-family state kept while parsing.
struct Family {
    name: String,
    kind: MetricKind,
    help: Option<String>,
    unit: Option<String>,
    help_seen: bool,
    type_seen: bool,
    unit_seen: bool,
    samples: u64,
    first_line: u64,
    /// OpenMetrics: the family's names have been entered in the clash table.
    claimed: bool,
    /// The name as prometheus_client's `escaping=underscores` writes sample names (every byte
    /// outside `[A-Za-z0-9_]` as `_`), when that differs from the name.
    escaped: Option<String>,
}

/// OpenMetrics histogram rules for one run of samples of one series group and timestamp (the
/// conformance suite's reference parser checks exactly these).
#[derive(Debug, Clone)]
struct HistRun {
    group: u64,
    ts: Option<i64>,
    bucket: Option<f64>,
    value: f64,
    count: Option<f64>,
    has_sum: bool,
    has_gsum: bool,
    neg_buckets: bool,
    neg_gsum: bool,
    line: u64,
}

/// OpenMetrics grouping state of the current family.
#[derive(Default)]
struct GroupState {
    seen: HashSet<u64>,
    current: Option<u64>,
    ts: Option<i64>,
    hist: Option<HistRun>,
}

/// Assembles lines into families and applies the multi-line rules.
struct Assembler {
    format: Format,
    lenient: bool,
    max_samples: Option<u64>,
    max_diags: usize,
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    current: Option<usize>,
    /// The last sample resolved to `current` because that family owns its name (the first test
    /// of [`Self::resolve`]); a sample with the same name right after it needs no lookup.
    owned_last: bool,
    /// OpenMetrics: every sample name claimed by a closed family (name clash detection).
    claimed: HashMap<String, usize>,
    groups: GroupState,
    eof_seen: bool,
    line_no: u64,
    samples: u64,
    bytes: u64,
    diags: Vec<ParseError>,
    diags_dropped: u64,
}

/// Sample-name suffixes a family of `kind` owns, text 0.0.4 (as expfmt groups them).
fn text_suffixes(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Summary => &["", "_sum", "_count"],
        MetricKind::Histogram => &["", "_bucket", "_sum", "_count"],
        MetricKind::GaugeHistogram => &["", "_bucket", "_sum", "_count", "_gsum", "_gcount"],
        _ => &[""],
    }
}

/// Sample-name suffixes a family of `kind` owns in OpenMetrics 1.0.
fn om_suffixes(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Counter => &["_total", "_created"],
        MetricKind::Summary => &["", "_count", "_sum", "_created"],
        MetricKind::Histogram => &["_count", "_sum", "_bucket", "_created"],
        MetricKind::GaugeHistogram => &["_gcount", "_gsum", "_bucket"],
        MetricKind::Info => &["_info"],
        _ => &[""],
    }
}

/// What lenient OpenMetrics mode also attaches to a family (spellings Prometheus' own parser
/// accepts: a bare counter or info name, `_count`/`_sum` on a gauge histogram).
fn om_lenient_suffixes(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Counter => &["", "_total", "_created"],
        MetricKind::Summary => &["", "_count", "_sum", "_created"],
        MetricKind::Histogram => &["_count", "_sum", "_bucket", "_created"],
        MetricKind::GaugeHistogram => &["_gcount", "_gsum", "_bucket", "_count", "_sum"],
        MetricKind::Info => &["_info", ""],
        _ => &[""],
    }
}

#[inline]
fn owns(family: &str, suffixes: &[&str], sample: &str) -> bool {
    let (f, s) = (family.as_bytes(), sample.as_bytes());
    s.len() >= f.len()
        && bytes_eq(&s[..f.len()], f)
        && suffixes.iter().any(|suffix| bytes_eq(&s[f.len()..], suffix.as_bytes()))
}

/// The value of label `name` (the hot-path version of `Sample::label`). Searched from the end:
/// `le` and `quantile` come last, and a parsed sample never repeats a label name.
#[inline]
fn label_of<'s>(s: &'s Sample<'_>, name: &str) -> Option<&'s str> {
    s.labels
        .iter()
        .rev()
        .find(|(n, _)| bytes_eq(n.as_bytes(), name.as_bytes()))
        .map(|(_, v)| v.as_ref())
}

/// `name` with every byte outside `[A-Za-z0-9_]` replaced by `_`, if that changes anything.
fn underscore_escaped(name: &str) -> Option<String> {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some(
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect(),
    )
}

fn is_integer(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0
}

/// An order-independent hash of the labels, leaving out `skip` (`le`, `quantile`, ...).
fn group_key(labels: &[crate::model::Label<'_>], skip: Option<&str>) -> u64 {
    let mut acc: u64 = 0;
    for (n, v) in labels {
        if Some(n.as_ref()) == skip {
            continue;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        n.hash(&mut h);
        v.hash(&mut h);
        acc = acc.wrapping_add(h.finish());
    }
    acc
}

impl Assembler {
    fn new(opts: &ParseOptions) -> Self {
        Assembler {
            format: opts.format,
            lenient: opts.lenient,
            max_samples: opts.max_samples,
            max_diags: opts.max_diagnostics,
            families: Vec::new(),
            by_name: HashMap::new(),
            current: None,
            owned_last: false,
            claimed: HashMap::new(),
            groups: GroupState::default(),
            eof_seen: false,
            line_no: 0,
            samples: 0,
            bytes: 0,
            diags: Vec::new(),
            diags_dropped: 0,
        }
    }

    fn summary(self) -> ParseSummary {
        ParseSummary {
            families: self
                .families
                .into_iter()
                .map(|f| FamilyInfo {
                    name: f.name,
                    kind: f.kind,
                    help: f.help,
                    unit: f.unit,
                    samples: f.samples,
                })
                .collect(),
            lines: self.line_no,
            samples: self.samples,
            bytes: self.bytes,
            diagnostics: self.diags,
            diagnostics_dropped: self.diags_dropped,
        }
    }

    /// Records a problem: an error in strict mode, a diagnostic in lenient mode.
    fn problem(&mut self, line: u64, column: u64, message: String) -> Result<(), ParseError> {
        let e = ParseError::new(line, column, message);
        if !self.lenient {
            return Err(e);
        }
        if self.diags.len() < self.max_diags {
            self.diags.push(e);
        } else {
            self.diags_dropped += 1;
        }
        Ok(())
    }

    /// Feeds complete lines (the last one may lack its `\n` at the end of input).
    fn feed_bytes<'s, S>(&mut self, bytes: &'s [u8], sink: &mut S) -> Result<(), ParseError>
    where
        S: SampleSink<'s>,
    {
        let mut pos = 0;
        while pos < bytes.len() {
            match std::str::from_utf8(&bytes[pos..]) {
                Ok(s) => {
                    self.feed_str(s, sink)?;
                    return Ok(());
                }
                Err(e) => {
                    let bad = pos + e.valid_up_to();
                    let line_start = match bytes[pos..bad].iter().rposition(|&b| b == b'\n') {
                        Some(i) => pos + i + 1,
                        None => pos,
                    };
                    // Lines before the bad one are valid UTF-8.
                    let good = std::str::from_utf8(&bytes[pos..line_start]).unwrap_or("");
                    self.feed_str(good, sink)?;
                    self.line_no += 1;
                    let col = (bad - line_start + 1) as u64;
                    let line = self.line_no;
                    if self.format == Format::OpenMetrics && self.eof_seen {
                        self.problem(line, 1, "unexpected data after `# EOF`".into())?;
                    }
                    self.problem(line, col, "invalid UTF-8".into())?;
                    pos = match bytes[bad..].iter().position(|&b| b == b'\n') {
                        Some(i) => bad + i + 1,
                        None => bytes.len(),
                    };
                }
            }
        }
        Ok(())
    }

    /// Feeds complete, valid UTF-8 lines.
    fn feed_str<'s, S>(&mut self, text: &'s str, sink: &mut S) -> Result<(), ParseError>
    where
        S: SampleSink<'s>,
    {
        let bytes = text.as_bytes();
        let mut start = 0;
        let om = self.format == Format::OpenMetrics;
        let mut memo = LineMemo::new();
        // The label vector a lending sink handed back, for the next sample.
        let mut spare: Vec<Label<'s>> = Vec::new();
        while start < bytes.len() {
            if !(om && self.eof_seen) {
                let ln32 = u32::try_from(self.line_no + 1).unwrap_or(u32::MAX);
                if let Some((sample, len, same_name)) =
                    fast_sample(text, start, om, ln32, &mut memo, &mut spare)
                {
                    start += len + 1;
                    self.line_no += 1;
                    self.on_sample(sample, self.line_no, same_name, sink, &mut spare)?;
                    continue;
                }
            }
            let end = match find_newline(&bytes[start..]) {
                Some(i) => start + i,
                None => bytes.len(),
            };
            let mut line = &text[start..end];
            start = end + 1;
            self.line_no += 1;
            let ln = self.line_no;
            if om {
                if self.eof_seen {
                    self.problem(ln, 1, "unexpected data after `# EOF`".into())?;
                    continue;
                }
            } else if line.as_bytes().last() == Some(&b'\r') {
                // CRLF files: text 0.0.4 tolerates the CR (documented choice).
                line = &line[..line.len() - 1];
            }
            let parsed = parse_line(line, self.format, u32::try_from(ln).unwrap_or(u32::MAX));
            match parsed {
                Ok(l) => self.on_line(l, ln, sink, &mut spare)?,
                Err(e) => self.problem(ln, e.at as u64 + 1, e.message)?,
            }
        }
        Ok(())
    }

    fn on_line<'s, S>(
        &mut self,
        line: Line<'s>,
        ln: u64,
        sink: &mut S,
        spare: &mut Vec<Label<'s>>,
    ) -> Result<(), ParseError>
    where
        S: SampleSink<'s>,
    {
        match line {
            Line::Blank | Line::Comment => Ok(()),
            Line::Eof => {
                self.close_current()?;
                self.eof_seen = true;
                Ok(())
            }
            Line::Help { name, text } => self.on_help(&name, &text, ln),
            Line::Type { name, kind } => self.on_type(&name, kind, ln),
            Line::Unit { name, unit } => self.on_unit(&name, unit, ln),
            Line::Sample(s) => self.on_sample(s, ln, false, sink, spare),
        }
    }

    fn new_family(&mut self, name: &str, ln: u64) -> usize {
        let idx = self.families.len();
        self.families.push(Family {
            name: name.to_string(),
            kind: MetricKind::Unknown,
            help: None,
            unit: None,
            help_seen: false,
            type_seen: false,
            unit_seen: false,
            samples: 0,
            first_line: ln,
            claimed: false,
            escaped: underscore_escaped(name),
        });
        self.by_name.insert(name.to_string(), idx);
        idx
    }

    /// Text 0.0.4: the family a metadata line refers to, created if new.
    fn text_meta_family(&mut self, name: &str, ln: u64) -> usize {
        match self.by_name.get(name) {
            Some(&i) => i,
            None => self.new_family(name, ln),
        }
    }

    /// OpenMetrics: the family a metadata line refers to. Metadata starts a new family unless it
    /// names the current one; `None` when the line must be ignored (lenient mode).
    fn om_meta_family(
        &mut self,
        name: &str,
        what: &str,
        ln: u64,
    ) -> Result<Option<usize>, ParseError> {
        if let Some(cur) = self.current
            && self.families[cur].name == name
        {
            if self.families[cur].samples > 0 {
                self.problem(ln, 1, format!("{what} for `{name}` after its samples"))?;
                return Ok(None);
            }
            return Ok(Some(cur));
        }
        if let Some(&i) = self.by_name.get(name) {
            let first = self.families[i].first_line;
            self.problem(
                ln,
                1,
                format!("{what} for `{name}`, whose family already appeared at line {first}"),
            )?;
            return Ok(None);
        }
        self.close_current()?;
        let idx = self.new_family(name, ln);
        self.current = Some(idx);
        self.groups = GroupState::default();
        Ok(Some(idx))
    }

    fn on_help(&mut self, name: &str, text: &str, ln: u64) -> Result<(), ParseError> {
        let idx = if self.format == Format::OpenMetrics {
            match self.om_meta_family(name, "HELP", ln)? {
                Some(i) => i,
                None => return Ok(()),
            }
        } else {
            if text.is_empty() {
                // expfmt ignores a HELP without text.
                return Ok(());
            }
            self.text_meta_family(name, ln)
        };
        if self.families[idx].help_seen {
            return self.problem(ln, 1, format!("second HELP line for metric `{name}`"));
        }
        let f = &mut self.families[idx];
        f.help_seen = true;
        f.help = (!text.is_empty()).then(|| text.to_string());
        Ok(())
    }

    fn on_type(&mut self, name: &str, kind: MetricKind, ln: u64) -> Result<(), ParseError> {
        let idx = if self.format == Format::OpenMetrics {
            match self.om_meta_family(name, "TYPE", ln)? {
                Some(i) => i,
                None => return Ok(()),
            }
        } else {
            self.text_meta_family(name, ln)
        };
        let f = &self.families[idx];
        if f.type_seen || f.samples > 0 {
            return self.problem(
                ln,
                1,
                format!("second TYPE line for metric `{name}`, or TYPE reported after samples"),
            );
        }
        let f = &mut self.families[idx];
        f.type_seen = true;
        f.kind = kind;
        Ok(())
    }

    fn on_unit(&mut self, name: &str, unit: &str, ln: u64) -> Result<(), ParseError> {
        let Some(idx) = self.om_meta_family(name, "UNIT", ln)? else {
            return Ok(());
        };
        if self.families[idx].unit_seen {
            return self.problem(ln, 1, format!("second UNIT line for metric `{name}`"));
        }
        let f = &mut self.families[idx];
        f.unit_seen = true;
        f.unit = (!unit.is_empty()).then(|| unit.to_string());
        if !unit.is_empty() {
            let suffix_ok = name.len() > unit.len() + 1
                && name.ends_with(unit)
                && name.as_bytes()[name.len() - unit.len() - 1] == b'_';
            if !suffix_ok {
                return self.problem(
                    ln,
                    1,
                    format!("unit `{unit}` is not a suffix of metric `{name}`"),
                );
            }
        }
        Ok(())
    }

    /// OpenMetrics: leaves the current family, running its end-of-family checks.
    fn close_current(&mut self) -> Result<(), ParseError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if self.format != Format::OpenMetrics {
            return Ok(());
        }
        self.finish_hist_run()?;
        self.groups = GroupState::default();
        let f = &self.families[cur];
        let line = f.first_line;
        if f.unit.is_some() && matches!(f.kind, MetricKind::Info | MetricKind::StateSet) {
            let msg = format!("a UNIT is not allowed on {} family `{}`", f.kind, f.name);
            self.problem(line, 1, msg)?;
        }
        if !self.families[cur].claimed {
            self.families[cur].claimed = true;
            let kind = self.families[cur].kind;
            let mut names: Vec<String> = om_suffixes(kind)
                .iter()
                .chain(std::iter::once(&""))
                .map(|s| format!("{}{s}", self.families[cur].name))
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                if let Some(&other) = self.claimed.get(&n) {
                    let (oname, oline) =
                        (&self.families[other].name, self.families[other].first_line);
                    let msg = format!(
                        "metric family `{}` clashes with family `{oname}` (line {oline}) over the name `{n}`",
                        self.families[cur].name
                    );
                    self.problem(line, 1, msg)?;
                } else {
                    self.claimed.insert(n, cur);
                }
            }
        }
        Ok(())
    }

    /// The family a sample belongs to, creating one when needed.
    fn resolve(&mut self, name: &str, ln: u64) -> Result<usize, ParseError> {
        let om = self.format == Format::OpenMetrics;
        if let Some(cur) = self.current {
            let f = &self.families[cur];
            let suffixes = if om { om_suffixes(f.kind) } else { text_suffixes(f.kind) };
            if owns(&f.name, suffixes, name) {
                self.owned_last = true;
                return Ok(cur);
            }
        }
        self.owned_last = false;
        if !om {
            // expfmt: the exact name first, then the summary/histogram the suffix points to.
            let idx = match self.lookup(name, text_suffixes) {
                Some(i) => i,
                None => self.new_family(name, ln),
            };
            self.current = Some(idx);
            return Ok(idx);
        }
        if self.lenient
            && let Some(cur) = self.current
            && let Some(escaped) = self.families[cur].escaped.as_deref()
            && owns(escaped, om_lenient_suffixes(self.families[cur].kind), name)
        {
            // prometheus_client 0.26 with the default `escaping=underscores` writes
            // `# TYPE vllm:x counter` but `vllm_x_total ...`: keep the samples with their family
            // (and its type) and say so once per line.
            let fname = self.families[cur].name.clone();
            self.problem(
                ln,
                1,
                format!(
                    "sample `{name}` spells family `{fname}` with `:`/`.` escaped as `_` \
                     (prometheus_client `escaping=underscores`); ask for `escaping=allow-utf-8`"
                ),
            )?;
            return Ok(cur);
        }
        let table = if self.lenient { om_lenient_suffixes } else { om_suffixes };
        if let Some(i) = self.lookup(name, table) {
            let fname = self.families[i].name.clone();
            if Some(i) == self.current {
                let kind = self.families[i].kind;
                self.problem(
                    ln,
                    1,
                    format!("sample name `{name}` is not valid for {kind} family `{fname}`"),
                )?;
            } else {
                let first = self.families[i].first_line;
                self.problem(
                    ln,
                    1,
                    format!(
                        "sample `{name}` belongs to family `{fname}` (line {first}), which another \
                         family already followed: families must not be interleaved"
                    ),
                )?;
                self.close_current()?;
                self.current = Some(i);
            }
            return Ok(i);
        }
        self.close_current()?;
        let idx = self.new_family(name, ln);
        self.current = Some(idx);
        Ok(idx)
    }

    /// A family that owns `name` by exact name or by a suffix of its kind.
    fn lookup(
        &self,
        name: &str,
        table: fn(MetricKind) -> &'static [&'static str],
    ) -> Option<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return Some(i);
        }
        for suffix in
            ["_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info"]
        {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&i) = self.by_name.get(base)
                && table(self.families[i].kind).contains(&suffix)
            {
                return Some(i);
            }
        }
        None
    }

    /// `same_name`: the sample's name is the one of the sample on the line just before, so
    /// when that one belonged to the current family by name, so does this one.
    fn on_sample<'s, S>(
        &mut self,
        s: Sample<'s>,
        ln: u64,
        same_name: bool,
        sink: &mut S,
        spare: &mut Vec<Label<'s>>,
    ) -> Result<(), ParseError>
    where
        S: SampleSink<'s>,
    {
        let idx = match self.current {
            Some(cur) if same_name && self.owned_last => cur,
            _ => self.resolve(&s.name, ln)?,
        };
        if self.format == Format::OpenMetrics {
            self.om_checks(idx, &s, ln)?;
        } else {
            self.text_checks(idx, &s, ln)?;
        }
        self.samples += 1;
        if let Some(max) = self.max_samples
            && self.samples > max
        {
            return Err(ParseError::new(ln, 1, format!("more than {max} samples")));
        }
        let f = &mut self.families[idx];
        f.samples += 1;
        let meta = FamilyMeta {
            index: idx,
            name: &f.name,
            kind: f.kind,
            help: f.help.as_deref(),
            unit: f.unit.as_deref(),
        };
        if let Some(labels) = sink.take(&meta, s) {
            *spare = labels;
        }
        Ok(())
    }

    /// Text 0.0.4 rules that expfmt enforces per sample.
    #[inline]
    fn text_checks(&mut self, idx: usize, s: &Sample<'_>, ln: u64) -> Result<(), ParseError> {
        let f = &self.families[idx];
        let suffix = s.name.as_bytes().get(f.name.len()..).unwrap_or(b"");
        // The common case, decided without building anything: a valid bucket, count or
        // quantile (or a kind without per-sample rules).
        let clean = match f.kind {
            MetricKind::Unknown | MetricKind::Counter | MetricKind::Gauge => true,
            MetricKind::Histogram | MetricKind::GaugeHistogram => {
                if bytes_eq(suffix, b"_bucket") {
                    s.value >= 0.0 && label_of(s, "le").is_some_and(is_float)
                } else {
                    !(s.value < 0.0
                        && (bytes_eq(suffix, b"_count") || bytes_eq(suffix, b"_gcount")))
                }
            }
            MetricKind::Summary if suffix.is_empty() => {
                label_of(s, "quantile").is_none_or(is_float)
            }
            _ => true,
        };
        if clean {
            return Ok(());
        }
        self.text_problems(idx, s, ln)
    }

    /// The problems [`Self::text_checks`] found, each with its message.
    #[cold]
    fn text_problems(&mut self, idx: usize, s: &Sample<'_>, ln: u64) -> Result<(), ParseError> {
        let f = &self.families[idx];
        let suffix = s.name.get(f.name.len()..).unwrap_or("");
        let mut msgs: Vec<String> = Vec::new();
        match f.kind {
            MetricKind::Histogram | MetricKind::GaugeHistogram => {
                if suffix == "_bucket" {
                    match label_of(s, "le") {
                        None => msgs.push(format!(
                            "histogram bucket of `{}` without an `le` label",
                            f.name
                        )),
                        Some(le) if !is_float(le) => {
                            msgs.push(format!(
                                "expected float as value for `le` label, got `{le}`"
                            ));
                        }
                        _ => {}
                    }
                    if s.value < 0.0 {
                        msgs.push(format!("negative bucket population for histogram `{}`", f.name));
                    }
                } else if (suffix == "_count" || suffix == "_gcount") && s.value < 0.0 {
                    msgs.push(format!("negative count for histogram `{}`", f.name));
                }
            }
            MetricKind::Summary if suffix.is_empty() => {
                if let Some(q) = label_of(s, "quantile")
                    && !is_float(q)
                {
                    msgs.push(format!("expected float as value for `quantile` label, got `{q}`"));
                }
            }
            _ => {}
        }
        for m in msgs {
            self.problem(ln, 1, m)?;
        }
        Ok(())
    }

    /// OpenMetrics 1.0 rules, as the conformance suite's reference parser applies them.
    fn om_checks(&mut self, idx: usize, s: &Sample<'_>, ln: u64) -> Result<(), ParseError> {
        let kind = self.families[idx].kind;
        let fname = self.families[idx].name.clone();
        let suffix = s.name.get(fname.len()..).unwrap_or("").to_string();
        let v = s.value;
        let is_hist = matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram);
        if kind == MetricKind::StateSet {
            if s.label(&fname).is_none() {
                self.problem(ln, 1, format!("stateset sample without the `{fname}` label"))?;
            }
            if v != 0.0 && v != 1.0 {
                self.problem(ln, 1, format!("stateset values must be 0 or 1, got `{v}`"))?;
            }
        }
        if kind == MetricKind::Info && v != 1.0 {
            self.problem(ln, 1, format!("info values must be 1, got `{v}`"))?;
        }
        if is_hist && suffix == "_bucket" {
            let le_ok = s.label("le").is_some_and(|le| {
                parse_float(le)
                    .is_some_and(|b| !b.is_nan() && (b.is_finite() || le == "+Inf" || le == "-Inf"))
            });
            if !le_ok {
                self.problem(ln, 1, "histogram bucket without a valid `le` label".into())?;
            }
            if !is_integer(v) {
                self.problem(ln, 1, format!("bucket value must be an integer, got `{v}`"))?;
            }
        }
        if is_hist && (suffix == "_count" || suffix == "_gcount") && !is_integer(v) {
            self.problem(ln, 1, format!("count value must be an integer, got `{v}`"))?;
        }
        if kind == MetricKind::Summary && suffix.is_empty() {
            let q_ok =
                s.label("quantile").and_then(parse_float).is_some_and(|q| (0.0..=1.0).contains(&q));
            if !q_ok {
                self.problem(
                    ln,
                    1,
                    "summary quantile without a valid `quantile` label in [0, 1]".into(),
                )?;
            }
            if v < 0.0 {
                self.problem(ln, 1, format!("quantile values cannot be negative, got `{v}`"))?;
            }
        }
        let counter_like = matches!(
            suffix.as_str(),
            "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
        ) && kind != MetricKind::Unknown;
        if counter_like && v.is_nan() {
            self.problem(ln, 1, format!("`{}` cannot be NaN", s.name))?;
        }
        if counter_like && suffix != "_gsum" && v < 0.0 {
            self.problem(ln, 1, format!("`{}` cannot be negative", s.name))?;
        }
        if s.exemplar.is_some()
            && !((is_hist && suffix == "_bucket")
                || (kind == MetricKind::Counter && suffix == "_total"))
        {
            self.problem(
                ln,
                1,
                format!(
                    "exemplar on `{}`: only histogram buckets and counter totals may have one",
                    s.name
                ),
            )?;
        }
        // Grouping: a series group (labels minus le/quantile/state) must be contiguous, and its
        // timestamps must not mix presence or go backwards.
        let skip = match kind {
            _ if is_hist && suffix == "_bucket" => Some("le"),
            MetricKind::Summary if suffix.is_empty() => Some("quantile"),
            MetricKind::StateSet => Some(fname.as_str()),
            _ => None,
        };
        let g = if kind == MetricKind::Info { 0 } else { group_key(&s.labels, skip) };
        let ts = s.timestamp_ms;
        if self.groups.current == Some(g) {
            if ts.is_some() != self.groups.ts.is_some() {
                self.problem(
                    ln,
                    1,
                    "mix of samples with and without timestamp within a group".into(),
                )?;
            } else if let (Some(prev), Some(now)) = (self.groups.ts, ts)
                && now < prev
                && kind != MetricKind::Info
            {
                self.problem(ln, 1, "timestamps went backwards within a group".into())?;
            }
        } else if self.groups.current.is_some() && self.groups.seen.contains(&g) {
            self.problem(
                ln,
                1,
                "invalid metric grouping: a series group reappears after another group".into(),
            )?;
        }
        self.groups.seen.insert(g);
        self.groups.current = Some(g);
        self.groups.ts = ts;
        if is_hist && !suffix.is_empty() {
            let new_run = self.groups.hist.as_ref().is_none_or(|r| r.group != g || r.ts != ts);
            if new_run {
                self.finish_hist_run()?;
                self.groups.hist = Some(HistRun {
                    group: g,
                    ts,
                    bucket: None,
                    value: 0.0,
                    count: None,
                    has_sum: false,
                    has_gsum: false,
                    neg_buckets: false,
                    neg_gsum: false,
                    line: ln,
                });
            }
            let mut out_of_order = None;
            if let Some(run) = self.groups.hist.as_mut() {
                run.line = ln;
                match suffix.as_str() {
                    "_bucket" => {
                        let b = s.label("le").and_then(parse_float).unwrap_or(f64::NAN);
                        if b < 0.0 {
                            run.neg_buckets = true;
                        }
                        if let Some(prev) = run.bucket
                            && b.partial_cmp(&prev) != Some(std::cmp::Ordering::Greater)
                        {
                            out_of_order =
                                Some("histogram buckets out of order (`le` not increasing)");
                        } else if v < run.value {
                            out_of_order =
                                Some("histogram bucket values not cumulative (decreasing)");
                        }
                        run.bucket = Some(b);
                        run.value = v;
                    }
                    "_count" | "_gcount" => run.count = Some(v),
                    "_sum" => run.has_sum = true,
                    "_gsum" => {
                        run.has_gsum = true;
                        if v < 0.0 {
                            run.neg_gsum = true;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(msg) = out_of_order {
                self.problem(ln, 1, format!("{msg}: `{fname}`"))?;
            }
        }
        Ok(())
    }

    /// Ends the current histogram run: +Inf present, `_count` equals it, `_sum`/`_count` pairs.
    fn finish_hist_run(&mut self) -> Result<(), ParseError> {
        let Some(run) = self.groups.hist.take() else {
            return Ok(());
        };
        let ln = run.line;
        let checks = [
            (run.bucket != Some(f64::INFINITY), "the `+Inf` bucket is missing"),
            (
                run.count.is_some_and(|c| c != run.value),
                "`_count` does not match the `+Inf` bucket",
            ),
            (run.has_sum && run.count.is_none(), "`_count` must be present if `_sum` is"),
            (run.has_gsum && run.count.is_none(), "`_gcount` must be present if `_gsum` is"),
            (
                !(run.has_sum || run.has_gsum) && run.count.is_some(),
                "`_sum` must be present if `_count` is",
            ),
            (
                run.neg_buckets && run.has_sum,
                "a histogram with negative buckets cannot have `_sum`",
            ),
            (!run.neg_buckets && run.neg_gsum, "negative `_gsum` with non-negative buckets"),
        ];
        for (bad, msg) in checks {
            if bad {
                self.problem(ln, 1, format!("histogram: {msg}"))?;
            }
        }
        Ok(())
    }

    /// End of input: OpenMetrics needs its `# EOF`.
    fn finish(&mut self) -> Result<(), ParseError> {
        if self.format == Format::OpenMetrics {
            self.close_current()?;
            if !self.eof_seen {
                let line = self.line_no + 1;
                self.problem(line, 1, "OpenMetrics input does not end with `# EOF`".into())?;
            }
        }
        Ok(())
    }
}

/// Position of the first `\n`, eight bytes at a time (the line-splitting hot loop).
#[inline]
fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_newline_agrees_with_a_plain_scan() {
        let data = b"abc\ndefghijklmnop\nqrstuvwxyz0123456789\n\n\xff\x80\n";
        for start in 0..data.len() {
            let want = data[start..].iter().position(|&c| c == b'\n');
            assert_eq!(find_newline(&data[start..]), want, "from {start}");
        }
        assert_eq!(find_newline(b"0123456789abcdef"), None);
    }

    #[test]
    fn line_col_counts_from_the_first_line() {
        assert_eq!(line_col(b"ab\ncd", 1), (2, 3));
        assert_eq!(line_col(b"", 5), (5, 1));
    }
}

//! The ledger (`schemas/HASHING.md`, section 5): the one implementation of its line format and of
//! the checks a ledger must pass, shared by every tool that reads one.
//!
//! ```text
//! {"ledger":"opsg.ledger/v1","seq":<S>,"appended":"<T>","record":<R>,"prev":"<P>","hash":"<H>"}
//! ```
//!
//! - [`build`] and [`parse`]: a ledger line, written and taken apart at fixed places without a
//!   JSON parser, so a verifier runs at hashing speed;
//! - [`examine`]: what is wrong with one line on its own (its shape, its seal, its record's seal:
//!   rules 2 and 5), independent per line, so `opsg-audit verify` runs it in parallel;
//! - [`Checker`]: links examined lines in order (rules 1, 3 and 4), looking one line ahead so that
//!   it names the line that was tampered with (a deleted, inserted, duplicated or swapped line),
//!   not merely the first one that noticed;
//! - [`Reader`]: a streaming reader that yields each line's record once the whole ledger up to it
//!   has verified, and refuses the ledger (a tamper error naming the line, exit 5) at the first
//!   problem; what opsg-triage (incident continuity) and opsg-plan (runbook memory) learn from;
//! - [`TailReader`]: reads backwards from the end, checking every line it reads and the links
//!   between them, for opsg-gate, which needs only the last hours of history on every cron run.
//!
//! Nothing learns from a ledger that fails these checks: a forged "this fix worked" line must not
//! steer remediation, and a deleted "this was restarted a minute ago" line must not lift a cooldown.

// `LineFault` carries two 64-byte digests, like `SealError` (see `seal`).
#![allow(clippy::result_large_err)]

use crate::error::{Error, Result};
use crate::seal::{self, GENESIS, HashHex, SealError, TAIL_LEN};
use serde::Serialize;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

/// The ledger format id carried by every line.
pub const LEDGER_ID: &str = "opsg.ledger/v1";

/// The longest ledger line a reader accepts: records are bounded at append time (at most
/// `MAX_LINE_BYTES - 4096`), a ledger line adds a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Everything before the sequence number.
const PREFIX: &[u8] = b"{\"ledger\":\"opsg.ledger/v1\",\"seq\":";
/// Between the sequence number and the append time.
const APPENDED: &[u8] = b",\"appended\":\"";
/// Between the append time and the embedded record.
const RECORD: &[u8] = b"\",\"record\":";
/// The longest append time accepted (RFC 3339 with nanoseconds and an offset is 35 bytes).
const MAX_APPENDED: usize = 64;
/// The most digits a `u64` sequence number can have.
const MAX_SEQ_DIGITS: usize = 20;

/// Build a sealed ledger line (without its newline) for `record`, the exact bytes of a sealed
/// record, at sequence number `seq`, linked after `prev`. Returns the line and its hash.
///
/// `appended` must be an RFC 3339 time (no quote or backslash: it is embedded as is).
pub fn build(seq: u64, appended: &str, record: &[u8], prev: HashHex) -> (Vec<u8>, HashHex) {
    let mut line = Vec::with_capacity(PREFIX.len() + 20 + APPENDED.len() + 40 + record.len() + 160);
    line.extend_from_slice(PREFIX);
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(APPENDED);
    line.extend_from_slice(appended.as_bytes());
    line.extend_from_slice(RECORD);
    line.extend_from_slice(record);
    line.extend_from_slice(b",\"prev\":\"");
    line.extend_from_slice(&prev.0);
    line.extend_from_slice(b"\"}");
    let hash = HashHex::of(&line);
    // Turn the unsealed object into the sealed line in place: drop its closing brace, append the
    // hash member (HASHING.md section 3 read backwards).
    line.pop();
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(&hash.0);
    line.extend_from_slice(b"\"}");
    (line, hash)
}

/// A whole ledger (lines 1..n, each with its newline) holding `records`, every line appended at
/// `appended`: for tests and tools that need a ledger without running `opsg-audit`.
pub fn build_all<R: AsRef<[u8]>>(records: &[R], appended: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = GENESIS;
    for (i, record) in records.iter().enumerate() {
        let (line, hash) = build(i as u64 + 1, appended, record.as_ref(), prev);
        out.extend_from_slice(&line);
        out.push(b'\n');
        prev = hash;
    }
    out
}

/// The parts of a ledger line, found at fixed places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineParts<'a> {
    /// The sequence number `S`.
    pub seq: u64,
    /// The append time `T` (not checked beyond "no quote, no backslash").
    pub appended: &'a [u8],
    /// The embedded record `R`, exact bytes.
    pub record: &'a [u8],
    /// The previous ledger line's hash `P`.
    pub prev: HashHex,
    /// This line's hash `H` as stored.
    pub hash: HashHex,
}

/// Why a line does not have the ledger-line shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeError {
    /// It does not end with the sealed tail (HASHING.md section 2).
    NotSealed,
    /// It does not begin with `{"ledger":"opsg.ledger/v1","seq":`.
    Prefix,
    /// The sequence number is not a plain positive integer.
    Seq,
    /// The append time is missing, too long, or holds a quote or backslash.
    Appended,
    /// The embedded record is empty.
    Record,
}

impl ShapeError {
    /// The member the problem is in.
    pub fn field(self) -> &'static str {
        match self {
            ShapeError::NotSealed => "hash",
            ShapeError::Prefix => "ledger",
            ShapeError::Seq => "seq",
            ShapeError::Appended => "appended",
            ShapeError::Record => "record",
        }
    }
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShapeError::NotSealed => {
                "not a sealed ledger line: it must end with `,\"prev\":\"<64 hex>\",\"hash\":\"<64 hex>\"}`"
            }
            ShapeError::Prefix => {
                "not a ledger line: it must begin with `{\"ledger\":\"opsg.ledger/v1\",\"seq\":`"
            }
            ShapeError::Seq => "`seq` is not a positive integer without sign or leading zeros",
            ShapeError::Appended => "`appended` is not a plain string followed by `,\"record\":`",
            ShapeError::Record => "the embedded `record` is empty",
        })
    }
}

/// Take a ledger line (without its newline) apart. Checks the shape only, not the hashes.
pub fn parse(line: &[u8]) -> Result<LineParts<'_>, ShapeError> {
    let at = locate(line)?;
    Ok(LineParts {
        seq: at.seq,
        appended: &line[at.appended],
        record: &line[at.record],
        prev: at.prev,
        hash: at.hash,
    })
}

/// [`LineParts`] as byte ranges, so an owned line can be kept with its parts ([`Entry`]).
struct Located {
    seq: u64,
    prev: HashHex,
    hash: HashHex,
    appended: Range<usize>,
    record: Range<usize>,
}

fn locate(line: &[u8]) -> Result<Located, ShapeError> {
    let sealed = seal::parts(line).map_err(|_| ShapeError::NotSealed)?;
    let body_end = line.len() - TAIL_LEN;
    let rest = line.strip_prefix(PREFIX).ok_or(ShapeError::Prefix)?;
    let digits = rest.iter().take(MAX_SEQ_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_SEQ_DIGITS || rest[0] == b'0' {
        return Err(ShapeError::Seq);
    }
    let seq = rest[..digits]
        .iter()
        .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(ShapeError::Seq)?;
    let rest = rest[digits..].strip_prefix(APPENDED).ok_or(ShapeError::Appended)?;
    let appended_start = line.len() - rest.len();
    let quote = rest
        .iter()
        .take(MAX_APPENDED + 1)
        .position(|&b| b == b'"' || b == b'\\')
        .ok_or(ShapeError::Appended)?;
    if quote == 0 || rest[quote] != b'"' {
        return Err(ShapeError::Appended);
    }
    let rest = rest[quote..].strip_prefix(RECORD).ok_or(ShapeError::Appended)?;
    let record_start = line.len() - rest.len();
    if record_start >= body_end {
        return Err(ShapeError::Record);
    }
    Ok(Located {
        seq,
        prev: sealed.prev,
        hash: sealed.hash,
        appended: appended_start..appended_start + quote,
        record: record_start..body_end,
    })
}

/// What is wrong with one line on its own (before looking at its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFault {
    /// Not a ledger line at all (rule 2, shape).
    Shape(ShapeError),
    /// The line's bytes do not hash to the `hash` it carries (rule 2, intact).
    NotIntact {
        /// The hash stored in the line.
        stored: HashHex,
        /// The hash its bytes have.
        computed: HashHex,
    },
    /// The embedded record is not a sealed line (rule 5, shape).
    RecordShape,
    /// The embedded record's bytes do not hash to its own `hash` (rule 5, intact).
    RecordNotIntact {
        /// The hash stored in the record.
        stored: HashHex,
        /// The hash its bytes have.
        computed: HashHex,
    },
    /// The line is longer than the reader's bound (not examined further).
    Oversized,
}

impl LineFault {
    /// What the fault means for the ledger: the kind of problem, the member, the explanation.
    /// `len` is the line's length (for [`LineFault::Oversized`]).
    pub fn describe(self, len: u64) -> (ProblemKind, &'static str, String) {
        match self {
            LineFault::Shape(e) => (ProblemKind::Malformed, e.field(), format!("{e}")),
            LineFault::NotIntact { stored, computed } => (
                ProblemKind::Modified,
                "hash",
                format!(
                    "modified: the line hashes to `{}` but carries `{}`",
                    computed.short(16),
                    stored.short(16)
                ),
            ),
            LineFault::Oversized => (
                ProblemKind::Oversized,
                "record",
                format!("the line is {len} bytes long: over the bound"),
            ),
            LineFault::RecordShape => (
                ProblemKind::Malformed,
                "record",
                "the embedded record is not a sealed record".to_string(),
            ),
            LineFault::RecordNotIntact { stored, computed } => (
                ProblemKind::RecordModified,
                "record.hash",
                format!(
                    "the record was modified and the ledger line re-sealed: the record hashes to \
                     `{}` but carries `{}`",
                    computed.short(16),
                    stored.short(16)
                ),
            ),
        }
    }
}

/// The per-line facts the chain checks need: computed independently for every line (in parallel,
/// by `opsg-audit verify`), then linked in order by a [`Checker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineFacts {
    /// Byte offset of the line in the ledger.
    pub offset: u64,
    /// Length without the newline.
    pub len: u32,
    /// `S`, when the line has the shape.
    pub seq: u64,
    /// `P`, when the line has the shape.
    pub prev: HashHex,
    /// `H` as stored, when the line has the shape.
    pub hash: HashHex,
    /// The first thing wrong with the line on its own.
    pub fault: Option<LineFault>,
}

impl LineFacts {
    /// The facts of a line longer than the bound, which is not examined at all.
    pub fn oversized(offset: u64, len: usize) -> LineFacts {
        LineFacts {
            offset,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            seq: 0,
            prev: GENESIS,
            hash: GENESIS,
            fault: Some(LineFault::Oversized),
        }
    }
}

/// Check one line on its own: shape, its seal (rule 2) and its record's seal (rule 5).
pub fn examine(line: &[u8], offset: u64) -> LineFacts {
    let mut facts = LineFacts {
        offset,
        len: u32::try_from(line.len()).unwrap_or(u32::MAX),
        seq: 0,
        prev: GENESIS,
        hash: GENESIS,
        fault: None,
    };
    let parts = match parse(line) {
        Ok(parts) => parts,
        Err(e) => {
            facts.fault = Some(LineFault::Shape(e));
            return facts;
        }
    };
    facts.seq = parts.seq;
    facts.prev = parts.prev;
    facts.hash = parts.hash;
    match seal::compute(line) {
        Ok(computed) if computed == parts.hash => {}
        Ok(computed) => {
            facts.fault = Some(LineFault::NotIntact { stored: parts.hash, computed });
            return facts;
        }
        Err(_) => {
            facts.fault = Some(LineFault::Shape(ShapeError::NotSealed));
            return facts;
        }
    }
    match seal::verify(parts.record) {
        Ok(_) => {}
        Err(SealError::MissingTail) => facts.fault = Some(LineFault::RecordShape),
        Err(SealError::HashMismatch { stored, computed }) => {
            facts.fault = Some(LineFault::RecordNotIntact { stored, computed })
        }
    }
    facts
}

/// What kind of tampering (or damage) was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not a ledger line (shape), or its embedded record is not a sealed record.
    Malformed,
    /// The line's bytes changed after it was sealed.
    Modified,
    /// The embedded record changed and the ledger line was re-sealed around it.
    RecordModified,
    /// The line was changed and re-sealed; the next line still records its old hash.
    Rewritten,
    /// One or more lines are missing here.
    Deleted,
    /// A line was inserted here.
    Inserted,
    /// The line repeats the line before it.
    Duplicated,
    /// This line and the next were swapped.
    Swapped,
    /// A line from elsewhere in the ledger (a copy, or moved).
    OutOfPlace,
    /// The first line does not start the chain at GENESIS.
    BrokenLink,
    /// The last line has no newline (a crash mid-write, or a cut).
    Torn,
    /// A line exceeds the size bound.
    Oversized,
    /// The ledger has fewer lines than the checkpoint recorded.
    Truncated,
    /// Line N does not hash to the checkpoint's head.
    CheckpointMismatch,
}

/// The first problem found, with the line it is at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The line the tampering is at (1-based; may be before `first_bad_line` when a line was
    /// re-sealed and only its successor shows it).
    pub line: u64,
    /// The first line at which one of HASHING.md section 5's rules fails (what a simple
    /// verifier reports).
    pub first_bad_line: u64,
    /// What was found.
    pub kind: ProblemKind,
    /// The member concerned.
    pub field: &'static str,
    /// The explanation, with values.
    pub message: String,
}

impl Problem {
    /// The problem as an error naming the ledger, the line and the member (exit 5).
    pub fn to_error(&self, source: &str) -> Error {
        Error::tamper(self.message.clone())
            .at_field(self.field)
            .in_source(source)
            .at_line(self.line)
    }
}

/// Links line facts in order and diagnoses the first problem. Evaluation lags one line behind
/// what was pushed, so the line after the one being judged is known.
#[derive(Debug)]
pub struct Checker {
    verified: u64,
    prev: Option<LineFacts>,
    pending: Option<LineFacts>,
    checkpoint: Option<(u64, HashHex)>,
    problem: Option<Problem>,
}

impl Checker {
    /// A checker, optionally against a checkpoint's line count and head.
    pub fn new(checkpoint: Option<(u64, HashHex)>) -> Checker {
        Checker { verified: 0, prev: None, pending: None, checkpoint, problem: None }
    }

    /// Push the next line's facts; false once a problem was found.
    pub fn push(&mut self, next: LineFacts) -> bool {
        if let Some(current) = self.pending.take() {
            self.judge(current, Some(&next));
        }
        self.pending = Some(next);
        self.problem.is_none()
    }

    /// No more lines: judge the last one.
    pub fn finish(&mut self) {
        if let Some(current) = self.pending.take()
            && self.problem.is_none()
        {
            self.judge(current, None);
        }
    }

    /// Lines judged good so far (all of them, after [`Checker::finish`] without a problem).
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The first problem, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// The first problem, if any, taken out.
    pub fn into_problem(self) -> Option<Problem> {
        self.problem
    }

    /// The hash of the last line judged good.
    pub fn head(&self) -> HashHex {
        self.prev.map_or(GENESIS, |p| p.hash)
    }

    fn fail(
        &mut self,
        line: u64,
        first_bad: u64,
        kind: ProblemKind,
        field: &'static str,
        message: String,
    ) {
        self.problem = Some(Problem { line, first_bad_line: first_bad, kind, field, message });
    }

    /// Record a problem after the last line judged good (a torn or oversized end of the ledger),
    /// unless one was found already.
    pub fn fail_at_end(&mut self, kind: ProblemKind, field: &'static str, message: String) {
        if self.problem.is_none() {
            let at = self.verified + 1;
            self.fail(at, at, kind, field, message);
        }
    }

    /// After [`Checker::finish`]: a ledger shorter than its checkpoint was truncated.
    pub fn check_truncation(&mut self) {
        if let (None, Some((records, _))) = (&self.problem, self.checkpoint)
            && self.verified < records
        {
            let at = self.verified + 1;
            let message = format!(
                "truncated: the ledger ends after line {} but the checkpoint recorded {records} \
                 lines (lines {at}..{records} were cut off)",
                self.verified
            );
            self.fail(at, at, ProblemKind::Truncated, "seq", message);
        }
    }

    /// Judge line `k = verified + 1`, every line before it being good.
    fn judge(&mut self, cur: LineFacts, next: Option<&LineFacts>) {
        let k = self.verified + 1;
        let prev_hash = self.head();
        if let Some(fault) = cur.fault {
            let (kind, field, message) = fault.describe(u64::from(cur.len));
            return self.fail(k, k, kind, field, message);
        }
        let s = cur.seq;
        if s != k {
            let prev = self.prev;
            let (line, kind, message) = if s + 1 == k && prev.is_some_and(|p| p.hash == cur.hash) {
                (k, ProblemKind::Duplicated, format!("duplicated: line {k} repeats line {s}"))
            } else if s + 1 == k && prev.is_some_and(|p| p.prev == cur.prev) {
                (
                    s,
                    ProblemKind::Inserted,
                    format!(
                        "inserted: line {s} is not part of the ledger (line {k} carries seq {s} \
                         and links where line {s} does: it is the original line {s})"
                    ),
                )
            } else if s == k + 1 && next.is_some_and(|n| n.seq == k && n.prev == prev_hash) {
                (
                    k,
                    ProblemKind::Swapped,
                    format!(
                        "reordered: lines {k} and {} were swapped (line {k} carries seq {s})",
                        k + 1
                    ),
                )
            } else if s > k && next.is_some_and(|n| n.seq == k && n.prev == prev_hash) {
                (
                    k,
                    ProblemKind::OutOfPlace,
                    format!(
                        "inserted: line {k} carries seq {s} (a copy of line {s}, or moved here \
                         from there); line {} is the original line {k}",
                        k + 1
                    ),
                )
            } else if s > k && cur.prev != prev_hash {
                let what = if s == k + 1 {
                    format!("line {k} was deleted")
                } else {
                    format!("lines {k}..{} were deleted", s - 1)
                };
                (
                    k,
                    ProblemKind::Deleted,
                    format!(
                        "deleted: {what} (line {k} carries seq {s} and links to a missing line)"
                    ),
                )
            } else {
                (
                    k,
                    ProblemKind::OutOfPlace,
                    format!(
                        "out of place: line {k} carries seq {s} (a copy of another line, or one \
                         moved or renumbered)"
                    ),
                )
            };
            return self.fail(line, k, kind, "seq", message);
        }
        if cur.prev != prev_hash {
            let (line, kind, message) = if next.is_some_and(|n| n.seq == k && n.prev == prev_hash) {
                (
                    k,
                    ProblemKind::Inserted,
                    format!(
                        "inserted: line {k} is not part of the ledger (line {} is the original line {k})",
                        k + 1
                    ),
                )
            } else if k == 1 {
                (
                    1,
                    ProblemKind::BrokenLink,
                    "the first line must link to GENESIS (64 zeros)".to_string(),
                )
            } else if next.is_none_or(|n| n.prev == cur.hash) {
                (
                    k - 1,
                    ProblemKind::Rewritten,
                    format!(
                        "rewritten: line {} was changed and re-sealed (it hashes to `{}`, but \
                         line {k} recorded `{}`)",
                        k - 1,
                        prev_hash.short(16),
                        cur.prev.short(16)
                    ),
                )
            } else {
                (
                    k,
                    ProblemKind::Rewritten,
                    format!(
                        "rewritten: line {k} was changed and re-sealed (it no longer links to \
                         line {} and line {} no longer links to it)",
                        k - 1,
                        k + 1
                    ),
                )
            };
            return self.fail(line, k, kind, "prev", message);
        }
        if let Some((records, head)) = self.checkpoint
            && records == k
            && head != cur.hash
        {
            return self.fail(
                k,
                k,
                ProblemKind::CheckpointMismatch,
                "hash",
                format!(
                    "rewritten: line {k} hashes to `{}` but the checkpoint recorded `{}` (the \
                     ledger was rewritten up to here)",
                    cur.hash.short(16),
                    head.short(16)
                ),
            );
        }
        self.verified = k;
        self.prev = Some(cur);
    }
}

/// The message for a torn last line.
pub fn torn_message(len: u64) -> String {
    format!(
        "torn last line: {len} bytes without a newline (a write cut off mid-line; \
         `opsg-audit append` moves it aside)"
    )
}

/// One line of a ledger that verified up to and including it: its record's exact bytes and where
/// it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sequence number (= line number).
    pub seq: u64,
    /// The line's hash.
    pub hash: HashHex,
    line: Vec<u8>,
    appended: Range<usize>,
    record: Range<usize>,
}

impl Entry {
    fn new(line: Vec<u8>) -> Option<Entry> {
        let at = locate(&line).ok()?;
        Some(Entry { seq: at.seq, hash: at.hash, line, appended: at.appended, record: at.record })
    }

    /// The embedded record, exact bytes (a sealed record line).
    pub fn record(&self) -> &[u8] {
        &self.line[self.record.clone()]
    }

    /// When the line was appended, as written (RFC 3339 by `opsg-audit`; not interpreted).
    pub fn appended(&self) -> &str {
        std::str::from_utf8(&self.line[self.appended.clone()]).unwrap_or("")
    }

    /// The whole ledger line (without its newline).
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// The embedded record parsed as `T`; a record that is intact but not what `T` expects is
    /// invalid input naming the ledger, the line and `record`.
    pub fn record_as<T: serde::de::DeserializeOwned>(&self, source: &str) -> Result<T> {
        serde_json::from_slice(self.record()).map_err(|e| {
            Error::invalid(format!("the embedded record: {e}"))
                .at_field("record")
                .in_source(source)
                .at_line(self.seq)
        })
    }
}

/// What a reader does with a last line that has no newline (a crash mid-append).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornLine {
    /// Refuse the ledger (rule 1: never silently accepted).
    Refuse,
    /// Stop before it; [`Reader::torn`] tells its length so the caller can say so.
    Skip,
}

/// A streaming, verifying ledger reader: yields the entries of lines 1, 2, 3… each once every
/// rule of HASHING.md section 5 holds up to it (the line after it is read first, to name a
/// tampered line the way `opsg-audit verify` does); at the first problem it yields one tamper
/// error naming the line, and then nothing. Memory: two lines.
///
/// A caller that folds the entries must discard what it learned when an error comes: a problem at
/// line 1,000 makes lines 1..999 no more trustworthy than the rest (the ledger is refused whole).
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    source: String,
    max_line: usize,
    torn_policy: TornLine,
    checker: Checker,
    offset: u64,
    pending: Option<Vec<u8>>,
    torn: Option<u64>,
    ended: bool,
    done: bool,
}

impl Reader<BufReader<std::io::Take<std::fs::File>>> {
    /// Open the ledger at `path`, as it is now: `Ok(None)` when it does not exist (a fleet's first
    /// run, before `opsg-audit` created it).
    ///
    /// Writers append whole lines under an exclusive lock (`flock`); taking the shared lock for a
    /// moment gives a length at which no append is half done, and only that prefix is read, so an
    /// append in progress is never mistaken for a torn line and is never held up.
    pub fn open(path: &Path) -> Result<Option<Self>> {
        let shown = path.display().to_string();
        let Some((file, len)) = open_at_rest(path)? else { return Ok(None) };
        Ok(Some(Reader::new(BufReader::with_capacity(1 << 16, file.take(len)), shown)))
    }
}

/// Open a ledger and read its length under a brief shared lock: the length at which no append is
/// half done (see [`Reader::open`]). `Ok(None)` when the file does not exist.
pub fn open_at_rest(path: &Path) -> Result<Option<(std::fs::File, u64)>> {
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&shown, e)),
    };
    let len = match file.lock_shared() {
        Ok(()) => {
            let len = file.metadata().map(|m| m.len());
            let _ = file.unlock();
            len.map_err(|e| Error::io(&shown, e))?
        }
        // A file system without locks: read what is there.
        Err(_) => file.metadata().map_err(|e| Error::io(&shown, e))?.len(),
    };
    Ok(Some((file, len)))
}

impl<R: BufRead> Reader<R> {
    /// Read a ledger from `input`; errors name `source`. A torn last line is refused.
    pub fn new(input: R, source: impl Into<String>) -> Reader<R> {
        Reader {
            input,
            source: source.into(),
            max_line: MAX_LINE_BYTES,
            torn_policy: TornLine::Refuse,
            checker: Checker::new(None),
            offset: 0,
            pending: None,
            torn: None,
            ended: false,
            done: false,
        }
    }

    /// What to do with a torn last line (default: refuse the ledger).
    pub fn on_torn(mut self, policy: TornLine) -> Self {
        self.torn_policy = policy;
        self
    }

    /// The longest line accepted (default [`MAX_LINE_BYTES`]).
    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line = max.max(1);
        self
    }

    /// The length of a torn last line that was skipped ([`TornLine::Skip`]), once reading ended.
    pub fn torn(&self) -> Option<u64> {
        self.torn
    }

    /// The name errors give the ledger.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The hash of the last line that verified (`GENESIS` before any).
    pub fn head(&self) -> HashHex {
        self.checker.head()
    }

    fn stop(&mut self) -> Option<Result<Entry>> {
        self.done = true;
        self.pending = None;
        let problem = self.checker.problem()?;
        Some(Err(problem.to_error(&self.source)))
    }

    /// The pending line was judged good: hand it out.
    fn release(&mut self, next: Option<Vec<u8>>) -> Option<Result<Entry>> {
        let line = std::mem::replace(&mut self.pending, next)?;
        Some(Entry::new(line).ok_or_else(|| {
            // The checker accepted the line's shape: this cannot fail.
            Error::internal("a verified ledger line does not parse").in_source(&self.source)
        }))
    }

    /// End of input: judge the last line, and hand it out if it is good; a problem (the last
    /// line's, or a torn line after it) comes on the next call.
    fn end(&mut self, torn: Option<u64>) -> Option<Result<Entry>> {
        let before = self.checker.verified();
        self.checker.finish();
        self.ended = true;
        match torn {
            Some(len) if self.torn_policy == TornLine::Refuse => {
                self.checker.fail_at_end(ProblemKind::Torn, "hash", torn_message(len))
            }
            Some(len) => self.torn = Some(len),
            None => {}
        }
        if self.checker.verified() > before { self.release(None) } else { self.stop() }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        if self.ended {
            return self.stop();
        }
        let mut buf = Vec::new();
        let read = self.input.by_ref().take(self.max_line as u64 + 1).read_until(b'\n', &mut buf);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Some(Err(Error::io(&self.source, e)));
            }
        };
        if n == 0 {
            return self.end(None);
        }
        let facts = if buf.last() == Some(&b'\n') {
            buf.pop();
            examine(&buf, self.offset)
        } else if buf.len() > self.max_line {
            LineFacts::oversized(self.offset, buf.len())
        } else {
            return self.end(Some(buf.len() as u64));
        };
        self.offset += n as u64;
        let before = self.checker.verified();
        if !self.checker.push(facts) {
            return self.stop();
        }
        if self.checker.verified() > before {
            return self.release(Some(buf));
        }
        // The first line: nothing judged yet.
        self.pending = Some(buf);
        self.next()
    }
}

/// A ledger read backwards from its end, for a caller that needs only recent history and must not
/// pay for the whole ledger on every run (opsg-gate's cooldowns, read on every cron run).
///
/// Every line read is checked on its own (rules 2 and 5) and against the line after it (rules 3
/// and 4: its `seq` is one less and its hash is what the later line links to); reaching the start
/// of the file, line 1 must carry `seq` 1 and link to GENESIS. So the suffix read is one intact
/// chain ending at the ledger's last line; whether that suffix links to the lines before it is not
/// looked at (that is `opsg-audit verify`'s full check). A problem is a tamper error naming the
/// line. A torn last line is skipped ([`TailReader::torn`] says so).
#[derive(Debug)]
pub struct TailReader {
    file: std::fs::File,
    source: String,
    block: u64,
    max_line: usize,
    /// File bytes `[data_start, data_start + data.len())`, not yet handed out.
    data: Vec<u8>,
    data_start: u64,
    /// The line handed out last (seq and prev), which the next one must link to.
    later: Option<(u64, HashHex)>,
    torn: Option<u64>,
    done: bool,
}

impl TailReader {
    /// Open the ledger at `path` as it is now (see [`Reader::open`]); `Ok(None)` when it does not
    /// exist.
    pub fn open(path: &Path) -> Result<Option<TailReader>> {
        let Some((file, len)) = open_at_rest(path)? else { return Ok(None) };
        let mut reader = TailReader {
            file,
            source: path.display().to_string(),
            block: 1 << 20,
            max_line: MAX_LINE_BYTES,
            data: Vec::new(),
            data_start: len,
            later: None,
            torn: None,
            done: false,
        };
        reader.find_torn()?;
        Ok(Some(reader))
    }

    /// Read this many bytes at a time (default 1 MiB; small values are for tests).
    pub fn block_size(mut self, bytes: u64) -> Self {
        self.block = bytes.max(1);
        self
    }

    /// The length of a torn last line (no newline after it), which was skipped.
    pub fn torn(&self) -> Option<u64> {
        self.torn
    }

    /// Read one more block before the data held.
    fn read_before(&mut self) -> Result<()> {
        let start = self.data_start.saturating_sub(self.block);
        let mut block = vec![0u8; (self.data_start - start) as usize];
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut block))
            .map_err(|e| Error::io(&self.source, e))?;
        block.extend_from_slice(&self.data);
        self.data = block;
        self.data_start = start;
        Ok(())
    }

    /// Set aside the bytes after the last newline (a torn append).
    fn find_torn(&mut self) -> Result<()> {
        loop {
            if let Some(i) = self.data.iter().rposition(|b| *b == b'\n') {
                let torn = self.data.len() - i - 1;
                if torn > 0 {
                    self.torn = Some(torn as u64);
                }
                self.data.truncate(i + 1);
                return Ok(());
            }
            if self.data_start == 0 {
                if !self.data.is_empty() {
                    self.torn = Some(self.data.len() as u64);
                }
                self.data.clear();
                return Ok(());
            }
            self.read_before()?;
        }
    }

    fn fail(&mut self, line: Option<u64>, field: &str, message: String) -> Error {
        self.done = true;
        let e = Error::tamper(message).at_field(field).in_source(&self.source);
        match line {
            Some(n) => e.at_line(n),
            None => e,
        }
    }

    fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        // `data` ends with the newline of the line to hand out next (or is empty).
        if self.data.is_empty() {
            if self.data_start == 0 {
                return Ok(None);
            }
            self.read_before()?;
            if self.data.is_empty() {
                return Ok(None);
            }
        }
        loop {
            let body = &self.data[..self.data.len() - 1];
            if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
                let line = body[i + 1..].to_vec();
                self.data.truncate(i + 1);
                return Ok(Some((self.data_start + i as u64 + 1, line)));
            }
            if self.data_start == 0 {
                let line = body.to_vec();
                self.data.clear();
                return Ok(Some((0, line)));
            }
            if self.data.len() > self.max_line + 1 {
                let line = self.later.map(|(s, _)| s.saturating_sub(1));
                return Err(self.fail(
                    line,
                    "record",
                    format!("a line longer than the {}-byte bound", self.max_line),
                ));
            }
            self.read_before()?;
        }
    }
}

impl Iterator for TailReader {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        let (offset, line) = match self.next_line() {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.done = true;
                // The whole file was read: it must begin the chain.
                return match self.later {
                    Some((seq, prev)) if seq != 1 || prev != GENESIS => Some(Err(self.fail(
                        Some(seq),
                        "seq",
                        format!(
                            "the first line carries seq {seq} and must carry 1 and link to GENESIS"
                        ),
                    ))),
                    _ => None,
                };
            }
            Err(e) => return Some(Err(e)),
        };
        let facts = examine(&line, offset);
        let expected = self.later.map(|(s, _)| s.saturating_sub(1));
        if let Some(fault) = facts.fault {
            let (_, field, message) = fault.describe(line.len() as u64);
            let at = if fault == LineFault::Oversized || facts.seq == 0 {
                expected
            } else {
                Some(facts.seq)
            };
            return Some(Err(self.fail(at, field, message)));
        }
        if let Some((later_seq, later_prev)) = self.later {
            if facts.seq + 1 != later_seq {
                return Some(Err(self.fail(
                    Some(later_seq - 1),
                    "seq",
                    format!(
                        "out of order: the line before line {later_seq} carries seq {} (a line \
                         was removed, inserted or reordered)",
                        facts.seq
                    ),
                )));
            }
            if facts.hash != later_prev {
                return Some(Err(self.fail(
                    Some(facts.seq),
                    "prev",
                    format!(
                        "rewritten: line {} hashes to `{}` but line {later_seq} recorded `{}`",
                        facts.seq,
                        facts.hash.short(16),
                        later_prev.short(16)
                    ),
                )));
            }
        }
        self.later = Some((facts.seq, facts.prev));
        Some(Entry::new(line).ok_or_else(|| {
            Error::internal("an examined ledger line does not parse").in_source(&self.source)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Vec<u8> {
        seal::seal(format!("{{\"n\":{n},\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap().0
    }

    fn ledger(n: u64) -> Vec<Vec<u8>> {
        let bytes = build_all(&(1..=n).map(record).collect::<Vec<_>>(), "2026-11-22T06:24:23.123Z");
        bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
    }

    /// Read with the streaming reader: the entries' `n` and the error, if any.
    fn read(bytes: &[u8]) -> (Vec<u64>, Option<Error>) {
        let mut seen = Vec::new();
        for entry in Reader::new(bytes, "l") {
            match entry {
                Ok(e) => {
                    let v: serde_json::Value = e.record_as("l").unwrap();
                    assert_eq!(v["n"].as_u64(), Some(e.seq), "entries come in order");
                    seen.push(e.seq);
                }
                Err(e) => return (seen, Some(e)),
            }
        }
        (seen, None)
    }

    #[test]
    fn built_lines_parse_back_and_are_intact() {
        let rec = record(1);
        let (line, hash) = build(42, "2026-11-22T06:24:23.123Z", &rec, GENESIS);
        let parts = parse(&line).unwrap();
        assert_eq!(parts.seq, 42);
        assert_eq!(parts.appended, b"2026-11-22T06:24:23.123Z");
        assert_eq!(parts.record, &rec[..]);
        assert_eq!(parts.prev, GENESIS);
        assert_eq!(parts.hash, hash);
        assert_eq!(seal::verify(&line).unwrap().hash, hash);
        assert_eq!(examine(&line, 0).fault, None);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["ledger"], LEDGER_ID);
        assert_eq!(value["seq"], 42);
        assert_eq!(value["record"]["n"], 1);
    }

    #[test]
    fn shape_errors_name_the_member() {
        let rec = record(1);
        let (line, _) = build(7, "2026-11-22T06:24:23.123Z", &rec, GENESIS);
        let text = String::from_utf8(line).unwrap();
        let bad = |from: &str, to: &str| parse(text.replacen(from, to, 1).as_bytes()).unwrap_err();
        assert_eq!(bad("\"seq\":7", "\"seq\":07"), ShapeError::Seq);
        assert_eq!(bad("\"seq\":7", "\"seq\":-7"), ShapeError::Seq);
        assert_eq!(bad("\"seq\":7", "\"seq\":7.0"), ShapeError::Appended);
        assert_eq!(bad("opsg.ledger/v1", "opsg.ledger/v2"), ShapeError::Prefix);
        assert_eq!(bad("06:24:23.123Z", "06:24:23\\\"Z"), ShapeError::Appended);
        assert_eq!(parse(b"{}"), Err(ShapeError::NotSealed));
        assert_eq!(
            parse(&build(u64::MAX, "t", &rec, GENESIS).0).map(|p| p.seq),
            Ok(u64::MAX),
            "the largest sequence number parses"
        );
    }

    #[test]
    fn examine_tells_line_and_record_faults_apart() {
        let rec = record(1);
        let (line, _) = build(1, "t", &rec, GENESIS);
        let mut flipped = line.clone();
        flipped[60] ^= 1;
        assert!(matches!(examine(&flipped, 0).fault, Some(LineFault::NotIntact { .. })));
        // Change the record and reseal the ledger line only: the record's own seal catches it.
        let forged = String::from_utf8(rec).unwrap().replace("\"n\":1", "\"n\":2");
        let (line, _) = build(1, "t", forged.as_bytes(), GENESIS);
        assert!(matches!(examine(&line, 0).fault, Some(LineFault::RecordNotIntact { .. })));
        let (line, _) = build(1, "t", b"{\"a\":1}", GENESIS);
        assert_eq!(examine(&line, 0).fault, Some(LineFault::RecordShape));
    }

    #[test]
    fn the_reader_yields_every_entry_of_an_intact_ledger() {
        let lines = ledger(5);
        let (seen, err) = read(&join(&lines));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        let bytes = join(&lines);
        let mut reader = Reader::new(&bytes[..], "l");
        let last = reader.by_ref().last().unwrap().unwrap();
        assert_eq!(last.appended(), "2026-11-22T06:24:23.123Z");
        assert_eq!(reader.head(), seal::parts(&lines[4]).unwrap().hash);
        assert_eq!(last.hash, reader.head());
        let (seen, err) = read(b"");
        assert!(seen.is_empty() && err.is_none());
    }

    #[test]
    fn the_reader_refuses_at_the_tampered_line_as_audit_names_it() {
        let lines = ledger(6);
        let problem = |bytes: Vec<u8>| {
            let (seen, err) = read(&bytes);
            let err = err.expect("tampering went unnoticed");
            assert_eq!(err.status().code(), 5, "{err}");
            (seen, err.location().line, err.to_string())
        };
        let mut deleted = lines.clone();
        deleted.remove(2);
        let (seen, line, msg) = problem(join(&deleted));
        // Lines before the deletion were handed out; the caller discards them on the error.
        assert_eq!((seen, line), (vec![1, 2], Some(3)));
        assert!(msg.contains("deleted"), "{msg}");

        let mut swapped = lines.clone();
        swapped.swap(3, 4);
        let (_, line, msg) = problem(join(&swapped));
        assert_eq!(line, Some(4));
        assert!(msg.contains("swapped"), "{msg}");

        let text = String::from_utf8(join(&lines)).unwrap().replacen("\"n\":2", "\"n\":7", 1);
        let (seen, line, msg) = problem(text.into_bytes());
        assert_eq!((seen, line), (vec![1], Some(2)));
        assert!(msg.starts_with("l:2:"), "{msg}");

        let mut torn = join(&lines);
        torn.truncate(torn.len() - 20);
        let (seen, line, msg) = problem(torn.clone());
        assert_eq!((seen.len(), line), (5, Some(6)));
        assert!(msg.contains("torn"), "{msg}");
        // Skipping a torn line is the caller's choice, and is reported.
        let mut reader = Reader::new(&torn[..], "l").on_torn(TornLine::Skip);
        assert_eq!(reader.by_ref().filter(Result::is_ok).count(), 5);
        assert!(reader.torn().is_some());
    }

    #[test]
    fn the_reader_bounds_line_length() {
        let lines = ledger(2);
        let bytes = join(&lines);
        let mut reader = Reader::new(&bytes[..], "l").max_line_bytes(100);
        let err = reader.next().unwrap().unwrap_err();
        assert_eq!(err.location().line, Some(1));
        assert!(err.to_string().contains("over the bound"), "{err}");
        assert!(reader.next().is_none());
    }

    fn tail(bytes: &[u8], block: u64) -> (Vec<u64>, Option<Error>, Option<u64>) {
        let dir = std::env::temp_dir().join(format!(
            "opsg-core-tail-{}-{block}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.jsonl");
        std::fs::write(&path, bytes).unwrap();
        let mut reader = TailReader::open(&path).unwrap().unwrap().block_size(block);
        let mut seen = Vec::new();
        let mut error = None;
        for entry in reader.by_ref() {
            match entry {
                Ok(e) => seen.push(e.seq),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let torn = reader.torn();
        std::fs::remove_dir_all(&dir).ok();
        (seen, error, torn)
    }

    #[test]
    fn the_tail_reader_checks_the_lines_it_reads_and_their_links() {
        let lines = ledger(5);
        for block in [7, 100, 1 << 20] {
            let (seen, err, torn) = tail(&join(&lines), block);
            assert!(err.is_none(), "block {block}: {err:?}");
            assert_eq!(seen, [5, 4, 3, 2, 1], "block {block}");
            assert_eq!(torn, None);

            let mut torn_bytes = join(&lines);
            torn_bytes.extend_from_slice(b"{\"ledger\":\"opsg.ledger/v1\",\"seq\":6");
            let (seen, err, torn) = tail(&torn_bytes, block);
            assert!(err.is_none());
            assert_eq!((seen.len(), torn), (5, Some(34)));

            let mut deleted = lines.clone();
            deleted.remove(2);
            let (seen, err, _) = tail(&join(&deleted), block);
            assert_eq!(seen, [5, 4]);
            let err = err.expect("a deleted line went unnoticed");
            assert_eq!((err.status().code(), err.location().line), (5, Some(3)));

            // A line changed and re-sealed: the line after it no longer links to it.
            let mut rewritten = lines.clone();
            let parts = parse(&lines[1]).unwrap();
            let forged = record(9);
            rewritten[1] = build(2, "t", &forged, parts.prev).0;
            let (seen, err, _) = tail(&join(&rewritten), block);
            assert_eq!(seen, [5, 4, 3]);
            let err = err.expect("a rewritten line went unnoticed");
            assert_eq!(err.location().line, Some(2));
            assert!(err.to_string().contains("rewritten"), "{err}");

            // Lines cut off the front: the remaining first line does not start the chain.
            let (seen, err, _) = tail(&join(&lines[2..]), block);
            assert_eq!(seen, [5, 4, 3]);
            assert_eq!(err.expect("a cut front went unnoticed").location().line, Some(3));
        }
    }
}

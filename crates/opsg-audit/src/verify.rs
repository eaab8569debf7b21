//! Verifying a ledger: streaming, in bounded memory, hashing in parallel, linking in order.
//!
//! A reader thread fills fixed-size blocks that end on a line boundary; each block is cut into
//! pieces that rayon examines in parallel (shape, the line's seal, its record's seal: rules 2 and
//! 5 of HASHING.md section 5, which are independent per line); then the facts are linked in order
//! (rules 1, 3 and 4) by a [`Checker`] that looks one line ahead, so that it can name the line
//! that was tampered with rather than the first one that noticed. Blocks are recycled, so memory
//! stays flat whatever the ledger's size: a few blocks plus one line's worth of facts per line of a
//! block.

use crate::checkpoint::Checkpoint;
use opsg_core::ledger::{self, LineFacts};
use opsg_core::seal::HashHex;
use opsg_core::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

/// The chain checks and their diagnoses are the one implementation in `opsg-core`, which the other
/// stages read ledgers with; this module adds the parallel fast path and the report.
pub use opsg_core::ledger::{Checker, MAX_LINE_BYTES, Problem, ProblemKind};

/// The largest record `append` accepts, so every line it writes can be read back.
pub const MAX_RECORD_BYTES: usize = MAX_LINE_BYTES - 4096;

/// Bytes per block handed to the hashing workers.
const BLOCK_BYTES: usize = 8 << 20;
/// Blocks in flight between the reader and the workers (besides the two being filled and hashed).
const BLOCKS_IN_FLIGHT: usize = 2;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Complete lines that verified (all of them when `problem` is `None`).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The hash of the last line that verified (`GENESIS` for an empty ledger).
    pub head: HashHex,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

impl Summary {
    /// True when nothing was wrong.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// What to check besides the chain itself.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The ledger's head must match this checkpoint (its MAC is checked by the caller).
    pub checkpoint: Option<Checkpoint>,
    /// No progress bar, even on a terminal.
    pub quiet: bool,
    /// The longest line accepted (0: the default, [`MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
}

/// Verify the ledger at `path`, as it was when the verification started.
///
/// Writers append whole lines under an exclusive lock; taking the shared lock for a moment gives
/// a length at which no append is half done, and only that prefix is read. So a verification
/// running while cron jobs append neither blocks them nor mistakes their half-written line for a
/// torn one.
pub fn verify_path(path: &Path, options: &Options) -> Result<Summary> {
    let shown = path.display().to_string();
    let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
    let (file, len) = ledger::open_at_rest(path)?.ok_or_else(|| Error::io(&shown, not_found()))?;
    verify_reader(file.take(len), Some(len), options).map_err(|e| e.in_source(shown))
}

/// Verify a ledger read from `reader` (`len`, when known, sizes the progress bar).
pub fn verify_reader<R: Read + Send>(
    reader: R,
    len: Option<u64>,
    options: &Options,
) -> Result<Summary> {
    let max_line =
        if options.max_line_bytes == 0 { MAX_LINE_BYTES } else { options.max_line_bytes };
    let progress = opsg_core::progress::bar(len.unwrap_or(0), "verifying", options.quiet);
    let mut checker = Checker::new(options.checkpoint.as_ref().map(|c| (c.records, c.head)));
    let mut bytes = 0u64;
    let mut tail = None;
    std::thread::scope(|scope| {
        let (blocks_tx, blocks_rx) = mpsc::sync_channel::<Block>(BLOCKS_IN_FLIGHT);
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT + 2);
        scope.spawn(move || read_blocks(reader, max_line, &blocks_tx, &spare_rx));
        for block in blocks_rx {
            match block {
                Block::Lines { buf, offset } => {
                    bytes += buf.len() as u64;
                    progress.inc(buf.len() as u64);
                    let facts = examine_block(&buf, offset, max_line);
                    let _ = spare_tx.try_send(buf);
                    if facts.into_iter().flatten().any(|f| !checker.push(f)) {
                        break;
                    }
                }
                Block::End(end) => {
                    tail = Some(end);
                    break;
                }
            }
        }
        // Dropping the receivers (end of scope) stops the reader if it is still going.
    });
    progress.finish_and_clear();
    match tail {
        Some(End::Io(e)) => return Err(Error::io("ledger", e)),
        Some(End::Torn { len: torn }) => {
            bytes += torn;
            checker.finish();
            checker.fail_at_end(ProblemKind::Torn, "hash", ledger::torn_message(torn));
        }
        Some(End::Oversized) => {
            checker.finish();
            checker.fail_at_end(
                ProblemKind::Oversized,
                "record",
                format!("a line longer than the {max_line}-byte bound (not a ledger line)"),
            );
        }
        Some(End::Eof) => checker.finish(),
        // Stopped early on a problem.
        None => {}
    }
    checker.check_truncation();
    Ok(Summary {
        lines: checker.verified(),
        bytes,
        head: checker.head(),
        problem: checker.into_problem(),
    })
}

enum Block {
    /// Complete lines (each ending with `\n`) starting at `offset` in the ledger.
    Lines { buf: Vec<u8>, offset: u64 },
    /// Nothing more follows.
    End(End),
}

enum End {
    Eof,
    Torn { len: u64 },
    Oversized,
    Io(std::io::Error),
}

/// The reader thread: fill blocks that end on a newline and send them in order.
fn read_blocks<R: Read>(
    mut reader: R,
    max_line: usize,
    blocks: &mpsc::SyncSender<Block>,
    spares: &mpsc::Receiver<Vec<u8>>,
) {
    let mut offset = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = spares.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK_BYTES));
        buf.clear();
        buf.append(&mut carry);
        // Fill to a block (or more, while a single line is longer than a block). The newline is
        // searched from the end: at most one line's worth of bytes.
        let mut want = BLOCK_BYTES.max(buf.len() + 1);
        let (eof, last_newline) = loop {
            let room = want.saturating_sub(buf.len()) as u64;
            let eof = match reader.by_ref().take(room).read_to_end(&mut buf) {
                Ok(0) => true,
                Ok(_) if buf.len() < want => continue,
                Ok(_) => false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = blocks.send(Block::End(End::Io(e)));
                    return;
                }
            };
            let last_newline = memchr::memrchr(b'\n', &buf);
            if eof || last_newline.is_some() || buf.len() > max_line {
                break (eof, last_newline);
            }
            want = (want * 2).min(max_line + 1);
        };
        let complete = last_newline.map_or(0, |i| i + 1);
        if complete == 0 && !buf.is_empty() && (eof || buf.len() > max_line) {
            let end = if eof { End::Torn { len: buf.len() as u64 } } else { End::Oversized };
            let _ = blocks.send(Block::End(end));
            return;
        }
        carry.extend_from_slice(&buf[complete..]);
        buf.truncate(complete);
        let len = buf.len() as u64;
        if len > 0 && blocks.send(Block::Lines { buf, offset }).is_err() {
            return;
        }
        offset += len;
        if eof {
            let end =
                if carry.is_empty() { End::Eof } else { End::Torn { len: carry.len() as u64 } };
            let _ = blocks.send(Block::End(end));
            return;
        }
    }
}

/// Examine a block of complete lines in parallel, in pieces cut at line boundaries; the pieces'
/// facts come back in order.
fn examine_block(buf: &[u8], offset: u64, max_line: usize) -> Vec<Vec<LineFacts>> {
    let pieces = (rayon::current_num_threads() * 4).max(1);
    let target = buf.len().div_ceil(pieces).max(1);
    let mut bounds = Vec::with_capacity(pieces + 1);
    let mut start = 0;
    while start < buf.len() {
        let mut end = (start + target).min(buf.len());
        if end < buf.len() {
            // Extend to the end of the line `end` falls in.
            end = memchr::memchr(b'\n', &buf[end - 1..]).map_or(buf.len(), |i| end + i);
        }
        bounds.push((start, end));
        start = end;
    }
    bounds
        .into_par_iter()
        .map(|(start, end)| examine_piece(&buf[start..end], offset + start as u64, max_line))
        .collect()
}

fn examine_piece(piece: &[u8], offset: u64, max_line: usize) -> Vec<LineFacts> {
    let mut facts = Vec::with_capacity(piece.len() / 512 + 1);
    let mut at = 0usize;
    while at < piece.len() {
        // SIMD newline search: core's word-at-a-time search cost a tenth of the verifier's time.
        let n = memchr::memchr(b'\n', &piece[at..]).map_or(piece.len() - at, |i| i + 1);
        let line = &piece[at..at + n];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        facts.push(if line.len() > max_line {
            LineFacts::oversized(offset + at as u64, line.len())
        } else {
            ledger::examine(line, offset + at as u64)
        });
        at += n;
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::build;
    use opsg_core::seal::{self, GENESIS};

    fn ledger(n: u64) -> Vec<Vec<u8>> {
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        for seq in 1..=n {
            let record =
                seal::seal(format!("{{\"n\":{seq},\"prev\":\"{GENESIS}\"}}").as_bytes()).unwrap().0;
            let (line, hash) = build(seq, "2026-11-22T06:24:23.123Z", &record, prev);
            prev = hash;
            lines.push(line);
        }
        lines
    }

    fn join(lines: &[Vec<u8>]) -> Vec<u8> {
        lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
    }

    fn verify(bytes: &[u8]) -> Summary {
        verify_reader(bytes, None, &Options { quiet: true, ..Options::default() }).unwrap()
    }

    #[test]
    fn intact_ledgers_verify_including_lines_across_blocks() {
        let lines = ledger(50);
        let summary = verify(&join(&lines));
        assert!(summary.ok(), "{summary:?}");
        assert_eq!(summary.lines, 50);
        assert_eq!(summary.head, seal::parts(&lines[49]).unwrap().hash);
        let empty = verify(b"");
        assert!(empty.ok());
        assert_eq!((empty.lines, empty.head), (0, GENESIS));
    }

    #[test]
    fn each_tampering_is_named_at_its_line() {
        let lines = ledger(8);
        let kind_at = |bytes: Vec<u8>| {
            let p = verify(&bytes).problem.expect("tampering went unnoticed");
            (p.kind, p.line)
        };
        let mut deleted = lines.clone();
        deleted.remove(3);
        assert_eq!(kind_at(join(&deleted)), (ProblemKind::Deleted, 4));
        let mut swapped = lines.clone();
        swapped.swap(3, 4);
        assert_eq!(kind_at(join(&swapped)), (ProblemKind::Swapped, 4));
        let mut dup = lines.clone();
        dup.insert(4, lines[3].clone());
        assert_eq!(kind_at(join(&dup)), (ProblemKind::Duplicated, 5));
        let mut torn = join(&lines);
        torn.truncate(torn.len() - 20);
        let p = verify(&torn).problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::Torn, 8));
    }

    #[test]
    fn oversized_lines_are_bounded() {
        let lines = ledger(3);
        let options = Options { quiet: true, max_line_bytes: 100, ..Options::default() };
        let p = verify_reader(&join(&lines)[..], None, &options).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::Oversized, 1));
    }
}

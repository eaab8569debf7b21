//! Appending to a ledger safely with many concurrent writers (overlapping cron jobs).
//!
//! Under an exclusive lock (`flock`, through `File::lock`) a writer reads the ledger's tail
//! backwards from the end (never the whole file) to learn the last sequence number and hash,
//! moves a torn last line (a crash mid-write) aside to `FILE.torn-<offset>`, builds every new line
//! in memory, writes them with one `write_all`, and `fdatasync`s the file (and `fsync`s the
//! directory when the file was created). Any failure truncates the ledger back to its length
//! before the append, so an append lands whole or not at all; a crash leaves at most a torn last
//! line, which the next writer moves aside and `verify` reports.

use crate::line;
use opsg_core::seal::{self, GENESIS, HashHex};
use opsg_core::{Error, ExitStatus, Result, cli};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes read per step when searching the tail backwards.
const TAIL_STEP: u64 = 64 << 10;

/// An open, exclusively locked ledger, positioned after its last complete line.
#[derive(Debug)]
pub struct LedgerWriter {
    file: File,
    path: PathBuf,
    created: bool,
    len: u64,
    last_seq: u64,
    last_hash: HashHex,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The first sequence number written.
    pub first_seq: u64,
    /// The last sequence number written.
    pub last_seq: u64,
    /// The hash of the last line written (the new head).
    pub head: HashHex,
}

/// The file operations an append needs, so the all-or-nothing logic can be tested against a
/// device that fails half way.
pub trait AppendTarget {
    /// Write all bytes at the end.
    fn write_all_at_end(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Flush data and size to stable storage.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Cut the file back to `len` bytes.
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()>;
}

impl AppendTarget for File {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Write `bytes` whole or not at all: on any failure cut back to `len_before` and say so.
pub fn commit<T: AppendTarget>(
    target: &mut T,
    bytes: &[u8],
    len_before: u64,
    shown: &str,
) -> Result<()> {
    let failure = match target.write_all_at_end(bytes) {
        Ok(()) => match target.sync() {
            Ok(()) => return Ok(()),
            Err(e) => ("cannot sync", e),
        },
        Err(e) => ("cannot write", e),
    };
    let (what, err) = failure;
    let restored = target.truncate_to(len_before).and_then(|()| target.sync());
    let message = match &restored {
        Ok(()) => format!("{what} `{shown}`: {err}; nothing was appended"),
        Err(cut) => format!(
            "{what} `{shown}`: {err}; and cutting it back to {len_before} bytes failed too ({cut}): \
             `opsg-audit verify` will report a torn last line, the next append moves it aside"
        ),
    };
    // The cause is in the message already: one line says it all.
    Err(Error::new(ExitStatus::Io, message))
}

impl LedgerWriter {
    /// Open (creating if missing) and lock the ledger, recover a torn tail, and read the head.
    pub fn open(path: &Path) -> Result<LedgerWriter> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| Error::io(&shown, e);
        let (file, created) =
            // An audit log is not for everyone's eyes: owner read-write, group read.
            match OpenOptions::new().read(true).append(true).create_new(true).mode(0o640).open(path) {
                Ok(file) => (file, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    (OpenOptions::new().read(true).append(true).open(path).map_err(io)?, false)
                }
                Err(e) => return Err(io(e)),
            };
        file.lock()
            .map_err(|e| Error::new(ExitStatus::Io, format!("cannot lock `{shown}`: {e}")))?;
        let mut writer = LedgerWriter {
            file,
            path: path.to_path_buf(),
            created,
            len: 0,
            last_seq: 0,
            last_hash: GENESIS,
        };
        writer.len = writer.file.metadata().map_err(io)?.len();
        writer.recover_torn_tail()?;
        writer.read_head()?;
        Ok(writer)
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.last_seq + 1
    }

    /// The hash of the last line (the next line's `prev`).
    pub fn head(&self) -> HashHex {
        self.last_hash
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Find the offset just after the last `\n` before `end`, or 0 when there is none.
    fn line_start_before(&self, end: u64) -> Result<u64> {
        let mut hi = end;
        let mut buf = vec![0u8; TAIL_STEP as usize];
        while hi > 0 {
            let lo = hi.saturating_sub(TAIL_STEP);
            let chunk = &mut buf[..(hi - lo) as usize];
            self.file.read_exact_at(chunk, lo).map_err(|e| Error::io(self.shown(), e))?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                return Ok(lo + i as u64 + 1);
            }
            hi = lo;
        }
        Ok(0)
    }

    fn read_range(&self, from: u64, to: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(to - from)
            .map_err(|_| Error::invalid("ledger line too long").in_source(self.shown()))?;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, from).map_err(|e| Error::io(self.shown(), e))?;
        Ok(bytes)
    }

    /// A last line without its newline is a write cut off by a crash: move its bytes to
    /// `FILE.torn-<offset>` (kept for inspection, never deleted) and cut them off the ledger.
    fn recover_torn_tail(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let last = self.read_range(self.len - 1, self.len)?;
        if last == b"\n" {
            return Ok(());
        }
        let start = self.line_start_before(self.len)?;
        let torn_len = self.len - start;
        let mut aside = self.path.clone().into_os_string();
        aside.push(format!(".torn-{start}"));
        let aside = PathBuf::from(aside);
        let shown_aside = aside.display().to_string();
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&aside)
            .map_err(|e| Error::io(&shown_aside, e))?;
        // Copy in steps: a torn tail can be as long as the longest record.
        let mut at = start;
        while at < self.len {
            let step = (self.len - at).min(TAIL_STEP);
            let bytes = self.read_range(at, at + step)?;
            out.write_all(&bytes).map_err(|e| Error::io(&shown_aside, e))?;
            at += step;
        }
        out.sync_all().map_err(|e| Error::io(&shown_aside, e))?;
        // The kept bytes must survive a crash before they are cut off the ledger.
        sync_parent_dir(&aside)?;
        self.file.set_len(start).and_then(|()| self.file.sync_data()).map_err(|e| {
            Error::new(
                ExitStatus::Io,
                format!("cannot cut the torn last line off `{}`: {e}", self.shown()),
            )
        })?;
        // Keep the append position in step with the new length.
        let _ = self.file.seek(SeekFrom::End(0));
        cli::warn(format!(
            "`{}`: the last line was torn ({} bytes without a newline, a write cut off): moved it \
             to `{shown_aside}` and cut it off",
            self.shown(),
            torn_len
        ));
        self.len = start;
        Ok(())
    }

    /// Read the last complete line and check it before chaining onto it.
    fn read_head(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let start = self.line_start_before(self.len - 1)?;
        let bytes = self.read_range(start, self.len - 1)?;
        let refuse = |why: String| {
            Error::tamper(format!(
                "the last line (at byte {start}) {why}: refusing to chain onto it (run `opsg-audit verify`)"
            ))
            .in_source(self.shown())
        };
        let parts =
            line::parse(&bytes).map_err(|e| refuse(format!("is not a ledger line: {e}")))?;
        seal::verify(&bytes).map_err(|e| refuse(format!("does not verify: {e}")))?;
        if start == 0 && parts.seq != 1 {
            return Err(refuse(format!("is the first line but carries seq {}", parts.seq)));
        }
        self.last_seq = parts.seq;
        self.last_hash = parts.hash;
        Ok(())
    }

    /// Append one ledger line per record (each the exact bytes of a sealed record), all at once.
    pub fn append(&mut self, records: &[&[u8]], appended_at: &str) -> Result<Appended> {
        let first_seq = self.next_seq();
        let mut bytes = Vec::with_capacity(records.iter().map(|r| r.len() + 300).sum());
        let mut head = self.last_hash;
        let mut seq = self.last_seq;
        for record in records {
            seq += 1;
            let (line, hash) = line::build(seq, appended_at, record, head);
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
            head = hash;
        }
        let shown = self.shown();
        commit(&mut self.file, &bytes, self.len, &shown)?;
        if self.created {
            sync_parent_dir(&self.path)?;
            self.created = false;
        }
        self.len += bytes.len() as u64;
        self.last_seq = seq;
        self.last_hash = head;
        Ok(Appended { first_seq, last_seq: seq, head })
    }
}

impl Drop for LedgerWriter {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// `fsync` the directory holding a new file, so the file's name survives a crash too.
fn sync_parent_dir(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent).and_then(|dir| dir.sync_all()).map_err(|e| Error::io(parent.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that takes `room` bytes and then fails with ENOSPC, like a full disk.
    struct FullDisk {
        data: Vec<u8>,
        room: usize,
    }

    impl AppendTarget for FullDisk {
        fn write_all_at_end(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            let fits = bytes.len().min(self.room.saturating_sub(self.data.len()));
            self.data.extend_from_slice(&bytes[..fits]);
            if fits < bytes.len() {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_write_failing_half_way_is_cut_back() {
        // Regression guard: ENOSPC after part of an append must not leave a partial line.
        let mut disk = FullDisk { data: b"line 1\n".to_vec(), room: 20 };
        let err = commit(&mut disk, b"line 2\nline 3\nline 4\n", 7, "ledger").unwrap_err();
        assert_eq!(disk.data, b"line 1\n");
        assert_eq!(err.status().code(), 4);
        assert!(err.to_string().contains("nothing was appended"), "{err}");
        let mut roomy = FullDisk { data: b"line 1\n".to_vec(), room: 100 };
        commit(&mut roomy, b"line 2\n", 7, "ledger").unwrap();
        assert_eq!(roomy.data, b"line 1\nline 2\n");
    }
}

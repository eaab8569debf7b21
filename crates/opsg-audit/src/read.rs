//! Reading a ledger's records for people (`show`, `stats`): streaming, one line at a time.
//!
//! The ledger is verified first (by default; [`verify`](crate::verify) is far faster than the
//! JSON parsing done here), so what is shown is what was appended. A torn last line (a crash
//! mid-write) is skipped with a warning: it never held a complete record.

use crate::line;
use crate::verify::{self, ProblemKind};
use opsg_core::record::Envelope;
use opsg_core::{Error, Result, cli};
use serde::Deserialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One ledger line's record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The ledger sequence number (= line number).
    pub seq: u64,
    /// When it was appended.
    pub appended: String,
    /// The record's envelope.
    pub envelope: Envelope,
    /// The record's body.
    pub body: Value,
}

/// Verify the ledger (unless `skip`), tolerating only a torn last line.
pub fn verify_first(path: &Path, skip: bool) -> Result<()> {
    if skip {
        return Ok(());
    }
    let options = verify::Options { quiet: true, ..verify::Options::default() };
    let summary = verify::verify_path(path, &options)?;
    match summary.problem {
        None => Ok(()),
        Some(p) if p.kind == ProblemKind::Torn => {
            cli::warn(format!(
                "{}:{}: torn last line skipped (a write cut off; the next append moves it aside)",
                path.display(),
                p.line
            ));
            Ok(())
        }
        Some(p) => Err(p.to_error(&path.display().to_string())),
    }
}

/// Call `f` with every complete line's record, in order.
pub fn for_each_entry(path: &Path, mut f: impl FnMut(Entry) -> Result<()>) -> Result<()> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let bound = crate::verify::MAX_LINE_BYTES as u64;
    loop {
        buf.clear();
        line_no += 1;
        let n = reader
            .by_ref()
            .take(bound + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(&shown, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            // End of file, or a torn last line (already reported by the verification).
            if buf.len() as u64 > bound {
                return Err(Error::invalid(format!("line exceeds the {bound}-byte bound"))
                    .in_source(&shown)
                    .at_line(line_no));
            }
            return Ok(());
        }
        buf.pop();
        f(parse_entry(&buf, &shown, line_no)?)?;
    }
}

fn parse_entry(bytes: &[u8], source: &str, line_no: u64) -> Result<Entry> {
    let at = |e: Error| e.in_source(source).at_line(line_no);
    let parts =
        line::parse(bytes).map_err(|e| at(Error::invalid(e.to_string()).at_field(e.field())))?;
    let value: Value = serde_json::from_slice(parts.record).map_err(|e| {
        at(Error::invalid(format!("the embedded record is not JSON: {e}")).at_field("record"))
    })?;
    let envelope = Envelope::deserialize(&value).map_err(|e| {
        at(Error::invalid(format!("the embedded record's envelope: {e}")).at_field("record"))
    })?;
    let body = value.get("body").cloned().unwrap_or(Value::Null);
    Ok(Entry {
        seq: parts.seq,
        appended: String::from_utf8_lossy(parts.appended).into_owned(),
        envelope,
        body,
    })
}

/// Format seconds for people: `950ms`, `42s`, `4m12s`, `2h05m`, `3d04h`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round() as u64);
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0.25), "250ms");
        assert_eq!(human_duration(42.4), "42s");
        assert_eq!(human_duration(252.0), "4m12s");
        assert_eq!(human_duration(7500.0), "2h05m");
        assert_eq!(human_duration(273_600.0), "3d04h");
        assert_eq!(human_duration(-1.0), "-");
    }
}

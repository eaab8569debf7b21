//! Reading a record stream and writing the chain a stage passes on.
//!
//! A stage reads all of stdin first, checking every line (size bound, newline, JSON, seal, schema
//! id, schema, chain link), and only then writes: so bad input leaves nothing partial on stdout.
//! It passes the records it read through byte for byte (their seals cover their exact bytes), then
//! appends its own record linked to the last one.

use crate::error::{Error, Result};
use crate::record::{self, Envelope, Kind, Record, Stamp};
use crate::schema;
use crate::seal::{self, GENESIS, HashHex, SealError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{BufRead, Read, Write};

/// Bounds on what a stream may hold, so a runaway producer cannot exhaust memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest single record, bytes (default 8 MiB).
    pub max_record_bytes: usize,
    /// The most bytes a whole stream may hold (default 512 MiB).
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_record_bytes: 8 << 20, max_total_bytes: 512 << 20 }
    }
}

/// One checked record from a stream.
#[derive(Debug, Clone)]
pub struct RecordLine {
    /// 1-based line number in its source.
    pub line_no: u64,
    /// The exact bytes, without the newline.
    pub bytes: Vec<u8>,
    /// The envelope.
    pub envelope: Envelope,
    /// The `prev` member.
    pub prev: HashHex,
    /// The record's hash.
    pub hash: HashHex,
}

impl RecordLine {
    /// The record kind.
    pub fn kind(&self) -> Kind {
        self.envelope.kind
    }

    /// The whole record as JSON, parsed from its bytes on demand (pass-through records never
    /// need it).
    pub fn value(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            Error::invalid(format!("malformed JSON: {}", json_error_reason(&e)))
                .at_line(self.line_no)
        })
    }

    /// Validate the whole record against its kind's schema; errors name the line and the field.
    pub fn validate(&self, source: &str) -> Result<()> {
        self.validated_value(source).map(drop)
    }

    fn validated_value(&self, source: &str) -> Result<Value> {
        let value = self.value().map_err(|e| e.in_source(source))?;
        schema::validate_record(self.kind(), &value).map_err(|e| e.or_at(source, self.line_no))?;
        Ok(value)
    }

    /// Deserialize the body into a typed struct, after validating the record against its kind's
    /// schema; errors name the line and the field.
    pub fn body<B: DeserializeOwned>(&self, source: &str) -> Result<B> {
        let mut value = self.validated_value(source)?;
        let body = value.get_mut("body").map(Value::take).unwrap_or(Value::Null);
        B::deserialize(body).map_err(|e| {
            Error::invalid(format!("invalid {} body: {e}", self.kind()))
                .at_field("body")
                .or_at(source, self.line_no)
        })
    }
}

/// A checked stream: one or more chains of records, in order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Where it came from (`stdin`, a path).
    pub source: String,
    /// The records.
    pub records: Vec<RecordLine>,
}

impl Chain {
    /// The hash the next record links to.
    pub fn last_hash(&self) -> HashHex {
        self.records.last().map_or(GENESIS, |r| r.hash)
    }

    /// The last record of a kind.
    pub fn last_of(&self, kind: Kind) -> Option<&RecordLine> {
        self.records.iter().rev().find(|r| r.kind() == kind)
    }

    /// Every record of a kind, in order.
    pub fn all_of(&self, kind: Kind) -> impl Iterator<Item = &RecordLine> {
        self.records.iter().filter(move |r| r.kind() == kind)
    }

    /// The run id of the last record (the run a new record joins).
    pub fn run(&self) -> Option<&str> {
        self.records.last().map(|r| r.envelope.run.as_str())
    }

    /// The latest incident id on the chain.
    pub fn incident(&self) -> Option<&str> {
        self.records.iter().rev().find_map(|r| r.envelope.incident.as_deref())
    }

    /// True when any record on the chain was produced from a recording.
    pub fn replay(&self) -> bool {
        self.records.iter().any(|r| r.envelope.replay)
    }

    /// Start a new record that continues this chain: same run, latest incident, replay flag, and
    /// `consumes` set to the given records' ids.
    pub fn next_record<B: serde::Serialize>(
        &self,
        kind: Kind,
        stamp: &Stamp,
        consumes: &[&RecordLine],
        body: B,
    ) -> Record<B> {
        let run = self.run().map_or_else(|| record::new_run_id(stamp.now), str::to_string);
        let mut rec = Record::new(kind, stamp, run, self.incident().map(str::to_string), body);
        rec.envelope.consumes = consumes.iter().map(|r| r.envelope.id.clone()).collect();
        rec.envelope.replay = self.replay();
        rec
    }
}

impl Chain {
    /// Validate every record against its kind's full schema (what a stage storing records for good,
    /// like `opsg-audit append`, must do; other stages validate the bodies they read).
    pub fn validate_all(&self) -> Result<()> {
        self.records.iter().try_for_each(|r| r.validate(&self.source))
    }

    /// Seal `record` after the last record and append it in memory, checked exactly as a stage
    /// reading it from a pipe would check it (seal, schema id, schema, link). This is how
    /// in-process runs of several stages (`opsg-replay`) compose without spawning processes.
    pub fn push<B: serde::Serialize>(&mut self, record: &mut Record<B>) -> Result<HashHex> {
        let prev = self.last_hash();
        let (line, hash) = record.seal(prev)?;
        let line_no = self.records.len() as u64 + 1;
        let checked = check_line(&line, line_no, &self.source, prev)?;
        checked.validate(&self.source)?;
        self.records.push(checked);
        Ok(hash)
    }

    /// The chain as JSON Lines bytes, exactly as a stage would write it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.records.iter().map(|r| r.bytes.len() + 1).sum());
        for record in &self.records {
            out.extend_from_slice(&record.bytes);
            out.push(b'\n');
        }
        out
    }
}

/// A record line's members, with the body skipped unparsed: a stage passing a record through
/// checks its seal and envelope without building the body's JSON tree (the observation's series
/// are most of the bytes of a chain).
#[derive(serde::Deserialize)]
struct Head {
    schema: Value,
    kind: Value,
    id: Value,
    incident: Value,
    run: Value,
    producer: Value,
    created: Value,
    consumes: Value,
    #[serde(default)]
    evidence: Option<Value>,
    replay: Value,
    // Required, but skipped without allocating: its presence is all a pass-through needs.
    #[allow(dead_code)]
    body: serde::de::IgnoredAny,
    prev: Value,
    hash: Value,
}

impl Head {
    /// The envelope as JSON, with an empty body, for the envelope schema.
    fn into_value(self) -> Value {
        let mut map = serde_json::Map::new();
        for (key, value) in [
            ("schema", self.schema),
            ("kind", self.kind),
            ("id", self.id),
            ("incident", self.incident),
            ("run", self.run),
            ("producer", self.producer),
            ("created", self.created),
            ("consumes", self.consumes),
            ("evidence", self.evidence.unwrap_or_else(|| Value::Array(Vec::new()))),
            ("replay", self.replay),
            ("body", Value::Object(serde_json::Map::new())),
            ("prev", self.prev),
            ("hash", self.hash),
        ] {
            map.insert(key.to_string(), value);
        }
        Value::Object(map)
    }
}

/// Check one line (without its newline) as a sealed record linked after `prev_hash`: JSON, schema
/// id, seal, envelope schema, link. The body is checked against its kind's schema when a stage
/// reads it ([`RecordLine::body`]) or stores it ([`Chain::validate_all`]).
pub fn check_line(
    line: &[u8],
    line_no: u64,
    source: &str,
    prev_hash: HashHex,
) -> Result<RecordLine> {
    let at = |e: Error| e.or_at(source, line_no);
    let head: Head = serde_json::from_slice(line).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "malformed JSON" } else { "not a record" };
        at(Error::invalid(format!("{what}: {}", json_error_reason(&e)))
            .at_column(e.column() as u64))
    })?;
    let (Some(schema_id), Some(kind_name)) = (head.schema.as_str(), head.kind.as_str()) else {
        let field = if head.kind.is_string() { "schema" } else { "kind" };
        return Err(at(Error::invalid("must be a string").at_field(field)));
    };
    record::check_schema_id(schema_id, kind_name).map_err(at)?;
    let parts = seal::verify(line).map_err(|e| match e {
        SealError::MissingTail => at(Error::invalid(e.to_string()).at_field("hash")),
        SealError::HashMismatch { .. } => at(Error::tamper(e.to_string()).at_field("hash")),
    })?;
    let envelope_value = head.into_value();
    schema::validate(schema::ENVELOPE, &envelope_value).map_err(at)?;
    if parts.prev != prev_hash && !parts.prev.is_genesis() {
        return Err(at(Error::tamper(format!(
            "does not link: `prev` is `{}` but the record before it hashes to `{}` (a record was removed, inserted or reordered)",
            parts.prev.short(16),
            prev_hash.short(16)
        ))
        .at_field("prev")));
    }
    let envelope = Envelope::deserialize(&envelope_value)
        .map_err(|e| at(Error::invalid(format!("invalid envelope: {e}"))))?;
    Ok(RecordLine { line_no, bytes: line.to_vec(), envelope, prev: parts.prev, hash: parts.hash })
}

use serde::Deserialize;

fn json_error_reason(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; we print our own location.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Read and check a whole stream. An empty stream is an error (exit 3): a stage with nothing to
/// read has been wired wrong.
pub fn read_chain<R: BufRead>(mut reader: R, source: &str, limits: &Limits) -> Result<Chain> {
    let mut chain = Chain { source: source.to_string(), records: Vec::new() };
    let mut total: u64 = 0;
    let mut line_no: u64 = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        line_no += 1;
        let n = (&mut reader)
            .take(limits.max_record_bytes as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(source, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limits.max_total_bytes {
            return Err(Error::invalid(format!(
                "the stream exceeds {} bytes (raise the limit or split the recording)",
                limits.max_total_bytes
            ))
            .or_at(source, line_no));
        }
        if buf.last() != Some(&b'\n') {
            if buf.len() > limits.max_record_bytes {
                return Err(Error::invalid(format!(
                    "record exceeds the {}-byte bound",
                    limits.max_record_bytes
                ))
                .or_at(source, line_no));
            }
            return Err(Error::invalid(
                "truncated record: the last line has no newline (was the writer cut off?)",
            )
            .or_at(source, line_no));
        }
        buf.pop();
        if buf.is_empty() || buf.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid("empty line: records are one JSON object per line")
                .or_at(source, line_no));
        }
        let record = check_line(&buf, line_no, source, chain.last_hash())?;
        chain.records.push(record);
    }
    if chain.records.is_empty() {
        return Err(Error::invalid("no records: the stream is empty").in_source(source));
    }
    Ok(chain)
}

/// Read and check stdin (the usual input of a stage).
pub fn read_stdin(limits: &Limits) -> Result<Chain> {
    let stdin = std::io::stdin();
    read_chain(stdin.lock(), "stdin", limits)
}

/// Writes a chain: the records passed through, then new ones linked after them. Output is
/// buffered; call [`ChainWriter::finish`] to flush.
pub struct ChainWriter<W: Write> {
    out: std::io::BufWriter<W>,
    last: HashHex,
}

impl<W: Write> ChainWriter<W> {
    /// A writer whose next record links to `last`.
    pub fn new(out: W, last: HashHex) -> ChainWriter<W> {
        ChainWriter { out: std::io::BufWriter::with_capacity(64 << 10, out), last }
    }

    /// Pass a chain through unchanged.
    pub fn pass_through(&mut self, chain: &Chain) -> Result<()> {
        for record in &chain.records {
            self.write_line(&record.bytes)?;
            self.last = record.hash;
        }
        Ok(())
    }

    /// Seal and write a new record after the last one; returns its hash.
    pub fn append<B: serde::Serialize>(&mut self, record: &mut Record<B>) -> Result<HashHex> {
        let (line, hash) = record.seal(self.last)?;
        self.write_line(&line)?;
        self.last = hash;
        Ok(hash)
    }

    /// The hash the next record will link to.
    pub fn last_hash(&self) -> HashHex {
        self.last
    }

    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        self.out
            .write_all(line)
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|e| Error::io("stdout", e))
    }

    /// Flush everything.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io("stdout", e))
    }
}

/// The common tail of a pass-through stage: write the input chain, then the new record, to stdout.
pub fn emit<B: serde::Serialize>(chain: &Chain, record: &mut Record<B>) -> Result<HashHex> {
    let stdout = std::io::stdout();
    let mut writer = ChainWriter::new(stdout.lock(), GENESIS);
    writer.pass_through(chain)?;
    let hash = writer.append(record)?;
    writer.finish()?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::report::ReportBody;
    use crate::time::Timestamp;

    fn report_body() -> ReportBody {
        ReportBody::new(crate::Outcome::NoIncident)
    }

    fn two_records() -> Vec<u8> {
        let stamp = Stamp { tool: "opsg-test", version: "0", now: Timestamp(1_700_000_000_000) };
        let mut out = Vec::new();
        let mut w = ChainWriter::new(&mut out, GENESIS);
        let chain = Chain::default();
        let mut a = chain.next_record(Kind::Report, &stamp, &[], report_body());
        w.append(&mut a).unwrap();
        let mut b = chain.next_record(Kind::Report, &stamp, &[], report_body());
        b.envelope.run = a.envelope.run.clone();
        w.append(&mut b).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn written_chain_reads_back() {
        let bytes = two_records();
        let chain = read_chain(&bytes[..], "mem", &Limits::default()).unwrap();
        assert_eq!(chain.records.len(), 2);
        assert_eq!(chain.records[1].prev, chain.records[0].hash);
    }

    #[test]
    fn bad_streams_name_line_and_reason() {
        let bytes = two_records();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let read = |s: &str| read_chain(s.as_bytes(), "mem", &Limits::default()).unwrap_err();

        let e = read("");
        assert_eq!(e.status().code(), 3);
        assert!(e.to_string().contains("empty"), "{e}");

        let e = read(&text[..text.len() - 10]);
        assert!(e.to_string().starts_with("mem:2:"), "{e}");

        let e = read(&format!("{}\n{{\"kind\":\n", lines[0]));
        assert!(e.to_string().starts_with("mem:2:"), "{e}");
        assert!(e.to_string().contains("malformed JSON"), "{e}");

        let e = read(&format!("{}\n", lines[0].replace("opsg.report/v1", "opsg.report/v9")));
        assert!(e.to_string().contains("unsupported schema version"), "{e}");

        let e = read(&format!("{}\n", lines[0].replace("\"replay\":false", "\"replay\":true ")));
        assert_eq!(e.status().code(), 5, "{e}");

        // Swapped order: the second record's prev does not link to what precedes it.
        let e = read(&format!("{}\n{}\n", lines[1], lines[0]));
        assert_eq!(e.status().code(), 5, "{e}");
        assert!(e.to_string().contains("does not link"), "{e}");

        let limits = Limits { max_record_bytes: 100, ..Limits::default() };
        let e = read_chain(bytes.as_slice(), "mem", &limits).unwrap_err();
        assert!(e.to_string().contains("100-byte bound"), "{e}");
    }
}

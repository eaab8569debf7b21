//! The record envelope: what every opsg record carries, whatever its kind.
//!
//! A record is one line of JSON: the envelope members, then `body` (the kind's payload, typed in
//! [`crate::kinds`]), then `prev` and `hash` (see [`crate::seal`]). Readers ignore unknown members
//! within a major version; a new major version is a new schema id.

use crate::error::{Error, Result};
use crate::seal::{self, GENESIS, HashHex};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The kinds of record, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Signals collected by `opsg-scrape`.
    Observation,
    /// Anomalies and ranked root-cause hypotheses from `opsg-triage`.
    Finding,
    /// Typed remediation actions with inverses and expected effects from `opsg-plan`.
    Plan,
    /// The policy verdict from `opsg-gate`.
    Decision,
    /// What `opsg-exec` ran (or would run) and what came back.
    Execution,
    /// The re-measurement, verdict and any rollback from `opsg-verify`.
    Verification,
    /// The incident summary `opsg-audit` appends after the chain.
    Report,
}

impl Kind {
    /// Every kind, in pipeline order.
    pub const ALL: [Kind; 7] = [
        Kind::Observation,
        Kind::Finding,
        Kind::Plan,
        Kind::Decision,
        Kind::Execution,
        Kind::Verification,
        Kind::Report,
    ];

    /// The major schema version this build reads and writes.
    pub const MAJOR: u32 = 1;

    /// The snake_case name (`observation`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Observation => "observation",
            Kind::Finding => "finding",
            Kind::Plan => "plan",
            Kind::Decision => "decision",
            Kind::Execution => "execution",
            Kind::Verification => "verification",
            Kind::Report => "report",
        }
    }

    /// The schema id with major version (`opsg.plan/v1`).
    pub fn schema_id(self) -> &'static str {
        match self {
            Kind::Observation => "opsg.observation/v1",
            Kind::Finding => "opsg.finding/v1",
            Kind::Plan => "opsg.plan/v1",
            Kind::Decision => "opsg.decision/v1",
            Kind::Execution => "opsg.execution/v1",
            Kind::Verification => "opsg.verification/v1",
            Kind::Report => "opsg.report/v1",
        }
    }

    /// Look a kind up by name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tool (and version) wrote a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// The binary name, e.g. `opsg-plan`.
    pub tool: String,
    /// Its version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// A reference to raw data kept out of the record (a `/metrics` payload, a log excerpt), by the
/// SHA-256 of its exact bytes. `opsg-scrape --evidence-dir DIR` stores it at `DIR/sha256/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// SHA-256 of the raw bytes.
    pub sha256: HashHex,
    /// What the bytes are (`text/plain; version=0.0.4`, `text/x-log`).
    pub media_type: String,
    /// Their length.
    pub bytes: u64,
    /// What they are evidence of (a target name, a log path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
}

/// The members every record carries before its `body`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema id with major version: `opsg.<kind>/v1`.
    pub schema: String,
    /// The record kind.
    pub kind: Kind,
    /// This record's id: `<kind>-<16 hex>`, derived from its position in the chain (deterministic,
    /// so a replay with the same input and clock writes the same bytes).
    pub id: String,
    /// The incident this record belongs to; `null` until `opsg-triage` assigns one.
    pub incident: Option<String>,
    /// The run (correlation) id shared by every record of one pass through the pipe.
    pub run: String,
    /// The tool that wrote it.
    pub producer: Producer,
    /// When it was written, RFC 3339 UTC.
    pub created: String,
    /// Ids of the records this one was computed from.
    pub consumes: Vec<String>,
    /// Raw data kept out of the record, by content hash.
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
    /// True when the record was produced from a recording rather than live systems.
    pub replay: bool,
}

/// A typed record ready to be sealed: an envelope and a body.
#[derive(Debug, Clone)]
pub struct Record<B> {
    /// The envelope.
    pub envelope: Envelope,
    /// The kind-specific body.
    pub body: B,
}

#[derive(Serialize)]
struct Unsealed<'a, B: Serialize> {
    #[serde(flatten)]
    envelope: &'a Envelope,
    body: &'a B,
    prev: HashHex,
}

/// What a stage needs to know to stamp a new record's envelope.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The tool name (`opsg-plan`).
    pub tool: &'static str,
    /// The tool version.
    pub version: &'static str,
    /// The clock (`--now` or the system clock).
    pub now: Timestamp,
}

impl<B: Serialize> Record<B> {
    /// Build a record of `kind` with a body; the id is derived at [`Record::seal`] time.
    pub fn new(kind: Kind, stamp: &Stamp, run: String, incident: Option<String>, body: B) -> Self {
        Record {
            envelope: Envelope {
                schema: kind.schema_id().to_string(),
                kind,
                id: String::new(),
                incident,
                run,
                producer: Producer {
                    tool: stamp.tool.to_string(),
                    version: stamp.version.to_string(),
                },
                created: stamp.now.to_rfc3339(),
                consumes: Vec::new(),
                evidence: Vec::new(),
                replay: false,
            },
            body,
        }
    }

    /// Seal the record after `prev` (the previous record's hash, or [`GENESIS`]): derive its id,
    /// serialize it compactly with `prev` last, and append its hash. Returns the line (without a
    /// newline) and its hash.
    pub fn seal(&mut self, prev: HashHex) -> Result<(Vec<u8>, HashHex)> {
        self.envelope.id =
            derive_id(self.envelope.kind, prev, &self.envelope.run, &self.envelope.created);
        let unsealed =
            serde_json::to_vec(&Unsealed { envelope: &self.envelope, body: &self.body, prev })
                .map_err(|e| {
                    Error::internal(format!(
                        "cannot serialize a {} record: {e}",
                        self.envelope.kind
                    ))
                })?;
        seal::seal(&unsealed)
            .ok_or_else(|| Error::internal("serialized record does not end with its `prev` member"))
    }
}

/// A record id: the kind, then 16 hex digits of SHA-256 over `prev`, kind, run and creation time.
pub fn derive_id(kind: Kind, prev: HashHex, run: &str, created: &str) -> String {
    let material = format!("{prev}\n{kind}\n{run}\n{created}");
    format!("{kind}-{}", HashHex::of(material.as_bytes()).short(16))
}

/// A run (correlation) id for a new chain: the time and 8 hex digits of SHA-256 over the time in
/// nanoseconds and the process id. Unique enough across overlapping cron runs on one host.
pub fn new_run_id(now: Timestamp) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let material = format!("{nanos}:{}", std::process::id());
    let stamp: String = now.to_rfc3339().chars().filter(|c| c.is_ascii_digit()).take(14).collect();
    format!("run-{stamp}-{}", HashHex::of(material.as_bytes()).short(8))
}

/// Check that a `schema` member names `kind` with a major version this build reads.
pub fn check_schema_id(schema: &str, kind: &str) -> Result<Kind> {
    let Some(kind) = Kind::from_name(kind) else {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(Error::invalid(format!(
            "unknown record kind `{kind}` (known: {})",
            known.join(", ")
        ))
        .at_field("kind"));
    };
    let Some(rest) = schema.strip_prefix("opsg.").and_then(|r| r.strip_prefix(kind.as_str()))
    else {
        return Err(Error::invalid(format!(
            "schema id `{schema}` does not match kind `{kind}` (expected `{}`)",
            kind.schema_id()
        ))
        .at_field("schema"));
    };
    match rest.strip_prefix("/v").map(str::parse::<u32>) {
        Some(Ok(major)) if major == Kind::MAJOR => Ok(kind),
        Some(Ok(major)) => Err(Error::invalid(format!(
            "unsupported schema version `{schema}`: this build reads v{} (record major version {major})",
            Kind::MAJOR
        ))
        .at_field("schema")),
        _ => Err(Error::invalid(format!("malformed schema id `{schema}` (expected `{}`)", kind.schema_id()))
            .at_field("schema")),
    }
}

/// The chain value before the first record.
pub fn genesis() -> HashHex {
    GENESIS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_ids_are_checked() {
        assert_eq!(check_schema_id("opsg.plan/v1", "plan").unwrap(), Kind::Plan);
        let err = check_schema_id("opsg.plan/v2", "plan").unwrap_err();
        assert!(err.to_string().contains("unsupported schema version"), "{err}");
        let err = check_schema_id("opsg.plan/v1", "planet").unwrap_err();
        assert!(err.to_string().contains("unknown record kind `planet`"), "{err}");
        assert!(check_schema_id("opsg.finding/v1", "plan").is_err());
    }

    #[test]
    fn sealed_record_has_prev_and_hash_last() {
        let stamp = Stamp { tool: "opsg-test", version: "0", now: Timestamp(0) };
        let mut record =
            Record::new(Kind::Report, &stamp, "run-1".into(), None, serde_json::json!({"x": 1}));
        let (line, hash) = record.seal(GENESIS).unwrap();
        let parts = seal::verify(&line).unwrap();
        assert_eq!(parts.hash, hash);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["schema"], "opsg.report/v1");
        assert_eq!(value["id"], record.envelope.id);
        assert!(record.envelope.id.starts_with("report-"));
    }
}

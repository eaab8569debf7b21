//! The JSON Schemas (2020-12) in `schemas/`, embedded in every binary and compiled once.
//!
//! Record schemas share `envelope.schema.json` through `$ref`; they are registered in an in-memory
//! registry, so nothing is ever fetched (the `jsonschema` crate is built without its HTTP
//! resolver). Config files (rules, catalog, policy, actuators, targets) have schemas here too.

use crate::error::{Error, Result};
use crate::record::Kind;
use jsonschema::{Registry, Validator};
use serde_json::Value;
use std::sync::OnceLock;

/// The base of every schema `$id`. `.invalid` is a reserved TLD: these URIs name, never locate.
pub const BASE_URI: &str = "https://opsg.invalid/schemas/";

/// The envelope schema every record is checked against when read.
pub const ENVELOPE: &str = "envelope.schema.json";

/// Every schema file, by file name, as embedded at build time.
pub const SCHEMAS: &[(&str, &str)] = &[
    ("envelope.schema.json", include_str!("../../../schemas/envelope.schema.json")),
    ("observation.schema.json", include_str!("../../../schemas/observation.schema.json")),
    ("finding.schema.json", include_str!("../../../schemas/finding.schema.json")),
    ("plan.schema.json", include_str!("../../../schemas/plan.schema.json")),
    ("decision.schema.json", include_str!("../../../schemas/decision.schema.json")),
    ("execution.schema.json", include_str!("../../../schemas/execution.schema.json")),
    ("verification.schema.json", include_str!("../../../schemas/verification.schema.json")),
    ("report.schema.json", include_str!("../../../schemas/report.schema.json")),
    ("ledger-line.schema.json", include_str!("../../../schemas/ledger-line.schema.json")),
    ("checkpoint.schema.json", include_str!("../../../schemas/checkpoint.schema.json")),
    // Config files, validated by the tools that read them and by the examples test.
    ("targets.schema.json", include_str!("../../../schemas/targets.schema.json")),
    ("rules.schema.json", include_str!("../../../schemas/rules.schema.json")),
    ("catalog.schema.json", include_str!("../../../schemas/catalog.schema.json")),
    ("policy.schema.json", include_str!("../../../schemas/policy.schema.json")),
    ("actuators.schema.json", include_str!("../../../schemas/actuators.schema.json")),
    ("campaign.schema.json", include_str!("../../../schemas/campaign.schema.json")),
];

/// The schema file for a record kind.
pub fn file_for(kind: Kind) -> &'static str {
    match kind {
        Kind::Observation => "observation.schema.json",
        Kind::Finding => "finding.schema.json",
        Kind::Plan => "plan.schema.json",
        Kind::Decision => "decision.schema.json",
        Kind::Execution => "execution.schema.json",
        Kind::Verification => "verification.schema.json",
        Kind::Report => "report.schema.json",
    }
}

fn registry() -> Result<&'static Registry<'static>> {
    static REGISTRY: OnceLock<std::result::Result<Registry<'static>, String>> = OnceLock::new();
    REGISTRY.get_or_init(build_registry).as_ref().map_err(|e| Error::internal(e.clone()))
}

/// The schemas other schemas `$ref`: only the envelope (its `$defs` are the shared types). A
/// process parses and registers just that one, not all sixteen: start-up time is part of every
/// stage's cost in a pipe. A schema that referenced another file would fail to compile, which
/// `every_schema_compiles` would catch.
const REFERENCED: &[&str] = &[ENVELOPE];

fn build_registry() -> std::result::Result<Registry<'static>, String> {
    let mut builder = Registry::new();
    for (name, text) in SCHEMAS.iter().filter(|(name, _)| REFERENCED.contains(name)) {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("embedded schema `{name}` is not JSON: {e}"))?;
        builder = builder
            .add(format!("{BASE_URI}{name}"), value)
            .map_err(|e| format!("embedded schema `{name}`: {e}"))?;
    }
    builder.prepare().map_err(|e| format!("cannot prepare the schema registry: {e}"))
}

/// Compile the validators a stage is about to need on a background thread, so the work overlaps
/// with waiting for stdin: in a pipe every stage starts at once but can only act once the stage
/// before it has finished, so what a stage does before its input arrives costs no wall time on
/// the pipe's critical path. List `names` in the order the stage uses them. A schema that fails
/// to compile is reported by the foreground call that needs it, not here. List only what the
/// stage validates: the envelope and the kinds whose bodies it reads (records a stage writes are
/// checked by the stage that reads them and in full by `opsg-audit append`, not by the writer).
pub fn warm_up(names: &'static [&'static str]) {
    let spawned = std::thread::Builder::new().name("schema-warm-up".into()).spawn(move || {
        for name in names {
            let _ = validator(name);
        }
    });
    // No thread (resource limits): the validators compile on first use instead.
    drop(spawned);
}

/// The compiled validator for a schema file, compiled on first use and kept for the process.
/// Each schema has its own once-cell, so two threads compile two schemas at the same time and a
/// thread wanting a schema another is compiling waits for that result instead of redoing it.
pub fn validator(name: &str) -> Result<&'static Validator> {
    static CACHE: [OnceLock<std::result::Result<Validator, String>>; SCHEMAS.len()] =
        [const { OnceLock::new() }; SCHEMAS.len()];
    let index = SCHEMAS
        .iter()
        .position(|(n, _)| *n == name)
        .ok_or_else(|| Error::internal(format!("no embedded schema `{name}`")))?;
    CACHE[index]
        .get_or_init(|| compile(name, SCHEMAS[index].1))
        .as_ref()
        .map_err(|e| Error::internal(e.clone()))
}

/// Compile schema `name` (whose text is `text`).
///
/// Building a validator for a 2020-12 document makes `jsonschema` first compile the 2020-12
/// meta-schema and its vocabularies and check the document against it: about a quarter of a
/// stage's instructions, paid by every process of the pipe. So the document goes into the
/// registry and the validator is built for a one-line draft-04 root, `{"$ref": <its URI>}`: only
/// that line is checked against a meta-schema (draft-04's, a small one), while the referenced
/// document is compiled under its own `$schema`, 2020-12. Our schemas are checked against the
/// 2020-12 meta-schema by a test instead (`every_schema_is_valid_2020_12`), and
/// `validators_apply_2020_12_keywords` checks that the referenced documents keep their dialect.
fn compile(name: &str, text: &str) -> std::result::Result<Validator, String> {
    let schema: Value = serde_json::from_str(text)
        .map_err(|e| format!("embedded schema `{name}` is not JSON: {e}"))?;
    let uri = format!("{BASE_URI}{name}");
    let registry = registry()
        .map_err(|e| e.to_string())?
        .add(uri.as_str(), schema)
        .and_then(|builder| builder.prepare())
        .map_err(|e| format!("embedded schema `{name}`: {e}"))?;
    let root =
        serde_json::json!({"$schema": "http://json-schema.org/draft-04/schema#", "$ref": uri});
    jsonschema::options()
        .with_registry(&registry)
        // The `regex` engine: our patterns need no look-around or back-references, and it
        // compiles them with less work than `fancy-regex` (start-up cost of every stage).
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&root)
        .map_err(|e| format!("embedded schema `{name}` does not compile: {e}"))
}

/// Validate `instance` against the schema file `name`. The error names the first failing field
/// (as a dotted path) and why.
pub fn validate(name: &str, instance: &Value) -> Result<()> {
    let validator = validator(name)?;
    if let Some(err) = validator.iter_errors(instance).next() {
        let pointer = err.instance_path().to_string();
        let field = pointer_to_dotted(&pointer);
        let mut message = err.to_string();
        if message.len() > 300 {
            // Cut on a character boundary: messages quote instance values, which may be any UTF-8.
            let cut = (0..=300).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        let e = Error::invalid(format!("does not match `{name}`: {message}"));
        return Err(if field.is_empty() { e } else { e.at_field(field) });
    }
    Ok(())
}

/// Parse a JSON config file's bytes and validate them against the embedded schema `name`. Errors
/// name the source, the line and column of malformed JSON, or the first failing field and why.
/// Every opsg config (rules, catalog, policy, actuators, targets, campaigns) loads through here.
pub fn parse_config(bytes: &[u8], source: &str, name: &str) -> Result<Value> {
    let value = parse_json(bytes, source)?;
    validate(name, &value).map_err(|e| e.in_source(source))?;
    Ok(value)
}

/// Parse JSON bytes; a malformed document is an error naming the source, line and column. For
/// built-in configs, which a unit test validates once, so no run pays for compiling the schema.
pub fn parse_json(bytes: &[u8], source: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::invalid(format!("malformed JSON: {}", strip_position(&e)))
            .in_source(source)
            .at_line(e.line() as u64)
            .at_column(e.column() as u64)
    })
}

fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Validate a record's JSON against its kind's schema.
pub fn validate_record(kind: Kind, instance: &Value) -> Result<()> {
    validate(file_for(kind), instance)
}

/// `/body/actions/0/params` → `body.actions[0].params`.
pub fn pointer_to_dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles() {
        for (name, text) in SCHEMAS {
            let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(value["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
            assert_eq!(value["$id"], format!("{BASE_URI}{name}"), "{name}");
            validator(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_schema_is_valid_2020_12() {
        // The validators skip the meta-schema check (see `compile`): this is where it happens.
        for (name, text) in SCHEMAS {
            let value: Value = serde_json::from_str(text).unwrap();
            if let Err(e) = jsonschema::meta::validate(&value) {
                panic!("{name} is not a valid 2020-12 schema: {e}");
            }
        }
    }

    #[test]
    fn validators_apply_2020_12_keywords() {
        // `const` does not exist in draft-04: were the referenced documents compiled as their
        // draft-04 root, a wrong `kind` or ledger version would raise no error at its path.
        let errors_at = |name: &str, instance: Value, path: &str| -> usize {
            let v = validator(name).unwrap();
            v.iter_errors(&instance).filter(|e| e.instance_path().to_string() == path).count()
        };
        let report = |kind: &str| serde_json::json!({"schema": "opsg.report/v1", "kind": kind});
        assert_eq!(errors_at("report.schema.json", report("finding"), "/kind"), 1);
        assert_eq!(errors_at("report.schema.json", report("report"), "/kind"), 0);
        let line = |v: &str| serde_json::json!({"ledger": v});
        assert_eq!(errors_at("ledger-line.schema.json", line("opsg.ledger/v2"), "/ledger"), 1);
        assert_eq!(errors_at("ledger-line.schema.json", line("opsg.ledger/v1"), "/ledger"), 0);
    }

    #[test]
    fn config_errors_name_line_column_and_field() {
        let e = parse_config(b"{\n  \"mode\": ,\n}", "p.json", "policy.schema.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json:2:"), "{e}");
        let campaign =
            br#"{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1, "arms": [{"name": "a"}],
            "faults": [{"fault": "meteor_strike", "target": "x", "intensities": [0.5]}]}"#;
        let e = parse_config(campaign, "c.json", "campaign.schema.json").unwrap_err();
        assert!(e.to_string().starts_with("c.json: field `faults[0].fault`"), "{e}");
        assert_eq!(e.status().code(), 3);
    }

    /// Regression guard: a long error quoting non-ASCII text was cut inside a character (panic).
    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let name = "é".repeat(400);
        let campaign = format!(
            r#"{{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1, "arms": [{{"name": "a"}}],
            "faults": [{{"fault": "{name}", "target": "x", "intensities": [0.5]}}]}}"#
        );
        let e = parse_config(campaign.as_bytes(), "c.json", "campaign.schema.json").unwrap_err();
        assert!(e.to_string().ends_with('…'), "{e}");
    }

    /// Guards against a schema file added to `schemas/` but never embedded (and so never used).
    #[test]
    fn every_schema_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".schema.json") {
                assert!(SCHEMAS.iter().any(|(n, _)| *n == name), "{name} is not in SCHEMAS");
            }
        }
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(pointer_to_dotted("/body/actions/0/params"), "body.actions[0].params");
        assert_eq!(pointer_to_dotted(""), "");
    }
}

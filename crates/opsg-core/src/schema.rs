//! The JSON Schemas (2020-12) in `schemas/`, embedded in every binary and compiled once.
//!
//! Record schemas share `envelope.schema.json` through `$ref`; they are registered in an in-memory
//! registry, so nothing is ever fetched (the `jsonschema` crate is built without its HTTP
//! resolver). Config files (rules, catalog, policy, actuators, targets) have schemas here too.
//!
//! Instances are checked by [`subset`], an evaluator of the keywords our schemas use that needs
//! no compiling, and by `jsonschema` only to describe an invalid one (or for a schema that uses
//! more than `subset` implements): compiling `jsonschema` validators was most of a pipe stage's
//! instructions, paid again by every process.

mod pattern;
mod subset;

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

/// Get ready the validators a stage is about to need. Schemas [`subset`] evaluates need only
/// parsing, done here. Any other compiles with `jsonschema` on a background thread, so the work
/// overlaps with waiting for stdin: in a pipe every stage starts at once but can only act once the
/// stage before it has finished. List `names` in the order the stage uses them. A schema that
/// fails to compile is reported by the foreground call that needs it, not here. List only what
/// the stage validates: the envelope and the kinds whose bodies it reads (records a stage writes
/// are checked by the stage that reads them and in full by `opsg-audit append`, not by the writer).
pub fn warm_up(names: &'static [&'static str]) {
    if names.iter().all(|name| subset_covers(name)) {
        return; // a thread costs more than it would save
    }
    let spawned = std::thread::Builder::new().name("schema-warm-up".into()).spawn(move || {
        for name in names.iter().filter(|name| !subset_covers(name)) {
            let _ = validator(name);
        }
    });
    // No thread (resource limits): the validators compile on first use instead.
    drop(spawned);
}

/// The [`subset`] form of an embedded schema file, parsed on first use; `None` when the file uses
/// something [`subset`] does not implement.
fn prepared(name: &str) -> Option<&'static subset::Prepared> {
    static CACHE: [OnceLock<Option<subset::Prepared>>; SCHEMAS.len()] =
        [const { OnceLock::new() }; SCHEMAS.len()];
    let index = SCHEMAS.iter().position(|(n, _)| *n == name)?;
    CACHE[index]
        .get_or_init(|| {
            let root = serde_json::from_str(SCHEMAS[index].1).ok()?;
            subset::Prepared::new(name, root)
        })
        .as_ref()
}

/// Whether [`subset`] can evaluate schema `name`: the file and every file it refers to.
fn subset_covers(name: &str) -> bool {
    prepared(name).is_some_and(|doc| doc.references.iter().all(|r| prepared(r).is_some()))
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
    if subset_covers(name) && (subset::Evaluator { documents: prepared }).is_valid(name, instance) {
        return Ok(());
    }
    // Invalid, or a schema `subset` does not cover: `jsonschema` gives the verdict and the error.
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

    /// Guards the fast path against losing a schema: a keyword `subset` does not implement makes
    /// that schema fall back to compiling `jsonschema` in every process (correct, but slow).
    #[test]
    fn subset_covers_every_schema() {
        for (name, _) in SCHEMAS {
            assert!(
                subset_covers(name),
                "{name} uses something `schema::subset` does not implement"
            );
        }
    }

    /// `subset` and `jsonschema` give the same verdict on every example record and config and on
    /// mutations of each member of them, so the fast path cannot drift from the schemas' meaning.
    #[test]
    fn subset_agrees_with_jsonschema() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut cases: Vec<(&str, Value)> = Vec::new();
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
        // Records of every kind, ledger lines and checkpoints made from them. The file is what
        // `opsg-triage | opsg-plan | opsg-gate | opsg-exec | opsg-verify | opsg-audit` wrote after
        // the observation of five `examples/incidents` (kv_cache_saturation-100, gpu_fault-100,
        // replica_down-100, healthy-busy_but_fine-290, canary_regression-100): every verdict.
        let after = read(&root.join("crates/opsg-core/testdata/records-after-observation.jsonl"));
        for line in after.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let kind: Kind = serde_json::from_value(record["kind"].clone()).unwrap();
            let ledger_line = serde_json::json!({"ledger": "opsg.ledger/v1", "seq": 3,
                "appended": record["created"], "record": record, "prev": record["prev"],
                "hash": record["hash"]});
            let checkpoint = serde_json::json!({"checkpoint": "opsg.checkpoint/v1", "records": 3,
                "head": record["hash"], "created": record["created"], "ledger": "l.jsonl",
                "mac": format!("hmac-sha256:{}", record["prev"].as_str().unwrap())});
            cases.push(("ledger-line.schema.json", ledger_line));
            cases.push(("checkpoint.schema.json", checkpoint));
            cases.push((ENVELOPE, record.clone()));
            cases.push((file_for(kind), record));
        }
        // Observations: every recording of the corpus as it is; a few mutated member by member.
        let mut incidents: Vec<_> = std::fs::read_dir(root.join("examples/incidents"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        incidents.sort();
        for (i, case) in incidents.iter().enumerate() {
            for line in read(&case.join("observation.jsonl")).lines() {
                let record: Value = serde_json::from_str(line).unwrap();
                assert_same_verdict("observation.schema.json", &record, "as recorded");
                if i % 40 == 0 {
                    cases.push(("observation.schema.json", record));
                }
            }
        }
        // Configs.
        for (name, file) in [
            ("policy.schema.json", "examples/policy.json"),
            ("policy.schema.json", "examples/campaign/policy-autonomous.json"),
            ("rules.schema.json", "examples/rules.json"),
            ("catalog.schema.json", "examples/catalog.json"),
            ("actuators.schema.json", "examples/actuators.json"),
            ("targets.schema.json", "examples/targets.json"),
            ("targets.schema.json", "tests/fixtures/scrape/secured.targets.json"),
            ("campaign.schema.json", "examples/campaign/campaign.json"),
        ] {
            cases.push((name, serde_json::from_str(&read(&root.join(file))).unwrap()));
        }
        let (mut checked, mut invalid) = (0, 0);
        for (name, mut instance) in cases {
            shorten_arrays(&mut instance);
            assert_same_verdict(name, &instance, "as given");
            let mut pointers = Vec::new();
            every_pointer(&instance, String::new(), &mut pointers);
            for pointer in pointers {
                let original = instance.pointer(&pointer).unwrap().clone();
                for (what, replacement) in mutations(&original) {
                    *instance.pointer_mut(&pointer).unwrap() = replacement;
                    invalid += usize::from(!assert_same_verdict(
                        name,
                        &instance,
                        &format!("{pointer} {what}"),
                    ));
                    checked += 1;
                }
                *instance.pointer_mut(&pointer).unwrap() = original;
                // Without the member.
                if let Some((parent, key)) = pointer.rsplit_once('/') {
                    let key = key.replace("~1", "/").replace("~0", "~");
                    if let Some(Value::Object(members)) = instance.pointer_mut(parent) {
                        let removed = members.remove(&key).unwrap();
                        invalid += usize::from(!assert_same_verdict(
                            name,
                            &instance,
                            &format!("{pointer} removed"),
                        ));
                        checked += 1;
                        instance.pointer_mut(parent).unwrap()[key.as_str()] = removed;
                    }
                }
            }
        }
        // The mutations must exercise both verdicts, the rejections above all.
        assert!(checked > 20_000 && invalid > checked / 4, "{checked} checked, {invalid} invalid");
    }

    /// Panics when the two verdicts differ; returns the verdict.
    fn assert_same_verdict(name: &str, instance: &Value, what: &str) -> bool {
        let reference = validator(name).unwrap().is_valid(instance);
        let fast = subset_covers(name)
            && (subset::Evaluator { documents: prepared }).is_valid(name, instance);
        assert_eq!(fast, reference, "{name}, {what}: subset says {fast}, jsonschema {reference}");
        reference
    }

    /// Keep at most three elements of every array (the first two and the last): mutating each
    /// member of a full observation would take minutes and test nothing more.
    fn shorten_arrays(value: &mut Value) {
        match value {
            Value::Array(items) => {
                if items.len() > 3 {
                    let last = items.pop().unwrap();
                    items.truncate(2);
                    items.push(last);
                }
                items.iter_mut().for_each(shorten_arrays);
            }
            Value::Object(members) => members.values_mut().for_each(shorten_arrays),
            _ => {}
        }
    }

    fn every_pointer(value: &Value, at: String, out: &mut Vec<String>) {
        if !at.is_empty() {
            out.push(at.clone());
        }
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    every_pointer(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(members) => {
                for (key, member) in members {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    every_pointer(member, format!("{at}/{key}"), out);
                }
            }
            _ => {}
        }
    }

    /// Values to put in place of `v`: other types, boundary numbers and lengths, near misses of
    /// patterns and formats, enum values of other members, an unknown member, a duplicate item.
    fn mutations(v: &Value) -> Vec<(String, Value)> {
        use serde_json::json;
        let mut out: Vec<Value> = vec![
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(1),
            json!(1.5),
            json!(2.0),
            json!(-0.5),
            json!(1e300),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(""),
            json!("x"),
            json!("a".repeat(65)),
            json!("0".repeat(64)),
            json!("f".repeat(63)),
            json!("g".repeat(64)),
            json!("é".repeat(64)),
            json!("r".repeat(201)),
            json!("2026-13-45T25:61:61Z"),
            json!("2026-11-22T06:00:00"),
            json!("NaN"),
            json!("+Inf"),
            json!("-Inf"),
            json!("inf"),
            json!([]),
            json!([v]),
            json!([1, 1]),
            json!({}),
            json!({"k": v}),
            json!({"k": "v"}),
        ];
        for word in [
            "observation",
            "finding",
            "plan",
            "decision",
            "execution",
            "verification",
            "report",
            "opsg.plan/v1",
            "opsg.report/v2",
            "opsg-x",
            "opsg-X",
            "plan-0123456789abcdef",
            "dry_run",
            "live",
            "approved",
            "blocked",
            "http",
            "command",
            "none",
            "succeeded",
            "resolved",
            "counter",
            "gauge",
            "up",
            "pass",
            "rules",
            "llm",
            "shift_traffic",
            "cordon_node",
            "kv_cache_saturation",
            "safe",
            "destructive",
            "30s",
            "1.5ms",
            "2h30",
            "http://h",
            "https://h/p",
            "ftp://h",
            "12:30",
            "32:00",
            "X-Token",
            "X Token",
        ] {
            out.push(json!(word));
        }
        match v {
            Value::String(s) => {
                let mut chars = s.chars();
                chars.next_back();
                for t in [
                    format!("{s}x"),
                    chars.as_str().to_string(),
                    s.to_uppercase(),
                    format!("{s}\n"),
                    format!(" {s}"),
                    format!("{s}\u{85}"),
                    format!("{s}\u{feff}"),
                    format!("{s}\u{0}"),
                    format!("-{}", s.get(1..).unwrap_or("")),
                    s.replace('-', "_"),
                    s.replace(':', "."),
                ] {
                    out.push(Value::String(t));
                }
            }
            Value::Number(n) => {
                let f = n.as_f64().unwrap();
                for t in [f + 1.0, f - 1.0, -f, f + 0.5, f - 0.5, f * 2.0] {
                    out.push(json!(t));
                }
                if let Some(i) = n.as_i64() {
                    out.extend([json!(i + 1), json!(i - 1), json!(-i), json!(i as f64)]);
                }
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    let mut twice = items.clone();
                    twice.push(first.clone());
                    out.push(Value::Array(twice));
                    out.push(Value::Array(items[1..].to_vec()));
                    out.push(Value::Array(vec![first.clone(); 9]));
                }
            }
            Value::Object(members) => {
                let mut more = members.clone();
                more.insert("zz_unknown".into(), json!(1));
                out.push(Value::Object(more));
                let mut again = members.clone();
                again.insert("zz_unknown".into(), Value::Object(members.clone()));
                out.push(Value::Object(again));
            }
            _ => {}
        }
        out.into_iter().map(|m| (format!("= {m}"), m)).collect()
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(pointer_to_dotted("/body/actions/0/params"), "body.actions[0].params");
        assert_eq!(pointer_to_dotted(""), "");
    }
}

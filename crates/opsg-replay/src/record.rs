//! `opsg-replay record`: turn a live pipe's output into a new case, so a real incident becomes a
//! regression test.
//!
//! The whole chain is kept as `recording.jsonl`; the expectations are what the pure stages
//! concluded live (class, first action, decision, and the outcome those imply), and the clock is
//! the live finding's, so a replay reproduces the same records. What happened after the gate
//! (the live outcome) is kept as a note, since replay does not execute.

use crate::pipeline;
use opsg_core::kinds::decision::DecisionBody;
use opsg_core::kinds::finding::FindingBody;
use opsg_core::kinds::plan::PlanBody;
use opsg_core::record::Kind;
use opsg_core::stream::Chain;
use opsg_core::{Error, Result};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Write the case for `chain` into `dir` (created; refused if it already holds a case).
pub fn write_case(chain: &Chain, dir: &Path, name: Option<&str>) -> Result<Value> {
    let src = chain.source.as_str();
    let finding_line = chain.last_of(Kind::Finding).ok_or_else(|| {
        Error::invalid(
            "nothing to record: the chain has no finding (record after opsg-triage or later)",
        )
        .in_source(src)
    })?;
    let finding: FindingBody = finding_line.body(src)?;
    let mut case = Map::new();
    let id = name
        .map(str::to_string)
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(id) = id {
        case.insert("id".into(), json!(id));
    }
    case.insert("now".into(), json!(finding_line.envelope.created));
    let plan: Option<PlanBody> = chain.last_of(Kind::Plan).map(|l| l.body(src)).transpose()?;
    let decision: Option<DecisionBody> =
        chain.last_of(Kind::Decision).map(|l| l.body(src)).transpose()?;
    case.insert("expected_class".into(), json!(finding.class.to_string()));
    if let Some(plan) = &plan {
        let first =
            plan.actions.first().map_or_else(|| "none".to_string(), |a| a.action.to_string());
        case.insert("expected_first_action".into(), json!(first));
        if let Some(decision) = &decision {
            let actual = pipeline::conclude(&finding, plan, decision);
            case.insert("expected_decision".into(), json!(actual.decision));
            case.insert("expected_outcome".into(), json!(actual.outcome));
        }
    }
    if let Some(outcome) = chain
        .last_of(Kind::Verification)
        .and_then(|l| l.value().ok())
        .and_then(|v| v.pointer("/body/outcome").cloned())
    {
        case.insert("live_outcome".into(), outcome);
    }
    if let Some(incident) = chain.incident() {
        case.insert("live_incident".into(), json!(incident));
    }
    case.insert("source".into(), json!(format!("recorded by opsg-replay record from {src}")));

    if dir.join("case.json").exists() {
        return Err(Error::invalid("already holds a case.json (choose a new directory)")
            .in_source(dir.display().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let recording = dir.join("recording.jsonl");
    write_new(&recording, &chain.to_bytes())?;
    let value = Value::Object(case);
    let mut text =
        serde_json::to_string_pretty(&value).map_err(|e| Error::internal(e.to_string()))?;
    text.push('\n');
    write_new(&dir.join("case.json"), text.as_bytes())?;
    Ok(value)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path.display(), e))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(|e| Error::io(path.display(), e))
}

//! `opsg-audit show`: incident timelines for people, from the ledger.
//!
//! Each record becomes one event: what was observed, inferred, proposed, decided, executed and
//! verified, and the report, with its time. Records are grouped by run (one pass through the
//! pipe); a run's records are contiguous in the ledger because an append is one write, so the
//! timeline streams in bounded memory.

use crate::read::{self, Entry, human_duration};
use crate::{ShowArgs, ShowFormat};
use opsg_core::{Error, ExitStatus, Kind, Result};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;

/// One event of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The incident id (null before triage assigned one, or when there was none).
    pub incident: Option<String>,
    /// The run id.
    pub run: String,
    /// The ledger line.
    pub seq: u64,
    /// When it happened (RFC 3339).
    pub time: String,
    /// `observed`, `inferred`, `proposed`, `decided`, `executed`, `verified` or `reported`.
    pub stage: &'static str,
    /// The record kind.
    pub kind: Kind,
    /// The record id.
    pub id: String,
    /// What happened, in one line.
    pub summary: String,
}

/// The verb of a record kind in a timeline.
pub fn stage(kind: Kind) -> &'static str {
    match kind {
        Kind::Observation => "observed",
        Kind::Finding => "inferred",
        Kind::Plan => "proposed",
        Kind::Decision => "decided",
        Kind::Execution => "executed",
        Kind::Verification => "verified",
        Kind::Report => "reported",
    }
}

/// Turn a ledger entry into its event.
pub fn event(entry: &Entry) -> Event {
    let body = &entry.body;
    let kind = entry.envelope.kind;
    let created = entry.envelope.created.clone();
    let time = match kind {
        Kind::Execution => body["actions"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["started"].as_str())
            .map_or(created, str::to_string),
        Kind::Verification => body["verified_at"].as_str().map_or(created, str::to_string),
        _ => created,
    };
    Event {
        incident: entry.envelope.incident.clone(),
        run: entry.envelope.run.clone(),
        seq: entry.seq,
        time,
        stage: stage(kind),
        kind,
        id: entry.envelope.id.clone(),
        summary: summary(kind, body),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

/// One line saying what a record says.
pub fn summary(kind: Kind, body: &Value) -> String {
    match kind {
        Kind::Observation => {
            let targets = body["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
            let up = targets.iter().filter(|t| t["status"] == "up").count();
            let mut text = format!(
                "{} target(s), {up} up, over {} .. {}",
                targets.len(),
                s(&body["window"]["start"]),
                s(&body["window"]["end"])
            );
            let down: Vec<String> = targets
                .iter()
                .filter(|t| t["status"] != "up")
                .map(|t| format!("{} {}", s(&t["name"]), s(&t["status"])))
                .collect();
            if !down.is_empty() {
                text.push_str(&format!(" ({})", down.join(", ")));
            }
            if len(&body["queries"]) > 0 {
                text.push_str(&format!("; {} query result(s)", len(&body["queries"])));
            }
            text
        }
        Kind::Finding => {
            if body["status"] == "incident" {
                let mut text = format!("incident `{}`: {}", s(&body["class"]), s(&body["summary"]));
                if let Some(t) = body["first_anomalous_at"].as_str() {
                    text.push_str(&format!("; first anomalous {t}"));
                }
                if let Some(h) = body["hypotheses"].as_array().and_then(|h| h.first()) {
                    let confidence = h["confidence"].as_f64().unwrap_or(0.0);
                    text.push_str(&format!(
                        "; top hypothesis: {} ({confidence:.2})",
                        s(&h["cause"])
                    ));
                }
                text
            } else {
                format!("no incident: {}", s(&body["summary"]))
            }
        }
        Kind::Plan => {
            let actions = body["actions"].as_array().map(Vec::as_slice).unwrap_or_default();
            if actions.is_empty() {
                return format!("no actions ({})", s(&body["rationale"]));
            }
            let list: Vec<String> = actions
                .iter()
                .map(|a| format!("{} {} ({})", s(&a["action"]), s(&a["target"]), s(&a["safety"])))
                .collect();
            format!(
                "{} action(s) for `{}` at confidence {:.2}: {}",
                actions.len(),
                s(&body["class"]),
                body["confidence"].as_f64().unwrap_or(0.0),
                list.join(", ")
            )
        }
        Kind::Decision => {
            let mut text = format!("{} ({})", s(&body["verdict"]), s(&body["mode"]));
            let reasons: Vec<&str> = body["reasons"]
                .as_array()
                .map(|r| r.iter().map(|r| s(&r["code"])).collect())
                .unwrap_or_default();
            if !reasons.is_empty() {
                text.push_str(&format!("; reasons: {}", reasons.join(", ")));
            }
            if let Some(approver) = body["approval"]["approver"].as_str() {
                text.push_str(&format!("; approved by {approver}"));
            }
            text
        }
        Kind::Execution => {
            let runs: Vec<String> = body["actions"]
                .as_array()
                .map(|a| a.iter().map(action_run).collect())
                .unwrap_or_default();
            let mut text = format!("{} ({})", s(&body["status"]), s(&body["mode"]));
            if !runs.is_empty() {
                text.push_str(&format!(": {}", runs.join(", ")));
            }
            text
        }
        Kind::Verification => {
            let checks = body["checks"].as_array().map(Vec::as_slice).unwrap_or_default();
            let passed = checks.iter().filter(|c| c["result"] == "pass").count();
            let mut text =
                format!("{}; {passed}/{} check(s) passed", s(&body["outcome"]), checks.len());
            if body["rollback"].is_object() {
                let verified = body["rollback"]["verified"].as_bool() == Some(true);
                text.push_str(&format!(
                    "; rolled back {} action(s){}",
                    len(&body["rollback"]["actions"]),
                    if verified { ", rollback verified" } else { ", rollback NOT verified" }
                ));
            }
            text
        }
        Kind::Report => {
            let mut text = format!("outcome {}", s(&body["outcome"]));
            for (name, key) in
                [("TTD", "time_to_detect_s"), ("TTM", "time_to_mitigate_s"), ("MTTR", "mttr_s")]
            {
                if let Some(v) = body[key].as_f64() {
                    text.push_str(&format!(", {name} {}", human_duration(v)));
                }
            }
            let a = &body["actions"];
            text.push_str(&format!(
                "; {} action(s): {} safe, {} impactful, {} destructive, {} rolled back",
                a["total"].as_u64().unwrap_or(0),
                a["safe"].as_u64().unwrap_or(0),
                a["impactful"].as_u64().unwrap_or(0),
                a["destructive"].as_u64().unwrap_or(0),
                a["rolled_back"].as_u64().unwrap_or(0)
            ));
            if let Some(note) = body["note"].as_str() {
                text.push_str(&format!(" ({note})"));
            }
            text
        }
    }
}

fn action_run(a: &Value) -> String {
    let mut text = format!("#{} {}", a["index"].as_u64().unwrap_or(0), s(&a["outcome"]));
    if let Some(status) = a["status"].as_i64() {
        text.push_str(&format!(" [{status}]"));
    }
    if let Some(error) = a["error"].as_str() {
        text.push_str(&format!(" ({error})"));
    }
    text
}

/// A run's events, printed when the run ends.
#[derive(Default)]
struct Group {
    run: String,
    events: Vec<Event>,
}

impl Group {
    fn incident(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| e.incident.as_deref())
    }

    fn matches(&self, wanted: Option<&str>) -> bool {
        wanted.is_none_or(|w| {
            self.run == w || self.events.iter().any(|e| e.incident.as_deref() == Some(w))
        })
    }
}

/// Where events go, in the chosen format.
enum Sink<W: Write> {
    Text(W),
    Json(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Sink<W> {
    fn new(format: ShowFormat, out: W) -> Sink<W> {
        match format {
            ShowFormat::Text => Sink::Text(out),
            ShowFormat::Json => Sink::Json(out),
            ShowFormat::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
        }
    }

    fn group(&mut self, group: &Group) -> Result<()> {
        let io = |e: std::io::Error| Error::io("stdout", e);
        match self {
            Sink::Text(out) => {
                let first = group.events.first().map_or(0, |e| e.seq);
                let last = group.events.last().map_or(0, |e| e.seq);
                let incident = group.incident().unwrap_or("(no incident)");
                let mut text = format!(
                    "incident {incident}  run {}  ledger lines {first}..{last}\n",
                    group.run
                );
                for e in &group.events {
                    text.push_str(&format!("  {:<24}  {:<9} {}\n", e.time, e.stage, e.summary));
                }
                text.push('\n');
                out.write_all(text.as_bytes()).map_err(io)
            }
            Sink::Json(out) => {
                for e in &group.events {
                    let mut line = serde_json::to_string(e)
                        .map_err(|e| Error::internal(format!("cannot serialize an event: {e}")))?;
                    line.push('\n');
                    out.write_all(line.as_bytes()).map_err(io)?;
                }
                Ok(())
            }
            Sink::Csv(w) => {
                for e in &group.events {
                    w.write_record([
                        e.incident.as_deref().unwrap_or(""),
                        &e.run,
                        &e.seq.to_string(),
                        &e.time,
                        e.stage,
                        e.kind.as_str(),
                        &e.id,
                        &e.summary,
                    ])
                    .map_err(csv_error)?;
                }
                Ok(())
            }
        }
    }

    fn header(&mut self) -> Result<()> {
        if let Sink::Csv(w) = self {
            w.write_record(["incident", "run", "seq", "time", "stage", "kind", "id", "summary"])
                .map_err(csv_error)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let io = |e: std::io::Error| Error::io("stdout", e);
        match self {
            Sink::Text(mut out) | Sink::Json(mut out) => out.flush().map_err(io),
            Sink::Csv(mut w) => w.flush().map_err(io),
        }
    }
}

pub(crate) fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io("stdout", io),
        other => Error::internal(format!("cannot write CSV: {other:?}")),
    }
}

/// Write the timelines of a ledger's runs to `out`; returns how many runs were shown.
pub fn write_timelines<W: Write>(args: &ShowArgs, out: W) -> Result<u64> {
    let mut sink = Sink::new(args.format, out);
    sink.header()?;
    let mut group = Group::default();
    let mut shown = 0u64;
    let wanted = args.incident.as_deref();
    read::for_each_entry(&args.ledger, |entry| {
        if entry.envelope.run != group.run && !group.events.is_empty() {
            if group.matches(wanted) {
                sink.group(&group)?;
                shown += 1;
            }
            group.events.clear();
        }
        group.run.clone_from(&entry.envelope.run);
        group.events.push(event(&entry));
        Ok(())
    })?;
    if !group.events.is_empty() && group.matches(wanted) {
        sink.group(&group)?;
        shown += 1;
    }
    sink.finish()?;
    Ok(shown)
}

/// `opsg-audit show`.
pub fn run(args: &ShowArgs) -> Result<ExitStatus> {
    read::verify_first(&args.ledger, args.no_verify)?;
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    let shown = write_timelines(args, out)?;
    if shown == 0
        && let Some(id) = &args.incident
    {
        return Err(Error::invalid(format!("no incident or run `{id}` in the ledger"))
            .in_source(args.ledger.display().to_string()));
    }
    Ok(ExitStatus::Success)
}

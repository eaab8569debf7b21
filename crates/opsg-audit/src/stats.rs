//! `opsg-audit stats`: time to detect, time to mitigate, MTTR, outcome and actions by safety
//! class, per incident and per incident class, from the `report` records of a ledger.
//!
//! An incident can take several runs (awaiting approval, then approved and run): its reports are
//! merged: the earliest first-anomalous, detection and mitigation times, the latest outcome and
//! resolution, and the actions of every run added up. Durations are measured from the first
//! anomalous sample (or from detection when triage gave no start).

use crate::read::{self, human_duration};
use crate::timeline::csv_error;
use crate::{StatsArgs, StatsBy, StatsFormat};
use opsg_core::kinds::report::{ActionCounts, ReportBody};
use opsg_core::time::Timestamp;
use opsg_core::{Error, ExitStatus, Kind, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;

/// One incident's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStats {
    /// The incident id (the run id when no incident was assigned).
    pub incident: String,
    /// The incident class (`none` when there was no incident).
    pub class: String,
    /// The latest outcome.
    pub outcome: String,
    /// Runs (reports) merged.
    pub runs: u32,
    /// The first anomalous sample, RFC 3339.
    pub first_anomalous: Option<String>,
    /// Seconds to detection.
    pub time_to_detect_s: Option<f64>,
    /// Seconds to the first action executed.
    pub time_to_mitigate_s: Option<f64>,
    /// Seconds to verified resolution.
    pub mttr_s: Option<f64>,
    /// Actions executed, by safety class.
    pub actions: ActionCounts,
}

/// One incident class's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// The class.
    pub class: String,
    /// Incidents of the class.
    pub incidents: u32,
    /// Incidents by latest outcome.
    pub outcomes: BTreeMap<String, u32>,
    /// Mean seconds to detect (over incidents that have it).
    pub mean_time_to_detect_s: Option<f64>,
    /// Mean seconds to mitigate.
    pub mean_time_to_mitigate_s: Option<f64>,
    /// Mean seconds to resolve, over resolved incidents: the MTTR.
    pub mttr_s: Option<f64>,
    /// Median seconds to resolve.
    pub median_ttr_s: Option<f64>,
    /// Actions executed, by safety class, summed.
    pub actions: ActionCounts,
}

#[derive(Debug, Default)]
struct Merged {
    class: Option<String>,
    outcome: String,
    runs: u32,
    first_anomalous: Option<(Timestamp, String)>,
    detected: Option<Timestamp>,
    mitigated: Option<Timestamp>,
    resolved: Option<Timestamp>,
    actions: ActionCounts,
}

fn earliest(slot: &mut Option<Timestamp>, value: Option<&str>) {
    if let Some(t) = value.and_then(|v| Timestamp::parse_rfc3339(v).ok()) {
        *slot = Some(slot.map_or(t, |s| s.min(t)));
    }
}

fn seconds(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<f64> {
    Some(((to?.millis() - from?.millis()).max(0) as f64) / 1000.0)
}

/// Collect per-incident figures from the ledger's reports, in order of first appearance.
pub fn collect(path: &std::path::Path) -> Result<Vec<IncidentStats>> {
    let mut order: Vec<String> = Vec::new();
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    let shown = path.display().to_string();
    read::for_each_entry(path, |entry| {
        if entry.envelope.kind != Kind::Report {
            return Ok(());
        }
        let body = ReportBody::deserialize(&entry.body).map_err(|e| {
            Error::invalid(format!("invalid report body: {e}"))
                .at_field("record.body")
                .in_source(&shown)
                .at_line(entry.seq)
        })?;
        let key = entry.envelope.incident.clone().unwrap_or_else(|| entry.envelope.run.clone());
        let m = merged.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Merged::default()
        });
        m.runs += 1;
        m.outcome = body.outcome.as_str().to_string();
        if body.class.is_some() {
            m.class = body.class.clone();
        }
        let ms = &body.milestones;
        if let Some(t) =
            ms.first_anomalous.as_deref().and_then(|v| Timestamp::parse_rfc3339(v).ok())
            && m.first_anomalous.as_ref().is_none_or(|(f, _)| t < *f)
        {
            m.first_anomalous = ms.first_anomalous.clone().map(|s| (t, s));
        }
        earliest(&mut m.detected, ms.detected.as_deref());
        earliest(&mut m.mitigated, ms.mitigated.as_deref());
        // The latest resolution counts (an earlier one was undone if the incident came back).
        if let Some(t) = ms.resolved.as_deref().and_then(|v| Timestamp::parse_rfc3339(v).ok()) {
            m.resolved = Some(t);
        }
        let a = &body.actions;
        m.actions.total += a.total;
        m.actions.safe += a.safe;
        m.actions.impactful += a.impactful;
        m.actions.destructive += a.destructive;
        m.actions.rolled_back += a.rolled_back;
        Ok(())
    })?;
    Ok(order
        .into_iter()
        .filter_map(|key| merged.remove(&key).map(|m| (key, m)))
        .map(|(incident, m)| {
            let start = m.first_anomalous.as_ref().map(|(t, _)| *t).or(m.detected);
            let resolved = if m.outcome == "resolved" { m.resolved } else { None };
            IncidentStats {
                incident,
                class: m.class.unwrap_or_else(|| "none".into()),
                outcome: m.outcome,
                runs: m.runs,
                first_anomalous: m.first_anomalous.map(|(_, s)| s),
                time_to_detect_s: seconds(start, m.detected),
                time_to_mitigate_s: seconds(start, m.mitigated),
                mttr_s: seconds(start, resolved),
                actions: m.actions,
            }
        })
        .collect())
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// Per-class figures, classes in name order.
pub fn by_class(incidents: &[IncidentStats]) -> Vec<ClassStats> {
    let mut classes: BTreeMap<&str, Vec<&IncidentStats>> = BTreeMap::new();
    for i in incidents {
        classes.entry(i.class.as_str()).or_default().push(i);
    }
    classes
        .into_iter()
        .map(|(class, members)| {
            let pick = |f: fn(&IncidentStats) -> Option<f64>| -> Vec<f64> {
                members.iter().filter_map(|i| f(i)).collect()
            };
            let mut outcomes = BTreeMap::new();
            let mut actions = ActionCounts::default();
            for i in &members {
                *outcomes.entry(i.outcome.clone()).or_insert(0) += 1;
                actions.total += i.actions.total;
                actions.safe += i.actions.safe;
                actions.impactful += i.actions.impactful;
                actions.destructive += i.actions.destructive;
                actions.rolled_back += i.actions.rolled_back;
            }
            let mut ttr = pick(|i| i.mttr_s);
            ClassStats {
                class: class.to_string(),
                incidents: members.len() as u32,
                outcomes,
                mean_time_to_detect_s: mean(&pick(|i| i.time_to_detect_s)),
                mean_time_to_mitigate_s: mean(&pick(|i| i.time_to_mitigate_s)),
                mttr_s: mean(&ttr),
                median_ttr_s: median(&mut ttr),
                actions,
            }
        })
        .collect()
}

fn secs(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.3}"))
}

fn human(v: Option<f64>) -> String {
    v.map_or("-".into(), human_duration)
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

const INCIDENT_HEADER: [&str; 13] = [
    "incident",
    "class",
    "outcome",
    "runs",
    "first_anomalous",
    "time_to_detect_s",
    "time_to_mitigate_s",
    "mttr_s",
    "actions",
    "safe",
    "impactful",
    "destructive",
    "rolled_back",
];

const CLASS_HEADER: [&str; 13] = [
    "class",
    "incidents",
    "resolved",
    "outcomes",
    "mean_time_to_detect_s",
    "mean_time_to_mitigate_s",
    "mttr_s",
    "median_ttr_s",
    "actions",
    "safe",
    "impactful",
    "destructive",
    "rolled_back",
];

fn outcomes_text(outcomes: &BTreeMap<String, u32>) -> String {
    outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Write the figures in the chosen format.
pub fn write<W: Write>(
    incidents: &[IncidentStats],
    format: StatsFormat,
    by: StatsBy,
    mut out: W,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("stdout", e);
    let classes = by_class(incidents);
    let want_incidents = by != StatsBy::Class;
    let want_classes = by != StatsBy::Incident;
    match format {
        StatsFormat::Json => {
            let mut value = serde_json::Map::new();
            if want_incidents {
                value.insert("incidents".into(), serde_json::json!(incidents));
            }
            if want_classes {
                value.insert("classes".into(), serde_json::json!(classes));
            }
            let mut text = serde_json::Value::Object(value).to_string();
            text.push('\n');
            out.write_all(text.as_bytes()).map_err(io)?;
        }
        StatsFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            if by == StatsBy::Class {
                w.write_record(CLASS_HEADER).map_err(csv_error)?;
                for c in &classes {
                    w.write_record(class_row(c, false)).map_err(csv_error)?;
                }
            } else {
                w.write_record(INCIDENT_HEADER).map_err(csv_error)?;
                for i in incidents {
                    w.write_record(incident_row(i, false)).map_err(csv_error)?;
                }
            }
            w.flush().map_err(io)?;
            return Ok(());
        }
        StatsFormat::Table => {
            let mut text = String::new();
            if want_incidents {
                let mut rows = vec![
                    [
                        "INCIDENT",
                        "CLASS",
                        "OUTCOME",
                        "RUNS",
                        "FIRST ANOMALOUS",
                        "TTD",
                        "TTM",
                        "MTTR",
                        "ACTIONS",
                        "SAFE",
                        "IMPACTFUL",
                        "DESTRUCTIVE",
                        "ROLLED BACK",
                    ]
                    .map(str::to_string)
                    .to_vec(),
                ];
                rows.extend(incidents.iter().map(|i| incident_row(i, true)));
                text.push_str(&table(&rows));
            }
            if want_classes {
                if want_incidents {
                    text.push('\n');
                }
                let mut rows = vec![
                    [
                        "CLASS",
                        "INCIDENTS",
                        "RESOLVED",
                        "OUTCOMES",
                        "MEAN TTD",
                        "MEAN TTM",
                        "MTTR",
                        "MEDIAN TTR",
                        "ACTIONS",
                        "SAFE",
                        "IMPACTFUL",
                        "DESTRUCTIVE",
                        "ROLLED BACK",
                    ]
                    .map(str::to_string)
                    .to_vec(),
                ];
                rows.extend(classes.iter().map(|c| class_row(c, true)));
                text.push_str(&table(&rows));
            }
            out.write_all(text.as_bytes()).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

fn incident_row(i: &IncidentStats, for_people: bool) -> Vec<String> {
    let d = if for_people { human } else { secs };
    vec![
        i.incident.clone(),
        i.class.clone(),
        i.outcome.clone(),
        i.runs.to_string(),
        i.first_anomalous
            .clone()
            .unwrap_or_else(|| if for_people { "-".into() } else { String::new() }),
        d(i.time_to_detect_s),
        d(i.time_to_mitigate_s),
        d(i.mttr_s),
        i.actions.total.to_string(),
        i.actions.safe.to_string(),
        i.actions.impactful.to_string(),
        i.actions.destructive.to_string(),
        i.actions.rolled_back.to_string(),
    ]
}

fn class_row(c: &ClassStats, for_people: bool) -> Vec<String> {
    let d = if for_people { human } else { secs };
    vec![
        c.class.clone(),
        c.incidents.to_string(),
        c.outcomes.get("resolved").copied().unwrap_or(0).to_string(),
        outcomes_text(&c.outcomes),
        d(c.mean_time_to_detect_s),
        d(c.mean_time_to_mitigate_s),
        d(c.mttr_s),
        d(c.median_ttr_s),
        c.actions.total.to_string(),
        c.actions.safe.to_string(),
        c.actions.impactful.to_string(),
        c.actions.destructive.to_string(),
        c.actions.rolled_back.to_string(),
    ]
}

/// `opsg-audit stats`.
pub fn run(args: &StatsArgs) -> Result<ExitStatus> {
    read::verify_first(&args.ledger, args.no_verify)?;
    let incidents = collect(&args.ledger)?;
    let stdout = std::io::stdout();
    write(&incidents, args.format, args.by, std::io::BufWriter::new(stdout.lock()))?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(class: &str, outcome: &str, mttr: Option<f64>) -> IncidentStats {
        IncidentStats {
            incident: format!("inc-{class}-{outcome}"),
            class: class.into(),
            outcome: outcome.into(),
            runs: 1,
            first_anomalous: None,
            time_to_detect_s: Some(10.0),
            time_to_mitigate_s: None,
            mttr_s: mttr,
            actions: ActionCounts { total: 1, safe: 1, ..ActionCounts::default() },
        }
    }

    #[test]
    fn classes_aggregate_their_incidents() {
        let incidents = vec![
            incident("kv_cache_saturation", "resolved", Some(100.0)),
            incident("kv_cache_saturation", "resolved", Some(300.0)),
            incident("kv_cache_saturation", "rolled_back", None),
            incident("replica_down", "resolved", Some(50.0)),
        ];
        let classes = by_class(&incidents);
        assert_eq!(classes.len(), 2);
        let kv = &classes[0];
        assert_eq!(kv.class, "kv_cache_saturation");
        assert_eq!(kv.incidents, 3);
        assert_eq!(kv.outcomes["resolved"], 2);
        assert_eq!(kv.outcomes["rolled_back"], 1);
        assert_eq!(kv.mttr_s, Some(200.0));
        assert_eq!(kv.median_ttr_s, Some(200.0));
        assert_eq!(kv.actions.total, 3);
        assert_eq!(classes[1].mttr_s, Some(50.0));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}

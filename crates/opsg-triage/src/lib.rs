//! `opsg-triage`: observations in, one finding out: anomalies, an incident class and ranked
//! root-cause hypotheses.
//!
//! The stage is pure: the same input records, rules, history and `--now` give the same bytes, so
//! a recorded incident replays identically. The core is [`triage`] (observation + rules → finding
//! body), which `opsg-replay` calls in-process; [`run`] adds stdin/stdout, incident continuity and
//! the optional LLM advisor.
//!
//! - [`rules`]: the detection rules (built-in defaults, a rules file with a schema);
//! - [`signals`]: evaluating a rule on a target's compact series;
//! - [`peers`]: judging a target against the other replicas of its deployment;
//! - [`canary`]: judging each canary replica against the stable replicas under the same traffic;
//! - [`snapshot`]: the `--host` and `--gpu` snapshots as targets and series the rules read;
//! - [`correlate`]: from fired rules to ranked hypotheses, and how confidence is computed;
//! - [`continuity`]: one incident id across cron runs of the same ongoing problem;
//! - [`baseline`]: the fleet's usual traffic (arrivals, prompt length), learned from healthy runs;
//! - [`state_dir`]: the JSON files kept in `--state-dir`, written atomically;
//! - [`history`]: reading (and verifying) an `opsg-audit` ledger;
//! - [`synth`]: deterministic synthetic observations for tests and the incident corpus.

pub mod baseline;
pub mod canary;
pub mod continuity;
pub mod correlate;
pub mod history;
pub mod math;
pub mod peers;
pub mod rules;
pub mod signals;
pub mod snapshot;
pub mod state_dir;
pub mod synth;

use clap::{CommandFactory, Parser};
use opsg_core::kinds::finding::{FindingBody, FindingStatus, IncidentClass, Method};
use opsg_core::kinds::observation::ObservationBody;
use opsg_core::record::{Kind, Stamp};
use opsg_core::seal::HashHex;
use opsg_core::stream::{self, Limits};
use opsg_core::time::Timestamp;
use opsg_core::{Error, ExitStatus, Result};
use std::path::PathBuf;

pub use rules::Rules;

const EXAMPLES: &str = "Examples:
  opsg-scrape --targets fleet.json --samples 12 --interval 15s | opsg-triage
  opsg-triage --rules rules.json --state-dir /var/lib/opsg < observation.jsonl
  opsg-triage --history /var/lib/opsg/ledger.jsonl --now 2026-11-22T06:00:00Z < recorded.jsonl
  OPSG_LLM_URL=http://127.0.0.1:8000/v1 OPSG_LLM_MODEL=qwen2.5 opsg-triage --llm < obs.jsonl";

const ABOUT: &str =
    "Detect anomalies in opsg-scrape observations and name one incident with ranked hypotheses";

const LONG_ABOUT: &str = "Reads the record stream on stdin, evaluates detection rules on the last observation \
record, correlates what fired into one incident (a class, the affected targets, ranked root-cause \
hypotheses with confidences) and appends a finding record. With nothing wrong, the finding says \
`no_incident` and later stages do nothing.

Rules need persistence (`for`: N consecutive evaluations, or a duration), so one spike does not page. \
Confidence is a noisy-OR of the evidence (rule weight x how far past the threshold), scaled by \
structure (canary vs stable, fleet arrival growth) and telemetry quality (stale or missing targets); \
see the `correlate` module docs. A missing target never raises an incident, except `replica_down` \
for a serving replica that stops answering.

Incident continuity: the fingerprint is SHA-256 of the class and the sorted affected targets. With \
`--state-dir DIR` (a small JSON file, DIR/incidents.json) or `--history LEDGER` (opsg-audit's \
ledger, verified first), a finding whose fingerprint was seen within `--continue-within` (default \
30m) continues that incident's id instead of opening a new one; an incident whose report said \
`resolved` is not continued.

Usual traffic: with `--state-dir DIR`, a run that finds no incident adds the fleet's arrivals per \
second and mean prompt tokens per request to DIR/traffic.json (at most 20 runs per fleet, none \
older than 6 h). Once 3 healthy runs are known, their median is the usual: arrivals 1.5x the usual \
are a traffic surge even when the window itself shows no growth, and prompts 1.5x the usual length \
are long contexts (KV saturation), not a surge, when they grew more than arrivals did.

Host and GPU snapshots (`opsg-scrape --host --gpu`) are judged as targets `host:<hostname>` and \
`gpu:<hostname>` on that node: memory stall averages, available memory, OOM kills, process RSS \
growth, XID events, a lost GPU, uncorrected ECC errors, row remaps and clock throttling (rules on \
`host.*` and `gpu.*` fields). Counters and growth need earlier snapshots: those of earlier \
observations on the input, and with `--history` those of earlier runs within `--continue-within`. \
An unavailable host or GPU raises nothing.";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-triage",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = after_help()
)]
pub struct Args {
    /// Detection rules (JSON, schemas/rules.schema.json); replaces the built-in set.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The clock, RFC 3339 (default: now). Same input + same --now = same output bytes.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// opsg-audit ledger: continue incidents it recorded, compare host/GPU snapshots with earlier runs' (refused, with a note, if it fails verification).
    #[arg(long, value_name = "LEDGER")]
    pub history: Option<PathBuf>,
    /// Directory for incident continuity state (DIR/incidents.json) and the fleet's usual traffic (DIR/traffic.json).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Continue an incident seen with the same fingerprint within this long.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub continue_within: String,
    /// The optional LLM advisor.
    #[command(flatten)]
    pub llm: opsg_advisor::LlmArgs,
}

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", opsg_core::cli::exit_status_help())
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// The fingerprint of an incident: SHA-256 over the class and the sorted affected targets.
pub fn fingerprint(class: IncidentClass, targets: &[String]) -> String {
    let mut sorted: Vec<&str> = targets.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let material = format!("{class}\n{}", sorted.join("\n"));
    HashHex::of(material.as_bytes()).to_string()
}

/// The pure core: evaluate `rules` on an observation and correlate into a finding body (method
/// `rules`). No clock, no I/O.
pub fn triage(obs: &ObservationBody, rules: &Rules) -> FindingBody {
    let obs = snapshot::with_snapshots(obs, &[]);
    let corr = correlate::correlate(&obs, rules);
    finding_from(&obs, rules, corr.hypotheses, corr.fired, corr.telemetry, Method::rules())
}

/// Assemble a finding from ranked hypotheses (the leading one decides class and targets).
pub fn finding_from(
    obs: &ObservationBody,
    rules: &Rules,
    hypotheses: Vec<opsg_core::kinds::finding::Hypothesis>,
    fired: Vec<correlate::Fired>,
    telemetry: opsg_core::kinds::finding::TelemetryQuality,
    method: Method,
) -> FindingBody {
    let lead = hypotheses.first().filter(|h| h.confidence >= rules.min_confidence).cloned();
    let anomalies: Vec<_> = fired.iter().map(|f| f.anomaly.clone()).collect();
    match lead {
        Some(h) => {
            let first = fired
                .iter()
                .filter(|f| {
                    h.targets.contains(&f.anomaly.target)
                        || h.evidence.iter().any(|e| e.ends_with(&format!("@{}", f.anomaly.target)))
                })
                .filter_map(|f| f.since_ms)
                .min();
            let mut summary = format!(
                "{} (confidence {:.2}) on {}: {}",
                h.class,
                h.confidence,
                h.targets.join(", "),
                h.cause
            );
            if !telemetry.notes.is_empty() || !telemetry.stale_targets.is_empty() {
                summary.push_str("; telemetry partial");
            }
            FindingBody {
                status: FindingStatus::Incident,
                class: h.class,
                fingerprint: fingerprint(h.class, &h.targets),
                summary,
                affected_targets: h.targets.clone(),
                first_anomalous_at: first.map(|t| Timestamp(t).to_rfc3339()),
                anomalies,
                hypotheses,
                telemetry,
                method,
            }
        }
        None => {
            let summary = if obs.targets.is_empty() {
                "no incident: the observation has no targets, so nothing could be judged"
                    .to_string()
            } else if let Some(h) = hypotheses.first() {
                format!(
                    "no incident: {} anomal{} below the confidence floor (best: {} at {:.2} < {:.2})",
                    anomalies.len(),
                    if anomalies.len() == 1 { "y" } else { "ies" },
                    h.class,
                    h.confidence,
                    rules.min_confidence
                )
            } else {
                let snapshots = snapshot::described(&obs.targets)
                    .map(|s| format!(" (and {s})"))
                    .unwrap_or_default();
                format!(
                    "no incident: {} of {} targets up{snapshots}, no rule fired",
                    telemetry.targets_up, telemetry.targets_total
                )
            };
            FindingBody {
                status: FindingStatus::NoIncident,
                class: IncidentClass::None,
                fingerprint: fingerprint(IncidentClass::None, &[]),
                summary,
                affected_targets: Vec::new(),
                first_anomalous_at: None,
                anomalies,
                hypotheses,
                telemetry,
                method,
            }
        }
    }
}

/// Parse `--now` (or read the system clock).
pub fn clock(now: Option<&str>) -> Result<Timestamp> {
    match now {
        Some(text) => Timestamp::parse_rfc3339(text).map_err(|e| e.at_field("--now")),
        None => Ok(Timestamp::now()),
    }
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    // Ready before stdin arrives: compiled in the background only if a schema falls outside
    // the checker that needs no compile (see `schema::warm_up`).
    opsg_core::schema::warm_up(&["envelope.schema.json", "observation.schema.json"]);
    let now = clock(args.now.as_deref())?;
    let rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => Rules::builtin(),
    };
    let window_ms = opsg_core::time::parse_duration_ms(&args.continue_within)
        .map_err(|e| Error::usage(format!("--continue-within: {}", e.message())))?;
    let advisor = opsg_advisor::Advisor::from_args(&args.llm)?;
    let chain = stream::read_stdin(&Limits::default())?;
    // A stage in a pipe starts with its neighbours: without --now it stamps its record once its
    // input has arrived, so a chain's records are in time order (and detection time is real).
    let now = if args.now.is_some() { now } else { Timestamp::now() };
    let obs_line = chain.last_of(Kind::Observation).ok_or_else(|| {
        Error::invalid(
            "no observation record on the input (opsg-triage reads what opsg-scrape writes)",
        )
        .in_source("stdin")
    })?;
    let obs: ObservationBody = obs_line.body("stdin")?;
    // Host and GPU snapshots of earlier runs (in the history ledger, within the continuity
    // window) and of earlier observations in the chain make counters and growth measurable
    // across snapshots (see `snapshot`).
    let mut earlier: Vec<ObservationBody> = Vec::new();
    let mut priors = Vec::new();
    let mut history_note = None;
    if let Some(path) = &args.history {
        let until = Timestamp::parse_rfc3339(&obs.window.end).unwrap_or(now);
        let span = (until.plus_millis(-window_ms), until);
        match history::read_history(path, Some(span)) {
            Ok(h) => {
                priors.extend(continuity::from_ledger(&h.entries));
                earlier.extend(h.snapshots);
            }
            Err(e) => {
                let note = format!("history ledger refused, not learned from: {e}");
                opsg_core::cli::warn(&note);
                history_note = Some(note);
            }
        }
    }
    for line in chain.all_of(Kind::Observation).filter(|l| !std::ptr::eq(*l, obs_line)) {
        let body: ObservationBody = line.body("stdin")?;
        if body.host.is_some() || body.gpus.is_some() {
            earlier.push(body);
        }
    }
    let obs = snapshot::with_snapshots(&obs, &earlier);

    // The fleet's usual traffic, from earlier healthy runs in the state directory; windows are
    // judged against it by the end of the observed window, like continuity, so a replay with the
    // same state is the same.
    let until = Timestamp::parse_rfc3339(&obs.window.end).unwrap_or(now);
    let traffic = baseline::measure(&obs);
    let mut baseline_note = None;
    let learned = match &args.state_dir {
        Some(dir) => match baseline::Learned::load(dir) {
            Ok(l) => Some(l),
            Err(e) => {
                let note = format!("traffic baseline unreadable, relearned from now on: {e}");
                opsg_core::cli::warn(&note);
                baseline_note = Some(note);
                Some(baseline::Learned::default())
            }
        },
        None => None,
    };
    let usual = learned.as_ref().zip(traffic.as_ref()).map(|(l, t)| l.usual(&t.fleet, until));
    let corr = correlate::correlate_with(&obs, &rules, usual.as_ref());
    let mut method = Method::rules();
    let mut hypotheses = corr.hypotheses;
    if let Some(advisor) = &advisor {
        let outcome = advisor::advise(advisor, &obs, &hypotheses, &corr.fired);
        method = outcome.method;
        hypotheses = outcome.hypotheses;
    }
    let mut telemetry = corr.telemetry;
    telemetry.notes.extend(history_note);
    telemetry.notes.extend(baseline_note);
    let state = match &args.state_dir {
        Some(dir) => Some(continuity::State::load(dir)?),
        None => None,
    };
    if let Some(state) = &state {
        priors.extend(state.priors());
    }
    let mut body = finding_from(&obs, &rules, hypotheses, corr.fired, telemetry, method);
    // Only runs that found nothing teach the usual: a surge must not become the norm.
    if let (Some(dir), Some(learned), Some(traffic)) = (&args.state_dir, learned, traffic)
        && body.status == FindingStatus::NoIncident
    {
        learned.learn(until, traffic).save(dir)?;
    }
    let incident = if body.status == FindingStatus::Incident {
        let opened = body
            .first_anomalous_at
            .as_deref()
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .unwrap_or(now);
        let (id, continued) =
            continuity::incident_id(&body.fingerprint, opened, now, window_ms, &priors);
        if let Some(prior) = &continued {
            body.summary.push_str(&format!(" (continues {id}, first raised {prior})"));
        }
        if let (Some(dir), Some(state)) = (&args.state_dir, state) {
            state.record(&body.fingerprint, &id, opened, now).save(dir)?;
        }
        Some(id)
    } else {
        None
    };
    let stamp = Stamp { tool: "opsg-triage", version: env!("CARGO_PKG_VERSION"), now };
    let summary = body.summary.clone();
    let mut record = chain.next_record(Kind::Finding, &stamp, &[obs_line], body);
    if incident.is_some() {
        record.envelope.incident = incident;
    }
    stream::emit(&chain, &mut record)?;
    opsg_core::cli::info(summary);
    Ok(ExitStatus::Success)
}

pub mod advisor;

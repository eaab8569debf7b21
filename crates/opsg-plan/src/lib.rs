//! `opsg-plan`: a finding in, a plan out: ordered, typed actions from a catalog, each with its
//! safety class, blast radius, expected effect, and inverse with the prior state it needs.
//!
//! Pure like triage: same records + catalog + history + `--now` = same bytes. The core is
//! [`plan`] (finding + fleet + catalog + past incidents → plan body), which `opsg-replay` calls
//! in-process.
//!
//! - [`catalog`]: the actions and candidate plans per class (data, with a schema and a safety floor);
//! - [`fleet`]: deployments, weights and versions from target labels or a `GET /state` snapshot;
//! - [`build`]: a catalog step → a typed action with inverse and prior state;
//! - [`memory`]: runbook memory from a verified `opsg-audit` ledger;
//! - [`advisor`]: what the optional LLM advisor may propose, and how it is checked.

pub mod advisor;
pub mod build;
pub mod catalog;
pub mod fleet;
pub mod memory;

use clap::{CommandFactory, Parser};
use opsg_core::kinds::finding::{FindingBody, FindingStatus, IncidentClass, Method};
use opsg_core::kinds::observation::ObservationBody;
use opsg_core::kinds::plan::{Action, ActionType, PlanBody};
use opsg_core::record::{Kind, Stamp};
use opsg_core::stream::{self, Limits};
use opsg_core::time::Timestamp;
use opsg_core::{Error, ExitStatus, Result};
use std::path::PathBuf;

pub use catalog::Catalog;
pub use fleet::Fleet;
pub use memory::PastIncident;

const EXAMPLES: &str = "Examples:
  opsg-scrape --targets fleet.json | opsg-triage | opsg-plan | opsg-gate --policy policy.json
  opsg-plan --fleet-state <(curl -s http://127.0.0.1:9400/state) < finding.jsonl
  opsg-plan --catalog catalog.json --history /var/lib/opsg/ledger.jsonl --now 2026-11-22T06:00:00Z < finding.jsonl
  OPSG_LLM_API=anthropic OPSG_LLM_URL=https://api.anthropic.com OPSG_LLM_MODEL=claude-sonnet-4-5 opsg-plan --llm < finding.jsonl";

const LONG_ABOUT: &str =
    "Reads the record stream on stdin and turns the last finding's leading hypothesis into an \
ordered plan of typed actions from the catalog (built-in, or --catalog FILE): shift_traffic, \
set_deployment_status, rollback_config, restart_replica, scale_replicas, cordon_node, drain_node, \
cleanup_node, and escalate when nothing safe applies. Shifts are sized from the observed KV \
usage and queue, scale-ups from the demand (the arrival rate over what a saturated replica \
serves, at 80% utilisation, plus what clears the queue as fast as it grew; from the queue when \
no rates are observed); at most the step's max_share / max_delta and the free GPUs. When the \
observed demand needs no more replicas than the deployment has (the run after a right-sized \
scale-up, while the old replicas drain the backlog vLLM does not move), the plan holds: no \
actions, and a rationale with the replicas, the backlog and its expected drain time; so does \
a cordon or restart for a network latency on a replica whose queue is draining. Each action \
carries its parameters, safety class (safe / impactful / destructive, never below the action \
type's floor), blast radius (replicas and traffic share touched), the expected effect \
opsg-verify checks, and its inverse with the prior state it needs.

Prior state comes from the observation's target labels (weight, replicas, config_version, \
previous_config_version, status) or, better, --fleet-state FILE (a GET /state snapshot of the \
fleet admin API); opsg-exec captures it again right before acting. A candidate that cannot be \
built exactly (a weight or version unknown) is skipped for the next one; if none applies, the plan \
escalates. A no_incident finding gives an empty plan.

Runbook memory: with --history LEDGER (opsg-audit's ledger, verified first; a ledger that fails \
verification is not learned from, and the plan says so), candidates are ranked by the smoothed \
success rate of their first action on past incidents of the same class (same fingerprint counts \
double), and those incidents are cited as precedents.";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-plan",
    version,
    about = "Turn a finding into ordered, typed, reversible remediation actions",
    long_about = LONG_ABOUT,
    after_help = after_help()
)]
pub struct Args {
    /// Action catalog (JSON, schemas/catalog.schema.json); replaces the built-in one.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// opsg-audit ledger to learn from (runbook memory).
    #[arg(long, value_name = "LEDGER")]
    pub history: Option<PathBuf>,
    /// A GET /state snapshot of the fleet admin API (weights, versions, replicas).
    #[arg(long, value_name = "FILE")]
    pub fleet_state: Option<PathBuf>,
    /// The clock, RFC 3339 (default: now). Same input + same --now = same output bytes.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
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

/// A candidate plan once built: its name, actions and history score.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The catalog plan's name.
    pub name: String,
    /// Why (from the catalog), or, for a hold, why nothing needs doing.
    pub why: String,
    /// The built actions; none for a hold: a step found nothing to do (a scale-up whose
    /// deployment already has the replicas its demand needs, a node action for a latency that
    /// is a backlog draining; see `build`), so the plan holds and watches.
    pub actions: Vec<Action>,
    /// History score and counts (resolved, attempts).
    pub score: (f64, u32, u32),
}

/// Build every applicable candidate for the finding, ranked by history (ties in catalog order);
/// also returns why the others were skipped. A candidate whose step holds (nothing needs doing)
/// is kept with no actions, ranked by the history of that step's action, so that it is not
/// skipped for a less fitting alternative or an escalation.
pub fn candidates(
    finding: &FindingBody,
    fleet: &Fleet,
    catalog: &Catalog,
    past: &[PastIncident],
) -> (Vec<Candidate>, Vec<String>) {
    let ctx = build::Context::new(finding, fleet, catalog);
    let mut built = Vec::new();
    let mut skipped = Vec::new();
    for spec in catalog.candidates(finding.class) {
        let actions: std::result::Result<Vec<Action>, String> =
            spec.steps.iter().enumerate().map(|(i, s)| ctx.build_step(i as u32, s)).collect();
        match actions {
            Ok(actions) => {
                let first = actions.first().map_or(ActionType::Noop, |a| a.action);
                let score = memory::score(past, finding.class, &finding.fingerprint, first);
                let mut why = spec.why.clone();
                for note in ctx.take_notes() {
                    why.push_str(&format!(" ({note})"));
                }
                built.push(Candidate { name: spec.name.clone(), why, actions, score });
            }
            Err(why) => {
                ctx.take_notes();
                match ctx.take_hold() {
                    Some(hold) => {
                        let first = spec.steps.first().map_or(ActionType::Noop, |s| s.action);
                        let score = memory::score(past, finding.class, &finding.fingerprint, first);
                        built.push(Candidate {
                            name: spec.name.clone(),
                            why: hold,
                            actions: Vec::new(),
                            score,
                        });
                    }
                    None => skipped.push(format!("`{}` skipped: {why}", spec.name)),
                }
            }
        }
    }
    built.sort_by(|a, b| b.score.0.total_cmp(&a.score.0));
    (built, skipped)
}

fn escalation(finding: &FindingBody, fleet: &Fleet, catalog: &Catalog) -> Vec<Action> {
    let ctx = build::Context::new(finding, fleet, catalog);
    ctx.build(0, ActionType::Escalate, "incident", &Default::default(), &None).into_iter().collect()
}

/// The pure core: plan for a finding (method `rules`).
pub fn plan(
    finding: &FindingBody,
    fleet: &Fleet,
    catalog: &Catalog,
    past: &[PastIncident],
) -> PlanBody {
    if finding.status == FindingStatus::NoIncident {
        return PlanBody {
            class: IncidentClass::None,
            confidence: 0.0,
            rationale: "no incident: nothing to do".into(),
            actions: Vec::new(),
            precedents: Vec::new(),
            method: Method::rules(),
        };
    }
    let confidence = finding.hypotheses.first().map_or(0.0, |h| h.confidence);
    let precedents = memory::precedents(past, finding.class, &finding.fingerprint, 5);
    let (ranked, skipped) = candidates(finding, fleet, catalog, past);
    let lead = finding
        .hypotheses
        .first()
        .map(|h| format!("{} ({:.2})", h.class, h.confidence))
        .unwrap_or_default();
    let mut rationale = format!("leading hypothesis {lead}: ");
    let actions = match ranked.first() {
        Some(c) => {
            rationale.push_str(&format!("plan `{}`: {}", c.name, c.why));
            if c.score.2 > 0 {
                rationale.push_str(&format!(
                    "; history: its first action resolved {} of {} weighted past attempts",
                    c.score.1, c.score.2
                ));
            }
            let others: Vec<&str> = ranked.iter().skip(1).map(|c| c.name.as_str()).collect();
            if !others.is_empty() {
                rationale.push_str(&format!("; alternatives: {}", others.join(", ")));
            }
            c.actions.clone()
        }
        None => {
            rationale.push_str("no catalog plan applies safely: escalate to a human");
            escalation(finding, fleet, catalog)
        }
    };
    if !skipped.is_empty() {
        rationale.push_str(&format!("; {}", skipped.join("; ")));
    }
    PlanBody {
        class: finding.class,
        confidence,
        rationale,
        actions,
        precedents,
        method: Method::rules(),
    }
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    // Ready before stdin arrives: compiled in the background only if a schema falls outside
    // the checker that needs no compile (see `schema::warm_up`).
    opsg_core::schema::warm_up(&[
        "envelope.schema.json",
        "finding.schema.json",
        "observation.schema.json",
    ]);
    let now = opsg_triage::clock(args.now.as_deref())?;
    let catalog = match &args.catalog {
        Some(path) => Catalog::load(path)?,
        None => Catalog::builtin(),
    };
    let advisor = opsg_advisor::Advisor::from_args(&args.llm)?;
    let state = match &args.fleet_state {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::invalid(format!("the fleet state is not JSON: {e}"))
                    .in_source(path.display().to_string())
            })?;
            Some(v)
        }
        None => None,
    };
    let chain = stream::read_stdin(&Limits::default())?;
    // A stage in a pipe starts with its neighbours: without --now it stamps its record once its
    // input has arrived, so a chain's records are in time order (and detection time is real).
    let now = if args.now.is_some() { now } else { Timestamp::now() };
    let finding_line = chain.last_of(Kind::Finding).ok_or_else(|| {
        Error::invalid("no finding record on the input (opsg-plan reads what opsg-triage writes)")
            .in_source("stdin")
    })?;
    let finding: FindingBody = finding_line.body("stdin")?;
    let obs: Option<ObservationBody> = match chain.last_of(Kind::Observation) {
        Some(line) => Some(line.body("stdin")?),
        None => None,
    };
    let mut fleet = Fleet::from_observation(obs.as_ref());
    if let Some(state) = &state {
        fleet.overlay_state(state);
    }
    let mut past = Vec::new();
    let mut history_note = None;
    if let Some(path) = &args.history {
        match opsg_triage::history::read_ledger(path) {
            Ok(entries) => past = memory::past_incidents(&entries),
            Err(e) => {
                let note = format!("history ledger refused, not learned from: {e}");
                opsg_core::cli::warn(&note);
                history_note = Some(note);
            }
        }
    }
    let mut body = plan(&finding, &fleet, &catalog, &past);
    if let Some(advisor) = &advisor
        && finding.status == FindingStatus::Incident
    {
        body = advisor::advise(advisor, &finding, &fleet, &catalog, body);
    }
    if let Some(note) = history_note {
        body.rationale.push_str(&format!("; {note}"));
    }
    let stamp = Stamp { tool: "opsg-plan", version: env!("CARGO_PKG_VERSION"), now };
    let summary = match body.actions.first() {
        Some(a) => format!(
            "{} action(s) for {}: first {} on {} ({:?})",
            body.actions.len(),
            body.class,
            a.action,
            a.target,
            a.safety
        )
        .to_lowercase(),
        None => "no actions: nothing to do".to_string(),
    };
    let mut record = chain.next_record(Kind::Plan, &stamp, &[finding_line], body);
    stream::emit(&chain, &mut record)?;
    opsg_core::cli::info(summary);
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Deployment, Load};
    use opsg_core::kinds::finding::Hypothesis;

    fn fleet(loads: &[(&str, f64, f64, f64, f64)]) -> Fleet {
        let mut f = Fleet::default();
        for &(name, weight, kv_usage, waiting, running) in loads {
            let replica = format!("{name}-0");
            f.replica_deployment.insert(replica.clone(), name.into());
            f.targets.push(replica.clone());
            f.deployments.insert(
                name.into(),
                Deployment {
                    name: name.into(),
                    route: "default".into(),
                    weight: Some(weight),
                    replicas: vec![replica],
                    replica_count: Some(1),
                    load: Some(Load { kv_usage, waiting, running, replicas: 1 }),
                    ..Deployment::default()
                },
            );
        }
        f
    }

    fn kv_finding(affected: &str) -> FindingBody {
        serde_json::from_value(serde_json::json!({
            "status": "incident", "class": "kv_cache_saturation", "fingerprint": "fp",
            "summary": "kv", "affected_targets": [affected], "method": {"kind": "rules"},
            "hypotheses": [serde_json::to_value(Hypothesis {
                class: IncidentClass::KvCacheSaturation, cause: "kv".into(), confidence: 0.9,
                targets: vec![affected.into()], evidence: vec![],
            }).unwrap()]
        }))
        .unwrap()
    }

    #[test]
    fn the_rationale_says_how_the_shift_was_sized() {
        let f = fleet(&[("hot", 0.5, 0.97, 60.0, 20.0), ("cool", 0.5, 0.3, 0.0, 10.0)]);
        let p = plan(&kv_finding("hot-0"), &f, &Catalog::builtin(), &[]);
        assert_eq!(p.actions[0].action, ActionType::ShiftTraffic);
        assert!(p.rationale.contains("plan `kv-shift-traffic`"), "{}", p.rationale);
        assert!(p.rationale.contains("shift sized from the evidence"), "{}", p.rationale);
    }

    #[test]
    fn a_surge_draining_on_enough_replicas_gets_a_plan_with_no_actions_that_says_why() {
        // Regression: the run after a right-sized scale-up (3 -> 9) planned one replica more
        // while the old replicas drained their backlog, and again at every run until it had.
        let mut f = fleet(&[("stable", 0.9, 0.9, 60.0, 30.0), ("canary", 0.1, 0.3, 0.0, 10.0)]);
        f.free_gpus = Some(7);
        let stable = f.deployments.get_mut("stable").unwrap();
        stable.replica_count = Some(9);
        stable.rates = Some(crate::fleet::Rates {
            arrivals_per_s: 36.7,
            served_per_replica_s: Some(7.0),
            queue_growth_per_s: -4.5,
            waiting_end: 180.0,
            waiting_end_max: 62.0,
            busy_replicas: 3,
            replicas: 9,
        });
        let mut finding = kv_finding("stable-0");
        finding.class = IncidentClass::TrafficSurge;
        finding.hypotheses[0].class = IncidentClass::TrafficSurge;
        let p = plan(&finding, &f, &Catalog::builtin(), &[]);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.class, IncidentClass::TrafficSurge, "still the incident triage found");
        for part in [
            "plan `surge-scale-up`: hold, no scale-up",
            "7 replicas for 9 now",
            "at most 62",
            "in about 9 s",
        ] {
            assert!(p.rationale.contains(part), "`{part}` not in: {}", p.rationale);
        }
        assert!(!p.rationale.contains("escalate"), "{}", p.rationale);

        // A backlog finding holds too rather than falling to the next candidate's fixed shift.
        finding.class = IncidentClass::QueueBacklog;
        let p = plan(&finding, &f, &Catalog::builtin(), &[]);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.rationale.contains("plan `backlog-scale-up`: hold"), "{}", p.rationale);
        assert!(p.rationale.contains("alternatives: backlog-shift-traffic"), "{}", p.rationale);

        // Demand beyond the 9 replicas: a scale-up of what is missing, as before.
        let stable = f.deployments.get_mut("stable").unwrap();
        stable.rates = stable.rates.map(|r| crate::fleet::Rates {
            arrivals_per_s: 60.0,
            queue_growth_per_s: 7.0,
            ..r
        });
        finding.class = IncidentClass::TrafficSurge;
        let p = plan(&finding, &f, &Catalog::builtin(), &[]);
        assert_eq!(p.actions[0].action, ActionType::ScaleReplicas, "{}", p.rationale);
        assert_eq!(p.actions[0].params["replicas"], serde_json::json!(12), "9 + 3");
    }

    #[test]
    fn with_no_headroom_anywhere_the_planner_scales_up_instead_of_moving_the_saturation() {
        let f = fleet(&[("hot", 0.5, 0.97, 60.0, 20.0), ("warm", 0.5, 0.93, 30.0, 20.0)]);
        let p = plan(&kv_finding("hot-0"), &f, &Catalog::builtin(), &[]);
        assert_eq!(p.actions[0].action, ActionType::ScaleReplicas, "{}", p.rationale);
        assert_eq!(p.actions[0].target, "hot");
        assert!(p.rationale.contains("`kv-shift-traffic` skipped"), "{}", p.rationale);
        assert!(p.rationale.contains("no KV headroom"), "{}", p.rationale);
    }
}

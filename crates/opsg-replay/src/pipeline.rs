//! Running a case through the pure stages, in process: triage, plan, gate.
//!
//! The stages' own library cores do the work (`opsg_triage::triage`, `opsg_plan::plan`,
//! `opsg_gate::evaluate::evaluate`), so there is no second implementation to drift; each new
//! record is sealed onto the chain and re-checked exactly as a stage reading a pipe would check
//! it (`Chain::push`). Replay is deterministic: no state directory, no ledger, no LLM, and the
//! clock is the case's `now`.

use crate::case::{Case, Input};
use opsg_core::kinds::decision::{DecisionBody, Mode, Verdict};
use opsg_core::kinds::finding::{FindingBody, FindingStatus};
use opsg_core::kinds::observation::ObservationBody;
use opsg_core::kinds::plan::PlanBody;
use opsg_core::record::{Kind, Record, Stamp};
use opsg_core::stream::{Chain, Limits, read_chain};
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use opsg_gate::evaluate::GateState;
use opsg_gate::policy::LoadedPolicy;
use opsg_plan::Catalog;
use opsg_triage::Rules;
use std::time::Duration;

/// The configuration every case uses unless its case file names its own.
pub struct Defaults {
    /// Triage rules.
    pub rules: Rules,
    /// The action catalog.
    pub catalog: Catalog,
    /// The gate policy.
    pub policy: LoadedPolicy,
}

/// What the stages concluded for a case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// The finding's class (`none` when no incident).
    pub class: String,
    /// The leading hypothesis' confidence.
    pub confidence: f64,
    /// The first planned action (`none` when the plan is empty).
    pub first_action: String,
    /// The gate's verdict.
    pub decision: String,
    /// The outcome the pure stages imply.
    pub outcome: String,
}

/// A case's replayed chain and conclusions.
pub struct Replayed {
    /// The chain: the recording's prefix up to its last observation, then finding, plan, decision.
    pub chain: Chain,
    /// The conclusions.
    pub actual: Actual,
}

/// Replay one case.
pub fn replay(case: &Case, defaults: &Defaults) -> Result<Replayed> {
    let mut chain = load_input(case)?;
    let obs_line = chain.last_of(Kind::Observation).ok_or_else(|| {
        Error::invalid("the recording holds no observation").in_source(case.name.clone())
    })?;
    let obs: ObservationBody = obs_line.body(&chain.source)?;
    let now = match &case.file.now {
        Some(t) => Timestamp::parse_rfc3339(t)
            .map_err(|e| e.in_source(case.name.clone()).at_field("now"))?,
        None => Timestamp::parse_rfc3339(&obs_line.envelope.created)?,
    };

    let rules_owned;
    let rules = match &case.file.rules {
        Some(p) => {
            rules_owned = Rules::load(&case.path(p))?;
            &rules_owned
        }
        None => &defaults.rules,
    };
    let catalog_owned;
    let catalog = match &case.file.catalog {
        Some(p) => {
            catalog_owned = Catalog::load(&case.path(p))?;
            &catalog_owned
        }
        None => &defaults.catalog,
    };
    let policy_owned;
    let policy = match &case.file.policy {
        Some(p) => {
            policy_owned = opsg_gate::policy::load(Some(&case.path(p)))?;
            &policy_owned
        }
        None => &defaults.policy,
    };

    // Triage, as `opsg-triage --now NOW` without state: a new incident id from the fingerprint.
    let finding = opsg_triage::triage(&obs, rules);
    let incident = (finding.status == FindingStatus::Incident).then(|| {
        let opened = finding
            .first_anomalous_at
            .as_deref()
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .unwrap_or(now);
        opsg_triage::continuity::new_id(&finding.fingerprint, opened)
    });
    let obs_line = obs_line.clone();
    let mut record =
        chain.next_record(Kind::Finding, &stamp("opsg-triage", now), &[&obs_line], finding.clone());
    if incident.is_some() {
        record.envelope.incident = incident;
    }
    chain.push(&mut record)?;

    // Plan, from the finding and the fleet as the observation shows it.
    let mut fleet = opsg_plan::Fleet::from_observation(Some(&obs));
    if let Some(path) = case.fleet_state() {
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&shown, e))?;
        fleet.overlay_state(&opsg_core::schema::parse_json(&bytes, &shown)?);
    }
    let plan = opsg_plan::plan(&finding, &fleet, catalog, &[]);
    push_after(&mut chain, Kind::Plan, "opsg-plan", now, Kind::Finding, plan.clone())?;

    // Gate, with no history, no approval and no spent nonces.
    let no_nonce = |_: &str| None;
    let state = GateState {
        events: Vec::new(),
        approval_token: None,
        approval_key: None,
        nonce_spent: &no_nonce,
    };
    let evaluation = opsg_gate::evaluate::evaluate(&chain, policy, &state, now)?;
    let decision = evaluation.body.clone();
    push_after(&mut chain, Kind::Decision, "opsg-gate", now, Kind::Plan, evaluation.body)?;

    let actual = conclude(&finding, &plan, &decision);
    Ok(Replayed { chain, actual })
}

fn stamp(tool: &'static str, now: Timestamp) -> Stamp {
    Stamp { tool, version: env!("CARGO_PKG_VERSION"), now }
}

fn push_after<B: serde::Serialize>(
    chain: &mut Chain,
    kind: Kind,
    tool: &'static str,
    now: Timestamp,
    consumed: Kind,
    body: B,
) -> Result<()> {
    let consumes: Vec<_> = chain.last_of(consumed).cloned().into_iter().collect();
    let refs: Vec<_> = consumes.iter().collect();
    let mut record: Record<B> = chain.next_record(kind, &stamp(tool, now), &refs, body);
    chain.push(&mut record)?;
    Ok(())
}

/// The conclusions of the three stages, in the names case files use.
pub fn conclude(finding: &FindingBody, plan: &PlanBody, decision: &DecisionBody) -> Actual {
    let decision_name = opsg_gate::evaluate::verdict_name(decision.verdict).to_string();
    let outcome = match (finding.status, decision.verdict, decision.mode) {
        (FindingStatus::NoIncident, _, _) | (_, Verdict::NoAction, _) => "no_incident",
        (_, Verdict::Blocked, _) => "blocked",
        (_, Verdict::AwaitingApproval, _) => "awaiting_approval",
        (_, Verdict::Approved, Mode::DryRun) => "dry_run",
        (_, Verdict::Approved, Mode::Live) => "approved",
    };
    Actual {
        class: finding.class.to_string(),
        confidence: finding.hypotheses.first().map_or(0.0, |h| h.confidence),
        first_action: plan
            .actions
            .first()
            .map_or_else(|| "none".to_string(), |a| a.action.to_string()),
        decision: decision_name,
        outcome: outcome.to_string(),
    }
}

fn load_input(case: &Case) -> Result<Chain> {
    match case.input()? {
        Input::Recording(path) => {
            let source = path.display().to_string();
            let file = std::fs::File::open(&path).map_err(|e| Error::io(&source, e))?;
            let mut chain = read_chain(std::io::BufReader::new(file), &source, &Limits::default())?;
            // Keep the prefix up to the last observation: later records are what we recompute.
            if let Some(last_obs) =
                chain.records.iter().rposition(|r| r.kind() == Kind::Observation)
            {
                chain.records.truncate(last_obs + 1);
            }
            Ok(chain)
        }
        Input::Captures(paths) => observe_captures(case, &paths),
    }
}

/// Turn raw `.prom` captures into a one-observation chain with opsg-scrape's own code.
fn observe_captures(case: &Case, paths: &[std::path::PathBuf]) -> Result<Chain> {
    let now = match &case.file.now {
        Some(t) => Timestamp::parse_rfc3339(t)?,
        None => {
            return Err(Error::invalid("a case made of .prom captures needs `now`")
                .in_source(case.dir.join("case.json").display().to_string()));
        }
    };
    let targets: Vec<opsg_scrape::target::Target> = paths
        .iter()
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            opsg_scrape::target::Target {
                labels: case.file.labels.get(&stem).cloned().unwrap_or_default(),
                name: stem,
                source: opsg_scrape::target::Source::File(p.clone()),
            }
        })
        .collect();
    let opts = opsg_scrape::scrape::ScrapeOptions {
        clock: opsg_scrape::scrape::Clock::Frozen(now),
        interval: Duration::from_secs(0),
        ..Default::default()
    };
    let scraped = opsg_scrape::scrape::scrape(&targets, &opts)?;
    let mut window = scraped.window.clone();
    if window.start.is_empty() {
        window.start = now.to_rfc3339();
        window.end = window.start.clone();
    }
    let body = ObservationBody { window, targets: scraped.targets, ..Default::default() };
    let mut record = Record::new(
        Kind::Observation,
        &stamp("opsg-scrape", now),
        format!("run-replay-{}", case.name),
        None,
        body,
    );
    record.envelope.replay = true;
    record.envelope.evidence = scraped.evidence;
    let mut chain = Chain { source: case.name.clone(), records: Vec::new() };
    chain.push(&mut record)?;
    Ok(chain)
}

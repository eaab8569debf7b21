//! The incident report: what a chain of records says about how an incident went.
//!
//! The outcome is derived from the chain, latest evidence first:
//!
//! 1. the last verification's outcome (it re-measured after acting);
//! 2. else a decision that held the plan back: `blocked` or `awaiting_approval`;
//! 3. else an execution: dry-run gives `dry_run`; a failed one `failed`; one that ran live but was
//!    never verified `inconclusive` (nobody checked that it worked); one that executed nothing
//!    because `opsg-exec` found the plan stale `stale_plan` (nothing ran, nothing failed);
//! 4. else the finding: `no_incident` when triage found nothing; an incident that was never acted
//!    on (the chain stops before an execution) is `inconclusive`;
//! 5. a chain with no finding at all (observations only: `opsg-scrape | opsg-audit` archiving
//!    telemetry) is `no_incident`, with a note saying nothing was triaged: no incident was
//!    declared, so none can be open.
//!
//! Milestones: first anomalous sample (`finding.first_anomalous_at`), detected (the finding's
//! `created`), mitigated (the first action actually executed started), resolved (the
//! verification's `verified_at`, when resolved). MTTR runs from the first anomalous sample (or
//! detection, when triage gave no start) to resolution.

use opsg_core::kinds::decision::{Mode, Verdict};
use opsg_core::kinds::execution::{ActionOutcome, ExecutionBody};
use opsg_core::kinds::finding::{FindingBody, FindingStatus, IncidentClass};
use opsg_core::kinds::plan::{PlanBody, SafetyClass};
use opsg_core::kinds::report::{ActionCounts, Milestones, RecordCounts, ReportBody};
use opsg_core::kinds::{DecisionBody, VerificationBody};
use opsg_core::stream::{Chain, RecordLine};
use opsg_core::time::Timestamp;
use opsg_core::{Kind, Outcome, Result};

/// Summarize a checked chain into a report body (without its ledger position).
pub fn summarize(chain: &Chain) -> Result<ReportBody> {
    let source = chain.source.as_str();
    let finding_line = chain.last_of(Kind::Finding);
    let finding: Option<FindingBody> = finding_line.map(|r| r.body(source)).transpose()?;
    let decision: Option<DecisionBody> =
        chain.last_of(Kind::Decision).map(|r| r.body(source)).transpose()?;
    let execution: Option<ExecutionBody> =
        chain.last_of(Kind::Execution).map(|r| r.body(source)).transpose()?;
    let verification: Option<VerificationBody> =
        chain.last_of(Kind::Verification).map(|r| r.body(source)).transpose()?;
    let plan_line = decision
        .as_ref()
        .and_then(|d| chain.records.iter().rev().find(|r| r.hash == d.plan_hash))
        .or_else(|| chain.last_of(Kind::Plan));
    let plan: Option<PlanBody> = plan_line.map(|r| r.body(source)).transpose()?;

    let mut report = ReportBody::new(Outcome::NoIncident);
    let incident = finding.as_ref().is_some_and(|f| f.status == FindingStatus::Incident);
    let (outcome, note) = derive_outcome(
        finding.as_ref(),
        decision.as_ref(),
        execution.as_ref(),
        verification.as_ref(),
    );
    report.outcome = outcome;
    report.note = note;
    if let Some(f) = finding.as_ref().filter(|_| incident)
        && f.class != IncidentClass::None
    {
        report.class = Some(f.class.as_str().to_string());
    }

    let mut milestones = Milestones::default();
    if let (Some(f), Some(line)) = (finding.as_ref().filter(|_| incident), finding_line) {
        milestones.first_anomalous = f.first_anomalous_at.clone();
        milestones.detected = Some(line.envelope.created.clone());
    }
    if let Some(e) = execution.as_ref().filter(|e| e.mode == Mode::Live) {
        milestones.mitigated = e
            .actions
            .iter()
            .filter(|a| executed(a.outcome))
            .filter_map(|a| Timestamp::parse_rfc3339(&a.started).ok().map(|t| (t, &a.started)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, s)| s.clone());
    }
    if let Some(v) = verification.as_ref().filter(|v| v.outcome == Outcome::Resolved) {
        milestones.resolved = Some(v.verified_at.clone());
    }
    let start = milestones.first_anomalous.as_deref().or(milestones.detected.as_deref());
    report.time_to_detect_s = seconds_between(start, milestones.detected.as_deref());
    report.time_to_mitigate_s = seconds_between(start, milestones.mitigated.as_deref());
    report.mttr_s = seconds_between(start, milestones.resolved.as_deref());
    report.milestones = milestones;

    report.actions = count_actions(plan.as_ref(), execution.as_ref(), verification.as_ref());
    report.records = Some(count_records(&chain.records));
    Ok(report)
}

fn executed(outcome: ActionOutcome) -> bool {
    matches!(outcome, ActionOutcome::Succeeded | ActionOutcome::Failed)
}

fn derive_outcome(
    finding: Option<&FindingBody>,
    decision: Option<&DecisionBody>,
    execution: Option<&ExecutionBody>,
    verification: Option<&VerificationBody>,
) -> (Outcome, Option<String>) {
    if let Some(v) = verification {
        return (v.outcome, None);
    }
    match decision.map(|d| d.verdict) {
        Some(Verdict::Blocked) => return (Outcome::Blocked, None),
        Some(Verdict::AwaitingApproval) => return (Outcome::AwaitingApproval, None),
        _ => {}
    }
    if let Some(e) = execution {
        if e.mode == Mode::DryRun || e.status == "dry_run" {
            return (Outcome::DryRun, None);
        }
        if e.status == "failed" || e.actions.iter().any(|a| a.outcome == ActionOutcome::Failed) {
            return (Outcome::Failed, Some("an action failed and nothing verified".into()));
        }
        if e.actions.iter().any(|a| executed(a.outcome)) {
            return (
                Outcome::Inconclusive,
                Some("actions ran but no verification followed on the chain".into()),
            );
        }
        // Checked after `executed`: a plan refused half-way, with no verification to roll back
        // its first half, left the fleet changed, and that is not "nothing was executed".
        if e.status == "stale_plan"
            || e.actions.iter().any(|a| a.outcome == ActionOutcome::StalePlan)
        {
            return (
                Outcome::StalePlan,
                Some(
                    "the fleet changed since the plan was made: nothing was executed; run the pipe again"
                        .into(),
                ),
            );
        }
    }
    match finding.map(|f| f.status) {
        Some(FindingStatus::NoIncident) => (Outcome::NoIncident, None),
        Some(FindingStatus::Incident) => {
            let why = match (decision.map(|d| d.verdict), execution) {
                (Some(Verdict::NoAction), _) => {
                    "the incident was triaged but no action was planned"
                }
                (_, Some(_)) => "the incident was triaged but nothing was executed",
                _ => "the chain stops before anything was executed",
            };
            (Outcome::Inconclusive, Some(why.into()))
        }
        None => (
            Outcome::NoIncident,
            Some(
                "no finding on the chain: nothing was triaged, so no incident was declared".into(),
            ),
        ),
    }
}

fn seconds_between(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    let from = Timestamp::parse_rfc3339(from?).ok()?;
    let to = Timestamp::parse_rfc3339(to?).ok()?;
    Some(((to.millis() - from.millis()).max(0) as f64) / 1000.0)
}

fn count_actions(
    plan: Option<&PlanBody>,
    execution: Option<&ExecutionBody>,
    verification: Option<&VerificationBody>,
) -> ActionCounts {
    let mut counts = ActionCounts::default();
    let Some(execution) = execution.filter(|e| e.mode == Mode::Live) else {
        return counts;
    };
    for run in execution.actions.iter().filter(|a| executed(a.outcome)) {
        counts.total += 1;
        let safety = plan.and_then(|p| p.actions.iter().find(|a| a.index == run.index));
        match safety.map(|a| a.safety) {
            Some(SafetyClass::Safe) => counts.safe += 1,
            Some(SafetyClass::Impactful) => counts.impactful += 1,
            Some(SafetyClass::Destructive) => counts.destructive += 1,
            None => {}
        }
    }
    if let Some(rollback) = verification.and_then(|v| v.rollback.as_ref()) {
        counts.rolled_back = rollback.actions.iter().filter(|a| executed(a.outcome)).count() as u32;
    }
    counts
}

fn count_records(records: &[RecordLine]) -> RecordCounts {
    let mut counts = RecordCounts::default();
    for record in records {
        counts.total += 1;
        let slot = match record.kind() {
            Kind::Observation => &mut counts.observation,
            Kind::Finding => &mut counts.finding,
            Kind::Plan => &mut counts.plan,
            Kind::Decision => &mut counts.decision,
            Kind::Execution => &mut counts.execution,
            Kind::Verification => &mut counts.verification,
            Kind::Report => &mut counts.report,
        };
        *slot += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(status: &str) -> FindingBody {
        serde_json::from_value(json!({
            "status": status, "class": "queue_backlog", "fingerprint": "f", "summary": "s",
            "method": {"kind": "rules"}
        }))
        .unwrap()
    }

    fn decision(verdict: &str, mode: &str) -> DecisionBody {
        serde_json::from_value(json!({
            "verdict": verdict, "mode": mode, "plan_hash": "0".repeat(64),
            "approved_actions": [0], "reasons": [], "policy_sha256": "0".repeat(64)
        }))
        .unwrap()
    }

    fn execution(mode: &str, status: &str, outcome: &str) -> ExecutionBody {
        serde_json::from_value(json!({
            "mode": mode, "decision_hash": "0".repeat(64), "status": status,
            "actions": [{"index": 0, "idempotency_key": "k", "request": {"actuator": "http"},
                         "duration_ms": 1.0, "outcome": outcome,
                         "started": "2026-11-22T06:00:00.000Z"}]
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_follow_the_latest_evidence() {
        let inc = finding("incident");
        let approved = decision("approved", "live");
        let ran = execution("live", "completed", "succeeded");
        let outcome = |f, d, e| derive_outcome(f, d, e, None).0;
        assert_eq!(outcome(Some(&inc), Some(&approved), Some(&ran)), Outcome::Inconclusive);
        let failed = execution("live", "failed", "failed");
        assert_eq!(outcome(Some(&inc), Some(&approved), Some(&failed)), Outcome::Failed);
        // Regression: a stale plan refused by exec used to be reported `failed` (exit 14).
        let stale = execution("live", "stale_plan", "stale_plan");
        let (o, note) = derive_outcome(Some(&inc), Some(&approved), Some(&stale), None);
        assert_eq!(o, Outcome::StalePlan);
        assert!(note.unwrap().contains("run the pipe again"));
        let dry = execution("dry_run", "dry_run", "dry_run");
        let approved_dry = decision("approved", "dry_run");
        let blocked = decision("blocked", "live");
        assert_eq!(outcome(Some(&inc), Some(&approved_dry), Some(&dry)), Outcome::DryRun);
        assert_eq!(outcome(Some(&inc), Some(&blocked), None), Outcome::Blocked);
        let waiting = decision("awaiting_approval", "live");
        assert_eq!(outcome(Some(&inc), Some(&waiting), None), Outcome::AwaitingApproval);
        assert_eq!(outcome(Some(&inc), None, None), Outcome::Inconclusive);
        assert_eq!(outcome(Some(&finding("no_incident")), None, None), Outcome::NoIncident);
        let (none, note) = derive_outcome(None, None, None, None);
        assert_eq!(none, Outcome::NoIncident);
        assert!(note.unwrap().contains("nothing was triaged"));
    }

    #[test]
    fn only_executed_live_actions_are_counted() {
        let plan: PlanBody = serde_json::from_value(json!({
            "class": "queue_backlog", "confidence": 0.9, "rationale": "r", "method": {"kind": "rules"},
            "actions": [{"index": 0, "action": "drain_node", "target": "n1", "safety": "destructive",
                         "blast_radius": {"replicas": 1, "traffic_share": 0.1}}]
        }))
        .unwrap();
        let counts =
            count_actions(Some(&plan), Some(&execution("live", "completed", "succeeded")), None);
        assert_eq!((counts.total, counts.destructive), (1, 1));
        let counts =
            count_actions(Some(&plan), Some(&execution("live", "completed", "already_done")), None);
        assert_eq!(counts.total, 0, "an action done by an earlier run is not counted again");
        let counts =
            count_actions(Some(&plan), Some(&execution("dry_run", "dry_run", "dry_run")), None);
        assert_eq!(counts.total, 0);
        let counts =
            count_actions(Some(&plan), Some(&execution("live", "stale_plan", "stale_plan")), None);
        assert_eq!(counts.total, 0, "an action refused as stale was never executed");
    }

    #[test]
    fn durations_are_clamped_and_need_both_ends() {
        let t = "2026-11-22T06:00:00.000Z";
        assert_eq!(seconds_between(Some(t), Some("2026-11-22T06:03:05.500Z")), Some(185.5));
        assert_eq!(seconds_between(Some("2026-11-22T06:03:05.500Z"), Some(t)), Some(0.0));
        assert_eq!(seconds_between(Some(t), None), None);
        assert_eq!(seconds_between(Some("garbage"), Some(t)), None);
    }
}

//! The gate's pure evaluation: a chain, a policy, remembered state and a clock in; a decision out.
//!
//! Nothing here reads files, the environment or the clock, so `opsg-replay` can run it in-process
//! on recorded incidents and get the same decision the live gate made.

use crate::approval;
use crate::policy::{LoadedPolicy, glob};
use crate::state::ActionEvent;
use opsg_core::Result;
use opsg_core::kinds::decision::{ApprovalInfo, DecisionBody, Mode, Reason, ReasonEffect, Verdict};
use opsg_core::kinds::finding::{FindingBody, FindingStatus};
use opsg_core::kinds::plan::{ActionType, PlanBody};
use opsg_core::record::Kind;
use opsg_core::seal::{GENESIS, HashHex};
use opsg_core::stream::Chain;
use opsg_core::time::{Timestamp, parse_duration_ms};

/// What the gate remembers and was given, besides the chain and the policy.
pub struct GateState<'a> {
    /// Past live action attempts, deduplicated, in time order.
    pub events: Vec<(Timestamp, ActionEvent)>,
    /// The approval token offered (`--approval` / `OPSG_APPROVAL`), if any.
    pub approval_token: Option<String>,
    /// The HMAC key (`OPSG_APPROVAL_KEY`), if set.
    pub approval_key: Option<Vec<u8>>,
    /// Where a nonce was already spent, if it was.
    pub nonce_spent: &'a dyn Fn(&str) -> Option<String>,
}

/// A decision and the human-readable evaluation behind it (for `--explain`).
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The decision body.
    pub body: DecisionBody,
    /// One line per check, passed or not.
    pub explain: Vec<String>,
    /// The approval nonce this decision uses (to spend when it runs live).
    pub nonce: Option<String>,
}

struct Acc {
    reasons: Vec<Reason>,
    explain: Vec<String>,
}

impl Acc {
    fn add(&mut self, effect: ReasonEffect, code: &str, index: Option<u32>, message: String) {
        let tag = match effect {
            ReasonEffect::Blocks => "BLOCK",
            ReasonEffect::NeedsApproval => "APPROVAL",
            ReasonEffect::Info => "info",
        };
        self.explain.push(format!("  [{tag:>8}] {code}: {message}"));
        self.reasons.push(Reason {
            code: code.into(),
            message,
            action_index: index,
            effect: Some(effect),
        });
    }

    fn pass(&mut self, message: String) {
        self.explain.push(format!("  [{:>8}] {message}", "ok"));
    }

    fn has(&self, effect: ReasonEffect) -> bool {
        self.reasons.iter().any(|r| r.effect == Some(effect))
    }
}

fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Evaluate the last plan on `chain` against `policy` at `now`.
pub fn evaluate(
    chain: &Chain,
    policy: &LoadedPolicy,
    state: &GateState<'_>,
    now: Timestamp,
) -> Result<Evaluation> {
    let p = &policy.policy;
    let mut acc = Acc { reasons: Vec::new(), explain: Vec::new() };
    let plan_line = chain.last_of(Kind::Plan);
    let plan_hash = plan_line.map_or(GENESIS, |l| l.hash);
    let mut body = DecisionBody {
        verdict: Verdict::NoAction,
        mode: p.mode,
        plan_hash,
        approved_actions: Vec::new(),
        reasons: Vec::new(),
        approval: None,
        policy_sha256: policy.sha256,
        policy_source: Some(policy.source.clone()),
    };
    acc.explain.push(format!(
        "opsg-gate: policy {} (sha256 {}), mode {}, now {}",
        policy.source,
        policy.sha256.short(12),
        mode_name(p.mode),
        now
    ));
    let finding: Option<FindingBody> = match chain.last_of(Kind::Finding) {
        Some(l) => Some(l.body(&chain.source)?),
        None => None,
    };
    let Some(plan_line) = plan_line else {
        acc.add(
            ReasonEffect::Info,
            "no_plan",
            None,
            "the chain holds no plan record: nothing to decide".into(),
        );
        return Ok(finish(body, acc, None));
    };
    let plan: PlanBody = plan_line.body(&chain.source)?;
    acc.explain.push(format!(
        "  plan {} ({}, confidence {:.2}, {} action(s))",
        plan_hash.short(16),
        plan.class,
        plan.confidence,
        plan.actions.len()
    ));
    if finding.as_ref().is_some_and(|f| f.status == FindingStatus::NoIncident) {
        acc.add(ReasonEffect::Info, "no_incident", None, "triage found no incident".into());
        return Ok(finish(body, acc, None));
    }
    let acting: Vec<_> = plan.actions.iter().filter(|a| a.action != ActionType::Noop).collect();
    if acting.is_empty() {
        acc.add(ReasonEffect::Info, "no_actions", None, "the plan has no action to take".into());
        return Ok(finish(body, acc, None));
    }

    // Plan-wide rules.
    if plan.confidence < p.min_confidence {
        acc.add(
            ReasonEffect::Blocks,
            "below_confidence",
            None,
            format!(
                "confidence {:.2} is below the policy's {:.2}",
                plan.confidence, p.min_confidence
            ),
        );
    } else {
        acc.pass(format!("confidence {:.2} >= {:.2}", plan.confidence, p.min_confidence));
    }
    match p.freeze_at(now) {
        Some(w) => acc.add(
            ReasonEffect::Blocks,
            "freeze_window",
            None,
            format!("{now} is inside freeze window `{}`", w.name),
        ),
        None => acc.pass("no freeze window is active".into()),
    }

    // Per-action rules.
    let mut total_replicas = 0u32;
    let mut total_share = 0f64;
    let mut needs_approval = false;
    for a in &acting {
        let i = Some(a.index);
        let what = format!("action {} `{}` on `{}`", a.index, a.action, a.target);
        if a.action == ActionType::Escalate {
            acc.add(
                ReasonEffect::Blocks,
                "escalate",
                i,
                format!("{what}: the plan hands the incident to a human"),
            );
            continue;
        }
        if !p.allow_actions.contains(&a.action) {
            acc.add(
                ReasonEffect::Blocks,
                "not_allowlisted",
                i,
                format!("{what}: `{}` is not in the policy's allow_actions", a.action),
            );
        } else {
            acc.pass(format!("{what}: allowlisted"));
        }
        let denied = p.targets.deny.iter().find(|pat| glob(pat, &a.target));
        let allowed = p.targets.allow.iter().any(|pat| glob(pat, &a.target));
        if let Some(pat) = denied {
            acc.add(
                ReasonEffect::Blocks,
                "target_not_allowed",
                i,
                format!("{what}: target matches deny pattern `{pat}`"),
            );
        } else if !allowed {
            acc.add(
                ReasonEffect::Blocks,
                "target_not_allowed",
                i,
                format!("{what}: target matches no allow pattern"),
            );
        }
        let br = &a.blast_radius;
        total_replicas = total_replicas.saturating_add(br.replicas);
        total_share += br.traffic_share;
        if br.replicas > p.max_blast_radius.replicas {
            acc.add(
                ReasonEffect::Blocks,
                "blast_radius_replicas",
                i,
                format!(
                    "{what}: touches {} replicas, the policy allows {}",
                    br.replicas, p.max_blast_radius.replicas
                ),
            );
        }
        if br.traffic_share > p.max_blast_radius.traffic_share + 1e-9 {
            acc.add(
                ReasonEffect::Blocks,
                "blast_radius_traffic",
                i,
                format!(
                    "{what}: touches {:.0}% of traffic, the policy allows {:.0}%",
                    br.traffic_share * 100.0,
                    p.max_blast_radius.traffic_share * 100.0
                ),
            );
        }
        if a.safety == opsg_core::kinds::plan::SafetyClass::Destructive && !p.allow_destructive {
            acc.add(
                ReasonEffect::Blocks,
                "destructive_blocked",
                i,
                format!("{what}: destructive actions are blocked (allow_destructive is false)"),
            );
        }
        if p.require_approval.contains(&a.safety) {
            needs_approval = true;
            acc.add(
                ReasonEffect::NeedsApproval,
                "needs_approval",
                i,
                format!("{what}: {} actions need a signed approval", safety_name(a.safety)),
            );
        }
        if let Some(cool) = p.cooldown_ms(a.action, &a.target) {
            let last = state
                .events
                .iter()
                .rev()
                .find(|(_, e)| e.action == a.action && e.target == a.target);
            match last {
                Some((t, _)) if now.millis() - t.millis() < cool => acc.add(
                    ReasonEffect::Blocks,
                    "cooldown",
                    i,
                    format!(
                        "{what}: last ran at {t}, cooldown {} has {} left",
                        fmt_duration(cool),
                        // A time ahead of ours (another host's clock) counts as "just now".
                        fmt_duration(cool - (now.millis() - t.millis()).max(0))
                    ),
                ),
                _ => acc.pass(format!("{what}: no cooldown running ({})", fmt_duration(cool))),
            }
        }
    }
    if total_replicas > p.max_blast_radius.replicas {
        acc.add(
            ReasonEffect::Blocks,
            "blast_radius_plan",
            None,
            format!(
                "the plan touches {total_replicas} replicas in total, the policy allows {}",
                p.max_blast_radius.replicas
            ),
        );
    }
    if total_share > p.max_blast_radius.traffic_share + 1e-9 {
        acc.add(
            ReasonEffect::Blocks,
            "blast_radius_plan",
            None,
            format!(
                "the plan touches {:.0}% of traffic in total, the policy allows {:.0}%",
                total_share.min(1.0) * 100.0,
                p.max_blast_radius.traffic_share * 100.0
            ),
        );
    }
    let hour_ago = now.millis() - 3_600_000;
    let recent = state.events.iter().filter(|(t, _)| t.millis() > hour_ago && *t <= now).count();
    let planned = acting.iter().filter(|a| a.action != ActionType::Escalate).count();
    if recent + planned > p.max_actions_per_hour as usize {
        acc.add(ReasonEffect::Blocks, "rate_limit", None, format!(
            "{recent} action(s) ran in the last hour; {planned} more would exceed max_actions_per_hour {}",
            p.max_actions_per_hour));
    } else {
        acc.pass(format!(
            "{recent} action(s) in the last hour + {planned} <= {}",
            p.max_actions_per_hour
        ));
    }

    // The approval, when one is offered.
    let mut approved_by = None;
    if let Some(token) = state.approval_token.as_deref().filter(|t| !t.trim().is_empty()) {
        let max_ttl = parse_duration_ms(&p.max_approval_ttl).unwrap_or(0);
        let checked = approval::decode(token, state.approval_key.as_deref()).and_then(|c| {
            approval::check(&c, plan_hash, now, max_ttl, state.nonce_spent).map(|()| c)
        });
        match checked {
            Ok(claims) => {
                acc.add(
                    ReasonEffect::Info,
                    "approval_valid",
                    None,
                    format!(
                        "approved by `{}` until {} (token {})",
                        claims.approver,
                        claims.expires,
                        claims.nonce.chars().take(8).collect::<String>()
                    ),
                );
                approved_by = Some(claims);
            }
            Err(rejection) => {
                let effect = if needs_approval { ReasonEffect::Blocks } else { ReasonEffect::Info };
                acc.add(effect, rejection.code(), None, rejection.message(&plan_hash));
            }
        }
    }

    let blocked = acc.has(ReasonEffect::Blocks);
    body.verdict = if blocked {
        Verdict::Blocked
    } else if needs_approval && approved_by.is_none() {
        acc.add(ReasonEffect::Info, "how_to_approve", None, format!(
            "run `opsg-gate approve --plan-hash {plan_hash} --approver NAME --expires 30m` and pass the token with --approval"));
        Verdict::AwaitingApproval
    } else {
        Verdict::Approved
    };
    let mut nonce = None;
    if body.verdict == Verdict::Approved {
        body.approved_actions = acting.iter().map(|a| a.index).collect();
        if let Some(claims) = approved_by {
            nonce = Some(claims.nonce.clone());
            body.approval = Some(ApprovalInfo {
                approver: claims.approver,
                expires: claims.expires,
                token_id: claims.nonce,
            });
        }
        if p.mode == Mode::DryRun {
            acc.add(
                ReasonEffect::Info,
                "dry_run",
                None,
                "the policy's mode is dry_run: opsg-exec will print, not call".into(),
            );
        }
    }
    Ok(finish(body, acc, nonce))
}

fn finish(mut body: DecisionBody, mut acc: Acc, nonce: Option<String>) -> Evaluation {
    acc.explain.push(format!(
        "verdict: {} (mode {}){}",
        verdict_name(body.verdict),
        mode_name(body.mode),
        if body.approved_actions.is_empty() {
            String::new()
        } else {
            format!(", actions {:?}", body.approved_actions)
        }
    ));
    body.reasons = acc.reasons;
    Evaluation { body, explain: acc.explain, nonce }
}

/// `approved`, `blocked`, ….
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Approved => "approved",
        Verdict::AwaitingApproval => "awaiting_approval",
        Verdict::Blocked => "blocked",
        Verdict::NoAction => "no_action",
    }
}

/// `live` or `dry_run`.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Live => "live",
        Mode::DryRun => "dry_run",
    }
}

fn safety_name(s: opsg_core::kinds::plan::SafetyClass) -> &'static str {
    use opsg_core::kinds::plan::SafetyClass::*;
    match s {
        Safe => "safe",
        Impactful => "impactful",
        Destructive => "destructive",
    }
}

/// The hash of the plan a decision would bind to (the last plan record), if there is one.
pub fn plan_hash_of(chain: &Chain) -> Option<HashHex> {
    chain.last_of(Kind::Plan).map(|l| l.hash)
}

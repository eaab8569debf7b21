//! `opsg-gate`: stage 4 of the pipe. Decides whether a plan may run, under a policy.
//!
//! Reads the chain on stdin, evaluates its last plan against the policy (`--policy FILE`, or the
//! conservative built-in), the state remembered across runs (`--ledger`, `--state-dir`) and an
//! optional signed approval (`--approval` / `OPSG_APPROVAL`), and appends one decision record:
//! `approved`, `awaiting_approval`, `blocked` or `no_action`, with every reason that applied.
//! `opsg-gate approve` issues the approval tokens.

pub mod approval;
pub mod evaluate;
pub mod fixture;
pub mod policy;
pub mod state;

pub use evaluate::{Evaluation, GateState, evaluate};
pub use policy::{LoadedPolicy, Policy};

use clap::{CommandFactory, Parser, Subcommand};
use opsg_core::kinds::decision::Mode;
use opsg_core::record::{Kind, Stamp};
use opsg_core::seal::HashHex;
use opsg_core::stream::{Limits, read_stdin};
use opsg_core::time::{Timestamp, parse_duration_ms};
use opsg_core::{Error, ExitStatus, Result};
use state::StateDir;
use std::io::Write;
use std::path::PathBuf;

/// `history.jsonl` in the state directory is compacted once it is larger than this.
const HISTORY_COMPACT_BYTES: u64 = 1 << 20;
/// Compaction keeps at least this much history (a week), for other policies sharing the state
/// directory with longer cooldowns.
const HISTORY_KEEP_MIN_MS: i64 = 7 * 24 * 3_600_000;

fn after_help() -> String {
    format!(
        "Examples:\n  \
  opsg-scrape --targets fleet.json | opsg-triage | opsg-plan | opsg-gate --policy policy.json --explain | opsg-exec --execute\n  \
  # an impactful plan awaits approval; sign one for its hash (key from OPSG_APPROVAL_KEY):\n  \
  opsg-gate approve --plan-hash 3f2a…9c --approver alice --expires 30m\n  \
  opsg-gate approve --from awaiting.jsonl --approver alice   # shows the plan's actions first\n  \
  opsg-gate --policy policy.json --approval \"$TOKEN\" < incident.jsonl | opsg-exec --execute\n\n{}",
        opsg_core::cli::exit_status_help()
    )
}

fn approve_help() -> String {
    format!(
        "Examples:\n  \
  export OPSG_APPROVAL_KEY=$(cat /etc/opsg/approval.key)\n  \
  TOKEN=$(opsg-gate approve --from awaiting.jsonl --approver alice --expires 30m)\n  \
  opsg-gate --policy policy.json --approval \"$TOKEN\" < incident.jsonl | opsg-exec --execute\n\n\
  The token binds the plan's hash, the approver, the expiry and a random nonce under\n\
  HMAC-SHA256; a live decision spends it (a second use is refused as a replay).\n\n{}",
        opsg_core::cli::exit_status_help()
    )
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-gate",
    version,
    about = "Decide whether a remediation plan may run: policy, cooldowns, rate limits, freezes, signed approvals",
    after_help = after_help(),
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// The policy file (schemas/policy.schema.json); without it, the conservative built-in
    /// (dry-run, approval for impactful actions, destructive blocked).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A signed approval token for this plan (from `opsg-gate approve`).
    #[arg(long, value_name = "TOKEN", env = "OPSG_APPROVAL", hide_env_values = true)]
    pub approval: Option<String>,
    /// The audit ledger: past executions there count for cooldowns and the hourly budget, and
    /// approvals used there are spent.
    #[arg(long, value_name = "FILE", env = "OPSG_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// Where state survives between runs (cooldowns, spent approvals, idempotency keys)
    /// [default: $XDG_STATE_HOME/opsg or ~/.local/state/opsg].
    #[arg(long, value_name = "DIR", env = "OPSG_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print the evaluation, check by check, on stderr.
    #[arg(long)]
    pub explain: bool,
    /// Evaluate as of this time (RFC 3339) instead of the clock (replays, tests).
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Issue an approval token instead of gating.
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Issue a signed approval token for one plan (key from OPSG_APPROVAL_KEY); prints the token.
    #[command(after_help = approve_help())]
    Approve(ApproveArgs),
}

/// `opsg-gate approve` arguments.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The hash of the plan record to approve (the decision record's `plan_hash`).
    #[arg(long, value_name = "HASH", required_unless_present = "from", conflicts_with = "from")]
    pub plan_hash: Option<String>,
    /// Approve the last plan of a recorded chain (the awaiting pipe's output); its actions are
    /// printed on stderr first, so the approver sees what they sign.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Who approves (recorded in the decision and the ledger).
    #[arg(long, value_name = "NAME")]
    pub approver: String,
    /// How long the token stays valid (`30m`, `2h`).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub expires: String,
    /// Issue as of this time (RFC 3339) instead of the clock.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

fn clock(now: Option<&str>) -> Result<Timestamp> {
    match now {
        Some(t) => {
            Timestamp::parse_rfc3339(t).map_err(|e| Error::usage(format!("--now: {}", e.message())))
        }
        None => Ok(Timestamp::now()),
    }
}

/// The HMAC key from the environment, if set and non-empty.
pub fn approval_key() -> Option<Vec<u8>> {
    std::env::var_os(approval::KEY_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned().into_bytes())
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    if let Some(Sub::Approve(a)) = args.command {
        return approve(a);
    }
    // Ready before stdin arrives: compiled in the background only if a schema falls outside
    // the checker that needs no compile (see `schema::warm_up`).
    opsg_core::schema::warm_up(if args.policy.is_some() {
        &["policy.schema.json", "envelope.schema.json", "finding.schema.json", "plan.schema.json"]
    } else {
        &["envelope.schema.json", "finding.schema.json", "plan.schema.json"]
    });
    let now = clock(args.now.as_deref())?;
    let policy = policy::load(args.policy.as_deref())?;
    let chain = read_stdin(&Limits::default())?;
    // A stage in a pipe starts with its neighbours: without --now it stamps its record once its
    // input has arrived, so a chain's records are in time order (and detection time is real).
    let now = if args.now.is_some() { now } else { Timestamp::now() };
    let state_dir = StateDir::new(args.state_dir.clone().unwrap_or_else(state::default_state_dir));
    let ledger = match &args.ledger {
        Some(path) => state::read_ledger(path, Some(now.plus_millis(-policy.policy.memory_ms())))?,
        None => state::LedgerMemory::default(),
    };
    // Bound the state directory's history: attempts older than what any cooldown or rate limit
    // can still need (this policy's memory, and at least a week for other policies sharing the
    // directory) are dropped once the file passes 1 MiB. Best effort: a read-only state
    // directory still gates.
    let keep_ms = policy.policy.memory_ms().max(HISTORY_KEEP_MIN_MS);
    match state_dir.compact_history(now.plus_millis(-keep_ms), HISTORY_COMPACT_BYTES) {
        Ok(0) => {}
        Ok(n) => opsg_core::cli::info(format!(
            "history: dropped {n} action attempt(s) older than the gate's memory"
        )),
        Err(e) => opsg_core::cli::warn(format!("history not compacted: {e}")),
    }
    let mut events = ledger.events.clone();
    events.extend(state_dir.events()?);
    let events = state::merge_events(events);
    let gate_state_events = events.len();
    let spent = |nonce: &str| -> Option<String> {
        if let Some(line) = ledger.spent_nonces.get(nonce) {
            return Some(format!("ledger line {line}"));
        }
        state_dir.nonce_spent(nonce).then(|| format!("state dir {}", state_dir.root().display()))
    };
    let gate_state = GateState {
        events,
        approval_token: args.approval.clone(),
        approval_key: approval_key(),
        nonce_spent: &spent,
    };
    let mut evaluation = evaluate(&chain, &policy, &gate_state, now)?;
    // A live decision spends its approval; the O_EXCL create settles a race between two gates
    // holding the same token: the loser re-evaluates and sees it spent.
    if evaluation.body.mode == Mode::Live
        && let Some(nonce) = evaluation.nonce.clone()
        && !state_dir.spend_nonce(&nonce)?
    {
        let spent_now = |n: &str| (n == nonce).then(|| "spent by a concurrent run".to_string());
        let gate_state = GateState { nonce_spent: &spent_now, ..gate_state };
        evaluation = evaluate(&chain, &policy, &gate_state, now)?;
    }
    if args.explain {
        let memory = format!(
            "  memory: {} past action(s) from {}{}",
            gate_state_events,
            match &args.ledger {
                Some(l) => format!(
                    "ledger {} (back to {}) and ",
                    l.display(),
                    now.plus_millis(-policy.policy.memory_ms())
                ),
                None => String::new(),
            },
            format_args!("state dir {}", state_dir.root().display())
        );
        evaluation.explain.insert(1, memory);
        opsg_core::cli::human(&format!("{}\n", evaluation.explain.join("\n")));
    } else {
        opsg_core::cli::info(format!(
            "{} ({} reason(s); --explain for the evaluation)",
            evaluate::verdict_name(evaluation.body.verdict),
            evaluation.body.reasons.len()
        ));
    }
    let stamp = Stamp { tool: "opsg-gate", version: env!("CARGO_PKG_VERSION"), now };
    let consumes: Vec<_> = chain.last_of(Kind::Plan).into_iter().collect();
    let mut record = chain.next_record(Kind::Decision, &stamp, &consumes, evaluation.body);
    opsg_core::stream::emit(&chain, &mut record)?;
    Ok(ExitStatus::Success)
}

/// The last plan of a recorded chain: its hash, after showing what it would do.
fn plan_from(path: &std::path::Path) -> Result<HashHex> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&source, e))?;
    let chain =
        opsg_core::stream::read_chain(std::io::BufReader::new(file), &source, &Limits::default())?;
    let line = chain
        .last_of(Kind::Plan)
        .ok_or_else(|| Error::invalid("the chain holds no plan record").in_source(&source))?;
    let plan: opsg_core::kinds::PlanBody = line.body(&source)?;
    let mut text = format!(
        "plan {} ({}, confidence {:.2}): {}\n",
        line.hash, plan.class, plan.confidence, plan.rationale
    );
    for a in &plan.actions {
        text.push_str(&format!(
            "  action {} `{}` on `{}` ({:?}, {} replica(s), {:.0}% of traffic) params {}\n",
            a.index,
            a.action,
            a.target,
            a.safety,
            a.blast_radius.replicas,
            a.blast_radius.traffic_share * 100.0,
            serde_json::to_string(&a.params).unwrap_or_default()
        ));
    }
    opsg_core::cli::human(&text);
    Ok(line.hash)
}

fn approve(a: ApproveArgs) -> Result<ExitStatus> {
    let now = clock(a.now.as_deref())?;
    let plan = match (&a.plan_hash, &a.from) {
        (Some(h), _) => HashHex::parse(h.trim().as_bytes()).ok_or_else(|| {
            Error::usage(format!("--plan-hash `{h}` is not 64 lowercase hex digits"))
        })?,
        (None, Some(path)) => plan_from(path)?,
        (None, None) => return Err(Error::usage("give --plan-hash or --from")),
    };
    let ttl = parse_duration_ms(&a.expires)
        .map_err(|e| Error::usage(format!("--expires: {}", e.message())))?;
    if ttl <= 0 {
        return Err(Error::usage("--expires must be positive"));
    }
    let key = approval_key().ok_or_else(|| {
        Error::usage(format!(
            "`{}` is not set: it holds the key approvals are signed with",
            approval::KEY_ENV
        ))
    })?;
    let (token, claims) = approval::issue(&key, plan, &a.approver, now, ttl)?;
    opsg_core::cli::info(format!(
        "approval for plan {} by `{}`, valid until {} (token id {})",
        plan.short(16),
        claims.approver,
        claims.expires,
        claims.nonce
    ));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{token}").and_then(|_| out.flush()).map_err(|e| Error::io("stdout", e))?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixture::{ChainBuilder, plan};
    use opsg_core::kinds::decision::{ReasonEffect, Verdict};
    use opsg_core::kinds::finding::IncidentClass;
    use opsg_core::kinds::plan::{ActionType, SafetyClass};
    use state::ActionEvent;

    const NOW: Timestamp = Timestamp(1_795_000_000_000);

    fn live_policy(edit: impl FnOnce(&mut Policy)) -> LoadedPolicy {
        let mut loaded = policy::load(None).unwrap();
        loaded.policy.mode = Mode::Live;
        edit(&mut loaded.policy);
        loaded
    }

    fn decide(
        chain: &opsg_core::stream::Chain,
        policy: &LoadedPolicy,
        events: Vec<ActionEvent>,
        token: Option<String>,
    ) -> Evaluation {
        let none = |_: &str| None;
        let st = GateState {
            events: state::merge_events(events),
            approval_token: token,
            approval_key: Some(b"k".to_vec()),
            nonce_spent: &none,
        };
        evaluate(chain, policy, &st, NOW).unwrap()
    }

    fn codes(e: &Evaluation) -> Vec<&str> {
        e.body.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn a_safe_confident_plan_is_approved() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::KvCacheSaturation, true)
            .plan(plan(
                IncidentClass::KvCacheSaturation,
                0.9,
                &[(ActionType::ShiftTraffic, "llama", SafetyClass::Safe)],
            ))
            .chain();
        let e = decide(&c, &live_policy(|_| {}), vec![], None);
        assert_eq!(e.body.verdict, Verdict::Approved, "{:?}", e.body.reasons);
        assert_eq!(e.body.approved_actions, vec![0]);
        assert_eq!(e.body.plan_hash, c.last_of(Kind::Plan).unwrap().hash);
    }

    #[test]
    fn every_blocking_reason_is_reported_not_just_the_first() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::ReplicaDown, true)
            .plan(plan(
                IncidentClass::ReplicaDown,
                0.5,
                &[
                    (ActionType::DrainNode, "node-1", SafetyClass::Destructive),
                    (ActionType::RestartReplica, "r1", SafetyClass::Impactful),
                ],
            ))
            .chain();
        let events = vec![ActionEvent {
            at: NOW.plus_millis(-60_000).to_rfc3339(),
            action: ActionType::RestartReplica,
            target: "r1".into(),
            key: "x-0".into(),
        }];
        let e = decide(&c, &live_policy(|_| {}), events, None);
        assert_eq!(e.body.verdict, Verdict::Blocked);
        let codes = codes(&e);
        for want in [
            "below_confidence",
            "not_allowlisted",
            "destructive_blocked",
            "cooldown",
            "needs_approval",
        ] {
            assert!(codes.contains(&want), "missing {want} in {codes:?}");
        }
        assert!(e.body.approved_actions.is_empty());
        let cooldown = e.body.reasons.iter().find(|r| r.code == "cooldown").unwrap();
        assert_eq!(cooldown.action_index, Some(1));
        assert!(cooldown.message.contains("14m00s left"), "{}", cooldown.message);
    }

    #[test]
    fn cooldown_expires_and_other_targets_are_free() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::ReplicaDown, true)
            .plan(plan(
                IncidentClass::ReplicaDown,
                0.9,
                &[(ActionType::RestartReplica, "r1", SafetyClass::Safe)],
            ))
            .chain();
        let ev = |mins: i64, target: &str| ActionEvent {
            at: NOW.plus_millis(-mins * 60_000).to_rfc3339(),
            action: ActionType::RestartReplica,
            target: target.into(),
            key: format!("k{mins}{target}"),
        };
        assert_eq!(
            decide(&c, &live_policy(|_| {}), vec![ev(16, "r1")], None).body.verdict,
            Verdict::Approved
        );
        assert_eq!(
            decide(&c, &live_policy(|_| {}), vec![ev(1, "r2")], None).body.verdict,
            Verdict::Approved
        );
        assert_eq!(
            decide(&c, &live_policy(|_| {}), vec![ev(1, "r1")], None).body.verdict,
            Verdict::Blocked
        );
    }

    #[test]
    fn the_hourly_budget_counts_past_actions() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::ReplicaDown, true)
            .plan(plan(
                IncidentClass::ReplicaDown,
                0.9,
                &[(ActionType::ShiftTraffic, "d", SafetyClass::Safe)],
            ))
            .chain();
        let events: Vec<_> = (0..6)
            .map(|i| ActionEvent {
                at: NOW.plus_millis(-(i + 1) * 300_000).to_rfc3339(),
                action: ActionType::ScaleReplicas,
                target: format!("d{i}"),
                key: format!("k{i}"),
            })
            .collect();
        let e = decide(&c, &live_policy(|_| {}), events, None);
        assert_eq!(e.body.verdict, Verdict::Blocked);
        assert!(codes(&e).contains(&"rate_limit"));
    }

    #[test]
    fn blast_radius_targets_and_freezes_block() {
        let mut p = plan(
            IncidentClass::TrafficSurge,
            0.95,
            &[(ActionType::ShiftTraffic, "prod-critical", SafetyClass::Safe)],
        );
        p.actions[0].blast_radius.replicas = 5;
        p.actions[0].blast_radius.traffic_share = 0.9;
        let c = ChainBuilder::new(NOW).finding(IncidentClass::TrafficSurge, true).plan(p).chain();
        let policy = live_policy(|p| {
            p.targets.deny = vec!["*-critical".into()];
            p.freeze_windows = vec![policy::FreezeWindow {
                name: "launch".into(),
                start: Some(NOW.plus_millis(-1000).to_rfc3339()),
                end: Some(NOW.plus_millis(1000).to_rfc3339()),
                daily_start: None,
                daily_end: None,
                days: vec![],
            }];
        });
        let e = decide(&c, &policy, vec![], None);
        let codes = codes(&e);
        for want in
            ["blast_radius_replicas", "blast_radius_traffic", "target_not_allowed", "freeze_window"]
        {
            assert!(codes.contains(&want), "missing {want} in {codes:?}");
        }
    }

    #[test]
    fn impactful_plans_wait_for_a_valid_approval() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::CanaryRegression, true)
            .plan(plan(
                IncidentClass::CanaryRegression,
                0.9,
                &[(ActionType::RollbackConfig, "canary", SafetyClass::Impactful)],
            ))
            .chain();
        let policy = live_policy(|_| {});
        let e = decide(&c, &policy, vec![], None);
        assert_eq!(e.body.verdict, Verdict::AwaitingApproval);
        let hash = c.last_of(Kind::Plan).unwrap().hash;
        assert!(
            e.body.reasons.iter().any(|r| r.message.contains(hash.as_str())),
            "says how to approve"
        );

        let (token, claims) = approval::issue(b"k", hash, "alice", NOW, 1_800_000).unwrap();
        let e = decide(&c, &policy, vec![], Some(token));
        assert_eq!(e.body.verdict, Verdict::Approved, "{:?}", e.body.reasons);
        assert_eq!(e.body.approval.as_ref().unwrap().approver, "alice");
        assert_eq!(e.nonce.as_deref(), Some(claims.nonce.as_str()));

        // A token for another plan blocks, and says why.
        let (other, _) = approval::issue(b"k", HashHex::of(b"x"), "alice", NOW, 1_800_000).unwrap();
        let e = decide(&c, &policy, vec![], Some(other));
        assert_eq!(e.body.verdict, Verdict::Blocked);
        let r = e.body.reasons.iter().find(|r| r.code == "approval_other_plan").unwrap();
        assert_eq!(r.effect, Some(ReasonEffect::Blocks));
        // Signed with another key: forged.
        let (forged, _) = approval::issue(b"not-the-key", hash, "mallory", NOW, 1_800_000).unwrap();
        let e = decide(&c, &policy, vec![], Some(forged));
        assert!(codes(&e).contains(&"approval_forged"));
        assert_eq!(e.body.verdict, Verdict::Blocked);
    }

    #[test]
    fn no_incident_and_noop_plans_are_no_action() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::None, false)
            .plan(plan(IncidentClass::None, 1.0, &[]))
            .chain();
        let e = decide(&c, &live_policy(|_| {}), vec![], None);
        assert_eq!(e.body.verdict, Verdict::NoAction);
        assert_eq!(codes(&e), vec!["no_incident"]);
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::Unknown, true)
            .plan(plan(IncidentClass::Unknown, 0.9, &[(ActionType::Noop, "-", SafetyClass::Safe)]))
            .chain();
        assert_eq!(decide(&c, &live_policy(|_| {}), vec![], None).body.verdict, Verdict::NoAction);
    }

    #[test]
    fn secrets_never_reach_the_explanation() {
        let c = ChainBuilder::new(NOW)
            .finding(IncidentClass::CanaryRegression, true)
            .plan(plan(
                IncidentClass::CanaryRegression,
                0.9,
                &[(ActionType::RollbackConfig, "canary", SafetyClass::Impactful)],
            ))
            .chain();
        let hash = c.last_of(Kind::Plan).unwrap().hash;
        let (token, _) = approval::issue(b"k", hash, "alice", NOW, 1_800_000).unwrap();
        let e = decide(&c, &live_policy(|_| {}), vec![], Some(token.clone()));
        let text = format!("{}\n{}", e.explain.join("\n"), serde_json::to_string(&e.body).unwrap());
        let mac = token.rsplit('.').next().unwrap();
        assert!(!text.contains(mac), "the token's signature leaked");
        assert!(!text.contains(&token));
    }
}

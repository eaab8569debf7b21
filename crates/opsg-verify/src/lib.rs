//! `opsg-verify`: stage 6 of the pipe. Did the fix work? If not, undo it.
//!
//! After a live execution it waits `--settle`, re-scrapes the targets the plan's expected effects
//! name (with `opsg-scrape`'s library, `--samples` samples `--interval` apart) and checks each
//! effect against the value before the action (from the observation on the chain). All pass:
//! `resolved`. One fails: the inverses of everything executed run in reverse order through the
//! same actuators as `opsg-exec` (each under its own idempotency key), the restored state is
//! re-read and compared with what was captured before acting, and the outcome is `rolled_back`
//! (or `failed` when the rollback did not hold). Unreachable targets or stale telemetry make it
//! `inconclusive`, never `resolved`. Chains that did not execute pass through with their outcome.
//! An execution that `opsg-exec` stopped because the plan was stale (the fleet changed since it
//! was made) is `stale_plan`: not a failed fix, nothing to verify; only what the plan did before
//! the refusal is rolled back (`failed` if that rollback does not hold).
//! The exit status is the outcome's code.

pub mod signal;

use clap::{CommandFactory, Parser};
use opsg_core::kinds::decision::{Mode, Verdict};
use opsg_core::kinds::execution::{ActionOutcome, ActionRun, ExecutionBody};
use opsg_core::kinds::finding::{FindingBody, FindingStatus};
use opsg_core::kinds::observation::{
    ObservationBody, ScrapeConfig, TargetObservation, TargetStatus, Window,
};
use opsg_core::kinds::plan::{Action, ExpectedEffect, PlanBody};
use opsg_core::kinds::verification::{EffectCheck, Rollback, VerificationBody};
use opsg_core::record::{Kind, Stamp};
use opsg_core::stream::{Chain, Limits, read_stdin};
use opsg_core::time::{Timestamp, parse_duration_ms};
use opsg_core::{Error, ExitStatus, Outcome, Result};
use opsg_exec::{ActionSpec, Executor};
use signal::{Measured, Signal};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn after_help() -> String {
    format!(
        "Examples:\n  \
  # The whole pipe; the exit status is the incident's outcome (0 = resolved):\n  \
  opsg-scrape --targets fleet.json | opsg-triage | opsg-plan | opsg-gate --policy policy.json \\\n    \
  | opsg-exec --execute | opsg-verify --settle 60s --samples 3 --interval 10s | opsg-audit --ledger ledger.jsonl\n  \
  # Re-verify a recorded execution against opsg-sim without waiting:\n  \
  opsg-verify --settle 0s --max-wait 0s --sim http://127.0.0.1:9400 < executed.jsonl\n\n{}",
        opsg_core::cli::exit_status_help()
    )
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration_ms(text)
        .map(|ms| Duration::from_millis(ms as u64))
        .map_err(|e| e.message().to_string())
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-verify",
    version,
    about = "Re-measure after the fix, check each expected effect, roll back in reverse order when it did not work",
    after_help = after_help()
)]
pub struct Args {
    /// Wait this long after the execution before measuring.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub settle: Duration,
    /// Samples per target in the verification window.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub samples: u32,
    /// Time between samples.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub interval: Duration,
    /// A sample whose payload timestamps are older than this is stale (the outcome is then
    /// inconclusive).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub stale_after: Duration,
    /// Bound on one scrape attempt.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    /// The longest to keep re-measuring an effect that is not there yet, counted from when the
    /// first action started; each effect's own `within_s` is the limit when it is shorter.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub max_wait: Duration,
    /// Time between re-measurements while waiting for an effect.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub recheck: Duration,
    /// Do not roll back a failed fix (record the failure and leave the fleet as it is).
    #[arg(long)]
    pub no_rollback: bool,
    /// The actuators config rollbacks use (the same as opsg-exec's) [default: built-in].
    #[arg(long, value_name = "FILE", env = "OPSG_ACTUATORS")]
    pub actuators: Option<PathBuf>,
    /// The base URL templates call `{base_url}` (opsg-sim's address for the built-in actuators).
    #[arg(long = "sim", visible_alias = "base-url", value_name = "URL", env = "OPSG_SIM_URL")]
    pub base_url: Option<String>,
    /// Where rollback idempotency keys live (the same as opsg-exec's).
    #[arg(long, value_name = "DIR", env = "OPSG_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// Check one expected effect against the values before and after.
pub fn check_effect(
    index: u32,
    effect: &ExpectedEffect,
    before: &Measured,
    after: &Measured,
) -> EffectCheck {
    let mut expected = Vec::new();
    match effect.direction.as_str() {
        "decrease" => expected.push(match effect.by_fraction {
            Some(f) => format!("decrease by >= {:.0}%", f * 100.0),
            None => "decrease".into(),
        }),
        "increase" => expected.push(match effect.by_fraction {
            Some(f) => format!("increase by >= {:.0}%", f * 100.0),
            None => "increase".into(),
        }),
        _ => expected.push("recover".into()),
    }
    if let Some(b) = effect.below {
        expected.push(format!("end below {b}"));
    }
    if let Some(a) = effect.above {
        expected.push(format!("end above {a}"));
    }
    let before_v = match before {
        Measured::Value(v) => Some(*v),
        Measured::Missing(_) => None,
    };
    let mut check = EffectCheck {
        action_index: index,
        signal: effect.signal.clone(),
        target: effect.target.clone(),
        before: before_v.map(Into::into),
        after: None,
        expected: expected.join(", "),
        result: "inconclusive".into(),
        reason: None,
    };
    let after = match after {
        Measured::Value(v) => *v,
        Measured::Missing(why) => {
            check.reason = Some(format!("no value after the action: {why}"));
            return check;
        }
    };
    check.after = Some(after.into());
    let mut failures = Vec::new();
    let relative = match effect.direction.as_str() {
        "decrease" | "increase" => {
            let Some(b) = before_v else {
                if effect.below.is_none() && effect.above.is_none() {
                    check.reason = Some(format!(
                        "no value before the action to compare with: {}",
                        missing(before)
                    ));
                    return check;
                }
                // Absolute bounds alone can still decide.
                return finish_bounds(check, effect, after, failures);
            };
            let f = effect.by_fraction.unwrap_or(0.0);
            if effect.direction == "decrease" {
                let limit = b * (1.0 - f);
                let ok = if f > 0.0 { after <= limit } else { after < b };
                (!ok).then(|| format!("{after:.4} is not below {limit:.4} (was {b:.4})"))
            } else {
                let limit = b * (1.0 + f);
                let ok = if f > 0.0 { after >= limit } else { after > b };
                (!ok).then(|| format!("{after:.4} is not above {limit:.4} (was {b:.4})"))
            }
        }
        _ => {
            // `recover`: back to healthy. `up` must be 1; others need a bound. A signal that was
            // healthy before the action proves nothing about it (a plan aimed at the wrong
            // target would "pass"): that is inconclusive, not resolved.
            if effect.below.is_none() && effect.above.is_none() {
                if before_v.is_some_and(|b| b >= 1.0) && after >= 1.0 {
                    check.reason = Some(format!(
                        "`{}` on `{}` was already healthy before the action: nothing recovered",
                        effect.signal, effect.target
                    ));
                    return check;
                }
                (after < 1.0).then(|| format!("{after} is not back to 1"))
            } else {
                None
            }
        }
    };
    failures.extend(relative);
    finish_bounds(check, effect, after, failures)
}

fn missing(m: &Measured) -> String {
    match m {
        Measured::Missing(w) => w.clone(),
        Measured::Value(_) => String::new(),
    }
}

fn finish_bounds(
    mut check: EffectCheck,
    effect: &ExpectedEffect,
    after: f64,
    mut failures: Vec<String>,
) -> EffectCheck {
    if let Some(b) = effect.below
        && after >= b
    {
        failures.push(format!("{after:.4} is not below {b}"));
    }
    if let Some(a) = effect.above
        && after <= a
    {
        failures.push(format!("{after:.4} is not above {a}"));
    }
    if failures.is_empty() {
        check.result = "pass".into();
    } else {
        check.result = "fail".into();
        check.reason = Some(failures.join("; "));
    }
    check
}

/// Re-scrape targets (the one place verification touches the network for telemetry; swap it in
/// tests or for another collector), the way the observation read them: HTTP targets with the
/// request settings (headers, CA file) it recorded, resolved again from this process'
/// environment and files; federated targets through the same Prometheus and selectors.
pub fn rescrape(
    targets: &[TargetObservation],
    scrape_configs: &BTreeMap<String, ScrapeConfig>,
    args: &Args,
) -> Result<Vec<TargetObservation>> {
    let mut opts = opsg_scrape::ScrapeOptions {
        samples: args.samples,
        interval: args.interval,
        stale_after_ms: args.stale_after.as_millis() as i64,
        ..Default::default()
    };
    opts.http.timeout = args.timeout;
    opts.http.retries = 1;
    opsg_scrape::rescrape(targets, scrape_configs, &opts)
}

struct Ctx<'a> {
    chain: &'a Chain,
    args: &'a Args,
    exec: Executor,
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    // Ready before stdin arrives: compiled in the background only if a schema falls outside
    // the checker that needs no compile (see `schema::warm_up`).
    opsg_core::schema::warm_up(&[
        "envelope.schema.json",
        "execution.schema.json",
        "finding.schema.json",
        "observation.schema.json",
    ]);
    let chain = read_stdin(&Limits::default())?;
    let started = Timestamp::now();
    let exec = opsg_exec::executor(
        args.actuators.as_deref(),
        args.base_url.as_deref(),
        args.state_dir.clone(),
    )?;
    let ctx = Ctx { chain: &chain, args: &args, exec };
    let mut body = VerificationBody {
        outcome: Outcome::Inconclusive,
        window: Window { start: started.to_rfc3339(), end: started.to_rfc3339() },
        checks: Vec::new(),
        rollback: None,
        verified_at: started.to_rfc3339(),
        reason: None,
    };
    let (outcome, reason) = decide(&ctx, &mut body)?;
    body.outcome = outcome;
    body.reason = Some(reason.clone());
    body.verified_at = Timestamp::now().to_rfc3339();
    opsg_core::cli::info(format!("{outcome}: {reason}"));
    let stamp =
        Stamp { tool: "opsg-verify", version: env!("CARGO_PKG_VERSION"), now: Timestamp::now() };
    let consumes: Vec<_> = chain.last_of(Kind::Execution).into_iter().collect();
    let mut record = chain.next_record(Kind::Verification, &stamp, &consumes, body);
    opsg_core::stream::emit(&chain, &mut record)?;
    Ok(ExitStatus::Outcome(outcome))
}

fn decide(ctx: &Ctx<'_>, body: &mut VerificationBody) -> Result<(Outcome, String)> {
    let chain = ctx.chain;
    let finding: Option<FindingBody> =
        chain.last_of(Kind::Finding).map(|l| l.body(&chain.source)).transpose()?;
    let Some((decision, _, plan)) = opsg_exec::decision_and_plan(chain)? else {
        if finding.is_some_and(|f| f.status == FindingStatus::NoIncident) {
            return Ok((Outcome::NoIncident, "triage found no incident".into()));
        }
        return Err(Error::invalid(
            "no decision record on the chain: opsg-verify runs after opsg-gate and opsg-exec",
        )
        .in_source(&chain.source));
    };
    let first_reason = |effect| {
        decision
            .reasons
            .iter()
            .filter(|r| r.effect == Some(effect))
            .map(|r| r.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match decision.verdict {
        Verdict::NoAction => {
            return Ok((Outcome::NoIncident, "nothing to do: no incident or no action".into()));
        }
        Verdict::Blocked => {
            return Ok((
                Outcome::Blocked,
                format!(
                    "blocked by policy: {}",
                    first_reason(opsg_core::kinds::decision::ReasonEffect::Blocks)
                ),
            ));
        }
        Verdict::AwaitingApproval => {
            return Ok((
                Outcome::AwaitingApproval,
                format!("awaiting approval of plan {}", decision.plan_hash),
            ));
        }
        Verdict::Approved => {}
    }
    let Some(line) = chain.last_of(Kind::Execution) else {
        if decision.mode == Mode::DryRun {
            return Ok((Outcome::DryRun, "approved in dry-run mode; nothing executed".into()));
        }
        return Err(Error::invalid("the plan was approved but the chain holds no execution record: put opsg-exec before opsg-verify")
            .in_source(&chain.source));
    };
    let execution: ExecutionBody = line.body(&chain.source)?;
    let Some(plan) = plan else {
        return Err(
            Error::invalid("the approved plan is not on the chain").in_source(&chain.source)
        );
    };
    let plan_hash = decision.plan_hash.to_string();
    if execution.mode == Mode::DryRun {
        return Ok((
            Outcome::DryRun,
            "dry run: the approved plan was printed, not executed".into(),
        ));
    }
    match execution.status.as_str() {
        // A plan that stopped early: what ran before the stop is undone (half a plan is not a
        // fix). A failed action makes it `failed`. A stale plan (exec refused to act because the
        // fleet changed since the plan was made) is not a failed fix: nothing broke and there is
        // nothing to measure, so it is `stale_plan` (run the pipe again), unless undoing its
        // first half did not hold, which a human must look at.
        status @ ("failed" | "stale_plan") => {
            let stale = status == "stale_plan";
            let rb = rollback(ctx, &plan, &plan_hash, &execution);
            let held = rb.as_ref().is_none_or(rollback_held);
            let what = execution.stopped.clone().unwrap_or_else(|| {
                if stale { "the plan is stale" } else { "an action failed" }.into()
            });
            let n = rb.as_ref().map_or(0, |r| r.actions.len());
            body.rollback = rb;
            let tail = if n == 0 && stale {
                "nothing was executed".to_string()
            } else if n == 0 {
                "nothing had run before it".to_string()
            } else if held {
                format!("{n} earlier action(s) rolled back")
            } else {
                format!("rolling back {n} earlier action(s) did NOT hold")
            };
            let outcome = if stale && held { Outcome::StalePlan } else { Outcome::Failed };
            return Ok((outcome, format!("{what}; {tail}")));
        }
        "completed" => {}
        _ => {
            return Ok((
                Outcome::Inconclusive,
                execution.stopped.clone().unwrap_or_else(|| "the execution did nothing".into()),
            ));
        }
    }

    // Which effects to check: every action that ran (now or in an earlier run) with one.
    let ran: Vec<&Action> = execution
        .actions
        .iter()
        .filter(|r| matches!(r.outcome, ActionOutcome::Succeeded | ActionOutcome::AlreadyDone))
        .filter_map(|r| plan.actions.iter().find(|a| a.index == r.index))
        .collect();
    let effects: Vec<(u32, &ExpectedEffect)> =
        ran.iter().filter_map(|a| a.expected_effect.as_ref().map(|e| (a.index, e))).collect();
    if effects.is_empty() {
        return Ok((
            Outcome::Inconclusive,
            "no expected effect to check: the fix cannot be confirmed".into(),
        ));
    }
    let observation: Option<ObservationBody> =
        chain.last_of(Kind::Observation).map(|l| l.body(&chain.source)).transpose()?;
    let (observed, scrape_configs): (Vec<TargetObservation>, _) =
        observation.map(|o| (o.targets, o.scrape_configs)).unwrap_or_default();
    let wanted: Vec<TargetObservation> = observed
        .iter()
        .filter(|t| effects.iter().any(|(_, e)| signal::target_matches(t, &e.target)))
        .cloned()
        .collect();

    if !ctx.args.settle.is_zero() {
        opsg_core::cli::info(format!(
            "settling for {} s before measuring",
            ctx.args.settle.as_secs_f64()
        ));
        std::thread::sleep(ctx.args.settle);
    }
    // Measure; while an effect is not there yet and its `within_s` (counted from when the first
    // action started, capped by --max-wait) has not run out, measure again: a fix is given the
    // time its plan promised before it is declared failed and undone.
    let acted_at = execution
        .actions
        .iter()
        .filter_map(|a| Timestamp::parse_rfc3339(&a.started).ok())
        .min()
        .unwrap_or_else(Timestamp::now);
    let within_ms = effects.iter().map(|(_, e)| (e.within_s * 1000.0) as i64).max().unwrap_or(0);
    let deadline = acted_at.plus_millis(within_ms.min(ctx.args.max_wait.as_millis() as i64));
    let window_start = Timestamp::now();
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        let after = rescrape(&wanted, &scrape_configs, ctx.args)?;
        body.checks = effects
            .iter()
            .map(|(index, effect)| check_one(*index, effect, &observed, &after))
            .collect();
        body.window =
            Window { start: window_start.to_rfc3339(), end: Timestamp::now().to_rfc3339() };
        let all_pass = body.checks.iter().all(|c| c.result == "pass");
        if all_pass || Timestamp::now() >= deadline {
            break;
        }
        opsg_core::cli::info(format!(
            "not there yet (round {rounds}); measuring again until {deadline} (the effects' within_s)"
        ));
        std::thread::sleep(ctx.args.recheck);
    }
    let failed: Vec<&EffectCheck> = body.checks.iter().filter(|c| c.result == "fail").collect();
    let unsure = body.checks.iter().any(|c| c.result == "inconclusive");
    if failed.is_empty() && !unsure {
        return Ok((
            Outcome::Resolved,
            format!("{} expected effect(s) observed", body.checks.len()),
        ));
    }
    if failed.is_empty() {
        let why: Vec<String> = body.checks.iter().filter_map(|c| c.reason.clone()).collect();
        return Ok((
            Outcome::Inconclusive,
            format!("could not confirm the fix: {}", why.join("; ")),
        ));
    }
    let why = failed
        .iter()
        .map(|c| {
            format!("`{}` on `{}`: {}", c.signal, c.target, c.reason.clone().unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("; ");
    if ctx.args.no_rollback {
        return Ok((
            Outcome::Failed,
            format!("the fix did not work ({why}); --no-rollback: left as is"),
        ));
    }
    let rb = rollback(ctx, &plan, &plan_hash, &execution);
    let held = rb.as_ref().is_some_and(rollback_held);
    body.rollback = rb;
    if held {
        Ok((Outcome::RolledBack, format!("the fix did not work ({why}); rolled back")))
    } else {
        Ok((Outcome::Failed, format!("the fix did not work ({why}) and the rollback did not hold")))
    }
}

/// Check one effect: the value before (the chain's observation) against the value after (the
/// re-measurement), inconclusive when the target was not re-measured or its telemetry is bad.
fn check_one(
    index: u32,
    effect: &ExpectedEffect,
    observed: &[TargetObservation],
    after: &[TargetObservation],
) -> EffectCheck {
    let sig = signal::parse(&effect.signal);
    let higher_is_worse = effect.direction != "increase";
    let before_t: Vec<&TargetObservation> =
        observed.iter().filter(|t| signal::target_matches(t, &effect.target)).collect();
    let after_t: Vec<&TargetObservation> =
        after.iter().filter(|t| signal::target_matches(t, &effect.target)).collect();
    let before = signal::measure(&sig, &before_t, higher_is_worse);
    let mut check = if after_t.is_empty() {
        let why = format!(
            "target `{}` was not re-measured (not in the observation, or not an HTTP target)",
            effect.target
        );
        check_effect(index, effect, &before, &Measured::Missing(why))
    } else if let Some(problem) = telemetry_problem(&sig, &after_t) {
        check_effect(index, effect, &before, &Measured::Missing(problem))
    } else {
        check_effect(index, effect, &before, &signal::measure(&sig, &after_t, higher_is_worse))
    };
    if check.result == "inconclusive" && check.reason.is_none() {
        check.reason = Some("could not be measured".into());
    }
    check
}

/// Unreachable or stale telemetry for a non-`up` signal.
fn telemetry_problem(sig: &Signal, targets: &[&TargetObservation]) -> Option<String> {
    for t in targets {
        if let Some(s) = t.samples.iter().find(|s| s.stale) {
            return Some(format!(
                "telemetry from `{}` is stale ({})",
                t.name,
                s.reason.clone().unwrap_or_default()
            ));
        }
        if *sig != Signal::Up && t.status != TargetStatus::Up {
            return Some(format!(
                "`{}` is unreachable: {}",
                t.name,
                t.reason.clone().unwrap_or_else(|| format!("{:?}", t.status).to_lowercase())
            ));
        }
    }
    None
}

fn rollback_held(rb: &Rollback) -> bool {
    rb.actions.iter().all(|a| {
        a.outcome == ActionOutcome::Succeeded
            || (a.outcome == ActionOutcome::AlreadyDone
                && a.error.as_deref().is_some_and(|e| e.contains("succeeded")))
    }) && rb.checks.iter().all(|c| c.result == "pass")
}

/// Run the inverses of what ran, in reverse order, then re-read the captured state.
fn rollback(
    ctx: &Ctx<'_>,
    plan: &PlanBody,
    plan_hash: &str,
    execution: &ExecutionBody,
) -> Option<Rollback> {
    if execution.handed_to_rollback.is_empty() {
        return None;
    }
    let mut rb = Rollback { actions: Vec::new(), verified: false, checks: Vec::new() };
    for &index in execution.handed_to_rollback.iter().rev() {
        let Some(action) = plan.actions.iter().find(|a| a.index == index) else { continue };
        let ran = execution.actions.iter().find(|r| r.index == index);
        let key = opsg_exec::rollback_key(plan_hash, index);
        let Some(inverse) = &action.inverse else {
            rb.actions.push(no_inverse(action, &key));
            continue;
        };
        // The inverse's parameters, refreshed from the state captured just before acting (only
        // the parameters the inverse has: a capture never adds a member the API would refuse).
        let mut params = inverse.params.clone();
        if let Some(ran) = ran {
            for (k, v) in &ran.prior_state {
                if let Some(slot) = params.get_mut(k) {
                    *slot = v.clone();
                }
            }
        }
        let spec = ActionSpec {
            index,
            action: inverse.action,
            target: action.target.clone(),
            params,
            prior_state: BTreeMap::new(),
            inverse: true,
        };
        let run = ctx.exec.run_action(&spec, plan_hash, &key, true);
        opsg_core::cli::info(format!(
            "rollback of action {index}: `{}` on `{}`: {:?}{}",
            inverse.action,
            action.target,
            run.outcome,
            run.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
        rb.actions.push(run);
    }
    // Was the state restored? Re-read what was captured before acting and compare.
    for &index in execution.handed_to_rollback.iter().rev() {
        let (Some(action), Some(ran)) = (
            plan.actions.iter().find(|a| a.index == index),
            execution.actions.iter().find(|r| r.index == index),
        ) else {
            continue;
        };
        if ran.prior_state.is_empty() || action.inverse.is_none() {
            continue;
        }
        let spec = opsg_exec::spec_of(action);
        let key = opsg_exec::action_key(plan_hash, index);
        let now = ctx.exec.capture(&spec, plan_hash, &key);
        if matches!(now, Ok(None)) {
            // Nothing was captured before acting, so there is nothing to re-read: the rollback
            // stands on its actuator's answer and is not marked verified.
            continue;
        }
        for (name, was) in &ran.prior_state {
            let mut c = EffectCheck {
                action_index: index,
                signal: format!("state.{name}"),
                target: action.target.clone(),
                before: None,
                after: None,
                expected: format!("back to {was}"),
                result: "inconclusive".into(),
                reason: None,
            };
            match &now {
                Ok(None) => {}
                Ok(Some(state)) => match state.get(name) {
                    Some(v) if json_close(v, was) => c.result = "pass".into(),
                    Some(v) => {
                        c.result = "fail".into();
                        c.reason = Some(format!("is {v}"));
                    }
                    None => c.reason = Some("not captured".into()),
                },
                Err(e) => c.reason = Some(format!("cannot re-read the state: {e}")),
            }
            rb.checks.push(c);
        }
    }
    rb.verified = !rb.checks.is_empty() && rollback_held(&rb);
    Some(rb)
}

fn no_inverse(action: &Action, key: &str) -> ActionRun {
    ActionRun {
        index: action.index,
        idempotency_key: key.to_string(),
        action: Some(action.action),
        target: Some(action.target.clone()),
        request: opsg_core::kinds::execution::ActuatorRequest::none(),
        status: None,
        duration_ms: 0.0,
        outcome: ActionOutcome::Failed,
        error: Some(format!(
            "`{}` has no inverse: it cannot be rolled back automatically",
            action.action
        )),
        attempts: 0,
        response: None,
        prior_state: BTreeMap::new(),
        started: Timestamp::now().to_rfc3339(),
    }
}

pub use opsg_exec::run::json_close;

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(direction: &str, by: Option<f64>, below: Option<f64>) -> ExpectedEffect {
        ExpectedEffect {
            signal: "vllm:kv_cache_usage_perc".into(),
            target: "stable".into(),
            direction: direction.into(),
            by_fraction: by,
            below,
            above: None,
            within_s: 60.0,
        }
    }

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn decrease_by_a_fraction() {
        let e = effect("decrease", Some(0.2), None);
        let c = check_effect(0, &e, &Measured::Value(0.95), &Measured::Value(0.70));
        assert_eq!(c.result, "pass");
        let c = check_effect(0, &e, &Measured::Value(0.95), &Measured::Value(0.90));
        assert_eq!(c.result, "fail");
        assert!(c.reason.unwrap().contains("not below 0.76"));
    }

    #[test]
    fn missing_values_are_inconclusive_never_pass() {
        let e = effect("decrease", Some(0.2), None);
        let c = check_effect(0, &e, &Measured::Value(0.95), &Measured::Missing("down".into()));
        assert_eq!(c.result, "inconclusive");
        let c = check_effect(0, &e, &Measured::Missing("no obs".into()), &Measured::Value(0.1));
        assert_eq!(c.result, "inconclusive");
        // An absolute bound alone can still decide without a before value.
        let e = effect("decrease", None, Some(0.8));
        assert_eq!(
            check_effect(0, &e, &Measured::Missing("x".into()), &Measured::Value(0.5)).result,
            "pass"
        );
        assert_eq!(
            check_effect(0, &e, &Measured::Missing("x".into()), &Measured::Value(0.9)).result,
            "fail"
        );
    }

    #[test]
    fn recover_means_back_to_one() {
        let mut e = effect("recover", None, None);
        e.signal = "up".into();
        assert_eq!(
            check_effect(0, &e, &Measured::Value(0.0), &Measured::Value(1.0)).result,
            "pass"
        );
        assert_eq!(
            check_effect(0, &e, &Measured::Value(0.0), &Measured::Value(0.0)).result,
            "fail"
        );
    }

    #[test]
    fn json_closeness() {
        use serde_json::json;
        assert!(json_close(
            &json!({"a": 1, "b": [0.5]}),
            &json!({"a": 1.0, "b": [0.5000000000001]})
        ));
        assert!(!json_close(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!json_close(&json!({"a": 1}), &json!({"a": 1, "b": 1})));
    }
}

//! `opsg-exec`: stage 5 of the pipe. Carries out an approved decision, once.
//!
//! Reads the chain, finds the last decision and the plan it names, and for each approved action
//! renders its actuator (`--actuators FILE`, or the built-in driving opsg-sim's admin API at
//! `--sim URL`). Dry-run unless both `--execute` is given and the decision's mode is `live`: then
//! each action's idempotency key (plan hash + index) is claimed with `O_EXCL` in the state
//! directory, the prior state its inverse needs is captured, and the actuator is called. The
//! first failure stops the plan; what already ran is handed to rollback (`opsg-verify`).
//!
//! When the captured state differs from the one the plan was made for, the action is not called
//! and its outcome is `stale_plan`, not `failed`: the plan stops there, the execution's status is
//! `stale_plan`, and the end of the pipe exits 17 (run the pipe again) rather than 14 (page).

pub mod actuators;
pub mod run;

pub use actuators::Config;
pub use run::{ActionSpec, Executor};

use clap::{CommandFactory, Parser};
use opsg_core::kinds::decision::{DecisionBody, Mode, Verdict};
use opsg_core::kinds::execution::{ActionOutcome, ActionRun, ExecutionBody};
use opsg_core::kinds::plan::{Action, PlanBody};
use opsg_core::record::{Kind, Stamp};
use opsg_core::stream::{Chain, Limits, read_stdin};
use opsg_core::time::Timestamp;
use opsg_core::{Error, ExitStatus, Result};
use opsg_gate::state::{self, StateDir};
use std::path::PathBuf;

fn after_help() -> String {
    format!(
        "Examples:\n  \
  # Print what would be called (the default):\n  \
  opsg-plan < finding.jsonl | opsg-gate | opsg-exec --sim http://127.0.0.1:9400\n  \
  # Act, when the policy's mode is live too, with actuators from a config file:\n  \
  opsg-gate --policy policy.json < plan.jsonl | opsg-exec --execute --actuators actuators.json | opsg-verify\n\n{}",
        opsg_core::cli::exit_status_help()
    )
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-exec",
    version,
    about = "Carry out an approved plan with HTTP or argv actuators: dry-run by default, idempotent, secrets redacted",
    after_help = after_help()
)]
pub struct Args {
    /// Really call the actuators (also requires the decision's mode to be `live`).
    #[arg(long)]
    pub execute: bool,
    /// The actuators config (schemas/actuators.schema.json) [default: built-in, opsg-sim's admin API].
    #[arg(long, value_name = "FILE", env = "OPSG_ACTUATORS")]
    pub actuators: Option<PathBuf>,
    /// The base URL templates call `{base_url}` (opsg-sim's address for the built-in actuators).
    #[arg(long = "sim", visible_alias = "base-url", value_name = "URL", env = "OPSG_SIM_URL")]
    pub base_url: Option<String>,
    /// Where idempotency keys and action history live
    /// [default: $XDG_STATE_HOME/opsg or ~/.local/state/opsg].
    #[arg(long, value_name = "DIR", env = "OPSG_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Stamp the record with this time (RFC 3339) instead of the clock.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// The idempotency key of a plan's action.
pub fn action_key(plan_hash: &str, index: u32) -> String {
    format!("{plan_hash}-{index}")
}

/// The idempotency key of the inverse of a plan's action.
pub fn rollback_key(plan_hash: &str, index: u32) -> String {
    format!("{plan_hash}-rollback-{index}")
}

/// The spec of a planned action.
pub fn spec_of(action: &Action) -> ActionSpec {
    ActionSpec {
        index: action.index,
        action: action.action,
        target: action.target.clone(),
        params: action.params.clone(),
        prior_state: action.prior_state.clone(),
        inverse: false,
    }
}

/// Build an executor from the common flags.
pub fn executor(
    actuators: Option<&std::path::Path>,
    base_url: Option<&str>,
    state_dir: Option<PathBuf>,
) -> Result<Executor> {
    let config = Config::load(actuators)?;
    let base_url = base_url
        .map(str::to_string)
        .or_else(|| config.base_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:9400".into());
    let base_url = base_url.trim_end_matches('/').to_string();
    Ok(Executor {
        config,
        base_url,
        state: StateDir::new(state_dir.unwrap_or_else(state::default_state_dir)),
    })
}

/// The last decision on a chain and the plan it names (found by hash).
pub fn decision_and_plan(
    chain: &Chain,
) -> Result<Option<(DecisionBody, opsg_core::seal::HashHex, Option<PlanBody>)>> {
    let Some(line) = chain.last_of(Kind::Decision) else { return Ok(None) };
    let decision: DecisionBody = line.body(&chain.source)?;
    let plan = match chain
        .records
        .iter()
        .rev()
        .find(|r| r.kind() == Kind::Plan && r.hash == decision.plan_hash)
    {
        Some(p) => Some(p.body::<PlanBody>(&chain.source)?),
        None if decision.verdict == Verdict::Approved => {
            return Err(Error::tamper(format!(
                "the decision approves plan `{}`, which is not on the chain",
                decision.plan_hash.short(16)
            ))
            .in_source(&chain.source)
            .at_line(line.line_no)
            .at_field("body.plan_hash"));
        }
        None => None,
    };
    Ok(Some((decision, line.hash, plan)))
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    // Ready before stdin arrives: compiled in the background only if a schema falls outside
    // the checker that needs no compile (see `schema::warm_up`).
    opsg_core::schema::warm_up(if args.actuators.is_some() {
        &[
            "envelope.schema.json",
            "actuators.schema.json",
            "decision.schema.json",
            "plan.schema.json",
        ]
    } else {
        &["envelope.schema.json", "decision.schema.json", "plan.schema.json"]
    });
    let now = match &args.now {
        Some(t) => Timestamp::parse_rfc3339(t)
            .map_err(|e| Error::usage(format!("--now: {}", e.message())))?,
        None => Timestamp::now(),
    };
    let exec =
        executor(args.actuators.as_deref(), args.base_url.as_deref(), args.state_dir.clone())?;
    let chain = read_stdin(&Limits::default())?;
    // A stage in a pipe starts with its neighbours: without --now it stamps its record once its
    // input has arrived, so a chain's records are in time order (and detection time is real).
    let now = if args.now.is_some() { now } else { Timestamp::now() };
    let Some((decision, decision_hash, plan)) = decision_and_plan(&chain)? else {
        return Err(Error::invalid(
            "no decision record on the chain: opsg-exec runs after opsg-gate",
        )
        .in_source("stdin"));
    };
    let live = args.execute && decision.mode == Mode::Live;
    if args.execute && decision.mode == Mode::DryRun {
        opsg_core::cli::warn(
            "--execute given, but the decision's mode is dry_run (policy): printing, not calling",
        );
    }
    let mut body = ExecutionBody {
        mode: if live { Mode::Live } else { Mode::DryRun },
        decision_hash,
        actions: Vec::new(),
        status: "nothing_to_do".into(),
        handed_to_rollback: Vec::new(),
        stopped: None,
    };
    if decision.verdict != Verdict::Approved || decision.approved_actions.is_empty() {
        opsg_core::cli::info(format!(
            "nothing to do: the decision is {}",
            opsg_gate::evaluate::verdict_name(decision.verdict)
        ));
    } else if let Some(plan) = plan {
        execute(&exec, &decision, &plan, live, &mut body)?;
    }
    let stamp = Stamp { tool: "opsg-exec", version: env!("CARGO_PKG_VERSION"), now };
    let consumes: Vec<_> = chain.last_of(Kind::Decision).into_iter().collect();
    let mut record = chain.next_record(Kind::Execution, &stamp, &consumes, body);
    opsg_core::stream::emit(&chain, &mut record)?;
    Ok(ExitStatus::Success)
}

fn describe(run: &ActionRun) -> String {
    let r = &run.request;
    match r.actuator.as_str() {
        "http" => format!(
            "{} {}{}",
            r.method.as_deref().unwrap_or("?"),
            r.url.as_deref().unwrap_or("?"),
            r.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default()
        ),
        "command" => format!("exec {}", serde_json::to_string(&r.argv).unwrap_or_default()),
        _ => "nothing to call".into(),
    }
}

fn execute(
    exec: &Executor,
    decision: &DecisionBody,
    plan: &PlanBody,
    live: bool,
    body: &mut ExecutionBody,
) -> Result<()> {
    let plan_hash = decision.plan_hash.to_string();
    let mut stopped: Option<String> = None;
    for &index in &decision.approved_actions {
        let action = plan.actions.iter().find(|a| a.index == index).ok_or_else(|| {
            Error::invalid(format!(
                "the decision approves action {index}, which the plan does not have"
            ))
            .at_field("body.approved_actions")
        })?;
        let key = action_key(&plan_hash, index);
        if stopped.is_some() {
            let mut run = exec.run_action(&spec_of(action), &plan_hash, &key, false);
            run.outcome = ActionOutcome::NotRun;
            run.error = Some("not reached: an earlier action stopped the plan".into());
            body.actions.push(run);
            continue;
        }
        let run = exec.run_action(&spec_of(action), &plan_hash, &key, live);
        let what = format!("action {index} `{}` on `{}`", action.action, action.target);
        match run.outcome {
            ActionOutcome::DryRun => match &run.error {
                Some(why) => opsg_core::cli::warn(format!("dry-run: {what}: would fail: {why}")),
                None => opsg_core::cli::info(format!("dry-run: {what}: would {}", describe(&run))),
            },
            ActionOutcome::Succeeded => {
                opsg_core::cli::info(format!(
                    "{what}: {} -> {} in {:.0} ms",
                    describe(&run),
                    run.status.unwrap_or(0),
                    run.duration_ms
                ));
                body.handed_to_rollback.push(index);
            }
            ActionOutcome::AlreadyDone
                if run
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("earlier outcome: succeeded")) =>
            {
                opsg_core::cli::info(format!(
                    "{what}: already executed under key {key}: not run again"
                ));
                body.handed_to_rollback.push(index);
            }
            ActionOutcome::AlreadyDone => {
                let why = run.error.clone().unwrap_or_default();
                opsg_core::cli::warn(format!("{what}: {why}; stopping"));
                stopped = Some(format!("{what}: {why}"));
            }
            ActionOutcome::StalePlan => {
                let why = run.error.clone().unwrap_or_default();
                opsg_core::cli::warn(format!("{what}: {why}"));
                stopped = Some(format!("{what}: {why}"));
            }
            ActionOutcome::Failed | ActionOutcome::NotRun => {
                let why = run.error.clone().unwrap_or_default();
                opsg_core::cli::warn(format!("{what} failed: {why}"));
                stopped = Some(format!("{what} failed: {why}"));
            }
        }
        body.actions.push(run);
    }
    let failed = body.actions.iter().any(|a| a.outcome == ActionOutcome::Failed);
    let stale = body.actions.iter().any(|a| a.outcome == ActionOutcome::StalePlan);
    let in_flight = stopped.is_some() && !failed;
    body.status = if !live {
        "dry_run"
    } else if failed {
        "failed"
    } else if stale {
        // Not `failed`: nothing broke. What ran before the refusal is still handed to rollback
        // (half a plan on a fleet that moved under it), and `opsg-verify` undoes it.
        "stale_plan"
    } else if in_flight {
        "nothing_to_do"
    } else {
        "completed"
    }
    .into();
    body.stopped = stopped;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn keys_are_plan_hash_and_index() {
        assert_eq!(action_key("ab", 2), "ab-2");
        assert_eq!(rollback_key("ab", 2), "ab-rollback-2");
    }
}

//! `opsg-audit`: the last stage of the opsg pipe, and the keeper of its ledger.
//!
//! - `append` (the default when records arrive on stdin) verifies the incoming chain, summarizes
//!   the incident into a `report` record, appends every record and the report to an append-only
//!   JSON Lines ledger that is itself one hash chain across incidents ([`append`], [`line`]),
//!   passes the chain and the report on to stdout, and exits with the incident's outcome;
//! - `verify` checks every line and link of a ledger in bounded memory at hashing speed and names
//!   the exact line that was modified, deleted, inserted, duplicated or reordered ([`verify`]);
//!   `checkpoint` writes the ledger's head (HMAC-signed with a key) so that `verify --checkpoint`
//!   can also detect truncation and rewriting ([`checkpoint`]);
//! - `show` prints incident timelines and `stats` time-to-detect/mitigate/resolve per incident
//!   and per class ([`timeline`], [`stats`]).
//!
//! The formats are specified in `schemas/HASHING.md` (sections 5 and 6).

pub mod append;
pub mod checkpoint;
pub mod incident;
pub mod line;
pub mod notify;
pub mod read;
pub mod stats;
pub mod timeline;
pub mod verify;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use opsg_core::kinds::report::LedgerPosition;
use opsg_core::record::Stamp;
use opsg_core::stream::{Chain, Limits, RecordLine};
use opsg_core::time::Timestamp;
use opsg_core::{Error, ExitStatus, Kind, Result, cli};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "Examples:
  # The end of the incident pipe: append the chain and its report, exit with the outcome
  opsg-scrape --targets fleet.toml | opsg-triage | opsg-plan | opsg-gate | opsg-exec \\
    | opsg-verify | opsg-audit --ledger /var/lib/opsg/ledger.jsonl
  # Check the whole ledger, then keep a signed checkpoint of its head elsewhere
  opsg-audit verify --ledger /var/lib/opsg/ledger.jsonl
  OPSG_CHECKPOINT_KEY=$(cat /etc/opsg/key) opsg-audit checkpoint --ledger ledger.jsonl --out /mnt/ro/cp.json
  # What happened, and how fast
  opsg-audit show --ledger ledger.jsonl --incident inc-7f3a
  opsg-audit stats --ledger ledger.jsonl --format csv";

fn after_help(examples: &str) -> String {
    format!("{examples}\n\n{}", cli::exit_status_help())
}

/// Command-line arguments. Without a subcommand, `opsg-audit --ledger FILE` appends what arrives
/// on stdin (the end of the pipe).
#[derive(Debug, Parser)]
#[command(
    name = "opsg-audit",
    version,
    about = "Append an incident's records to a hash-chained ledger; verify, show and summarize it",
    long_about = "Append an incident's records to a hash-chained ledger; verify, show and summarize it.\n\n\
        Without a subcommand, records on stdin are appended (as `opsg-audit append`). The ledger \
        and checkpoint formats are specified in schemas/HASHING.md.",
    after_help = after_help(EXAMPLES),
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// What to do (default: `append`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The ledger to append to (as `append --ledger`).
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Post a short incident summary to this webhook URL with the append (as `append --notify`).
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify the incoming chain, append it and its incident report to the ledger, pass both on.
    #[command(
        after_help = after_help(APPEND_EXAMPLES),
        long_about = "Verify the incoming chain, append it and its incident report to the ledger, pass both on.\n\n\
            The whole chain is read and checked first: bad input appends nothing and prints \
            nothing. The exit status is the incident's outcome, derived from the chain: the last \
            verification's outcome; else a blocking decision (blocked, awaiting approval); else \
            the execution (dry run; failed; live but never verified: inconclusive; refused \
            because the fleet changed since the plan was made: stale plan); else the \
            finding (no incident; an incident never acted on: inconclusive). A chain without a \
            finding (observations only) is archived as no incident (10), with a note in the \
            report saying nothing was triaged."
    )]
    Append(AppendArgs),
    /// Check every line and link of a ledger; name the exact line of any tampering.
    #[command(after_help = after_help(VERIFY_EXAMPLES))]
    Verify(VerifyArgs),
    /// Write the ledger's head (line count and hash, HMAC-signed with a key) to keep elsewhere.
    #[command(after_help = after_help(CHECKPOINT_EXAMPLES))]
    Checkpoint(CheckpointArgs),
    /// Print incident timelines: observed, inferred, proposed, decided, executed, verified.
    #[command(after_help = after_help(SHOW_EXAMPLES))]
    Show(ShowArgs),
    /// Time to detect, time to mitigate, MTTR, outcomes and actions, per incident and per class.
    #[command(after_help = after_help(STATS_EXAMPLES))]
    Stats(StatsArgs),
}

const APPEND_EXAMPLES: &str = "Examples:
  opsg-verify < executed.jsonl | opsg-audit append --ledger ledger.jsonl
  # Post the summary to a Slack-compatible webhook too (a failure is logged, never fatal)
  opsg-audit append --ledger ledger.jsonl --notify https://hooks.example.com/T0/B0 < chain.jsonl";
const VERIFY_EXAMPLES: &str = "Examples:
  opsg-audit verify --ledger ledger.jsonl
  OPSG_CHECKPOINT_KEY=s3cret opsg-audit verify --ledger ledger.jsonl --checkpoint cp.json
  opsg-audit verify --ledger ledger.jsonl --format json | jq .problem";
const CHECKPOINT_EXAMPLES: &str = "Examples:
  OPSG_CHECKPOINT_KEY=s3cret opsg-audit checkpoint --ledger ledger.jsonl --out cp.json
  opsg-audit checkpoint --ledger ledger.jsonl | ssh backup 'cat > cp.json'";
const SHOW_EXAMPLES: &str = "Examples:
  opsg-audit show --ledger ledger.jsonl
  opsg-audit show --ledger ledger.jsonl --incident inc-7f3a --format json";
const STATS_EXAMPLES: &str = "Examples:
  opsg-audit stats --ledger ledger.jsonl
  opsg-audit stats --ledger ledger.jsonl --by class --format csv > mttr.csv";

/// `append`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AppendArgs {
    /// The ledger file (created if missing; its directory must exist).
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: PathBuf,
    /// Post a short incident summary (Slack-compatible `{"text": …}` plus fields) to this URL.
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// How long the notification may take, e.g. `5s`.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub notify_timeout: String,
    /// The largest record accepted on stdin, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_record_bytes)]
    pub max_record_bytes: usize,
}

/// Output formats of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// A one-line summary on stderr.
    Text,
    /// A JSON object on stdout (and the summary line on stderr).
    Json,
}

/// `verify`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The ledger file.
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: PathBuf,
    /// Also check against a checkpoint (truncation, rewriting; its MAC with OPSG_CHECKPOINT_KEY).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// No progress bar (it is only drawn when stderr is a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `checkpoint`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// The ledger file (verified first: a checkpoint never blesses a tampered ledger).
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: PathBuf,
    /// Write the checkpoint here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Output formats of `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// An indented timeline per incident.
    Text,
    /// One JSON object per event (JSON Lines).
    Json,
    /// One CSV row per event, with a header.
    Csv,
}

/// `show`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The ledger file.
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: PathBuf,
    /// Only this incident (an incident id, or a run id).
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
    /// Skip verifying the ledger first (faster; tampering goes unnoticed).
    #[arg(long)]
    pub no_verify: bool,
}

/// Output formats of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Aligned columns.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON object: `{"incidents": […], "classes": […]}`.
    Json,
}

/// What `stats` rows are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsBy {
    /// One row per incident, then one per class (table and JSON); incidents only for CSV.
    Both,
    /// One row per incident.
    Incident,
    /// One row per incident class.
    Class,
}

/// `stats`' arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// The ledger file.
    #[arg(long, env = "OPSG_LEDGER", value_name = "FILE")]
    pub ledger: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
    pub format: StatsFormat,
    /// Rows per incident, per class, or both.
    #[arg(long, value_enum, default_value_t = StatsBy::Both)]
    pub by: StatsBy,
    /// Skip verifying the ledger first.
    #[arg(long)]
    pub no_verify: bool,
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    match args.command {
        Some(Command::Append(a)) => run_append(&a),
        Some(Command::Verify(a)) => run_verify(&a),
        Some(Command::Checkpoint(a)) => run_checkpoint(&a),
        Some(Command::Show(a)) => timeline::run(&a),
        Some(Command::Stats(a)) => stats::run(&a),
        None => {
            let Some(ledger) = args.ledger else {
                return Err(Error::usage(
                    "no ledger: give `--ledger FILE` (or set OPSG_LEDGER), or a subcommand \
                     (see `opsg-audit --help`)",
                ));
            };
            if std::io::stdin().is_terminal() {
                return Err(Error::usage(
                    "no records on stdin (it is a terminal): pipe a chain in, e.g. `opsg-verify \
                     | opsg-audit --ledger FILE`, or use a subcommand such as `verify`",
                ));
            }
            run_append(&AppendArgs {
                ledger,
                notify: args.notify,
                notify_timeout: "5s".into(),
                max_record_bytes: Limits::default().max_record_bytes,
            })
        }
    }
}

fn stamp() -> Stamp {
    Stamp { tool: "opsg-audit", version: env!("CARGO_PKG_VERSION"), now: Timestamp::now() }
}

/// `append`: read and check the whole chain first (bad input appends nothing), then append.
fn run_append(args: &AppendArgs) -> Result<ExitStatus> {
    if args.max_record_bytes > verify::MAX_RECORD_BYTES {
        return Err(Error::usage(format!(
            "--max-record-bytes {} is over {}: a longer ledger line could not be verified",
            args.max_record_bytes,
            verify::MAX_RECORD_BYTES
        )));
    }
    let limits = Limits { max_record_bytes: args.max_record_bytes, ..Limits::default() };
    let notify_timeout = opsg_core::time::parse_duration_ms(&args.notify_timeout)
        .map_err(|e| Error::usage(format!("--notify-timeout: {}", e.message())))?;
    if let Some(url) = &args.notify {
        notify::check_url(url)?;
    }
    // Ready before stdin arrives (see `schema::warm_up`; compiled in the background only if a
    // schema falls outside the checker that needs no compile): the envelope first, then the
    // kinds in the order a pipe's records come.
    opsg_core::schema::warm_up(&[
        "envelope.schema.json",
        "observation.schema.json",
        "finding.schema.json",
        "plan.schema.json",
        "decision.schema.json",
        "execution.schema.json",
        "verification.schema.json",
        "report.schema.json",
    ]);
    let chain = opsg_core::stream::read_stdin(&limits)?;
    // The ledger keeps records for good: every one must match its kind's full schema.
    chain.validate_all()?;
    let body = incident::summarize(&chain)?;
    let stamp = stamp();
    let shown = args.ledger.display().to_string();

    let mut writer = append::LedgerWriter::open(&args.ledger)?;
    let first_seq = writer.next_seq();
    let last_seq = first_seq + chain.records.len() as u64 - 1;
    let consumes = consumed(&chain);
    let mut report = chain.next_record(Kind::Report, &stamp, &consumes, body);
    report.body.ledger = Some(LedgerPosition { path: shown, first_seq, last_seq });
    if let Some(url) = &args.notify {
        // The id the report will have once sealed (it depends on its position, not its body).
        report.envelope.id = opsg_core::record::derive_id(
            Kind::Report,
            chain.last_hash(),
            &report.envelope.run,
            &report.envelope.created,
        );
        let payload = notify::payload(&report.envelope, &report.body, last_seq + 1);
        let timeout = std::time::Duration::from_millis(notify_timeout.unsigned_abs());
        report.body.notification = Some(notify::send(url, &payload, timeout));
    }
    let outcome = report.body.outcome;
    let (report_line, _) = report.seal(chain.last_hash())?;
    let mut records: Vec<&[u8]> = chain.records.iter().map(|r| r.bytes.as_slice()).collect();
    records.push(&report_line);
    writer.append(&records, &stamp.now.to_rfc3339())?;
    drop(writer);

    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for record in &records {
        out.extend_from_slice(record);
        out.push(b'\n');
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(&out).and_then(|()| lock.flush()).map_err(|e| Error::io("stdout", e))?;
    Ok(ExitStatus::Outcome(outcome))
}

/// The records a report is computed from: the last of each kind after observations, or the last
/// record when there are none of those.
fn consumed(chain: &Chain) -> Vec<&RecordLine> {
    let kinds = [Kind::Finding, Kind::Plan, Kind::Decision, Kind::Execution, Kind::Verification];
    let mut used: Vec<&RecordLine> = kinds.iter().filter_map(|k| chain.last_of(*k)).collect();
    if used.is_empty() {
        used.extend(chain.records.last());
    }
    used
}

/// Load and authenticate a checkpoint file.
fn load_checkpoint(path: &Path) -> Result<checkpoint::Checkpoint> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(&shown, e))?;
    let cp = checkpoint::Checkpoint::parse(&bytes, &shown)?;
    cp.authenticate(checkpoint::key_from_env().as_deref(), &shown)?;
    Ok(cp)
}

fn run_verify(args: &VerifyArgs) -> Result<ExitStatus> {
    let cp = args.checkpoint.as_deref().map(load_checkpoint).transpose()?;
    let options = verify::Options { checkpoint: cp, quiet: args.quiet, max_line_bytes: 0 };
    let started = std::time::Instant::now();
    let summary = verify::verify_path(&args.ledger, &options)?;
    let elapsed = started.elapsed().as_secs_f64();
    let shown = args.ledger.display().to_string();
    if args.format == VerifyFormat::Json {
        let value = serde_json::json!({
            "ledger": shown,
            "ok": summary.ok(),
            "lines": summary.lines,
            "bytes": summary.bytes,
            "head": summary.head,
            "checkpoint": args.checkpoint.as_ref().map(|p| p.display().to_string()),
            "problem": summary.problem,
            "seconds": (elapsed * 1000.0).round() / 1000.0,
        });
        let mut text = value.to_string();
        text.push('\n');
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        lock.write_all(text.as_bytes())
            .and_then(|()| lock.flush())
            .map_err(|e| Error::io("stdout", e))?;
    }
    match &summary.problem {
        Some(problem) => {
            cli::report(&problem.to_error(&shown));
            Ok(ExitStatus::Tamper)
        }
        None => {
            let rate = if elapsed > 0.0 { summary.bytes as f64 / elapsed / 1e6 } else { 0.0 };
            let against = if args.checkpoint.is_some() { ", matches the checkpoint" } else { "" };
            cli::info(format!(
                "{shown}: ok: {} lines, head {}{against} ({} bytes in {elapsed:.2} s, {rate:.0} MB/s)",
                summary.lines,
                summary.head.short(16),
                summary.bytes
            ));
            Ok(ExitStatus::Success)
        }
    }
}

fn run_checkpoint(args: &CheckpointArgs) -> Result<ExitStatus> {
    let shown = args.ledger.display().to_string();
    let options = verify::Options { quiet: args.quiet, ..verify::Options::default() };
    let summary = verify::verify_path(&args.ledger, &options)?;
    if let Some(problem) = &summary.problem {
        return Err(problem.to_error(&shown));
    }
    let key = checkpoint::key_from_env();
    if key.is_none() {
        cli::warn(format!(
            "{} is not set: the checkpoint is unsigned, so whoever can rewrite the ledger can \
             forge it too; keep it out of their reach",
            checkpoint::KEY_ENV
        ));
    }
    let cp = checkpoint::Checkpoint::new(
        Some(shown.clone()),
        summary.lines,
        summary.head,
        Timestamp::now().to_rfc3339(),
        key.as_deref(),
    );
    let mut text = cp.to_json()?;
    text.push('\n');
    match &args.out {
        Some(path) => write_atomically(path, text.as_bytes())?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            lock.write_all(text.as_bytes())
                .and_then(|()| lock.flush())
                .map_err(|e| Error::io("stdout", e))?;
        }
    }
    cli::info(format!("{shown}: checkpoint of {} lines, head {}", cp.records, cp.head.short(16)));
    Ok(ExitStatus::Success)
}

/// Write a file whole or not at all: a temporary file in the same directory, synced, renamed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display().to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(shown, e));
    }
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
    fn every_subcommand_has_examples_and_the_exit_table() {
        for sub in command().get_subcommands() {
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.starts_with("Examples:\n"), "{} has no examples", sub.get_name());
            assert!(help.contains("opsg-audit"), "{}", sub.get_name());
            assert!(help.contains("\n\nExit status:\n"), "{}", sub.get_name());
        }
    }
}

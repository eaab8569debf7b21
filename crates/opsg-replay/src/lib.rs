//! `opsg-replay`: recorded incidents replayed through the pure stages with expectations, the way
//! `promtool test rules` tests alert rules, so opsg's judgement is tested in CI.
//!
//! - [`case`]: finding cases (a directory with a `case.json` and a recording or captures);
//! - [`pipeline`]: triage, plan and gate run in-process with the stages' own library code;
//! - [`report`]: per-case checks, CSV, the summary (confusion matrix, precision/recall, false
//!   incidents on healthy windows) and diffs;
//! - [`record`]: a live pipe's output turned into a new case.

pub mod campaign;
pub mod case;
pub mod pipeline;
pub mod record;
pub mod report;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use opsg_core::stream::{self, ChainWriter, Limits};
use opsg_core::{Error, ExitStatus, Result};
use rayon::prelude::*;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  opsg-replay examples/incidents                       # every case; exit 6 if any fails
  opsg-replay examples/incidents --csv results.csv     # per-case results as CSV
  opsg-replay examples/incidents --format json | jq .per_class
  opsg-scrape --targets fleet.json | opsg-triage | opsg-plan | opsg-gate \\
      | opsg-replay record --out tests/incidents/2026-11-22-kv | opsg-exec";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-replay",
    version,
    about = "Replay recorded incidents through triage, plan and gate, and check their expectations",
    long_about = "Runs every case under DIR (a directory holding case.json and a recording: \
observation.jsonl / recording.jsonl, or raw .prom captures) through opsg-triage, opsg-plan and \
opsg-gate in-process, with the stages' own code, in parallel. Each case names what it expects: \
expected_class, expected_first_action, expected_decision, expected_outcome. Prints a summary \
(pass/fail per expectation, precision and recall per class, a confusion matrix, false incidents on \
healthy windows) on stderr, a diff for each failed case, and exits 6 if any case failed.",
    after_help = after_help(),
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// The corpus: a directory of cases (searched recursively), or one case directory.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write per-case results as CSV to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Summary format on stdout: `text` prints nothing there (the summary goes to stderr), `json`
    /// writes the summary and every case's result as JSON.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write each case's replayed chain to DIR/<case>.jsonl (for inspection with jq).
    #[arg(long, value_name = "DIR")]
    pub chains: Option<PathBuf>,
    /// Default triage rules (else the built-in ones); a case's own `rules` wins.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Default action catalog (else the built-in one); a case's own `catalog` wins.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Default gate policy (else the built-in one); a case's own `policy` wins.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// A subcommand instead of replaying.
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The summary for people, on stderr.
    Text,
    /// The summary and results as JSON on stdout.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Turn the chain on stdin (a live pipe's output) into a new case directory, passing the
    /// chain through to stdout unchanged.
    Record {
        /// The new case directory (must not hold a case yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The case's name (default: the directory name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a fault campaign against opsg-sim (schemas/campaign.schema.json): each arm x fault x
    /// intensity x trial resets the sim, injects the fault, runs the pipe every interval as cron
    /// would, and measures time to detect, mitigate and resolve. CSV rows, a summary on stderr.
    ///
    /// An arm with an `approver` ({"name": "oncall", "delay_s": 60, "approve": ["impactful"]})
    /// has an on-call human: when a run's decision awaits approval, they answer `delay_s` sim
    /// seconds later, signing the plan with `opsg-gate approve` under a random per-campaign key
    /// (passed in OPSG_APPROVAL_KEY, never written down) if every action in it is safe or of a
    /// class they approve, and the saved plan runs through gate (with the token), exec, verify
    /// and audit. Their delay counts in the times to mitigate and resolve; the CSV's
    /// `approvals`, `declined` and `awaiting_s` columns say what they did.
    ///
    /// A trial is resolved when a run's fix verified and the fleet is healthy for the users now
    /// (the TTFT p90 of the last 30 s of arrivals and of everyone still waiting within 2 s, KV
    /// and queues within bounds, the fault gone); `time_to_clear_s` dates the same by the first
    /// tokens given in the last 30 s, which trail a drained backlog. `"warmup_runs": N` runs the
    /// cron job N times before the fault (false alarms in `warmup_incidents`; triage learns the
    /// usual traffic from them); `"onset": "uniform"` puts the fault anywhere in the cron period
    /// instead of just after a run.
    Campaign {
        /// The campaign file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write one CSV row per trial to FILE (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Where the opsg binaries are (default: next to opsg-replay).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Keep each trial's ledger, state and stderr here (default: a temporary directory, removed).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
}

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", opsg_core::cli::exit_status_help())
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// Run the tool.
pub fn run(args: Args) -> Result<ExitStatus> {
    if let Some(Sub::Record { out, name }) = &args.command {
        let chain = stream::read_stdin(&Limits::default())?;
        let case = record::write_case(&chain, out, name.as_deref())?;
        let stdout = std::io::stdout();
        let mut writer = ChainWriter::new(stdout.lock(), opsg_core::seal::GENESIS);
        writer.pass_through(&chain)?;
        writer.finish()?;
        opsg_core::cli::info(format!(
            "recorded case {} (expects class {})",
            out.display(),
            case.get("expected_class").and_then(|v| v.as_str()).unwrap_or("?")
        ));
        return Ok(ExitStatus::Success);
    }
    if let Some(Sub::Campaign { file, csv, bin_dir, work_dir }) = &args.command {
        return run_campaign(
            file,
            csv.as_deref(),
            bin_dir.clone(),
            work_dir.as_deref(),
            args.quiet,
        );
    }
    let dir =
        args.dir.clone().ok_or_else(|| Error::usage("give a corpus DIR (or a subcommand)"))?;
    let defaults = pipeline::Defaults {
        rules: match &args.rules {
            Some(p) => opsg_triage::Rules::load(p)?,
            None => opsg_triage::Rules::builtin(),
        },
        catalog: match &args.catalog {
            Some(p) => opsg_plan::Catalog::load(p)?,
            None => opsg_plan::Catalog::builtin(),
        },
        policy: opsg_gate::policy::load(args.policy.as_deref())?,
    };
    let cases = case::discover(&dir)?;
    if let Some(chains) = &args.chains {
        std::fs::create_dir_all(chains).map_err(|e| Error::io(chains.display(), e))?;
    }
    let bar = opsg_core::progress::bar(cases.len() as u64, "replay", args.quiet);
    let work = || -> Vec<Result<report::CaseResult>> {
        cases
            .par_iter()
            .map(|case| {
                let outcome = pipeline::replay(case, &defaults);
                bar.inc(1);
                let result = match outcome {
                    Ok(replayed) => {
                        if let Some(chains) = &args.chains {
                            let path = chains.join(format!("{}.jsonl", case.name));
                            std::fs::write(&path, replayed.chain.to_bytes())
                                .map_err(|e| Error::io(path.display(), e))?;
                        }
                        report::CaseResult::new(case, Ok(replayed.actual))
                    }
                    Err(e) => report::CaseResult::new(case, Err(e.to_string())),
                };
                Ok(result)
            })
            .collect()
    };
    let results: Vec<report::CaseResult> = match args.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| Error::internal(format!("thread pool: {e}")))?
            .install(work),
        None => work(),
    }
    .into_iter()
    .collect::<Result<_>>()?;
    bar.finish_and_clear();

    if let Some(path) = &args.csv {
        if path.as_os_str() == "-" {
            report::write_csv(&results, std::io::stdout().lock())
        } else {
            let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
            report::write_csv(&results, file)
        }
        .map_err(|e| Error::io(path.display(), std::io::Error::other(e)))?;
    }
    let summary = report::summarize(&results);
    for r in results.iter().filter(|r| !r.passed()) {
        opsg_core::cli::human(&r.diff());
    }
    opsg_core::cli::human(&report::render(&summary));
    if args.format == Format::Json {
        let json = serde_json::json!({ "summary": summary, "cases": results });
        let mut text = serde_json::to_string(&json).map_err(|e| Error::internal(e.to_string()))?;
        text.push('\n');
        use std::io::Write;
        std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| Error::io("stdout", e))?;
    }
    Ok(if summary.failed == 0 { ExitStatus::Success } else { ExitStatus::ExpectationsFailed })
}

fn run_campaign(
    file: &std::path::Path,
    csv_out: Option<&std::path::Path>,
    bin_dir: Option<PathBuf>,
    work_dir: Option<&std::path::Path>,
    quiet: bool,
) -> Result<ExitStatus> {
    let bins = campaign::Bins::new(bin_dir)?;
    let spec = campaign::load(file)?;
    let (work, temporary) = match work_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (std::env::temp_dir().join(format!("opsg-campaign-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&work).map_err(|e| Error::io(work.display(), e))?;
    let bar = opsg_core::progress::bar(campaign::trial_count(file)?, "campaign", quiet);
    let mut sink: Option<campaign::CsvRows<Box<dyn std::io::Write>>> = match csv_out {
        Some(path) if path.as_os_str() == "-" => {
            Some(campaign::CsvRows::new(Box::new(std::io::stdout())))
        }
        Some(path) => {
            let f = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
            Some(campaign::CsvRows::new(Box::new(f)))
        }
        None => None,
    };
    let mut on_row = |row: &campaign::Trial| match sink.as_mut() {
        Some(s) => s.write(row),
        None => Ok(()),
    };
    let rows = campaign::run(file, &bins, &work, &bar, &mut on_row);
    bar.finish_and_clear();
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let rows = rows?;
    opsg_core::cli::human(&campaign::summary(&rows, spec.interval_s));
    Ok(ExitStatus::Success)
}

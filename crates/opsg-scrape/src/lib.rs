//! `opsg-scrape`: the first stage of the pipe. It reads vLLM `/metrics` endpoints (and recorded
//! captures, and a Prometheus server's HTTP API, and host/GPU/log signals), and writes ONE sealed
//! observation record that starts a new chain.
//!
//! Data flow: [`target`] (what to read, with per-target headers and CA) → [`fetch`] (HTTP,
//! defensively) or [`capture`] (files and stdin, plain or gzip) → `opsg_expo` (parse) →
//! [`compact`] (check, normalize vLLM names, keep what triage needs) → [`mod@scrape`] (many
//! targets, several samples) → the record. [`promapi`] adds Prometheus query results (and
//! [`promtargets`] turns them into targets), [`federate`] a Prometheus' `/federate` page split
//! into targets, [`metadata`] the metric types both lack, [`signals`] the non-exposition signals.

use clap::{CommandFactory, Parser};
use opsg_core::evidence::EvidenceStore;
use opsg_core::kinds::observation::{HeaderSource, ObservationBody, ScrapeConfig, TargetStatus};
use opsg_core::record::{Kind, Record, Stamp};
use opsg_core::seal::GENESIS;
use opsg_core::stream::ChainWriter;
use opsg_core::time::{Timestamp, parse_duration_ms};
use opsg_core::{Error, ExitStatus, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod capture;
pub mod compact;
pub mod federate;
pub mod fetch;
pub mod metadata;
pub mod normalize;
pub mod promapi;
pub mod promtargets;
pub mod rescrape;
pub mod scrape;
pub mod signals;
pub mod target;

pub use rescrape::rescrape;
pub use scrape::{Clock, ScrapeOptions, Scraped, scrape, scrape_targets};
pub use target::{Source, Target};

const EXAMPLES: &str = "Examples:
  # One vLLM replica, three samples 10 s apart, into triage:
  opsg-scrape --target http://10.0.0.7:8000/metrics --samples 3 --interval 10s | opsg-triage

  # A labelled fleet from a targets file, raw payloads kept as evidence:
  opsg-scrape --targets fleet.json --evidence-dir /var/lib/opsg/evidence > obs.jsonl

  # Replay a recorded capture deterministically (gzip is read as is; --format when the body
  # cannot tell, e.g. a text capture ending in a `# EOF` comment):
  opsg-scrape --file capture.prom.gz --format prometheus --now 2026-11-22T06:00:00Z --run-id run-replay

  # Ask the Prometheus that already watches the fleet; per-instance targets for triage:
  opsg-scrape --prometheus http://prometheus:9090 --query '{job=\"vllm\"}' --range 10m --step 30s --as-targets

  # Federate the fleet from its Prometheus: one target per replica, types restored:
  opsg-scrape --federate http://prometheus:9090 --match '{job=\"vllm\"}' --samples 3 --interval 15s

  # Host pressure and a vLLM log tail alongside the replica:
  opsg-scrape --target http://127.0.0.1:8000/metrics --host --log /var/log/vllm.log";

const SELECTION: &str = "Series kept (records stay small): every `vllm:` family (V0 and V1 \
names normalized to the current ones, the exposed name kept as `source_name`; `_created` \
timestamps dropped), `process_*`, `DCGM_*`, `up`, `http_requests_total` (vLLM's API server \
answers by status), and the node_exporter families incidents need \
(memory, load, CPU, pressure, OOM kills, filesystem, disk, network errors). Add more with \
`--keep GLOB` (`*` wildcard; `--keep '*'` keeps everything).";

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", opsg_core::cli::exit_status_help())
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration_ms(text)
        .map(|ms| Duration::from_millis(ms as u64))
        .map_err(|e| e.message().to_string())
}

/// A duration of at most `max` (zero allowed): a bound on how long a signal may hold the run.
fn bounded_duration(text: &str, max: Duration) -> std::result::Result<Duration, String> {
    let d = duration(text)?;
    if d > max {
        return Err(format!("`{text}` is longer than the {} s allowed", max.as_secs()));
    }
    Ok(d)
}

/// The longest `--cpu-interval`: the host reading waits this long.
pub const MAX_CPU_INTERVAL: Duration = Duration::from_secs(10);

/// The longest `--xid-window`: the GPU reading waits this long for XID events.
pub const MAX_XID_WINDOW: Duration = Duration::from_secs(60);

fn non_empty_path(text: &str) -> std::result::Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(text))
}

fn timestamp(text: &str) -> std::result::Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|e| e.message().to_string())
}

/// Parse a byte size: `1048576`, `512KiB`, `64MiB`, `1GiB` (also `k`/`M`/`G` as powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size (try `64MiB`)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" | "KB" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        other => return Err(format!("`{text}`: unknown size unit `{other}`")),
    };
    n.checked_mul(factor).filter(|&v| v > 0).ok_or_else(|| format!("`{text}` is out of range"))
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-scrape",
    version,
    about = "Scrape vLLM /metrics (and captures, Prometheus, host signals) into one observation record",
    long_about = None,
    after_help = after_help(),
)]
pub struct Args {
    /// A /metrics URL to scrape (repeatable).
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,

    /// A JSON targets file (schemas/targets.schema.json): names, URLs and labels (deployment,
    /// role canary/stable, route, node); a Prometheus file_sd file works as is.
    #[arg(long = "targets", value_name = "FILE")]
    pub targets_file: Option<PathBuf>,

    /// A recorded exposition capture to replay (repeatable; `-` reads stdin), plain or gzip
    /// (found by its magic bytes; --max-bytes caps the inflated size). Marks the record as a
    /// replay and its samples stale.
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Parse --file captures (and stdin) as this format. `auto` takes a body whose last line is
    /// `# EOF` for OpenMetrics, which misreads a text capture ending in such a comment or an
    /// OpenMetrics capture cut short; HTTP targets always go by the server's `Content-Type`.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = capture::CaptureFormat::Auto)]
    pub format: capture::CaptureFormat,

    /// A Prometheus-compatible HTTP API base URL to query (with --query).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// A PromQL expression for --prometheus (repeatable). When it is a bare selector (`x`,
    /// `x{job="vllm"}`, `{job="vllm"}`), the series' types (counter, gauge) are looked up in
    /// `/api/v1/metadata` (bounded; without it the types stay unknown and the reason says why).
    #[arg(long = "query", value_name = "PROMQL", requires = "prometheus")]
    pub queries: Vec<String>,

    /// Federate from this Prometheus (its base URL): GET `/federate` with the --match selectors,
    /// one target per `instance` of the answer (types, histograms and `job` kept), so triage
    /// reads a fleet Prometheus scrapes like replicas scraped directly.
    #[arg(long, value_name = "URL")]
    pub federate: Option<String>,

    /// A series selector for --federate (repeatable, sent as `match[]`), e.g. `{job="vllm"}`.
    #[arg(long = "match", value_name = "SELECTOR", requires = "federate")]
    pub matches: Vec<String>,

    /// Also turn the query results into targets, one per `instance` label (histograms rebuilt
    /// from `_bucket`/`_sum`/`_count`, `up` = 0 marks it down), so triage reads a fleet watched by
    /// Prometheus like scraped replicas. E.g. --query '{job="vllm"}' --range 5m --as-targets.
    #[arg(long, requires = "prometheus")]
    pub as_targets: bool,

    /// Make the queries range queries over this window ending now (e.g. `10m`).
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "prometheus")]
    pub range: Option<Duration>,

    /// Resolution of range queries (default: the range / 60, at least 1 s).
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "range")]
    pub step: Option<Duration>,

    /// Samples per target, `--interval` apart (rates and trends need at least 2).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub samples: u32,

    /// Time between samples.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub interval: Duration,

    /// Bound on one HTTP attempt (connect, answer and body).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub timeout: Duration,

    /// Bound on connecting.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    pub connect_timeout: Duration,

    /// Extra attempts after a transient failure (refused, timeout, 5xx, 429), with jittered
    /// exponential backoff.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,

    /// First backoff between attempts (doubles each time, at most 8 s).
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = duration)]
    pub backoff: Duration,

    /// Largest payload accepted per scrape, after decompression (`64MiB`); a larger one is
    /// recorded as an error after reading one byte past the cap.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_bytes: u64,

    /// Targets scraped at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,

    /// A payload whose own timestamps are older than this marks its sample stale.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub stale_after: Duration,

    /// Also keep families matching this glob (repeatable; `*` keeps all). See the selection below.
    #[arg(long, value_name = "GLOB", long_help = format!("Also keep families matching this glob (repeatable).\n\n{SELECTION}"))]
    pub keep: Vec<String>,

    /// Send this request header with every HTTP request of the run, targets and Prometheus alike
    /// (repeatable; `Name: value`, e.g. a Mimir tenant `X-Scope-OrgID: fleet`).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = fetch::parse_header)]
    pub headers: Vec<(String, String)>,

    /// Send `Authorization: Bearer <token>` with the token read from this file (kept off the
    /// command line, as Prometheus' `bearer_token_file`).
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,

    /// Trust the CA certificates in this PEM file for HTTPS targets and Prometheus (an internal
    /// CA), instead of the bundled Mozilla roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Store raw payloads here, content-addressed (`DIR/sha256/<hex>`), referenced from the record.
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,

    /// Freeze the clock at this RFC 3339 time (replays, golden tests): samples are at NOW +
    /// k×interval and durations read 0.
    #[arg(long, value_name = "RFC3339", value_parser = timestamp)]
    pub now: Option<Timestamp>,

    /// Use this run (correlation) id instead of a fresh one.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,

    /// Collect host signals from procfs (CPU, memory, PSI, load, disk, OOM kills).
    #[arg(long)]
    pub host: bool,

    /// Per-process RSS, threads and fds for processes with this name (repeatable).
    #[arg(long = "process", value_name = "NAME")]
    pub processes: Vec<String>,

    /// Collect GPU state through NVML (reported unavailable, with why, without a GPU).
    #[arg(long)]
    pub gpu: bool,

    /// Load NVML from this library instead of `libnvidia-ml.so.1` from the loader's path (a
    /// driver installed outside it, a container's mount). A library that does not load makes the
    /// GPUs unavailable, with the path and why in the record.
    #[arg(long, value_name = "PATH", requires = "gpu", value_parser = non_empty_path)]
    pub nvml_lib: Option<PathBuf>,

    /// How long --gpu watches for XID events (driver-reported GPU errors) before reporting;
    /// `0` does not watch. At most 60 s.
    #[arg(long, value_name = "DURATION", requires = "gpu",
          value_parser = |t: &str| bounded_duration(t, MAX_XID_WINDOW))]
    pub xid_window: Option<Duration>,

    /// Time between the two /proc readings that give CPU and disk utilization for --host and
    /// --process (default 250ms); `0` records raw counters only. At most 10 s.
    #[arg(long, value_name = "DURATION",
          value_parser = |t: &str| bounded_duration(t, MAX_CPU_INTERVAL))]
    pub cpu_interval: Option<Duration>,

    /// cgroup v2 memory/CPU/pressure stats of this service (repeatable).
    #[arg(long = "cgroup", value_name = "NAME")]
    pub cgroups: Vec<String>,

    /// Read active alerts from this Alertmanager (API v2).
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,

    /// Read an Alertmanager webhook payload from a file (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    pub alerts_file: Option<PathBuf>,

    /// Tail this log (bounded) and count error signatures (repeatable).
    #[arg(long = "log", value_name = "PATH")]
    pub logs: Vec<PathBuf>,

    /// Root of procfs.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Root of the cgroup v2 hierarchy.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,

    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

impl Args {
    fn signal_args(&self) -> signals::SignalArgs {
        signals::SignalArgs {
            host: self.host,
            processes: self.processes.clone(),
            gpu: self.gpu,
            cgroups: self.cgroups.clone(),
            alertmanager: self.alertmanager.clone(),
            alerts_file: self.alerts_file.clone(),
            logs: self.logs.clone(),
            proc_root: self.proc_root.clone(),
            cgroup_root: self.cgroup_root.clone(),
            timeout: Some(self.timeout),
            cpu_interval: self.cpu_interval,
            nvml_lib: self.nvml_lib.clone(),
            xid_window: self.xid_window,
        }
    }

    fn wants_signals(&self) -> bool {
        self.host
            || self.gpu
            || !self.processes.is_empty()
            || !self.cgroups.is_empty()
            || self.alertmanager.is_some()
            || self.alerts_file.is_some()
            || !self.logs.is_empty()
    }

    /// The targets named on the command line and in the targets file, with unique names.
    pub fn collect_targets(&self) -> Result<Vec<Target>> {
        self.collect().map(|(targets, _)| targets)
    }

    /// The targets with the request settings of those that have any, by (unique) target name:
    /// a targets file's own `headers`/`ca_file`, and `--bearer-token-file`/`--ca-file` as
    /// references (a path, never the token) for every HTTP target that does not set its own, so
    /// the record tells a re-scrape how to reach them.
    pub fn collect(&self) -> Result<(Vec<Target>, BTreeMap<String, ScrapeConfig>)> {
        let mut targets = Vec::new();
        let mut configs = Vec::new();
        let mut explicit = Vec::new();
        if let Some(path) = &self.targets_file {
            for (t, config) in target::load_targets_file(path)? {
                targets.push(t);
                configs.push(config);
                explicit.push(true);
            }
        }
        for url in &self.targets {
            targets.push(Target::http(url)?);
            explicit.push(false);
        }
        let stdin_count = self.files.iter().filter(|p| p.as_os_str() == "-").count();
        if stdin_count > 1 {
            return Err(Error::usage("`--file -` (stdin) can be given only once"));
        }
        if stdin_count == 1 && self.alerts_file.as_ref().is_some_and(|p| p.as_os_str() == "-") {
            return Err(Error::usage("stdin cannot be both `--file -` and `--alerts-file -`"));
        }
        for path in &self.files {
            targets.push(Target::file(path));
            explicit.push(false);
        }
        target::dedupe_names(&mut targets, &explicit).map_err(|e| match &self.targets_file {
            Some(p) => e.in_source(p.display().to_string()),
            None => e,
        })?;
        configs.resize_with(targets.len(), ScrapeConfig::default);
        let mut by_name = BTreeMap::new();
        for (t, config) in targets.iter().zip(configs) {
            if !matches!(t.source, Source::Http(_)) {
                continue;
            }
            let config = self.with_run_wide(config);
            if !config.is_empty() {
                by_name.insert(t.name.clone(), config);
            }
        }
        Ok((targets, by_name))
    }

    /// `config` completed with the run-wide settings that can be recorded: `--bearer-token-file`
    /// as an `Authorization` header read from that (absolute) path, unless the target sets its
    /// own, and `--ca-file`, unless it names its own. `--header` values are not recorded: given
    /// on a command line, they could be anything, secrets included.
    fn with_run_wide(&self, mut config: ScrapeConfig) -> ScrapeConfig {
        let absolute = |p: &PathBuf| {
            std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()
        };
        if let Some(file) = self.bearer_token_file.as_ref().map(absolute)
            && !config.headers.keys().any(|n| n.eq_ignore_ascii_case("authorization"))
        {
            let source = HeaderSource::File { file, prefix: Some("Bearer ".into()) };
            config.headers.insert("Authorization".into(), source);
        }
        if config.ca_file.is_none() {
            config.ca_file = self.ca_file.as_ref().map(absolute);
        }
        config
    }
}

fn status_name(status: TargetStatus) -> &'static str {
    match status {
        TargetStatus::Up => "up",
        TargetStatus::Down => "down",
        TargetStatus::Timeout => "timeout",
        TargetStatus::Error => "error",
    }
}

/// Run every `--query` against the Prometheus API at `endpoint` (instant, or range with --range).
fn run_queries(
    args: &Args,
    endpoint: &str,
    clock: Clock,
    http: &fetch::HttpOptions,
) -> Vec<opsg_core::kinds::observation::QueryResult> {
    let agent = fetch::agent(http);
    let kind = match args.range {
        Some(range) => {
            let range_ms = range.as_millis() as i64;
            let step_ms =
                args.step.map_or((range_ms / 60).max(1000), |s| (s.as_millis() as i64).max(1));
            promapi::QueryKind::Range { end: clock.now(), range_ms, step_ms }
        }
        None => promapi::QueryKind::Instant { at: args.now },
    };
    // Query answers carry no types: for bare selectors, ask the metadata API (once per name).
    let mut looked_up: BTreeMap<Option<String>, std::result::Result<metadata::Types, String>> =
        BTreeMap::new();
    let mut results = Vec::with_capacity(args.queries.len());
    for q in &args.queries {
        let mut result = promapi::query(&agent, endpoint, q, kind, http);
        let bare = promapi::bare_selector(q);
        if let Some(name) = bare.filter(|_| result.status == "ok" && !result.series.is_empty()) {
            let types = looked_up
                .entry(name.clone())
                .or_insert_with(|| lookup_types(endpoint, name.as_deref(), http));
            match types {
                Ok(types) => {
                    promapi::apply_types(&mut result, types);
                }
                Err(reason) => {
                    let note = format!("series types unknown ({reason})");
                    result.reason =
                        Some(result.reason.take().map_or(note.clone(), |r| format!("{r}; {note}")));
                }
            }
        }
        results.push(result);
    }
    results
}

/// The metadata for a bare query: of the name (and, for `_total`/`_bucket`/`_sum`/`_count`
/// names the metadata does not list, of the family), or of every metric for a nameless selector.
fn lookup_types(
    endpoint: &str,
    name: Option<&str>,
    http: &fetch::HttpOptions,
) -> std::result::Result<metadata::Types, String> {
    let mut types = metadata::lookup(endpoint, name, http)?;
    if let Some(name) = name
        && metadata::type_of(&types, name).is_none()
        && let Some(base) = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
    {
        types.extend(metadata::lookup(endpoint, Some(base), http)?);
    }
    Ok(types)
}

/// Run the tool: scrape, query, collect signals, write one observation record on stdout.
pub fn run(args: Args) -> Result<ExitStatus> {
    let (targets, mut scrape_configs) = args.collect()?;
    if targets.is_empty()
        && args.prometheus.is_none()
        && args.federate.is_none()
        && !args.wants_signals()
    {
        return Err(Error::usage(
            "nothing to scrape: give --target, --targets, --file, --prometheus, --federate or a signal flag (--host, --gpu, --log, …)",
        ));
    }
    if let Some(url) = &args.federate {
        federate::check_args(url, &args.matches)?;
    }
    if let Some(url) = &args.prometheus {
        target::check_url(url)?;
        if args.queries.is_empty() {
            return Err(Error::usage("--prometheus needs at least one --query"));
        }
    }
    if let Some(id) = &args.run_id
        && (id.is_empty() || id.len() > 200)
    {
        return Err(Error::usage("--run-id must be 1 to 200 characters"));
    }
    let clock = args.now.map_or(Clock::System, Clock::Frozen);
    let evidence = args.evidence_dir.as_ref().map(EvidenceStore::new);
    let mut headers = args.headers.clone();
    if let Some(path) = &args.bearer_token_file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        let token = text.trim();
        if token.is_empty() || token.contains(['\r', '\n']) {
            return Err(Error::invalid("expected one token on one line")
                .in_source(path.display().to_string()));
        }
        headers.push(("Authorization".into(), format!("Bearer {token}")));
    }
    let roots = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
            Some(
                fetch::load_roots(&pem)
                    .map_err(|e| Error::invalid(e).in_source(path.display().to_string()))?,
            )
        }
        None => None,
    };
    let http = fetch::HttpOptions {
        headers,
        roots,
        connect_timeout: args.connect_timeout,
        timeout: args.timeout,
        retries: args.retries,
        backoff: args.backoff,
        max_bytes: args.max_bytes,
        ..fetch::HttpOptions::default()
    };
    let options = ScrapeOptions {
        http: http.clone(),
        samples: args.samples,
        interval: args.interval,
        clock,
        keep: normalize::Keep::with_extra(&args.keep),
        stale_after_ms: args.stale_after.as_millis() as i64,
        concurrency: args.concurrency as usize,
        evidence: evidence.clone(),
        quiet: args.quiet,
        scrape_configs: scrape_configs.clone(),
        format: args.format,
    };
    // Host signals take two readings some time apart (CPU and disk utilization): collect them
    // while the targets are scraped, not after.
    let signal_args = args.wants_signals().then(|| args.signal_args());
    let (scraped, queries, signals, federated) = std::thread::scope(|scope| {
        let collector =
            signal_args.as_ref().map(|sa| scope.spawn(|| signals::collect(sa, evidence.as_ref())));
        let federation = args
            .federate
            .as_ref()
            .map(|url| scope.spawn(|| federate::federate(url, &args.matches, &options)));
        let scraped =
            if targets.is_empty() { Ok(Scraped::default()) } else { scrape(&targets, &options) };
        let queries = match &args.prometheus {
            Some(endpoint) => run_queries(&args, endpoint, clock, &http),
            None => Vec::new(),
        };
        let signals = match collector {
            Some(handle) => {
                handle.join().map_err(|_| Error::internal("the signal collector panicked"))?
            }
            None => signals::Signals::default(),
        };
        let federated = match federation {
            Some(handle) => Some(
                handle.join().map_err(|_| Error::internal("the federation thread panicked"))??,
            ),
            None => None,
        };
        Ok::<_, Error>((scraped?, queries, signals, federated))
    })?;

    let mut scraped = scraped;
    let mut queries = queries;
    if let Some((federated, call)) = federated {
        if scraped.window.start.is_empty() {
            scraped.window = federated.window;
        }
        for mut t in federated.targets {
            let base = t.name.clone();
            let mut n = 1;
            while scraped.targets.iter().any(|x| x.name == t.name) {
                n += 1;
                t.name = format!("{base}#{n}");
            }
            // How to federate it again (opsg-verify re-measures through the same Prometheus).
            let config = ScrapeConfig { federate: args.matches.clone(), ..ScrapeConfig::default() };
            scrape_configs.insert(t.name.clone(), args.with_run_wide(config));
            scraped.targets.push(t);
        }
        for e in federated.evidence {
            if !scraped.evidence.iter().any(|x| x.sha256 == e.sha256) {
                scraped.evidence.push(e);
            }
        }
        queries.push(call);
    }
    if args.as_targets {
        for mut t in promtargets::targets_from_queries(&queries) {
            let base = t.name.clone();
            let mut n = 1;
            while scraped.targets.iter().any(|x| x.name == t.name) {
                n += 1;
                t.name = format!("{base}#{n}");
            }
            scraped.targets.push(t);
        }
    }
    let now = clock.now();
    let mut window = scraped.window.clone();
    if window.start.is_empty() {
        // Only query-derived targets: their evaluation times are the window (RFC 3339 UTC
        // strings of one format sort as times).
        let times = scraped.targets.iter().flat_map(|t| t.samples.iter().map(|s| &s.at));
        if let (Some(first), Some(last)) = (times.clone().min(), times.max()) {
            window.start.clone_from(first);
            window.end.clone_from(last);
        }
    }
    if window.start.is_empty() {
        window.start = now.to_rfc3339();
        window.end = window.start.clone();
    }
    let interval_s = if args.samples > 1 { args.interval.as_secs_f64() } else { 0.0 };
    for t in &scraped.targets {
        if t.status != TargetStatus::Up {
            opsg_core::cli::warn(format!(
                "target `{}` is {}: {}",
                t.name,
                status_name(t.status),
                t.reason.as_deref().unwrap_or("no reason")
            ));
        }
    }
    if !args.quiet && !scraped.targets.is_empty() {
        let up = scraped.targets.iter().filter(|t| t.status == TargetStatus::Up).count();
        opsg_core::cli::info(format!(
            "{up} of {} targets up over {} sample(s)",
            scraped.targets.len(),
            args.samples
        ));
    }
    for q in &queries {
        if q.status != "ok" {
            opsg_core::cli::warn(format!(
                "query `{}` failed: {}",
                q.query,
                q.reason.as_deref().unwrap_or("no reason")
            ));
        }
    }
    let body = ObservationBody {
        window,
        interval_s,
        targets: scraped.targets,
        queries,
        host: signals.host,
        gpus: signals.gpus,
        cgroups: signals.cgroups,
        alerts: signals.alerts,
        logs: signals.logs,
        scrape_configs,
    };
    let stamp = Stamp { tool: "opsg-scrape", version: env!("CARGO_PKG_VERSION"), now };
    let run = args.run_id.clone().unwrap_or_else(|| opsg_core::record::new_run_id(now));
    let mut record = Record::new(Kind::Observation, &stamp, run, None, body);
    record.envelope.replay = targets.iter().any(|t| t.source.is_replay());
    record.envelope.evidence = scraped.evidence;
    for e in signals.evidence {
        if !record.envelope.evidence.iter().any(|x| x.sha256 == e.sha256) {
            record.envelope.evidence.push(e);
        }
    }
    // Downstream stages refuse records over the stream bound: say so here, where it can be fixed.
    let (line, _) = record.seal(GENESIS)?;
    let bound = opsg_core::stream::Limits::default().max_record_bytes;
    if line.len() > bound {
        opsg_core::cli::warn(format!(
            "the observation is {} bytes, over the {bound}-byte record bound of the next stages: narrow --keep, or use fewer --samples or targets per run",
            line.len()
        ));
    }
    let stdout = std::io::stdout();
    let mut writer = ChainWriter::new(stdout.lock(), GENESIS);
    writer.append(&mut record)?;
    writer.finish()?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
        let help = command().render_long_help().to_string();
        assert!(help.contains("Examples:\n"), "{help}");
        assert!(help.contains("Exit status:"), "{help}");
        assert!(help.contains("Series kept"), "{help}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    fn parse(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("opsg-scrape").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn stdin_is_read_once() {
        let e = parse(&["--file", "-", "--file", "-"]).collect_targets().unwrap_err();
        assert_eq!(e.status().code(), 2);
        let e = parse(&["--file", "-", "--alerts-file", "-"]).collect_targets().unwrap_err();
        assert!(e.to_string().contains("stdin"), "{e}");
    }

    #[test]
    fn flags_map_onto_targets_and_signals() {
        let args = parse(&[
            "--target",
            "http://h:1/metrics",
            "--file",
            "cap.prom",
            "--host",
            "--process",
            "vllm",
            "--cgroup",
            "vllm.service",
            "--log",
            "/var/log/vllm.log",
            "--timeout",
            "2s",
        ]);
        let targets = args.collect_targets().unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].source, Source::Http("http://h:1/metrics".into()));
        assert_eq!(targets[1].source, Source::File("cap.prom".into()));
        let s = args.signal_args();
        assert!(s.host && !s.gpu);
        assert_eq!(s.processes, ["vllm"]);
        assert_eq!(s.cgroups, ["vllm.service"]);
        assert_eq!(s.proc_root, PathBuf::from("/proc"));
        assert_eq!(s.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(s.timeout, Some(Duration::from_secs(2)));
        assert!(args.wants_signals());
    }

    #[test]
    fn signal_settings_are_validated_and_reach_the_collectors() {
        let args = parse(&[
            "--gpu",
            "--nvml-lib",
            "/opt/nvidia/lib/libnvidia-ml.so.1",
            "--xid-window",
            "2s",
            "--host",
            "--cpu-interval",
            "0",
        ]);
        let s = args.signal_args();
        assert_eq!(s.nvml_lib, Some(PathBuf::from("/opt/nvidia/lib/libnvidia-ml.so.1")));
        assert_eq!(s.xid_window, Some(Duration::from_secs(2)));
        assert_eq!(s.cpu_interval, Some(Duration::ZERO), "zero: raw counters only");
        let s = parse(&["--host"]).signal_args();
        assert_eq!((s.cpu_interval, s.xid_window, s.nvml_lib), (None, None, None), "defaults");
        let refused = |argv: &[&str]| {
            let e =
                Args::try_parse_from(std::iter::once("opsg-scrape").chain(argv.iter().copied()))
                    .unwrap_err();
            e.to_string()
        };
        assert!(refused(&["--gpu", "--xid-window", "61s"]).contains("60 s"));
        assert!(refused(&["--host", "--cpu-interval", "11s"]).contains("10 s"));
        assert!(refused(&["--host", "--cpu-interval", "soon"]).contains("soon"));
        assert!(refused(&["--nvml-lib", "/x.so"]).contains("--gpu"), "needs --gpu");
        assert!(refused(&["--xid-window", "1s"]).contains("--gpu"), "needs --gpu");
        assert!(refused(&["--gpu", "--nvml-lib", " "]).contains("empty"));
    }

    #[test]
    fn query_flags_need_prometheus() {
        let argv = ["opsg-scrape", "--query", "up"];
        assert!(Args::try_parse_from(argv).is_err());
        let argv = ["opsg-scrape", "--prometheus", "http://p:9090", "--step", "1s"];
        assert!(Args::try_parse_from(argv).is_err(), "--step needs --range");
    }
}

//! Fault campaigns against opsg-sim: for each arm x fault x intensity x trial, reset the sim,
//! inject the fault at a known (sim) time, run the pipe as a cron job would every `interval_s` sim
//! seconds, and measure time to detect, mitigate and resolve, what was done, and whether the fleet
//! ended healthy. A baseline arm (`remediate: false`) shows how often the fleet heals by itself.
//! An arm with an [`Approver`] has an on-call human who signs plans awaiting approval with the
//! real `opsg-gate approve`, after a response time that counts in the trial's times.
//!
//! The sim runs on its own clock at `--speed` (sim seconds per real second); every time here is
//! sim time read from `GET /state`, so results do not depend on how fast this machine is. The
//! pipe is the real binaries, connected with OS pipes (no shell), exactly as cron would run them.
//!
//! A trial is resolved when the fleet is healthy by the users now (see [`Latency`]): every
//! replica up, its KV cache and queue within bounds, and the TTFT p90 of the requests that
//! arrived in the last 30 s, plus everyone still waiting, within 2 s. The trailing measure (first
//! tokens of the last 30 s), which still holds a drained backlog for one more window, is reported
//! beside it as `time_to_clear_s`. The fault strikes just after a cron run by default (the worst
//! case: a whole period unseen) or, with `"onset": "uniform"`, anywhere in the period.

use opsg_core::kinds::plan::SafetyClass;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A campaign file (`schemas/campaign.schema.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    /// The sim's seed (every trial resets to it).
    pub seed: u64,
    /// Sim seconds per real second (`opsg-sim --speed`).
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Sim seconds between two runs of the pipe (the cron period).
    pub interval_s: f64,
    /// Runs of the pipe per trial before giving up.
    pub max_runs: u32,
    /// Sim seconds of normal traffic before the fault.
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    /// Trials per arm, fault and intensity.
    pub trials: u32,
    /// Faults to inject.
    pub faults: Vec<FaultSpec>,
    /// Arms compared side by side.
    pub arms: Vec<Arm>,
    /// Extra arguments for opsg-scrape (default: [`default_scrape_args`]).
    #[serde(default)]
    pub scrape_args: Option<Vec<String>>,
    /// Extra arguments for opsg-verify (default: settle 1s, 3 samples 300 ms apart).
    #[serde(default)]
    pub verify_args: Option<Vec<String>>,
    /// Where in the cron period the fault strikes.
    #[serde(default)]
    pub onset: Onset,
    /// Cron runs before the fault, on the same period (the job runs all the time in
    /// production): the history triage learns the fleet's usual from. `warmup_s` must hold
    /// them and one period more.
    #[serde(default)]
    pub warmup_runs: u32,
}

/// Where in the cron period a trial's fault strikes, which sets how long it goes unseen before
/// the first run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Onset {
    /// Just after a run: the first run that can see it comes a whole period later (the worst
    /// case of a cron job).
    #[default]
    AfterRun,
    /// Anywhere in the period, uniformly, as faults arrive in production: a seeded draw per
    /// fault, intensity and trial, the same in every arm (so arms are compared on the same
    /// onsets).
    Uniform,
}

impl CampaignFile {
    /// Sim seconds from the fault to the first cron run of `trial`: a whole period after a
    /// run, or a seeded point in (0, period] for [`Onset::Uniform`].
    pub fn first_run_after(&self, fault: &FaultSpec, intensity: f64, trial: u32) -> f64 {
        match self.onset {
            Onset::AfterRun => self.interval_s,
            Onset::Uniform => {
                let key = format!(
                    "{}/{}/{}/{}/{trial}",
                    self.seed,
                    fault.fault,
                    fault.target,
                    intensity.to_bits()
                );
                // (0, 1]: a run never coincides with the fault itself.
                let u = (splitmix64(fnv1a(key.as_bytes())) >> 11) as f64 / (1u64 << 53) as f64;
                self.interval_s * (1.0 - u)
            }
        }
    }
}

/// FNV-1a over `bytes`: a stable 64-bit key for a seeded draw (not a hash table's, which is
/// randomised per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// One step of SplitMix64: spreads a key's bits over the whole word.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn default_speed() -> f64 {
    20.0
}

fn default_warmup() -> f64 {
    60.0
}

/// One fault to inject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The sim's fault name (`kv_cache_saturation`, …).
    pub fault: String,
    /// Its target (deployment, replica or node name).
    pub target: String,
    /// Intensities to try, each in [0, 1].
    pub intensities: Vec<f64>,
    /// The class triage should name (for the "correctly classified" column).
    #[serde(default)]
    pub expected_class: Option<String>,
}

/// One arm: how the pipe runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its name in the results.
    pub name: String,
    /// False for the baseline: scrape and triage only, nothing executed.
    #[serde(default = "yes")]
    pub remediate: bool,
    /// The gate policy (relative to the campaign file); default: the built-in (dry-run) one.
    #[serde(default)]
    pub policy: Option<String>,
    /// Extra arguments for opsg-triage and opsg-plan (e.g. `["--llm"]`, which then reads the
    /// campaign's own `OPSG_LLM_*` environment: prefer `llm`, which names the endpoint here).
    #[serde(default)]
    pub advisor_args: Vec<String>,
    /// The LLM advisor this arm's triage and plan ask. Its settings reach those two processes
    /// alone; an arm without it (and without `--llm` in `advisor_args`) is rules-only, whatever
    /// the campaign's own environment holds.
    #[serde(default)]
    pub llm: Option<AdvisorEndpoint>,
    /// The on-call human who answers a plan awaiting approval; without one, such a plan waits
    /// for the rest of the trial.
    #[serde(default)]
    pub approver: Option<Approver>,
}

fn yes() -> bool {
    true
}

/// The environment prefix of the advisor's settings (`OPSG_LLM_URL`, `OPSG_LLM_MODEL`,
/// `OPSG_LLM_API`, `OPSG_LLM_API_KEY`: `opsg-advisor`'s names, spelled out here because this
/// crate only spawns the tools that read them). A stage gets these only through
/// [`run_pipe_from`]'s `env`, never by inheritance.
pub const ADVISOR_ENV_PREFIX: &str = "OPSG_LLM_";

/// An arm's LLM advisor: an endpoint and model, so two arms can compare two models (or a model
/// against the rules) side by side in one campaign.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisorEndpoint {
    /// Base URL (`http://127.0.0.1:8000/v1` for vLLM).
    pub url: String,
    /// Model name.
    pub model: String,
    /// Wire format.
    #[serde(default)]
    pub api: AdvisorApi,
    /// The name of the environment variable holding the API key. The key itself is never in
    /// the campaign file; it is read once at load (a missing one is an error before any trial)
    /// and handed to triage and plan as `OPSG_LLM_API_KEY` alone.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whole-request timeout (`--llm-timeout`, e.g. `10s`); default: the advisor's own.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The key, read from `api_key_env` at load.
    #[serde(skip)]
    key: Option<AdvisorKey>,
}

/// The advisor's wire format (`opsg-advisor`'s `--llm-api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvisorApi {
    /// OpenAI-compatible chat completions (vLLM, Ollama, most gateways).
    #[default]
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
}

impl AdvisorApi {
    fn as_str(self) -> &'static str {
        match self {
            AdvisorApi::Openai => "openai",
            AdvisorApi::Anthropic => "anthropic",
        }
    }
}

/// An API key held in memory; `Debug` does not show it, so a logged arm never does either.
#[derive(Clone)]
struct AdvisorKey(String);

impl std::fmt::Debug for AdvisorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdvisorKey([redacted])")
    }
}

impl Arm {
    /// The extra arguments of this arm's triage and plan: `advisor_args`, then `--llm` and its
    /// timeout when the arm names an endpoint.
    pub fn advisor_flags(&self) -> Vec<String> {
        let mut flags = self.advisor_args.clone();
        if let Some(llm) = &self.llm {
            flags.push("--llm".into());
            if let Some(t) = &llm.timeout {
                flags.extend(["--llm-timeout".into(), t.clone()]);
            }
        }
        flags
    }

    /// The advisor environment of this arm's triage and plan: the endpoint's settings (and
    /// key) when it names one; the campaign's own `OPSG_LLM_*` for an arm that asks for the
    /// advisor through `advisor_args` alone (as before `llm` existed); nothing otherwise.
    pub fn advisor_env(&self) -> Vec<(String, String)> {
        match &self.llm {
            Some(llm) => {
                let mut env = vec![
                    (format!("{ADVISOR_ENV_PREFIX}URL"), llm.url.clone()),
                    (format!("{ADVISOR_ENV_PREFIX}MODEL"), llm.model.clone()),
                    (format!("{ADVISOR_ENV_PREFIX}API"), llm.api.as_str().to_string()),
                ];
                if let Some(key) = &llm.key {
                    env.push((format!("{ADVISOR_ENV_PREFIX}API_KEY"), key.0.clone()));
                }
                env
            }
            None if self.advisor_args.iter().any(|a| a == "--llm") => {
                std::env::vars().filter(|(name, _)| name.starts_with(ADVISOR_ENV_PREFIX)).collect()
            }
            None => Vec::new(),
        }
    }
}

/// An on-call human, as a campaign arm models one: paged when a run's decision awaits approval,
/// they answer `delay_s` sim seconds later by signing the awaiting plan with the real
/// `opsg-gate approve`, if every action in it is of a safety class they approve (a plan with
/// anything else is declined: they will not sign a drain because they were asked to).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// Who signs (the token's and the decision's `approver`).
    pub name: String,
    /// Sim seconds from the page (the awaiting run's end) to the answer: the human's response
    /// time, which counts in the trial's time to mitigate and resolve.
    pub delay_s: f64,
    /// Safety classes they approve; safe actions never need approval. Destructive actions only
    /// when listed.
    #[serde(default = "impactful_only")]
    pub approve: Vec<SafetyClass>,
}

fn impactful_only() -> Vec<SafetyClass> {
    vec![SafetyClass::Impactful]
}

impl Approver {
    /// Whether they sign a plan whose actions have these safety classes: all of them safe or
    /// of a class they approve (the token covers the whole plan, so they read all of it).
    pub fn signs(&self, classes: &[SafetyClass]) -> bool {
        !classes.is_empty()
            && classes.iter().all(|c| *c == SafetyClass::Safe || self.approve.contains(c))
    }
}

/// One trial's measurements (a CSV row).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trial {
    /// Arm name.
    pub arm: String,
    /// Fault.
    pub fault: String,
    /// Intensity.
    pub intensity: f64,
    /// Trial number (1-based).
    pub trial: u32,
    /// Runs of the pipe made.
    pub runs: u32,
    /// Sim seconds from injection to the first incident finding.
    pub time_to_detect_s: Option<f64>,
    /// Whether that finding named the expected class.
    pub class_correct: Option<bool>,
    /// The class first named.
    pub first_class: String,
    /// Sim seconds from injection to the first executed action.
    pub time_to_mitigate_s: Option<f64>,
    /// Sim seconds from injection to a verified resolution.
    pub time_to_resolve_s: Option<f64>,
    /// The last run's outcome (opsg-audit's report).
    pub outcome: String,
    /// Actions executed.
    pub actions: u32,
    /// Impactful ones.
    pub impactful: u32,
    /// Destructive ones.
    pub destructive: u32,
    /// Destructive ones executed without an approval.
    pub destructive_unapproved: u32,
    /// Inverses run by rollbacks.
    pub rolled_back: u32,
    /// The fleet was healthy at the end.
    pub healthy_end: bool,
    /// Why not, when not.
    pub unhealthy_reason: String,
    // New columns go last, so a reader of the older CSV finds its columns where they were.
    /// Plans the arm's approver signed.
    pub approvals: u32,
    /// Plans the arm's approver declined (an action of a class they do not approve).
    pub declined: u32,
    /// Sim seconds the arm waited on a human: from each page (the end of a run whose decision
    /// awaits approval) to the approver's answer, to the end of a later run that acted without
    /// one, or to the end of the trial when nobody answers.
    pub awaiting_s: f64,
    /// Sim seconds from the fault to the first cron run (the whole period, or less with
    /// `"onset": "uniform"`).
    pub first_run_s: f64,
    /// Sim seconds from injection to when the TTFT p90 of the requests whose first token came
    /// in the last 30 s was also within 2 s for good (with everything else healthy): the
    /// resolution by the trailing measure, which holds a drained backlog's first tokens for
    /// one more window. Watched for up to a window and a half after the resolution; empty when
    /// not resolved or not clear by then.
    pub time_to_clear_s: Option<f64>,
    /// Runs before the fault (`warmup_runs`) that raised an incident on the healthy fleet:
    /// false alarms.
    pub warmup_incidents: u32,
    /// Cron runs after the fault whose finding or plan used the LLM advisor's answer
    /// (`method.kind` `llm`).
    pub advised: u32,
    /// Cron runs after the fault whose triage or plan asked the advisor and kept the
    /// deterministic result (`method.fallback_reason`: unreachable, timed out, a refused
    /// answer). A run can count here and in `advised` (triage took the advice, plan did not).
    pub advisor_fallbacks: u32,
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// The opsg binaries in `dir` (default: next to the running executable).
    pub fn new(dir: Option<PathBuf>) -> Result<Bins> {
        let dir = match dir {
            Some(d) => d,
            None => std::env::current_exe()
                .map_err(|e| Error::io("current executable", e))?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        Ok(Bins { dir })
    }

    fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }
}

/// A running opsg-sim; killed on drop.
pub struct Sim {
    child: Child,
    /// Its control URL (`http://127.0.0.1:PORT`).
    pub url: String,
    agent: ureq::Agent,
}

impl Sim {
    /// Start opsg-sim on an ephemeral loopback port.
    pub fn start(bins: &Bins, seed: u64, speed: f64) -> Result<Sim> {
        let mut child = Command::new(bins.path("opsg-sim"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--seed",
                &seed.to_string(),
                "--speed",
                &speed.to_string(),
            ])
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(bins.path("opsg-sim").display(), e))?;
        let stdout = child.stdout.take().ok_or_else(|| Error::internal("opsg-sim stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| Error::io("opsg-sim stdout", e))?;
        let started: Value = serde_json::from_str(&line)
            .map_err(|e| Error::invalid(format!("opsg-sim start-up line is not JSON: {e}")))?;
        let listen = started["listen"]
            .as_str()
            .ok_or_else(|| Error::invalid("opsg-sim start-up line has no `listen`"))?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Sim { child, url: format!("http://{listen}"), agent })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.to_string().as_bytes()),
            (_, None) => self.agent.post(&url).send_empty(),
        }
        .map_err(|e| Error::io(&url, std::io::Error::other(e.to_string())))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| Error::io(&url, std::io::Error::other(e.to_string())))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            return Err(Error::invalid(format!(
                "opsg-sim answered {status} to {method} {path}: {value}"
            )));
        }
        Ok(value)
    }

    /// `GET /state`.
    pub fn state(&self) -> Result<Value> {
        self.call("GET", "/state", None)
    }

    /// Sim time, seconds.
    pub fn sim_time(&self) -> Result<f64> {
        Ok(self.state()?["sim_time"].as_f64().unwrap_or(0.0))
    }

    /// Wait until sim time reaches `t` (bounded in real time).
    pub fn wait_until(&self, t: f64, speed: f64) -> Result<()> {
        let deadline = Instant::now()
            + Duration::from_secs_f64((t - self.sim_time()?).max(0.0) / speed + 30.0);
        while self.sim_time()? < t {
            if Instant::now() > deadline {
                return Err(Error::internal("opsg-sim's clock stopped advancing"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Write a scrape targets file for every endpoint `/state` lists.
    pub fn targets_file(&self, path: &Path) -> Result<()> {
        let state = self.state()?;
        let mut targets = Vec::new();
        for t in state["targets"].as_array().into_iter().flatten() {
            let job = t["job"].as_str().unwrap_or("vllm");
            let name = match (job, t["replica"].as_str(), t["node"].as_str()) {
                ("vllm", Some(r), _) => r.to_string(),
                (job, _, Some(node)) => format!("{job}-{node}"),
                (job, _, None) => job.to_string(),
            };
            let mut labels = serde_json::Map::new();
            for key in ["deployment", "role", "node", "job", "config_version"] {
                if let Some(v) = t[key].as_str() {
                    labels.insert(key.into(), json!(v));
                }
            }
            targets.push(json!({"name": name, "url": t["url"], "labels": labels}));
        }
        let text = serde_json::to_string_pretty(&json!({ "targets": targets }))
            .map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fleet's health over a trial, as the sim tells it, polled about once a sim second on a
/// thread of its own (the pipe's runs block the trial's thread): what dates a resolution to
/// when the fleet became healthy, not to when a later cron run confirmed it.
struct HealthWatch {
    /// `(sim seconds after t0, healthy by the users now, healthy by the first tokens)`.
    samples: std::sync::Arc<std::sync::Mutex<Vec<(f64, bool, bool)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthWatch {
    /// Poll `sim` from now on; times are sim seconds after `t0`.
    fn start(sim: &Sim, fault: &FaultSpec, t0: f64, speed: f64) -> HealthWatch {
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, agent, fault) = (format!("{}/state", sim.url), sim.agent.clone(), fault.clone());
        let every = Duration::from_secs_f64((1.0 / speed.max(1e-3)).clamp(0.05, 1.0));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A failed poll records nothing: a gap is never counted as healthy.
                    let state = agent
                        .get(&url)
                        .call()
                        .ok()
                        .and_then(|r| r.into_body().read_to_string().ok())
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
                    if let Some(state) = state
                        && let Some(t) = state["sim_time"].as_f64()
                    {
                        let now = health_after_by(&state, &fault, Latency::UsersNow).0;
                        let trailing = health_after_by(&state, &fault, Latency::FirstTokens).0;
                        if let Ok(mut v) = samples.lock() {
                            v.push((t - t0, now, trailing));
                        }
                    }
                    std::thread::sleep(every);
                }
            })
        };
        HealthWatch { samples, stop, thread: Some(thread) }
    }

    /// When the unbroken healthy stretch that holds at `confirmed` began, no earlier than
    /// `not_before` (the fix that the confirmation credits, or the detection).
    fn healthy_since(&self, confirmed: f64, not_before: f64) -> f64 {
        healthy_since(&self.measured(Latency::UsersNow), confirmed, not_before)
    }

    /// The samples by one measure.
    fn measured(&self, latency: Latency) -> Vec<(f64, bool)> {
        let samples = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
        samples
            .into_iter()
            .map(|(t, now, trailing)| {
                (t, if latency == Latency::UsersNow { now } else { trailing })
            })
            .collect()
    }

    /// When the fleet became healthy for good by the trailing first-token measure, after a
    /// resolution (by the users now) confirmed at `confirmed` and dated no earlier than
    /// `not_before`: waits, polling, until a sample says so or `limit` sim seconds after t0
    /// have passed (`None` then). A sample that the trailing measure calls healthy while the
    /// users-now one does not cannot be the start (both must hold).
    fn clear_since(&self, sim: &Sim, t0: f64, not_before: f64, limit: f64) -> Option<f64> {
        loop {
            let both: Vec<(f64, bool)> = {
                let samples = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
                samples.into_iter().map(|(t, now, trailing)| (t, now && trailing)).collect()
            };
            if let Some(&(last, true)) = both.last() {
                return Some(healthy_since(&both, last, not_before));
            }
            let now = sim.sim_time().ok()? - t0;
            if now >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HealthWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The start of the last unbroken run of healthy samples at or before `confirmed` (which the
/// caller has just seen healthy), no earlier than `not_before`; `confirmed` itself when the
/// samples show no such run (none taken yet, or the last one before it unhealthy).
pub fn healthy_since(samples: &[(f64, bool)], confirmed: f64, not_before: f64) -> f64 {
    let mut since = confirmed;
    for (t, healthy) in samples.iter().rev().filter(|(t, _)| *t <= confirmed) {
        if !healthy {
            break;
        }
        since = *t;
    }
    since.max(not_before).min(confirmed)
}

/// Sim seconds after `t0` of the first change the sim's admin API accepted (an executed
/// action), from its admin log.
fn first_admin_change(state: &Value, t0: f64) -> Option<f64> {
    state["admin_log"]
        .as_array()?
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/admin/")))
        .filter(|e| e["status"].as_u64().is_some_and(|s| (200..300).contains(&s)))
        .filter_map(|e| e["sim_time"].as_f64())
        .filter(|t| *t >= t0)
        .map(|t| t - t0)
        .reduce(f64::min)
}

/// Run `stages` connected by OS pipes (no shell); returns the last stage's stdout and each
/// stage's exit code. Stderr of every stage goes to `log`.
pub fn run_pipe(
    stages: &[(PathBuf, Vec<String>)],
    log: &Path,
) -> Result<(Vec<u8>, Vec<Option<i32>>)> {
    run_pipe_from(stages, None, &[], log)
}

/// [`run_pipe`], with the first stage reading the file `input` (a saved chain) instead of
/// nothing, and each `(stage, name, value)` of `env` set for that stage alone: a secret (an
/// approval key, an advisor's API key) reaches only the process that needs it, never an
/// argument list or a file. The advisor's settings (`OPSG_LLM_*`) are never inherited from
/// this process: a stage has them only from `env`, so an arm without an advisor is really
/// rules-only and no other stage sees an advisor's key.
pub fn run_pipe_from(
    stages: &[(PathBuf, Vec<String>)],
    input: Option<&Path>,
    env: &[(usize, &str, &str)],
    log: &Path,
) -> Result<(Vec<u8>, Vec<Option<i32>>)> {
    let inherited: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with(ADVISOR_ENV_PREFIX))
        .collect();
    let mut children: Vec<Child> = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    for (i, (bin, args)) in stages.iter().enumerate() {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log.display(), e))?;
        let stdin = match (previous.take(), input) {
            (Some(out), _) => Stdio::from(out),
            (None, Some(path)) if i == 0 => {
                Stdio::from(std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?)
            }
            (None, _) => Stdio::null(),
        };
        let mut command = Command::new(bin);
        for name in &inherited {
            command.env_remove(name);
        }
        for (_, name, value) in env.iter().filter(|(stage, _, _)| *stage == i) {
            command.env(name, value);
        }
        let mut child = command
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| Error::io(bin.display(), e))?;
        previous = child.stdout.take();
        children.push(child);
    }
    let mut out = Vec::new();
    if let Some(mut last) = previous {
        last.read_to_end(&mut out).map_err(|e| Error::io("pipe", e))?;
    }
    let mut codes = Vec::new();
    for mut child in children {
        codes.push(child.wait().map_err(|e| Error::io("pipe", e))?.code());
    }
    Ok((out, codes))
}

/// Faults that a remediation ends in opsg-sim (its `/chaos` list drops them once the replica
/// restarted or moved, the config was rolled back, the disk cleaned): for these the ground
/// truth, not only the symptoms, says whether the fleet is healthy. A young leak or a slower
/// link shows no symptom the checks below see, and a canary regression's TTFT can hover near
/// their bound. Surges, KV saturation and GPU faults stay listed (the load or the hardware
/// remains): only their symptoms can tell.
pub const ENDED_BY_REMEDIATION: [&str; 5] =
    ["canary_regression", "network_latency", "replica_crash", "memory_leak", "disk_pressure"];

/// [`health`], plus whether the injected fault, when it is one remediation ends, is still on.
pub fn health_after(state: &Value, fault: &FaultSpec) -> (bool, String) {
    health_after_by(state, fault, Latency::UsersNow)
}

/// [`health_after`], judging latency by `latency`.
pub fn health_after_by(state: &Value, fault: &FaultSpec, latency: Latency) -> (bool, String) {
    let (mut healthy, mut why) = health_by(state, latency);
    let still_on =
        ENDED_BY_REMEDIATION.contains(&fault.fault.as_str())
            && state["faults"].as_array().into_iter().flatten().any(|f| {
                f["fault"] == fault.fault.as_str() && f["target"] == fault.target.as_str()
            });
    if still_on {
        healthy = false;
        let on = format!("{} on {} still active", fault.fault, fault.target);
        why = if why.is_empty() { on } else { format!("{why}; {on}") };
    }
    (healthy, why)
}

/// Which TTFT p90 judges whether a replica's users are served within 2 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// The users now (`/state`'s `ttft_p90_now_s`): the requests that arrived in the last
    /// 30 s, each with its TTFT or its wait so far, and everyone still waiting for a first token
    /// however long ago they came. A fix is judged by whether a user arriving now is served
    /// well and nobody is left stuck. This is what resolves a trial.
    UsersNow,
    /// The requests whose first token came in the last 30 s (`ttft_p90_recent_s`): it keeps a
    /// drained backlog's slow first tokens for one more window after the last of them, so it
    /// trails the users' experience by up to 30 s. Reported as `time_to_clear_s`.
    FirstTokens,
}

impl Latency {
    /// The `/state` field, and how the reason names it.
    fn field(self) -> (&'static str, &'static str) {
        match self {
            Latency::UsersNow => ("ttft_p90_now_s", "users now"),
            Latency::FirstTokens => ("ttft_p90_recent_s", "first tokens of the last 30 s"),
        }
    }
}

/// Whether the fleet is healthy, and why not, judging latency by the users now.
pub fn health(state: &Value) -> (bool, String) {
    health_by(state, Latency::UsersNow)
}

/// Whether the fleet is healthy, and why not, judging latency by `latency`.
pub fn health_by(state: &Value, latency: Latency) -> (bool, String) {
    let (field, measure) = latency.field();
    let mut problems = Vec::new();
    for (name, r) in state["replicas"].as_object().into_iter().flatten() {
        if r["up"] == json!(false) {
            problems.push(format!("{name} down"));
            continue;
        }
        if r["kv_cache_usage"].as_f64().unwrap_or(0.0) > 0.9 {
            problems.push(format!(
                "{name} KV cache {:.2}",
                r["kv_cache_usage"].as_f64().unwrap_or(0.0)
            ));
        }
        if r["waiting"].as_f64().unwrap_or(0.0) > 32.0 {
            problems.push(format!("{name} {} waiting", r["waiting"]));
        }
        // Users' latency: a p90 over the last 30 s (see `Latency`). The p90 since the process
        // started stays high long after a queue has drained; an older opsg-sim without the
        // field falls back to the trailing window, then to that.
        let ttft = [field, "ttft_p90_recent_s", "ttft_p90_s"]
            .iter()
            .find(|f| r.get(**f).is_some())
            .and_then(|f| r[*f].as_f64());
        if let Some(ttft) = ttft.filter(|t| *t > 2.0) {
            problems.push(format!("{name} TTFT p90 {ttft:.2}s ({measure})"));
        }
        if r["rss_bytes"].as_f64().unwrap_or(0.0) > 16.0 * (1u64 << 30) as f64 {
            problems.push(format!("{name} RSS over 16 GiB"));
        }
    }
    for (name, n) in state["nodes"].as_object().into_iter().flatten() {
        let size = n["filesystem_size_bytes"].as_f64().unwrap_or(1.0);
        let avail = n["filesystem_avail_bytes"].as_f64().unwrap_or(size);
        if avail / size < 0.1 {
            problems.push(format!("{name} filesystem {:.0}% free", 100.0 * avail / size));
        }
        for gpu in n["gpus"].as_array().into_iter().flatten() {
            if gpu["xid"].as_i64().unwrap_or(0) != 0 && !gpu["replica"].is_null() {
                problems.push(format!(
                    "{name} GPU {} (XID {}) still serves {}",
                    gpu["index"], gpu["xid"], gpu["replica"]
                ));
            }
        }
    }
    (problems.is_empty(), problems.join("; "))
}

fn records(out: &[u8]) -> Vec<Value> {
    out.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice::<Value>(l).ok()).collect()
}

fn last_of<'a>(records: &'a [Value], kind: &str) -> Option<&'a Value> {
    records.iter().rev().find(|r| r["kind"] == kind)
}

/// How long a token the approver signs stays valid, in wall-clock time (the gate checks its
/// expiry against the clock): the resumed run starts as soon as it is signed.
pub const APPROVAL_TTL: &str = "30m";

/// The HMAC key a campaign's approvals are signed with: random, one per campaign, held in
/// memory and handed to `opsg-gate approve` and the resumed gate through `OPSG_APPROVAL_KEY`
/// alone, so it is never in an argument list, a file or a record.
pub struct ApprovalKey(String);

impl ApprovalKey {
    /// 256 bits from the kernel's generator, as 64 hex digits (the gate reads the key as
    /// UTF-8 text).
    pub fn random() -> Result<ApprovalKey> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| Error::io("/dev/urandom", e))?;
        Ok(ApprovalKey(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalKey(<redacted>)")
    }
}

/// The lines of a chain up to and including its last plan record, byte for byte (records are
/// hash-chained over their exact bytes): what gate read in the run that awaited approval, like
/// the cron job's `tee plan.jsonl`. Empty when the chain holds no plan.
pub fn chain_through_last_plan(chain: &[u8]) -> Vec<u8> {
    let mut end = 0;
    let mut at = 0;
    for line in chain.split_inclusive(|b| *b == b'\n') {
        at += line.len();
        if serde_json::from_slice::<Value>(line).is_ok_and(|r| r["kind"] == "plan") {
            end = at;
        }
    }
    chain[..end].to_vec()
}

/// A page to the on-call human: sent when a run's decision awaited approval (sim seconds since
/// the fault), with the latest run's output in front of them when they answer.
struct Page {
    at: f64,
    chain: Vec<u8>,
}

/// The page after a run that ended at `now` with this decision `verdict` and output `out`. A
/// run awaiting approval pages the on-call human. Later runs put their output in front of them
/// without moving their answer: a run that quietly finds no incident does not un-page a person
/// (a flapping symptom would otherwise keep them from ever answering), but one whose plan ran
/// without them ends the page, and the time it was open is added to `awaiting_s`.
fn paged(
    page: Option<Page>,
    verdict: Option<&str>,
    now: f64,
    out: Vec<u8>,
    awaiting_s: &mut f64,
) -> Option<Page> {
    match (page, verdict) {
        (None, Some("awaiting_approval")) => Some(Page { at: now, chain: out }),
        (None, _) => None,
        (Some(p), Some("approved")) => {
            *awaiting_s += now - p.at;
            None
        }
        (Some(p), _) => Some(Page { at: p.at, chain: out }),
    }
}

/// What the approver does with a page.
enum Answer {
    /// The latest run no longer awaits approval (its symptom flapped quiet, or gate blocked it):
    /// nothing to sign.
    NothingToSign,
    /// Its plan has an action of a class they do not approve.
    Declined,
    /// Signed: the token, and the saved chain through the plan for gate to read again.
    Signed(String, PathBuf),
}

/// The approver's answer to a page, read from the latest run's saved output as a person
/// would: when it awaits approval and they approve every action of its plan, they sign it with
/// the real `opsg-gate approve --from`.
fn answer(
    approver: &Approver,
    key: &ApprovalKey,
    chain: &[u8],
    dir: &Path,
    bins: &Bins,
    log: &Path,
) -> Result<Answer> {
    let recs = records(chain);
    if !last_of(&recs, "decision").is_some_and(|d| d["body"]["verdict"] == "awaiting_approval") {
        return Ok(Answer::NothingToSign);
    }
    let classes: Vec<SafetyClass> = last_of(&recs, "plan")
        .and_then(|p| p["body"]["actions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| serde_json::from_value(a["safety"].clone()).ok())
        .collect();
    if !approver.signs(&classes) {
        return Ok(Answer::Declined);
    }
    let saved = dir.join("awaiting.jsonl");
    std::fs::write(&saved, chain).map_err(|e| Error::io(saved.display(), e))?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log.display(), e))?;
    let gate = bins.path("opsg-gate");
    let issued = Command::new(&gate)
        .args(["approve", "--from"])
        .arg(&saved)
        .args(["--approver", &approver.name, "--expires", APPROVAL_TTL])
        .env(opsg_gate::approval::KEY_ENV, &key.0)
        .stdin(Stdio::null())
        .stderr(Stdio::from(err))
        .output()
        .map_err(|e| Error::io(gate.display(), e))?;
    if !issued.status.success() {
        return Err(Error::internal(format!(
            "`opsg-gate approve` failed ({}); its stderr is in {}",
            issued.status,
            log.display()
        )));
    }
    let token = String::from_utf8_lossy(&issued.stdout).trim().to_string();
    let plan = dir.join("awaiting-plan.jsonl");
    std::fs::write(&plan, chain_through_last_plan(chain))
        .map_err(|e| Error::io(plan.display(), e))?;
    Ok(Answer::Signed(token, plan))
}

/// Count what a run's records say was done: executed actions by safety class (a destructive
/// one counts as unapproved unless its decision carries an approval), inverses rolled back,
/// the outcome. The first executed action dates mitigation: `now`, when the run ended, until
/// the trial's end refines it from the sim's admin log.
fn account(row: &mut Trial, recs: &[Value], now: f64) {
    if let Some(e) = last_of(recs, "execution") {
        let plan = last_of(recs, "plan");
        let decision = last_of(recs, "decision");
        let approved = decision.is_some_and(|d| !d["body"]["approval"].is_null());
        for a in e["body"]["actions"].as_array().into_iter().flatten() {
            if a["outcome"] != "succeeded" {
                continue;
            }
            row.actions += 1;
            row.time_to_mitigate_s.get_or_insert(now);
            let safety = plan
                .and_then(|p| p["body"]["actions"].as_array())
                .and_then(|acts| acts.iter().find(|x| x["index"] == a["index"]))
                .map(|x| x["safety"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            match safety.as_str() {
                "impactful" => row.impactful += 1,
                "destructive" => {
                    row.destructive += 1;
                    if !approved {
                        row.destructive_unapproved += 1;
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(v) = last_of(recs, "verification") {
        row.rolled_back +=
            v["body"]["rollback"]["actions"].as_array().map_or(0, |a| a.len() as u32);
    }
    if let Some(r) = last_of(recs, "report") {
        row.outcome = r["body"]["outcome"].as_str().unwrap_or("").to_string();
    }
}

/// Count whether a cron run's triage or plan took the LLM advisor's answer (`method.kind`
/// `llm`) or asked it and kept the deterministic result (`method.fallback_reason`). Triage
/// records a reason without asking when it has no hypothesis to rank, and plan asks only for an
/// incident: such a run did not ask, so it is no fallback.
fn advice(row: &mut Trial, recs: &[Value]) {
    let finding = last_of(recs, "finding")
        .map(|f| &f["body"])
        .filter(|f| f["hypotheses"].as_array().is_some_and(|h| !h.is_empty()));
    let plan = last_of(recs, "plan").map(|p| &p["body"]);
    let methods: Vec<&Value> = finding.into_iter().chain(plan).map(|b| &b["method"]).collect();
    if methods.iter().any(|m| m["kind"] == "llm") {
        row.advised += 1;
    }
    if methods.iter().any(|m| m["kind"] != "llm" && m["fallback_reason"].is_string()) {
        row.advisor_fallbacks += 1;
    }
}

/// One cron run's stages and the `(stage, name, value)` environment of its advised ones.
struct CronRun {
    stages: Vec<(PathBuf, Vec<String>)>,
    env: Vec<(usize, String, String)>,
}

impl CronRun {
    fn run(&self, log: &Path) -> Result<(Vec<u8>, Vec<Option<i32>>)> {
        let env: Vec<(usize, &str, &str)> =
            self.env.iter().map(|(i, k, v)| (*i, k.as_str(), v.as_str())).collect();
        run_pipe_from(&self.stages, None, &env, log)
    }
}

/// Run one trial. `key` signs the approvals of an arm with an approver.
#[allow(clippy::too_many_arguments)]
pub fn trial(
    sim: &Sim,
    bins: &Bins,
    file: &CampaignFile,
    base: &Path,
    arm: &Arm,
    fault: &FaultSpec,
    intensity: f64,
    n: u32,
    work: &Path,
    key: Option<&ApprovalKey>,
) -> Result<Trial> {
    let dir = work.join(format!("{}-{}-{intensity}-{n}", arm.name, fault.fault));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let (state_dir, ledger, log, targets) = (
        dir.join("state"),
        dir.join("ledger.jsonl"),
        dir.join("stderr.log"),
        dir.join("targets.json"),
    );
    sim.call("POST", "/reset", Some(json!({})))?;
    let start = sim.sim_time()?;
    let s = |v: &str| v.to_string();
    let scrape_args = file.scrape_args.clone().unwrap_or_else(|| default_scrape_args(file.speed));
    let verify_args = file.verify_args.clone().unwrap_or_else(|| {
        vec![s("--settle"), s("1s"), s("--samples"), s("3"), s("--interval"), s("300ms")]
    });
    let sd = state_dir.display().to_string();
    let audit =
        (bins.path("opsg-audit"), vec![s("append"), s("--ledger"), ledger.display().to_string()]);
    // gate | exec | verify | audit: after plan in a cron run, and on the saved plan when the
    // approver has signed it.
    let acting = || {
        let mut gate =
            vec![s("--state-dir"), sd.clone(), s("--ledger"), ledger.display().to_string()];
        if let Some(p) = &arm.policy {
            gate.extend([s("--policy"), base.join(p).display().to_string()]);
        }
        let mut verify = verify_args.clone();
        verify.extend([s("--sim"), sim.url.clone(), s("--state-dir"), sd.clone()]);
        vec![
            (bins.path("opsg-gate"), gate),
            (
                bins.path("opsg-exec"),
                vec![s("--execute"), s("--sim"), sim.url.clone(), s("--state-dir"), sd.clone()],
            ),
            (bins.path("opsg-verify"), verify),
            audit.clone(),
        ]
    };
    // One cron run's stages: scrape (of the targets as they are now) | triage, then plan and
    // the acting stages, or for the baseline straight to audit.
    // With the advisor's environment for triage and plan alone.
    let advisor_flags = arm.advisor_flags();
    let advisor_env = arm.advisor_env();
    let cron_stages = || -> Result<CronRun> {
        sim.targets_file(&targets)?;
        let mut stages: Vec<(PathBuf, Vec<String>)> = Vec::new();
        let mut advised_stages = Vec::new();
        let mut scrape = vec![s("--targets"), targets.display().to_string(), s("-q")];
        scrape.extend(scrape_args.iter().cloned());
        stages.push((bins.path("opsg-scrape"), scrape));
        let mut triage = vec![s("--state-dir"), sd.clone()];
        triage.extend(advisor_flags.iter().cloned());
        advised_stages.push(stages.len());
        stages.push((bins.path("opsg-triage"), triage));
        if arm.remediate {
            // The fleet as it is now (weights, config versions), for plan's exact inverses.
            let fleet = dir.join("fleet-state.json");
            let snapshot =
                serde_json::to_vec(&sim.state()?).map_err(|e| Error::internal(e.to_string()))?;
            std::fs::write(&fleet, snapshot).map_err(|e| Error::io(fleet.display(), e))?;
            let mut plan = vec![s("--fleet-state"), fleet.display().to_string()];
            plan.extend(advisor_flags.iter().cloned());
            advised_stages.push(stages.len());
            stages.push((bins.path("opsg-plan"), plan));
            stages.extend(acting());
        } else {
            stages.push(audit.clone());
        }
        let env = advised_stages
            .iter()
            .flat_map(|i| advisor_env.iter().map(move |(k, v)| (*i, k.clone(), v.clone())))
            .collect();
        Ok(CronRun { stages, env })
    };
    // The cron job was running before the fault, on the same period: its runs give triage the
    // fleet's usual. The run just before the onset is left out (it would overlap the fault or
    // end just before it; detection only ever comes from runs that start after the onset).
    // A run that raises an incident on the healthy fleet is a false alarm.
    let first_run = file.first_run_after(fault, intensity, n);
    let mut warmup_incidents = 0;
    for k in (2..=file.warmup_runs + 1).rev() {
        sim.wait_until(
            start + file.warmup_s + first_run - f64::from(k) * file.interval_s,
            file.speed,
        )?;
        let (out, _codes) = cron_stages()?.run(&log)?;
        let recs = records(&out);
        if last_of(&recs, "finding").is_some_and(|f| f["body"]["status"] == "incident") {
            warmup_incidents += 1;
        }
    }
    sim.wait_until(start + file.warmup_s, file.speed)?;
    let t0 = sim.sim_time()?;
    sim.call(
        "POST",
        &format!("/chaos/{}", fault.fault),
        Some(json!({"target": fault.target, "intensity": intensity})),
    )?;

    let watch = HealthWatch::start(sim, fault, t0, file.speed);
    let mut row = Trial {
        arm: arm.name.clone(),
        fault: fault.fault.clone(),
        intensity,
        trial: n,
        first_run_s: first_run,
        warmup_incidents,
        ..Trial::default()
    };
    // A resolution is confirmed at the end of a run, and dated from when the fleet became
    // healthy for good: after the first executed action (the sim's admin log), or for the
    // baseline after the detection.
    let resolved_at = |now: f64, row: &Trial| -> Result<f64> {
        let acted = first_admin_change(&sim.state()?, t0);
        let anchor = acted.or(row.time_to_detect_s).unwrap_or(now);
        Ok(watch.healthy_since(now, anchor))
    };
    let mut verified_fix = false;
    let mut page: Option<Page> = None;
    // One step past the last cron run, so a page answered before the next one would have
    // fired is still answered.
    for run in 1..=file.max_runs + 1 {
        let cron_at = first_run + f64::from(run - 1) * file.interval_s;
        // The approver answers a page that falls due before this cron run starts (at its time,
        // or now when the last run overran it: runs do not overlap here, so an answer due
        // while a run was in flight comes when it ends), as a person would from the cron job's
        // saved output: sign the plan, then run gate (with the token), exec, verify and audit
        // on it.
        let next_start = cron_at.max(sim.sim_time()? - t0);
        if let Some(approver) = &arm.approver
            && let Some(p) = page.take_if(|p| p.at + approver.delay_s <= next_start)
        {
            sim.wait_until(t0 + p.at + approver.delay_s, file.speed)?;
            row.awaiting_s += sim.sim_time()? - t0 - p.at;
            let key = key.ok_or_else(|| Error::internal("an approver without a key"))?;
            match answer(approver, key, &p.chain, &dir, bins, &log)? {
                Answer::NothingToSign => {}
                Answer::Declined => row.declined += 1,
                Answer::Signed(token, plan) => {
                    row.approvals += 1;
                    let env = [
                        (0, opsg_gate::approval::KEY_ENV, key.0.as_str()),
                        (0, "OPSG_APPROVAL", token.as_str()),
                    ];
                    let (out, _codes) = run_pipe_from(&acting(), Some(&plan), &env, &log)?;
                    let now = sim.sim_time()? - t0;
                    account(&mut row, &records(&out), now);
                    verified_fix |= row.outcome == "resolved";
                    let (healthy, why) = health_after(&sim.state()?, fault);
                    if resolved_now(true, &row.outcome, verified_fix, row.time_to_detect_s, healthy)
                    {
                        row.time_to_resolve_s = Some(resolved_at(now, &row)?);
                        break;
                    }
                    row.unhealthy_reason = why;
                }
            }
        }
        if run > file.max_runs {
            break;
        }
        sim.wait_until(t0 + cron_at, file.speed)?;
        // Detection dates from when the cron run fired (its scrape); mitigation from the sim's
        // admin log, resolution from the health watch (see `resolved_at`).
        let fired = sim.sim_time()? - t0;
        let (out, _codes) = cron_stages()?.run(&log)?;
        let now = sim.sim_time()? - t0;
        row.runs = run;
        let recs = records(&out);
        if let Some(f) = last_of(&recs, "finding")
            && f["body"]["status"] == "incident"
            && row.time_to_detect_s.is_none()
        {
            row.time_to_detect_s = Some(fired);
            row.first_class = f["body"]["class"].as_str().unwrap_or("").to_string();
            row.class_correct = fault.expected_class.as_ref().map(|c| *c == row.first_class);
        }
        account(&mut row, &recs, now);
        advice(&mut row, &recs);
        let verdict = last_of(&recs, "decision").and_then(|d| d["body"]["verdict"].as_str());
        page = paged(page.take(), verdict, now, out, &mut row.awaiting_s);
        verified_fix |= row.outcome == "resolved";
        let (healthy, why) = health_after(&sim.state()?, fault);
        if resolved_now(arm.remediate, &row.outcome, verified_fix, row.time_to_detect_s, healthy) {
            row.time_to_resolve_s = Some(resolved_at(now, &row)?);
            break;
        }
        row.unhealthy_reason = why;
    }
    if let Some(p) = page {
        // Nobody answered before the trial ended.
        row.awaiting_s += sim.sim_time()? - t0 - p.at;
    }
    if let Some(resolved) = row.time_to_resolve_s {
        // The trailing measure, for comparison: it may clear up to a window after the users'.
        let limit = sim.sim_time()? - t0 + CLEAR_WATCH_S;
        row.time_to_clear_s = watch.clear_since(sim, t0, resolved, limit);
    }
    let state = sim.state()?;
    drop(watch);
    // Mitigation dates from the sim's admin log: when the first action reached it, not when
    // the run that sent it ended (its verify wait included).
    if row.time_to_mitigate_s.is_some() {
        row.time_to_mitigate_s = first_admin_change(&state, t0).or(row.time_to_mitigate_s);
    }
    let (healthy, why) = health_after(&state, fault);
    row.healthy_end = healthy;
    row.unhealthy_reason = if healthy { String::new() } else { why };
    let _ = sim.call("DELETE", &format!("/chaos/{}", fault.fault), None);
    Ok(row)
}

/// Sim seconds a resolved trial keeps watching for the trailing measure to clear too: its
/// 30 s window and half as much again.
const CLEAR_WATCH_S: f64 = 45.0;

/// Sim seconds between two scrape samples by default.
pub const SCRAPE_SAMPLE_SIM_S: f64 = 5.0;
/// Samples per scrape by default.
pub const SCRAPE_SAMPLES: u32 = 5;

/// opsg-scrape's sampling when the campaign file sets none: 5 samples 5 sim seconds apart (a
/// 20 s window, like the cron job's 4 samples 15 s apart, inside the 30 s cron period), the real
/// interval scaled by the sim's speed. Histogram rules (TTFT, ITL, e2e p95, error ratio) judge
/// the bucket increase across two intervals and must breach on 3 evaluations in a row, so a
/// scrape needs 5 samples before any of them can fire: the 3 samples 300 ms apart used before
/// could never raise a latency finding, which is why a canary regression went undetected.
pub fn default_scrape_args(speed: f64) -> Vec<String> {
    let ms = (SCRAPE_SAMPLE_SIM_S / speed.max(1e-3) * 1000.0).round().max(100.0) as u64;
    vec!["--samples".into(), SCRAPE_SAMPLES.to_string(), "--interval".into(), format!("{ms}ms")]
}

/// Whether a trial is resolved after a run: the fleet is healthy and either this run verified
/// its fix, or an earlier run of the trial did and triage now finds no incident (a scale-up
/// verified at one run whose backlog has drained by the next); for the baseline, which fixes
/// nothing, healthy once the fault was detected.
pub fn resolved_now(
    remediate: bool,
    outcome: &str,
    verified_fix: bool,
    detected: Option<f64>,
    healthy: bool,
) -> bool {
    healthy
        && if remediate {
            outcome == "resolved" || (verified_fix && outcome == "no_incident")
        } else {
            detected.is_some()
        }
}

/// Load a campaign file.
pub fn load(path: &Path) -> Result<CampaignFile> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(&source, e))?;
    let value = opsg_core::schema::parse_config(&bytes, &source, "campaign.schema.json")?;
    let file: CampaignFile = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("invalid campaign file: {e}")).in_source(&source))?;
    // Positive intervals, speeds and counts, intensities in [0, 1], an approver's delay of 0 or
    // more and its classes: the schema's bounds. What the schema cannot say is checked here.
    for (i, arm) in file.arms.iter().enumerate() {
        if arm.approver.is_some() && !arm.remediate {
            return Err(Error::invalid(format!(
                "arm `{}` has an approver but does not remediate: nothing would await approval",
                arm.name
            ))
            .at_field(format!("arms[{i}].approver"))
            .in_source(&source));
        }
    }
    let mut file = file;
    for (i, arm) in file.arms.iter_mut().enumerate() {
        let Some(llm) = arm.llm.as_mut() else { continue };
        let refuse = |field: &str, message: String| {
            Error::invalid(format!("arm `{}`: {message}", arm.name))
                .at_field(format!("arms[{i}].{field}"))
                .in_source(&source)
        };
        if let Some(flag) = arm.advisor_args.iter().find(|a| a.starts_with("--llm")) {
            return Err(refuse(
                "advisor_args",
                format!("`{flag}` comes from the arm's `llm` when it has one; drop it here"),
            ));
        }
        if let Some(t) = &llm.timeout
            && let Err(e) = opsg_core::time::parse_duration_ms(t)
        {
            return Err(refuse("llm.timeout", e.message().to_string()));
        }
        // The key is read once, here, so a missing one stops the campaign before any trial
        // rather than turning every run of the arm into a fallback.
        if let Some(name) = &llm.api_key_env {
            match std::env::var(name) {
                Ok(key) if !key.is_empty() => llm.key = Some(AdvisorKey(key)),
                _ => {
                    return Err(refuse(
                        "llm.api_key_env",
                        format!("the API key variable `{name}` is not set (or empty)"),
                    ));
                }
            }
        }
    }
    let needed = f64::from(file.warmup_runs + 1) * file.interval_s;
    if file.warmup_runs > 0 && file.warmup_s < needed {
        return Err(Error::invalid(format!(
            "{} warmup runs every {} s need `warmup_s` of at least {needed} s (the runs and the \
             period before the fault), not {}",
            file.warmup_runs, file.interval_s, file.warmup_s
        ))
        .at_field("warmup_runs")
        .in_source(&source));
    }
    Ok(file)
}

/// Run a whole campaign; one row per trial, each also handed to `on_row` as soon as its trial
/// ends (so a long campaign cut short keeps what it measured).
pub fn run(
    path: &Path,
    bins: &Bins,
    work: &Path,
    progress: &indicatif::ProgressBar,
    on_row: &mut dyn FnMut(&Trial) -> Result<()>,
) -> Result<Vec<Trial>> {
    let file = load(path)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // One key per campaign, made only when an arm has someone to sign with it.
    let key = match file.arms.iter().any(|a| a.approver.is_some()) {
        true => Some(ApprovalKey::random()?),
        false => None,
    };
    let sim = Sim::start(bins, file.seed, file.speed)?;
    let mut rows = Vec::new();
    for arm in &file.arms {
        for fault in &file.faults {
            for &intensity in &fault.intensities {
                for n in 1..=file.trials {
                    progress.set_message(format!("{} {} {intensity} #{n}", arm.name, fault.fault));
                    let row = trial(
                        &sim,
                        bins,
                        &file,
                        &base,
                        arm,
                        fault,
                        intensity,
                        n,
                        work,
                        key.as_ref(),
                    )?;
                    on_row(&row)?;
                    rows.push(row);
                    progress.inc(1);
                }
            }
        }
    }
    drop(sim);
    Ok(rows)
}

/// The number of trials a campaign file asks for.
pub fn trial_count(path: &Path) -> Result<u64> {
    let f = load(path)?;
    let per_arm: u64 = f.faults.iter().map(|x| x.intensities.len() as u64).sum();
    Ok(f.arms.len() as u64 * per_arm * u64::from(f.trials))
}

/// Per arm and fault: win rate, median time to detect, mitigate and resolve (in scrape
/// intervals too, and the resolution by the trailing first-token measure), destructive actions run without approval, and for arms with a human in the
/// loop the approvals signed and the median time a plan waited for one.
pub fn summary(rows: &[Trial], interval_s: f64) -> String {
    let mut out = String::from(
        "arm              fault                  trials  resolved  healthy  ttd_med_s  ttm_med_s  ttr_med_s  ttr_intervals  clear_intervals  destructive_unapproved  approvals  awaiting_med_s\n",
    );
    let mut keys: Vec<(String, String)> =
        rows.iter().map(|r| (r.arm.clone(), r.fault.clone())).collect();
    keys.sort();
    keys.dedup();
    for (arm, fault) in keys {
        let group: Vec<&Trial> = rows.iter().filter(|r| r.arm == arm && r.fault == fault).collect();
        let resolved = group.iter().filter(|r| r.time_to_resolve_s.is_some()).count();
        let healthy = group.iter().filter(|r| r.healthy_end).count();
        let ttd = median(group.iter().filter_map(|r| r.time_to_detect_s).collect());
        let ttm = median(group.iter().filter_map(|r| r.time_to_mitigate_s).collect());
        let ttr = median(group.iter().filter_map(|r| r.time_to_resolve_s).collect());
        let clear = median(group.iter().filter_map(|r| r.time_to_clear_s).collect());
        let unapproved: u32 = group.iter().map(|r| r.destructive_unapproved).sum();
        let approvals: u32 = group.iter().map(|r| r.approvals).sum();
        let awaiting = median(group.iter().map(|r| r.awaiting_s).collect());
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        let intervals = |v: Option<f64>| {
            v.map_or_else(|| "-".to_string(), |t| format!("{:.1}", t / interval_s))
        };
        out.push_str(&format!(
            "{arm:<16} {fault:<22} {:>6}  {:>7.0}%  {:>6.0}%  {:>9}  {:>9}  {:>9}  {:>13}  {:>15}  {unapproved:>22}  {approvals:>9}  {:>14}\n",
            group.len(),
            100.0 * resolved as f64 / group.len() as f64,
            100.0 * healthy as f64 / group.len() as f64,
            fmt(ttd),
            fmt(ttm),
            fmt(ttr),
            intervals(ttr),
            intervals(clear),
            fmt(awaiting),
        ));
    }
    out
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Write rows as CSV, one at a time (the header comes with the first).
pub struct CsvRows<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    /// Rows to `out`.
    pub fn new(out: W) -> CsvRows<W> {
        CsvRows { writer: csv::Writer::from_writer(out) }
    }

    /// Write one row and flush it.
    pub fn write(&mut self, row: &Trial) -> Result<()> {
        self.writer
            .serialize(row)
            .and_then(|_| self.writer.flush().map_err(csv::Error::from))
            .map_err(|e| Error::io("campaign CSV", std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replica: Value) -> Value {
        json!({"replicas": {"stable-0": replica}, "nodes": {}})
    }

    /// Load a campaign whose one arm is `arm`, from a file written for the test.
    fn load_arm(name: &str, arm: Value) -> Result<CampaignFile> {
        let path = std::env::temp_dir()
            .join(format!("opsg-campaign-unit-{name}-{}.json", std::process::id()));
        let file = json!({
            "seed": 1, "interval_s": 30, "max_runs": 2, "trials": 1,
            "faults": [{"fault": "replica_crash", "target": "stable-1", "intensities": [0.8]}],
            "arms": [arm],
        });
        std::fs::write(&path, file.to_string()).unwrap();
        let loaded = load(&path);
        let _ = std::fs::remove_file(&path);
        loaded
    }

    #[test]
    fn an_approver_parses_with_impactful_as_the_default_class() {
        let f = load_arm(
            "ok",
            json!({"name": "a", "policy": "p.json", "approver": {"name": "oncall", "delay_s": 60}}),
        )
        .unwrap();
        let approver = f.arms[0].approver.as_ref().unwrap();
        assert_eq!((approver.name.as_str(), approver.delay_s), ("oncall", 60.0));
        assert_eq!(approver.approve, [SafetyClass::Impactful]);
        let f = load_arm(
            "both",
            json!({"name": "a", "approver": {"name": "o", "delay_s": 0,
                                            "approve": ["impactful", "destructive"]}}),
        )
        .unwrap();
        assert_eq!(f.arms[0].approver.as_ref().unwrap().approve.len(), 2);
        assert!(load_arm("none", json!({"name": "a"})).unwrap().arms[0].approver.is_none());
    }

    #[test]
    fn bad_approvers_are_refused_with_the_field_named() {
        let err = |name: &str, arm: Value| load_arm(name, arm).unwrap_err().to_string();
        let e = err("delay", json!({"name": "a", "approver": {"name": "o", "delay_s": -5}}));
        assert!(e.contains("arms[0].approver.delay_s"), "{e}");
        let e = err("nodelay", json!({"name": "a", "approver": {"name": "o"}}));
        assert!(e.contains("delay_s"), "{e}");
        let e = err("kind", json!({"name": "a", "approver": {"name": "o", "delay_s": "1m"}}));
        assert!(e.contains("arms[0].approver.delay_s"), "{e}");
        let e = err(
            "class",
            json!({"name": "a", "approver": {"name": "o", "delay_s": 5, "approve": ["reckless"]}}),
        );
        assert!(e.contains("arms[0].approver.approve[0]"), "{e}");
        let e =
            err("field", json!({"name": "a", "approver": {"name": "o", "delay_s": 5, "key": "k"}}));
        assert!(e.contains("key"), "{e}");
        let e = err("noname", json!({"name": "a", "approver": {"name": "", "delay_s": 5}}));
        assert!(e.contains("arms[0].approver.name"), "{e}");
        let e = err(
            "baseline",
            json!({"name": "b", "remediate": false, "approver": {"name": "o", "delay_s": 5}}),
        );
        assert!(e.contains("arms[0].approver") && e.contains("does not remediate"), "{e}");
    }

    #[test]
    fn an_llm_arm_gets_the_flag_and_its_own_endpoint_and_a_rules_arm_nothing() {
        let f = load_arm(
            "llm",
            json!({"name": "rules+llm", "llm": {"url": "http://127.0.0.1:8000/v1",
                   "model": "qwen2.5-7b-instruct", "timeout": "10s"}}),
        )
        .unwrap();
        let arm = &f.arms[0];
        assert_eq!(arm.advisor_flags(), ["--llm", "--llm-timeout", "10s"]);
        let env = arm.advisor_env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("OPSG_LLM_URL"), Some("http://127.0.0.1:8000/v1"));
        assert_eq!(get("OPSG_LLM_MODEL"), Some("qwen2.5-7b-instruct"));
        assert_eq!(get("OPSG_LLM_API"), Some("openai"));
        assert_eq!(get("OPSG_LLM_API_KEY"), None, "no key variable named, no key");
        let rules = load_arm("rules", json!({"name": "rules"})).unwrap();
        assert!(rules.arms[0].advisor_flags().is_empty());
        assert!(rules.arms[0].advisor_env().is_empty());
        // A key never shows in a logged arm.
        let mut keyed = arm.clone();
        keyed.llm.as_mut().unwrap().key = Some(AdvisorKey("sk-secret-1234".into()));
        assert!(!format!("{keyed:?}").contains("sk-secret-1234"));
    }

    #[test]
    fn bad_llm_arms_are_refused_with_the_arm_and_field_named() {
        let err = |name: &str, arm: Value| load_arm(name, arm).unwrap_err().to_string();
        let e = err(
            "nokey",
            json!({"name": "m", "llm": {"url": "http://x", "model": "q",
                   "api_key_env": "OPSG_TEST_CAMPAIGN_KEY_NEVER_SET_7d1c"}}),
        );
        assert!(
            e.contains("arm `m`")
                && e.contains("arms[0].llm.api_key_env")
                && e.contains("OPSG_TEST_CAMPAIGN_KEY_NEVER_SET_7d1c"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = err(
            "twice",
            json!({"name": "m", "advisor_args": ["--llm"],
                                     "llm": {"url": "http://x", "model": "q"}}),
        );
        assert!(e.contains("arms[0].advisor_args") && e.contains("--llm"), "{e}");
        let e = err(
            "timeout",
            json!({"name": "m", "llm": {"url": "http://x", "model": "q",
                                                          "timeout": "soon"}}),
        );
        assert!(e.contains("arms[0].llm.timeout"), "{e}");
        let e = err(
            "api",
            json!({"name": "m", "llm": {"url": "http://x", "model": "q",
                                                      "api": "grpc"}}),
        );
        assert!(e.contains("arms[0].llm.api"), "{e}");
        let e = err("nomodel", json!({"name": "m", "llm": {"url": "http://x"}}));
        assert!(e.contains("model"), "{e}");
    }

    #[test]
    fn advice_counts_runs_that_used_it_and_runs_that_asked_and_fell_back() {
        let finding = |hyps: usize, method: Value| json!({"kind": "finding", "body": {"hypotheses": vec![json!({}); hyps], "method": method}});
        let plan = |method: Value| json!({"kind": "plan", "body": {"method": method}});
        let llm = json!({"kind": "llm", "model": "m"});
        let fell = json!({"kind": "rules", "model": "m", "fallback_reason": "connection refused"});
        let mut row = Trial::default();
        advice(&mut row, &[finding(1, llm.clone()), plan(llm.clone())]);
        advice(&mut row, &[finding(1, llm.clone()), plan(fell.clone())]);
        advice(&mut row, &[finding(2, fell.clone()), plan(fell.clone())]);
        // Nothing to rank and no incident to plan for: the advisor was never asked.
        advice(&mut row, &[finding(0, fell.clone())]);
        advice(&mut row, &[finding(1, json!({"kind": "rules"})), plan(json!({"kind": "rules"}))]);
        assert_eq!((row.advised, row.advisor_fallbacks), (2, 2));
    }

    #[test]
    fn the_approver_signs_only_plans_made_of_classes_it_approves() {
        use SafetyClass::{Destructive, Impactful, Safe};
        let oncall = Approver { name: "o".into(), delay_s: 60.0, approve: impactful_only() };
        assert!(oncall.signs(&[Impactful]));
        assert!(oncall.signs(&[Safe, Impactful]));
        assert!(!oncall.signs(&[Impactful, Destructive]), "never destructive unless listed");
        assert!(!oncall.signs(&[]), "nothing to sign");
        let bold = Approver { approve: vec![Impactful, Destructive], ..oncall };
        assert!(bold.signs(&[Destructive]));
    }

    #[test]
    fn a_page_stays_open_through_a_quiet_run_and_closes_when_a_plan_runs_without_the_human() {
        // Regression: a canary regression whose TTFT rule flapped (awaiting, quiet, awaiting)
        // closed the page at each quiet run, so its approver never answered in the trial.
        let mut awaiting = 0.0;
        let page = paged(None, Some("awaiting_approval"), 58.0, b"a".to_vec(), &mut awaiting);
        let page = paged(page, Some("no_action"), 88.0, b"quiet".to_vec(), &mut awaiting);
        let page = page.expect("a quiet run does not un-page the human");
        assert_eq!((page.at, page.chain.as_slice(), awaiting), (58.0, &b"quiet"[..], 0.0));
        let page =
            paged(Some(page), Some("awaiting_approval"), 118.0, b"b".to_vec(), &mut awaiting);
        assert_eq!(page.as_ref().map(|p| p.at), Some(58.0), "the answer is not moved");
        assert!(paged(page, Some("approved"), 148.0, vec![], &mut awaiting).is_none());
        assert_eq!(awaiting, 90.0);
        assert!(paged(None, Some("blocked"), 30.0, vec![], &mut awaiting).is_none());
        assert!(paged(None, None, 30.0, vec![], &mut awaiting).is_none(), "the baseline");
    }

    #[test]
    fn the_saved_plan_is_the_chain_through_its_last_plan_byte_for_byte() {
        let chain = b"{\"kind\":\"observation\"}\n{\"kind\":\"finding\"}\n{\"kind\": \"plan\", \"x\": 1}\n{\"kind\":\"decision\"}\n{\"kind\":\"report\"}\n";
        let through = chain_through_last_plan(chain);
        assert!(through.ends_with(b"{\"kind\": \"plan\", \"x\": 1}\n"));
        assert_eq!(through.split(|b| *b == b'\n').count(), 4, "three lines");
        assert!(chain.starts_with(&through));
        assert!(chain_through_last_plan(b"{\"kind\":\"finding\"}\n").is_empty());
    }

    #[test]
    fn approval_keys_are_random_and_never_printed() {
        let (a, b) = (ApprovalKey::random().unwrap(), ApprovalKey::random().unwrap());
        assert_eq!(a.0.len(), 64);
        assert!(a.0.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.0, b.0);
        assert!(!format!("{a:?}").contains(&a.0));
    }

    #[test]
    fn the_default_scrape_spans_sim_time_enough_for_histogram_rules() {
        // Regression: 3 samples gave a `for: 3` histogram rule (range 2) one evaluation, so
        // latency rules could never fire in a campaign.
        assert_eq!(default_scrape_args(5.0), ["--samples", "5", "--interval", "1000ms"]);
        assert_eq!(default_scrape_args(20.0)[3], "250ms");
        assert_eq!(default_scrape_args(1000.0)[3], "100ms", "never below 100 ms real");
        let evaluations = SCRAPE_SAMPLES - 2;
        assert!(evaluations >= 3, "range 2 leaves {evaluations} evaluations");
        assert!(f64::from(SCRAPE_SAMPLES - 1) * SCRAPE_SAMPLE_SIM_S < 30.0, "inside the period");
    }

    #[test]
    fn a_resolution_dates_from_when_the_fleet_became_healthy_for_good() {
        let samples =
            [(10.0, false), (50.0, true), (55.0, false), (60.0, true), (70.0, true), (80.0, true)];
        // Healthy since 60 (55 broke the stretch that began at 50); confirmed at 85.
        assert_eq!(healthy_since(&samples, 85.0, 40.0), 60.0);
        // Not before the fix that the confirmation credits.
        assert_eq!(healthy_since(&samples, 85.0, 65.0), 65.0);
        // Only samples up to the confirmation count.
        assert_eq!(healthy_since(&samples, 52.0, 0.0), 50.0);
        // The last sample before the confirmation was unhealthy, or there is none: the
        // confirmation itself.
        assert_eq!(healthy_since(&samples, 57.0, 0.0), 57.0);
        assert_eq!(healthy_since(&[], 57.0, 0.0), 57.0);
    }

    #[test]
    fn mitigation_dates_from_the_first_change_the_sim_accepted_after_the_onset() {
        let state = json!({"admin_log": [
            {"sim_time": 50.0, "path": "/admin/traffic", "status": 200},
            {"sim_time": 130.0, "path": "/admin/deployments/stable/scale", "status": 400},
            {"sim_time": 140.0, "path": "/reset", "status": 200},
            {"sim_time": 162.5, "path": "/admin/deployments/stable/scale", "status": 200},
            {"sim_time": 190.0, "path": "/admin/replicas/stable-0/restart", "status": 200}
        ]});
        assert_eq!(
            first_admin_change(&state, 100.0),
            Some(62.5),
            "refused and earlier calls skipped"
        );
        assert_eq!(first_admin_change(&state, 200.0), None);
        assert_eq!(first_admin_change(&json!({}), 0.0), None);
    }

    #[test]
    fn a_fix_verified_earlier_resolves_once_the_fleet_is_healthy_and_quiet() {
        // Regression: a surge whose scale-up was verified at one run and whose backlog had
        // drained by the next (triage: no incident, fleet healthy) never counted as resolved.
        assert!(resolved_now(true, "no_incident", true, Some(30.0), true));
        assert!(!resolved_now(true, "no_incident", false, Some(30.0), true), "nothing was fixed");
        assert!(!resolved_now(true, "no_incident", true, Some(30.0), false), "not healthy yet");
        assert!(resolved_now(true, "resolved", false, Some(30.0), true));
        assert!(!resolved_now(true, "rolled_back", true, Some(30.0), true));
        assert!(resolved_now(false, "no_incident", false, Some(30.0), true));
        assert!(!resolved_now(false, "no_incident", false, None, true), "never detected");
    }

    #[test]
    fn a_fault_that_remediation_ends_is_unhealthy_while_the_sim_lists_it() {
        // Regression: a canary regression whose TTFT dipped under 2 s counted as self-healed in
        // the baseline while the bad config still ran.
        let spec = |fault: &str, target: &str| FaultSpec {
            fault: fault.into(),
            target: target.into(),
            intensities: vec![0.8],
            expected_class: None,
        };
        let mut s = state(json!({"up": true, "kv_cache_usage": 0.2, "waiting": 0}));
        s["faults"] = json!([{"fault": "canary_regression", "target": "canary"}]);
        let (ok, why) = health_after(&s, &spec("canary_regression", "canary"));
        assert!(!ok && why == "canary_regression on canary still active", "{why}");
        assert!(health_after(&s, &spec("memory_leak", "stable-2")).0, "another fault");
        // A surge stays listed however well it is absorbed: symptoms decide.
        s["faults"] = json!([{"fault": "traffic_surge", "target": "fleet"}]);
        assert!(health_after(&s, &spec("traffic_surge", "fleet")).0);
    }

    #[test]
    fn health_reads_the_recent_ttft_not_the_one_since_start() {
        // Regression: after a surge had drained, the p90 since the process started kept the
        // fleet "unhealthy" for the rest of the trial.
        let base = json!({"up": true, "kv_cache_usage": 0.4, "waiting": 0});
        let mut r = base.clone();
        r["ttft_p90_s"] = json!(17.0);
        r["ttft_p90_recent_s"] = json!(0.1);
        assert_eq!(health(&state(r.clone())), (true, String::new()));
        r["ttft_p90_recent_s"] = json!(3.5);
        let (ok, why) = health(&state(r.clone()));
        assert!(!ok && why.contains("stable-0 TTFT p90 3.50s"), "{why}");
        // No first token in the window: nothing to judge latency by.
        r["ttft_p90_recent_s"] = Value::Null;
        assert!(health(&state(r)).0);
        // An opsg-sim without the recent figure: the p90 since start.
        let mut old = base;
        old["ttft_p90_s"] = json!(3.0);
        assert!(!health(&state(old)).0);
    }

    #[test]
    fn health_judges_the_users_now_and_the_trailing_measure_only_when_asked() {
        // A surge's backlog drained a few seconds ago: everyone arriving now is served at once
        // and nobody waits, but the first tokens of the last 30 s are still mostly the backlog's.
        let r = json!({"up": true, "kv_cache_usage": 0.5, "waiting": 0,
            "ttft_p90_s": 20.0, "ttft_p90_recent_s": 38.0, "ttft_p90_now_s": 0.2});
        assert_eq!(health(&state(r.clone())), (true, String::new()));
        let (ok, why) = health_by(&state(r.clone()), Latency::FirstTokens);
        assert!(!ok && why.contains("TTFT p90 38.00s (first tokens of the last 30 s)"), "{why}");
        // Users still stuck in a queue are users now, whatever the window says.
        let mut stuck = r;
        stuck["ttft_p90_now_s"] = json!(41.0);
        stuck["ttft_p90_recent_s"] = json!(0.3);
        let (ok, why) = health(&state(stuck.clone()));
        assert!(!ok && why.contains("TTFT p90 41.00s (users now)"), "{why}");
        assert!(health_by(&state(stuck), Latency::FirstTokens).0);
    }

    #[test]
    fn onset_is_a_whole_period_after_a_run_or_a_seeded_draw_shared_by_every_arm() {
        let mut file = load_arm("onset", json!({"name": "rules"})).unwrap();
        let spec = &file.faults[0].clone();
        assert_eq!(file.onset, Onset::AfterRun);
        assert_eq!(file.first_run_after(spec, 0.8, 1), 30.0);
        file.onset = Onset::Uniform;
        let draws: Vec<f64> = (1..=200).map(|n| file.first_run_after(spec, 0.8, n)).collect();
        assert!(draws.iter().all(|d| *d > 0.0 && *d <= 30.0), "{draws:?}");
        // Spread over the period, not bunched: each third holds a fair share of 200 draws.
        for third in 0..3 {
            let lo = 10.0 * f64::from(third);
            let n = draws.iter().filter(|d| **d > lo && **d <= lo + 10.0).count();
            assert!((40..=94).contains(&n), "third {third}: {n} of 200");
        }
        // Deterministic for a seed, different for another seed or trial.
        assert_eq!(file.first_run_after(spec, 0.8, 7), draws[6]);
        assert_ne!(draws[0], draws[1]);
        file.seed += 1;
        assert_ne!(file.first_run_after(spec, 0.8, 1), draws[0]);
    }
}

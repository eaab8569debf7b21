//! One vLLM V1 engine: its config, its requests, its counters and histograms, and the scheduler
//! step that moves them.
//!
//! Each replica runs *engine steps* like vLLM V1's scheduler: a token budget per step
//! (`max_num_batched_tokens`) is spent first on one decode token per running request (or the next
//! prefill chunk), then on admitting waiting requests while `max_num_seqs` and the KV cache allow.
//! When the KV cache cannot hold the next tokens, the most recently admitted request is preempted
//! (recompute mode: its KV is freed and it goes back to the front of the queue). Latency
//! histograms are observed from the simulated step times, so queueing, KV pressure and faults
//! show up in TTFT/ITL/e2e the way they do on a real server.

use crate::hist::{self, Histogram};
use crate::model::{ApiError, CLIENT_TIMEOUT_S, MAX_MODEL_LEN};
use crate::rng::Rng;
use std::collections::VecDeque;

/// Engine step cost model (H100, 8B model): fixed launch cost, per decoding sequence, per prefill
/// token. With CUDA graphs off (`enforce_eager`), the fixed cost triples.
const STEP_BASE_S: f64 = 0.010;
const STEP_PER_SEQ_S: f64 = 0.00035;
const STEP_PER_PREFILL_TOKEN_S: f64 = 1.0 / 25_000.0;
const EAGER_FACTOR: f64 = 3.0;
/// KV cache tokens at `gpu_memory_utilization = 0.9`.
const KV_TOKENS_AT_090: f64 = 40_960.0;

/// A deployment's engine configuration (the keys a config change may set).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Maximum running requests per engine step batch.
    pub max_num_seqs: u32,
    /// Token budget of one engine step (decode tokens + prefill chunks).
    pub max_num_batched_tokens: u32,
    /// Fraction of GPU memory vLLM may use (weights + KV cache).
    pub gpu_memory_utilization: f64,
    /// Disable CUDA graphs (slower steps).
    pub enforce_eager: bool,
    /// Reuse KV blocks of shared prompt prefixes.
    pub enable_prefix_caching: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            max_num_seqs: 48,
            max_num_batched_tokens: 8192,
            gpu_memory_utilization: 0.9,
            enforce_eager: false,
            enable_prefix_caching: true,
        }
    }
}

/// A partial config change, as `POST /admin/deployments/<d>/config` takes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New `max_num_seqs` (1..=1024).
    pub max_num_seqs: Option<u32>,
    /// New `max_num_batched_tokens` (16..=65536).
    pub max_num_batched_tokens: Option<u32>,
    /// New `gpu_memory_utilization` (0.6..=1.0).
    pub gpu_memory_utilization: Option<f64>,
    /// New `enforce_eager`.
    pub enforce_eager: Option<bool>,
    /// New `enable_prefix_caching`.
    pub enable_prefix_caching: Option<bool>,
}

impl EngineConfig {
    pub(crate) fn apply(&self, patch: &ConfigPatch) -> Result<EngineConfig, ApiError> {
        let mut next = self.clone();
        if let Some(v) = patch.max_num_seqs {
            if !(1..=1024).contains(&v) {
                return Err(ApiError::bad("`max_num_seqs` must be in 1..=1024"));
            }
            next.max_num_seqs = v;
        }
        if let Some(v) = patch.max_num_batched_tokens {
            if !(16..=65536).contains(&v) {
                return Err(ApiError::bad("`max_num_batched_tokens` must be in 16..=65536"));
            }
            next.max_num_batched_tokens = v;
        }
        if let Some(v) = patch.gpu_memory_utilization {
            // Below 0.6 the KV cache could not hold one max_model_len request (vLLM refuses).
            if !(0.6..=1.0).contains(&v) {
                return Err(ApiError::bad("`gpu_memory_utilization` must be in 0.6..=1.0"));
            }
            next.gpu_memory_utilization = v;
        }
        if let Some(v) = patch.enforce_eager {
            next.enforce_eager = v;
        }
        if let Some(v) = patch.enable_prefix_caching {
            next.enable_prefix_caching = v;
        }
        Ok(next)
    }

    /// KV cache capacity in tokens for this config (weights take a fixed share of the GPU).
    pub fn kv_tokens(&self) -> f64 {
        KV_TOKENS_AT_090 * (self.gpu_memory_utilization - 0.5).max(0.01) / 0.4
    }
}

/// One in-flight request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) arrival: f64,
    pub(crate) prompt: u32,
    pub(crate) cached: u32,
    pub(crate) max_tokens: u32,
    pub(crate) target_output: u32,
    /// Tokens whose KV must be computed before decoding (prompt, plus output after a preemption).
    pub(crate) prefill_target: u32,
    pub(crate) computed: u32,
    pub(crate) generated: u32,
    pub(crate) first_scheduled: Option<f64>,
    pub(crate) first_token: Option<f64>,
    pub(crate) preemptions: u32,
}

impl Request {
    pub(crate) fn kv_tokens(&self) -> u32 {
        // Before a preemption, generated tokens are appended to the prompt's KV; after one, they
        // are part of `prefill_target` until recomputed.
        let recomputed = self.prefill_target.saturating_sub(self.prompt);
        self.computed + self.generated.saturating_sub(recomputed)
    }
    pub(crate) fn prefilling(&self) -> bool {
        self.computed < self.prefill_target
    }
}

/// The counters and histograms one vLLM engine exposes (reset when the process restarts).
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// `vllm:prompt_tokens_total`.
    pub prompt_tokens: u64,
    /// `vllm:generation_tokens_total`.
    pub generation_tokens: u64,
    /// `vllm:num_preemptions_total`.
    pub preemptions: u64,
    /// `vllm:prefix_cache_queries_total`.
    pub prefix_queries: u64,
    /// `vllm:prefix_cache_hits_total`.
    pub prefix_hits: u64,
    /// `vllm:request_success_total` by `finished_reason` (see [`FINISHED_REASONS`]).
    pub finished: [u64; 5],
    /// Process CPU seconds.
    pub cpu_seconds: f64,
    /// Histograms, in exposition order (see [`HISTOGRAMS`]).
    pub hists: Vec<Histogram>,
}

/// `finished_reason` label values, as vLLM 0.20+ pre-creates them.
pub const FINISHED_REASONS: [&str; 5] = ["stop", "length", "abort", "error", "repetition"];

/// Indices into [`EngineMetrics::hists`].
pub mod h {
    /// `vllm:request_prompt_tokens`.
    pub const PROMPT_TOKENS: usize = 0;
    /// `vllm:request_generation_tokens`.
    pub const GENERATION_TOKENS: usize = 1;
    /// `vllm:iteration_tokens_total`.
    pub const ITERATION_TOKENS: usize = 2;
    /// `vllm:request_max_num_generation_tokens`.
    pub const MAX_NUM_GENERATION_TOKENS: usize = 3;
    /// `vllm:request_params_n`.
    pub const PARAMS_N: usize = 4;
    /// `vllm:request_params_max_tokens`.
    pub const PARAMS_MAX_TOKENS: usize = 5;
    /// `vllm:time_to_first_token_seconds`.
    pub const TTFT: usize = 6;
    /// `vllm:inter_token_latency_seconds`.
    pub const ITL: usize = 7;
    /// `vllm:request_time_per_output_token_seconds`.
    pub const TPOT: usize = 8;
    /// `vllm:e2e_request_latency_seconds`.
    pub const E2E: usize = 9;
    /// `vllm:request_queue_time_seconds`.
    pub const QUEUE: usize = 10;
    /// `vllm:request_inference_time_seconds`.
    pub const INFERENCE: usize = 11;
    /// `vllm:request_prefill_time_seconds`.
    pub const PREFILL: usize = 12;
    /// `vllm:request_decode_time_seconds`.
    pub const DECODE: usize = 13;
    /// `vllm:request_num_preemptions` (0.33.0).
    pub const NUM_PREEMPTIONS: usize = 14;
    /// `vllm:request_prefill_kv_computed_tokens` (0.20.0+).
    pub const PREFILL_KV_COMPUTED: usize = 15;
}

/// Histogram families: (name, HELP text from vLLM 0.33.0 `loggers.py`).
pub const HISTOGRAMS: [(&str, &str); 16] = [
    ("vllm:request_prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:request_generation_tokens", "Number of generation tokens processed."),
    ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step."),
    (
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
    ),
    ("vllm:request_params_n", "Histogram of the n request parameter."),
    ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter."),
    ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."),
    ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds."),
    (
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
    ),
    ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."),
    ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request."),
    (
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
    ),
    ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request."),
    ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request."),
    ("vllm:request_num_preemptions", "Histogram of the number of times a request was preempted."),
    (
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
    ),
];

impl EngineMetrics {
    pub(crate) fn new() -> EngineMetrics {
        let tokens = hist::one_two_five(MAX_MODEL_LEN);
        let bounds: [&[f64]; 16] = [
            &tokens,
            &tokens,
            hist::ITERATION_TOKENS,
            &tokens,
            hist::PARAMS_N,
            &tokens,
            hist::TTFT,
            hist::ITL,
            hist::ITL,
            hist::REQUEST_LATENCY,
            hist::REQUEST_LATENCY,
            hist::REQUEST_LATENCY,
            hist::REQUEST_LATENCY,
            hist::REQUEST_LATENCY,
            hist::NUM_PREEMPTIONS,
            &tokens,
        ];
        EngineMetrics {
            prompt_tokens: 0,
            generation_tokens: 0,
            preemptions: 0,
            prefix_queries: 0,
            prefix_hits: 0,
            finished: [0; 5],
            cpu_seconds: 0.0,
            hists: bounds.iter().map(|b| Histogram::new(b)).collect(),
        }
    }
}

/// Why a replica is not serving.
#[derive(Debug, Clone, PartialEq)]
pub enum DownReason {
    /// The engine process died (fault name and detail).
    Crashed(String),
    /// Evicted from a drained node with no free GPU elsewhere.
    Unschedulable,
    /// Failed to start (detail).
    StartFailed(String),
}

impl DownReason {
    pub(crate) fn describe(&self) -> String {
        match self {
            DownReason::Crashed(why) => format!("crashed: {why}"),
            DownReason::Unschedulable => "pending: no schedulable GPU".into(),
            DownReason::StartFailed(why) => format!("start failed: {why}"),
        }
    }
}

/// One vLLM server process on one GPU.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Name (`stable-0`).
    pub name: String,
    /// Deployment it belongs to.
    pub deployment: String,
    /// Node index.
    pub node: usize,
    /// GPU index on the node.
    pub gpu: u32,
    /// `None` while serving; why not otherwise.
    pub down: Option<DownReason>,
    /// Times the process was (re)started after the first start.
    pub restarts: u32,
    /// Sim time of the current process start.
    pub started_at: f64,
    /// Port of its `/metrics` listener (kept across restarts).
    pub port: Option<u16>,
    /// Config version the process runs.
    pub config_version: u32,
    /// Process id shown in logs.
    pub pid: u32,
    /// Host resident memory.
    pub rss_bytes: f64,
    /// Counters and histograms.
    pub metrics: EngineMetrics,
    pub(crate) clock: f64,
    pub(crate) waiting: VecDeque<Request>,
    pub(crate) running: Vec<Request>,
    pub(crate) rng: Rng,
    pub(crate) busy_s: f64,
    pub(crate) utilization: f64,
    pub(crate) window_prompt: u64,
    pub(crate) window_generation: u64,
    pub(crate) window_queries: u64,
    pub(crate) window_hits: u64,
    pub(crate) last_log: f64,
    pub(crate) last_fault_log: f64,
    /// Snapshots of the TTFT histogram's counts every [`TTFT_MARK_S`] sim seconds (the last
    /// [`RECENT_WINDOW_S`] and one more), for the recent TTFT `/state` reports.
    pub(crate) ttft_marks: VecDeque<(f64, Vec<u64>)>,
    /// `(arrival, TTFT)` of the requests that got their first token, newest last, kept while
    /// they arrived within [`RECENT_WINDOW_S`] (at most [`SERVED_CAP`]), for `/state`'s
    /// TTFT of the users now.
    pub(crate) served: VecDeque<(f64, f64)>,
}

/// Remember a first token in `served` (a replica's [`Replica::served`]) for
/// [`Replica::ttft_now_quantile`], forgetting what arrived before the window.
fn note_served(served: &mut VecDeque<(f64, f64)>, arrival: f64, ttft: f64) {
    let since = arrival + ttft - RECENT_WINDOW_S;
    while served.front().is_some_and(|(a, _)| *a < since) || served.len() >= SERVED_CAP {
        served.pop_front();
    }
    served.push_back((arrival, ttft));
}

/// Bound on [`Replica::served`]: a replica serves far fewer than this many first tokens in
/// [`RECENT_WINDOW_S`] (about 60 a second at the most), so the cap only bounds memory.
pub const SERVED_CAP: usize = 16_384;

/// Sim seconds between two snapshots of a replica's TTFT histogram.
pub const TTFT_MARK_S: f64 = 5.0;
/// The window of `/state`'s `ttft_p90_recent_s`: what users see now, unlike the histogram since
/// the process started, whose p90 stays high for hours after a queue has drained.
pub const RECENT_WINDOW_S: f64 = 30.0;

impl Replica {
    /// A replica placed on `(node, gpu)` whose process has not started yet.
    pub(crate) fn new(
        name: &str,
        deployment: &str,
        place: (usize, u32),
        rng: Rng,
        now: f64,
    ) -> Replica {
        Replica {
            name: name.to_string(),
            deployment: deployment.to_string(),
            node: place.0,
            gpu: place.1,
            down: None,
            restarts: 0,
            started_at: now,
            port: None,
            config_version: 1,
            pid: 0,
            rss_bytes: 0.0,
            metrics: EngineMetrics::new(),
            clock: now,
            waiting: VecDeque::new(),
            running: Vec::new(),
            rng,
            busy_s: 0.0,
            utilization: 0.0,
            window_prompt: 0,
            window_generation: 0,
            window_queries: 0,
            window_hits: 0,
            last_log: now,
            last_fault_log: f64::NEG_INFINITY,
            ttft_marks: VecDeque::new(),
            served: VecDeque::new(),
        }
    }

    /// Snapshot the TTFT histogram when the last snapshot is [`TTFT_MARK_S`] old, keeping what
    /// the recent window needs.
    pub(crate) fn mark_ttft(&mut self, now: f64) {
        if self.ttft_marks.back().is_some_and(|(t, _)| now - t < TTFT_MARK_S - 1e-9) {
            return;
        }
        let counts = self.metrics.hists[h::TTFT].counts.clone();
        self.ttft_marks.push_back((now, counts));
        while self.ttft_marks.len() > 2 && self.ttft_marks[1].0 <= now - RECENT_WINDOW_S + 1e-9 {
            self.ttft_marks.pop_front();
        }
    }

    /// The TTFT `q` quantile of the requests whose first token came in about the last
    /// [`RECENT_WINDOW_S`] (since the newest snapshot at least that old, else since the
    /// oldest); `None` when none did.
    pub fn recent_ttft_quantile(&self, q: f64) -> Option<f64> {
        let now_hist = &self.metrics.hists[h::TTFT];
        let mut recent = now_hist.clone();
        if let Some((_, old)) = self.ttft_marks.front()
            && old.len() == recent.counts.len()
        {
            for (c, o) in recent.counts.iter_mut().zip(old) {
                *c = c.saturating_sub(*o);
            }
            recent.count = recent.counts.iter().sum();
        }
        recent.quantile(q)
    }

    /// The TTFT `q` quantile of the users now: the requests that arrived in the last
    /// [`RECENT_WINDOW_S`] before `now`, each with its TTFT or, while it still waits for its
    /// first token, its wait so far, and every request still waiting, however long ago it
    /// arrived (it is being failed now); `None` when there are none.
    ///
    /// Unlike [`Replica::recent_ttft_quantile`] (requests whose first token *came* in the
    /// window), it does not hold a drained backlog's first tokens for another window after the
    /// last of them was served: it says whether a user arriving now is served well, and whether
    /// anyone is still stuck.
    pub fn ttft_now_quantile(&self, q: f64, now: f64) -> Option<f64> {
        let since = now - RECENT_WINDOW_S;
        let mut ttfts: Vec<f64> = self
            .served
            .iter()
            .filter(|(arrival, _)| *arrival >= since)
            .map(|(_, ttft)| *ttft)
            .collect();
        let pending = self.waiting.iter().chain(&self.running);
        ttfts.extend(
            pending
                .filter(|r| r.first_token.is_none() && r.arrival <= now)
                .map(|r| now - r.arrival),
        );
        if ttfts.is_empty() {
            return None;
        }
        // The nearest rank, as a p90 of individual requests (no buckets to interpolate).
        let rank = ((q * ttfts.len() as f64).ceil() as usize).clamp(1, ttfts.len()) - 1;
        let (_, at, _) = ttfts.select_nth_unstable_by(rank, f64::total_cmp);
        Some(*at)
    }

    /// Requests running on the GPU.
    pub fn running(&self) -> usize {
        self.running.len()
    }
    /// Requests queued.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
    /// True while the process serves.
    pub fn is_up(&self) -> bool {
        self.down.is_none()
    }
    /// GPU busy fraction over the last sim chunk.
    pub fn gpu_utilization(&self) -> f64 {
        self.utilization
    }
    /// KV tokens in use.
    pub(crate) fn kv_used(&self) -> f64 {
        self.running.iter().map(|r| f64::from(r.kv_tokens())).sum()
    }
}

/// What faults do to one replica during one chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Effects {
    pub(crate) kv_factor: f64,
    pub(crate) step_penalty_s: f64,
    pub(crate) error_prob: f64,
    pub(crate) leak_bytes_per_s: f64,
}

/// Run one replica's engine steps until its clock reaches `until`.
pub(crate) fn advance_replica(r: &mut Replica, until: f64, config: &EngineConfig, fx: &Effects) {
    // Clients give up on requests that never got scheduled.
    let clock = r.clock;
    let before = r.waiting.len();
    r.waiting.retain(|q| q.first_scheduled.is_some() || clock - q.arrival < CLIENT_TIMEOUT_S);
    r.metrics.finished[2] += (before - r.waiting.len()) as u64;

    let kv_cap = config.kv_tokens() * fx.kv_factor;
    while r.clock < until {
        let admissible = r.waiting.front().is_some_and(|q| q.arrival <= r.clock);
        if r.running.is_empty() && !admissible {
            let next = r.waiting.iter().map(|q| q.arrival).fold(f64::INFINITY, f64::min);
            r.clock = next.min(until).max(r.clock);
            if r.clock >= until {
                break;
            }
            continue;
        }
        engine_step(r, config, fx, kv_cap);
    }
}

fn engine_step(r: &mut Replica, config: &EngineConfig, fx: &Effects, kv_cap: f64) {
    let now = r.clock;
    let mut budget = i64::from(config.max_num_batched_tokens);
    let mut kv_used = r.kv_used();

    // 1. Running requests, in order: one decode token each, or the next prefill chunk. When the
    //    KV cache cannot hold the new tokens, preempt the lowest-priority (last) running request,
    //    as V1's scheduler does; if that is the request itself, stop scheduling running ones.
    let mut decode_tokens = 0u64;
    let mut prefill_tokens = 0u64;
    let mut finished_prefill = Vec::new();
    let mut preempted = false;
    let mut i = 0;
    while i < r.running.len() && budget > 0 {
        let q = &r.running[i];
        let need =
            if q.prefilling() { i64::from(q.prefill_target - q.computed).min(budget) } else { 1 };
        let mut scheduled = true;
        while kv_used + need as f64 > kv_cap {
            let victim_idx = r.running.len() - 1;
            let mut victim = r.running.pop().expect("non-empty");
            kv_used -= f64::from(victim.kv_tokens());
            // Recompute preemption: everything generated so far must be prefilled again.
            victim.prefill_target = victim.prompt + victim.generated;
            victim.computed = 0;
            victim.preemptions += 1;
            r.metrics.preemptions += 1;
            r.waiting.push_front(victim);
            preempted = true;
            if victim_idx == i {
                scheduled = false;
                break;
            }
        }
        if !scheduled {
            break;
        }
        let q = &mut r.running[i];
        if q.prefilling() {
            q.computed += need as u32;
            prefill_tokens += need as u64;
            if !q.prefilling() {
                finished_prefill.push(i);
            }
        } else {
            q.generated += 1;
            decode_tokens += 1;
        }
        budget -= need;
        kv_used += need as f64;
        i += 1;
    }

    // 2. Admit waiting requests (FCFS) while the step budget, max_num_seqs and the KV cache
    //    allow; V1 admits nothing new in a step that had to preempt.
    while !preempted && budget > 0 && r.running.len() < config.max_num_seqs as usize {
        let Some(front) = r.waiting.front() else { break };
        if front.arrival > now {
            break;
        }
        if f64::from(front.prefill_target) > kv_cap && r.running.is_empty() {
            // It cannot fit even in an empty cache: the engine rejects it instead of stalling.
            r.waiting.pop_front();
            r.metrics.finished[2] += 1;
            continue;
        }
        let start = if front.first_scheduled.is_none() { front.cached } else { front.computed };
        let chunk = i64::from(front.prefill_target.saturating_sub(start)).min(budget);
        if kv_used + f64::from(start) + chunk as f64 > kv_cap {
            break;
        }
        let mut q = r.waiting.pop_front().expect("front exists");
        if q.first_scheduled.is_none() {
            q.first_scheduled = Some(now);
            r.metrics.hists[h::QUEUE].observe(now - q.arrival);
            r.metrics.prefix_queries += u64::from(q.prompt);
            r.metrics.prefix_hits += u64::from(q.cached);
            r.window_queries += u64::from(q.prompt);
            r.window_hits += u64::from(q.cached);
        }
        // Prefix-cache hits need no compute.
        q.computed = start;
        q.computed += chunk as u32;
        budget -= chunk;
        prefill_tokens += chunk as u64;
        kv_used += f64::from(start) + chunk as f64;
        if !q.prefilling() {
            finished_prefill.push(r.running.len());
        }
        r.running.push(q);
    }

    // 3. The step's duration.
    let base = STEP_BASE_S * if config.enforce_eager { EAGER_FACTOR } else { 1.0 };
    if decode_tokens + prefill_tokens == 0 {
        // Nothing fits (a prompt larger than the free KV cache): idle until something changes.
        r.clock = now + base;
        return;
    }
    let duration = base
        + STEP_PER_SEQ_S * decode_tokens as f64
        + STEP_PER_PREFILL_TOKEN_S * prefill_tokens as f64
        + fx.step_penalty_s;
    let end = now + duration;
    r.busy_s += duration;
    r.clock = end;
    let m = &mut r.metrics;
    m.hists[h::ITERATION_TOKENS].observe((decode_tokens + prefill_tokens) as f64);
    m.hists[h::ITL].observe_n(duration, decode_tokens);
    m.generation_tokens += decode_tokens;
    r.window_generation += decode_tokens;

    // 4. Requests whose prefill completed emit a token (the first one, unless resumed).
    for i in finished_prefill {
        let q = &mut r.running[i];
        q.generated += 1;
        m.generation_tokens += 1;
        r.window_generation += 1;
        if q.first_token.is_none() {
            q.first_token = Some(end);
            m.hists[h::TTFT].observe(end - q.arrival);
            note_served(&mut r.served, q.arrival, end - q.arrival);
            m.prompt_tokens += u64::from(q.prompt);
            r.window_prompt += u64::from(q.prompt);
        }
    }

    // 5. Finished requests.
    let mut i = 0;
    while i < r.running.len() {
        let q = &r.running[i];
        let errored = fx.error_prob > 0.0 && !q.prefilling() && r.rng.chance(fx.error_prob * 0.02);
        if q.generated >= q.target_output || errored {
            let q = r.running.remove(i);
            let reason = if errored {
                3
            } else if q.target_output >= q.max_tokens {
                1
            } else {
                0
            };
            m.finished[reason] += 1;
            if !errored {
                let first_token = q.first_token.unwrap_or(end);
                let scheduled = q.first_scheduled.unwrap_or(q.arrival);
                m.hists[h::E2E].observe(end - q.arrival);
                m.hists[h::INFERENCE].observe(end - scheduled);
                m.hists[h::PREFILL].observe(first_token - scheduled);
                m.hists[h::DECODE].observe(end - first_token);
                m.hists[h::NUM_PREEMPTIONS].observe(f64::from(q.preemptions));
                m.hists[h::PREFILL_KV_COMPUTED].observe(f64::from(q.prompt - q.cached));
                if q.generated > 1 {
                    m.hists[h::TPOT].observe((end - first_token) / f64::from(q.generated - 1));
                }
                m.hists[h::PROMPT_TOKENS].observe(f64::from(q.prompt));
                m.hists[h::GENERATION_TOKENS].observe(f64::from(q.generated));
                m.hists[h::PARAMS_N].observe(1.0);
                m.hists[h::PARAMS_MAX_TOKENS].observe(f64::from(q.max_tokens));
                m.hists[h::MAX_NUM_GENERATION_TOKENS].observe(f64::from(q.max_tokens));
            }
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(arrival: f64, prompt: u32, output: u32) -> Request {
        Request {
            arrival,
            prompt,
            cached: 0,
            max_tokens: 2048,
            target_output: output,
            prefill_target: prompt,
            computed: 0,
            generated: 0,
            first_scheduled: None,
            first_token: None,
            preemptions: 0,
        }
    }

    fn replica() -> Replica {
        Replica::new("r", "d", (0, 0), Rng::new(1, "r"), 0.0)
    }

    fn no_faults() -> Effects {
        Effects { kv_factor: 1.0, ..Effects::default() }
    }

    #[test]
    fn a_lone_request_gets_its_first_token_after_one_prefill_step() {
        let mut r = replica();
        r.waiting.push_back(request(0.0, 1000, 10));
        advance_replica(&mut r, 5.0, &EngineConfig::default(), &no_faults());
        let m = &r.metrics;
        assert_eq!(m.finished[0], 1, "finished with `stop`");
        assert_eq!(m.prompt_tokens, 1000);
        assert_eq!(m.generation_tokens, 10);
        // One step of 1000 prefill tokens: 10 ms + 1000 / 25000 s = 50 ms.
        let ttft = m.hists[h::TTFT].sum;
        assert!((ttft - 0.050).abs() < 1e-9, "TTFT {ttft}");
        assert_eq!(m.hists[h::ITL].count, 9, "9 decode steps after the first token");
        assert_eq!(m.hists[h::QUEUE].sum, 0.0, "no queueing when idle");
    }

    #[test]
    fn eager_mode_and_a_small_budget_slow_prefill_down() {
        let ttft = |config: &EngineConfig| {
            let mut r = replica();
            r.waiting.push_back(request(0.0, 1000, 2));
            advance_replica(&mut r, 10.0, config, &no_faults());
            r.metrics.hists[h::TTFT].sum
        };
        let base = ttft(&EngineConfig::default());
        let slow = ttft(&EngineConfig {
            enforce_eager: true,
            max_num_batched_tokens: 64,
            ..EngineConfig::default()
        });
        // ceil(1000 / 64) = 16 steps of 30 ms + 64 / 25000 s each.
        assert!(slow > 8.0 * base, "{slow} vs {base}");
    }

    #[test]
    fn a_full_cache_preempts_the_newest_request_which_recomputes_later() {
        let mut r = replica();
        // 2 x 4000-token prompts fit in a 9000-token cache, but not once both decode 600 tokens.
        let config = EngineConfig::default();
        let fx = Effects { kv_factor: 9000.0 / config.kv_tokens(), ..Effects::default() };
        r.waiting.push_back(request(0.0, 4000, 600));
        r.waiting.push_back(request(0.0, 4000, 600));
        advance_replica(&mut r, 120.0, &config, &fx);
        let m = &r.metrics;
        assert!(m.preemptions >= 1, "preempted");
        assert_eq!(m.finished[0], 2, "both finish eventually");
        assert_eq!(m.hists[h::TTFT].count, 2, "one first token each, resumed or not");
        assert!(m.prompt_tokens == 8000, "prompt tokens counted once: {}", m.prompt_tokens);
        let per_request = &m.hists[h::NUM_PREEMPTIONS];
        assert_eq!(per_request.count, 2);
        assert_eq!(per_request.sum, m.preemptions as f64, "every preemption belongs to a request");
        assert!(r.running.is_empty() && r.waiting.is_empty());
    }

    #[test]
    fn recent_ttft_forgets_a_drained_queue_that_the_cumulative_p90_keeps() {
        // Regression: the campaign judged health by the p90 since the process started, which
        // stayed above 2 s for many minutes after a surge's queue had drained.
        let mut r = replica();
        r.mark_ttft(0.0);
        r.metrics.hists[h::TTFT].observe_n(30.0, 100);
        let mut t = 0.0;
        while t < 60.0 {
            t += 0.25;
            if t > 10.0 {
                r.metrics.hists[h::TTFT].observe_n(0.05, 4);
            }
            r.mark_ttft(t);
        }
        let cumulative = r.metrics.hists[h::TTFT].quantile(0.9).unwrap();
        let recent = r.recent_ttft_quantile(0.9).unwrap();
        assert!(cumulative > 2.0, "the slow start still dominates since start: {cumulative}");
        assert!(recent <= 0.06, "the last 30 s were all fast: {recent}");
        assert!(r.ttft_marks.len() <= (RECENT_WINDOW_S / TTFT_MARK_S) as usize + 2);
        assert!(r.ttft_marks.front().unwrap().0 <= t - RECENT_WINDOW_S);
    }

    #[test]
    fn ttft_now_forgets_a_served_backlog_but_counts_everyone_still_waiting() {
        // A backlog that arrived at 0-10 s and was served by 40 s, then fast traffic: by first
        // token the last 30 s are still mostly the backlog's; by arrival they are all fast.
        let mut r = replica();
        for i in 0..200 {
            let arrival = f64::from(i) * 0.05;
            note_served(&mut r.served, arrival, 40.0 - arrival);
        }
        for i in 0..40 {
            note_served(&mut r.served, 40.0 + f64::from(i) * 0.5, 0.1);
        }
        assert_eq!(r.ttft_now_quantile(0.9, 60.0), Some(0.1));
        // One request still queued since 5 s counts its 55 s wait; ten more make it the p90.
        r.waiting.push_back(request(5.0, 100, 10));
        assert_eq!(r.ttft_now_quantile(1.0, 60.0), Some(55.0));
        assert_eq!(r.ttft_now_quantile(0.9, 60.0), Some(0.1));
        for _ in 0..10 {
            r.waiting.push_back(request(5.0, 100, 10));
        }
        assert_eq!(r.ttft_now_quantile(0.9, 60.0), Some(55.0));
        // A request that has not arrived yet (a chunk's later arrival) is nobody's wait.
        let mut idle = replica();
        idle.waiting.push_back(request(61.0, 100, 10));
        assert_eq!(idle.ttft_now_quantile(0.9, 60.0), None);
    }

    #[test]
    fn served_first_tokens_are_forgotten_after_the_window_and_capped() {
        let mut served = VecDeque::new();
        for i in 0..100 {
            note_served(&mut served, f64::from(i), 0.1);
        }
        assert!(served.front().unwrap().0 >= 99.1 - RECENT_WINDOW_S, "{:?}", served.front());
        let mut burst = VecDeque::new();
        for _ in 0..SERVED_CAP + 10 {
            note_served(&mut burst, 1.0, 0.1);
        }
        assert_eq!(burst.len(), SERVED_CAP);
    }
}

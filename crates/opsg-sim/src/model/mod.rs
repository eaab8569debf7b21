//! The simulated fleet: a router over deployments of vLLM replicas (each an [`crate::engine`]) on
//! GPU nodes, the faults that hit them, and the admin operations that fix them.
//!
//! Time advances in chunks of 0.25 s: the router draws that chunk's Poisson arrivals and sends
//! each to the least-loaded serving replica of a deployment picked by weight; then every replica
//! runs its engine steps up to the chunk's end; then faults progress (GPU error counters, disk
//! fill, memory leaks) and the replicas' logs get their periodic lines.

pub use crate::engine::{
    ConfigPatch, DownReason, EngineConfig, EngineMetrics, FINISHED_REASONS, HISTOGRAMS, Replica, h,
};
use crate::engine::{Effects, Request, advance_replica};
use crate::logs::Logs;
use crate::rng::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

mod admin;
mod faults;
mod views;

use faults::fault_json;
pub use faults::{Fault, FaultKind};

/// The served model (same on every deployment: canaries differ by config, not by model).
pub const MODEL_NAME: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// `--max-model-len` of every replica; the token-count histogram buckets derive from it.
pub const MAX_MODEL_LEN: u64 = 8192;
/// vLLM version the replicas pretend to be (log lines).
pub const VLLM_VERSION: &str = "0.33.0";
/// GPUs per node.
pub const GPUS_PER_NODE: u32 = 8;
/// GPU model (DCGM `modelName`).
pub const GPU_MODEL: &str = "NVIDIA H100 80GB HBM3";
/// GPU framebuffer in MiB.
pub const GPU_FB_MIB: f64 = 81559.0;
/// Upper bound of replicas in a deployment (bounded memory; the nodes cannot host more anyway).
pub const MAX_REPLICAS: u32 = 16;
/// A replica's waiting queue beyond which the router rejects new requests (bounded memory).
pub const MAX_WAITING: usize = 2048;
/// Entries kept in the admin log.
pub const ADMIN_LOG_CAP: usize = 1000;
/// Host RSS at which the container's memory limit kills the engine.
pub const RSS_LIMIT_BYTES: f64 = 24.0 * GIB;
/// Baseline RSS of a vLLM process serving an 8B model.
pub const RSS_BASE_BYTES: f64 = 3.1 * GIB;
/// Above this `gpu_memory_utilization`, CUDA runs out of memory while the engine starts (vLLM
/// profiles activations after reserving the KV cache).
pub const MAX_STARTABLE_GPU_UTILIZATION: f64 = 0.95;
/// Clients give up on a request still queued after this many seconds.
pub const CLIENT_TIMEOUT_S: f64 = 120.0;
/// A KV-saturation fault's long requests: prompts this many times the usual length…
pub const LONG_PROMPT_SCALE: f64 = 8.0;
/// …and generations this many times (still bounded by each request's `max_tokens`): about
/// five times the KV per sequence, held twice as long, so the saturated replicas hold several
/// times the KV per running request of healthy ones (what tells a long-context mix from a
/// surge). With [`KV_BURST_OF_FLEET_RATE`] the burst saturates the lone canary from about
/// intensity 0.3 (three stable replicas absorb most of it when traffic shifts to them) and three
/// stable replicas from about 0.5; stable then needs about 7 replicas at 0.6 or 0.8 and 7 to 9
/// at 0.9 (measured with `/tick`, 90 s after scaling, seeds 7, 9 and 42), which 16 GPUs can
/// give it. The burst used to be 4 x intensity times the deployment's share with every request
/// long and the cache shrunk: about 12 times the work on stable at 0.8, more than any
/// fleet-sized fix absorbs.
pub const LONG_OUTPUT_SCALE: f64 = 2.0;
/// A KV-saturation burst at intensity 1, as a fraction of the fleet's normal request rate.
pub const KV_BURST_OF_FLEET_RATE: f64 = 0.4;
/// Sim-time granularity of one fleet step (routing decisions, fault progression).
const CHUNK_S: f64 = 0.25;
/// vLLM prints its stats line every 10 s (`VLLM_LOG_STATS_INTERVAL`).
const LOG_INTERVAL_S: f64 = 10.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// An error from an API operation: an HTTP status and a one-line message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (400, 404, 409, …).
    pub status: u16,
    /// What was wrong, for people.
    pub message: String,
}

impl ApiError {
    /// 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: 400, message: message.into() }
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: 404, message: message.into() }
    }
    /// 409 Conflict: the request is valid but the fleet's state does not allow it.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError { status: 409, message: message.into() }
    }
}

/// Result of an API operation: the JSON to return, or an error.
pub type ApiResult = std::result::Result<Value, ApiError>;

/// Fixed inputs of a fleet: what `/reset` returns to.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Fleet-wide request arrival rate (requests/s) before faults.
    pub rate: f64,
    /// Unix time of sim time 0 (process start times and log timestamps derive from it).
    pub epoch: f64,
    /// Initial replicas of `stable`.
    pub stable_replicas: u32,
    /// Initial replicas of `canary`.
    pub canary_replicas: u32,
    /// Number of GPU nodes.
    pub nodes: u32,
}

/// Whether a deployment takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// Receives its weighted share of traffic.
    Active,
    /// Receives no new traffic; queued work finishes.
    Drain,
}

impl DeploymentStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Active => "active",
            DeploymentStatus::Drain => "drain",
        }
    }
}

/// A deployment: a set of replicas sharing a config, with a router weight.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Name (`stable`, `canary`).
    pub name: String,
    /// Router weight (relative; shares are normalized over eligible deployments).
    pub weight: f64,
    /// Traffic status.
    pub status: DeploymentStatus,
    /// Config history: version N is `versions[N-1]`.
    pub versions: Vec<EngineConfig>,
    /// The version replicas run.
    pub config_version: u32,
    /// Next replica ordinal (names are never reused within a run).
    next_ordinal: u32,
}

impl Deployment {
    /// The active engine config.
    pub fn config(&self) -> &EngineConfig {
        &self.versions
            [(self.config_version as usize).saturating_sub(1).min(self.versions.len() - 1)]
    }
}

/// One GPU as DCGM sees it.
#[derive(Debug, Clone)]
pub struct Gpu {
    /// Index on the node.
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// PCI bus id.
    pub pci_bus_id: String,
    /// Last XID error (0 = none).
    pub xid: u32,
    /// Single-bit volatile ECC errors.
    pub ecc_sbe: f64,
    /// Double-bit volatile ECC errors.
    pub ecc_dbe: f64,
    /// Rows remapped for correctable errors.
    pub remapped_correctable: f64,
    /// Rows remapped for uncorrectable errors.
    pub remapped_uncorrectable: f64,
    /// Row remapping failed.
    pub remap_failure: bool,
    /// The GPU has fallen off the bus (Xid 79): nothing can run on it.
    pub lost: bool,
    /// Energy since boot, mJ.
    pub energy_mj: f64,
    /// PCIe replays.
    pub pcie_replays: f64,
}

/// A GPU node with its root filesystem and memory.
#[derive(Debug, Clone)]
pub struct Node {
    /// Hostname.
    pub name: String,
    /// Cordoned: no new replicas are placed here.
    pub cordoned: bool,
    /// Its GPUs.
    pub gpus: Vec<Gpu>,
    /// Root filesystem size.
    pub fs_size: f64,
    /// Bytes used by the OS, images and model cache.
    pub fs_base_used: f64,
    /// Extra bytes written by a disk-pressure fault (logs, core dumps).
    pub fs_extra_used: f64,
    /// Total memory.
    pub mem_total: f64,
    /// Ports of its exporters (set by the server).
    pub dcgm_port: Option<u16>,
    /// Port of its node_exporter endpoint.
    pub node_exporter_port: Option<u16>,
    /// Boot time (sim seconds; negative = before sim start).
    pub boot_time: f64,
}

impl Node {
    /// Available bytes on `/`.
    pub fn fs_avail(&self) -> f64 {
        (self.fs_size - self.fs_base_used - self.fs_extra_used).max(0.0)
    }
}

/// One entry of the admin log.
#[derive(Debug, Clone)]
pub struct AdminEntry {
    /// Sequence number (increasing across resets).
    pub seq: u64,
    /// Sim time of the call.
    pub sim_time: f64,
    /// HTTP method.
    pub method: String,
    /// Path (with query).
    pub path: String,
    /// Parsed JSON body, if any.
    pub body: Value,
    /// Response status.
    pub status: u16,
}

/// The whole simulated fleet.
#[derive(Debug)]
pub struct Fleet {
    /// Inputs.
    pub cfg: FleetConfig,
    /// Sim seconds since start.
    pub time: f64,
    /// Deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Replicas by name.
    pub replicas: BTreeMap<String, Replica>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Active faults.
    pub faults: Vec<Fault>,
    /// Recent admin calls.
    pub admin_log: VecDeque<AdminEntry>,
    /// Total admin calls (the log keeps the last [`ADMIN_LOG_CAP`]).
    pub admin_seq: u64,
    /// Requests that arrived at the router.
    pub router_requests: u64,
    /// Requests rejected by the router (no eligible deployment or queue full).
    pub router_rejected: u64,
    /// Requests lost when a replica died or was removed.
    pub router_failed: u64,
    /// Log writer.
    pub logs: Logs,
    rng: Rng,
    next_arrival: f64,
    next_pid: u32,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Fleet {
    /// A fleet in its seeded initial state.
    pub fn new(cfg: FleetConfig, logs: Logs) -> Fleet {
        let mut rng = Rng::new(cfg.seed, "router");
        let nodes = (0..cfg.nodes.max(1))
            .map(|n| {
                let name = format!("gpu-node-{}", (b'a' + (n % 26) as u8) as char);
                let mut hw = Rng::new(cfg.seed, &name);
                let gpus = (0..GPUS_PER_NODE)
                    .map(|g| Gpu {
                        index: g,
                        uuid: format!(
                            "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                            hw.next_u64() as u32,
                            hw.next_u64() as u16,
                            hw.next_u64() as u16,
                            hw.next_u64() as u16,
                            hw.next_u64() & 0xffff_ffff_ffff
                        ),
                        pci_bus_id: format!(
                            "00000000:{:02X}:00.0",
                            [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb][g as usize % 8]
                        ),
                        xid: 0,
                        ecc_sbe: 0.0,
                        ecc_dbe: 0.0,
                        remapped_correctable: 0.0,
                        remapped_uncorrectable: 0.0,
                        remap_failure: false,
                        lost: false,
                        energy_mj: 1.0e9 + hw.range(0, 1_000_000) as f64 * 1000.0,
                        pcie_replays: 0.0,
                    })
                    .collect();
                Node {
                    name,
                    cordoned: false,
                    gpus,
                    fs_size: 1_919_366_217_728.0,
                    fs_base_used: 412_316_860_416.0 + hw.range(0, 1 << 30) as f64,
                    fs_extra_used: 0.0,
                    mem_total: 2_163_688_394_752.0,
                    dcgm_port: None,
                    node_exporter_port: None,
                    boot_time: -(86_400.0 * 3.0) - hw.range(0, 3600) as f64,
                }
            })
            .collect();
        let mut fleet = Fleet {
            time: 0.0,
            deployments: BTreeMap::new(),
            replicas: BTreeMap::new(),
            nodes,
            faults: Vec::new(),
            admin_log: VecDeque::new(),
            admin_seq: 0,
            router_requests: 0,
            router_rejected: 0,
            router_failed: 0,
            logs,
            next_arrival: 0.0,
            next_pid: 4100,
            rng: rng.clone(),
            cfg: cfg.clone(),
        };
        fleet.next_arrival = rng.exponential(1.0 / cfg.rate.max(1e-6));
        fleet.rng = rng;
        for (name, weight, replicas) in
            [("stable", 0.9, cfg.stable_replicas), ("canary", 0.1, cfg.canary_replicas)]
        {
            fleet.deployments.insert(
                name.to_string(),
                Deployment {
                    name: name.to_string(),
                    weight,
                    status: DeploymentStatus::Active,
                    versions: vec![EngineConfig::default()],
                    config_version: 1,
                    next_ordinal: 0,
                },
            );
            for _ in 0..replicas {
                // Placement cannot fail at start-up: replicas are capped below the GPU count.
                let _ = fleet.add_replica(name);
            }
        }
        fleet
    }

    /// Back to the seeded initial state, keeping the listeners' ports and the admin sequence.
    pub fn reset(&mut self) {
        let ports: Vec<(String, Option<u16>)> =
            self.replicas.values().map(|r| (r.name.clone(), r.port)).collect();
        let node_ports: Vec<(Option<u16>, Option<u16>)> =
            self.nodes.iter().map(|n| (n.dcgm_port, n.node_exporter_port)).collect();
        let logs = std::mem::take(&mut self.logs);
        let seq = self.admin_seq;
        *self = Fleet::new(self.cfg.clone(), logs);
        self.admin_seq = seq;
        for (name, port) in ports {
            if let Some(r) = self.replicas.get_mut(&name) {
                r.port = port;
            }
        }
        for (node, (dcgm, exporter)) in self.nodes.iter_mut().zip(node_ports) {
            node.dcgm_port = dcgm;
            node.node_exporter_port = exporter;
        }
        let live: Vec<&str> = self.replicas.keys().map(String::as_str).collect();
        self.logs.retain_replicas(&live);
    }

    /// Unix time of sim time `t`.
    pub fn unix(&self, t: f64) -> f64 {
        self.cfg.epoch + t
    }

    /// Find a free GPU on an uncordoned node (spread: the node with fewest replicas first).
    fn free_gpu(&self, exclude_node: Option<usize>) -> Option<(usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (ni, node) in self.nodes.iter().enumerate() {
            if node.cordoned || Some(ni) == exclude_node {
                continue;
            }
            let used: Vec<u32> = self
                .replicas
                .values()
                .filter(|r| r.node == ni && r.down != Some(DownReason::Unschedulable))
                .map(|r| r.gpu)
                .collect();
            let free = node.gpus.iter().find(|g| !g.lost && !used.contains(&g.index));
            if let Some(g) = free
                && best.is_none_or(|(_, n, _)| used.len() < n)
            {
                best = Some((ni, used.len(), g.index));
            }
        }
        best.map(|(ni, _, g)| (ni, g))
    }

    /// GPUs a new replica could be placed on now.
    fn free_gpu_count(&self) -> u32 {
        let mut free = 0;
        for (ni, node) in self.nodes.iter().enumerate().filter(|(_, n)| !n.cordoned) {
            for g in node.gpus.iter().filter(|g| !g.lost) {
                let taken = self.replicas.values().any(|r| {
                    r.node == ni && r.gpu == g.index && r.down != Some(DownReason::Unschedulable)
                });
                free += u32::from(!taken);
            }
        }
        free
    }

    fn add_replica(&mut self, deployment: &str) -> Result<String, ApiError> {
        let (node, gpu) = self
            .free_gpu(None)
            .ok_or_else(|| ApiError::conflict("no free GPU on any schedulable node"))?;
        let dep = self
            .deployments
            .get_mut(deployment)
            .ok_or_else(|| ApiError::not_found(format!("no deployment `{deployment}`")))?;
        let name = format!("{deployment}-{}", dep.next_ordinal);
        dep.next_ordinal += 1;
        let config_version = dep.config_version;
        let rng = Rng::new(self.cfg.seed, &name);
        let mut replica = Replica::new(&name, deployment, (node, gpu), rng, self.time);
        replica.config_version = config_version;
        replica.rss_bytes = RSS_BASE_BYTES;
        self.replicas.insert(name.clone(), replica);
        self.start_process(&name);
        Ok(name)
    }

    /// (Re)start a replica's process on its current GPU: fresh counters, new start time.
    fn start_process(&mut self, name: &str) {
        let pid = self.next_pid;
        self.next_pid = 4100 + (self.next_pid - 4100 + 7) % 4_000_000;
        let time = self.time;
        let (config, node_name) = {
            let Some(r) = self.replicas.get(name) else { return };
            let dep = &self.deployments[&r.deployment];
            (dep.config().clone(), self.nodes[r.node].name.clone())
        };
        let epoch = self.cfg.epoch;
        let version = self.deployments[&self.replicas[name].deployment].config_version;
        // A new process: whatever leaked or crashed in the old one is gone with it.
        self.faults.retain(|f| {
            !(matches!(f.kind, FaultKind::MemoryLeak | FaultKind::ReplicaCrash) && f.target == name)
        });
        if let Some(r) = self.replicas.get_mut(name) {
            r.down = None;
            r.started_at = time;
            r.pid = pid;
            r.config_version = version;
            r.metrics = EngineMetrics::new();
            r.rss_bytes = RSS_BASE_BYTES;
            r.clock = time;
            r.busy_s = 0.0;
            r.utilization = 0.0;
            r.last_log = time;
            r.window_prompt = 0;
            r.window_generation = 0;
            r.window_queries = 0;
            r.window_hits = 0;
            r.ttft_marks.clear();
            r.served.clear();
            self.logs.startup(name, epoch + time, pid, &config, &node_name);
        }
    }

    fn lose_inflight(&mut self, name: &str) {
        if let Some(r) = self.replicas.get_mut(name) {
            let lost = (r.waiting.len() + r.running.len()) as u64;
            r.waiting.clear();
            r.running.clear();
            self.router_failed += lost;
        }
    }

    /// Kill a replica's engine (crash, OOM, Xid 79): its listener closes, in-flight work is lost.
    fn crash(&mut self, name: &str, why: &str, cause: crate::logs::Crash) {
        let epoch = self.cfg.epoch;
        let time = self.time;
        self.lose_inflight(name);
        if let Some(r) = self.replicas.get_mut(name) {
            if r.down.is_some() {
                return;
            }
            r.down = Some(DownReason::Crashed(why.to_string()));
            r.utilization = 0.0;
            let pid = r.pid;
            self.logs.crash(name, epoch + time, pid, cause);
        }
    }

    // ----- simulation -------------------------------------------------------------------------

    /// Advance the simulation by `seconds` of sim time.
    pub fn advance(&mut self, seconds: f64) {
        let end = self.time + seconds.max(0.0);
        while self.time < end - 1e-9 {
            let chunk_end = (self.time + CHUNK_S).min(end);
            self.step_chunk(chunk_end);
            self.time = chunk_end;
            self.expire_faults();
        }
    }

    fn surge_factor(&self) -> f64 {
        self.faults
            .iter()
            .filter(|f| f.kind == FaultKind::TrafficSurge)
            .map(|f| 1.0 + 3.0 * f.intensity)
            .fold(1.0, f64::max)
    }

    /// Traffic shares the router uses now: weights normalized over active deployments that have
    /// a serving replica (the router health-checks its backends).
    pub fn traffic_shares(&self) -> BTreeMap<String, f64> {
        let eligible: Vec<(&String, f64)> = self
            .deployments
            .values()
            .filter(|d| d.status == DeploymentStatus::Active && d.weight > 0.0)
            .filter(|d| self.replicas.values().any(|r| r.deployment == d.name && r.is_up()))
            .map(|d| (&d.name, d.weight))
            .collect();
        let total: f64 = eligible.iter().map(|(_, w)| w).sum();
        self.deployments
            .keys()
            .map(|name| {
                let share = eligible
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, w)| if total > 0.0 { w / total } else { 0.0 })
                    .unwrap_or(0.0);
                (name.clone(), share)
            })
            .collect()
    }

    /// Where arriving requests go: (deployment, long-context burst or not, fraction of all
    /// arrivals), and the arrival rate. A KV-saturation burst is `KV_BURST_OF_FLEET_RATE x
    /// intensity` of the fleet's normal rate in long-context, long-generation requests aimed at
    /// its deployment; while that deployment's share is below the share it had when the burst
    /// began, the router sends the difference to the other deployments (a traffic shift moves
    /// the burst, it does not make it vanish). Fractions that sum to less than 1 are requests
    /// no backend can take (rejected).
    fn routes(&self) -> (Vec<(String, bool, f64)>, f64) {
        let shares = self.traffic_shares();
        let normal = self.cfg.rate * self.surge_factor();
        let bursts: Vec<(&Fault, f64)> = self
            .faults
            .iter()
            .filter(|f| f.kind == FaultKind::KvCacheSaturation)
            .map(|f| (f, KV_BURST_OF_FLEET_RATE * f.intensity * self.cfg.rate))
            .collect();
        let total = normal + bursts.iter().map(|(_, b)| b).sum::<f64>();
        if total <= 0.0 {
            return (Vec::new(), 0.0);
        }
        // Exactly 1 without a burst, so a healthy fleet draws the same stream as ever.
        let normal_part = normal / total;
        let mut routes: Vec<(String, bool, f64)> =
            shares.iter().map(|(d, s)| (d.clone(), false, s * normal_part)).collect();
        for (f, burst) in bursts {
            let part = burst / total;
            let now = shares.get(&f.target).copied().unwrap_or(0.0);
            let stay = match f.share_at_start {
                Some(start) => (now / start).min(1.0),
                None => f64::from(u8::from(now > 0.0)),
            };
            routes.push((f.target.clone(), true, part * stay));
            let others: f64 = shares.iter().filter(|(d, _)| **d != f.target).map(|(_, s)| s).sum();
            if others > 0.0 {
                for (d, s) in shares.iter().filter(|(d, _)| **d != f.target) {
                    routes.push((d.clone(), true, part * (1.0 - stay) * s / others));
                }
            }
        }
        (routes, total)
    }

    fn generate_arrivals(&mut self, until: f64) {
        let (routes, rate) = self.routes();
        if rate <= 0.0 {
            self.next_arrival = until;
            return;
        }
        let routed: f64 = routes.iter().map(|r| r.2).sum();
        while self.next_arrival < until {
            let at = self.next_arrival;
            self.next_arrival += self.rng.exponential(1.0 / rate);
            self.router_requests += 1;
            let pick = self.rng.uniform();
            let mut acc = 0.0;
            let mut chosen = None;
            for (name, long, part) in &routes {
                acc += part;
                if *part > 0.0 && pick < acc {
                    chosen = Some((name.clone(), *long));
                    break;
                }
            }
            // Rounding can leave `pick` just above the last route: take the last open one.
            let chosen = chosen.or_else(|| {
                (pick < routed + 1e-9)
                    .then(|| routes.iter().rev().find(|r| r.2 > 0.0))
                    .flatten()
                    .map(|(n, long, _)| (n.clone(), *long))
            });
            let Some((dep, long)) = chosen else {
                self.router_rejected += 1;
                continue;
            };
            let (prompt_scale, output_scale) =
                if long { (LONG_PROMPT_SCALE, LONG_OUTPUT_SCALE) } else { (1.0, 1.0) };
            let prefix_caching = self.deployments[&dep].config().enable_prefix_caching;
            let target = self
                .replicas
                .values()
                .filter(|r| r.deployment == dep && r.is_up())
                .min_by_key(|r| r.waiting.len() + r.running.len())
                .map(|r| r.name.clone());
            let Some(target) = target else {
                self.router_rejected += 1;
                continue;
            };
            let max_tokens = [256u32, 512, 1024, 2048][self.rng.range(0, 3) as usize];
            let prompt = (self.rng.lognormal(600.0, 0.8) * prompt_scale)
                .clamp(16.0, (MAX_MODEL_LEN - u64::from(max_tokens)) as f64)
                as u32;
            let output = (self.rng.lognormal(150.0, 0.9) * output_scale)
                .clamp(1.0, f64::from(max_tokens)) as u32;
            // A shared system prompt: the first quarter of most prompts hits the prefix cache.
            let cached =
                if prefix_caching && self.rng.chance(0.8) { (prompt / 4) / 16 * 16 } else { 0 };
            let r = self.replicas.get_mut(&target).expect("target exists");
            if r.waiting.len() >= MAX_WAITING {
                self.router_rejected += 1;
                continue;
            }
            r.waiting.push_back(Request {
                arrival: at,
                prompt,
                cached,
                max_tokens,
                target_output: output,
                prefill_target: prompt,
                computed: 0,
                generated: 0,
                first_scheduled: None,
                first_token: None,
                preemptions: 0,
            });
        }
    }

    fn effects_for(&self, r: &Replica) -> Effects {
        let mut fx = Effects { kv_factor: 1.0, ..Effects::default() };
        for f in &self.faults {
            match f.kind {
                FaultKind::GpuFault if f.node == Some(r.node) && f.gpu == Some(r.gpu) => {
                    fx.error_prob = fx.error_prob.max(0.5 * f.intensity);
                }
                FaultKind::MemoryLeak if f.target == r.name => {
                    fx.leak_bytes_per_s += f.intensity * 64.0 * 1024.0 * 1024.0;
                }
                FaultKind::NetworkLatency if f.target == r.name && f.node == Some(r.node) => {
                    fx.step_penalty_s += 0.08 * f.intensity;
                }
                _ => {}
            }
        }
        fx
    }

    fn step_chunk(&mut self, chunk_end: f64) {
        self.generate_arrivals(chunk_end);
        let dt = chunk_end - self.time;
        let names: Vec<String> = self.replicas.keys().cloned().collect();
        let mut oom = Vec::new();
        for name in &names {
            let fx = self.effects_for(&self.replicas[name]);
            let dep_name = self.replicas[name].deployment.clone();
            let config = self.deployments[&dep_name].config().clone();
            let r = self.replicas.get_mut(name).expect("replica exists");
            if r.down.is_some() {
                r.clock = chunk_end;
                continue;
            }
            let busy_before = r.busy_s;
            advance_replica(r, chunk_end, &config, &fx);
            r.utilization = ((r.busy_s - busy_before) / dt.max(1e-9)).clamp(0.0, 1.0);
            r.mark_ttft(chunk_end);
            r.metrics.cpu_seconds += dt * (0.15 + 0.85 * r.utilization);
            r.rss_bytes += fx.leak_bytes_per_s * dt;
            if r.rss_bytes >= RSS_LIMIT_BYTES {
                oom.push(name.clone());
            }
        }
        for name in oom {
            let (node, pid, rss) = {
                let r = &self.replicas[&name];
                (self.nodes[r.node].name.clone(), r.pid, r.rss_bytes)
            };
            let unix = self.unix(chunk_end);
            self.logs.oom_kill(&node, unix, pid, rss);
            self.crash(&name, "memory_leak: OOM-killed", crate::logs::Crash::HostOomKill);
        }
        self.progress_hardware(dt, chunk_end);
        self.periodic_logs(chunk_end);
    }

    fn progress_hardware(&mut self, dt: f64, now: f64) {
        // GPU energy and fault counters.
        let busy: Vec<(usize, u32, f64)> = self
            .replicas
            .values()
            .filter(|r| r.is_up())
            .map(|r| (r.node, r.gpu, r.utilization))
            .collect();
        for (ni, node) in self.nodes.iter_mut().enumerate() {
            for gpu in &mut node.gpus {
                let util = busy
                    .iter()
                    .find(|(n, g, _)| *n == ni && *g == gpu.index)
                    .map(|(_, _, u)| *u)
                    .unwrap_or(0.0);
                gpu.energy_mj += gpu_power(util, gpu.lost) * dt * 1000.0;
            }
        }
        for f in &self.faults {
            match f.kind {
                FaultKind::GpuFault => {
                    if let (Some(ni), Some(g)) = (f.node, f.gpu)
                        && let Some(gpu) = self.nodes[ni].gpus.get_mut(g as usize)
                    {
                        gpu.ecc_sbe += 12.0 * f.intensity * dt;
                        gpu.pcie_replays += 2.0 * f.intensity * dt;
                    }
                }
                FaultKind::DiskPressure => {
                    if let Some(ni) = f.node {
                        let node = &mut self.nodes[ni];
                        // Fills to (90% + 10% * intensity) of the disk over about a minute.
                        let goal = node.fs_size * (0.9 + 0.1 * f.intensity) - node.fs_base_used;
                        let rate = node.fs_size * 0.02 * dt;
                        if node.fs_extra_used < goal {
                            node.fs_extra_used =
                                (node.fs_extra_used + rate.max(goal / 60.0 * dt)).min(goal);
                        }
                    }
                }
                _ => {}
            }
        }
        let _ = now;
    }

    fn periodic_logs(&mut self, now: f64) {
        let epoch = self.cfg.epoch;
        let full_nodes: Vec<usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.fs_avail() < n.fs_size * 0.01)
            .map(|(i, _)| i)
            .collect();
        let faults = self.faults.clone();
        for r in self.replicas.values_mut() {
            if r.down.is_some() {
                continue;
            }
            if now - r.last_log >= LOG_INTERVAL_S {
                let interval = now - r.last_log;
                let kv = r.kv_used();
                let cap = self.deployments[&r.deployment].config().kv_tokens();
                let hit_rate = if r.window_queries > 0 {
                    r.window_hits as f64 / r.window_queries as f64 * 100.0
                } else {
                    0.0
                };
                self.logs.stats(
                    &r.name,
                    epoch + now,
                    r.pid,
                    r.window_prompt as f64 / interval,
                    r.window_generation as f64 / interval,
                    r.running.len(),
                    r.waiting.len(),
                    (kv / cap * 100.0).min(100.0),
                    hit_rate,
                );
                r.window_prompt = 0;
                r.window_generation = 0;
                r.window_queries = 0;
                r.window_hits = 0;
                r.last_log = now;
            }
            if now - r.last_fault_log >= 30.0 {
                let mut wrote = false;
                for f in &faults {
                    match f.kind {
                        FaultKind::NetworkLatency
                            if f.target == r.name
                                && f.node == Some(r.node)
                                && f.intensity >= 0.5 =>
                        {
                            self.logs.nccl_timeout(&r.name, epoch + now, r.pid);
                            wrote = true;
                        }
                        FaultKind::KvCacheSaturation
                            if f.target == r.deployment && r.metrics.preemptions > 0 =>
                        {
                            self.logs.preemption_warning(
                                &r.name,
                                epoch + now,
                                r.pid,
                                r.metrics.preemptions,
                            );
                            wrote = true;
                        }
                        _ => {}
                    }
                }
                if full_nodes.contains(&r.node) {
                    self.logs.disk_full(&r.name, epoch + now, r.pid);
                    wrote = true;
                }
                if wrote {
                    r.last_fault_log = now;
                }
            }
        }
    }

    /// KV cache usage of a replica as vLLM reports it (fraction 0..1).
    pub fn kv_usage(&self, r: &Replica) -> f64 {
        let cap = self.deployments[&r.deployment].config().kv_tokens();
        (r.kv_used() / cap).clamp(0.0, 1.0)
    }

    /// GPU utilization of the replica on (node, gpu), if any, and its name.
    pub fn gpu_tenant(&self, node: usize, gpu: u32) -> Option<&Replica> {
        self.replicas.values().find(|r| r.node == node && r.gpu == gpu && r.is_up())
    }

    /// Real-time delay before a replica's `/metrics` answers (network_latency fault).
    pub fn metrics_delay_ms(&self, replica: &str) -> u64 {
        let Some(r) = self.replicas.get(replica) else { return 0 };
        self.faults
            .iter()
            .filter(|f| {
                f.kind == FaultKind::NetworkLatency && f.target == r.name && f.node == Some(r.node)
            })
            .map(|f| (f.intensity * 2000.0) as u64)
            .max()
            .unwrap_or(0)
    }
}

/// GPU board power (W) at a utilization; an H100 SXM idles near 70 W and peaks near 700 W.
pub fn gpu_power(util: f64, lost: bool) -> f64 {
    if lost { 0.0 } else { 72.0 + 560.0 * util }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(seed: u64) -> Fleet {
        Fleet::new(
            FleetConfig {
                seed,
                rate: 12.0,
                epoch: 1_767_225_600.0,
                stable_replicas: 3,
                canary_replicas: 1,
                nodes: 2,
            },
            Logs::default(),
        )
    }

    fn finished(r: &Replica) -> u64 {
        r.metrics.finished.iter().sum()
    }

    #[test]
    fn same_seed_same_fleet_and_other_seed_differs() {
        let (mut a, mut b, mut c) = (fleet(5), fleet(5), fleet(6));
        for f in [&mut a, &mut b, &mut c] {
            f.advance(45.0);
        }
        let snapshot = |f: &Fleet| -> Vec<(u64, u64, u64)> {
            f.replicas
                .values()
                .map(|r| (finished(r), r.metrics.generation_tokens, r.metrics.prompt_tokens))
                .collect()
        };
        assert_eq!(snapshot(&a), snapshot(&b));
        assert_ne!(snapshot(&a), snapshot(&c));
        assert!(a.router_requests > 400, "12 req/s for 45 s: {}", a.router_requests);
    }

    #[test]
    fn traffic_follows_weights_and_renormalizes_over_eligible_deployments() {
        let mut f = fleet(1);
        let shares = f.traffic_shares();
        assert!((shares["stable"] - 0.9).abs() < 1e-12 && (shares["canary"] - 0.1).abs() < 1e-12);
        f.advance(100.0);
        let served = |f: &Fleet, d: &str| -> u64 {
            f.replicas.values().filter(|r| r.deployment == d).map(finished).sum()
        };
        let (stable, canary) = (served(&f, "stable") as f64, served(&f, "canary") as f64);
        let canary_share = canary / (stable + canary);
        assert!((0.06..0.14).contains(&canary_share), "canary share {canary_share}");
        // Draining the canary, or crashing its only replica, sends everything to stable.
        f.set_status("canary", "drain").unwrap();
        assert_eq!(f.traffic_shares()["stable"], 1.0);
        f.set_status("canary", "active").unwrap();
        f.inject(FaultKind::ReplicaCrash, Some("canary-0"), 1.0).unwrap();
        assert_eq!(f.traffic_shares()["stable"], 1.0);
        assert_eq!(f.traffic_shares()["canary"], 0.0);
        // Weights are validated before anything changes.
        let bad: BTreeMap<String, f64> = [("stable".to_string(), 0.0)].into();
        let mut zero = fleet(1);
        zero.set_weights(&[("canary".to_string(), 0.0)].into()).unwrap();
        assert_eq!(zero.set_weights(&bad).unwrap_err().status, 400);
        assert_eq!(zero.deployments["stable"].weight, 0.9);
    }

    #[test]
    fn kv_pressure_preempts_and_kv_never_exceeds_capacity_by_much() {
        let mut f = fleet(3);
        f.inject(FaultKind::KvCacheSaturation, Some("stable"), 1.0).unwrap();
        let mut max_usage: f64 = 0.0;
        for _ in 0..240 {
            f.advance(0.5);
            let r = &f.replicas["stable-0"];
            let cap = f.deployments["stable"].config().kv_tokens();
            // One step can overshoot by the decode tokens it just added, never by more.
            assert!(r.kv_used() <= cap + r.running() as f64 + 1.0, "{} > {cap}", r.kv_used());
            max_usage = max_usage.max(f.kv_usage(r));
        }
        let r = &f.replicas["stable-0"];
        assert!(max_usage > 0.9, "KV saturates: {max_usage}");
        assert!(r.metrics.preemptions > 30, "preemptions: {}", r.metrics.preemptions);
        assert_eq!(f.replicas["canary-0"].metrics.preemptions, 0, "canary is not affected");
    }

    #[test]
    fn a_kv_saturation_is_a_burst_of_long_requests_not_a_surge() {
        // Regression: the fault added 4 x intensity times the deployment's traffic and made
        // every request long (about 12 times the work on stable at 0.8): a surge no fleet-sized
        // fix could absorb. Now 0.4 x intensity times the fleet's rate comes on top, and only that is
        // long.
        let kv_per_running = |f: &Fleet| -> f64 {
            let (kv, running) = f
                .replicas
                .values()
                .filter(|r| r.deployment == "stable")
                .fold((0.0, 0), |(kv, n), r| (kv + r.kv_used(), n + r.running()));
            kv / running.max(1) as f64
        };
        let (mut healthy, mut faulty) = (fleet(5), fleet(5));
        healthy.advance(30.0);
        faulty.advance(30.0);
        faulty.inject(FaultKind::KvCacheSaturation, Some("stable"), 0.8).unwrap();
        let (h0, f0) = (healthy.router_requests, faulty.router_requests);
        let (mut h_kv, mut f_kv) = (0.0, 0.0);
        for _ in 0..20 {
            healthy.advance(1.0);
            faulty.advance(1.0);
            h_kv += kv_per_running(&healthy);
            f_kv += kv_per_running(&faulty);
        }
        let (h, f) = (healthy.router_requests - h0, faulty.router_requests - f0);
        // 0.4 x 0.8 of the fleet's rate on top: 1.32 times the requests.
        let growth = f as f64 / h as f64;
        assert!((1.2..1.45).contains(&growth), "{f} vs {h} requests in 20 s: {growth:.2}x");
        assert!(f_kv > 2.0 * h_kv, "longer sequences: {f_kv:.0} vs {h_kv:.0} KV tokens each");
    }

    #[test]
    fn a_traffic_shift_moves_a_kv_burst_instead_of_dropping_it() {
        let mut f = fleet(9);
        f.advance(30.0);
        f.inject(FaultKind::KvCacheSaturation, Some("canary"), 0.3).unwrap();
        let mut peak: f64 = 0.0;
        for _ in 0..90 {
            f.advance(1.0);
            peak = peak.max(f.kv_usage(&f.replicas["canary-0"]));
        }
        assert!(peak > 0.9, "the burst saturates the lone canary: {peak}");
        let before = f.router_requests;
        // Most of the canary's traffic (its share 0.1 -> 0.03) to stable.
        f.set_weights(&[("canary".to_string(), 0.0325)].into()).unwrap();
        let (routes, rate) = f.routes();
        let long_on = |d: &str| -> f64 {
            routes.iter().filter(|r| r.0 == d && r.1).map(|r| r.2).sum::<f64>() * rate
        };
        // 0.4 x 0.3 x 12 = 1.44 requests/s of the burst: what stays follows the canary's share.
        let stay = f.traffic_shares()["canary"] / 0.1;
        assert!((0.3..0.4).contains(&stay), "{stay}");
        assert!((long_on("canary") - 1.44 * stay).abs() < 1e-9, "{}", long_on("canary"));
        assert!((long_on("stable") - 1.44 * (1.0 - stay)).abs() < 1e-9, "{}", long_on("stable"));
        f.advance(90.0);
        let (mut mean_kv, mut queued): (BTreeMap<String, f64>, usize) = (BTreeMap::new(), 0);
        for _ in 0..30 {
            f.advance(1.0);
            for r in f.replicas.values() {
                *mean_kv.entry(r.name.clone()).or_default() += f.kv_usage(r) / 30.0;
                queued = queued.max(r.waiting.len());
            }
        }
        let per_second = (f.router_requests - before) as f64 / 120.0;
        assert!(per_second > 12.9, "the burst still arrives: {per_second:.1} requests/s");
        assert!(
            mean_kv.values().all(|u| *u < 0.8),
            "canary relieved, stable absorbs it: {mean_kv:?}"
        );
        assert!(queued < 5, "no queue anywhere: {queued}");
    }

    #[test]
    fn queued_requests_time_out_as_client_aborts() {
        let mut f = fleet(4);
        // A tiny step budget and batch make the canary far too slow for its traffic.
        let patch = ConfigPatch { max_num_seqs: Some(1), ..ConfigPatch::default() };
        f.change_config("canary", &patch).unwrap();
        f.set_weights(&[("canary".to_string(), 1.0), ("stable".to_string(), 0.0)].into()).unwrap();
        f.advance(200.0);
        let r = &f.replicas["canary-0"];
        assert!(r.metrics.finished[2] > 0, "clients abort after {CLIENT_TIMEOUT_S} s");
        assert!(r.waiting() <= MAX_WAITING);
        let oldest = r
            .waiting
            .iter()
            .filter(|q| q.first_scheduled.is_none())
            .map(|q| q.arrival)
            .fold(f64::INFINITY, f64::min);
        assert!(f.time - oldest <= CLIENT_TIMEOUT_S + 1.0, "no request waits past the timeout");
    }

    #[test]
    fn scheduling_respects_gpus_and_drain_without_room_leaves_replicas_pending() {
        let mut f = fleet(2);
        // 2 nodes x 8 GPUs = 16 slots, 4 used.
        assert_eq!(f.scale("stable", 16).unwrap_err().status, 409, "16 + 1 canary > 16 GPUs");
        assert_eq!(f.replicas.len(), 4, "a refused scale changes nothing");
        f.scale("stable", 15).unwrap();
        assert_eq!(f.replicas.len(), 16);
        let mut gpus: Vec<(usize, u32)> = f.replicas.values().map(|r| (r.node, r.gpu)).collect();
        gpus.sort_unstable();
        gpus.dedup();
        assert_eq!(gpus.len(), 16, "one replica per GPU");
        let out = f.drain_node("gpu-node-a").unwrap();
        assert_eq!(out["moved"], json!([]));
        let pending = out["pending"].as_array().unwrap().len();
        assert_eq!(pending, 8, "no room elsewhere: {out}");
        assert!(
            f.replicas.values().filter(|r| r.down == Some(DownReason::Unschedulable)).count() == 8
        );
        f.scale("stable", 3).unwrap();
        f.uncordon_node("gpu-node-a").unwrap();
        let pending: Vec<String> =
            f.replicas.values().filter(|r| !r.is_up()).map(|r| r.name.clone()).collect();
        for name in pending {
            f.restart(&name).unwrap();
        }
        assert!(f.replicas.values().all(Replica::is_up));
    }

    #[test]
    fn config_versions_roll_out_and_roll_back() {
        let mut f = fleet(9);
        f.advance(10.0);
        let before = f.replicas["canary-0"].started_at;
        let out = f
            .change_config(
                "canary",
                &ConfigPatch { enforce_eager: Some(true), ..ConfigPatch::default() },
            )
            .unwrap();
        assert_eq!(out["config_version"], json!(2));
        assert_eq!(f.replicas["canary-0"].restarts, 1, "a config change restarts the replicas");
        assert_eq!(f.replicas["stable-0"].restarts, 0, "only its own deployment");
        assert!(f.replicas["canary-0"].started_at > before);
        f.rollback("canary", None).unwrap();
        assert_eq!(f.deployments["canary"].config_version, 1);
        assert!(!f.deployments["canary"].config().enforce_eager);
        assert_eq!(f.rollback("canary", Some(3)).unwrap_err().status, 400);
        assert_eq!(f.rollback("canary", Some(2)).unwrap()["config"]["enforce_eager"], json!(true));
        let bad = ConfigPatch { gpu_memory_utilization: Some(1.5), ..ConfigPatch::default() };
        assert_eq!(f.change_config("canary", &bad).unwrap_err().status, 400);
        assert_eq!(f.deployments["canary"].versions.len(), 2, "a rejected change adds no version");
    }

    #[test]
    fn a_regression_ends_with_its_settings_not_its_version_number() {
        let mut f = fleet(2);
        f.inject(FaultKind::CanaryRegression, None, 0.8).unwrap();
        let unrelated = ConfigPatch { max_num_seqs: Some(40), ..ConfigPatch::default() };
        f.change_config("canary", &unrelated).unwrap();
        assert_eq!(f.deployments["canary"].config_version, 3);
        assert_eq!(f.faults.len(), 1, "version 3 still carries the bad settings");
        let fix = ConfigPatch {
            enforce_eager: Some(false),
            max_num_batched_tokens: Some(8192),
            ..ConfigPatch::default()
        };
        f.change_config("canary", &fix).unwrap();
        assert!(f.faults.is_empty(), "rolling forward with a fix ends it");
    }

    #[test]
    fn a_fault_with_a_duration_ends_by_itself() {
        let mut f = fleet(3);
        f.inject_for(FaultKind::ReplicaCrash, Some("stable-1"), 1.0, Some(10.0)).unwrap();
        f.inject_for(FaultKind::TrafficSurge, None, 0.5, Some(30.0)).unwrap();
        f.advance(9.0);
        assert!(!f.replicas["stable-1"].is_up());
        assert_eq!(f.faults.len(), 2);
        f.advance(1.0);
        assert!(f.replicas["stable-1"].is_up(), "the crash ended: the replica restarted");
        assert_eq!(f.replicas["stable-1"].restarts, 1);
        assert_eq!(f.faults.len(), 1);
        f.advance(20.0);
        assert!(f.faults.is_empty(), "the surge passed");
        let bad = f.inject_for(FaultKind::TrafficSurge, None, 0.5, Some(0.0)).unwrap_err();
        assert_eq!(bad.status, 400);
    }

    #[test]
    fn scaling_up_and_down_forever_holds_bounded_resources() {
        let dir = std::env::temp_dir().join(format!("opsg-sim-scale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = fleet(1).cfg.clone();
        let mut f = Fleet::new(cfg, Logs::new(Some(dir.clone())).unwrap());
        for _ in 0..20 {
            f.scale("stable", 12).unwrap();
            f.advance(1.0);
            f.scale("stable", 1).unwrap();
        }
        assert_eq!(f.replicas.len(), 2);
        assert!(f.logs.open_files() <= 4, "{} log files held open", f.logs.open_files());
        f.scale("stable", 10).unwrap();
        f.reset();
        assert_eq!(f.logs.open_files(), 4, "a reset lets go of removed replicas' logs");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scaling_a_saturated_deployment_up_relieves_its_kv_cache() {
        let mut f = fleet(11);
        f.inject(FaultKind::KvCacheSaturation, Some("stable"), 0.8).unwrap();
        f.advance(60.0);
        let preemptions = |f: &Fleet| -> u64 {
            f.replicas
                .values()
                .filter(|r| r.deployment == "stable")
                .map(|r| r.metrics.preemptions)
                .sum()
        };
        let p0 = preemptions(&f);
        f.advance(60.0);
        let saturated = preemptions(&f) - p0;
        assert!(saturated > 5, "saturated: {saturated} preemptions a minute");
        // The burst wants about three times the replicas (measured: 7 still queue at times).
        f.scale("stable", 9).unwrap();
        f.advance(120.0);
        let p1 = preemptions(&f);
        f.advance(60.0);
        let scaled = preemptions(&f) - p1;
        assert!(scaled * 3 < saturated, "after scaling: {scaled} vs {saturated} a minute");
        let stable: Vec<&Replica> =
            f.replicas.values().filter(|r| r.deployment == "stable").collect();
        let kv: Vec<f64> = stable.iter().map(|r| f.kv_usage(r)).collect();
        assert!(kv.iter().all(|u| *u < 0.9), "every replica has room again: {kv:?}");
        let waiting: usize = stable.iter().map(|r| r.waiting.len()).sum();
        assert!(waiting < 10, "the queue drained: {waiting}");
    }

    #[test]
    fn admin_log_is_bounded() {
        let mut f = fleet(1);
        for i in 0..(ADMIN_LOG_CAP + 5) {
            f.log_admin("POST", &format!("/admin/x/{i}"), Value::Null, 200);
        }
        assert_eq!(f.admin_log.len(), ADMIN_LOG_CAP);
        assert_eq!(f.admin_seq, (ADMIN_LOG_CAP + 5) as u64);
        assert_eq!(f.admin_log.front().unwrap().path, "/admin/x/5");
    }
}

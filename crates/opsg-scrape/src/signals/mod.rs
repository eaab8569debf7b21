//! Non-exposition signals: host (procfs), GPUs (NVML), cgroup v2 services, Alertmanager alerts,
//! and bounded log tails. Each source reports "unavailable" with a reason instead of failing the
//! scrape: partial telemetry is data.

pub mod alerts;
pub mod cgroup;
pub mod host;
pub mod logs;
pub mod process;
mod procfile;
pub mod redact;

use opsg_core::evidence::EvidenceStore;
use opsg_core::record::EvidenceRef;
use std::path::PathBuf;
use std::time::Duration;

/// What to collect besides `/metrics` targets.
#[derive(Debug, Clone, Default)]
pub struct SignalArgs {
    /// Collect host signals from procfs (CPU, memory, PSI, load, disk, OOM kills).
    pub host: bool,
    /// Per-process RSS, threads and fds for processes with these names.
    pub processes: Vec<String>,
    /// Collect GPU state through NVML.
    pub gpu: bool,
    /// cgroup v2 stats of these services (unit or cgroup path names).
    pub cgroups: Vec<String>,
    /// Alertmanager base URL (API v2) to read active alerts from.
    pub alertmanager: Option<String>,
    /// An Alertmanager webhook payload file (`-` for stdin).
    pub alerts_file: Option<PathBuf>,
    /// Log files to tail (bounded) for error signatures.
    pub logs: Vec<PathBuf>,
    /// Root of procfs (`/proc`; a fixture directory in tests).
    pub proc_root: PathBuf,
    /// Root of the cgroup v2 hierarchy (`/sys/fs/cgroup`; a fixture directory in tests).
    pub cgroup_root: PathBuf,
    /// Interval between the two `/proc/stat` and `/proc/diskstats` readings that give CPU and disk
    /// utilization. `None`: [`host::DEFAULT_CPU_INTERVAL`]; zero: raw counters only.
    pub cpu_interval: Option<Duration>,
    /// Total time limit of one network request (the Alertmanager API). `None`:
    /// [`alerts::DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// What was collected, ready for the observation body.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// `ObservationBody::host`.
    pub host: Option<serde_json::Value>,
    /// `ObservationBody::gpus`.
    pub gpus: Option<serde_json::Value>,
    /// `ObservationBody::cgroups`.
    pub cgroups: Vec<serde_json::Value>,
    /// `ObservationBody::alerts`.
    pub alerts: Vec<serde_json::Value>,
    /// `ObservationBody::logs`.
    pub logs: Vec<serde_json::Value>,
    /// Evidence stored (log excerpts), for the envelope.
    pub evidence: Vec<EvidenceRef>,
}

/// Collect every requested signal. Never fails: a source that cannot be read says so inside its
/// own entry (`{"available": false, "reason": "…"}`).
pub fn collect(args: &SignalArgs, evidence: Option<&EvidenceStore>) -> Signals {
    let mut signals = Signals::default();
    if args.host {
        let interval = args.cpu_interval.unwrap_or(host::DEFAULT_CPU_INTERVAL);
        signals.host = Some(host::collect_host(&args.proc_root, interval));
    }
    if !args.processes.is_empty() {
        // Per-process signals live in the host object (`host.processes`), with or without
        // the rest of `--host`.
        let processes = process::collect_processes(&args.proc_root, &args.processes);
        let host = signals.host.get_or_insert_with(|| serde_json::json!({}));
        if let Some(obj) = host.as_object_mut() {
            obj.insert("processes".into(), serde_json::Value::Array(processes));
        }
    }
    signals.cgroups = cgroup::collect_cgroups(&args.cgroup_root, &args.cgroups);
    signals.alerts = alerts::collect_alerts(
        args.alertmanager.as_deref(),
        args.alerts_file.as_deref(),
        args.timeout.unwrap_or(alerts::DEFAULT_TIMEOUT),
    );
    for path in &args.logs {
        let (entry, stored) = logs::collect_log(path, evidence);
        signals.logs.push(entry);
        signals.evidence.extend(stored);
    }
    signals
}

//! Non-exposition signals: host (procfs), GPUs (NVML), cgroup v2 services, Alertmanager alerts,
//! and bounded log tails. Each source reports "unavailable" with a reason instead of failing the
//! scrape: partial telemetry is data.

pub mod alerts;
pub mod cgroup;
pub mod gpu;
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
    /// Load NVML from this path instead of `libnvidia-ml.so.1` from the loader's search path.
    pub nvml_lib: Option<PathBuf>,
    /// How long to watch for GPU XID events. `None`: [`gpu::DEFAULT_XID_WINDOW`]; zero: not
    /// watched.
    pub xid_window: Option<Duration>,
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
    let nvml = gpu::NvmlSource { lib_path: args.nvml_lib.clone() };
    collect_with_gpu(args, evidence, &nvml)
}

/// [`collect`] with the GPU source given (a [`gpu::FixtureSource`] in tests and replays).
pub fn collect_with_gpu(
    args: &SignalArgs,
    evidence: Option<&EvidenceStore>,
    gpu_source: &dyn gpu::GpuSource,
) -> Signals {
    let mut signals = Signals::default();
    if args.gpu {
        let window = args.xid_window.unwrap_or(gpu::DEFAULT_XID_WINDOW);
        signals.gpus = Some(gpu::collect_gpus(gpu_source, window));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signals")
    }

    #[test]
    fn collect_fills_every_requested_source() {
        let dir = std::env::temp_dir().join(format!("opsg-signals-{}", std::process::id()));
        let store = EvidenceStore::new(dir.join("evidence"));
        let args = SignalArgs {
            host: true,
            processes: vec!["vllm".into()],
            gpu: true,
            cgroups: vec!["vllm".into(), "nginx".into()],
            alertmanager: None,
            alerts_file: Some(fixtures().join("alerts/webhook_v4.json")),
            logs: vec![fixtures().join("logs/vllm-engine-crash.log"), dir.join("missing.log")],
            proc_root: fixtures().join("proc"),
            cgroup_root: fixtures().join("cgroup"),
            cpu_interval: Some(Duration::ZERO),
            timeout: None,
            nvml_lib: None,
            xid_window: None,
        };
        let gpu = gpu::FixtureSource::from_json(
            &std::fs::read_to_string(fixtures().join("gpu/h100_degraded.json")).unwrap(),
        )
        .unwrap();
        let signals = collect_with_gpu(&args, Some(&store), &gpu);
        let host = signals.host.unwrap();
        assert_eq!(host["hostname"], "vm");
        assert_eq!(host["processes"][0]["processes"][0]["pid"], 4242);
        assert_eq!(signals.gpus.unwrap()["devices"][0]["ecc"]["volatile"]["uncorrected"], 2);
        assert_eq!(signals.cgroups.len(), 2);
        assert_eq!(signals.cgroups[0]["memory"]["events"]["oom_kill"], 2);
        assert_eq!(signals.cgroups[1]["available"], false);
        assert_eq!(signals.alerts.len(), 1);
        assert_eq!(signals.alerts[0]["name"], "VllmKvCacheSaturated");
        assert_eq!(signals.logs.len(), 2);
        assert_eq!(signals.logs[0]["counts"]["cuda_oom"], 1);
        assert_eq!(signals.logs[1]["available"], false);
        // One excerpt stored, referenced from both the log entry and the envelope list.
        assert_eq!(signals.evidence.len(), 1);
        assert_eq!(signals.logs[0]["evidence"], signals.evidence[0].sha256.as_str());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn nothing_requested_collects_nothing() {
        let signals = collect(&SignalArgs::default(), None);
        assert!(signals.host.is_none() && signals.gpus.is_none());
        assert!(signals.cgroups.is_empty() && signals.alerts.is_empty() && signals.logs.is_empty());
    }
}

//! Non-exposition signals: host (procfs), GPUs (NVML), cgroup v2 services, Alertmanager alerts,
//! and bounded log tails. Each source reports "unavailable" with a reason instead of failing the
//! scrape: partial telemetry is data.
//!
//! Every part that could not be read is `{"available": false, "reason": "…"}` in place of its
//! value; a single metric a device or kernel does not offer is `null` (with the reason under
//! `unsupported` for GPUs, or the file under `missing` for cgroups). The shapes, in brief:
//!
//! - `host` ([`host`]): `{available, hostname, cpu: {cpus, jiffies{user,nice,system,idle,iowait,
//!   irq,softirq,steal}, procs_running, procs_blocked, context_switches, interval_ms?,
//!   utilization?, iowait?, steal?, max_core_utilization?, busiest_core?}, memory: {total_bytes, available_bytes, free_bytes,
//!   cached_bytes, dirty_bytes, used_fraction, swap_total_bytes, swap_free_bytes,
//!   swap_used_bytes}, load: {load1, load5, load15, runnable, threads}, pressure: {cpu, memory,
//!   io: {some: {avg10, avg60, avg300, total_us}, full?: {…}}}, disks: [{device, reads, writes,
//!   read_bytes, written_bytes, read_ms, write_ms, in_flight, io_ms, read_bytes_per_s?,
//!   write_bytes_per_s?, utilization?}], filesystems: [{mount, device, size_bytes, used_bytes,
//!   avail_bytes, used_fraction, inodes?, inodes_used?, inodes_used_fraction?}], vm: {oom_kill, pgmajfault,
//!   pswpin, pswpout}, uptime_s, boot_time_unix, files: {allocated, max, used_fraction},
//!   net: [{iface, rx_bytes, rx_packets, rx_errors, rx_dropped, tx_…, rx_bytes_per_s?,
//!   tx_bytes_per_s?, errors_per_s?}], tcp: {active_opens, passive_opens, attempt_fails,
//!   estab_resets, curr_estab, in_segs, out_segs, retrans_segs, in_errs, out_rsts,
//!   retrans_per_s?, retrans_fraction?}, processes?: [{name, matched, total_rss_bytes,
//!   total_threads, total_fds, total_cpu_cores_used?, processes: [{pid, comm, cmdline
//!   (redacted), state, rss_bytes, rss_peak_bytes, vm_size_bytes, swap_bytes, threads, cpu_ticks,
//!   cpu_cores_used?, age_s, start_time_unix, oom_score, fd_limit, fds, fds_reason?}]}]}`
//!   (`?`: only with a sampling interval, or only when present).
//! - `gpus` ([`gpu`]): `{available, driver_version, cuda_driver_version, count, devices: [{index,
//!   name, uuid, pci_bus_id, utilization: {gpu_pct, memory_pct}, memory: {total_bytes,
//!   used_bytes, used_fraction}, temperature_c, power: {draw_w, limit_w}, clocks: {sm_mhz,
//!   memory_mhz, sm_max_mhz}, throttle_reasons: [..], ecc: {enabled, volatile: {corrected,
//!   uncorrected}, aggregate: {…}}, retired_pages: {single_bit, double_bit, pending},
//!   remapped_rows: {corrected, uncorrected, pending, failure}, processes: [{pid, used_bytes}],
//!   unsupported: {path: reason}}],
//!   xid_events: {available, window_ms, events: [{gpu_index, uuid, xid}]}}`.
//! - `cgroups[]` ([`cgroup`]): `{service, path, available, memory: {current_bytes, max_bytes,
//!   high_bytes, peak_bytes, swap_current_bytes, events: {low, high, max, oom, oom_kill,
//!   oom_group_kill}, anon_bytes, file_bytes, kernel_bytes, shmem_bytes, sock_bytes,
//!   used_fraction_of_max}, cpu: {usage_usec, user_usec, system_usec, nr_periods, nr_throttled,
//!   throttled_usec, throttled_fraction, quota_usec, period_usec, quota_cpus}, pids: {current,
//!   max}, pressure: {cpu, memory, io}, missing: [file]}` (`null` limits mean `max`).
//! - `alerts[]` ([`alerts`]): `{source, name, state, severity, labels, annotations, startsAt,
//!   endsAt, fingerprint}`; a source that failed is `{source, available: false, reason}`.
//! - `logs[]` ([`logs`]): `{path, available, format: text|journald-export, file_bytes,
//!   read_bytes, truncated, lines, counts: {signature: n}, matches: {signature: {first_line,
//!   last_line, example}}, xid_codes?: {code: n}, evidence?: sha256, evidence_error?}`; the
//!   stored excerpt's [`EvidenceRef`] also goes to [`Signals::evidence`].

pub mod alerts;
pub mod cgroup;
pub mod filesystem;
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
    /// Collect host signals from procfs (CPU, memory, PSI, load, disks, network, TCP, OOM kills)
    /// and filesystem usage (`df`, live host only).
    pub host: bool,
    /// Per-process RSS, threads and fds for processes with these names (matched against `comm`,
    /// `argv[0]`, or an interpreter's script or `-m` module).
    pub processes: Vec<String>,
    /// Collect GPU state through NVML.
    pub gpu: bool,
    /// cgroup v2 stats of these services (unit or cgroup path names; `.` is the root cgroup).
    pub cgroups: Vec<String>,
    /// Alertmanager base URL (API v2) to read active alerts from.
    pub alertmanager: Option<String>,
    /// An Alertmanager webhook payload file (`-` for stdin).
    pub alerts_file: Option<PathBuf>,
    /// Log files to tail (bounded) for error signatures; `journal:UNIT` reads a systemd unit's
    /// journal and `journal:kernel` the kernel log (NVRM Xid lines, OOM-killer reports).
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
///
/// The slow sources (the CPU/disk sampling interval, the XID watch, the Alertmanager request)
/// run on their own threads, so the whole collection takes about as long as the slowest one.
pub fn collect_with_gpu(
    args: &SignalArgs,
    evidence: Option<&EvidenceStore>,
    gpu_source: &dyn gpu::GpuSource,
) -> Signals {
    // An unset root (SignalArgs::default()) means the live host, not the working directory.
    let mut owned = None;
    if args.proc_root.as_os_str().is_empty() || args.cgroup_root.as_os_str().is_empty() {
        let mut fixed = args.clone();
        if fixed.proc_root.as_os_str().is_empty() {
            fixed.proc_root = PathBuf::from("/proc");
        }
        if fixed.cgroup_root.as_os_str().is_empty() {
            fixed.cgroup_root = PathBuf::from("/sys/fs/cgroup");
        }
        owned = Some(fixed);
    }
    let args = owned.as_ref().unwrap_or(args);
    let mut signals = Signals::default();
    std::thread::scope(|scope| {
        let host = args.host.then(|| {
            let interval = args.cpu_interval.unwrap_or(host::DEFAULT_CPU_INTERVAL);
            scope.spawn(move || host::collect_host(&args.proc_root, interval))
        });
        let gpus = args.gpu.then(|| {
            let window = args.xid_window.unwrap_or(gpu::DEFAULT_XID_WINDOW);
            scope.spawn(move || gpu::collect_gpus(gpu_source, window))
        });
        let alerts = scope.spawn(|| {
            alerts::collect_alerts(
                args.alertmanager.as_deref(),
                args.alerts_file.as_deref(),
                args.timeout.unwrap_or(alerts::DEFAULT_TIMEOUT),
            )
        });

        // Per-process CPU use is sampled over the same interval as the host's.
        let processes = (!args.processes.is_empty()).then(|| {
            let interval = args.cpu_interval.unwrap_or(host::DEFAULT_CPU_INTERVAL);
            scope.spawn(move || {
                process::collect_processes_sampled(&args.proc_root, &args.processes, interval)
            })
        });

        // The quick, file-only sources run here meanwhile.
        signals.cgroups = cgroup::collect_cgroups(&args.cgroup_root, &args.cgroups);
        for path in &args.logs {
            let (entry, stored) = logs::collect_log(path, evidence);
            signals.logs.push(entry);
            signals.evidence.extend(stored);
        }

        // A collector that panicked (a bug) is reported like any other unavailable source.
        let joined = |what: &str| format!("the {what} collector failed unexpectedly");
        signals.host =
            host.map(|h| h.join().unwrap_or_else(|_| procfile::unavailable(joined("host"))));
        signals.gpus =
            gpus.map(|g| g.join().unwrap_or_else(|_| procfile::unavailable(joined("GPU"))));
        signals.alerts =
            alerts.join().unwrap_or_else(|_| vec![procfile::unavailable(joined("alerts"))]);
        let processes = processes
            .map(|p| p.join().unwrap_or_else(|_| vec![procfile::unavailable(joined("process"))]));
        if let Some(processes) = processes {
            // Per-process signals live in the host object (`host.processes`), with or without
            // the rest of `--host`.
            let host = signals.host.get_or_insert_with(|| serde_json::json!({}));
            if let Some(obj) = host.as_object_mut() {
                obj.insert("processes".into(), serde_json::Value::Array(processes));
            }
        }
    });
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
    fn default_roots_mean_the_live_host() {
        let args = SignalArgs {
            host: true,
            cpu_interval: Some(Duration::ZERO),
            cgroups: vec![".".into()],
            ..SignalArgs::default()
        };
        let signals = collect(&args, None);
        let host = signals.host.unwrap();
        assert_eq!(host["available"], true, "{host}");
        assert!(host["memory"]["total_bytes"].as_u64().unwrap() > 0);
        // `.` resolves under /sys/fs/cgroup: available on a cgroup v2 (or hybrid) host, and
        // otherwise a reason naming that root, never the working directory.
        let cgroup = &signals.cgroups[0];
        if cgroup["available"] == false {
            assert!(cgroup["reason"].as_str().unwrap().contains("/sys/fs/cgroup"), "{cgroup}");
        }
    }

    #[test]
    fn nothing_requested_collects_nothing() {
        let signals = collect(&SignalArgs::default(), None);
        assert!(signals.host.is_none() && signals.gpus.is_none());
        assert!(signals.cgroups.is_empty() && signals.alerts.is_empty() && signals.logs.is_empty());
    }
}

//! Host and GPU snapshots (`opsg-scrape --host`, `--gpu`) as series the rules read.
//!
//! `opsg-scrape --host --gpu` puts one procfs snapshot (`host`) and one NVML snapshot (`gpus`) in
//! the observation, next to the scraped targets. Triage turns them into targets of their own, as
//! if a node_exporter and a DCGM exporter on that node had been scraped: `host:<hostname>` and
//! `gpu:<hostname>`, labelled `node: <hostname>` (`local` when the snapshot has no hostname), so a
//! fault they show implicates the replicas on that node exactly as an exporter's would. Their
//! series are named by the snapshot field they come from (`host.pressure.memory.full.avg60`,
//! `gpu.xid_events.xid`), so an anomaly says which field fired; the built-in rules on them point
//! at the same classes as the exporter rules (`host_memory_pressure`, `gpu_fault`,
//! `memory_leak`).
//!
//! One snapshot is one point, at the end of its observation's window. Every observation in the
//! input chain that carries a snapshot adds its point (`cat earlier.jsonl | opsg-scrape --host …`
//! chains them), so counters (`host.vm.oom_kill`, `gpu.ecc.volatile.uncorrected`) and growth
//! (`host.processes.total_rss_bytes`) are judged across snapshots; with a single snapshot there is
//! no increase to measure, and a counter that is non-zero since boot raises nothing. Persistence
//! (`for`) counts snapshots.
//!
//! A snapshot that says `"available": false` (no procfs, no NVML, no GPU) adds no target: missing
//! telemetry never raises an incident, and a CPU-only host is not a GPU problem. A field a device
//! does not support (`null`) adds no series.

use opsg_core::float::Float;
use opsg_core::kinds::observation::{
    MetricType, ObservationBody, Point, SampleInfo, Series, TargetObservation, TargetStatus,
};
use opsg_core::time::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;

/// NVML clock throttle reason bits (`nvmlClocksThrottleReason*`, the same bits DCGM exports as
/// `DCGM_FI_DEV_CLOCKS_EVENT_REASONS`), by the snake_case name opsg-scrape records.
pub const THROTTLE_BITS: &[(&str, u64)] = &[
    ("gpu_idle", 0x01),
    ("applications_clocks_setting", 0x02),
    ("sw_power_cap", 0x04),
    ("hw_slowdown", 0x08),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
];

/// The snapshot series this module produces, with their types (for the rules' metric check).
pub const SNAPSHOT_SERIES: &[(&str, MetricType)] = &[
    ("host.memory.available_bytes", MetricType::Gauge),
    ("host.memory.total_bytes", MetricType::Gauge),
    ("host.pressure.memory.some.avg10", MetricType::Gauge),
    ("host.pressure.memory.some.avg60", MetricType::Gauge),
    ("host.pressure.memory.some.avg300", MetricType::Gauge),
    ("host.pressure.memory.full.avg10", MetricType::Gauge),
    ("host.pressure.memory.full.avg60", MetricType::Gauge),
    ("host.pressure.memory.full.avg300", MetricType::Gauge),
    ("host.vm.oom_kill", MetricType::Counter),
    ("host.processes.total_rss_bytes", MetricType::Gauge),
    ("gpu.xid_events.xid", MetricType::Gauge),
    ("gpu.ecc.volatile.uncorrected", MetricType::Counter),
    ("gpu.retired_pages.pending", MetricType::Gauge),
    ("gpu.remapped_rows.pending", MetricType::Gauge),
    ("gpu.remapped_rows.failure", MetricType::Gauge),
    ("gpu.throttle_reasons", MetricType::Gauge),
    ("gpu.unsupported.gpu_lost", MetricType::Gauge),
];

/// How opsg-scrape words NVML's `NVML_ERROR_GPU_IS_LOST` in a device's `unsupported` reasons: the
/// GPU fell off the bus (what XID 79 announces, here seen even when the XID came before the watch).
const GPU_LOST: &str = "GPU lost";

/// The observation with a target for each source of snapshots (host, GPUs) that `earlier`
/// observations (in chain order) and `obs` itself carry; `obs` unchanged when none does.
pub fn with_snapshots(obs: &ObservationBody, earlier: &[ObservationBody]) -> ObservationBody {
    let mut out = obs.clone();
    out.targets.extend(targets(earlier.iter().chain(std::iter::once(obs))));
    out
}

/// The snapshot targets for a sequence of observations: one per source and host (the `hostname`
/// of the host snapshot an observation carries, `local` without one), so snapshots of two hosts
/// in one chain never make one series.
pub fn targets<'a>(
    observations: impl IntoIterator<Item = &'a ObservationBody>,
) -> Vec<TargetObservation> {
    // Per node, one point per snapshot time: the same observation twice in a chain counts once.
    type ByTime<'v> = BTreeMap<i64, &'v Value>;
    let mut hosts: BTreeMap<&str, ByTime> = BTreeMap::new();
    let mut gpus: BTreeMap<&str, ByTime> = BTreeMap::new();
    for obs in observations {
        let Ok(at) = Timestamp::parse_rfc3339(&obs.window.end) else { continue };
        let host = obs.host.as_ref().filter(|h| available(h));
        let node = host
            .and_then(|h| h.get("hostname"))
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or("local");
        if let Some(h) = host {
            hosts.entry(node).or_default().insert(at.millis(), h);
        }
        if let Some(g) = obs.gpus.as_ref().filter(|g| available(g)) {
            gpus.entry(node).or_default().insert(at.millis(), g);
        }
    }
    let mut out = Vec::new();
    for (node, snapshots) in hosts {
        let mut series = SeriesSet::default();
        for (t, h) in &snapshots {
            host_points(*t, h, &mut series);
        }
        out.push(target(format!("host:{node}"), node, "host", snapshots.keys(), series));
    }
    for (node, snapshots) in gpus {
        let mut series = SeriesSet::default();
        for (t, g) in &snapshots {
            gpu_points(*t, g, &mut series);
        }
        out.push(target(format!("gpu:{node}"), node, "gpu", snapshots.keys(), series));
    }
    out
}

/// True for a target this module made from a snapshot (not a scraped one): telemetry counts
/// scraped targets only.
pub fn is_snapshot(t: &TargetObservation) -> bool {
    t.source.starts_with(SOURCE_PREFIX)
}

/// What a snapshot target's `source` begins with.
const SOURCE_PREFIX: &str = "opsg-scrape --";

/// Which snapshots an observation's targets include, in words (`the host snapshot`), if any.
pub fn described(targets: &[TargetObservation]) -> Option<&'static str> {
    let host = targets.iter().any(|t| t.source == "opsg-scrape --host");
    let gpu = targets.iter().any(|t| t.source == "opsg-scrape --gpu");
    match (host, gpu) {
        (true, true) => Some("the host and GPU snapshots"),
        (true, false) => Some("the host snapshot"),
        (false, true) => Some("the GPU snapshot"),
        (false, false) => None,
    }
}

/// A snapshot (or a part of one) is there unless it says `"available": false`.
fn available(v: &Value) -> bool {
    v.is_object() && v.get("available") != Some(&Value::Bool(false))
}

/// Series being assembled: `(name, labels)` → points.
#[derive(Default)]
struct SeriesSet(BTreeMap<(&'static str, BTreeMap<String, String>), Vec<Point>>);

impl SeriesSet {
    fn push(&mut self, name: &'static str, labels: BTreeMap<String, String>, t: i64, v: f64) {
        if !v.is_finite() {
            return;
        }
        let point = Point { t, v: Some(Float(v)), count: None, sum: None, buckets: Vec::new() };
        self.0.entry((name, labels)).or_default().push(point);
    }
}

fn target<'a>(
    name: String,
    node: &str,
    source: &str,
    times: impl Iterator<Item = &'a i64>,
    series: SeriesSet,
) -> TargetObservation {
    let samples = times
        .map(|t| SampleInfo {
            at: Timestamp(*t).to_rfc3339(),
            status: TargetStatus::Up,
            duration_ms: 0.0,
            reason: None,
            stale: false,
            evidence: None,
        })
        .collect();
    let series = series
        .0
        .into_iter()
        .map(|((name, labels), points)| Series {
            name: name.to_string(),
            source_name: None,
            metric_type: SNAPSHOT_SERIES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(MetricType::Gauge, |(_, t)| *t),
            labels,
            le: Vec::new(),
            points,
        })
        .collect();
    TargetObservation {
        name,
        source: format!("{SOURCE_PREFIX}{source}"),
        labels: BTreeMap::from([("node".to_string(), node.to_string())]),
        status: TargetStatus::Up,
        reason: None,
        samples,
        series,
    }
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn flag(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_bool().map(|b| if b { 1.0 } else { 0.0 })
}

fn host_points(t: i64, h: &Value, out: &mut SeriesSet) {
    let none = BTreeMap::new;
    let memory = h.get("memory").filter(|m| available(m));
    if let Some(m) = memory
        && let (Some(avail), Some(total)) = (num(m, &["available_bytes"]), num(m, &["total_bytes"]))
        && total > 0.0
    {
        out.push("host.memory.available_bytes", none(), t, avail);
        out.push("host.memory.total_bytes", none(), t, total);
    }
    if let Some(p) = h.get("pressure").and_then(|p| p.get("memory")).filter(|p| available(p)) {
        const PSI: [(&str, &str, &str); 6] = [
            ("some", "avg10", "host.pressure.memory.some.avg10"),
            ("some", "avg60", "host.pressure.memory.some.avg60"),
            ("some", "avg300", "host.pressure.memory.some.avg300"),
            ("full", "avg10", "host.pressure.memory.full.avg10"),
            ("full", "avg60", "host.pressure.memory.full.avg60"),
            ("full", "avg300", "host.pressure.memory.full.avg300"),
        ];
        for (line, avg, name) in PSI {
            if let Some(v) = num(p, &[line, avg]) {
                out.push(name, none(), t, v);
            }
        }
    }
    // A number only: on kernels without the counter, `oom_kill` is an "unavailable" object.
    if let Some(v) = num(h, &["vm", "oom_kill"]) {
        out.push("host.vm.oom_kill", none(), t, v);
    }
    for p in h.get("processes").and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(rss)) =
            (p.get("name").and_then(Value::as_str), num(p, &["total_rss_bytes"]))
        else {
            continue;
        };
        // No process of that name running is no reading, not a reading of zero.
        if num(p, &["matched"]).is_some_and(|m| m > 0.0) {
            let labels = BTreeMap::from([("process".to_string(), name.to_string())]);
            out.push("host.processes.total_rss_bytes", labels, t, rss);
        }
    }
}

fn gpu_points(t: i64, g: &Value, out: &mut SeriesSet) {
    let mut by_index: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    for d in g.get("devices").and_then(Value::as_array).into_iter().flatten() {
        let Some(index) = d.get("index").and_then(Value::as_u64) else { continue };
        let mut labels = BTreeMap::from([("gpu".to_string(), index.to_string())]);
        if let Some(uuid) = d.get("uuid").and_then(Value::as_str) {
            labels.insert("uuid".into(), uuid.to_string());
        }
        by_index.insert(index, labels.clone());
        if let Some(reasons) = d.get("unsupported").and_then(Value::as_object) {
            let lost = reasons.values().filter_map(Value::as_str).any(|r| r.starts_with(GPU_LOST));
            out.push("gpu.unsupported.gpu_lost", labels.clone(), t, if lost { 1.0 } else { 0.0 });
        }
        if let Some(v) = num(d, &["ecc", "volatile", "uncorrected"]) {
            out.push("gpu.ecc.volatile.uncorrected", labels.clone(), t, v);
        }
        if let Some(v) = flag(d, &["retired_pages", "pending"]) {
            out.push("gpu.retired_pages.pending", labels.clone(), t, v);
        }
        if let Some(v) = flag(d, &["remapped_rows", "pending"]) {
            out.push("gpu.remapped_rows.pending", labels.clone(), t, v);
        }
        if let Some(v) = flag(d, &["remapped_rows", "failure"]) {
            out.push("gpu.remapped_rows.failure", labels.clone(), t, v);
        }
        if let Some(reasons) = d.get("throttle_reasons").and_then(Value::as_array) {
            let bits = reasons
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|r| THROTTLE_BITS.iter().find(|(n, _)| *n == r).map(|(_, b)| *b))
                .fold(0u64, |acc, b| acc | b);
            out.push("gpu.throttle_reasons", labels, t, bits as f64);
        }
    }
    // XID events seen during the watch: the last code per GPU (an event NVML could not tie to a
    // GPU is `gpu: unknown`). An empty list means none was raised in the window, nothing more.
    let xids = g.get("xid_events").filter(|x| available(x));
    let mut last: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
    for e in xids.and_then(|x| x.get("events")).and_then(Value::as_array).into_iter().flatten() {
        let Some(code) = e.get("xid").and_then(Value::as_f64) else { continue };
        let labels = match e.get("gpu_index").and_then(Value::as_u64) {
            Some(i) => by_index
                .get(&i)
                .cloned()
                .unwrap_or_else(|| BTreeMap::from([("gpu".to_string(), i.to_string())])),
            None => BTreeMap::from([("gpu".to_string(), "unknown".to_string())]),
        };
        last.insert(labels, code);
    }
    for (labels, code) in last {
        out.push("gpu.xid_events.xid", labels, t, code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn obs(end: &str, host: Option<Value>, gpus: Option<Value>) -> ObservationBody {
        let mut o = ObservationBody::default();
        o.window.start = end.into();
        o.window.end = end.into();
        o.host = host;
        o.gpus = gpus;
        o
    }

    fn series<'a>(t: &'a TargetObservation, name: &str) -> Vec<&'a Series> {
        t.series.iter().filter(|s| s.name == name).collect()
    }

    #[test]
    fn a_host_snapshot_becomes_a_target_on_its_node() {
        let host = json!({"available": true, "hostname": "gpu-node-7",
            "memory": {"total_bytes": 1000, "available_bytes": 30},
            "pressure": {"memory": {"some": {"avg10": 50.0, "avg60": 41.5, "avg300": 20.0},
                                    "full": {"avg10": 20.0, "avg60": 12.25, "avg300": 5.0}},
                         "cpu": {"some": {"avg10": 1.0}}},
            "vm": {"oom_kill": 3},
            "processes": [{"name": "vllm", "matched": 2, "total_rss_bytes": 500},
                          {"name": "absent", "matched": 0, "total_rss_bytes": 0}]});
        let out = targets([&obs("2026-11-22T06:00:00Z", Some(host), None)]);
        assert_eq!(out.len(), 1);
        let t = &out[0];
        assert_eq!(t.name, "host:gpu-node-7");
        assert_eq!(t.labels["node"], "gpu-node-7");
        assert_eq!(t.samples.len(), 1);
        let full = series(t, "host.pressure.memory.full.avg60");
        assert_eq!(full[0].points[0].v, Some(Float(12.25)));
        assert_eq!(
            full[0].points[0].t,
            Timestamp::parse_rfc3339("2026-11-22T06:00:00Z").unwrap().0
        );
        assert_eq!(series(t, "host.memory.available_bytes")[0].points[0].v, Some(Float(30.0)));
        assert_eq!(series(t, "host.vm.oom_kill")[0].metric_type, MetricType::Counter);
        let rss = series(t, "host.processes.total_rss_bytes");
        assert_eq!(rss.len(), 1, "a process name that matched nothing is no reading");
        assert_eq!(rss[0].labels["process"], "vllm");
    }

    #[test]
    fn unavailable_snapshots_add_nothing() {
        let host = json!({"available": false, "reason": "no procfs"});
        let gpus = json!({"available": false, "reason": "NVML library could not be loaded"});
        assert!(targets([&obs("2026-11-22T06:00:00Z", Some(host), Some(gpus))]).is_empty());
        // An old kernel: no PSI, no oom_kill counter; memory still counts.
        let host = json!({"available": true, "memory": {"total_bytes": 10, "available_bytes": 5},
            "pressure": {"memory": {"available": false, "reason": "no PSI"}},
            "vm": {"oom_kill": {"available": false, "reason": "Linux 4.13+"}}});
        let out = targets([&obs("2026-11-22T06:00:00Z", Some(host), None)]);
        let names: Vec<&str> = out[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["host.memory.available_bytes", "host.memory.total_bytes"]);
        assert_eq!(out[0].name, "host:local");
    }

    #[test]
    fn gpu_faults_map_per_device_and_xids_to_their_gpu() {
        let gpus = json!({"available": true, "count": 2, "devices": [
            {"index": 0, "uuid": "GPU-a", "throttle_reasons": ["sw_power_cap", "hw_thermal_slowdown"],
             "ecc": {"volatile": {"uncorrected": 2}}, "retired_pages": null,
             "remapped_rows": {"pending": true, "failure": false}},
            {"index": 1, "uuid": null, "throttle_reasons": null, "ecc": {"volatile": {"uncorrected": null}},
             "retired_pages": {"pending": false}, "remapped_rows": null}],
            "xid_events": {"available": true, "events": [
                {"gpu_index": 1, "uuid": null, "xid": 48}, {"gpu_index": 1, "uuid": null, "xid": 79},
                {"gpu_index": null, "uuid": null, "xid": null}]}});
        let out = targets([&obs("2026-11-22T06:00:00Z", None, Some(gpus))]);
        let t = &out[0];
        assert_eq!(t.name, "gpu:local");
        let xid = series(t, "gpu.xid_events.xid");
        assert_eq!(xid.len(), 1, "an event without a code is not a reading");
        assert_eq!(xid[0].labels["gpu"], "1");
        assert_eq!(xid[0].points[0].v, Some(Float(79.0)), "the last code of that GPU");
        let throttle = series(t, "gpu.throttle_reasons");
        assert_eq!(throttle.len(), 1, "null (unsupported) is no reading");
        assert_eq!(throttle[0].points[0].v, Some(Float((0x04 | 0x40) as f64)));
        assert_eq!(throttle[0].labels["uuid"], "GPU-a");
        assert_eq!(series(t, "gpu.remapped_rows.pending")[0].points[0].v, Some(Float(1.0)));
        assert_eq!(series(t, "gpu.retired_pages.pending")[0].labels["gpu"], "1");
        assert_eq!(series(t, "gpu.ecc.volatile.uncorrected").len(), 1);
        assert!(series(t, "gpu.unsupported.gpu_lost").is_empty(), "no `unsupported`, no reading");
    }

    #[test]
    fn snapshots_across_the_chain_are_points_in_time_order() {
        let host = |n: u64| json!({"available": true, "hostname": "n1", "vm": {"oom_kill": n}});
        let a = obs("2026-11-22T06:00:00Z", Some(host(3)), None);
        let b = obs("2026-11-22T06:01:00Z", Some(host(5)), None);
        let merged = with_snapshots(&b, &[a.clone(), b.clone()]);
        assert_eq!(merged.targets.len(), 1);
        let oom = series(&merged.targets[0], "host.vm.oom_kill");
        let values: Vec<f64> = oom[0].points.iter().map(|p| p.v.unwrap().0).collect();
        assert_eq!(values, [3.0, 5.0], "the repeated observation counts once");
        // Another host's snapshot is another target, never a point of this one's series.
        let other = obs(
            "2026-11-22T06:02:00Z",
            Some(json!({"available": true, "hostname": "n2", "vm": {"oom_kill": 50}})),
            Some(json!({"available": true, "devices": []})),
        );
        let both = with_snapshots(&other, &[a, b]);
        let names: Vec<&str> = both.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["host:n1", "host:n2", "gpu:n2"]);
        assert_eq!(series(&both.targets[0], "host.vm.oom_kill")[0].points.len(), 2);
        // Without snapshots the observation is returned as it was.
        let plain = obs("2026-11-22T06:00:00Z", None, None);
        assert_eq!(with_snapshots(&plain, &[]), plain);
    }
}

#[cfg(test)]
mod rule_tests {
    //! The built-in rules on snapshots, through the whole of triage.

    use super::tests::obs;
    use super::*;
    use crate::{Rules, correlate, finding_from, triage};
    use opsg_core::kinds::finding::{FindingBody, FindingStatus, IncidentClass, Method};
    use serde_json::json;

    fn host(psi_full60: f64, psi_some60: f64, avail: u64, oom: u64) -> Value {
        json!({"available": true, "hostname": "node-a",
            "memory": {"total_bytes": 100_000u64, "available_bytes": avail},
            "pressure": {"memory": {
                "some": {"avg10": psi_some60, "avg60": psi_some60, "avg300": 0.0, "total_us": 1},
                "full": {"avg10": psi_full60, "avg60": psi_full60, "avg300": 0.0, "total_us": 1}}},
            "vm": {"oom_kill": oom, "pgmajfault": 0, "pswpin": 0, "pswpout": 0}})
    }

    fn across(observations: &[ObservationBody]) -> FindingBody {
        let rules = Rules::builtin();
        let (last, earlier) = observations.split_last().unwrap();
        let obs = with_snapshots(last, earlier);
        let c = correlate::correlate(&obs, &rules);
        finding_from(&obs, &rules, c.hypotheses, c.fired, c.telemetry, Method::rules())
    }

    fn fired(f: &FindingBody) -> Vec<(&str, &str, &str)> {
        f.anomalies
            .iter()
            .map(|a| (a.rule.as_str(), a.target.as_str(), a.signal.as_str()))
            .collect()
    }

    #[test]
    fn memory_stalls_raise_host_memory_pressure_naming_the_field() {
        let f = triage(
            &obs("2026-11-22T06:00:00Z", Some(host(25.0, 60.0, 20_000, 0)), None),
            &Rules::builtin(),
        );
        assert_eq!(f.status, FindingStatus::Incident);
        assert_eq!(f.class, IncidentClass::HostMemoryPressure);
        assert_eq!(f.affected_targets, ["host:node-a"]);
        let anomalies = fired(&f);
        assert!(anomalies.contains(&(
            "host_memory_stall_full",
            "host:node-a",
            "host.pressure.memory.full.avg60"
        )));
        assert!(anomalies.iter().any(|a| a.0 == "host_memory_stall_some"));
        assert_eq!(f.anomalies[0].value.0, 25.0);
        assert!(f.hypotheses[0].evidence.contains(&"host_memory_stall_full@host:node-a".into()));
    }

    #[test]
    fn a_quiet_host_is_no_incident_and_an_oom_count_since_boot_alone_is_nothing() {
        let f = triage(
            &obs("2026-11-22T06:00:00Z", Some(host(0.0, 0.5, 60_000, 7)), None),
            &Rules::builtin(),
        );
        assert_eq!(f.status, FindingStatus::NoIncident, "{}", f.summary);
        assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
        // Low available memory alone, mildly: corroborating evidence, not an incident.
        let f = triage(
            &obs("2026-11-22T06:00:00Z", Some(host(0.0, 0.0, 4_500, 0)), None),
            &Rules::builtin(),
        );
        assert_eq!(
            fired(&f),
            [(
                "host_memory_available_low",
                "host:node-a",
                "host.memory.available_bytes/host.memory.total_bytes"
            )]
        );
        assert_eq!(f.status, FindingStatus::NoIncident, "{}", f.summary);
    }

    #[test]
    fn oom_kills_count_when_they_increase_between_snapshots() {
        let a = obs("2026-11-22T06:00:00Z", Some(host(0.0, 0.0, 60_000, 7)), None);
        let b = obs("2026-11-22T06:01:00Z", Some(host(0.0, 0.0, 60_000, 9)), None);
        let f = across(&[a.clone(), b]);
        assert_eq!(f.class, IncidentClass::HostMemoryPressure, "{}", f.summary);
        assert_eq!(fired(&f), [("host_oom_kills", "host:node-a", "increase(host.vm.oom_kill)")]);
        assert_eq!(f.anomalies[0].value.0, 2.0);
        let same = obs("2026-11-22T06:01:00Z", Some(host(0.0, 0.0, 60_000, 7)), None);
        assert_eq!(across(&[a, same]).status, FindingStatus::NoIncident);
    }

    #[test]
    fn rss_growing_across_snapshots_is_a_leak() {
        let snap = |end: &str, rss: u64| {
            let h = json!({"available": true, "hostname": "node-a", "processes": [
                {"name": "vllm", "matched": 1, "total_rss_bytes": rss}]});
            obs(end, Some(h), None)
        };
        let f = across(&[
            snap("2026-11-22T06:00:00Z", 10_000_000_000),
            snap("2026-11-22T06:10:00Z", 11_000_000_000),
            snap("2026-11-22T06:20:00Z", 12_000_000_000),
        ]);
        assert_eq!(f.class, IncidentClass::MemoryLeak, "{}", f.summary);
        assert_eq!(f.anomalies[0].signal, "host.processes.total_rss_bytes:growth_per_hour");
        // Flat: nothing.
        let f = across(&[
            snap("2026-11-22T06:00:00Z", 10_000_000_000),
            snap("2026-11-22T06:10:00Z", 10_000_000_000),
            snap("2026-11-22T06:20:00Z", 10_000_000_000),
        ]);
        assert_eq!(f.status, FindingStatus::NoIncident);
    }

    fn gpus(xid: Option<u64>, throttle: &[&str], remap_pending: bool) -> Value {
        json!({"available": true, "count": 1, "devices": [{"index": 0, "uuid": "GPU-0",
            "throttle_reasons": throttle, "ecc": {"volatile": {"uncorrected": 0}},
            "retired_pages": null, "remapped_rows": {"pending": remap_pending, "failure": false}}],
            "xid_events": {"available": true, "window_ms": 100,
                "events": xid.map(|x| vec![json!({"gpu_index": 0, "uuid": "GPU-0", "xid": x})]).unwrap_or_default()}})
    }

    #[test]
    fn gpu_faults_from_the_nvml_snapshot() {
        let rules = Rules::builtin();
        let f =
            triage(&obs("2026-11-22T06:00:00Z", None, Some(gpus(Some(79), &[], false))), &rules);
        assert_eq!(f.class, IncidentClass::GpuFault, "{}", f.summary);
        assert_eq!(fired(&f), [("gpu_xid_event", "gpu:local", "gpu.xid_events.xid")]);
        assert_eq!(f.anomalies[0].value.0, 79.0);
        let f = triage(&obs("2026-11-22T06:00:00Z", None, Some(gpus(None, &[], true))), &rules);
        assert_eq!(f.class, IncidentClass::GpuFault, "{}", f.summary);
        // Power capping at full load is normal; a thermal slowdown in one snapshot is not yet
        // persistent, in two it is.
        let busy = obs("2026-11-22T06:00:00Z", None, Some(gpus(None, &["sw_power_cap"], false)));
        assert_eq!(triage(&busy, &rules).status, FindingStatus::NoIncident);
        let hot = |end: &str| obs(end, None, Some(gpus(None, &["hw_thermal_slowdown"], false)));
        assert!(triage(&hot("2026-11-22T06:00:00Z"), &rules).anomalies.is_empty());
        let f = across(&[hot("2026-11-22T06:00:00Z"), hot("2026-11-22T06:01:00Z")]);
        assert_eq!(f.class, IncidentClass::GpuFault, "{}", f.summary);
        assert_eq!(f.anomalies[0].rule, "gpu_clocks_throttled");
        // A GPU that fell off the bus before the watch: NVML answers every reading "GPU lost".
        let mut lost = gpus(None, &[], false);
        lost["devices"][0]["unsupported"] = json!({
            "name": "GPU lost (fallen off the bus)", "temperature_c": "GPU lost (fallen off the bus)"});
        let f = triage(&obs("2026-11-22T06:00:00Z", None, Some(lost)), &rules);
        assert_eq!(fired(&f), [("gpu_lost", "gpu:local", "gpu.unsupported.gpu_lost")]);
        assert_eq!(f.class, IncidentClass::GpuFault, "{}", f.summary);
        // Unsupported readings for other reasons (a consumer card without ECC) are nothing.
        let mut plain = gpus(None, &[], false);
        plain["devices"][0]["unsupported"] = json!({"ecc.enabled": "not supported on this GPU"});
        let f = triage(&obs("2026-11-22T06:00:00Z", None, Some(plain)), &rules);
        assert_eq!(f.status, FindingStatus::NoIncident, "{}", f.summary);
        // No GPU at all is not a GPU problem.
        let none = json!({"available": false, "reason": "NVML library could not be loaded"});
        let f = triage(&obs("2026-11-22T06:00:00Z", None, Some(none)), &rules);
        assert_eq!(f.status, FindingStatus::NoIncident);
        assert!(f.anomalies.is_empty());
        assert!(!f.telemetry.notes.iter().any(|n| n.contains("NVML")), "{:?}", f.telemetry);
    }
}

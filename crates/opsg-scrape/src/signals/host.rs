//! Host signals from procfs: CPU, memory, pressure stall information, load, disks, and the
//! kernel's OOM-kill counter, read directly from the files under a configurable proc root (so
//! tests run on fixture trees captured from a real machine).
//!
//! Filesystem usage of the live host comes from `df` ([`super::filesystem`]).
//!
//! CPU and disk utilization need two readings: `/proc/stat` and `/proc/diskstats` are read, the
//! collector sleeps for the sampling interval, and they are read again. With a zero interval only
//! the raw counters are reported (downstream can still rate them across `--samples`).

use super::procfile::{parse_flat_keyed, psi_at, read_text, unavailable};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The default interval between the two CPU/disk readings: long enough for a few hundred jiffies
/// on a many-core host (USER_HZ is 100), short enough not to slow a scrape noticeably.
pub const DEFAULT_CPU_INTERVAL: Duration = Duration::from_millis(250);

/// Bytes per sector in `/proc/diskstats`: always 512, whatever the device's real sector size
/// (Documentation/admin-guide/iostats.rst).
const DISKSTATS_SECTOR: u64 = 512;

/// The most disks reported; a host with more is summarized by the first ones in kernel order.
const MAX_DISKS: usize = 256;

/// Collect host signals under `proc_root`, sampling CPU and disks over `interval`.
pub fn collect_host(proc_root: &Path, interval: Duration) -> Value {
    let stat_path = proc_root.join("stat");
    let first_stat = match read_text(&stat_path) {
        Ok(text) => text,
        // Without /proc/stat this is not a procfs at all: one reason says it all.
        Err(reason) => return unavailable(reason),
    };
    let read = |rel: &str| read_text(&proc_root.join(rel)).ok();
    let first_disks = read("diskstats");
    let first_net = read("net/dev");
    let first_snmp = read("net/snmp");
    let started = Instant::now();
    let (second_stat, second_disks, second_net, second_snmp) = if interval.is_zero() {
        (None, None, None, None)
    } else {
        std::thread::sleep(interval);
        (read_text(&stat_path).ok(), read("diskstats"), read("net/dev"), read("net/snmp"))
    };
    let elapsed = started.elapsed();
    let mut host = Map::new();
    host.insert("available".into(), Value::Bool(true));
    if let Ok(name) = read_text(&proc_root.join("sys/kernel/hostname")) {
        host.insert("hostname".into(), Value::String(name.trim().to_string()));
    }
    let measured = second_stat.as_ref().map(|_| elapsed);
    host.insert("cpu".into(), cpu_section(&first_stat, second_stat.as_deref(), measured));
    host.insert(
        "memory".into(),
        match read_text(&proc_root.join("meminfo")) {
            Ok(text) => memory_section(&text),
            Err(reason) => unavailable(reason),
        },
    );
    host.insert(
        "load".into(),
        match read_text(&proc_root.join("loadavg")) {
            Ok(text) => parse_loadavg(&text).unwrap_or_else(unavailable),
            Err(reason) => unavailable(reason),
        },
    );
    let mut pressure = Map::new();
    for resource in ["cpu", "memory", "io"] {
        let path = proc_root.join("pressure").join(resource);
        let mut value = psi_at(&path);
        if value["available"] == false && !path.exists() {
            // Kernels before 4.20, or built without CONFIG_PSI, or booted with psi=0.
            value = unavailable(format!(
                "`{}` not found: the kernel has no pressure stall information (needs Linux 4.20+ with CONFIG_PSI, not booted with psi=0)",
                path.display()
            ));
        }
        pressure.insert(resource.to_string(), value);
    }
    host.insert("pressure".into(), Value::Object(pressure));
    host.insert(
        "disks".into(),
        match &first_disks {
            Some(first) => disks_section(first, second_disks.as_deref(), measured),
            None => {
                unavailable(format!("`{}` not readable", proc_root.join("diskstats").display()))
            }
        },
    );
    // Filesystem usage comes from `df` on the live host; a fixture proc tree has no disks.
    host.insert(
        "filesystems".into(),
        if proc_root == Path::new("/proc") {
            super::filesystem::collect_filesystems()
        } else {
            unavailable(format!(
                "filesystem usage is read from the live host only (`df`), and the proc root `{}` is not /proc",
                proc_root.display()
            ))
        },
    );
    // A recent boot explains a lot (lost state, cold caches, a crash loop of the whole node).
    if let Some(uptime) = read("uptime").as_deref().and_then(parse_uptime) {
        host.insert("uptime_s".into(), json!(uptime));
    }
    if let Some(btime) = stat_counter(&first_stat, "btime") {
        host.insert("boot_time_unix".into(), json!(btime));
    }
    host.insert(
        "files".into(),
        match read("sys/fs/file-nr") {
            Some(text) => parse_file_nr(&text),
            None => unavailable("`sys/fs/file-nr` not readable"),
        },
    );
    host.insert(
        "net".into(),
        match &first_net {
            Some(first) => net_section(first, second_net.as_deref(), measured),
            None => unavailable(format!("`{}` not readable", proc_root.join("net/dev").display())),
        },
    );
    host.insert(
        "tcp".into(),
        match &first_snmp {
            Some(first) => tcp_section(first, second_snmp.as_deref(), measured),
            None => unavailable(format!("`{}` not readable", proc_root.join("net/snmp").display())),
        },
    );
    host.insert(
        "vm".into(),
        match read_text(&proc_root.join("vmstat")) {
            Ok(text) => vm_section(&text),
            Err(reason) => unavailable(reason),
        },
    );
    Value::Object(host)
}

/// The aggregate `cpu` line of `/proc/stat`, in USER_HZ jiffies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

impl CpuTimes {
    fn total(&self) -> u64 {
        // guest/guest_nice are already included in user/nice, so they are not added again.
        sum(&[
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ])
    }
}

/// Saturating sum: counters from a corrupt file must not overflow (a panic in debug builds).
fn sum(values: &[u64]) -> u64 {
    values.iter().fold(0u64, |acc, v| acc.saturating_add(*v))
}

/// Parse the `cpu ` line of `/proc/stat`.
pub(crate) fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    parse_cpu_line(stat.lines().find(|l| l.starts_with("cpu "))?)
}

/// Per-core lines (`cpu0 …`, `cpu1 …`) of `/proc/stat`, by core number.
fn parse_core_times(stat: &str) -> BTreeMap<u32, CpuTimes> {
    stat.lines()
        .filter_map(|line| {
            let (name, _) = line.split_once(' ')?;
            let core = name.strip_prefix("cpu")?.parse::<u32>().ok()?;
            Some((core, parse_cpu_line(line)?))
        })
        .collect()
}

fn parse_cpu_line(line: &str) -> Option<CpuTimes> {
    let mut fields = line.split_ascii_whitespace().skip(1).map(|w| w.parse::<u64>());
    let mut next = || fields.next().and_then(Result::ok);
    let mut times = CpuTimes {
        user: next()?,
        nice: next()?,
        system: next()?,
        idle: next()?,
        ..CpuTimes::default()
    };
    // iowait (2.5.41), irq/softirq (2.6.0) and steal (2.6.11) may be missing on ancient kernels.
    times.iowait = next().unwrap_or(0);
    times.irq = next().unwrap_or(0);
    times.softirq = next().unwrap_or(0);
    times.steal = next().unwrap_or(0);
    Some(times)
}

fn stat_counter(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn cpu_section(first: &str, second: Option<&str>, elapsed: Option<Duration>) -> Value {
    let Some(start) = parse_cpu_times(first) else {
        return unavailable("`stat` has no parsable `cpu` line");
    };
    let cpus = first
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let last_text = second.unwrap_or(first);
    let last = parse_cpu_times(last_text).unwrap_or(start);
    let mut cpu = json!({
        "cpus": cpus,
        "jiffies": {
            "user": last.user, "nice": last.nice, "system": last.system, "idle": last.idle,
            "iowait": last.iowait, "irq": last.irq, "softirq": last.softirq, "steal": last.steal,
        },
        "procs_running": stat_counter(last_text, "procs_running"),
        "procs_blocked": stat_counter(last_text, "procs_blocked"),
        "context_switches": stat_counter(last_text, "ctxt"),
    });
    if let (Some(elapsed), Some(obj)) = (elapsed, cpu.as_object_mut()) {
        obj.insert("interval_ms".into(), json!(elapsed.as_millis() as u64));
        for (key, value) in cpu_utilization(&start, &last) {
            obj.insert(key.into(), value);
        }
        // The average hides one pegged core (a single-threaded API server, an IRQ storm).
        let before = parse_core_times(first);
        let after = parse_core_times(last_text);
        let busiest = after
            .iter()
            .filter_map(|(core, end)| {
                let util = cpu_utilization(before.get(core)?, end);
                Some((*core, util.first()?.1.as_f64()?))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((core, util)) = busiest {
            obj.insert("max_core_utilization".into(), json!(util));
            obj.insert("busiest_core".into(), json!(core));
        }
    }
    cpu
}

/// Fractions of CPU time between two readings: `utilization` (busy, not idle or iowait),
/// `iowait` and `steal`. No elapsed ticks (a counter that went backwards, or too short an interval)
/// gives nulls rather than a division by zero.
pub(crate) fn cpu_utilization(start: &CpuTimes, end: &CpuTimes) -> Vec<(&'static str, Value)> {
    let total = end.total().saturating_sub(start.total());
    if total == 0 || end.total() < start.total() {
        return vec![("utilization", Value::Null), ("iowait", Value::Null), ("steal", Value::Null)];
    }
    let idle = end.idle.saturating_sub(start.idle);
    let iowait = end.iowait.saturating_sub(start.iowait);
    let steal = end.steal.saturating_sub(start.steal);
    let busy = total.saturating_sub(idle.saturating_add(iowait));
    let frac = |n: u64| json!(round4(n as f64 / total as f64));
    vec![("utilization", frac(busy)), ("iowait", frac(iowait)), ("steal", frac(steal))]
}

fn memory_section(meminfo: &str) -> Value {
    let kib = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let mut words = rest.split_ascii_whitespace();
            let value = words.next()?.parse::<u64>().ok()?;
            // Every size field is in kB (really KiB); HugePages_* are counts without a unit.
            Some(if words.next() == Some("kB") { value.saturating_mul(1024) } else { value })
        })
    };
    let Some(total) = kib("MemTotal") else {
        return unavailable("`meminfo` has no MemTotal");
    };
    // MemAvailable appeared in 3.14; before that, free + buffers + cached is the usual estimate.
    let available = kib("MemAvailable").or_else(|| {
        Some(
            kib("MemFree")?
                .saturating_add(kib("Buffers").unwrap_or(0))
                .saturating_add(kib("Cached").unwrap_or(0)),
        )
    });
    let swap_total = kib("SwapTotal");
    let swap_free = kib("SwapFree");
    json!({
        "total_bytes": total,
        "available_bytes": available,
        "free_bytes": kib("MemFree"),
        "cached_bytes": kib("Cached"),
        "dirty_bytes": kib("Dirty"),
        "used_fraction": available.filter(|_| total > 0)
            .map(|a| round4(1.0 - a as f64 / total as f64)),
        "swap_total_bytes": swap_total,
        "swap_free_bytes": swap_free,
        "swap_used_bytes": swap_total.zip(swap_free).map(|(t, f)| t.saturating_sub(f)),
    })
}

/// Parse `/proc/loadavg`: `0.08 0.22 0.16 1/92 14139`.
fn parse_loadavg(text: &str) -> Result<Value, String> {
    let mut words = text.split_ascii_whitespace();
    let mut load = || -> Result<f64, String> {
        words
            .next()
            .and_then(|w| w.parse::<f64>().ok())
            .ok_or_else(|| format!("malformed `loadavg`: `{}`", text.trim()))
    };
    let (load1, load5, load15) = (load()?, load()?, load()?);
    let (runnable, threads) = text
        .split_ascii_whitespace()
        .nth(3)
        .and_then(|w| w.split_once('/'))
        .map(|(r, t)| (r.parse::<u64>().ok(), t.parse::<u64>().ok()))
        .unwrap_or((None, None));
    Ok(json!({
        "load1": load1, "load5": load5, "load15": load15,
        "runnable": runnable, "threads": threads,
    }))
}

/// One device line of `/proc/diskstats` (fields per Documentation/admin-guide/iostats.rst).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskCounters {
    device: String,
    reads: u64,
    sectors_read: u64,
    read_ms: u64,
    writes: u64,
    sectors_written: u64,
    write_ms: u64,
    in_flight: u64,
    io_ms: u64,
}

fn parse_diskstats(text: &str) -> Vec<DiskCounters> {
    text.lines()
        .filter_map(|line| {
            let w: Vec<&str> = line.split_ascii_whitespace().collect();
            if w.len() < 14 {
                return None;
            }
            let n = |i: usize| w.get(i).and_then(|s| s.parse::<u64>().ok());
            Some(DiskCounters {
                device: (*w.get(2)?).to_string(),
                reads: n(3)?,
                sectors_read: n(5)?,
                read_ms: n(6)?,
                writes: n(7)?,
                sectors_written: n(9)?,
                write_ms: n(10)?,
                in_flight: n(11)?,
                io_ms: n(12)?,
            })
        })
        .collect()
}

/// Whole disks worth reporting: not loop/ram/zram devices, not partitions of a listed disk
/// (`sda1` of `sda`, `nvme0n1p1` of `nvme0n1`), and not idle since boot.
fn reportable(disks: &[DiskCounters]) -> Vec<&DiskCounters> {
    disks
        .iter()
        .filter(|d| {
            let name = d.device.as_str();
            let virtual_dev = ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p));
            let partition = name.ends_with(|c: char| c.is_ascii_digit())
                && disks.iter().any(|other| {
                    other.device != name
                        && name.starts_with(other.device.as_str())
                        && name[other.device.len()..]
                            .trim_start_matches('p')
                            .chars()
                            .all(|c| c.is_ascii_digit())
                });
            !virtual_dev && !partition && (d.reads > 0 || d.writes > 0)
        })
        .take(MAX_DISKS)
        .collect()
}

fn disks_section(first: &str, second: Option<&str>, elapsed: Option<Duration>) -> Value {
    let start = parse_diskstats(first);
    let end = second.map(parse_diskstats);
    let last = end.as_deref().unwrap_or(&start);
    let disks: Vec<Value> = reportable(last)
        .into_iter()
        .map(|d| {
            let mut disk = json!({
                "device": d.device,
                "reads": d.reads,
                "writes": d.writes,
                "read_bytes": d.sectors_read.saturating_mul(DISKSTATS_SECTOR),
                "written_bytes": d.sectors_written.saturating_mul(DISKSTATS_SECTOR),
                "read_ms": d.read_ms,
                "write_ms": d.write_ms,
                "in_flight": d.in_flight,
                "io_ms": d.io_ms,
            });
            let before = start.iter().find(|s| s.device == d.device);
            if let (Some(before), Some(elapsed), Some(obj)) =
                (before, elapsed.filter(|e| !e.is_zero()), disk.as_object_mut())
            {
                let secs = elapsed.as_secs_f64();
                let rate = |a: u64, b: u64| json!((b.saturating_sub(a) as f64 / secs).round());
                obj.insert(
                    "read_bytes_per_s".into(),
                    rate(
                        before.sectors_read.saturating_mul(DISKSTATS_SECTOR),
                        d.sectors_read.saturating_mul(DISKSTATS_SECTOR),
                    ),
                );
                obj.insert(
                    "write_bytes_per_s".into(),
                    rate(
                        before.sectors_written.saturating_mul(DISKSTATS_SECTOR),
                        d.sectors_written.saturating_mul(DISKSTATS_SECTOR),
                    ),
                );
                // iostat's %util: the share of wall time the device had I/O in flight.
                let busy_ms = d.io_ms.saturating_sub(before.io_ms) as f64;
                obj.insert(
                    "utilization".into(),
                    json!(round4((busy_ms / (secs * 1000.0)).min(1.0))),
                );
            }
            disk
        })
        .collect();
    Value::Array(disks)
}

/// Seconds since boot, the first field of `/proc/uptime`.
pub(crate) fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// `/proc/sys/fs/file-nr`: allocated handles, free (always 0 since 2.6), system maximum.
fn parse_file_nr(text: &str) -> Value {
    let n: Vec<u64> = text.split_ascii_whitespace().filter_map(|w| w.parse().ok()).collect();
    match n.as_slice() {
        [allocated, _, max] => json!({
            "allocated": allocated,
            "max": max,
            "used_fraction": if *max > 0 { json!(round4(*allocated as f64 / *max as f64)) } else { Value::Null },
        }),
        _ => unavailable(format!("malformed `file-nr`: `{}`", text.trim())),
    }
}

/// One interface of `/proc/net/dev`: `name: rx_bytes rx_packets rx_errs rx_drop … tx_bytes …`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetCounters {
    iface: String,
    rx: [u64; 4],
    tx: [u64; 4],
}

fn parse_net_dev(text: &str) -> Vec<NetCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let n: Vec<u64> =
                rest.split_ascii_whitespace().map(|w| w.parse().ok()).collect::<Option<_>>()?;
            if n.len() < 16 {
                return None;
            }
            Some(NetCounters {
                iface: name.trim().to_string(),
                rx: [n[0], n[1], n[2], n[3]],
                tx: [n[8], n[9], n[10], n[11]],
            })
        })
        .collect()
}

fn net_section(first: &str, second: Option<&str>, elapsed: Option<Duration>) -> Value {
    let start = parse_net_dev(first);
    let end = second.map(parse_net_dev);
    let last = end.as_deref().unwrap_or(&start);
    let ifaces: Vec<Value> = last
        .iter()
        // Interfaces that never moved a packet (ifb, down links) are noise.
        .filter(|c| c.rx[1] > 0 || c.tx[1] > 0)
        .take(MAX_DISKS)
        .map(|c| {
            let mut v = json!({
                "iface": c.iface,
                "rx_bytes": c.rx[0], "rx_packets": c.rx[1], "rx_errors": c.rx[2], "rx_dropped": c.rx[3],
                "tx_bytes": c.tx[0], "tx_packets": c.tx[1], "tx_errors": c.tx[2], "tx_dropped": c.tx[3],
            });
            let before = start.iter().find(|s| s.iface == c.iface);
            if let (Some(before), Some(elapsed), Some(obj)) =
                (before, elapsed.filter(|e| !e.is_zero()), v.as_object_mut())
            {
                let secs = elapsed.as_secs_f64();
                let rate = |a: u64, b: u64| json!((b.saturating_sub(a) as f64 / secs).round());
                obj.insert("rx_bytes_per_s".into(), rate(before.rx[0], c.rx[0]));
                obj.insert("tx_bytes_per_s".into(), rate(before.tx[0], c.tx[0]));
                obj.insert("errors_per_s".into(), rate(
                    sum(&[before.rx[2], before.tx[2], before.rx[3], before.tx[3]]),
                    sum(&[c.rx[2], c.tx[2], c.rx[3], c.tx[3]]),
                ));
            }
            v
        })
        .collect();
    Value::Array(ifaces)
}

/// The `Tcp:` header and value lines of `/proc/net/snmp`, as name → value.
fn parse_snmp_tcp(text: &str) -> Vec<(String, i64)> {
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return Vec::new();
    };
    names
        .split_ascii_whitespace()
        .skip(1)
        .zip(values.split_ascii_whitespace().skip(1))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse::<i64>().ok()?)))
        .collect()
}

fn tcp_section(first: &str, second: Option<&str>, elapsed: Option<Duration>) -> Value {
    let start = parse_snmp_tcp(first);
    if start.is_empty() {
        return unavailable("`net/snmp` has no Tcp lines");
    }
    let end = second.map(parse_snmp_tcp).filter(|e| !e.is_empty());
    let last = end.as_deref().unwrap_or(&start);
    let get =
        |set: &[(String, i64)], key: &str| set.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let mut tcp = Map::new();
    for (key, name) in [
        ("ActiveOpens", "active_opens"),
        ("PassiveOpens", "passive_opens"),
        ("AttemptFails", "attempt_fails"),
        ("EstabResets", "estab_resets"),
        ("CurrEstab", "curr_estab"),
        ("InSegs", "in_segs"),
        ("OutSegs", "out_segs"),
        ("RetransSegs", "retrans_segs"),
        ("InErrs", "in_errs"),
        ("OutRsts", "out_rsts"),
    ] {
        tcp.insert(name.into(), json!(get(last, key)));
    }
    if let (Some(elapsed), Some(_)) = (elapsed.filter(|e| !e.is_zero()), &end) {
        let delta = |key: &str| Some((get(last, key)? - get(&start, key)?).max(0));
        if let (Some(retrans), Some(out)) = (delta("RetransSegs"), delta("OutSegs")) {
            tcp.insert(
                "retrans_per_s".into(),
                json!(round4(retrans as f64 / elapsed.as_secs_f64())),
            );
            // The share of sent segments that were retransmissions: loss on the path.
            if out > 0 {
                tcp.insert("retrans_fraction".into(), json!(round4(retrans as f64 / out as f64)));
            }
        }
    }
    Value::Object(tcp)
}

fn vm_section(vmstat: &str) -> Value {
    let pairs = parse_flat_keyed(vmstat);
    let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut vm = json!({
        "pgmajfault": get("pgmajfault"),
        "pswpin": get("pswpin"),
        "pswpout": get("pswpout"),
    });
    if let Some(obj) = vm.as_object_mut() {
        match get("oom_kill") {
            Some(n) => obj.insert("oom_kill".into(), json!(n)),
            // The counter appeared in Linux 4.13.
            None => obj.insert(
                "oom_kill".into(),
                unavailable("`vmstat` has no oom_kill counter (Linux 4.13+)"),
            ),
        };
    }
    vm
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signals")
    }

    fn fixture(rel: &str) -> String {
        std::fs::read_to_string(fixtures().join(rel)).unwrap()
    }

    #[test]
    fn host_from_a_captured_proc_tree() {
        let host = collect_host(&fixtures().join("proc"), Duration::ZERO);
        assert_eq!(host["available"], true);
        assert_eq!(host["hostname"], "vm");
        assert_eq!(host["cpu"]["cpus"], 2);
        assert_eq!(host["cpu"]["jiffies"]["user"], 20931);
        assert_eq!(host["cpu"]["jiffies"]["idle"], 185472);
        assert_eq!(host["cpu"]["context_switches"], 444_331);
        // No second reading: no utilization claimed.
        assert!(host["cpu"].get("utilization").is_none());
        assert_eq!(host["memory"]["total_bytes"], 24_683_656u64 * 1024);
        assert_eq!(host["memory"]["swap_total_bytes"], 0);
        assert_eq!(host["load"]["load1"], 0.05);
        assert_eq!(host["load"]["load15"], 0.15);
        assert_eq!(host["load"]["threads"], 92);
        assert_eq!(host["pressure"]["io"]["some"]["total_us"], 4_321_222);
        assert_eq!(host["pressure"]["io"]["full"]["avg60"], 0.43);
        assert_eq!(host["pressure"]["cpu"]["some"]["avg300"], 0.74);
        assert_eq!(host["pressure"]["memory"]["some"]["total_us"], 0);
        assert_eq!(host["pressure"]["cpu"]["full"]["total_us"], 0);
        assert_eq!(host["vm"]["oom_kill"], 0);
        assert_eq!(host["vm"]["pgmajfault"], 1647);
        assert_eq!(host["filesystems"]["available"], false, "fixture tree, no live df");
        assert_eq!(host["uptime_s"], 2227.62);
        assert_eq!(host["boot_time_unix"], 1_795_328_628u64);
        assert_eq!(host["files"]["allocated"], 1163);
        assert_eq!(host["files"]["max"], 2_466_165);
        let net = host["net"].as_array().unwrap();
        let names: Vec<&str> = net.iter().filter_map(|i| i["iface"].as_str()).collect();
        assert_eq!(names, ["lo", "eth0"], "idle ifb devices are left out");
        assert_eq!(net[1]["rx_bytes"], 153_394_946u64);
        assert_eq!(net[1]["tx_packets"], 4527);
        assert!(net[1].get("rx_bytes_per_s").is_none());
        assert_eq!(host["tcp"]["retrans_segs"], 8);
        assert_eq!(host["tcp"]["active_opens"], 1117);
        assert_eq!(host["tcp"]["out_rsts"], 126);
        // Loop and zram devices idle since boot are left out; the virtio disk stays.
        let disks = host["disks"].as_array().unwrap();
        assert_eq!(disks.len(), 1, "{disks:?}");
        assert_eq!(disks[0]["device"], "vda");
        assert_eq!(disks[0]["written_bytes"], 4_324_608u64 * 512);
    }

    #[test]
    fn cpu_and_disk_rates_between_two_real_readings() {
        // Two captures one second apart while `yes` spun a core and `dd` wrote 50 MiB direct.
        let (first, second) = (fixture("proc/stat"), fixture("proc-later/stat"));
        let a = parse_cpu_times(&first).unwrap();
        let b = parse_cpu_times(&second).unwrap();
        let util: Map<String, Value> =
            cpu_utilization(&a, &b).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // user +47, system +59, idle +99, iowait +3: busy 106 of 208 ticks.
        assert_eq!(util["utilization"], round4(106.0 / 208.0));
        assert_eq!(util["iowait"], round4(3.0 / 208.0));
        assert_eq!(util["steal"], 0.0);
        // Per core: cpu1 went user +46, system +58, idle +0 (the pegged `yes`); cpu0 stayed idle.
        let cpu = cpu_section(&first, Some(&second), Some(Duration::from_secs(1)));
        assert_eq!(cpu["max_core_utilization"], 1.0);
        assert_eq!(cpu["busiest_core"], 1);
        assert_eq!(cpu["utilization"], round4(106.0 / 208.0));

        let disks = disks_section(
            &fixture("proc/diskstats"),
            Some(&fixture("proc-later/diskstats")),
            Some(Duration::from_secs(2)),
        );
        let vda = &disks[0];
        assert_eq!(vda["device"], "vda");
        // 4427016 - 4324608 sectors of 512 bytes over 2 s.
        assert_eq!(vda["write_bytes_per_s"], (4_427_016u64 - 4_324_608) as f64 * 512.0 / 2.0);
        // io_ms 8124 -> 8152: 28 ms busy in 2000 ms.
        assert_eq!(vda["utilization"], 0.014);
    }

    #[test]
    fn network_rates_between_two_real_readings() {
        // 20 MiB over loopback between the two captures, one second apart.
        let net = net_section(
            &fixture("proc/net/dev"),
            Some(&fixture("proc-later/net/dev")),
            Some(Duration::from_secs(1)),
        );
        let lo = &net[0];
        assert_eq!(lo["iface"], "lo");
        assert_eq!(lo["rx_bytes_per_s"], (150_984_055u64 - 128_432_132) as f64);
        assert_eq!(lo["errors_per_s"], 0.0);
        let tcp = tcp_section(
            &fixture("proc/net/snmp"),
            Some(&fixture("proc-later/net/snmp")),
            Some(Duration::from_secs(1)),
        );
        assert_eq!(tcp["out_segs"], 21_783);
        assert_eq!(tcp["curr_estab"], 4);
        assert_eq!(tcp["retrans_per_s"], 0.0);
        assert_eq!(tcp["retrans_fraction"], 0.0);
        // A lossy path: 50 of 1000 sent segments retransmitted.
        let header = "Tcp: RtoAlgorithm OutSegs RetransSegs\n";
        let tcp = tcp_section(
            &format!("{header}Tcp: 1 1000 10\n"),
            Some(&format!("{header}Tcp: 1 2000 60\n")),
            Some(Duration::from_secs(2)),
        );
        assert_eq!(tcp["retrans_fraction"], 0.05);
        assert_eq!(tcp["retrans_per_s"], 25.0);
        assert_eq!(tcp_section("Ip: 1 2\n", None, None)["available"], false);
    }

    #[test]
    fn counters_going_backwards_give_null_not_garbage() {
        let a = parse_cpu_times("cpu  100 0 100 100 0 0 0 0 0 0\n").unwrap();
        let b = parse_cpu_times("cpu  10 0 10 10 0 0 0 0 0 0\n").unwrap();
        let util = cpu_utilization(&a, &b);
        assert!(util.iter().all(|(_, v)| v.is_null()));
    }

    #[test]
    fn counters_at_u64_max_do_not_overflow() {
        // Regression: sums and byte conversions of corrupt counters panicked in debug builds.
        let max = u64::MAX;
        let stat =
            format!("cpu  {max} {max} {max} {max} {max} {max} {max} {max}\ncpu0 {max} 0 0 0\n");
        let cpu = cpu_section(&stat, Some(&stat), Some(Duration::from_millis(100)));
        assert!(cpu["utilization"].is_null());
        let disk = format!("8 0 sda {max} 0 {max} 0 {max} 0 {max} 0 0 {max} 0\n");
        let disks = disks_section(&disk, Some(&disk), Some(Duration::from_secs(1)));
        assert_eq!(disks[0]["read_bytes"], max);
        let dev = format!("eth0: {max} 1 {max} {max} 0 0 0 0 {max} 1 {max} {max} 0 0 0 0\n");
        let net = net_section(&dev, Some(&dev), Some(Duration::from_secs(1)));
        assert_eq!(net[0]["errors_per_s"], 0.0);
        let mem =
            memory_section(&format!("MemTotal: {max} kB\nMemFree: {max} kB\nCached: {max} kB\n"));
        assert_eq!(mem["total_bytes"], max);
    }

    #[test]
    fn partitions_are_not_double_counted() {
        let text = "   8       0 sda 10 0 80 1 20 0 160 2 0 3 3 0 0 0 0\n\
                    8       1 sda1 9 0 72 1 19 0 152 2 0 3 3 0 0 0 0\n\
                    259     0 nvme0n1 5 0 40 1 5 0 40 1 0 1 1 0 0 0 0\n\
                    259     1 nvme0n1p1 5 0 40 1 5 0 40 1 0 1 1 0 0 0 0\n\
                    253     0 dm-0 7 0 56 1 7 0 56 1 0 1 1 0 0 0 0\n";
        let parsed = parse_diskstats(text);
        let names: Vec<&str> = reportable(&parsed).iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["sda", "nvme0n1", "dm-0"]);
    }

    #[test]
    fn old_kernel_without_psi_or_oom_kill_says_so() {
        let dir = std::env::temp_dir().join(format!("opsg-host-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), "cpu  1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n",
        )
        .unwrap();
        std::fs::write(dir.join("vmstat"), "pgmajfault 7\n").unwrap();
        let host = collect_host(&dir, Duration::ZERO);
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(host["available"], true);
        assert_eq!(host["cpu"]["jiffies"]["idle"], 4);
        assert_eq!(host["cpu"]["jiffies"]["iowait"], 0);
        // No MemAvailable (pre-3.14): free + buffers + cached.
        assert_eq!(host["memory"]["available_bytes"], 400 * 1024);
        assert_eq!(host["memory"]["used_fraction"], 0.6);
        for resource in ["cpu", "memory", "io"] {
            assert_eq!(host["pressure"][resource]["available"], false);
            assert!(host["pressure"][resource]["reason"].as_str().unwrap().contains("CONFIG_PSI"));
        }
        assert_eq!(host["vm"]["oom_kill"]["available"], false);
        assert_eq!(host["load"]["available"], false);
    }

    #[test]
    fn not_a_procfs_is_unavailable() {
        let host = collect_host(Path::new("/nonexistent/opsg-proc"), Duration::ZERO);
        assert_eq!(host["available"], false);
        assert!(host["reason"].as_str().unwrap().contains("/nonexistent/opsg-proc/stat"));
    }

    #[test]
    fn live_proc_with_an_interval_reports_utilization() {
        let host = collect_host(Path::new("/proc"), Duration::from_millis(50));
        if host["available"] == false {
            panic!("/proc must be readable on Linux: {host}");
        }
        let util = &host["cpu"]["utilization"];
        // Either a fraction in [0, 1] or null when no tick elapsed; never out of range.
        if let Some(u) = util.as_f64() {
            assert!((0.0..=1.0).contains(&u), "{u}");
        }
        assert!(host["cpu"]["cpus"].as_u64().unwrap() >= 1);
        assert!(host["memory"]["total_bytes"].as_u64().unwrap() > 0);
        assert!(host["cpu"]["interval_ms"].as_u64().unwrap() >= 50);
        let filesystems = host["filesystems"].as_array().unwrap();
        assert!(filesystems.iter().any(|f| f["mount"] == "/"), "{filesystems:?}");
    }
}

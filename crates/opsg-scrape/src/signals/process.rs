//! Per-process signals for named processes: resident memory (now and peak), threads, open file
//! descriptors against their limit, CPU ticks, OOM score, read from `/proc/<pid>/*` under a
//! configurable proc root.
//!
//! A name matches a process when it equals its `comm` (the kernel's 15-byte name: `VLLM::EngineCor`
//! for vLLM's engine core), the file name of `argv[0]`, or — for an interpreter such as
//! `python3` — the file name of its script or the module after `-m` (`vllm` for
//! `python3 /usr/local/bin/vllm serve …`, `vllm.entrypoints.openai.api_server` for
//! `python -m vllm.entrypoints.openai.api_server`). Other arguments are not looked at, so
//! `tail -f vllm.log` or `journalctl -u vllm` never match `vllm`; the scraper itself is excluded.

use super::procfile::{read_text, unavailable};
use super::redact::redact_line;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The most processes reported per name (a `--process python3` on a busy host).
const MAX_PER_NAME: usize = 32;
/// The most `/proc` entries scanned: bounds the work on a host with a runaway fork count.
const MAX_PIDS_SCANNED: usize = 65_536;
/// Open descriptors counted per process at most (the count saturates there).
const MAX_FDS_COUNTED: usize = 1 << 20;
/// Command lines are cut to this many bytes in the record.
const MAX_CMDLINE: usize = 512;

/// One process's identity, read once per scan.
struct Candidate {
    pid: u32,
    comm: String,
    argv: Vec<String>,
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// Interpreters whose first operand (a script, or the module after `-m`) names the program.
fn is_interpreter(program: &str) -> bool {
    program.starts_with("python")
        || matches!(program, "sh" | "bash" | "dash" | "env" | "node" | "perl" | "ruby")
}

/// What the command line says the program is: `argv[0]`, and for an interpreter also its script
/// or `-m` module.
fn program_names(argv: &[String]) -> Vec<&str> {
    let Some(first) = argv.first() else {
        return Vec::new();
    };
    let mut names = vec![basename(first)];
    if is_interpreter(basename(first)) {
        let mut rest = argv[1..].iter();
        while let Some(arg) = rest.next() {
            if arg == "-m" {
                names.extend(rest.next().map(String::as_str));
                break;
            }
            if arg.starts_with('-') {
                continue;
            }
            names.push(basename(arg));
            break;
        }
    }
    names
}

fn matches(candidate: &Candidate, name: &str) -> bool {
    if candidate.comm == name {
        return true;
    }
    // comm is cut at 15 bytes: `VLLM::EngineCore` shows as `VLLM::EngineCor`.
    if name.len() > 15 && candidate.comm.len() == 15 && name.starts_with(&candidate.comm) {
        return true;
    }
    program_names(&candidate.argv).contains(&name)
}

fn own_pid(proc_root: &Path) -> Option<u32> {
    std::fs::read_link(proc_root.join("self")).ok()?.to_string_lossy().parse().ok()
}

fn candidates(proc_root: &Path) -> Result<Vec<Candidate>, String> {
    let entries =
        std::fs::read_dir(proc_root).map_err(|e| super::procfile::describe_io(proc_root, &e))?;
    let me = own_pid(proc_root);
    let mut out = Vec::new();
    for entry in entries.flatten().take(MAX_PIDS_SCANNED) {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if Some(pid) == me {
            continue;
        }
        let dir = entry.path();
        // A process can exit between read_dir and here: skip it silently.
        let Ok(comm) = read_text(&dir.join("comm")) else {
            continue;
        };
        let argv = read_text(&dir.join("cmdline"))
            .map(|c| c.split('\0').filter(|a| !a.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        out.push(Candidate { pid, comm: comm.trim_end_matches('\n').to_string(), argv });
    }
    out.sort_by_key(|c| c.pid);
    Ok(out)
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let value = status_field(status, key)?;
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    number.parse::<u64>().ok().map(|k| k.saturating_mul(1024))
}

/// utime + stime from `/proc/<pid>/stat`, in clock ticks. The comm field may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    // After the comm: state is field 3 (index 0 here); utime is field 14, stime 15.
    let utime = fields.get(11)?.parse::<u64>().ok()?;
    let stime = fields.get(12)?.parse::<u64>().ok()?;
    Some(utime.saturating_add(stime))
}

/// Clock ticks per second in `/proc/<pid>/stat`. USER_HZ is part of the proc ABI and is 100 on
/// every mainstream Linux architecture; reading it with sysconf(3) would need libc.
const USER_HZ: f64 = 100.0;

/// Start time of the process in clock ticks after boot (`/proc/<pid>/stat` field 22).
fn start_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// What the host clock says, once per scan: seconds since boot and the boot time.
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    uptime_s: Option<f64>,
    boot_time_unix: Option<u64>,
}

fn open_files_limit(limits: &str) -> Option<Value> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_ascii_whitespace().next()?;
    Some(match soft {
        "unlimited" => Value::Null,
        n => json!(n.parse::<u64>().ok()?),
    })
}

fn describe(proc_root: &Path, candidate: &Candidate, clock: Clock) -> Value {
    let dir = proc_root.join(candidate.pid.to_string());
    let stat = read_text(&dir.join("stat")).ok();
    let started = stat.as_deref().and_then(start_ticks).map(|t| t as f64 / USER_HZ);
    // A young process next to an old host is a restart; a few seconds old, a crash loop.
    let age_s = clock
        .uptime_s
        .zip(started)
        .map(|(up, start)| ((up - start).max(0.0) * 100.0).round() / 100.0);
    let start_time_unix =
        clock.boot_time_unix.zip(started).map(|(boot, start)| boot.saturating_add(start as u64));
    let status = read_text(&dir.join("status")).unwrap_or_default();
    let mut cmdline = redact_line(&candidate.argv.join(" "));
    if cmdline.len() > MAX_CMDLINE {
        let mut end = MAX_CMDLINE;
        while !cmdline.is_char_boundary(end) {
            end -= 1;
        }
        cmdline.truncate(end);
        cmdline.push('…');
    }
    let mut process = json!({
        "pid": candidate.pid,
        "comm": candidate.comm,
        "cmdline": cmdline,
        "state": status_field(&status, "State"),
        "rss_bytes": status_kib(&status, "VmRSS"),
        "rss_peak_bytes": status_kib(&status, "VmHWM"),
        "vm_size_bytes": status_kib(&status, "VmSize"),
        "swap_bytes": status_kib(&status, "VmSwap"),
        "threads": status_field(&status, "Threads").and_then(|t| t.parse::<u64>().ok()),
        "cpu_ticks": stat.as_deref().and_then(cpu_ticks),
        "age_s": age_s,
        "start_time_unix": start_time_unix,
        "oom_score": read_text(&dir.join("oom_score")).ok().and_then(|s| s.trim().parse::<i64>().ok()),
        "fd_limit": read_text(&dir.join("limits")).ok().as_deref().and_then(open_files_limit),
    });
    if let Some(obj) = process.as_object_mut() {
        // Listing another user's fd directory needs CAP_SYS_PTRACE or the same uid.
        match std::fs::read_dir(dir.join("fd")) {
            Ok(entries) => {
                obj.insert("fds".into(), json!(entries.take(MAX_FDS_COUNTED).count()));
            }
            Err(e) => {
                obj.insert("fds".into(), Value::Null);
                obj.insert(
                    "fds_reason".into(),
                    json!(super::procfile::describe_io(&dir.join("fd"), &e)),
                );
            }
        }
    }
    process
}

/// One entry per requested name: `{"name", "matched", "processes": […]}`, or an unavailable entry
/// when the proc root cannot be listed.
pub fn collect_processes(proc_root: &Path, names: &[String]) -> Vec<Value> {
    collect_processes_sampled(proc_root, names, Duration::ZERO)
}

/// [`collect_processes`] with CPU use measured over `interval`: each matched process's
/// utime + stime is read, the collector sleeps, and it is read again, giving `cpu_cores_used`
/// (1.0 is one core busy all the time: a single-threaded API server at its ceiling).
pub fn collect_processes_sampled(
    proc_root: &Path,
    names: &[String],
    interval: Duration,
) -> Vec<Value> {
    let all = match candidates(proc_root) {
        Ok(all) => all,
        Err(reason) => {
            return names
                .iter()
                .map(|name| {
                    let mut entry = unavailable(reason.clone());
                    if let Some(obj) = entry.as_object_mut() {
                        obj.insert("name".into(), json!(name));
                    }
                    entry
                })
                .collect();
        }
    };
    let clock = Clock {
        uptime_s: read_text(&proc_root.join("uptime"))
            .ok()
            .as_deref()
            .and_then(super::host::parse_uptime),
        boot_time_unix: read_text(&proc_root.join("stat"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())),
    };
    let found: Vec<Vec<&Candidate>> =
        names.iter().map(|name| all.iter().filter(|c| matches(c, name)).collect()).collect();
    // First CPU reading of every reported process, then one sleep for all of them.
    let ticks_of = |pid: u32| {
        read_text(&proc_root.join(pid.to_string()).join("stat")).ok().as_deref().and_then(cpu_ticks)
    };
    let mut first: BTreeMap<u32, u64> = BTreeMap::new();
    let mut elapsed = None;
    if !interval.is_zero() {
        for c in found.iter().flat_map(|f| f.iter().take(MAX_PER_NAME)) {
            if let Some(t) = ticks_of(c.pid) {
                first.insert(c.pid, t);
            }
        }
        if !first.is_empty() {
            let started = Instant::now();
            std::thread::sleep(interval);
            elapsed = Some(started.elapsed());
        }
    }
    names
        .iter()
        .zip(found)
        .map(|(name, found)| {
            let processes: Vec<Value> = found
                .iter()
                .take(MAX_PER_NAME)
                .map(|c| {
                    let mut p = describe(proc_root, c, clock);
                    if let (Some(elapsed), Some(obj)) = (elapsed, p.as_object_mut()) {
                        let now = obj.get("cpu_ticks").and_then(Value::as_u64);
                        let cores = first
                            .get(&c.pid)
                            .zip(now)
                            // A counter that went backwards is a reused pid: no claim.
                            .filter(|(a, b)| b >= a)
                            .map(|(a, b)| {
                                let used = (b - a) as f64 / USER_HZ / elapsed.as_secs_f64();
                                (used * 1000.0).round() / 1000.0
                            });
                        obj.insert("cpu_cores_used".into(), json!(cores));
                    }
                    p
                })
                .collect();
            // vLLM runs as several processes (API server, engine core, TP workers): the totals
            // are what a memory leak or an fd leak moves.
            let total = |key: &str| -> u64 {
                processes.iter().filter_map(|p| p[key].as_u64()).fold(0, u64::saturating_add)
            };
            let mut entry = json!({
                "name": name,
                "matched": found.len(),
                "total_rss_bytes": total("rss_bytes"),
                "total_threads": total("threads"),
                "total_fds": total("fds"),
            });
            if let (Some(_), Some(obj)) = (elapsed, entry.as_object_mut()) {
                let cores: f64 =
                    processes.iter().filter_map(|p| p["cpu_cores_used"].as_f64()).sum();
                obj.insert("total_cpu_cores_used".into(), json!((cores * 1000.0).round() / 1000.0));
            }
            if let Some(obj) = entry.as_object_mut() {
                obj.insert("processes".into(), Value::Array(processes));
            }
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn proc_fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signals/proc")
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn named_processes_from_a_captured_proc_tree() {
        let out = collect_processes(&proc_fixture(), &names(&["vllm", "sleep", "nginx"]));
        assert_eq!(out.len(), 3);
        let vllm = &out[0];
        assert_eq!(vllm["name"], "vllm");
        // pid 5150 is `tail -f vllm`: an argument, not the program.
        assert_eq!(vllm["matched"], 1, "{vllm}");
        assert_eq!(vllm["total_rss_bytes"], 58_092u64 * 1024);
        assert_eq!(vllm["total_fds"], 10);
        let p = &vllm["processes"][0];
        assert_eq!(p["pid"], 4242);
        assert_eq!(p["comm"], "vllm");
        assert_eq!(p["state"], "S (sleeping)");
        assert_eq!(p["rss_bytes"], 58_092u64 * 1024);
        assert_eq!(p["rss_peak_bytes"], 106_880u64 * 1024);
        assert_eq!(p["vm_size_bytes"], 284_352u64 * 1024);
        assert_eq!(p["threads"], 4);
        assert_eq!(p["cpu_ticks"], 13);
        // Started 135313 ticks (1353.13 s) after boot; the fixture host has been up 2227.62 s.
        assert_eq!(p["age_s"], 874.49);
        assert_eq!(p["start_time_unix"], 1_795_328_628u64 + 1353);
        assert_eq!(p["oom_score"], 668);
        assert_eq!(p["fds"], 10);
        assert_eq!(p["fd_limit"], 20_000);
        let cmdline = p["cmdline"].as_str().unwrap();
        assert!(
            cmdline
                .starts_with("/usr/bin/python3 /tmp/fakebin/vllm serve Qwen/Qwen2.5-0.5B-Instruct")
        );
        assert!(!cmdline.contains("sk-fixture"), "{cmdline}");

        let sleeper = &out[1];
        assert_eq!(sleeper["matched"], 1);
        assert_eq!(sleeper["processes"][0]["pid"], 2001);
        assert_eq!(sleeper["processes"][0]["cmdline"], "sleep 100");
        assert_eq!(sleeper["processes"][0]["rss_bytes"], 1_828u64 * 1024);
        // The fixture keeps no fd directory for pid 2001: unknown, with the reason, not zero.
        assert!(sleeper["processes"][0]["fds"].is_null());
        assert!(sleeper["processes"][0]["fds_reason"].as_str().unwrap().contains("not found"));

        assert_eq!(out[2]["matched"], 0);
        assert_eq!(out[2]["total_rss_bytes"], 0);
        assert_eq!(out[2]["processes"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn program_names_of_interpreted_commands() {
        let argv = names(&[
            "/usr/bin/python3",
            "-u",
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            "x",
        ]);
        assert_eq!(program_names(&argv), ["python3", "vllm.entrypoints.openai.api_server"]);
        let argv = names(&["python3.12", "/usr/local/bin/vllm", "serve", "m"]);
        assert_eq!(program_names(&argv), ["python3.12", "vllm"]);
        let argv = names(&["/usr/bin/tail", "-f", "vllm"]);
        assert_eq!(program_names(&argv), ["tail"]);
        assert!(program_names(&[]).is_empty());
    }

    #[test]
    fn truncated_comm_matches_the_long_name() {
        let engine = Candidate { pid: 7, comm: "VLLM::EngineCor".into(), argv: vec![] };
        assert!(matches(&engine, "VLLM::EngineCore"));
        assert!(!matches(&engine, "VLLM::Engine"));
    }

    #[test]
    fn live_children_are_found_in_the_real_proc() {
        use std::os::unix::process::CommandExt;
        let name = format!("opsg-probe-{}", std::process::id());
        let mut children = Vec::new();
        for _ in 0..2 {
            match std::process::Command::new("sleep").arg("30").arg0(&name).spawn() {
                Ok(child) => children.push(child),
                Err(e) => panic!("cannot spawn sleep: {e}"),
            }
        }
        // The kernel closes the exec-error pipe (so `spawn` returns) before it installs the new
        // command line: wait, bounded, until each child's /proc entry shows the new program.
        for child in &children {
            let cmdline = format!("/proc/{}/cmdline", child.id());
            for _ in 0..200 {
                if std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(name.as_bytes())) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let out = collect_processes(Path::new("/proc"), std::slice::from_ref(&name));
        let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let entry = &out[0];
        assert_eq!(entry["matched"], 2, "{entry}");
        let procs = entry["processes"].as_array().unwrap();
        let mut seen: Vec<u64> = procs.iter().filter_map(|p| p["pid"].as_u64()).collect();
        seen.sort_unstable();
        let mut want: Vec<u64> = pids.iter().map(|&p| u64::from(p)).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
        let rss: u64 = procs.iter().map(|p| p["rss_bytes"].as_u64().unwrap()).sum();
        assert!(rss > 0);
        assert_eq!(entry["total_rss_bytes"], rss);
        assert_eq!(entry["total_threads"], 2);
        let p = &procs[0];
        assert_eq!(p["comm"], "sleep");
        // Just started: its start time (btime + ticks / USER_HZ) is now, give or take the
        // coarse btime and a slow machine; a wrong USER_HZ would be off by minutes or hours.
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                as i64;
        let started = p["start_time_unix"].as_i64().unwrap();
        assert!((now - started).abs() < 120, "started {started}, now {now}");
        assert!(p["age_s"].as_f64().unwrap() < 120.0, "{p}");
        // stdin, stdout, stderr at least.
        assert!(p["fds"].as_u64().unwrap() >= 3, "{p}");
    }

    #[test]
    fn cpu_use_of_a_busy_and_an_idle_process() {
        use std::os::unix::process::CommandExt;
        let busy_name = format!("opsg-busy-{}", std::process::id());
        let idle_name = format!("opsg-idle-{}", std::process::id());
        let spawn = |name: &str, script: &str| {
            std::process::Command::new("sh")
                .arg0(name)
                .args(["-c", script])
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn sh: {e}"))
        };
        let mut busy = spawn(&busy_name, "while :; do :; done");
        let mut idle = spawn(&idle_name, "sleep 30");
        for child in [&busy, &idle] {
            let cmdline = format!("/proc/{}/cmdline", child.id());
            for _ in 0..200 {
                if std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"opsg-")) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let out = collect_processes_sampled(
            Path::new("/proc"),
            &[busy_name, idle_name],
            Duration::from_millis(500),
        );
        for child in [&mut busy, &mut idle] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let busy_cores = out[0]["processes"][0]["cpu_cores_used"].as_f64().unwrap();
        let idle_cores = out[1]["processes"][0]["cpu_cores_used"].as_f64().unwrap();
        // A spinning shell burns CPU whenever it is scheduled; `sh -c sleep` waits in wait(2).
        assert!(busy_cores > 0.05, "busy {busy_cores}");
        assert!(idle_cores < busy_cores, "idle {idle_cores} busy {busy_cores}");
        assert!(busy_cores <= 1.05, "one thread cannot use more than a core: {busy_cores}");
        assert_eq!(out[0]["total_cpu_cores_used"], busy_cores);
    }

    #[test]
    fn unlistable_proc_root_is_unavailable_per_name() {
        let out = collect_processes(Path::new("/nonexistent/proc"), &names(&["vllm"]));
        assert_eq!(out[0]["name"], "vllm");
        assert_eq!(out[0]["available"], false);
    }
}

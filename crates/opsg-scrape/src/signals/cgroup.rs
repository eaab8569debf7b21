//! cgroup v2 stats of named services: memory (current, limits, peak, OOM events), CPU (usage and
//! CFS throttling against the quota), pids, and per-cgroup pressure stall information.
//!
//! A service name maps to a path under the cgroup root the way systemd lays units out:
//! `vllm` and `vllm.service` → `system.slice/vllm.service`; `machine.slice` → `machine.slice`;
//! anything with a `/` (`kubepods.slice/kubepods-burstable.slice/…`) is taken as a path relative
//! to the root; `.` or `/` is the root cgroup (the whole host). A file missing from a cgroup means its controller is not enabled there; the
//! entry lists such files under `missing` rather than guessing zeros.

use super::procfile::{parse_flat_keyed, psi_at, read_text, unavailable};
use serde_json::{Map, Value, json};
use std::path::{Component, Path, PathBuf};

/// Map a service name to its cgroup path relative to the root, or say why it cannot be one.
pub fn service_path(name: &str) -> Result<PathBuf, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("empty service name".to_string());
    }
    let relative = if name == "." || name == "/" {
        // The root cgroup itself (the whole host).
        PathBuf::new()
    } else if name.contains('/') {
        PathBuf::from(name.trim_start_matches('/'))
    } else if name.ends_with(".slice") {
        PathBuf::from(name)
    } else if [".service", ".scope", ".socket", ".mount"].iter().any(|s| name.ends_with(s)) {
        Path::new("system.slice").join(name)
    } else {
        Path::new("system.slice").join(format!("{name}.service"))
    };
    // The path must stay under the root: no `..`, no absolute components.
    if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("cgroup path `{name}` must stay under the cgroup root (no `..`)"));
    }
    Ok(relative)
}

/// A cgroup file holding one number, or `max` (no limit → `null`).
fn limit_value(text: &str) -> Option<Value> {
    let t = text.trim();
    if t == "max" {
        return Some(Value::Null);
    }
    t.parse::<u64>().ok().map(Value::from)
}

struct Reader<'a> {
    dir: &'a Path,
    missing: Vec<String>,
}

impl Reader<'_> {
    fn text(&mut self, file: &str) -> Option<String> {
        match read_text(&self.dir.join(file)) {
            Ok(text) => Some(text),
            Err(_) => {
                self.missing.push(file.to_string());
                None
            }
        }
    }

    fn limit(&mut self, file: &str) -> Value {
        self.text(file).and_then(|t| limit_value(&t)).unwrap_or(Value::Null)
    }

    fn keyed(&mut self, file: &str, keys: &[&str]) -> Option<Map<String, Value>> {
        let text = self.text(file)?;
        let pairs = parse_flat_keyed(&text);
        Some(
            keys.iter()
                .filter_map(|k| {
                    let (_, v) = pairs.iter().find(|(key, _)| key == k)?;
                    Some((k.to_string(), json!(v)))
                })
                .collect(),
        )
    }
}

/// Stats of one service's cgroup.
pub fn collect_cgroup(cgroup_root: &Path, service: &str) -> Value {
    let with_name = |mut v: Value| {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("service".into(), json!(service));
        }
        v
    };
    let relative = match service_path(service) {
        Ok(p) => p,
        Err(reason) => return with_name(unavailable(reason)),
    };
    // A hybrid (v1 + v2) host mounts the v2 tree at `<root>/unified`: use it when the root
    // itself is not v2.
    let hybrid = !cgroup_root.join("cgroup.controllers").exists()
        && cgroup_root.join("unified/cgroup.controllers").exists();
    let root = if hybrid { cgroup_root.join("unified") } else { cgroup_root.to_path_buf() };
    let dir = root.join(&relative);
    if !dir.is_dir() {
        let mut reason = format!("cgroup `{}` not found", dir.display());
        if hybrid {
            reason.push_str(" (hybrid v1/v2 host: looked in its v2 tree)");
        } else if !root.join("cgroup.controllers").exists() {
            reason.push_str(&format!(
                "; `{}` is not a cgroup v2 hierarchy (no cgroup.controllers)",
                root.display()
            ));
        }
        return with_name(unavailable(reason));
    }
    let mut r = Reader { dir: &dir, missing: Vec::new() };

    let mut memory = Map::new();
    memory.insert("current_bytes".into(), r.limit("memory.current"));
    memory.insert("max_bytes".into(), r.limit("memory.max"));
    memory.insert("high_bytes".into(), r.limit("memory.high"));
    // memory.peak is Linux 5.19+.
    memory.insert("peak_bytes".into(), r.limit("memory.peak"));
    memory.insert("swap_current_bytes".into(), r.limit("memory.swap.current"));
    let events =
        r.keyed("memory.events", &["low", "high", "max", "oom", "oom_kill", "oom_group_kill"]);
    memory.insert("events".into(), events.map_or(Value::Null, Value::Object));
    if let Some(stat) = r.keyed("memory.stat", &["anon", "file", "kernel", "shmem", "sock"]) {
        for (k, v) in stat {
            memory.insert(format!("{k}_bytes"), v);
        }
    }
    if let (Some(current), Some(max)) =
        (memory["current_bytes"].as_u64(), memory["max_bytes"].as_u64())
        && max > 0
    {
        memory.insert(
            "used_fraction_of_max".into(),
            json!((current as f64 / max as f64 * 10_000.0).round() / 10_000.0),
        );
    }

    let mut cpu = r
        .keyed(
            "cpu.stat",
            &[
                "usage_usec",
                "user_usec",
                "system_usec",
                "nr_periods",
                "nr_throttled",
                "throttled_usec",
            ],
        )
        .unwrap_or_default();
    if let (Some(periods), Some(throttled)) = (
        cpu.get("nr_periods").and_then(Value::as_u64),
        cpu.get("nr_throttled").and_then(Value::as_u64),
    ) && periods > 0
    {
        cpu.insert(
            "throttled_fraction".into(),
            json!((throttled as f64 / periods as f64 * 10_000.0).round() / 10_000.0),
        );
    }
    // cpu.max: `$MAX $PERIOD`, MAX being `max` for no quota.
    if let Some(text) = r.text("cpu.max") {
        let mut words = text.split_ascii_whitespace();
        let quota = words.next().and_then(limit_value).unwrap_or(Value::Null);
        let period = words.next().and_then(|p| p.parse::<u64>().ok());
        if let (Some(q), Some(p)) = (quota.as_u64(), period)
            && p > 0
        {
            cpu.insert("quota_cpus".into(), json!(q as f64 / p as f64));
        }
        cpu.insert("quota_usec".into(), quota);
        cpu.insert("period_usec".into(), json!(period));
    }

    let pids = json!({ "current": r.limit("pids.current"), "max": r.limit("pids.max") });

    let mut pressure = Map::new();
    for resource in ["cpu", "memory", "io"] {
        pressure.insert(resource.into(), psi_at(&dir.join(format!("{resource}.pressure"))));
    }

    json!({
        "service": service,
        "path": if relative.as_os_str().is_empty() {
            ".".to_string()
        } else {
            relative.display().to_string()
        },
        "root": root.display().to_string(),
        "available": true,
        "memory": memory,
        "cpu": cpu,
        "pids": pids,
        "pressure": pressure,
        "missing": r.missing,
    })
}

/// Stats of every named service.
pub fn collect_cgroups(cgroup_root: &Path, services: &[String]) -> Vec<Value> {
    services.iter().map(|s| collect_cgroup(cgroup_root, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signals/cgroup")
    }

    #[test]
    fn service_names_map_to_systemd_paths() {
        assert_eq!(service_path("vllm").unwrap(), Path::new("system.slice/vllm.service"));
        assert_eq!(service_path("vllm.service").unwrap(), Path::new("system.slice/vllm.service"));
        assert_eq!(service_path("machine.slice").unwrap(), Path::new("machine.slice"));
        assert_eq!(service_path("/kubepods.slice/pod1").unwrap(), Path::new("kubepods.slice/pod1"));
        assert_eq!(service_path(".").unwrap(), Path::new(""));
        assert_eq!(service_path("/").unwrap(), Path::new(""));
        assert!(service_path("../../etc").is_err());
        assert!(service_path("a/../../b").is_err());
        assert!(service_path("  ").is_err());
    }

    #[test]
    fn throttled_oom_killing_service() {
        let v = collect_cgroup(&root(), "vllm");
        assert_eq!(v["available"], true);
        assert_eq!(v["path"], "system.slice/vllm.service");
        let m = &v["memory"];
        assert_eq!(m["current_bytes"], 34_359_410_688u64);
        assert_eq!(m["max_bytes"], 34_359_738_368u64);
        assert!(m["high_bytes"].is_null(), "`max` is no limit");
        assert_eq!(m["events"]["oom"], 3);
        assert_eq!(m["events"]["oom_kill"], 2);
        assert_eq!(m["events"]["max"], 18_342);
        assert_eq!(m["anon_bytes"], 33_285_668_864u64);
        assert_eq!(m["used_fraction_of_max"], 1.0);
        let c = &v["cpu"];
        assert_eq!(c["usage_usec"], 8_812_349_211u64);
        assert_eq!(c["nr_throttled"], 30_000);
        assert_eq!(c["throttled_fraction"], 0.25);
        assert_eq!(c["quota_cpus"], 8.0);
        assert_eq!(c["period_usec"], 100_000);
        assert_eq!(v["pids"]["current"], 212);
        assert!(v["pids"]["max"].is_null());
        assert_eq!(v["pressure"]["memory"]["full"]["avg10"], 9.8);
        assert_eq!(v["pressure"]["io"]["some"]["total_us"], 7_592_879);
        assert_eq!(v["missing"].as_array().unwrap().len(), 0, "{}", v["missing"]);
    }

    #[test]
    fn real_cgroup_without_memory_controller_lists_what_is_missing() {
        // The real v2 root of this VM: only core CPU accounting and pressure.
        let v = collect_cgroup(&root(), "real-unified-root/");
        assert_eq!(v["available"], true);
        assert_eq!(v["cpu"]["usage_usec"], 434_094_226u64);
        assert_eq!(v["cpu"]["user_usec"], 368_429_172u64);
        assert!(v["cpu"].get("throttled_fraction").is_none());
        assert!(v["memory"]["current_bytes"].is_null());
        assert_eq!(v["pressure"]["cpu"]["some"]["avg10"], 3.45);
        let missing: Vec<&str> =
            v["missing"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for file in ["memory.current", "memory.max", "memory.events", "cpu.max", "pids.current"] {
            assert!(missing.contains(&file), "{file} not in {missing:?}");
        }
        assert!(!missing.contains(&"cpu.stat"));
    }

    #[test]
    fn unknown_service_and_v1_root_say_why() {
        let v = collect_cgroup(&root(), "nginx");
        assert_eq!(v["available"], false);
        assert_eq!(v["service"], "nginx");
        assert!(v["reason"].as_str().unwrap().contains("system.slice/nginx.service"));

        let plain = std::env::temp_dir().join(format!("opsg-cg-v1-{}", std::process::id()));
        std::fs::create_dir_all(plain.join("memory")).unwrap();
        let v = collect_cgroup(&plain, "vllm");
        std::fs::remove_dir_all(&plain).ok();
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains("not a cgroup v2 hierarchy"), "{reason}");
    }

    #[test]
    fn hybrid_host_reads_the_unified_tree() {
        let dir = std::env::temp_dir().join(format!("opsg-cg-hybrid-{}", std::process::id()));
        let service = dir.join("unified/system.slice/vllm.service");
        std::fs::create_dir_all(&service).unwrap();
        std::fs::write(dir.join("unified/cgroup.controllers"), "hugetlb\n").unwrap();
        std::fs::write(
            service.join("cpu.stat"),
            "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n",
        )
        .unwrap();
        let v = collect_cgroup(&dir, "vllm");
        let missing = collect_cgroup(&dir, "nginx");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(v["available"], true, "{v}");
        assert_eq!(v["cpu"]["usage_usec"], 1234);
        assert!(v["root"].as_str().unwrap().ends_with("unified"));
        assert!(missing["reason"].as_str().unwrap().contains("hybrid"));
    }

    #[test]
    fn the_live_root_cgroup_of_this_host() {
        // `.` names the root cgroup itself. Every cgroup v2 root accounts CPU in cpu.stat.
        let root = Path::new("/sys/fs/cgroup");
        let v2 = root.join("cgroup.controllers").exists()
            || root.join("unified/cgroup.controllers").exists();
        let v = collect_cgroup(root, ".");
        if !v2 {
            assert_eq!(v["available"], false);
            return;
        }
        assert_eq!(v["available"], true, "{v}");
        assert_eq!(v["path"], ".");
        assert!(v["cpu"]["usage_usec"].as_u64().unwrap() > 0, "{v}");
        assert!(
            v["pressure"]["cpu"]["some"]["total_us"].is_u64()
                || v["pressure"]["cpu"]["available"] == false
        );
    }
}

//! Which series travel in the record, and under which name.
//!
//! **Renames.** vLLM renamed metrics between releases (the history is in
//! `reference/vllm-metrics.md`, taken from the released sources). A record always uses the current
//! (V1, 0.11+) spelling, so triage reads one name whatever version served it; the exposed name is
//! kept in `source_name`. Only true renames of the same quantity are mapped; metrics that were
//! removed without a successor (V0 `vllm:avg_prompt_throughput_toks_per_s`, say) keep their names.
//! When a server exposes both spellings (the deprecation window), the current one wins and the old
//! one is dropped, so a series never appears twice.
//!
//! **Selection.** A vLLM `/metrics` page is mostly histogram buckets; node_exporter exposes
//! thousands of series. Records stay small by keeping, by default: every `vllm:` family (except
//! `_created` timestamps), `process_*`, `DCGM_*` (GPU exporter), `http_requests_total` (vLLM's API
//! server answers by status), `up`, and the node_exporter families the incident classes need
//! (memory, load, CPU, pressure, OOM kills, filesystem and disk, network errors). `--keep GLOB` adds more (`*` matches any run of characters); `--keep '*'` keeps all.

/// vLLM renames: (old exposed name, current exposed name). Histograms are listed by family name;
/// counters by their `_total` sample name, as exposed.
pub const VLLM_RENAMES: &[(&str, &str)] = &[
    // V1 0.9.2 renamed the KV-cache gauge; the old one was hidden in 0.11 and removed by 0.20.
    ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
    // V1 0.9.2: prefix cache counters lost the `gpu_` prefix.
    ("vllm:gpu_prefix_cache_queries_total", "vllm:prefix_cache_queries_total"),
    ("vllm:gpu_prefix_cache_hits_total", "vllm:prefix_cache_hits_total"),
    ("vllm:gpu_prefix_cache_queries", "vllm:prefix_cache_queries"),
    ("vllm:gpu_prefix_cache_hits", "vllm:prefix_cache_hits"),
    // 0.10: TPOT observed per-iteration gaps; renamed to inter-token latency.
    ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"),
    // V0 0.7-0.8: deprecated in favour of the request queue-time histogram.
    ("vllm:time_in_queue_requests", "vllm:request_queue_time_seconds"),
];

/// The current name for an exposed name, when vLLM renamed it.
pub fn current_name(name: &str) -> Option<&'static str> {
    VLLM_RENAMES.iter().find(|(old, _)| *old == name).map(|(_, new)| *new)
}

/// True when `name` is an old spelling whose current spelling is also in `present` (the server is
/// in a deprecation window): the old one is dropped.
pub fn superseded(name: &str, present: &dyn Fn(&str) -> bool) -> bool {
    current_name(name).is_some_and(present)
}

/// Families kept by default besides node_exporter's: vLLM's own, the process and GPU exporters',
/// `up`, and the request counter vLLM's API server exposes (prometheus_fastapi_instrumentator:
/// `http_requests_total{handler,method,status}`, where 5xx answers show).
pub const DEFAULT_KEEP: &[&str] = &["vllm:*", "process_*", "DCGM_*", "up", "http_requests_total"];

/// node_exporter families kept by default: what the host-side incident classes need.
pub const NODE_KEEP: &[&str] = &[
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_SwapFree_bytes",
    "node_memory_SwapTotal_bytes",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_cpu_seconds_total",
    "node_pressure_*",
    "node_vmstat_oom_kill",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
    "node_disk_io_time_seconds_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_network_receive_errs_total",
    "node_network_transmit_errs_total",
    "node_network_receive_drop_total",
    "node_network_transmit_drop_total",
    "node_time_seconds",
    "node_boot_time_seconds",
    "node_exporter_build_info",
];

/// Decides which families are kept.
#[derive(Debug, Clone)]
pub struct Keep {
    patterns: Vec<String>,
    all: bool,
}

impl Default for Keep {
    fn default() -> Keep {
        Keep::with_extra(&[])
    }
}

impl Keep {
    /// The default selection plus `extra` globs (`*` keeps everything).
    pub fn with_extra(extra: &[String]) -> Keep {
        let mut patterns: Vec<String> = DEFAULT_KEEP.iter().map(|s| s.to_string()).collect();
        patterns.extend(NODE_KEEP.iter().map(|s| s.to_string()));
        patterns.extend(extra.iter().cloned());
        let all = extra.iter().any(|p| p == "*");
        Keep { patterns, all }
    }

    /// True when a family (by its exposed name) goes into the record.
    pub fn keeps(&self, family: &str) -> bool {
        if self.all {
            return true;
        }
        // vLLM V1 (single process) exposes a `_created` gauge per counter and histogram: creation
        // timestamps, not signals. An explicit `--keep` still brings them back.
        let default_drop = family.starts_with("vllm:") && family.ends_with("_created");
        self.patterns.iter().enumerate().any(|(i, p)| {
            let explicit = i >= DEFAULT_KEEP.len() + NODE_KEEP.len();
            glob(p, family) && (explicit || !default_drop)
        })
    }
}

/// Match `text` against a glob where `*` matches any run of characters (no other wildcards).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_map_old_to_current() {
        assert_eq!(current_name("vllm:gpu_cache_usage_perc"), Some("vllm:kv_cache_usage_perc"));
        assert_eq!(
            current_name("vllm:time_per_output_token_seconds"),
            Some("vllm:inter_token_latency_seconds")
        );
        assert_eq!(current_name("vllm:kv_cache_usage_perc"), None);
        // Wire names of counters did not change with the 0.9 registered-name renames.
        assert_eq!(current_name("vllm:prompt_tokens_total"), None);
        let present = |n: &str| n == "vllm:kv_cache_usage_perc";
        assert!(superseded("vllm:gpu_cache_usage_perc", &present));
        assert!(!superseded("vllm:gpu_prefix_cache_hits_total", &present));
    }

    #[test]
    fn globs() {
        assert!(glob("vllm:*", "vllm:num_requests_running"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("node_pressure_*", "node_pressure_memory_waiting_seconds_total"));
        assert!(!glob("up", "upx"));
    }

    #[test]
    fn default_selection() {
        let keep = Keep::default();
        assert!(keep.keeps("vllm:kv_cache_usage_perc"));
        assert!(keep.keeps("process_resident_memory_bytes"));
        assert!(keep.keeps("DCGM_FI_DEV_XID_ERRORS"));
        assert!(keep.keeps("node_filesystem_avail_bytes"));
        assert!(!keep.keeps("node_netstat_Tcp_InSegs"));
        assert!(!keep.keeps("python_gc_objects_collected_total"));
        assert!(keep.keeps("http_requests_total"));
        assert!(!keep.keeps("http_request_duration_seconds"));
        assert!(!keep.keeps("vllm:prompt_tokens_created"));
        let keep = Keep::with_extra(&["python_*".into(), "vllm:*_created".into()]);
        assert!(keep.keeps("python_gc_objects_collected_total"));
        assert!(keep.keeps("vllm:prompt_tokens_created"));
        assert!(Keep::with_extra(&["*".into()]).keeps("anything_at_all"));
    }
}

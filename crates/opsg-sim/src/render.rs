//! The three exposition payloads: a vLLM replica's `/metrics` (prometheus_client style), a node's
//! dcgm-exporter `/metrics` and a node's node_exporter `/metrics` (client_golang style).
//!
//! Names, types, HELP texts, label sets and bucket boundaries are vLLM 0.33.0's V1 engine
//! (`vllm/v1/metrics/loggers.py`), dcgm-exporter's `default-counters.csv` and node_exporter's
//! filesystem/meminfo collectors. prometheus_client sorts label names and prints `_created`
//! gauges after each counter and histogram family; this renderer does the same.

use crate::model::{
    FINISHED_REASONS, Fleet, GPU_FB_MIB, GPU_MODEL, HISTOGRAMS, MODEL_NAME, Replica, gpu_power,
};
use crate::numfmt::{dcgm, go, py};
use std::fmt::Write;

/// Content type of the text exposition format 0.0.4 (what vLLM and the exporters send).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out {
    text: String,
    labels: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }
    /// A sample with the replica's base labels plus `extra` (already sorted into place).
    fn sample(&mut self, name: &str, extra_before: &str, extra_after: &str, value: f64) {
        let _ = writeln!(
            self.text,
            "{name}{{{extra_before}{}{extra_after}}} {}",
            self.labels,
            py(value)
        );
    }
}

/// A replica's vLLM `/metrics`.
pub fn vllm(fleet: &Fleet, r: &Replica) -> String {
    let mut o = Out { text: String::with_capacity(48 * 1024), labels: String::new() };
    let start = fleet.unix(r.started_at);
    let created = start;
    let m = &r.metrics;

    // Process and Python collectors come first in prometheus_client's default registry.
    let gc = [(1843.0, 0.0, 112.0), (379.0, 0.0, 10.0), (17.0, 0.0, 1.0)];
    o.family("python_gc_objects_collected_total", "counter", "Objects collected during gc");
    for (g, (c, _, _)) in gc.iter().enumerate() {
        let _ =
            writeln!(o.text, "python_gc_objects_collected_total{{generation=\"{g}\"}} {}", py(*c));
    }
    o.family(
        "python_gc_objects_uncollectable_total",
        "counter",
        "Uncollectable objects found during GC",
    );
    for (g, (_, u, _)) in gc.iter().enumerate() {
        let _ = writeln!(
            o.text,
            "python_gc_objects_uncollectable_total{{generation=\"{g}\"}} {}",
            py(*u)
        );
    }
    o.family(
        "python_gc_collections_total",
        "counter",
        "Number of times this generation was collected",
    );
    for (g, (_, _, n)) in gc.iter().enumerate() {
        let _ = writeln!(o.text, "python_gc_collections_total{{generation=\"{g}\"}} {}", py(*n));
    }
    o.family("python_info", "gauge", "Python platform information");
    let _ = writeln!(
        o.text,
        "python_info{{implementation=\"CPython\",major=\"3\",minor=\"12\",patchlevel=\"3\",version=\"3.12.3\"}} 1.0"
    );
    o.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    let _ = writeln!(o.text, "process_virtual_memory_bytes {}", py((r.rss_bytes + 38.0e9).round()));
    o.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    let _ = writeln!(o.text, "process_resident_memory_bytes {}", py(r.rss_bytes.round()));
    o.family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(o.text, "process_start_time_seconds {}", py((start * 100.0).round() / 100.0));
    o.family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(
        o.text,
        "process_cpu_seconds_total {}",
        py((m.cpu_seconds * 100.0).round() / 100.0)
    );
    o.family("process_open_fds", "gauge", "Number of open file descriptors.");
    let _ = writeln!(o.text, "process_open_fds {}", py(61.0 + (r.running() as f64)));
    o.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    let _ = writeln!(o.text, "process_max_fds 1.048576e+06");

    // vLLM families, in V1 registration order. Labels sort as engine, [le|reason|…], model_name.
    o.labels = format!("engine=\"0\",model_name=\"{MODEL_NAME}\"");
    let base = o.labels.clone();
    let model_only = format!("model_name=\"{MODEL_NAME}\"");

    o.family(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
    );
    o.sample("vllm:num_requests_running", "", "", r.running() as f64);
    o.family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.");
    o.sample("vllm:num_requests_waiting", "", "", r.waiting() as f64);
    o.family(
        "vllm:num_requests_waiting_by_reason",
        "gauge",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
    );
    for (reason, v) in [("capacity", r.waiting() as f64), ("deferred", 0.0)] {
        let _ = writeln!(
            o.text,
            "vllm:num_requests_waiting_by_reason{{engine=\"0\",{model_only},reason=\"{reason}\"}} {}",
            py(v)
        );
    }
    o.family(
        "vllm:engine_sleep_state",
        "gauge",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
    );
    for (state, v) in [("awake", 1.0), ("weights_offloaded", 0.0), ("discard_all", 0.0)] {
        let _ = writeln!(
            o.text,
            "vllm:engine_sleep_state{{engine=\"0\",{model_only},sleep_state=\"{state}\"}} {}",
            py(v)
        );
    }
    o.family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.");
    o.sample("vllm:kv_cache_usage_perc", "", "", fleet.kv_usage(r));

    let counters: [(&str, &str, u64); 5] = [
        (
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            m.prefix_queries,
        ),
        (
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            m.prefix_hits,
        ),
        ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", m.preemptions),
        ("vllm:prompt_tokens", "Number of prefill tokens processed.", m.prompt_tokens),
        ("vllm:generation_tokens", "Number of generation tokens processed.", m.generation_tokens),
    ];
    for (name, help, value) in counters {
        o.family(&format!("{name}_total"), "counter", help);
        o.sample(&format!("{name}_total"), "", "", value as f64);
        o.family(&format!("{name}_created"), "gauge", help);
        o.sample(&format!("{name}_created"), "", "", created);
        if name == "vllm:prompt_tokens" {
            // 0.20+: prompt tokens by source, and cached prompt tokens.
            let help = "Number of prompt tokens by source.";
            o.family("vllm:prompt_tokens_by_source_total", "counter", help);
            let computed = m.prompt_tokens.saturating_sub(m.prefix_hits) as f64;
            for (source, v) in [
                ("local_compute", computed),
                ("local_cache_hit", m.prefix_hits.min(m.prompt_tokens) as f64),
                ("external_kv_transfer", 0.0),
            ] {
                let _ = writeln!(
                    o.text,
                    "vllm:prompt_tokens_by_source_total{{engine=\"0\",{model_only},source=\"{source}\"}} {}",
                    py(v)
                );
            }
            o.family("vllm:prompt_tokens_by_source_created", "gauge", help);
            for source in ["local_compute", "local_cache_hit", "external_kv_transfer"] {
                let _ = writeln!(
                    o.text,
                    "vllm:prompt_tokens_by_source_created{{engine=\"0\",{model_only},source=\"{source}\"}} {}",
                    py(created)
                );
            }
            let help = "Number of cached prompt tokens (local + external).";
            o.family("vllm:prompt_tokens_cached_total", "counter", help);
            o.sample(
                "vllm:prompt_tokens_cached_total",
                "",
                "",
                m.prefix_hits.min(m.prompt_tokens) as f64,
            );
            o.family("vllm:prompt_tokens_cached_created", "gauge", help);
            o.sample("vllm:prompt_tokens_cached_created", "", "", created);
        }
    }
    let help = "Count of successfully processed requests.";
    o.family("vllm:request_success_total", "counter", help);
    for (i, reason) in FINISHED_REASONS.iter().enumerate() {
        let _ = writeln!(
            o.text,
            "vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",{model_only}}} {}",
            py(m.finished[i] as f64)
        );
    }
    o.family("vllm:request_success_created", "gauge", help);
    for reason in FINISHED_REASONS {
        let _ = writeln!(
            o.text,
            "vllm:request_success_created{{engine=\"0\",finished_reason=\"{reason}\",{model_only}}} {}",
            py(created)
        );
    }

    for (i, (name, help)) in HISTOGRAMS.iter().enumerate() {
        let hist = &m.hists[i];
        o.family(name, "histogram", help);
        let cumulative = hist.cumulative();
        for (bound, count) in hist.bounds.iter().zip(&cumulative) {
            let _ = writeln!(
                o.text,
                "{name}_bucket{{engine=\"0\",le=\"{}\",{model_only}}} {}",
                py(*bound),
                py(*count as f64)
            );
        }
        let _ = writeln!(
            o.text,
            "{name}_bucket{{engine=\"0\",le=\"+Inf\",{model_only}}} {}",
            py(hist.count as f64)
        );
        let _ = writeln!(o.text, "{name}_count{{{base}}} {}", py(hist.count as f64));
        let _ = writeln!(o.text, "{name}_sum{{{base}}} {}", py(hist.sum));
        o.family(&format!("{name}_created"), "gauge", help);
        o.sample(&format!("{name}_created"), "", "", created);
    }

    let cfg = fleet.deployments[&r.deployment].config();
    o.family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    let kv_tokens = cfg.kv_tokens() as u64;
    let _ = writeln!(
        o.text,
        "vllm:cache_config_info{{block_size=\"16\",cache_dtype=\"auto\",calculate_kv_scales=\"False\",cpu_offload_gb=\"0\",enable_prefix_caching=\"{}\",engine=\"0\",gpu_memory_utilization=\"{}\",is_attention_free=\"False\",kv_cache_max_concurrency=\"{:.2}\",kv_cache_size_tokens=\"{kv_tokens}\",num_cpu_blocks=\"None\",num_gpu_blocks=\"{}\",num_gpu_blocks_override=\"None\",prefix_caching_hash_algo=\"sha256\",sliding_window=\"None\",swap_space=\"4\",swap_space_bytes=\"4294967296\"}} 1.0",
        if cfg.enable_prefix_caching { "True" } else { "False" },
        cfg.gpu_memory_utilization,
        kv_tokens as f64 / crate::model::MAX_MODEL_LEN as f64,
        kv_tokens / 16,
    );
    o.text
}

/// A node's dcgm-exporter `/metrics` (labels as the current Go template renders them, plus the
/// kubelet pod mapping for GPUs that host a replica).
pub fn dcgm_exporter(fleet: &Fleet, ni: usize) -> String {
    let node = &fleet.nodes[ni];
    let mut text = String::with_capacity(32 * 1024);
    let labels: Vec<String> = node
        .gpus
        .iter()
        .map(|g| {
            let mut l = format!(
                "gpu=\"{}\",UUID=\"{}\",pci_bus_id=\"{}\",device=\"nvidia{}\",modelName=\"{GPU_MODEL}\",Hostname=\"{}\",DCGM_FI_DRIVER_VERSION=\"550.127.05\"",
                g.index, g.uuid, g.pci_bus_id, g.index, node.name
            );
            if let Some(r) = fleet.gpu_tenant(ni, g.index) {
                let _ = write!(l, ",container=\"vllm\",namespace=\"inference\",pod=\"{}\"", r.name);
            }
            l
        })
        .collect();
    let util: Vec<f64> = node
        .gpus
        .iter()
        .map(|g| fleet.gpu_tenant(ni, g.index).map(Replica::gpu_utilization).unwrap_or(0.0))
        .collect();
    let fb_used: Vec<f64> = node
        .gpus
        .iter()
        .map(|g| {
            fleet
                .gpu_tenant(ni, g.index)
                .map(|r| {
                    (GPU_FB_MIB * fleet.deployments[&r.deployment].config().gpu_memory_utilization)
                        .round()
                })
                .unwrap_or(0.0)
        })
        .collect();
    type Field<'a> = (&'a str, &'a str, &'a str, Box<dyn Fn(usize) -> f64 + 'a>);
    let fields: Vec<Field> = vec![
        (
            "DCGM_FI_DEV_SM_CLOCK",
            "gauge",
            "SM clock frequency (in MHz).",
            Box::new(|i| if util[i] > 0.0 { 1980.0 } else { 345.0 }),
        ),
        (
            "DCGM_FI_DEV_MEM_CLOCK",
            "gauge",
            "Memory clock frequency (in MHz).",
            Box::new(|_| 2619.0),
        ),
        (
            "DCGM_FI_DEV_MEMORY_TEMP",
            "gauge",
            "Memory temperature (in C).",
            Box::new(|i| (34.0 + 22.0 * util[i]).round()),
        ),
        (
            "DCGM_FI_DEV_GPU_TEMP",
            "gauge",
            "GPU temperature (in C).",
            Box::new(|i| (31.0 + 38.0 * util[i]).round()),
        ),
        (
            "DCGM_FI_DEV_POWER_USAGE",
            "gauge",
            "Power draw (in W).",
            Box::new(|i| {
                ((gpu_power(util[i], node.gpus[i].lost)) * 1000.0).round() / 1000.0 + 0.000123
            }),
        ),
        (
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "counter",
            "Total energy consumption since boot (in mJ).",
            Box::new(|i| node.gpus[i].energy_mj.round()),
        ),
        (
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
            "counter",
            "Total number of PCIe retries.",
            Box::new(|i| node.gpus[i].pcie_replays.floor()),
        ),
        (
            "DCGM_FI_DEV_GPU_UTIL",
            "gauge",
            "GPU utilization (in %).",
            Box::new(|i| (100.0 * util[i]).round()),
        ),
        (
            "DCGM_FI_DEV_MEM_COPY_UTIL",
            "gauge",
            "Memory utilization (in %).",
            Box::new(|i| (61.0 * util[i]).round()),
        ),
        ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", Box::new(|_| 0.0)),
        ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", Box::new(|_| 0.0)),
        (
            "DCGM_FI_DEV_XID_ERRORS",
            "gauge",
            "Value of the last XID error encountered.",
            Box::new(|i| f64::from(node.gpus[i].xid)),
        ),
        (
            "DCGM_FI_DEV_FB_FREE",
            "gauge",
            "Framebuffer memory free (in MiB).",
            Box::new(|i| (GPU_FB_MIB - 547.0 - fb_used[i]).max(0.0)),
        ),
        (
            "DCGM_FI_DEV_FB_USED",
            "gauge",
            "Framebuffer memory used (in MiB).",
            Box::new(|i| fb_used[i]),
        ),
        (
            "DCGM_FI_DEV_FB_RESERVED",
            "gauge",
            "Framebuffer memory reserved (in MiB).",
            Box::new(|_| 547.0),
        ),
        (
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
            "counter",
            "Total number of single-bit volatile ECC errors.",
            Box::new(|i| node.gpus[i].ecc_sbe.floor()),
        ),
        (
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
            "counter",
            "Total number of double-bit volatile ECC errors.",
            Box::new(|i| node.gpus[i].ecc_dbe.floor()),
        ),
        (
            "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
            "counter",
            "Total number of NVLink bandwidth counters for all lanes.",
            Box::new(|_| 0.0),
        ),
        ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", Box::new(|_| 0.0)),
        (
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
            "counter",
            "Number of remapped rows for uncorrectable errors",
            Box::new(|i| node.gpus[i].remapped_uncorrectable),
        ),
        (
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
            "counter",
            "Number of remapped rows for correctable errors",
            Box::new(|i| node.gpus[i].remapped_correctable),
        ),
        (
            "DCGM_FI_DEV_ROW_REMAP_FAILURE",
            "gauge",
            "Whether remapping of rows has failed",
            Box::new(|i| if node.gpus[i].remap_failure { 1.0 } else { 0.0 }),
        ),
        (
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "gauge",
            "Ratio of time the graphics engine is active.",
            Box::new(|i| (util[i] * 0.97 * 1e6).round() / 1e6 + 1e-7),
        ),
        (
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "gauge",
            "Ratio of cycles the tensor (HMMA) pipe is active.",
            Box::new(|i| (util[i] * 0.41 * 1e6).round() / 1e6 + 1e-7),
        ),
        (
            "DCGM_FI_PROF_DRAM_ACTIVE",
            "gauge",
            "Ratio of cycles the device memory interface is active sending or receiving data.",
            Box::new(|i| (util[i] * 0.63 * 1e6).round() / 1e6 + 1e-7),
        ),
    ];
    for (name, kind, help, value) in &fields {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (i, l) in labels.iter().enumerate() {
            if node.gpus[i].lost && *name != "DCGM_FI_DEV_XID_ERRORS" {
                // A GPU that fell off the bus reports nothing but its last XID.
                continue;
            }
            let _ = writeln!(text, "{name}{{{l}}} {}", dcgm(value(i)));
        }
    }
    text
}

/// A node's node_exporter `/metrics` (filesystem, memory, load, boot time).
pub fn node_exporter(fleet: &Fleet, ni: usize) -> String {
    let node = &fleet.nodes[ni];
    let mut t = String::with_capacity(8 * 1024);
    let fs = [
        ("/dev/nvme0n1p2", "ext4", "/", node.fs_size, node.fs_avail()),
        ("/dev/nvme0n1p1", "vfat", "/boot/efi", 536_834_048.0, 530_821_120.0),
    ];
    let family = |t: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(t, "# HELP {name} {help}");
        let _ = writeln!(t, "# TYPE {name} {kind}");
    };
    let up: Vec<&Replica> = fleet.replicas.values().filter(|r| r.node == ni && r.is_up()).collect();
    let rss: f64 = up.iter().map(|r| r.rss_bytes).sum();
    let busy: f64 = up.iter().map(|r| r.gpu_utilization()).sum();
    let load = 2.0 + 1.5 * up.len() as f64 + 4.0 * busy;
    let now = fleet.unix(fleet.time);
    family(&mut t, "node_boot_time_seconds", "gauge", "Node boot time, in unixtime.");
    let _ = writeln!(t, "node_boot_time_seconds {}", go(fleet.unix(node.boot_time).floor()));
    for (name, help, f) in [
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            0usize,
        ),
        (
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            1,
        ),
        ("node_filesystem_files", "Filesystem total file nodes.", 2),
        ("node_filesystem_files_free", "Filesystem total free file nodes.", 3),
        ("node_filesystem_free_bytes", "Filesystem free space in bytes.", 4),
        ("node_filesystem_readonly", "Filesystem read-only status.", 5),
        ("node_filesystem_size_bytes", "Filesystem size in bytes.", 6),
    ] {
        family(&mut t, name, "gauge", help);
        for (device, fstype, mount, size, avail) in fs {
            let v = match f {
                0 => avail,
                1 | 5 => 0.0,
                2 => (size / 16384.0).floor(),
                3 => (size / 16384.0 * 0.97).floor(),
                // ext4 reserves 5% for root: free = avail + reserved.
                4 => {
                    if fstype == "ext4" {
                        (avail + size * 0.05).min(size)
                    } else {
                        avail
                    }
                }
                _ => size,
            };
            let _ = writeln!(
                t,
                "{name}{{device=\"{device}\",device_error=\"\",fstype=\"{fstype}\",mountpoint=\"{mount}\"}} {}",
                go(v.floor())
            );
        }
    }
    family(&mut t, "node_load1", "gauge", "1m load average.");
    let _ = writeln!(t, "node_load1 {}", go((load * 100.0).round() / 100.0));
    family(&mut t, "node_load5", "gauge", "5m load average.");
    let _ = writeln!(t, "node_load5 {}", go((load * 0.9 * 100.0).round() / 100.0));
    family(&mut t, "node_load15", "gauge", "15m load average.");
    let _ = writeln!(t, "node_load15 {}", go((load * 0.8 * 100.0).round() / 100.0));
    let base_used = 96.0 * 1024.0 * 1024.0 * 1024.0;
    let available = (node.mem_total - base_used - rss).max(0.0);
    for (name, v) in [
        ("node_memory_MemAvailable_bytes", available),
        ("node_memory_MemFree_bytes", (available * 0.62).floor()),
        ("node_memory_MemTotal_bytes", node.mem_total),
    ] {
        let field = name.trim_start_matches("node_memory_");
        family(&mut t, name, "gauge", &format!("Memory information field {field}."));
        let _ = writeln!(t, "{name} {}", go(v.floor()));
    }
    family(&mut t, "node_time_seconds", "gauge", "System time in seconds since epoch (1970).");
    let _ = writeln!(t, "node_time_seconds {}", go((now * 1000.0).round() / 1000.0));
    family(
        &mut t,
        "node_uname_info",
        "gauge",
        "Labeled system information as provided by the uname system call.",
    );
    let _ = writeln!(
        t,
        "node_uname_info{{domainname=\"(none)\",machine=\"x86_64\",nodename=\"{}\",release=\"6.8.0-49-generic\",sysname=\"Linux\",version=\"#49-Ubuntu SMP PREEMPT_DYNAMIC\"}} 1",
        node.name
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Logs;
    use crate::model::{FaultKind, FleetConfig};

    /// dcgm-exporter's own field list: `FIELD, type, help` (commented rows are optional fields).
    const DEFAULT_COUNTERS: &str = include_str!("../fixtures/dcgm-default-counters.csv");

    fn fleet() -> Fleet {
        let cfg = FleetConfig {
            seed: 1,
            rate: 12.0,
            epoch: 1_767_225_600.0,
            stable_replicas: 3,
            canary_replicas: 1,
            nodes: 2,
        };
        Fleet::new(cfg, Logs::default())
    }

    #[test]
    fn dcgm_families_match_dcgm_exporters_counter_definitions() {
        let mut f = fleet();
        f.advance(5.0);
        let text = dcgm_exporter(&f, 0);
        let mut checked = 0;
        for row in DEFAULT_COUNTERS.lines() {
            let row = row.trim_start_matches('#').trim();
            let cols: Vec<&str> = row.splitn(3, ',').map(str::trim).collect();
            let [field, kind, help] = cols[..] else { continue };
            if !field.starts_with("DCGM_FI_") || kind == "label" {
                continue;
            }
            let type_line = format!("# TYPE {field} ");
            let Some(pos) = text.find(&type_line) else { continue };
            let declared = text[pos + type_line.len()..].lines().next().unwrap_or_default();
            assert_eq!(declared, kind, "{field}");
            let help_line = format!("# HELP {field} {help}\n");
            assert!(
                text.contains(&help_line),
                "{field}: HELP differs from dcgm-exporter's `{help}`"
            );
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} fields matched the CSV");
    }

    #[test]
    fn a_lost_gpu_reports_only_its_xid() {
        let mut f = fleet();
        let name = f.replicas.keys().next().unwrap().clone();
        let (node, gpu) = (f.replicas[&name].node, f.replicas[&name].gpu);
        f.inject(FaultKind::GpuFault, Some(&name), 1.0).unwrap();
        let text = dcgm_exporter(&f, node);
        let gpu_label = format!("gpu=\"{gpu}\",");
        let lines: Vec<&str> =
            text.lines().filter(|l| !l.starts_with('#') && l.contains(&gpu_label)).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("DCGM_FI_DEV_XID_ERRORS{") && lines[0].ends_with(" 79"));
    }

    #[test]
    fn vllm_histograms_are_cumulative_and_end_with_count() {
        let mut f = fleet();
        f.advance(30.0);
        let r = &f.replicas["stable-0"];
        let text = vllm(&f, r);
        let ttft: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("vllm:time_to_first_token_seconds_bucket{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ttft.len(), crate::hist::TTFT.len() + 1);
        assert!(ttft.windows(2).all(|w| w[0] <= w[1]), "{ttft:?}");
        let count = r.metrics.hists[crate::model::h::TTFT].count as f64;
        assert_eq!(*ttft.last().unwrap(), count);
        assert!(count > 0.0);
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_count{{engine=\"0\",model_name=\"{MODEL_NAME}\"}} {}",
            py(count)
        )));
    }
}

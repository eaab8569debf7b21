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

/// Which exposition format a vLLM replica answers in (prometheus_client negotiates on `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    /// prometheus_client's `choose_encoder`: OpenMetrics when any `Accept` entry's media type is
    /// `application/openmetrics-text`, text 0.0.4 otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let om = accept.unwrap_or_default().split(',').any(|entry| {
            entry.split(';').next().unwrap_or_default().trim() == "application/openmetrics-text"
        });
        if om { Format::OpenMetrics } else { Format::Text }
    }

    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Content type of OpenMetrics 1.0.0 as prometheus_client sends it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A prometheus_client-style writer: families with sorted labels, `_created` samples placed as
/// each format wants them.
struct PyWriter {
    text: String,
    format: Format,
    base: Vec<(&'static str, String)>,
    created: f64,
}

impl PyWriter {
    fn labels(&self, extra: &[(&str, &str)]) -> String {
        let mut all: Vec<(&str, &str)> = self.base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        all.sort_by(|a, b| a.0.cmp(b.0));
        let inner: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        if inner.is_empty() { String::new() } else { format!("{{{}}}", inner.join(",")) }
    }

    fn meta(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn gauge(&mut self, name: &str, help: &str, children: &[(&[(&str, &str)], f64)]) {
        self.meta(name, "gauge", help);
        for (extra, v) in children {
            let l = self.labels(extra);
            let _ = writeln!(self.text, "{name}{l} {}", py(*v));
        }
    }

    /// A counter registered as `base` (exposed as `base_total`); `created` adds `_created`.
    fn counter(
        &mut self,
        base: &str,
        help: &str,
        children: &[(&[(&str, &str)], f64)],
        created: bool,
    ) {
        match self.format {
            Format::Text => {
                self.meta(&format!("{base}_total"), "counter", help);
                for (extra, v) in children {
                    let l = self.labels(extra);
                    let _ = writeln!(self.text, "{base}_total{l} {}", py(*v));
                }
                if created {
                    self.meta(&format!("{base}_created"), "gauge", help);
                    for (extra, _) in children {
                        let l = self.labels(extra);
                        let _ = writeln!(self.text, "{base}_created{l} {}", py(self.created));
                    }
                }
            }
            Format::OpenMetrics => {
                self.meta(base, "counter", help);
                for (extra, v) in children {
                    let l = self.labels(extra);
                    let _ = writeln!(self.text, "{base}_total{l} {}", py(*v));
                    if created {
                        let _ = writeln!(self.text, "{base}_created{l} {}", py(self.created));
                    }
                }
            }
        }
    }

    fn histogram(&mut self, name: &str, help: &str, hist: &crate::hist::Histogram) {
        self.meta(name, "histogram", help);
        for (bound, count) in hist.bounds.iter().zip(hist.cumulative()) {
            let le = py(*bound);
            let l = self.labels(&[("le", &le)]);
            let _ = writeln!(self.text, "{name}_bucket{l} {}", py(count as f64));
        }
        let l = self.labels(&[("le", "+Inf")]);
        let _ = writeln!(self.text, "{name}_bucket{l} {}", py(hist.count as f64));
        let l = self.labels(&[]);
        let _ = writeln!(self.text, "{name}_count{l} {}", py(hist.count as f64));
        let _ = writeln!(self.text, "{name}_sum{l} {}", py(hist.sum));
        match self.format {
            Format::Text => {
                self.meta(&format!("{name}_created"), "gauge", help);
                let _ = writeln!(self.text, "{name}_created{l} {}", py(self.created));
            }
            Format::OpenMetrics => {
                let _ = writeln!(self.text, "{name}_created{l} {}", py(self.created));
            }
        }
    }
}

/// A replica's vLLM `/metrics` in `format`.
pub fn vllm(fleet: &Fleet, r: &Replica, format: Format) -> String {
    let start = fleet.unix(r.started_at);
    let mut o = PyWriter {
        text: String::with_capacity(48 * 1024),
        format,
        base: Vec::new(),
        created: start,
    };
    let m = &r.metrics;

    // prometheus_client's default collectors come first (no `_created` on collector families).
    let gc = [(1843.0, 0.0, 112.0), (379.0, 0.0, 10.0), (17.0, 0.0, 1.0)];
    let generations = ["0", "1", "2"];
    let gen_labels: [[(&str, &str); 1]; 3] = [
        [("generation", generations[0])],
        [("generation", generations[1])],
        [("generation", generations[2])],
    ];
    let collected: Vec<(&[(&str, &str)], f64)> =
        gen_labels.iter().zip(&gc).map(|(l, g)| (&l[..], g.0)).collect();
    let uncollectable: Vec<(&[(&str, &str)], f64)> =
        gen_labels.iter().zip(&gc).map(|(l, g)| (&l[..], g.1)).collect();
    let collections: Vec<(&[(&str, &str)], f64)> =
        gen_labels.iter().zip(&gc).map(|(l, g)| (&l[..], g.2)).collect();
    o.counter("python_gc_objects_collected", "Objects collected during gc", &collected, false);
    o.counter(
        "python_gc_objects_uncollectable",
        "Uncollectable objects found during GC",
        &uncollectable,
        false,
    );
    o.counter(
        "python_gc_collections",
        "Number of times this generation was collected",
        &collections,
        false,
    );
    o.gauge(
        "python_info",
        "Python platform information",
        &[(
            &[
                ("implementation", "CPython"),
                ("major", "3"),
                ("minor", "12"),
                ("patchlevel", "3"),
                ("version", "3.12.3"),
            ],
            1.0,
        )],
    );
    o.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        &[(&[], (r.rss_bytes + 38.0e9).round())],
    );
    o.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        &[(&[], r.rss_bytes.round())],
    );
    o.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        &[(&[], (start * 100.0).round() / 100.0)],
    );
    o.counter(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        &[(&[], (m.cpu_seconds * 100.0).round() / 100.0)],
        false,
    );
    o.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        &[(&[], 61.0 + r.running() as f64)],
    );
    o.gauge("process_max_fds", "Maximum number of open file descriptors.", &[(&[], 1_048_576.0)]);

    // vLLM families, in V1 registration order, labelled `engine` and `model_name`.
    o.base = vec![("engine", "0".to_string()), ("model_name", MODEL_NAME.to_string())];
    o.gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        &[(&[], r.running() as f64)],
    );
    o.gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        &[(&[], r.waiting() as f64)],
    );
    o.gauge(
        "vllm:num_requests_waiting_by_reason",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
        &[(&[("reason", "capacity")], r.waiting() as f64), (&[("reason", "deferred")], 0.0)],
    );
    o.gauge(
        "vllm:engine_sleep_state",
        "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
        &[
            (&[("sleep_state", "awake")], 1.0),
            (&[("sleep_state", "weights_offloaded")], 0.0),
            (&[("sleep_state", "discard_all")], 0.0),
        ],
    );
    o.gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        &[(&[], fleet.kv_usage(r))],
    );
    let hits = m.prefix_hits.min(m.prompt_tokens) as f64;
    o.counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
        &[(&[], m.prefix_queries as f64)],
        true,
    );
    o.counter(
        "vllm:prefix_cache_hits",
        "Prefix cache hits, in terms of number of cached tokens.",
        &[(&[], m.prefix_hits as f64)],
        true,
    );
    o.counter(
        "vllm:num_preemptions",
        "Cumulative number of preemption from the engine.",
        &[(&[], m.preemptions as f64)],
        true,
    );
    o.counter(
        "vllm:prompt_tokens",
        "Number of prefill tokens processed.",
        &[(&[], m.prompt_tokens as f64)],
        true,
    );
    o.counter(
        "vllm:prompt_tokens_by_source",
        "Number of prompt tokens by source.",
        &[
            (&[("source", "local_compute")], m.prompt_tokens as f64 - hits),
            (&[("source", "local_cache_hit")], hits),
            (&[("source", "external_kv_transfer")], 0.0),
        ],
        true,
    );
    o.counter(
        "vllm:prompt_tokens_cached",
        "Number of cached prompt tokens (local + external).",
        &[(&[], hits)],
        true,
    );
    o.counter(
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
        &[(&[], m.generation_tokens as f64)],
        true,
    );
    let reasons: Vec<[(&str, &str); 1]> =
        FINISHED_REASONS.iter().map(|r| [("finished_reason", *r)]).collect();
    let finished: Vec<(&[(&str, &str)], f64)> =
        reasons.iter().zip(m.finished).map(|(l, v)| (&l[..], v as f64)).collect();
    o.counter("vllm:request_success", "Count of successfully processed requests.", &finished, true);
    for (i, (name, help)) in HISTOGRAMS.iter().enumerate() {
        o.histogram(name, help, &m.hists[i]);
    }

    let cfg = fleet.deployments[&r.deployment].config();
    let kv_tokens = cfg.kv_tokens() as u64;
    let (prefix, gmu, concurrency, size, blocks) = (
        if cfg.enable_prefix_caching { "True" } else { "False" },
        cfg.gpu_memory_utilization.to_string(),
        format!("{:.2}", kv_tokens as f64 / crate::model::MAX_MODEL_LEN as f64),
        kv_tokens.to_string(),
        (kv_tokens / 16).to_string(),
    );
    o.base = Vec::new();
    o.gauge(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        &[(
            &[
                ("block_size", "16"),
                ("cache_dtype", "auto"),
                ("calculate_kv_scales", "False"),
                ("cpu_offload_gb", "0"),
                ("enable_prefix_caching", prefix),
                ("engine", "0"),
                ("gpu_memory_utilization", &gmu),
                ("is_attention_free", "False"),
                ("kv_cache_max_concurrency", &concurrency),
                ("kv_cache_size_tokens", &size),
                ("num_cpu_blocks", "None"),
                ("num_gpu_blocks", &blocks),
                ("num_gpu_blocks_override", "None"),
                ("prefix_caching_hash_algo", "sha256"),
                ("sliding_window", "None"),
                ("swap_space", "4"),
                ("swap_space_bytes", "4294967296"),
            ],
            1.0,
        )],
    );
    if format == Format::OpenMetrics {
        o.text.push_str("# EOF\n");
    }
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

/// A node's node_exporter `/metrics` (filesystem, memory, load, boot time), with the families,
/// HELP texts and labels of node_exporter 1.5 (checked against the real binary in the tests).
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
                "{name}{{device=\"{device}\",fstype=\"{fstype}\",mountpoint=\"{mount}\"}} {}",
                go(v.floor())
            );
        }
    }
    // client_golang sorts families by name: load1, load15, load5.
    family(&mut t, "node_load1", "gauge", "1m load average.");
    let _ = writeln!(t, "node_load1 {}", go((load * 100.0).round() / 100.0));
    family(&mut t, "node_load15", "gauge", "15m load average.");
    let _ = writeln!(t, "node_load15 {}", go((load * 0.8 * 100.0).round() / 100.0));
    family(&mut t, "node_load5", "gauge", "5m load average.");
    let _ = writeln!(t, "node_load5 {}", go((load * 0.9 * 100.0).round() / 100.0));
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

    /// vLLM's own docs example of V1 output (with `...` elisions).
    const VLLM_DOCS_EXAMPLE: &str = include_str!("../fixtures/vllm-v1-docs-example.txt");

    #[test]
    fn metadata_and_bucket_labels_match_vllms_docs_example() {
        let mut f = fleet();
        f.advance(20.0);
        let text = vllm(&f, &f.replicas["stable-0"], Format::Text);
        let mut checked = 0;
        for line in VLLM_DOCS_EXAMPLE.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                assert!(text.lines().any(|l| l == line), "missing `{line}`");
                checked += 1;
            } else if let Some(at) = line.find("le=\"") {
                // The docs example predates the `engine` label; the `le` spelling must agree.
                let le = &line[at..line[at + 4..].find('"').map_or(line.len(), |e| at + 5 + e)];
                assert!(text.contains(le), "bucket `{le}` spelled differently");
                checked += 1;
            }
        }
        assert!(checked >= 15, "{checked}");
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
        let text = vllm(&f, r, Format::Text);
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

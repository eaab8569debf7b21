//! vLLM-like log files, one per replica (`<replica>.log`) and one kernel log per node
//! (`<node>-kern.log`), written with `--log-dir`.
//!
//! Lines follow vLLM V1 server logs: `(APIServer pid=N) INFO MM-DD HH:MM:SS [file.py:line] msg`,
//! with the periodic V1 stats line every 10 s and each fault's own error lines (tracebacks ending
//! in `EngineDeadError`, `torch.OutOfMemoryError`, NCCL watchdog timeouts, `NVRM: Xid` in the
//! kernel log). Timestamps come from the simulation clock. Each file is capped: past
//! [`MAX_FILE_BYTES`] it is truncated and starts over, as a size-based rotation would.

use crate::model::{EngineConfig, MAX_MODEL_LEN, MODEL_NAME, VLLM_VERSION};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Size at which a log file is truncated.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// PyTorch's message when the GPU has no room left.
const CUDA_OOM: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.02 GiB is free. Including non-PyTorch memory, this process has 78.16 GiB memory in use. Of the allocated memory 76.41 GiB is allocated by PyTorch, and 1.12 GiB is reserved by PyTorch but unallocated.";

/// How an engine died (selects the traceback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// A CUDA illegal memory access (the generic `replica_crash`).
    IllegalMemoryAccess,
    /// CUDA could not allocate at start-up (`gpu_memory_utilization` set too high).
    OutOfMemory,
    /// The kernel's OOM killer ended the process (`memory_leak`): no Python traceback, the log
    /// just stops; the kernel log says why.
    HostOomKill,
    /// The GPU fell off the bus (Xid 79).
    GpuLost,
    /// The root filesystem is full (start-up cannot write its cache).
    DiskFull,
}

#[derive(Debug)]
struct Sink {
    file: File,
    written: u64,
}

/// The log writer; a no-op without `--log-dir`.
#[derive(Debug, Default)]
pub struct Logs {
    dir: Option<PathBuf>,
    sinks: HashMap<String, Sink>,
}

/// `MM-DD HH:MM:SS` of a Unix time (vLLM's `datefmt`).
fn stamp(unix: f64) -> String {
    let ts = opsg_core::time::Timestamp((unix * 1000.0) as i64).to_rfc3339();
    // 2026-01-01T00:00:10.000Z -> 01-01 00:00:10
    format!("{} {}", &ts[5..10], &ts[11..19])
}

/// `Jan  1 00:00:10` (syslog).
fn syslog_stamp(unix: f64) -> String {
    let ts = opsg_core::time::Timestamp((unix * 1000.0) as i64).to_rfc3339();
    let month: usize = ts[5..7].parse().unwrap_or(1);
    let day: u32 = ts[8..10].parse().unwrap_or(1);
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("{} {day:>2} {}", MONTHS[(month - 1).min(11)], &ts[11..19])
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Logs {
    /// Logs into `dir` (created if missing), or nowhere.
    pub fn new(dir: Option<PathBuf>) -> std::io::Result<Logs> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)?;
        }
        Ok(Logs { dir, sinks: HashMap::new() })
    }

    /// The file a stream writes to, if logging.
    pub fn path_of(&self, stream: &str) -> Option<String> {
        self.dir.as_ref().map(|d| d.join(format!("{stream}.log")).display().to_string())
    }

    fn write(&mut self, stream: &str, lines: &[String]) {
        let Some(dir) = &self.dir else { return };
        if !self.sinks.contains_key(stream) {
            let path = dir.join(format!("{stream}.log"));
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(file) => {
                    let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.sinks.insert(stream.to_string(), Sink { file, written });
                }
                Err(err) => {
                    opsg_core::cli::warn(format!("cannot write `{}`: {err}", path.display()));
                    return;
                }
            }
        }
        let Some(sink) = self.sinks.get_mut(stream) else { return };
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        if sink.written + text.len() as u64 > MAX_FILE_BYTES {
            let _ = sink.file.set_len(0);
            sink.written = 0;
        }
        if sink.file.write_all(text.as_bytes()).is_ok() {
            sink.written += text.len() as u64;
        }
    }

    /// Close a stream's file (its replica was removed); the file stays on disk.
    pub fn close(&mut self, stream: &str) {
        self.sinks.remove(stream);
    }

    /// Close every replica stream not in `live` (node kernel logs stay open).
    pub fn retain_replicas(&mut self, live: &[&str]) {
        self.sinks.retain(|stream, _| stream.ends_with("-kern") || live.contains(&stream.as_str()));
    }

    /// Open log files (for tests of resource bounds).
    pub fn open_files(&self) -> usize {
        self.sinks.len()
    }

    /// Start-up lines of a vLLM OpenAI server.
    pub fn startup(&mut self, replica: &str, unix: f64, pid: u32, cfg: &EngineConfig, node: &str) {
        if self.dir.is_none() {
            return;
        }
        let t = stamp(unix);
        let api = format!("(APIServer pid={pid})");
        let core = format!("(EngineCore_DP0 pid={})", pid + 1);
        let kv = cfg.kv_tokens() as u64;
        let mut lines = vec![
            format!("{api} INFO {t} [api_server.py:1839] vLLM API server version {VLLM_VERSION}"),
            format!(
                "{api} INFO {t} [utils.py:233] non-default args: {{'model_tag': '{MODEL_NAME}', 'host': '0.0.0.0', 'model': '{MODEL_NAME}', 'max_model_len': {MAX_MODEL_LEN}, 'gpu_memory_utilization': {}, 'max_num_batched_tokens': {}, 'max_num_seqs': {}, 'enforce_eager': {}, 'enable_prefix_caching': {}}}",
                cfg.gpu_memory_utilization,
                cfg.max_num_batched_tokens,
                cfg.max_num_seqs,
                if cfg.enforce_eager { "True" } else { "False" },
                if cfg.enable_prefix_caching { "True" } else { "False" },
            ),
            format!("{api} INFO {t} [model.py:547] Resolved architecture: LlamaForCausalLM"),
            format!("{api} INFO {t} [model.py:1510] Using max model len {MAX_MODEL_LEN}"),
            format!("{core} INFO {t} [core.py:644] Waiting for init message from front-end."),
            format!(
                "{core} INFO {t} [parallel_state.py:1208] rank 0 in world size 1 is assigned as DP rank 0, PP rank 0, TP rank 0, EP rank 0 (host {node})"
            ),
            format!(
                "{core} INFO {t} [gpu_model_runner.py:2602] Starting to load model {MODEL_NAME}..."
            ),
            format!("{core} INFO {t} [cuda.py:366] Using Flash Attention backend on V1 engine."),
            format!(
                "{core} INFO {t} [gpu_model_runner.py:2634] Model loading took 14.9889 GiB and 4.214913 seconds"
            ),
            format!(
                "{core} INFO {t} [gpu_worker.py:298] Available KV cache memory: {:.2} GiB",
                kv as f64 * 131072.0 / (1024.0 * 1024.0 * 1024.0)
            ),
            format!(
                "{core} INFO {t} [kv_cache_utils.py:1087] GPU KV cache size: {} tokens",
                thousands(kv)
            ),
            format!(
                "{core} INFO {t} [kv_cache_utils.py:1091] Maximum concurrency for {} tokens per request: {:.2}x",
                thousands(MAX_MODEL_LEN),
                kv as f64 / MAX_MODEL_LEN as f64
            ),
        ];
        if cfg.enforce_eager {
            lines.push(format!(
                "{core} WARNING {t} [gpu_model_runner.py:3431] Skipping CUDA graph capture. To turn on CUDA graph capture, ensure `enforce_eager` is False."
            ));
        } else {
            lines.push(format!(
                "{core} INFO {t} [gpu_model_runner.py:3480] Graph capturing finished in 6 secs, took 0.52 GiB"
            ));
        }
        lines.extend([
            format!("{core} INFO {t} [core.py:210] init engine (profile, create kv cache, warmup model) took 21.37 seconds"),
            format!("{api} INFO {t} [api_server.py:1878] Starting vLLM API server 0 on http://0.0.0.0:8000"),
            format!("{api} INFO:     Started server process [{pid}]"),
            format!("{api} INFO:     Waiting for application startup."),
            format!("{api} INFO:     Application startup complete."),
        ]);
        self.write(replica, &lines);
    }

    /// The periodic V1 stats line.
    #[allow(clippy::too_many_arguments)]
    pub fn stats(
        &mut self,
        replica: &str,
        unix: f64,
        pid: u32,
        prompt_tps: f64,
        gen_tps: f64,
        running: usize,
        waiting: usize,
        kv_percent: f64,
        prefix_hit_percent: f64,
    ) {
        if self.dir.is_none() {
            return;
        }
        let line = format!(
            "(APIServer pid={pid}) INFO {} [loggers.py:123] Engine 000: Avg prompt throughput: {prompt_tps:.1} tokens/s, Avg generation throughput: {gen_tps:.1} tokens/s, Running: {running} reqs, Waiting: {waiting} reqs, GPU KV cache usage: {kv_percent:.1}%, Prefix cache hit rate: {prefix_hit_percent:.1}%",
            stamp(unix)
        );
        self.write(replica, &[line]);
    }

    /// A preemption warning (KV cache full).
    pub fn preemption_warning(&mut self, replica: &str, unix: f64, pid: u32, total: u64) {
        let line = format!(
            "(EngineCore_DP0 pid={}) WARNING {} [scheduler.py:1481] Sequence group {} is preempted by PreemptionMode.RECOMPUTE mode because there is not enough KV cache space. This can affect the end-to-end performance. Increase gpu_memory_utilization or tensor_parallel_size to provide more KV cache memory. total_num_cumulative_preemption={total}",
            pid + 1,
            stamp(unix),
            total * 7 + 3
        );
        self.write(replica, &[line]);
    }

    /// An NCCL watchdog timeout on a degraded network link.
    pub fn nccl_timeout(&mut self, replica: &str, unix: f64, pid: u32) {
        let ts = opsg_core::time::Timestamp((unix * 1000.0) as i64).to_rfc3339();
        let glog = format!("{}{} {}.{}000", &ts[5..7], &ts[8..10], &ts[11..19], &ts[20..23]);
        let seq = (unix as u64) % 100_000;
        let lines = vec![
            format!(
                "[rank0]:[E{glog} {} ProcessGroupNCCL.cpp:632] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={seq}, OpType=ALLREDUCE, NumelIn=4194304, NumelOut=4194304, Timeout(ms)=600000) ran for 600047 milliseconds before timing out.",
                pid + 1
            ),
            format!(
                "(EngineCore_DP0 pid={}) WARNING {} [shm_broadcast.py:466] No available shared memory broadcast block found in 60 second. This typically happens when some processes are hanging or doing some time-consuming work (e.g. compilation)",
                pid + 1,
                stamp(unix)
            ),
        ];
        self.write(replica, &lines);
    }

    /// The kernel's OOM-killer report for a process of a memory-limited container.
    pub fn oom_kill(&mut self, node: &str, unix: f64, pid: u32, rss: f64) {
        let prefix = format!(
            "{} {node} kernel: [{:.6}]",
            syslog_stamp(unix),
            259_200.0 + unix.rem_euclid(86_400.0)
        );
        let anon_kb = (rss / 1024.0) as u64;
        let lines = vec![
            format!(
                "{prefix} python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=999"
            ),
            format!("{prefix} memory: usage {anon_kb}kB, limit {}kB, failcnt 1", anon_kb),
            format!(
                "{prefix} oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=vllm,mems_allowed=0-1,oom_memcg=/kubepods/burstable/vllm,task_memcg=/kubepods/burstable/vllm,task=python3,pid={pid},uid=0"
            ),
            format!(
                "{prefix} Memory cgroup out of memory: Killed process {pid} (python3) total-vm:{}kB, anon-rss:{anon_kb}kB, file-rss:102400kB, shmem-rss:0kB, UID:0 pgtables:52188kB oom_score_adj:999",
                anon_kb + 38_000_000
            ),
        ];
        self.write(&format!("{node}-kern"), &lines);
    }

    /// `No space left on device` while the node's root filesystem is full.
    pub fn disk_full(&mut self, replica: &str, unix: f64, pid: u32) {
        let t = stamp(unix);
        let lines = vec![
            format!(
                "(APIServer pid={pid}) ERROR {t} [api_server.py:1072] Error writing request log"
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [api_server.py:1072] Traceback (most recent call last):"
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [api_server.py:1072]   File \"/usr/lib/python3.12/logging/__init__.py\", line 1163, in emit"
            ),
            format!("(APIServer pid={pid}) ERROR {t} [api_server.py:1072]     self.flush()"),
            format!(
                "(APIServer pid={pid}) ERROR {t} [api_server.py:1072] OSError: [Errno 28] No space left on device"
            ),
        ];
        self.write(replica, &lines);
    }

    /// A double-bit ECC error surfaced to a running engine.
    pub fn ecc_error(&mut self, replica: &str, unix: f64, pid: u32) {
        let line = format!(
            "(EngineCore_DP0 pid={}) ERROR {} [core.py:710] torch.AcceleratorError: CUDA error: uncorrectable ECC error encountered",
            pid + 1,
            stamp(unix)
        );
        self.write(replica, &[line]);
    }

    /// Orderly shutdown before a restart or a move.
    pub fn shutdown(&mut self, replica: &str, unix: f64, pid: u32) {
        let lines = vec![
            format!(
                "(APIServer pid={pid}) INFO {} [launcher.py:101] Shutting down FastAPI HTTP server.",
                stamp(unix)
            ),
            format!("(APIServer pid={pid}) INFO:     Shutting down"),
            format!("(APIServer pid={pid}) INFO:     Finished server process [{pid}]"),
        ];
        self.write(replica, &lines);
    }

    /// A kernel `NVRM: Xid` line in the node's kernel log.
    pub fn xid(&mut self, node: &str, unix: f64, pci_bus_id: &str, xid: u32, pid: u32) {
        // DCGM's 8-digit PCI domain `00000000:3B:00.0` is `0000:3b:00` in the kernel's Xid line.
        let bus = pci_bus_id.get(4..).unwrap_or(pci_bus_id).to_lowercase();
        let bus = bus.strip_suffix(".0").unwrap_or(&bus);
        let detail = match xid {
            79 => "GPU has fallen off the bus.".to_string(),
            48 => format!("pid={pid}, name=python3, DBE (Double Bit Error) ECC Error"),
            _ => "pid='<unknown>', name=<unknown>, Row Remapper: New row (0x00000000000c2b1a) marked for remapping, reset gpu to activate.".to_string(),
        };
        let uptime = 259_200.0 + unix.rem_euclid(86_400.0);
        let line = format!(
            "{} {node} kernel: [{uptime:.6}] NVRM: Xid (PCI:{bus}): {xid}, {detail}",
            syslog_stamp(unix)
        );
        self.write(&format!("{node}-kern"), &[line]);
    }

    /// An engine death: a traceback ending in the cause, then `EngineDeadError` in the frontend.
    pub fn crash(&mut self, replica: &str, unix: f64, pid: u32, cause: Crash) {
        if self.dir.is_none() {
            return;
        }
        let t = stamp(unix);
        let core = format!("(EngineCore_DP0 pid={}) ERROR {t} [core.py:710]", pid + 1);
        let error = match cause {
            Crash::IllegalMemoryAccess => {
                "torch.AcceleratorError: CUDA error: an illegal memory access was encountered"
            }
            Crash::OutOfMemory => CUDA_OOM,
            Crash::GpuLost => "torch.AcceleratorError: CUDA error: unspecified launch failure",
            Crash::DiskFull => "OSError: [Errno 28] No space left on device",
            // SIGKILL: the process writes nothing more.
            Crash::HostOomKill => return,
        };
        let lines = vec![
            format!("{core} EngineCore encountered a fatal error."),
            format!("{core} Traceback (most recent call last):"),
            format!(
                "{core}   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 701, in run_engine_core"
            ),
            format!("{core}     engine_core.run_busy_loop()"),
            format!(
                "{core}   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 728, in run_busy_loop"
            ),
            format!("{core}     self._process_engine_step()"),
            format!(
                "{core}   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 754, in _process_engine_step"
            ),
            format!("{core}     outputs, model_executed = self.step_fn()"),
            format!(
                "{core}   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/worker/gpu_model_runner.py\", line 2285, in execute_model"
            ),
            format!(
                "{core}     model_output = self.model(input_ids=input_ids, positions=positions)"
            ),
            format!("{core} {error}"),
            format!(
                "(APIServer pid={pid}) ERROR {t} [async_llm.py:480] AsyncLLM output_handler failed."
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [async_llm.py:480] Traceback (most recent call last):"
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [async_llm.py:480]   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/async_llm.py\", line 439, in output_handler"
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [async_llm.py:480]     outputs = await engine_core.get_output_async()"
            ),
            format!(
                "(APIServer pid={pid}) ERROR {t} [async_llm.py:480] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause."
            ),
            format!("(APIServer pid={pid}) INFO:     Shutting down"),
            format!("(APIServer pid={pid}) INFO:     Finished server process [{pid}]"),
        ];
        self.write(replica, &lines);
    }

    /// A start-up that fails (lost GPU, full disk, no GPU memory left).
    pub fn start_failed(&mut self, replica: &str, unix: f64, pid: u32, cause: Crash) {
        let t = stamp(unix);
        let api = format!("(APIServer pid={pid})");
        let error = match cause {
            Crash::GpuLost => "RuntimeError: No CUDA GPUs are available",
            Crash::DiskFull => {
                "OSError: [Errno 28] No space left on device: '/root/.cache/vllm/torch_compile_cache'"
            }
            Crash::OutOfMemory => CUDA_OOM,
            Crash::IllegalMemoryAccess | Crash::HostOomKill => {
                "RuntimeError: CUDA error: an illegal memory access was encountered"
            }
        };
        let lines = vec![
            format!("{api} INFO {t} [api_server.py:1839] vLLM API server version {VLLM_VERSION}"),
            format!("{api} ERROR {t} [core.py:708] EngineCore failed to start."),
            format!("{api} ERROR {t} [core.py:708] Traceback (most recent call last):"),
            format!(
                "{api} ERROR {t} [core.py:708]   File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 699, in run_engine_core"
            ),
            format!(
                "{api} ERROR {t} [core.py:708]     engine_core = EngineCoreProc(*args, **kwargs)"
            ),
            format!("{api} ERROR {t} [core.py:708] {error}"),
            format!(
                "{api} RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {{}}"
            ),
        ];
        self.write(replica, &lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_look_like_vllm_and_syslog() {
        // 2026-01-01T00:00:10Z
        assert_eq!(stamp(1_767_225_610.0), "01-01 00:00:10");
        assert_eq!(syslog_stamp(1_767_225_610.0), "Jan  1 00:00:10");
        assert_eq!(thousands(40960), "40,960");
        assert_eq!(thousands(512), "512");
    }

    #[test]
    fn xid_lines_look_like_the_kernels() {
        let dir = std::env::temp_dir().join(format!("opsg-sim-xid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut logs = Logs::new(Some(dir.clone())).unwrap();
        logs.xid("gpu-node-a", 1_767_225_610.0, "00000000:3B:00.0", 79, 4100);
        let text = std::fs::read_to_string(dir.join("gpu-node-a-kern.log")).unwrap();
        assert!(text.starts_with("Jan  1 00:00:10 gpu-node-a kernel: ["), "syslog prefix: {text}");
        assert!(
            text.contains("] NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.\n"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_written_and_capped() {
        let dir = std::env::temp_dir().join(format!("opsg-sim-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut logs = Logs::new(Some(dir.clone())).unwrap();
        logs.crash("stable-0", 1_767_225_610.0, 4100, Crash::IllegalMemoryAccess);
        let text = std::fs::read_to_string(dir.join("stable-0.log")).unwrap();
        assert!(text.contains("CUDA error: an illegal memory access was encountered"));
        assert!(text.contains("EngineDeadError"));
        let before = text.len();
        logs.crash("stable-0", 1_767_225_611.0, 4100, Crash::HostOomKill);
        let after = std::fs::read_to_string(dir.join("stable-0.log")).unwrap().len();
        assert_eq!(before, after, "a SIGKILLed process writes nothing");
        logs.oom_kill("gpu-node-a", 1_767_225_611.0, 4100, 24.0 * 1024.0 * 1024.0 * 1024.0);
        let kern = std::fs::read_to_string(dir.join("gpu-node-a-kern.log")).unwrap();
        assert!(kern.contains("Memory cgroup out of memory: Killed process 4100 (python3)"));
        assert!(
            kern.contains("invoked oom-killer")
                && kern.contains("oom-kill:constraint=CONSTRAINT_MEMCG")
        );
        for _ in 0..40_000 {
            logs.stats("stable-0", 1_767_225_610.0, 4100, 1.0, 2.0, 3, 4, 5.0, 6.0);
        }
        let len = std::fs::metadata(dir.join("stable-0.log")).unwrap().len();
        assert!(len <= MAX_FILE_BYTES, "log grew to {len}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

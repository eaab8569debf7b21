//! Bounded log tails: the last bytes of a log file (plain text or journald export format), or the
//! last entries of a systemd unit's journal (`journal:UNIT`, read through `journalctl -o export`;
//! `journal:kernel` for the kernel log, where NVRM Xid lines and OOM-killer reports land),
//! with secrets redacted, scanned for known vLLM/GPU failure signatures, and the redacted excerpt
//! stored as evidence.
//!
//! Bounds: at most [`TAIL_BYTES`] are read from the end of the file, at most [`MAX_LINES`] lines
//! are kept, and each line is cut at [`MAX_LINE_BYTES`]. The LLM advisor downstream sees only this
//! excerpt, and only after redaction: [`super::redact::redact_line`] runs on every line before it
//! is matched, stored or copied into the record.

use super::procfile::{describe_io, unavailable};
use super::redact::redact_line;
use opsg_core::evidence::EvidenceStore;
use opsg_core::record::EvidenceRef;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most bytes read from the end of a log.
pub const TAIL_BYTES: u64 = 1024 * 1024;
/// The most lines kept from the tail.
pub const MAX_LINES: usize = 5000;
/// Lines longer than this (a logged prompt, a tensor dump) are cut.
pub const MAX_LINE_BYTES: usize = 4096;
/// Example lines copied into the record are cut to this many bytes.
const EXAMPLE_BYTES: usize = 300;

/// A known failure signature: an id for triage and a matcher over one (redacted) line.
struct Signature {
    id: &'static str,
    matches: fn(&str) -> bool,
}

fn any(line: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| line.contains(n))
}

/// The signatures, in the order they are reported. Plain substring tests on the messages vLLM,
/// PyTorch, NCCL, the NVIDIA driver, the kernel and systemd actually print.
const SIGNATURES: &[Signature] = &[
    Signature {
        id: "cuda_oom",
        matches: |l| {
            any(l, &["CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory"])
        },
    },
    Signature {
        id: "cuda_error",
        matches: |l| {
            !l.contains("out of memory")
                && any(l, &["CUDA error:", "cudaError", "CUBLAS_STATUS_", "CUDNN_STATUS_"])
        },
    },
    Signature {
        id: "nccl_timeout",
        matches: |l| {
            l.contains("Watchdog caught collective operation timeout")
                || (any(l, &["NCCL", "WorkNCCL"]) && any(l, &["timeout", "Timeout", "timed out"]))
        },
    },
    Signature {
        id: "nccl_error",
        matches: |l| {
            any(
                l,
                &[
                    "NCCL error",
                    "ncclInternalError",
                    "ncclSystemError",
                    "ncclUnhandledCudaError",
                    "ncclRemoteError",
                    "ncclInvalidUsage",
                    "NCCL WARN",
                    "DistBackendError",
                ],
            )
        },
    },
    Signature { id: "xid", matches: |l| xid_code(l).is_some() || l.contains("NVRM: Xid") },
    Signature {
        id: "python_traceback",
        matches: |l| l.contains("Traceback (most recent call last):"),
    },
    Signature {
        id: "engine_dead",
        matches: |l| {
            any(
                l,
                &[
                    "EngineDeadError",
                    "EngineCore encountered a fatal error",
                    "Engine loop has died",
                    "died unexpectedly",
                ],
            ) || (l.contains("Engine core") && l.contains("died"))
        },
    },
    Signature {
        id: "engine_start_failed",
        matches: |l| any(l, &["Engine core initialization failed", "EngineCore failed to start"]),
    },
    Signature {
        id: "kv_cache_insufficient",
        matches: |l| {
            any(
                l,
                &[
                    "No available memory for the cache blocks",
                    "which is larger than the available KV cache memory",
                    "maximum number of tokens that can be stored in KV cache",
                ],
            )
        },
    },
    Signature {
        // Workers not answering the scheduler for a minute: hung collectives, or compilation.
        id: "engine_stall",
        matches: |l| l.contains("No available shared memory broadcast block found"),
    },
    Signature {
        id: "kv_cache_preemption",
        matches: |l| any(l, &["is preempted by PreemptionMode", "not enough KV cache space"]),
    },
    Signature {
        id: "process_restart",
        matches: |l| {
            any(
                l,
                &[
                    "Scheduled restart job",
                    "restart counter is at",
                    "Back-off restarting failed container",
                ],
            )
        },
    },
    Signature {
        id: "host_oom_kill",
        matches: |l| {
            any(l, &["Out of memory: Killed process", "invoked oom-killer", "oom-kill:constraint"])
        },
    },
];

/// The ids of every signature, in report order.
pub fn signature_ids() -> Vec<&'static str> {
    SIGNATURES.iter().map(|s| s.id).collect()
}

/// The XID code in a driver line: `NVRM: Xid (PCI:0000:3b:00): 79, pid=…`.
fn xid_code(line: &str) -> Option<u32> {
    let at = line.find("Xid (")?;
    let rest = &line[at..];
    let close = rest.find("): ")?;
    let digits: String = rest[close + 3..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How the log was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    JournalExport,
}

/// The bounded, not yet redacted, tail of a file.
struct Tail {
    bytes: Vec<u8>,
    file_bytes: u64,
    /// True when the tail starts after the file's beginning.
    cut: bool,
}

fn read_tail(path: &Path, cap: u64) -> Result<Tail, String> {
    let mut file = std::fs::File::open(path).map_err(|e| describe_io(path, &e))?;
    let meta = file.metadata().map_err(|e| describe_io(path, &e))?;
    if !meta.is_file() {
        // A FIFO or a device could block forever or never end.
        return Err(format!("`{}` is not a regular file", path.display()));
    }
    let file_bytes = meta.len();
    let start = file_bytes.saturating_sub(cap);
    file.seek(SeekFrom::Start(start)).map_err(|e| describe_io(path, &e))?;
    let mut bytes = Vec::new();
    // `take` bounds the read even if the file grows while we read it.
    file.take(cap).read_to_end(&mut bytes).map_err(|e| describe_io(path, &e))?;
    Ok(Tail { bytes, file_bytes, cut: start > 0 })
}

fn detect_format(bytes: &[u8], cut: bool) -> Format {
    let probe = &bytes[..bytes.len().min(64 * 1024)];
    let starts = |p: &[u8]| probe.starts_with(p);
    if starts(b"__CURSOR=") || starts(b"__REALTIME_TIMESTAMP=") {
        return Format::JournalExport;
    }
    // Cut in the middle of an export stream: an entry boundary shows up soon.
    if cut && find(probe, b"\n\n__CURSOR=").is_some() && find(probe, b"\nMESSAGE").is_some() {
        return Format::JournalExport;
    }
    Format::Text
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn cap_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut {} bytes]", &line[..end], line.len() - end)
}

/// Lines of a plain-text tail: a partial first line (when the tail was cut) is dropped, `\r\n`
/// endings are normalized, invalid UTF-8 is replaced.
fn text_lines(bytes: &[u8], cut: bool) -> Vec<String> {
    let mut body = bytes;
    if cut {
        match body.iter().position(|&b| b == b'\n') {
            Some(nl) => body = &body[nl + 1..],
            None => body = &[],
        }
    }
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| String::from_utf8_lossy(&l[..l.len().min(MAX_LINE_BYTES * 4)]).into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(String::is_empty)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Entries of a journald export stream (systemd.io/JOURNAL_EXPORT_FORMAT) rendered as
/// `IDENTIFIER[PID]: MESSAGE`. Text fields are `KEY=value\n`; binary fields are `KEY\n`, a
/// little-endian u64 length, the bytes and `\n`. A cut stream is resynchronized at the first entry
/// boundary (a blank line).
fn journal_lines(bytes: &[u8], cut: bool) -> Vec<String> {
    let mut pos = 0;
    if cut {
        match find(bytes, b"\n\n") {
            Some(p) => pos = p + 2,
            None => return Vec::new(),
        }
    }
    let mut lines = Vec::new();
    let mut fields: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let flush = |fields: &mut BTreeMap<String, Vec<u8>>, lines: &mut Vec<String>| {
        if let Some(message) = fields.get("MESSAGE") {
            let ident = fields
                .get("SYSLOG_IDENTIFIER")
                .or_else(|| fields.get("_COMM"))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| "?".to_string());
            let pid = fields
                .get("_PID")
                .map(|v| format!("[{}]", String::from_utf8_lossy(v)))
                .unwrap_or_default();
            let message = String::from_utf8_lossy(message);
            // A multi-line MESSAGE (a traceback logged in one call) becomes several lines.
            for part in message.split('\n') {
                lines.push(format!("{ident}{pid}: {part}"));
            }
        }
        fields.clear();
    };
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        if line.is_empty() {
            flush(&mut fields, &mut lines);
            continue;
        }
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            fields.insert(key, line[eq + 1..].to_vec());
        } else {
            // Binary field: the name, then a 64-bit little-endian size, the data and a newline.
            let Some(size_bytes) = bytes.get(pos..pos + 8) else {
                break;
            };
            let mut size = [0u8; 8];
            size.copy_from_slice(size_bytes);
            let size = u64::from_le_bytes(size);
            let Ok(size) = usize::try_from(size) else {
                break;
            };
            let Some(end) = (pos + 8).checked_add(size) else {
                break;
            };
            let Some(data) = bytes.get(pos + 8..end) else {
                break;
            };
            fields.insert(String::from_utf8_lossy(line).into_owned(), data.to_vec());
            pos = end + 1;
        }
    }
    flush(&mut fields, &mut lines);
    lines
}

/// Read, redact and scan one log. Returns the record entry and the evidence stored (if any).
pub fn collect_log(path: &Path, store: Option<&EvidenceStore>) -> (Value, Option<EvidenceRef>) {
    if let Some(unit) = path.to_str().and_then(|p| p.strip_prefix(JOURNAL_PREFIX)) {
        return collect_journal(&["journalctl"], unit, store);
    }
    collect_log_bounded(path, store, TAIL_BYTES, MAX_LINES)
}

/// `--log journal:UNIT` reads the unit's systemd journal instead of a file.
pub const JOURNAL_PREFIX: &str = "journal:";
/// `--log journal:kernel` reads the kernel messages of the current boot (`journalctl --dmesg`).
pub const KERNEL_UNIT: &str = "kernel";
/// How long `journalctl` may take.
const JOURNAL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Export entries carry a dozen fields each: the raw stream is read up to this much, and its last
/// [`TAIL_BYTES`] are scanned like a file's tail.
const JOURNAL_MAX_OUTPUT: u64 = 16 * 1024 * 1024;

fn unavailable_log(shown: &str, reason: String) -> (Value, Option<EvidenceRef>) {
    let mut entry = unavailable(reason);
    if let Some(obj) = entry.as_object_mut() {
        obj.insert("path".into(), json!(shown));
    }
    (entry, None)
}

/// The last [`MAX_LINES`] journal entries of `unit`, through `command` (`journalctl`; a stand-in
/// script in tests) in export format, which keeps multi-line messages whole and binary fields
/// intact.
pub(crate) fn collect_journal(
    command: &[&str],
    unit: &str,
    store: Option<&EvidenceStore>,
) -> (Value, Option<EvidenceRef>) {
    let shown = format!("{JOURNAL_PREFIX}{unit}");
    let valid = !unit.is_empty()
        && !unit.starts_with('-')
        && unit.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if !valid {
        return unavailable_log(&shown, format!("`{unit}` is not a systemd unit name"));
    }
    let Some((program, prefix)) = command.split_first() else {
        return unavailable_log(&shown, "no journal reader configured".to_string());
    };
    let entries = MAX_LINES.to_string();
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend(["--no-pager", "--quiet", "--output=export", "--lines", &entries]);
    // `journal:kernel` is the kernel log: NVRM Xid lines and OOM-killer reports live there.
    if unit == KERNEL_UNIT {
        args.push("--dmesg");
    } else {
        args.extend(["--unit", unit]);
    }
    let (bytes, more) =
        match super::procfile::run_bounded(program, &args, JOURNAL_DEADLINE, JOURNAL_MAX_OUTPUT) {
            Ok(out) => out,
            Err(reason) => return unavailable_log(&shown, reason),
        };
    let total = bytes.len() as u64;
    let start = bytes.len().saturating_sub(TAIL_BYTES as usize);
    let tail = Tail { bytes: bytes[start..].to_vec(), file_bytes: total, cut: start > 0 || more };
    scan(shown, tail, Some(Format::JournalExport), store, MAX_LINES)
}

pub(crate) fn collect_log_bounded(
    path: &Path,
    store: Option<&EvidenceStore>,
    tail_bytes: u64,
    max_lines: usize,
) -> (Value, Option<EvidenceRef>) {
    let shown = path.display().to_string();
    let tail = match read_tail(path, tail_bytes) {
        Ok(tail) => tail,
        Err(reason) => return unavailable_log(&shown, reason),
    };
    scan(shown, tail, None, store, max_lines)
}

/// Split, redact, match and store one tail.
fn scan(
    shown: String,
    tail: Tail,
    format: Option<Format>,
    store: Option<&EvidenceStore>,
    max_lines: usize,
) -> (Value, Option<EvidenceRef>) {
    let format = format.unwrap_or_else(|| detect_format(&tail.bytes, tail.cut));
    let mut lines = match format {
        Format::Text => text_lines(&tail.bytes, tail.cut),
        Format::JournalExport => journal_lines(&tail.bytes, tail.cut),
    };
    let lines_dropped = lines.len().saturating_sub(max_lines);
    lines.drain(..lines_dropped);
    // Redact before anything else looks at the text: matching, examples and evidence all see
    // only the redacted lines.
    let lines: Vec<String> =
        lines.iter().map(|l| redact_line(&cap_line(l, MAX_LINE_BYTES))).collect();

    let mut counts = Map::new();
    let mut matches = Map::new();
    let mut xid_codes: BTreeMap<String, u64> = BTreeMap::new();
    for signature in SIGNATURES {
        let mut count = 0u64;
        let mut first = None;
        let mut last = None;
        for (i, line) in lines.iter().enumerate() {
            if (signature.matches)(line) {
                count += 1;
                first.get_or_insert(i);
                last = Some(i);
                if signature.id == "xid"
                    && let Some(code) = xid_code(line)
                {
                    *xid_codes.entry(code.to_string()).or_default() += 1;
                }
            }
        }
        counts.insert(signature.id.into(), json!(count));
        if let (Some(first), Some(last)) = (first, last) {
            matches.insert(
                signature.id.into(),
                json!({
                    "first_line": first + 1,
                    "last_line": last + 1,
                    "example": cap_line(&lines[last], EXAMPLE_BYTES),
                }),
            );
        }
    }

    let mut entry = json!({
        "path": shown,
        "available": true,
        "format": match format { Format::Text => "text", Format::JournalExport => "journald-export" },
        "file_bytes": tail.file_bytes,
        "read_bytes": tail.bytes.len(),
        "truncated": tail.cut || lines_dropped > 0,
        "lines": lines.len(),
        "counts": counts,
        "matches": matches,
    });
    let mut evidence = None;
    if let Some(obj) = entry.as_object_mut() {
        if !xid_codes.is_empty() {
            obj.insert("xid_codes".into(), json!(xid_codes));
        }
        if let Some(store) = store {
            let mut excerpt = lines.join("\n");
            excerpt.push('\n');
            match store.put(
                excerpt.as_bytes(),
                "text/x-log; charset=utf-8",
                Some(&format!("log {shown}")),
            ) {
                Ok(reference) => {
                    obj.insert("evidence".into(), json!(reference.sha256.as_str()));
                    evidence = Some(reference);
                }
                Err(err) => {
                    obj.insert("evidence_error".into(), json!(err.to_string()));
                }
            }
        }
    }
    (entry, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/signals").join(rel)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opsg-logs-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn engine_crash_log_counts_every_signature_and_stores_a_redacted_excerpt() {
        let dir = scratch("crash");
        let store = EvidenceStore::new(dir.join("evidence"));
        let path = fixture("logs/vllm-engine-crash.log");
        let (entry, evidence) = collect_log(&path, Some(&store));
        assert_eq!(entry["available"], true);
        assert_eq!(entry["format"], "text");
        assert_eq!(entry["lines"], 20);
        assert_eq!(entry["truncated"], false);
        let counts = &entry["counts"];
        let expected = [
            ("cuda_oom", 1),
            ("cuda_error", 0),
            ("nccl_timeout", 1),
            ("nccl_error", 1),
            ("xid", 2),
            ("python_traceback", 1),
            ("engine_dead", 2),
            ("engine_start_failed", 0),
            ("kv_cache_insufficient", 0),
            ("engine_stall", 0),
            ("kv_cache_preemption", 0),
            ("process_restart", 1),
            ("host_oom_kill", 0),
        ];
        for (id, n) in expected {
            assert_eq!(counts[id], n, "{id}: {counts}");
        }
        assert_eq!(counts.as_object().unwrap().len(), signature_ids().len());
        assert_eq!(entry["matches"]["engine_dead"]["first_line"], 11);
        assert_eq!(entry["matches"]["engine_dead"]["last_line"], 19);
        assert!(entry["matches"].get("cuda_error").is_none());
        assert_eq!(entry["xid_codes"]["79"], 1);
        assert_eq!(entry["xid_codes"]["13"], 1);

        // The excerpt went to the store, redacted, and the record points at it.
        let evidence = evidence.expect("evidence stored");
        assert_eq!(entry["evidence"], evidence.sha256.as_str());
        let stored = String::from_utf8(store.get(&evidence.sha256).unwrap()).unwrap();
        assert_eq!(stored.lines().count(), 20);
        for secret in [
            "sk-local-9f8e7d6c5b4a39281706f5e4",
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456",
            "Q2xK8vT3mZ9pL1aR7sW4yB6nD0fH5jU2cE8gI9kO3qY",
        ] {
            assert!(!stored.contains(secret), "{secret} stored");
            assert!(!entry.to_string().contains(secret), "{secret} in record");
        }
        assert!(stored.contains("Bearer [REDACTED]\n"));
        assert!(stored.contains("'api_key': ['[REDACTED]'], 'tensor_parallel_size': 2}"));
        assert!(stored.contains("adapter with token=[REDACTED]\n"));
        assert!(stored.contains("CUDA out of memory. Tried to allocate 1.96 GiB"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn startup_kv_failures_and_worker_stalls() {
        // Messages as vLLM prints them (vllm/v1/core/kv_cache_utils.py, shm_broadcast.py).
        let dir = scratch("kv");
        let path = dir.join("vllm.log");
        std::fs::write(
            &path,
            "ERROR 05-01 10:00:00 [core.py:700] ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.\n\
             INFO 05-01 10:02:00 [shm_broadcast.py:542] No available shared memory broadcast block found in 60 seconds. This typically happens when some processes are hanging.\n\
             INFO 05-01 10:03:00 [shm_broadcast.py:542] No available shared memory broadcast block found in 60 seconds. This typically happens when some processes are hanging.\n",
        )
        .unwrap();
        let (entry, _) = collect_log(&path, None);
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(entry["counts"]["kv_cache_insufficient"], 1);
        assert_eq!(entry["counts"]["engine_stall"], 2);
        assert_eq!(entry["matches"]["engine_stall"]["first_line"], 2);
        assert_eq!(entry["counts"]["cuda_oom"], 0);
    }

    #[test]
    fn only_the_tail_is_read_and_a_cut_first_line_is_dropped() {
        let dir = scratch("tail");
        let path = dir.join("big.log");
        let mut text =
            String::from("torch.OutOfMemoryError: CUDA out of memory (early, outside the tail)\n");
        for i in 0..40_000 {
            text.push_str(&format!("INFO periodic stats line {i:06} Running: 3 reqs\n"));
        }
        text.push_str(
            "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.\n",
        );
        std::fs::write(&path, &text).unwrap();
        let (entry, _) = collect_log_bounded(&path, None, 64 * 1024, 100_000);
        assert_eq!(entry["file_bytes"], text.len());
        assert_eq!(entry["read_bytes"], 64 * 1024);
        assert_eq!(entry["truncated"], true);
        assert_eq!(entry["counts"]["cuda_oom"], 0, "the early OOM is outside the tail");
        assert_eq!(entry["counts"]["engine_dead"], 1);
        // Every kept line is whole: the partial line at the cut was dropped.
        let (entry_lines, _) = collect_log_bounded(&path, None, 64 * 1024, 3);
        assert_eq!(entry_lines["lines"], 3);
        let n = entry["lines"].as_u64().unwrap();
        let line_len = "INFO periodic stats line 000000 Running: 3 reqs\n".len() as u64;
        assert!(n < 64 * 1024 / line_len + 2, "{n}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn missing_and_non_regular_logs_are_unavailable() {
        let (entry, ev) = collect_log(Path::new("/nonexistent/vllm.log"), None);
        assert_eq!(entry["available"], false);
        assert_eq!(entry["path"], "/nonexistent/vllm.log");
        assert!(entry["reason"].as_str().unwrap().contains("not found"));
        assert!(ev.is_none());
        let dir = scratch("dir");
        let (entry, _) = collect_log(&dir, None);
        assert_eq!(entry["available"], false);
        assert!(entry["reason"].as_str().unwrap().contains("not a regular file"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn non_utf8_and_long_lines_do_not_break_the_scan() {
        let dir = scratch("bytes");
        let path = dir.join("bin.log");
        let mut bytes = b"\xff\xfe garbage \x00\x01 NCCL error in: foo\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 100_000));
        bytes.extend(b" Traceback (most recent call last):\n");
        std::fs::write(&path, &bytes).unwrap();
        let (entry, _) = collect_log(&path, None);
        assert_eq!(entry["counts"]["nccl_error"], 1);
        // The marker sits past the line cap: the cut line no longer carries it.
        assert_eq!(entry["counts"]["python_traceback"], 0);
        assert!(entry["matches"]["nccl_error"]["example"].as_str().unwrap().contains('\u{fffd}'));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn journald_export_with_binary_and_multiline_messages() {
        let dir = scratch("journal");
        let path = dir.join("vllm.export");
        let bytes = export_stream();
        std::fs::write(&path, &bytes).unwrap();
        let dir_store = EvidenceStore::new(dir.join("ev"));
        let (entry, ev) = collect_log(&path, Some(&dir_store));
        assert_eq!(entry["format"], "journald-export");
        assert_eq!(entry["lines"], 4);
        assert_eq!(entry["counts"]["python_traceback"], 1);
        assert_eq!(entry["counts"]["cuda_oom"], 1);
        assert_eq!(entry["xid_codes"]["48"], 1);
        let stored = String::from_utf8(dir_store.get(&ev.unwrap().sha256).unwrap()).unwrap();
        assert!(stored.starts_with("vllm[413]: INFO engine started\n"), "{stored}");
        assert!(stored.contains("kernel: NVRM: Xid"));
        assert!(!stored.contains("abc123secret"));
        // A truncated size field (a cut or corrupt stream) ends the parse without panicking.
        std::fs::write(&path, b"__CURSOR=x\nMESSAGE\n\x05\x00").unwrap();
        let (entry, _) = collect_log(&path, None);
        assert_eq!(entry["lines"], 0);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A journald export stream with a binary multi-line MESSAGE, as `journalctl -o export`
    /// writes it.
    fn export_stream() -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1731241857000000\n_PID=413\nSYSLOG_IDENTIFIER=vllm\nMESSAGE=INFO engine started\n\n");
        let message = b"Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory. api_key=abc123secret";
        bytes.extend(b"__CURSOR=s=1;i=2\n_PID=413\nSYSLOG_IDENTIFIER=vllm\nMESSAGE\n");
        bytes.extend((message.len() as u64).to_le_bytes());
        bytes.extend(message);
        bytes.extend(b"\n\n");
        bytes.extend(b"__CURSOR=s=1;i=3\n_COMM=kernel\nMESSAGE=NVRM: Xid (PCI:0000:3b:00): 48, pid=413, DBE (double bit error)\n\n");
        bytes
    }

    #[test]
    fn journal_unit_through_a_stand_in_journalctl() {
        // The stand-in records its arguments and prints a canned export stream. It runs through
        // `sh` so no freshly written file is exec'd (that races with forks: ETXTBSY).
        let dir = scratch("journalctl");
        std::fs::write(dir.join("stream"), export_stream()).unwrap();
        let script =
            format!("printf '%s\\n' \"$@\" > '{0}/args'; cat '{0}/stream'\n", dir.display());
        std::fs::write(dir.join("journalctl.sh"), script).unwrap();
        let script_path = dir.join("journalctl.sh").display().to_string();
        let store = EvidenceStore::new(dir.join("ev"));
        let (entry, ev) = collect_journal(&["sh", &script_path], "vllm.service", Some(&store));
        let args = std::fs::read_to_string(dir.join("args")).unwrap();
        assert_eq!(entry["path"], "journal:vllm.service");
        assert_eq!(entry["available"], true, "{entry}");
        assert_eq!(entry["format"], "journald-export");
        assert_eq!(entry["lines"], 4);
        assert_eq!(entry["counts"]["cuda_oom"], 1);
        assert_eq!(entry["xid_codes"]["48"], 1);
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args,
            [
                "--no-pager",
                "--quiet",
                "--output=export",
                "--lines",
                "5000",
                "--unit",
                "vllm.service"
            ]
        );
        let stored = String::from_utf8(store.get(&ev.unwrap().sha256).unwrap()).unwrap();
        assert!(!stored.contains("abc123secret"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn journal_kernel_asks_for_the_kernel_log() {
        let dir = scratch("dmesg");
        std::fs::write(dir.join("stream"), export_stream()).unwrap();
        let script =
            format!("printf '%s\\n' \"$@\" > '{0}/args'; cat '{0}/stream'\n", dir.display());
        std::fs::write(dir.join("journalctl.sh"), script).unwrap();
        let script_path = dir.join("journalctl.sh").display().to_string();
        let (entry, _) = collect_journal(&["sh", &script_path], KERNEL_UNIT, None);
        let args = std::fs::read_to_string(dir.join("args")).unwrap();
        std::fs::remove_dir_all(dir).ok();
        assert_eq!(entry["path"], "journal:kernel");
        assert_eq!(entry["xid_codes"]["48"], 1);
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args,
            ["--no-pager", "--quiet", "--output=export", "--lines", "5000", "--dmesg"]
        );
    }

    #[test]
    fn journal_unit_names_and_missing_journalctl() {
        for bad in ["", "-k", "two words", "x\ny"] {
            let (entry, _) = collect_journal(&["journalctl"], bad, None);
            assert_eq!(entry["available"], false, "{bad:?}");
            assert!(entry["reason"].as_str().unwrap().contains("not a systemd unit name"));
        }
        let (entry, _) = collect_journal(&["/nonexistent/journalctl"], "vllm.service", None);
        assert_eq!(entry["available"], false);
        assert!(entry["reason"].as_str().unwrap().contains("cannot run"), "{entry}");
        // `journal:` in a --log path selects the journal reader.
        let (entry, _) = collect_log(Path::new("journal:-x"), None);
        assert_eq!(entry["path"], "journal:-x");
        assert!(entry["reason"].as_str().unwrap().contains("not a systemd unit name"));
    }

    #[test]
    fn real_journalctl_for_a_unit_without_entries() {
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|d| d.join("journalctl").is_file())
        });
        if !on_path {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("journalctl is required under CI=true (apt-get install systemd)");
            }
            opsg_core::cli::warn(
                "SKIPPED real_journalctl_for_a_unit_without_entries: journalctl not installed (apt-get install systemd)",
            );
            return;
        }
        let unit = format!("opsg-no-such-unit-{}.service", std::process::id());
        let (entry, _) = collect_log(Path::new(&format!("journal:{unit}")), None);
        assert_eq!(entry["available"], true, "{entry}");
        assert_eq!(entry["format"], "journald-export");
        assert_eq!(entry["lines"], 0);
        assert_eq!(entry["counts"]["engine_dead"], 0);
    }

    #[test]
    fn evidence_write_failure_is_recorded_not_fatal() {
        // The evidence root is a regular file, so the store cannot create its directory.
        let dir = scratch("evfail");
        let blocker = dir.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let store = EvidenceStore::new(&blocker);
        let (entry, ev) = collect_log(&fixture("logs/vllm-engine-crash.log"), Some(&store));
        assert!(ev.is_none());
        assert_eq!(entry["available"], true);
        assert!(entry["evidence_error"].as_str().unwrap().contains("not-a-dir"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers() {
        // Deterministic xorshift bytes biased toward the parsers' delimiters: newlines, `=`,
        // journald field names and size fields that point past the end.
        let pieces: [&[u8]; 10] = [
            b"\n",
            b"\n\n",
            b"=",
            b"MESSAGE",
            b"__CURSOR=",
            b"\xff\xfe",
            b"\x08\x00\x00\x00\x00\x00\x00\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\x7f",
            b"Xid (PCI:0000:3b:00): ",
            b"\r",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..3000 {
            let mut bytes = Vec::new();
            for _ in 0..(state % 48) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.extend_from_slice(pieces[(state % pieces.len() as u64) as usize]);
            }
            let cut = round % 2 == 0;
            let _ = detect_format(&bytes, cut);
            let text = text_lines(&bytes, cut);
            assert!(text.iter().all(|l| !l.contains('\n')));
            let journal = journal_lines(&bytes, cut);
            for line in journal.iter().chain(text.iter()) {
                let _ = xid_code(line);
                let _ = redact_line(&cap_line(line, 16));
            }
        }
    }
}

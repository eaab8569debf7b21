//! Helpers for the `opsg-audit` end-to-end tests: sealed incident chains built with the record
//! contract (as the real stages write them), temporary directories, and running the binary.
#![allow(dead_code)] // Each test file uses a different subset.

use opsg_core::Kind;
use opsg_core::record::{Record, Stamp};
use opsg_core::seal::{GENESIS, HashHex};
use opsg_core::stream::ChainWriter;
use opsg_core::time::Timestamp;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary under test.
pub const AUDIT: &str = env!("CARGO_BIN_EXE_opsg-audit");

/// The instant every generated incident starts at (its first anomalous sample).
pub const T0: i64 = 1_790_000_000_000;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("opsg-audit-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a generated incident goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Triage found nothing.
    NoIncident,
    /// Fixed by a safe traffic shift, verified.
    Resolved,
    /// The fix did not work; its inverse ran.
    RolledBack,
    /// Policy blocked the plan.
    Blocked,
    /// The plan needs an approval token.
    AwaitingApproval,
    /// Approved in dry-run mode.
    DryRun,
}

fn stamp(tool: &'static str, at: i64) -> Stamp {
    Stamp { tool, version: "0.1.0", now: Timestamp(at) }
}

fn rfc(at: i64) -> String {
    Timestamp(at).to_rfc3339()
}

/// Builds one chain, sealing each record after the last.
pub struct ChainBuilder {
    out: Vec<u8>,
    last: HashHex,
    ids: Vec<String>,
    run: String,
    incident: Option<String>,
}

impl ChainBuilder {
    /// An empty chain for `run`.
    pub fn new(run: &str) -> ChainBuilder {
        ChainBuilder {
            out: Vec::new(),
            last: GENESIS,
            ids: Vec::new(),
            run: run.into(),
            incident: None,
        }
    }

    /// Seal and add a record; returns its hash.
    pub fn push(&mut self, kind: Kind, tool: &'static str, at: i64, body: Value) -> HashHex {
        let mut record =
            Record::new(kind, &stamp(tool, at), self.run.clone(), self.incident.clone(), body);
        record.envelope.consumes = self.ids.last().cloned().into_iter().collect();
        let mut writer = ChainWriter::new(&mut self.out, self.last);
        let hash = writer.append(&mut record).expect("seal");
        writer.finish().expect("write");
        self.last = hash;
        self.ids.push(record.envelope.id.clone());
        hash
    }

    /// The chain as JSON Lines.
    pub fn bytes(self) -> Vec<u8> {
        self.out
    }
}

/// An observation body with `targets` targets and a padding series of `points` points.
pub fn observation_body(seed: u64, at: i64, targets: usize, points: usize) -> Value {
    let targets: Vec<Value> = (0..targets)
        .map(|t| {
            json!({
                "name": format!("vllm-{seed}-{t}"),
                "source": format!("http://10.0.{}.{}:8000/metrics", seed % 250, t % 250),
                "labels": {"deployment": "llama-70b", "role": if t == 0 { "canary" } else { "stable" }},
                "status": "up",
                "samples": [{"at": rfc(at), "status": "up", "duration_ms": 12.5}],
                "series": [{
                    "name": "vllm:kv_cache_usage_perc",
                    "type": "gauge",
                    "labels": {"model_name": "llama-70b"},
                    "points": (0..points).map(|i| json!({"t": at - (points - i) as i64 * 1000, "v": 0.5 + (i % 50) as f64 / 100.0})).collect::<Vec<_>>(),
                }],
            })
        })
        .collect();
    json!({
        "window": {"start": rfc(at - 60_000), "end": rfc(at)},
        "interval_s": 1.0,
        "targets": targets,
    })
}

/// A whole incident chain (observation → finding → … → verification) for `scenario`, starting
/// at `t0` (the first anomalous sample). Times: detected t0+62s, first action started t0+65s,
/// verified t0+185s.
pub fn incident_chain(scenario: Scenario, seed: u64, t0: i64) -> Vec<u8> {
    let mut chain =
        ChainBuilder::new(&format!("run-{seed:014}-{:08x}", seed * 2654435761 % (1 << 32)));
    chain.push(
        Kind::Observation,
        "opsg-scrape",
        t0 + 60_000,
        observation_body(seed, t0 + 60_000, 2, 3),
    );
    if scenario == Scenario::NoIncident {
        chain.push(
            Kind::Finding,
            "opsg-triage",
            t0 + 62_000,
            json!({
                "status": "no_incident", "class": "none", "fingerprint": "0".repeat(64),
                "summary": "all targets healthy", "method": {"kind": "rules"},
            }),
        );
        return chain.bytes();
    }
    chain.incident = Some(format!("inc-{seed:06}"));
    chain.push(
        Kind::Finding,
        "opsg-triage",
        t0 + 62_000,
        json!({
            "status": "incident",
            "class": "kv_cache_saturation",
            "fingerprint": HashHex::of(format!("kv{seed}").as_bytes()),
            "summary": "KV cache above 95% on vllm-0 with preemptions climbing",
            "affected_targets": [format!("vllm-{seed}-0")],
            "first_anomalous_at": rfc(t0),
            "hypotheses": [{"class": "kv_cache_saturation", "cause": "too many concurrent long prompts", "confidence": 0.9}],
            "method": {"kind": "rules"},
        }),
    );
    let plan_hash = chain.push(
        Kind::Plan,
        "opsg-plan",
        t0 + 63_000,
        json!({
            "class": "kv_cache_saturation",
            "confidence": 0.9,
            "rationale": "shift 20% of traffic off the saturated replica",
            "actions": [
                {"index": 0, "action": "shift_traffic", "target": "llama-70b", "safety": "safe",
                 "params": {"from": "vllm-0", "to": "vllm-1", "weight": 0.2},
                 "blast_radius": {"replicas": 2, "traffic_share": 0.2},
                 "inverse": {"action": "shift_traffic", "params": {"from": "vllm-1", "to": "vllm-0", "weight": 0.2}}},
                {"index": 1, "action": "restart_replica", "target": "vllm-0", "safety": "impactful",
                 "blast_radius": {"replicas": 1, "traffic_share": 0.5}},
            ],
            "method": {"kind": "rules"},
        }),
    );
    let (verdict, mode) = match scenario {
        Scenario::Blocked => ("blocked", "live"),
        Scenario::AwaitingApproval => ("awaiting_approval", "live"),
        Scenario::DryRun => ("approved", "dry_run"),
        _ => ("approved", "live"),
    };
    let decision_hash = chain.push(
        Kind::Decision,
        "opsg-gate",
        t0 + 64_000,
        json!({
            "verdict": verdict, "mode": mode, "plan_hash": plan_hash,
            "approved_actions": if verdict == "approved" { json!([0, 1]) } else { json!([]) },
            "reasons": [{"code": "within_policy", "message": "all actions allowlisted"}],
            "policy_sha256": HashHex::of(b"policy"),
        }),
    );
    if matches!(scenario, Scenario::Blocked | Scenario::AwaitingApproval) {
        return chain.bytes();
    }
    let action = |index: u32, outcome: &str, started: i64| {
        json!({
            "index": index,
            "idempotency_key": format!("{plan_hash}:{index}"),
            "request": {"actuator": "http", "method": "POST", "url": "http://sim/actions"},
            "status": 200, "duration_ms": 40.0, "outcome": outcome, "started": rfc(started),
        })
    };
    let dry = scenario == Scenario::DryRun;
    let outcome = if dry { "dry_run" } else { "succeeded" };
    chain.push(
        Kind::Execution,
        "opsg-exec",
        t0 + 70_000,
        json!({
            "mode": mode, "decision_hash": decision_hash,
            "actions": [action(0, outcome, t0 + 65_000), action(1, outcome, t0 + 66_000)],
            "status": if dry { "dry_run" } else { "completed" },
        }),
    );
    if dry {
        return chain.bytes();
    }
    let rolled_back = scenario == Scenario::RolledBack;
    let mut verification = json!({
        "outcome": if rolled_back { "rolled_back" } else { "resolved" },
        "window": {"start": rfc(t0 + 70_000), "end": rfc(t0 + 185_000)},
        "checks": [{"action_index": 0, "signal": "vllm:kv_cache_usage_perc", "target": "vllm-0",
                    "before": 0.97, "after": if rolled_back { 0.96 } else { 0.71 },
                    "expected": "decrease by >= 20%", "result": if rolled_back { "fail" } else { "pass" }}],
        "verified_at": rfc(t0 + 185_000),
    });
    if rolled_back {
        verification["rollback"] =
            json!({"actions": [action(0, "succeeded", t0 + 186_000)], "verified": true});
    }
    chain.push(Kind::Verification, "opsg-verify", t0 + 185_000, verification);
    chain.bytes()
}

/// A chain of `n` observation records (padding each to about `points` series points).
pub fn observation_chain(n: usize, seed: u64, points: usize) -> Vec<u8> {
    let mut chain = ChainBuilder::new(&format!("run-obs-{seed:08}"));
    for i in 0..n {
        let at = T0 + i as i64 * 1000;
        chain.push(
            Kind::Observation,
            "opsg-scrape",
            at,
            observation_body(seed * 100_000 + i as u64, at, 1, points),
        );
    }
    chain.bytes()
}

/// Run `opsg-audit` with `args`, feeding `stdin`, in a clean environment.
pub fn audit(args: &[&str], stdin: &[u8]) -> Output {
    audit_env(args, stdin, &[])
}

/// Run `opsg-audit` with extra environment variables.
pub fn audit_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(AUDIT)
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsg-audit");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The tool may exit before reading everything (a bad first line): ignore broken pipes.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = feeder.join();
    out
}

/// Append `input` to `ledger` through the binary; returns the output.
pub fn append(ledger: &Path, input: &[u8]) -> Output {
    audit(&["append", "--ledger", &ledger.display().to_string()], input)
}

/// The lines of a JSON Lines byte string (without newlines).
pub fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\n").unwrap_or(l).to_vec())
        .collect()
}

/// Join lines back, each with its newline.
pub fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `opsg-audit: error: …` lines of stderr.
pub fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("opsg-audit: error:"))
        .map(str::to_string)
        .collect()
}

/// Parse a JSON line.
pub fn json(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("JSON")
}

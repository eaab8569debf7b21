//! Benchmark helper (not part of the user-facing tools): write a large, valid ledger fast.
//!
//! `gen_ledger OUT BYTES` writes ledger lines embedding observation-like sealed records of about
//! 2 KB each (a new run every 100 records) until the file holds at least BYTES bytes. Used by
//! `tests/bench/audit_verify.sh`; `opsg-audit verify` must accept what it writes.

use opsg_audit::line;
use opsg_core::seal::{self, GENESIS, HashHex};
use opsg_core::time::Timestamp;
use std::io::{BufWriter, Write};

fn record(i: u64, prev: HashHex, at: Timestamp) -> (Vec<u8>, HashHex) {
    let created = at.to_rfc3339();
    let run = format!("run-bench-{:08}", i / 100);
    let id = opsg_core::record::derive_id(opsg_core::Kind::Observation, prev, &run, &created);
    let mut points = String::new();
    for p in 0..48u64 {
        if p > 0 {
            points.push(',');
        }
        let v = ((i * 31 + p * 7) % 1000) as f64 / 1000.0;
        points.push_str(&format!("{{\"t\":{},\"v\":{v}}}", at.millis() - (48 - p as i64) * 1000));
    }
    let unsealed = format!(
        "{{\"schema\":\"opsg.observation/v1\",\"kind\":\"observation\",\"id\":\"{id}\",\
         \"incident\":null,\"run\":\"{run}\",\"producer\":{{\"tool\":\"opsg-scrape\",\
         \"version\":\"0.1.0\"}},\"created\":\"{created}\",\"consumes\":[],\"evidence\":[],\
         \"replay\":false,\"body\":{{\"window\":{{\"start\":\"{created}\",\"end\":\"{created}\"}},\
         \"interval_s\":1.0,\"targets\":[{{\"name\":\"vllm-{t}\",\
         \"source\":\"http://10.0.0.{t}:8000/metrics\",\"labels\":{{\"deployment\":\"llama-70b\"}},\
         \"status\":\"up\",\"samples\":[],\"series\":[{{\"name\":\"vllm:kv_cache_usage_perc\",\
         \"type\":\"gauge\",\"labels\":{{}},\"points\":[{points}]}}]}}]}},\"prev\":\"{prev}\"}}",
        t = i % 250
    );
    seal::seal(unsealed.as_bytes()).expect("an object ending in prev")
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(bytes)) = (args.get(1), args.get(2).and_then(|b| b.parse::<u64>().ok()))
    else {
        let _ = writeln!(std::io::stderr(), "usage: gen_ledger OUT BYTES");
        return std::process::ExitCode::from(2);
    };
    let file = match std::fs::File::create(out) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "gen_ledger: {out}: {e}");
            return std::process::ExitCode::from(4);
        }
    };
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let (mut written, mut seq) = (0u64, 0u64);
    let (mut ledger_prev, mut record_prev) = (GENESIS, GENESIS);
    let start = Timestamp(1_790_000_000_000);
    while written < bytes {
        if seq % 100 == 0 {
            record_prev = GENESIS;
        }
        let at = start.plus_millis(seq as i64 * 1000);
        let (rec, rec_hash) = record(seq, record_prev, at);
        record_prev = rec_hash;
        seq += 1;
        let (ledger_line, hash) = line::build(seq, &at.to_rfc3339(), &rec, ledger_prev);
        ledger_prev = hash;
        if w.write_all(&ledger_line).and_then(|()| w.write_all(b"\n")).is_err() {
            let _ = writeln!(std::io::stderr(), "gen_ledger: cannot write {out}");
            return std::process::ExitCode::from(4);
        }
        written += ledger_line.len() as u64 + 1;
    }
    if w.flush().is_err() {
        return std::process::ExitCode::from(4);
    }
    let _ = writeln!(std::io::stderr(), "gen_ledger: {out}: {seq} lines, {written} bytes");
    std::process::ExitCode::SUCCESS
}

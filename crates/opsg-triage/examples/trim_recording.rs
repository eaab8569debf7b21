//! Trim a recorded observation to the series the built-in rules read, for the checked-in corpus.
//!
//! `trim_recording < observation.jsonl > trimmed.jsonl`: reads one sealed observation record
//! (opsg-scrape's output), keeps every target, sample and label but only the series families the
//! built-in rules, the canary logic and the arrival estimate use, and re-seals it. The bytes
//! changed, so the record no longer claims to be opsg-scrape's: its producer becomes
//! `opsg-corpus`, `replay` is set, and the run and creation time are kept.

use opsg_core::kinds::observation::ObservationBody;
use opsg_core::record::{Kind, Record, Stamp};
use opsg_core::seal::GENESIS;
use opsg_core::stream::{Limits, read_chain};
use opsg_core::time::Timestamp;
use std::io::{Read, Write};

fn keep(name: &str) -> bool {
    let rules = opsg_triage::Rules::builtin();
    rules.rules.iter().any(|r| {
        r.signal == name
            || r.over.as_deref() == Some(name)
            || r.peers.as_ref().is_some_and(|p| p.load.iter().any(|l| l == name))
    }) || matches!(
        name,
        "vllm:cache_config_info"
            | "process_start_time_seconds"
            | "vllm:num_requests_running"
            | "vllm:request_success_total"
    )
}

fn main() -> std::process::ExitCode {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return std::process::ExitCode::from(4);
    }
    let chain = match read_chain(&input[..], "stdin", &Limits::default()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "trim_recording: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let Some(line) = chain.last_of(Kind::Observation) else {
        let _ = writeln!(std::io::stderr(), "trim_recording: no observation record");
        return std::process::ExitCode::from(3);
    };
    let Ok(mut body) = line.body::<ObservationBody>("stdin") else {
        return std::process::ExitCode::from(3);
    };
    for t in &mut body.targets {
        t.series.retain(|s| keep(&s.name));
    }
    let now = Timestamp::parse_rfc3339(&line.envelope.created).unwrap_or(Timestamp(0));
    let stamp = Stamp { tool: "opsg-corpus", version: env!("CARGO_PKG_VERSION"), now };
    let mut record = Record::new(Kind::Observation, &stamp, line.envelope.run.clone(), None, body);
    record.envelope.replay = true;
    record.envelope.evidence = line.envelope.evidence.clone();
    let Ok((sealed, _)) = record.seal(GENESIS) else {
        return std::process::ExitCode::from(1);
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(&sealed).and_then(|_| out.write_all(b"\n")).is_err() {
        return std::process::ExitCode::from(4);
    }
    std::process::ExitCode::SUCCESS
}

//! Generate the incident corpus in `examples/incidents/` (reproducible: fixed seeds and clock).
//!
//! `cargo run -p opsg-triage --example gen_corpus -- [DIR]` writes one directory per case with
//! `observation.jsonl` (one sealed observation record, producer `opsg-synth`, `replay: true`) and
//! `case.json` (expected class and first action, the clock to replay with, and the provenance).
//! The expected first action is the remediation an SRE would start with for that class; it is
//! written here by hand, independently of the catalog, so the benchmark checks the catalog too.

use opsg_core::kinds::finding::IncidentClass;
use opsg_core::time::Timestamp;
use opsg_triage::synth::{self, FAULT_CLASSES, NOISE_KINDS, Scenario};
use std::path::PathBuf;

const START: i64 = 1_795_000_000_000; // 2026-11-18T…Z

fn expected_first_action(class: IncidentClass) -> &'static str {
    match class {
        // The synthetic saturations hit the stable deployment, whose excess its canary cannot
        // take: the planner scales it up.
        IncidentClass::KvCacheSaturation => "scale_replicas",
        IncidentClass::QueueBacklog | IncidentClass::TrafficSurge => "scale_replicas",
        IncidentClass::CanaryRegression => "rollback_config",
        IncidentClass::ReplicaDown
        | IncidentClass::MemoryLeak
        | IncidentClass::HostMemoryPressure => "restart_replica",
        IncidentClass::GpuFault | IncidentClass::NetworkLatency => "cordon_node",
        IncidentClass::DiskPressure => "cleanup_node",
        IncidentClass::Unknown => "escalate",
        IncidentClass::None => "none",
    }
}

fn write(
    dir: &std::path::Path,
    name: &str,
    scenario: Scenario,
    seed: u64,
    class: IncidentClass,
    what: &str,
) {
    let start = START + seed as i64 * 3_600_000;
    let body = synth::observation(scenario, seed, start);
    let end = start + (synth::POINTS as i64 - 1) * synth::INTERVAL_S * 1000;
    let now = Timestamp(end + 5_000);
    let case_dir = dir.join(name);
    std::fs::create_dir_all(&case_dir).expect("create case dir");
    let line =
        synth::sealed(&body, Timestamp(end + 1_000), &format!("run-synth-{name}")).expect("seal");
    std::fs::write(case_dir.join("observation.jsonl"), line).expect("write observation");
    let case = serde_json::json!({
        "id": name,
        "expected_class": class,
        "expected_first_action": expected_first_action(class),
        "now": now.to_rfc3339(),
        "scenario": what,
        "seed": seed,
        "source": "synthetic: opsg_triage::synth (crates/opsg-triage/examples/gen_corpus.rs); not an opsg-sim recording",
    });
    let text = serde_json::to_string_pretty(&case).expect("json") + "\n";
    std::fs::write(case_dir.join("case.json"), text).expect("write case");
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("examples/incidents"));
    let mut n = 0;
    for class in FAULT_CLASSES {
        for seed in 100..106u64 {
            write(
                &dir,
                &format!("{class}-{seed}"),
                Scenario::Fault(*class),
                seed,
                *class,
                &format!("fault {class}"),
            );
            n += 1;
        }
    }
    for (variant, kind) in NOISE_KINDS.iter().enumerate() {
        for seed in [200u64, 201] {
            let seed = seed + 10 * variant as u64;
            write(
                &dir,
                &format!("healthy-{kind}-{seed}"),
                Scenario::Healthy { variant: variant as u8 },
                seed,
                IncidentClass::None,
                &format!("healthy: {kind}"),
            );
            n += 1;
        }
    }
    let msg = format!("wrote {n} cases under {}\n", dir.display());
    std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes()).ok();
}

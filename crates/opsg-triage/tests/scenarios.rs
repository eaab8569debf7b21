//! The pure core on synthetic fleets: every fault class is named, healthy noise is not an incident.

use opsg_core::kinds::finding::{FindingStatus, IncidentClass};
use opsg_triage::synth::{self, FAULT_CLASSES, NOISE_KINDS, Scenario};
use opsg_triage::{Rules, triage};

const START: i64 = 1_795_000_000_000;

#[test]
fn every_fault_class_is_named_with_its_targets() {
    let rules = Rules::builtin();
    let mut wrong = Vec::new();
    for class in FAULT_CLASSES {
        for seed in 0..8 {
            let obs = synth::observation(Scenario::Fault(*class), seed, START);
            let f = triage(&obs, &rules);
            if f.status != FindingStatus::Incident || f.class != *class {
                let hyps: Vec<String> =
                    f.hypotheses.iter().map(|h| format!("{}={}", h.class, h.confidence)).collect();
                wrong.push(format!(
                    "{class} seed {seed}: got {} [{}] {}",
                    f.class,
                    hyps.join(" "),
                    f.summary
                ));
            } else {
                assert!(!f.affected_targets.is_empty());
                assert!(f.first_anomalous_at.is_some());
            }
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}

#[test]
fn healthy_and_noisy_windows_raise_nothing() {
    let rules = Rules::builtin();
    let mut wrong = Vec::new();
    for variant in 0..NOISE_KINDS.len() as u8 {
        for seed in 0..6 {
            let obs = synth::observation(
                Scenario::Healthy { variant },
                seed * 31 + variant as u64,
                START,
            );
            let f = triage(&obs, &rules);
            if f.status != FindingStatus::NoIncident {
                wrong.push(format!(
                    "{} seed {seed}: {} {}",
                    NOISE_KINDS[variant as usize], f.class, f.summary
                ));
            }
            assert_eq!(f.class == IncidentClass::None, f.status == FindingStatus::NoIncident);
        }
    }
    assert!(wrong.is_empty(), "false incidents:\n{}", wrong.join("\n"));
}

#[test]
fn log_signatures_corroborate_but_never_raise_alone() {
    let rules = Rules::builtin();
    let mut obs = synth::observation(Scenario::Fault(IncidentClass::ReplicaDown), 3, START);
    let plain = triage(&obs, &rules);
    let victim = plain.affected_targets[0].clone();
    obs.logs.push(serde_json::json!({"path": format!("/var/log/vllm/{victim}.log"), "counts": {"engine_dead": 2}}));
    // A log of another replica that merely shares a prefix is not this target's.
    obs.logs.push(serde_json::json!({"path": format!("/var/log/vllm/{victim}0.log"), "counts": {"engine_dead": 9}}));
    let with_log = triage(&obs, &rules);
    assert!(with_log.hypotheses[0].confidence > plain.hypotheses[0].confidence);
    assert!(with_log.hypotheses[0].evidence.contains(&format!("log:engine_dead@{victim}")));
    assert!(!with_log.hypotheses[0].evidence.iter().any(|e| e.contains(&format!("{victim}0"))));

    let mut healthy = synth::observation(Scenario::Healthy { variant: 0 }, 3, START);
    healthy.logs.push(serde_json::json!({"path": "/var/log/vllm/stable-0.log", "counts": {"xid": 5, "engine_dead": 1}}));
    assert_eq!(triage(&healthy, &rules).status, FindingStatus::NoIncident);
}

//! `opsg-replay campaign` against a real opsg-sim and the real binaries: the runner resets and
//! faults the sim, runs the pipe on the sim's clock, and reports what happened per trial.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REPLAY: &str = env!("CARGO_BIN_EXE_opsg-replay");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opsg-campaign-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bin_dir() -> PathBuf {
    Path::new(REPLAY).parent().unwrap().to_path_buf()
}

fn rows(csv_text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The baseline arm detects a crashed replica but, remediating nothing, leaves it down: the
/// runner must measure detection, count no actions, and report the fleet unhealthy with why.
#[test]
fn baseline_arm_detects_and_does_nothing() {
    let dir = temp_dir("baseline");
    let file = dir.join("campaign.json");
    std::fs::write(
        &file,
        r#"{"seed": 3, "speed": 30, "interval_s": 30, "max_runs": 2, "warmup_s": 30, "trials": 1,
            "faults": [{"fault": "replica_crash", "target": "stable-1", "intensities": [0.8],
                        "expected_class": "replica_down"}],
            "arms": [{"name": "baseline", "remediate": false}]}"#,
    )
    .unwrap();
    let out = Command::new(REPLAY)
        .args(["campaign", file.to_str().unwrap(), "--csv", "-", "-q", "--bin-dir"])
        .arg(bin_dir())
        .args(["--work-dir", dir.join("work").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = rows(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["arm"], "baseline");
    assert_eq!(row["first_class"], "replica_down", "{row:?}");
    assert_eq!(row["class_correct"], "true");
    let ttd: f64 = row["time_to_detect_s"].parse().expect("detected");
    assert!((30.0..65.0).contains(&ttd), "detected by the first or second cron run: {ttd}");
    assert_eq!(row["actions"], "0", "the baseline executes nothing");
    assert_eq!(row["healthy_end"], "false");
    assert!(row["unhealthy_reason"].contains("stable-1 down"), "{row:?}");
    assert!(
        stderr.contains("baseline") && stderr.contains("replica_crash"),
        "summary table: {stderr}"
    );
    // The pipe really ran: each run appended the chain (observation, finding, report) to the ledger.
    let ledger =
        std::fs::read_to_string(dir.join("work/baseline-replica_crash-0.8-1/ledger.jsonl"))
            .unwrap();
    assert_eq!(ledger.lines().count(), 2 * 3, "{ledger}");
}

#[test]
fn bad_campaign_files_are_one_line_errors() {
    let dir = temp_dir("bad");
    let file = dir.join("campaign.json");
    std::fs::write(&file, r#"{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1, "arms": [{"name": "a"}],
        "faults": [{"fault": "replica_crash", "target": "x", "intensities": [0.5]}], "colour": "blue"}"#).unwrap();
    let out = Command::new(REPLAY).args(["campaign", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("campaign.json") && err.contains("colour"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    std::fs::write(
        &file,
        r#"{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1, "arms": [{"name": "a"}],
        "faults": [{"fault": "replica_crash", "target": "x", "intensities": [1.5]}]}"#,
    )
    .unwrap();
    let out = Command::new(REPLAY).args(["campaign", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("field `faults[0].intensities[0]`"), "{err}");
}

/// Run a one-fault campaign with the `rules` arm under the campaign's autonomous policy; the
/// CSV rows back.
fn rules_arm(name: &str, fault: &str, target: &str, intensity: f64, max_runs: u32) -> Vec<Row> {
    let dir = temp_dir(name);
    let file = dir.join("campaign.json");
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/campaign/policy-autonomous.json");
    let campaign = serde_json::json!({
        "seed": 7, "speed": 20, "interval_s": 30, "max_runs": max_runs, "warmup_s": 30,
        "trials": 1,
        "faults": [{"fault": fault, "target": target, "intensities": [intensity]}],
        "arms": [{"name": "rules", "policy": policy}],
        "verify_args": ["--settle", "1s", "--samples", "3", "--interval", "300ms",
                        "--max-wait", "10s", "--recheck", "1s"]
    });
    std::fs::write(&file, campaign.to_string()).unwrap();
    let out = Command::new(REPLAY)
        .args(["campaign", file.to_str().unwrap(), "--csv", "-", "-q", "--bin-dir"])
        .arg(bin_dir())
        .args(["--work-dir", dir.join("work").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    rows(&String::from_utf8_lossy(&out.stdout))
}

type Row = std::collections::HashMap<String, String>;

/// Regression: no catalog action freed a node's disk, so disk pressure always escalated. The
/// rules arm now cleans the node up (impactful, allowed by the autonomous policy), verification
/// sees the free share of `/` come back, and the fleet ends healthy.
#[test]
fn disk_pressure_is_resolved_by_cleaning_the_node_up() {
    let rows = rules_arm("disk", "disk_pressure", "gpu-node-a", 0.9, 4);
    let row = &rows[0];
    assert_eq!(row["first_class"], "disk_pressure", "{row:?}");
    assert_eq!(row["outcome"], "resolved", "{row:?}");
    assert!(!row["time_to_resolve_s"].is_empty(), "{row:?}");
    assert_eq!((row["actions"].as_str(), row["impactful"].as_str()), ("1", "1"), "{row:?}");
    assert_eq!((row["destructive"].as_str(), row["rolled_back"].as_str()), ("0", "0"));
    assert_eq!(row["healthy_end"], "true", "{row:?}");
}

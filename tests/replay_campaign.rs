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

/// `opsg-replay campaign FILE --csv -`, trials kept under `dir/work`; no approval token or key
/// from the caller's environment reaches it.
fn run_campaign(dir: &Path, file: &Path) -> std::process::Output {
    Command::new(REPLAY)
        .args(["campaign", file.to_str().unwrap(), "--csv", "-", "-q", "--bin-dir"])
        .arg(bin_dir())
        .args(["--work-dir", dir.join("work").to_str().unwrap()])
        .env_remove("OPSG_APPROVAL")
        .env_remove("OPSG_APPROVAL_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

/// Run a baseline-arm campaign of a crashed `stable-1` with `trials` trials and more top-level
/// fields (`extra`, as JSON text: at least `warmup_s`) in the campaign file; its directory and
/// output.
fn baseline_crash_campaign(
    name: &str,
    trials: u32,
    extra: &str,
) -> (PathBuf, std::process::Output) {
    let dir = temp_dir(name);
    let file = dir.join("campaign.json");
    let text = format!(
        r#"{{"seed": 3, "speed": 30, "interval_s": 30, "max_runs": 2,
            "trials": {trials}, {extra},
            "faults": [{{"fault": "replica_crash", "target": "stable-1", "intensities": [0.8],
                        "expected_class": "replica_down"}}],
            "arms": [{{"name": "baseline", "remediate": false}}]}}"#
    );
    std::fs::write(&file, text).unwrap();
    let out = run_campaign(&dir, &file);
    (dir, out)
}

/// The baseline arm detects a crashed replica but, remediating nothing, leaves it down: the
/// runner must measure detection, count no actions, and report the fleet unhealthy with why.
#[test]
fn baseline_arm_detects_and_does_nothing() {
    let (dir, out) =
        baseline_crash_campaign("baseline", 1, r#""warmup_s": 30, "onset": "after_run""#);
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
    assert_eq!(row["first_run_s"], "30.0", "by default the fault strikes just after a run");
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
    let out = run_campaign(&dir, &file);
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
    // The trailing first-token measure has nothing to trail here: it clears with the fix,
    // never before the users-now resolution.
    let ttr: f64 = row["time_to_resolve_s"].parse().unwrap();
    let clear: f64 = row["time_to_clear_s"].parse().expect("cleared within the watch");
    assert!(clear >= ttr && clear - ttr < 10.0, "resolved {ttr}, clear {clear}");
}

/// With `"onset": "uniform"` the fault strikes at a seeded point of the cron period: the first
/// run comes sooner than a whole period, differs between trials, and detection dates from it.
#[test]
fn a_uniform_onset_brings_the_first_run_inside_the_period() {
    let (dir, out) = baseline_crash_campaign(
        "onset",
        2,
        r#""warmup_s": 90, "warmup_runs": 2, "onset": "uniform""#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = rows(&String::from_utf8_lossy(&out.stdout));
    let first: Vec<f64> = rows.iter().map(|r| r["first_run_s"].parse().unwrap()).collect();
    assert!(first.iter().all(|f| *f > 0.0 && *f < 30.0), "{first:?}");
    assert_ne!(first[0], first[1], "a draw per trial");
    for (row, f) in rows.iter().zip(&first) {
        let ttd: f64 = row["time_to_detect_s"].parse().expect("a crash is seen at once");
        assert!(ttd >= *f && ttd < f + 3.0, "detected by the first run at {f}: {ttd}");
        assert_eq!(row["warmup_incidents"], "0", "the healthy fleet raised nothing: {row:?}");
    }
    // The cron job ran twice before the fault (observation, finding, report each), then once
    // or twice after it.
    let ledger =
        std::fs::read_to_string(dir.join("work/baseline-replica_crash-0.8-1/ledger.jsonl"))
            .unwrap();
    let findings: Vec<serde_json::Value> = ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["record"]["kind"] == "finding")
        .collect();
    let statuses: Vec<&str> =
        findings.iter().map(|f| f["record"]["body"]["status"].as_str().unwrap()).collect();
    assert!(statuses.len() >= 3 && statuses[..2] == ["no_incident", "no_incident"], "{statuses:?}");
    assert_eq!(statuses[2], "incident", "{statuses:?}");
}

#[test]
fn warmup_runs_need_room_before_the_fault() {
    let dir = temp_dir("warmup");
    let file = dir.join("campaign.json");
    std::fs::write(
        &file,
        r#"{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1, "warmup_s": 60,
            "warmup_runs": 2, "arms": [{"name": "a"}],
            "faults": [{"fault": "replica_crash", "target": "x", "intensities": [0.5]}]}"#,
    )
    .unwrap();
    let out = Command::new(REPLAY).args(["campaign", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warmup_runs") && err.contains("at least 90"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The `rules+approval` arm with an on-call approver: a crashed replica needs a restart
/// (impactful), which the policy holds for a signed approval. The approver answers 60 sim
/// seconds after the page with a real token from `opsg-gate approve`; the restart must run only
/// then, under a decision that names the approver, and the fleet must end healthy.
#[test]
fn an_approver_arm_restarts_only_after_the_human_signs() {
    let dir = temp_dir("approver");
    let file = dir.join("campaign.json");
    // The default policy's approvals and bounds, without its freeze windows (wall-clock
    // weekend nights would block the restart whenever the test ran then).
    let mut policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    policy.as_object_mut().unwrap().remove("freeze_windows");
    assert_eq!(policy["require_approval"], serde_json::json!(["impactful", "destructive"]));
    std::fs::write(dir.join("policy.json"), policy.to_string()).unwrap();
    let delay = 60.0;
    let campaign = serde_json::json!({
        "seed": 3, "speed": 30, "interval_s": 30, "max_runs": 4, "warmup_s": 30, "trials": 1,
        "faults": [{"fault": "replica_crash", "target": "stable-1", "intensities": [0.8],
                    "expected_class": "replica_down"}],
        "arms": [{"name": "rules+approval", "policy": "policy.json",
                  "approver": {"name": "oncall", "delay_s": delay}}],
        "verify_args": ["--settle", "1s", "--samples", "3", "--interval", "300ms",
                        "--max-wait", "10s", "--recheck", "1s"]
    });
    std::fs::write(&file, campaign.to_string()).unwrap();
    let out = run_campaign(&dir, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = rows(&String::from_utf8_lossy(&out.stdout));
    let row = &rows[0];
    assert_eq!(row["first_class"], "replica_down", "{row:?}");
    assert_eq!((row["approvals"].as_str(), row["declined"].as_str()), ("1", "0"), "{row:?}");
    let num = |k: &str| row[k].parse::<f64>().unwrap_or_else(|_| panic!("{k}: {row:?}"));
    let (ttd, ttm) = (num("time_to_detect_s"), num("time_to_mitigate_s"));
    assert!(ttm >= ttd + delay, "the restart ran before the human answered: {row:?}");
    assert!(num("awaiting_s") >= delay, "{row:?}");
    assert!(num("time_to_resolve_s") >= ttm, "{row:?}");
    assert_eq!((row["actions"].as_str(), row["impactful"].as_str()), ("1", "1"), "{row:?}");
    assert_eq!(row["destructive_unapproved"], "0");
    assert_eq!(row["outcome"], "resolved", "{row:?}");
    assert_eq!(row["healthy_end"], "true", "{row:?}");
    assert!(stderr.contains("awaiting_med_s"), "summary table: {stderr}");

    // The ledger tells the story: decisions awaited approval and nothing ran under them; the
    // one that approved carries the approver's valid token, and only its execution restarted.
    let trial = dir.join("work/rules+approval-replica_crash-0.8-1");
    let ledger = std::fs::read_to_string(trial.join("ledger.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| l.get("record").cloned().unwrap_or(l))
        .collect();
    let decisions: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["kind"] == "decision").map(|r| &r["body"]).collect();
    let verdicts: Vec<&str> = decisions.iter().map(|d| d["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts.last(), Some(&"approved"), "{verdicts:?}");
    assert!(
        verdicts[..verdicts.len() - 1].iter().all(|v| *v == "awaiting_approval"),
        "{verdicts:?}"
    );
    let approved = decisions.last().unwrap();
    assert_eq!(approved["approval"]["approver"], "oncall", "{approved}");
    assert!(
        approved["reasons"].as_array().unwrap().iter().any(|r| r["code"] == "approval_valid"),
        "{approved}"
    );
    let ran: Vec<usize> = records
        .iter()
        .filter(|r| r["kind"] == "execution")
        .map(|r| {
            r["body"]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["outcome"] == "succeeded")
                .count()
        })
        .collect();
    assert_eq!(ran.iter().sum::<usize>(), 1, "{ran:?}");
    assert_eq!(ran.last(), Some(&1), "only the approved run acted: {ran:?}");
    // The approval key lives in the environment of two processes, never on disk.
    let saved = std::fs::read_to_string(trial.join("awaiting.jsonl")).unwrap();
    assert!(saved.contains("awaiting_approval"), "the awaiting run's output was saved");
    assert!(
        !std::fs::read_to_string(trial.join("stderr.log")).unwrap().contains("OPSG_APPROVAL_KEY=")
    );
}

mod triage_support;

/// The API key the LLM arms' endpoint takes; it must never be written anywhere.
const LLM_KEY: &str = "sk-campaign-5e1d9b7c3a";

/// `opsg-replay campaign` like [`run_campaign`], with `env` added to the campaign's own
/// environment.
fn run_campaign_with_env(dir: &Path, file: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(REPLAY);
    cmd.args(["campaign", file.to_str().unwrap(), "--csv", "-", "-q", "--bin-dir"])
        .arg(bin_dir())
        .args(["--work-dir", dir.join("work").to_str().unwrap()])
        .env_remove("OPSG_APPROVAL")
        .env_remove("OPSG_APPROVAL_KEY")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The `method` of every finding and plan in a trial's ledger.
fn methods(dir: &Path, trial: &str) -> Vec<serde_json::Value> {
    let ledger =
        std::fs::read_to_string(dir.join("work").join(trial).join("ledger.jsonl")).unwrap();
    ledger
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| l.get("record").cloned().unwrap_or(l))
        .filter(|r| r["kind"] == "finding" || r["kind"] == "plan")
        .map(|r| r["body"]["method"].clone())
        .collect()
}

/// Rules only against an LLM advisor, side by side: a `rules+llm` arm whose endpoint (a local
/// stub speaking OpenAI chat.completions) agrees with the rules, and a `rules+llm-down` arm
/// whose endpoint is a closed port. The advice is counted where it was used and where the
/// arm fell back to the rules; only the LLM arm's triage and plan reach the endpoint (the
/// campaign's own OPSG_LLM_* environment, set here as a trap pointing at the stub with another
/// model, makes no stage ask it); the key reaches the endpoint and nothing else.
#[test]
fn llm_arms_are_compared_with_the_rules_and_their_advice_is_counted() {
    let dir = temp_dir("llm");
    let file = dir.join("campaign.json");
    let stub = triage_support::stub_with(|req| {
        // Triage ranks hypotheses; plan proposes actions: both agree with the rules.
        let answer = if req.body.contains("propose the remediation actions") {
            serde_json::json!({"actions": [{"action": "restart_replica", "target": "stable-1"}],
                               "rationale": "the replica stopped answering"})
        } else {
            serde_json::json!({"ranking": [{"class": "replica_down"}], "rationale": "it is down"})
        };
        (200, triage_support::openai_reply(&answer.to_string()))
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/campaign/policy-autonomous.json");
    let llm = |url: &str| {
        serde_json::json!({"url": url, "model": "stub-model", "api": "openai",
                           "api_key_env": "OPSG_TEST_CAMPAIGN_LLM_KEY", "timeout": "5s"})
    };
    let campaign = serde_json::json!({
        "seed": 3, "speed": 30, "interval_s": 30, "max_runs": 3, "warmup_s": 30, "trials": 1,
        "faults": [{"fault": "replica_crash", "target": "stable-1", "intensities": [0.8],
                    "expected_class": "replica_down"}],
        "arms": [
            {"name": "rules", "policy": policy},
            {"name": "rules+llm", "policy": policy, "llm": llm(&format!("{}/v1", stub.url))},
            {"name": "rules+llm-down", "policy": policy, "llm": llm(&down)}
        ],
        "verify_args": ["--settle", "1s", "--samples", "3", "--interval", "300ms",
                        "--max-wait", "10s", "--recheck", "1s"]
    });
    std::fs::write(&file, campaign.to_string()).unwrap();
    let trap = format!("{}/v1", stub.url);
    let out = run_campaign_with_env(
        &dir,
        &file,
        &[
            ("OPSG_TEST_CAMPAIGN_LLM_KEY", LLM_KEY),
            // The campaign's own advisor settings: no stage may inherit them.
            ("OPSG_LLM_URL", trap.as_str()),
            ("OPSG_LLM_MODEL", "trap-model"),
            ("OPSG_LLM_API_KEY", LLM_KEY),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = rows(&stdout);
    let row = |arm: &str| rows.iter().find(|r| r["arm"] == arm).unwrap_or_else(|| panic!("{arm}"));
    for arm in ["rules", "rules+llm", "rules+llm-down"] {
        let r = row(arm);
        assert_eq!(r["first_class"], "replica_down", "{r:?}");
        assert_eq!(r["outcome"], "resolved", "{r:?}");
        assert!(!r["time_to_resolve_s"].is_empty(), "{r:?}");
    }
    let n = |arm: &str, k: &str| row(arm)[k].parse::<u32>().unwrap_or_else(|_| panic!("{k}"));
    assert_eq!((n("rules", "advised"), n("rules", "advisor_fallbacks")), (0, 0));
    assert!(n("rules+llm", "advised") >= 1, "{:?}", row("rules+llm"));
    assert_eq!(n("rules+llm", "advisor_fallbacks"), 0, "{:?}", row("rules+llm"));
    assert_eq!(n("rules+llm-down", "advised"), 0);
    assert!(n("rules+llm-down", "advisor_fallbacks") >= 1, "{:?}", row("rules+llm-down"));

    // The rules arm never asked; the LLM arm's records name the model and say the advice was
    // used; the unreachable one says why it fell back.
    let rules = methods(&dir, "rules-replica_crash-0.8-1");
    assert!(rules.iter().all(|m| m["kind"] == "rules" && m.get("model").is_none()), "{rules:?}");
    let used = methods(&dir, "rules+llm-replica_crash-0.8-1");
    let asked: Vec<&serde_json::Value> =
        used.iter().filter(|m| m["model"] == "stub-model").collect();
    assert!(asked.iter().any(|m| m["kind"] == "llm"), "{used:?}");
    let fell = methods(&dir, "rules+llm-down-replica_crash-0.8-1");
    assert!(
        fell.iter()
            .any(|m| m["fallback_reason"].as_str().is_some_and(|r| r.contains("connection"))),
        "{fell:?}"
    );

    // Every request came from the LLM arm's triage and plan, with that arm's model and key.
    let seen = stub.seen.lock().unwrap().clone();
    let answered = asked.iter().filter(|m| m["kind"] == "llm").count();
    assert!(seen.len() >= 2 && seen.len() == answered, "{} requests, {answered} used", seen.len());
    for req in &seen {
        assert!(req.head.starts_with("POST /v1/chat/completions HTTP/1.1"), "{}", req.head);
        assert!(req.head.to_lowercase().contains(&format!("bearer {}", LLM_KEY.to_lowercase())));
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["model"], "stub-model");
    }

    // The key is in no CSV row, log or file of the work dir.
    assert!(!stdout.contains(LLM_KEY) && !stderr.contains(LLM_KEY));
    for path in files_under(&dir.join("work")) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(LLM_KEY),
            "the key is in {}",
            path.display()
        );
    }
}

/// An LLM arm whose key variable is not set stops the campaign before any trial, with the arm
/// and the field named (not a campaign of silent fallbacks).
#[test]
fn an_llm_arm_without_its_key_is_a_one_line_error() {
    let dir = temp_dir("llm-nokey");
    let file = dir.join("campaign.json");
    std::fs::write(
        &file,
        r#"{"seed": 1, "interval_s": 30, "max_runs": 1, "trials": 1,
            "faults": [{"fault": "replica_crash", "target": "x", "intensities": [0.5]}],
            "arms": [{"name": "rules"},
                     {"name": "rules+llm", "llm": {"url": "http://127.0.0.1:9/v1", "model": "m",
                      "api_key_env": "OPSG_TEST_CAMPAIGN_KEY_NOT_SET_41ab"}}]}"#,
    )
    .unwrap();
    let out = Command::new(REPLAY)
        .args(["campaign", file.to_str().unwrap()])
        .env_remove("OPSG_TEST_CAMPAIGN_KEY_NOT_SET_41ab")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules+llm")
            && err.contains("arms[1].llm.api_key_env")
            && err.contains("OPSG_TEST_CAMPAIGN_KEY_NOT_SET_41ab"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

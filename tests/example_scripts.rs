//! The users' three jobs as shipped in `examples/scripts/`: the CI replay, a forensic jq session
//! over a ledger, and the cron job against a live opsg-sim. Each runs the real script with the
//! built binaries first on PATH.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_opsg-audit")).parent().unwrap().to_path_buf()
}

fn path_env() -> String {
    format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opsg-scripts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("examples/scripts").join(name))
        .args(args)
        .current_dir(root())
        .env_clear()
        .env("PATH", path_env())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "`{tool}` is required under CI");
    // Loud on purpose: a skipped test must not pass unnoticed.
    let _ =
        writeln!(std::io::stderr(), "SKIPPED: `{tool}` is not installed (apt-get install {tool})");
    false
}

#[test]
fn ci_replay_script_passes_on_the_corpus_and_keeps_results() {
    let dir = temp_dir("ci");
    let results = dir.join("results.csv");
    let out = script("ci-replay.sh", &["examples/incidents", results.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cases = std::fs::read_dir(root().join("examples/incidents")).unwrap().count();
    let csv = std::fs::read_to_string(&results).unwrap();
    assert_eq!(csv.lines().count(), cases + 1, "a header and one row per case");
}

fn pipe_case(case: &str, state: &Path, ledger: &Path) -> i32 {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/incidents").join(case).join("case.json"))
            .unwrap(),
    )
    .unwrap();
    let now = meta["now"].as_str().unwrap().to_string();
    let script = format!(
        "opsg-triage --now {now} --state-dir '{s}' | opsg-plan --now {now} | opsg-gate --now {now} --state-dir '{s}' \
         | opsg-exec --state-dir '{s}' | opsg-verify --state-dir '{s}' | opsg-audit append --ledger '{l}' >/dev/null",
        s = state.display(),
        l = ledger.display()
    );
    let input =
        std::fs::read(root().join("examples/incidents").join(case).join("observation.jsonl"))
            .unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", path_env())
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn forensics_script_answers_from_a_verified_ledger() {
    if !require("jq") {
        return;
    }
    let dir = temp_dir("forensics");
    let (state, ledger) = (dir.join("state"), dir.join("ledger.jsonl"));
    assert_eq!(
        pipe_case("traffic_surge-100", &state, &ledger),
        12,
        "blocked by the default policy (a surge's scale-up is wider than its blast radius)"
    );
    assert_eq!(pipe_case("healthy-quiet-200", &state, &ledger), 10, "no incident");
    let out = script("forensics.sh", &[ledger.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let incidents: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("== incidents"))
        .skip(1)
        .take_while(|l| !l.starts_with("=="))
        .collect();
    assert_eq!(incidents.len(), 2, "{text}");
    assert!(incidents[0].contains("traffic_surge") && incidents[0].ends_with("blocked"), "{text}");
    assert!(incidents[1].ends_with("no_incident"), "{text}");
    assert!(text.contains("blast_radius"), "blocked reasons listed: {text}");

    // A tampered ledger stops the session at the integrity check.
    let bytes =
        std::fs::read_to_string(&ledger).unwrap().replacen("\"blocked\"", "\"resolved\"", 1);
    std::fs::write(&ledger, bytes).unwrap();
    let out = script("forensics.sh", &[ledger.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Sim(Child, String);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::new(bin_dir().join("opsg-sim"))
        .args(["--listen", "127.0.0.1:0", "--seed", "5", "--speed", "20", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = format!("http://{}", v["listen"].as_str().unwrap());
    Sim(child, url)
}

fn sim_state(sim: &Sim) -> serde_json::Value {
    let body =
        ureq::get(format!("{}/state", sim.1)).call().unwrap().into_body().read_to_string().unwrap();
    serde_json::from_str(&body).unwrap()
}

/// A targets file naming every vLLM replica of the sim, with its deployment, role and node.
fn sim_targets(sim: &Sim, dir: &Path) -> PathBuf {
    let state = sim_state(sim);
    let targets: Vec<serde_json::Value> = state["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["job"] == "vllm")
        .map(|t| {
            serde_json::json!({"name": t["replica"], "url": t["url"],
                               "labels": {"deployment": t["deployment"], "role": t["role"], "node": t["node"]}})
        })
        .collect();
    let targets_file = dir.join("targets.json");
    std::fs::write(&targets_file, serde_json::json!({ "targets": targets }).to_string()).unwrap();
    targets_file
}

#[test]
fn cron_job_script_plans_with_the_fleet_state_from_its_url() {
    if !(have("flock") || require("flock")) || !(have("curl") || require("curl")) {
        return;
    }
    let dir = temp_dir("cron-fleet");
    let sim = start_sim();
    let targets_file = sim_targets(&sim, &dir);
    std::thread::sleep(std::time::Duration::from_secs(3)); // warm up: a minute of sim time at 20x
    let before = sim_state(&sim);
    ureq::post(format!("{}/chaos/kv_cache_saturation", sim.1))
        .send(r#"{"target": "canary", "intensity": 0.9}"#)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"mode": "dry_run", "min_confidence": 0.3,
            "allow_actions": ["shift_traffic", "scale_replicas", "noop", "escalate"],
            // A scale-up sized from demand may add up to the catalog's max_delta of 8.
            "max_blast_radius": {"replicas": 8, "traffic_share": 1.0},
            "require_approval": ["destructive"], "max_actions_per_hour": 6})
        .to_string(),
    )
    .unwrap();
    let (ledger, state_dir) = (dir.join("ledger.jsonl"), dir.join("state"));
    let fleet_url = format!("{}/state", sim.1);
    let mut env = vec![
        ("OPSG_TARGETS", targets_file.to_str().unwrap()),
        ("OPSG_POLICY", policy.to_str().unwrap()),
        ("OPSG_LEDGER", ledger.to_str().unwrap()),
        ("OPSG_STATE_DIR", state_dir.to_str().unwrap()),
        ("OPSG_SAMPLES", "3"),
        ("OPSG_INTERVAL", "300ms"),
        ("OPSG_FLEET_STATE", fleet_url.as_str()),
    ];
    let out = script("cron-job.sh", &[], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(16), "dry run of an approved plan\n{stderr}");
    let plan = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .find(|r| r["kind"] == "plan")
        .expect("a plan in the ledger");
    // Whichever fix the planner chose (a shift while the stable has KV headroom, a scale-up once
    // the queue leads), its inverse restores exactly what the admin API reported.
    let first = &plan["body"]["actions"][0];
    match first["action"].as_str().unwrap() {
        "shift_traffic" => {
            for (name, d) in before["deployments"].as_object().unwrap() {
                let prior = &first["inverse"]["params"]["weights"][name];
                assert_eq!(prior, &d["weight"], "prior weight of {name}: {first}");
            }
        }
        "scale_replicas" => {
            let deployment = first["params"]["deployment"].as_str().unwrap();
            let replicas = before["deployments"][deployment]["replicas"].as_array().unwrap().len();
            assert_eq!(first["inverse"]["params"]["replicas"], replicas, "{first}");
        }
        other => panic!("unexpected first action {other}: {plan}"),
    }
    // The admin API down: the run plans without it and says so (no shift can be built exactly).
    let _ = std::fs::remove_file(&ledger);
    env.pop();
    env.push(("OPSG_FLEET_STATE", "http://127.0.0.1:9/state"));
    let out = script("cron-job.sh", &[], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fleet state unavailable"), "{stdout}");
    assert!(
        ledger.exists(),
        "the run went on and audited: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cron_job_script_reports_no_incident_on_a_healthy_fleet() {
    if !have("flock") && !require("flock") {
        return;
    }
    let dir = temp_dir("cron");
    let sim = start_sim();
    let targets_file = sim_targets(&sim, &dir);
    let policy = root().join("examples/policy.json");
    let (ledger, state_dir) = (dir.join("ledger.jsonl"), dir.join("state"));
    let env = [
        ("OPSG_TARGETS", targets_file.to_str().unwrap()),
        ("OPSG_POLICY", policy.to_str().unwrap()),
        ("OPSG_LEDGER", ledger.to_str().unwrap()),
        ("OPSG_STATE_DIR", state_dir.to_str().unwrap()),
        ("OPSG_SAMPLES", "3"),
        ("OPSG_INTERVAL", "300ms"),
    ];
    let out = script("cron-job.sh", &[], &env);
    assert_eq!(out.status.code(), Some(10), "{}", String::from_utf8_lossy(&out.stderr));
    // The run left a verified ledger with one observation, its finding and a report.
    let verify = Command::new(bin_dir().join("opsg-audit"))
        .args(["verify", "--ledger"])
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let kinds: Vec<String> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["record"]["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("observation"));
    assert_eq!(kinds.last().map(String::as_str), Some("report"));
}

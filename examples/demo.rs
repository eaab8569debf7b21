//! The main job, end to end on one machine: start a simulated vLLM fleet, inject a fault, run the
//! whole pipe as a cron job would until the incident is resolved (or the runs are spent), then
//! print the incident timeline from the ledger.
//!
//! ```sh
//! cargo build --release --bins && cargo run --release --example demo
//! cargo run --release --example demo -- kv_cache_saturation stable 0.8
//! ```
//!
//! Arguments (all optional): FAULT TARGET INTENSITY (default `replica_crash stable-1 0.8`). The
//! pipe runs live against opsg-sim with `examples/campaign/policy-autonomous.json` (impactful
//! actions without approval: this is a simulator) and writes its ledger to a temporary directory,
//! whose path is printed.

// An example program owns its output: the timeline goes to stdout for the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use opsg_replay::campaign::{Bins, Sim, run_pipe};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const INTERVAL_S: f64 = 30.0;
const SPEED: f64 = 20.0;
const MAX_RUNS: u32 = 6;

fn main() -> std::process::ExitCode {
    match demo() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo: error: {e}");
            std::process::ExitCode::from(e.status().code())
        }
    }
}

fn demo() -> opsg_core::Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fault = args.first().map_or("replica_crash", String::as_str).to_string();
    let target = args.get(1).map_or("stable-1", String::as_str).to_string();
    let intensity: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.8);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().map_err(|e| opsg_core::Error::io("current executable", e))?;
    // target/<profile>/examples/demo -> the binaries are in target/<profile>/.
    let bin_dir = exe.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    if !bin_dir.join("opsg-sim").exists() {
        return Err(opsg_core::Error::usage(format!(
            "the opsg binaries are not built in {}: run `cargo build --release --bins` first",
            bin_dir.display()
        )));
    }
    let bins = Bins::new(Some(bin_dir.clone()))?;
    let work = std::env::temp_dir().join(format!("opsg-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| opsg_core::Error::io(work.display(), e))?;
    let (ledger, state, targets, log) = (
        work.join("ledger.jsonl"),
        work.join("state"),
        work.join("targets.json"),
        work.join("stderr.log"),
    );
    let policy = root.join("examples/campaign/policy-autonomous.json");

    let sim = Sim::start(&bins, 7, SPEED)?;
    println!("opsg-sim running at {} (seed 7, {SPEED}x speed)", sim.url);
    let t = sim.sim_time()?;
    sim.wait_until(t + 30.0, SPEED)?;
    let t0 = sim.sim_time()?;
    let body = serde_json::json!({"target": target, "intensity": intensity});
    post(&sim, &format!("/chaos/{fault}"), &body)?;
    println!("injected {fault} on {target} (intensity {intensity}) at sim time {t0:.0}s");

    let bin = |name: &str| bin_dir.join(name);
    let s = |v: &str| v.to_string();
    let sd = state.display().to_string();
    let mut outcome = String::new();
    for run in 1..=MAX_RUNS {
        sim.wait_until(t0 + f64::from(run) * INTERVAL_S, SPEED)?;
        sim.targets_file(&targets)?;
        // The fleet as it is now (weights, config versions): plan builds exact inverses from it.
        let fleet = work.join("fleet-state.json");
        let snapshot = serde_json::to_vec(&sim.state()?)
            .map_err(|e| opsg_core::Error::internal(e.to_string()))?;
        std::fs::write(&fleet, snapshot).map_err(|e| opsg_core::Error::io(fleet.display(), e))?;
        let stages = vec![
            (
                bin("opsg-scrape"),
                vec![
                    s("--targets"),
                    targets.display().to_string(),
                    s("--samples"),
                    s("3"),
                    s("--interval"),
                    s("300ms"),
                    s("-q"),
                ],
            ),
            (bin("opsg-triage"), vec![s("--state-dir"), sd.clone()]),
            (bin("opsg-plan"), vec![s("--fleet-state"), fleet.display().to_string()]),
            (
                bin("opsg-gate"),
                vec![
                    s("--policy"),
                    policy.display().to_string(),
                    s("--state-dir"),
                    sd.clone(),
                    s("--ledger"),
                    ledger.display().to_string(),
                ],
            ),
            (
                bin("opsg-exec"),
                vec![s("--execute"), s("--sim"), sim.url.clone(), s("--state-dir"), sd.clone()],
            ),
            (
                bin("opsg-verify"),
                vec![
                    s("--settle"),
                    s("1s"),
                    s("--samples"),
                    s("3"),
                    s("--interval"),
                    s("300ms"),
                    s("--sim"),
                    sim.url.clone(),
                    s("--state-dir"),
                    sd.clone(),
                ],
            ),
            (bin("opsg-audit"), vec![s("append"), s("--ledger"), ledger.display().to_string()]),
        ];
        let (out, codes) = run_pipe(&stages, &log)?;
        let report = out
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .rfind(|r| r["kind"] == "report");
        outcome =
            report.as_ref().and_then(|r| r["body"]["outcome"].as_str()).unwrap_or("?").to_string();
        let at = sim.sim_time()? - t0;
        println!(
            "run {run} at +{at:.0}s: outcome {outcome} (exit {:?})",
            codes.last().copied().flatten()
        );
        if outcome == "resolved" {
            break;
        }
    }
    drop(sim);

    println!("\nincident timeline (opsg-audit show --ledger {}):\n", ledger.display());
    let status = Command::new(bin("opsg-audit"))
        .args(["show", "--ledger"])
        .arg(&ledger)
        .status()
        .map_err(|e| opsg_core::Error::io("opsg-audit", e))?;
    println!("\nstage logs: {}", log.display());
    Ok(if outcome == "resolved" && status.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

fn post(sim: &Sim, path: &str, body: &Value) -> opsg_core::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(format!("{}{path}", sim.url))
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| opsg_core::Error::io(path, std::io::Error::other(e.to_string())))?;
    Ok(())
}

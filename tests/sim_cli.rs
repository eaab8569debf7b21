//! `opsg-sim` as a command: bad flags and unusable resources give one error line and a documented
//! exit code; without `--manual-clock` the ticker moves time on its own; stdin EOF ends it.

#[path = "sim_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::{SIM, Sim};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(SIM)
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run opsg-sim");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["--speed", "0"][..],
        &["--speed", "fast"],
        &["--rate", "-3"],
        &["--listen", "not-an-address"],
        &["--stable-replicas", "0"],
        &["--nodes", "99"],
        &["--stable-replicas", "16", "--canary-replicas", "16", "--nodes", "1"],
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn unusable_port_or_log_dir_is_an_io_error_on_one_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run(&["--listen", &addr, "--manual-clock"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("opsg-sim: error: ") && stderr.contains(&addr), "{stderr}");

    let file = support::tempdir("cli").join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("logs");
    let (code, _, stderr) =
        run(&["--listen", "127.0.0.1:0", "--log-dir", under_file.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("opsg-sim: error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(under_file.to_str().unwrap()), "names the path: {stderr}");
}

#[test]
fn without_manual_clock_time_moves_by_itself() {
    let mut child = Command::new(SIM)
        .args(["--listen", "127.0.0.1:0", "--speed", "50", "--exit-on-stdin-eof"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let hello: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(hello["manual_clock"], serde_json::json!(false));
    let addr = hello["listen"].as_str().unwrap().to_string();
    let sim_time = || {
        let body = support::get_text(&addr, "/state");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["sim_time"].as_f64().unwrap()
    };
    // Poll (bounded) until the ticker has advanced the clock: no assertion on how fast.
    let mut seen = 0.0;
    for _ in 0..400 {
        seen = sim_time();
        if seen > 5.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(seen > 5.0, "the ticker advances sim time: {seen}");
    // Closing stdin ends the process cleanly.
    drop(child.stdin.take());
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_start_up_line_is_the_only_stdout() {
    let sim = Sim::start(1, &[]);
    assert_eq!(sim.hello["manual_clock"], serde_json::json!(true));
    let keys: Vec<&String> = sim.hello.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["listen", "manual_clock", "pid", "seed", "state"]);
}

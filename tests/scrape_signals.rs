//! The signal settings that used to exist only in code, as flags of the real binary:
//! `--cpu-interval`, `--nvml-lib`, `--xid-window`.

#[path = "scrape_support/mod.rs"]
mod support;

use support::{record, run};

#[test]
fn cpu_interval_sets_the_host_sampling_window() {
    // Live /proc: with an interval, utilization over at least that long; with 0, raw counters.
    let out = run(&["--host", "--cpu-interval", "300ms", "-q"], None);
    let (_, body) = record(&out);
    let cpu = &body.host.as_ref().expect("host signals")["cpu"];
    let interval = cpu["interval_ms"].as_u64().unwrap_or_else(|| panic!("no interval: {cpu}"));
    assert!(interval >= 300, "slept at least the interval: {interval}");

    let out = run(&["--host", "--cpu-interval", "0", "-q"], None);
    let (_, body) = record(&out);
    let cpu = &body.host.as_ref().expect("host signals")["cpu"];
    assert!(cpu.get("interval_ms").is_none(), "raw counters only: {cpu}");
    assert!(cpu["jiffies"]["user"].is_u64(), "{cpu}");

    let out = run(&["--host", "--cpu-interval", "1h"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cpu-interval"));
}

#[test]
fn nvml_lib_names_the_library_and_a_bad_one_is_unavailable_not_a_crash() {
    let missing = "/nonexistent/opsg-test/libnvidia-ml.so.1";
    let out = run(&["--gpu", "--nvml-lib", missing, "--xid-window", "0"], None);
    let (_, body) = record(&out);
    let gpus = body.gpus.expect("gpus");
    assert_eq!(gpus["available"], false, "{gpus}");
    let reason = gpus["reason"].as_str().unwrap_or("");
    assert!(reason.contains(missing), "the reason names the library: {reason}");

    for bad in [
        vec!["--nvml-lib", missing],
        vec!["--gpu", "--xid-window", "5m"],
        vec!["--gpu", "--xid-window", "-1s"],
    ] {
        let out = run(&bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// On a machine with an NVIDIA GPU and driver, --xid-window is the window the record reports.
/// Elsewhere NVML is unavailable and there is no window to check: said loudly, not passed.
#[test]
fn xid_window_reaches_nvml_where_there_is_a_gpu() {
    let out = run(&["--gpu", "--xid-window", "300ms"], None);
    let (_, body) = record(&out);
    let gpus = body.gpus.expect("gpus");
    if gpus["available"] != true {
        let bar = "!".repeat(80);
        std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("\n{bar}\nSKIPPED (no GPU/NVML here): {}\n{bar}\n", gpus["reason"]).as_bytes(),
        )
        .ok();
        return;
    }
    let xid = &gpus["xid_events"];
    if xid["available"] == true {
        assert_eq!(xid["window_ms"], 300, "{xid}");
    } else {
        assert!(xid["reason"].is_string(), "{xid}");
    }
}

//! Bounded reads of small kernel files (procfs, cgroupfs) and the parsers they share.
//!
//! Kernel pseudo-files report a size of 0, so every read is capped by a byte limit instead of a
//! `metadata().len()` check: a misbehaving file (or a fixture that is not what it claims) cannot
//! make the scraper read without bound.

use serde_json::{Map, Value, json};
use std::io::Read;
use std::path::Path;

/// The most bytes read from one pseudo-file. `/proc/<pid>/status` is ~1.5 KiB and `/proc/vmstat`
/// ~5 KiB on current kernels; 256 KiB leaves room for a 1024-CPU `/proc/stat`.
pub(crate) const MAX_PSEUDO_FILE: u64 = 256 * 1024;

/// Read a pseudo-file as text, at most [`MAX_PSEUDO_FILE`] bytes, lossily decoded.
pub(crate) fn read_text(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| describe_io(path, &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_PSEUDO_FILE).read_to_end(&mut bytes).map_err(|e| describe_io(path, &e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A one-line reason for an I/O error on `path`, for an `unavailable` entry.
pub(crate) fn describe_io(path: &Path, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => format!("`{}` not found", path.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!("`{}`: permission denied", path.display())
        }
        _ => format!("`{}`: {err}", path.display()),
    }
}

/// Run `program` with `args` (stdin closed, stderr discarded, `LC_ALL=C`) and return at most
/// `max_output` bytes of its stdout and whether more was discarded. Past `deadline` the child is
/// killed and the run is an error. Output beyond the cap is drained, not left in the pipe, so a
/// chatty child still exits.
pub(crate) fn run_bounded(
    program: &str,
    args: &[&str],
    deadline: std::time::Duration,
    max_output: u64,
) -> Result<(Vec<u8>, bool), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("`{program}` has no stdout"));
    };
    // Read on a thread so a full pipe cannot stall the child while we wait for it.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut stdout = stdout;
        let _ = (&mut stdout).take(max_output).read_to_end(&mut out);
        let extra = std::io::copy(&mut stdout, &mut std::io::sink()).unwrap_or(0);
        (out, extra > 0)
    });
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{program}` did not finish within {} ms",
                    deadline.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for `{program}`: {e}")),
        }
    };
    let (out, truncated) = reader.join().unwrap_or_default();
    // df exits 1 when one mount could not be read but still prints the others: output wins.
    if !status.success() && out.is_empty() {
        return Err(format!("`{program}` failed ({status})"));
    }
    Ok((out, truncated))
}

/// The shape every source uses to say it could not be read: `{"available": false, "reason": …}`.
pub(crate) fn unavailable(reason: impl Into<String>) -> Value {
    json!({ "available": false, "reason": reason.into() })
}

/// Parse a pressure-stall file (`/proc/pressure/*`, `<cgroup>/*.pressure`):
///
/// ```text
/// some avg10=0.00 avg60=0.34 avg300=0.81 total=11573617
/// full avg10=0.00 avg60=0.00 avg300=0.00 total=0
/// ```
///
/// `avg*` are percentages of wall time over 10 s, 60 s and 300 s; `total` is microseconds stalled
/// since boot. A `full` line is absent for CPU on kernels before 5.13.
pub(crate) fn parse_psi(text: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let Some(kind @ ("some" | "full")) = words.next() else {
            continue;
        };
        let mut entry = Map::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("malformed PSI field `{word}`"));
            };
            let parsed = match key {
                "avg10" | "avg60" | "avg300" => value.parse::<f64>().ok().map(Value::from),
                "total" => value.parse::<u64>().ok().map(Value::from),
                _ => continue,
            };
            let Some(parsed) = parsed else {
                return Err(format!("PSI field `{key}` has a non-numeric value `{value}`"));
            };
            let name = if key == "total" { "total_us" } else { key };
            entry.insert(name.to_string(), parsed);
        }
        out.insert(kind.to_string(), Value::Object(entry));
    }
    if !out.contains_key("some") {
        return Err("no `some` line".to_string());
    }
    Ok(Value::Object(out))
}

/// Read and parse a pressure file; unreadable or malformed says so as data.
pub(crate) fn psi_at(path: &Path) -> Value {
    match read_text(path) {
        Ok(text) => parse_psi(&text)
            .unwrap_or_else(|reason| unavailable(format!("`{}`: {reason}", path.display()))),
        Err(reason) => unavailable(reason),
    }
}

/// Parse `key value` lines (`/proc/vmstat`, cgroup `memory.events`, `cpu.stat`) into `(key, u64)`
/// pairs, skipping lines that do not have that shape.
pub(crate) fn parse_flat_keyed(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse::<u64>().ok()?;
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_parses_some_and_full_from_a_real_sample() {
        // Captured from /proc/pressure/io on the build machine.
        let text = "some avg10=0.02 avg60=0.67 avg300=0.46 total=4299229\n\
                    full avg10=0.02 avg60=0.67 avg300=0.45 total=3995230\n";
        let psi = parse_psi(text).unwrap();
        assert_eq!(psi["some"]["avg60"], 0.67);
        assert_eq!(psi["some"]["total_us"], 4_299_229);
        assert_eq!(psi["full"]["avg300"], 0.45);
        assert_eq!(psi["full"]["total_us"], 3_995_230);
    }

    #[test]
    fn psi_without_full_line_keeps_some() {
        // CPU pressure before Linux 5.13 has only a `some` line.
        let psi = parse_psi("some avg10=1.50 avg60=0.00 avg300=0.00 total=42\n").unwrap();
        assert_eq!(psi["some"]["avg10"], 1.5);
        assert!(psi.get("full").is_none());
    }

    #[test]
    fn psi_rejects_garbage() {
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some avg10=abc total=1\n").is_err());
        assert!(parse_psi("some avg10\n").is_err());
    }

    #[test]
    fn missing_pressure_file_is_unavailable_with_the_path() {
        let v = psi_at(Path::new("/nonexistent/opsg/pressure/io"));
        assert_eq!(v["available"], false);
        assert!(v["reason"].as_str().unwrap().contains("/nonexistent/opsg/pressure/io"));
    }

    #[test]
    fn bounded_runs_cap_drain_and_kill() {
        use std::time::Duration;
        // 200 KiB of output, 1 KiB kept: the rest is drained so the child exits normally.
        let (out, truncated) =
            run_bounded("head", &["-c", "204800", "/dev/zero"], Duration::from_secs(10), 1024)
                .unwrap();
        assert_eq!(out.len(), 1024);
        assert!(truncated);
        let (out, truncated) =
            run_bounded("echo", &["hello"], Duration::from_secs(10), 1024).unwrap();
        assert_eq!(out, b"hello\n");
        assert!(!truncated);
        let err = run_bounded("sleep", &["30"], Duration::from_millis(200), 1024).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        let err = run_bounded("false", &[], Duration::from_secs(10), 1024).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        let err = run_bounded("/nonexistent/prog", &[], Duration::from_secs(1), 1).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[test]
    fn flat_keyed_skips_malformed_lines() {
        let pairs = parse_flat_keyed("oom 1\noom_kill 3\nbogus\nx y\n");
        assert_eq!(pairs, vec![("oom", 1), ("oom_kill", 3)]);
    }
}

//! Benchmark driver for `tests/bench/parse.sh`: parses one exposition file and prints counts, so
//! the script can time it against other parsers and a plain line count.
//!
//! usage: `parse_bench (stream|parse|lines) FILE [openmetrics]`
//! - `stream`: `parse_reader` over the file (bounded memory: the way to parse a huge payload);
//! - `parse`: read the whole file, then `parse` into an `Exposition` (everything materialized);
//! - `lines`: the floor: read the file the same way and find every newline, line by line, with
//!   the same word-at-a-time search the parser uses, doing nothing else.

// An example binary owns its stdout/stderr: printing the counts is its whole job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use opsg_expo::{Format, ParseOptions, parse, parse_reader};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: parse_bench (stream|parse|lines|lines-bufread) FILE [openmetrics]");
        return ExitCode::from(2);
    }
    let format = if args.get(3).map(String::as_str) == Some("openmetrics") {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    };
    let opts = ParseOptions::new(format);
    let result = match args[1].as_str() {
        "stream" => stream(&args[2], &opts),
        "parse" => whole(&args[2], &opts),
        "lines" => lines(&args[2]),
        "lines-bufread" => lines_bufread(&args[2]),
        other => Err(format!("unknown mode `{other}`")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parse_bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stream(path: &str, opts: &ParseOptions) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut buckets = 0u64;
    let summary = parse_reader(file, opts, |_, s| {
        if s.name.ends_with("_bucket") {
            buckets += 1;
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "stream: {} bytes, {} lines, {} families, {} samples ({} buckets)",
        summary.bytes,
        summary.lines,
        summary.families.len(),
        summary.samples,
        buckets
    ))
}

fn whole(path: &str, opts: &ParseOptions) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let expo = parse(&bytes, opts).map_err(|e| e.to_string())?;
    Ok(format!(
        "parse: {} bytes, {} families, {} samples",
        bytes.len(),
        expo.families.len(),
        expo.samples().count()
    ))
}

/// The line count of the reference anchors ("memchr line count, Rust"): `BufRead::read_until`
/// (memchr inside std) over a 64 KiB `BufReader`, each line copied into a reused buffer, the
/// way a line-oriented program reads its input.
fn lines_bufread(path: &str) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(256);
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += 1;
    }
    Ok(format!("lines: {bytes} bytes, {lines} lines"))
}

/// Counts lines by finding each `\n` in turn, eight bytes at a time, over the same 256 KiB reads.
fn lines(path: &str) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let mut rest = &buf[..n];
        while let Some(i) = find_newline(rest) {
            lines += 1;
            rest = &rest[i + 1..];
        }
    }
    Ok(format!("lines: {bytes} bytes, {lines} lines"))
}

fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

//! `opsg-sim`: a simulated vLLM serving fleet to run the opsg pipe against, on one laptop.
//!
//! A router splits Poisson traffic by weight over deployments (`stable`, `canary`) of vLLM
//! replicas; every replica runs a discrete-event model of vLLM V1's scheduler ([`model`]) and
//! serves `/metrics` on its own port with vLLM's real metric names, labels and buckets
//! ([`render`]); every GPU node serves dcgm-exporter and node_exporter metrics. Faults are
//! injected and cleared over HTTP, and admin endpoints apply the remediations an SRE would
//! ([`server`]). Everything is deterministic for a seed; `--manual-clock` makes time advance only
//! through `POST /tick`, so tests are exact and fast.

pub mod engine;
pub mod hist;
pub mod http;
pub mod logs;
pub mod model;
pub mod numfmt;
pub mod render;
pub mod rng;
pub mod server;

use clap::{CommandFactory, Parser};
use opsg_core::{Error, ExitStatus, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "Examples:
  # Start a fleet on an ephemeral port; the first stdout line says where it listens
  opsg-sim --listen 127.0.0.1:0 --seed 7

  # Deterministic mode for tests: time moves only with POST /tick
  opsg-sim --listen 127.0.0.1:9400 --manual-clock --log-dir /tmp/vllm-logs &
  curl -s -XPOST localhost:9400/tick -d '{\"seconds\": 60}'
  curl -s localhost:9400/state | jq '.replicas[] | {name, metrics_url, kv_cache_usage}'

  # Inject a KV-cache saturation on the canary, watch it, fix it by shifting traffic
  curl -s -XPOST localhost:9400/chaos/kv_cache_saturation -d '{\"target\":\"canary\",\"intensity\":0.9}'
  curl -s -XPOST localhost:9400/admin/traffic -d '{\"weights\":{\"stable\":1.0,\"canary\":0.0}}'

  # Crash a replica (its /metrics refuses connections), then restart it
  curl -s -XPOST localhost:9400/chaos/replica_crash -d '{\"target\":\"stable-1\"}'
  curl -s -XPOST localhost:9400/admin/replicas/stable-1/restart

  # A traffic surge that passes by itself after two minutes of sim time
  curl -s -XPOST localhost:9400/chaos/traffic_surge -d '{\"intensity\":0.8,\"duration_s\":120}'

  # Every endpoint, fault and remediation
  curl -s localhost:9400/ | jq .";

fn after_help() -> String {
    format!("{EXAMPLES}\n\n{}", opsg_core::cli::exit_status_help())
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "opsg-sim",
    version,
    about = "A simulated vLLM serving fleet: real vLLM/DCGM/node_exporter metrics, fault injection, admin endpoints",
    long_about = "A simulated vLLM serving fleet for demos and end-to-end tests.\n\nA router splits seeded Poisson traffic over deployments (stable, canary) of vLLM replicas. Each replica serves /metrics on its own port with vLLM V1's metric names, labels and buckets; each GPU node serves dcgm-exporter and node_exporter metrics. Faults are injected with POST /chaos/<fault>, remediations applied with POST /admin/..., and everything is visible in GET /state. On start-up one JSON line on stdout gives the bound address.",
    after_help = after_help()
)]
pub struct Args {
    /// Address of the control API (`/state`, `/chaos`, `/admin`); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9400", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Seed of every random draw: the same seed and the same calls give the same metrics.
    #[arg(long, default_value_t = 42, value_name = "N")]
    pub seed: u64,

    /// Advance time only on `POST /tick` (deterministic tests); otherwise a ticker runs.
    #[arg(long)]
    pub manual_clock: bool,

    /// Simulated seconds per real second for the background ticker.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = parse_speed)]
    pub speed: f64,

    /// Fleet-wide request arrival rate before faults, requests per second.
    #[arg(long, default_value_t = 12.0, value_name = "RPS", value_parser = parse_rate)]
    pub rate: f64,

    /// Initial replicas of the `stable` deployment.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub stable_replicas: u32,

    /// Initial replicas of the `canary` deployment.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=16))]
    pub canary_replicas: u32,

    /// GPU nodes (8 GPUs each).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub nodes: u32,

    /// Unix time of sim time 0 [default: 1767225600 (2026-01-01) with --manual-clock, else now].
    #[arg(long, value_name = "SECONDS")]
    pub epoch: Option<f64>,

    /// Write a vLLM-like log per replica (`<replica>.log`) and a kernel log per node here.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Exit when stdin reaches end-of-file (so a test harness cannot leak the process).
    #[arg(long)]
    pub exit_on_stdin_eof: bool,
}

fn parse_speed(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err("must be a number in (0, 1000]".into()),
    }
}

fn parse_rate(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=10_000.0).contains(&v) => Ok(v),
        _ => Err("must be a number in [0, 10000]".into()),
    }
}

/// The clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}

/// The default epoch for `--manual-clock`: 2026-01-01T00:00:00Z.
pub const MANUAL_EPOCH: f64 = 1_767_225_600.0;

/// Run the simulator until killed (or until stdin closes with `--exit-on-stdin-eof`).
pub fn run(args: Args) -> Result<ExitStatus> {
    let epoch = match args.epoch {
        Some(e) if e.is_finite() && e >= 0.0 => e,
        Some(e) => return Err(Error::usage(format!("`--epoch` must be a Unix time, got `{e}`"))),
        None if args.manual_clock => MANUAL_EPOCH,
        None => opsg_core::time::Timestamp::now().seconds_f64().floor(),
    };
    if args.stable_replicas + args.canary_replicas > args.nodes * model::GPUS_PER_NODE {
        return Err(Error::usage(format!(
            "{} replicas do not fit on {} node(s) of {} GPUs",
            args.stable_replicas + args.canary_replicas,
            args.nodes,
            model::GPUS_PER_NODE
        )));
    }
    let logs = model_logs(&args)?;
    let fleet = model::Fleet::new(
        model::FleetConfig {
            seed: args.seed,
            rate: args.rate,
            epoch,
            stable_replicas: args.stable_replicas,
            canary_replicas: args.canary_replicas,
            nodes: args.nodes,
        },
        logs,
    );
    let control = TcpListener::bind(args.listen).map_err(|e| Error::io(args.listen, e))?;
    let listen = control.local_addr().map_err(|e| Error::io(args.listen, e))?;
    let shared = server::start(fleet, control, args.manual_clock, args.speed)
        .map_err(|e| Error::io(format!("listeners on {}", listen.ip()), e))?;

    let line = serde_json::json!({
        "listen": listen.to_string(),
        "state": format!("http://{listen}/state"),
        "seed": args.seed,
        "manual_clock": args.manual_clock,
        "pid": std::process::id(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(|e| Error::io("stdout", e))?;
        out.flush().map_err(|e| Error::io("stdout", e))?;
    }
    opsg_core::cli::info(format!(
        "listening on http://{listen} (seed {}, {})",
        args.seed,
        if args.manual_clock {
            "manual clock".to_string()
        } else {
            format!("speed {}x", args.speed)
        }
    ));

    if !args.manual_clock {
        let ticker = shared.clone();
        let speed = args.speed;
        std::thread::spawn(move || {
            let mut last = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let now = Instant::now();
                // Cap a step at 1 s of real time (a suspended laptop should not replay an hour).
                let real = now.duration_since(last).as_secs_f64().min(1.0);
                last = now;
                server::advance(&ticker, real * speed);
            }
        });
    }

    if args.exit_on_stdin_eof {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        opsg_core::cli::info("stdin closed; exiting");
        return Ok(ExitStatus::Success);
    }
    loop {
        std::thread::park();
    }
}

fn model_logs(args: &Args) -> Result<logs::Logs> {
    logs::Logs::new(args.log_dir.clone()).map_err(|e| {
        Error::io(args.log_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_consistent_and_help_has_examples() {
        command().debug_assert();
        let help = after_help();
        assert!(help.starts_with("Examples:\n"));
        assert!(help.contains("Exit status:"));
    }
}

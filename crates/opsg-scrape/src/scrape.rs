//! Scraping many targets over a window: the library entry point ([`scrape_targets`]) that
//! `opsg-scrape` and `opsg-verify` share.
//!
//! Sample `k` of every target is taken in one parallel round (a bounded rayon pool), so the rounds
//! line up in time across the fleet; rounds are `interval` apart. A target that fails is recorded
//! with its status and reason and the others go on: partial failure is data.

use crate::capture::{self, CaptureError, CaptureFormat};
use crate::compact::{self, SeriesSet};
use crate::fetch::{self, HttpOptions};
use crate::normalize::Keep;
use crate::target::{Source, Target};
use opsg_core::evidence::EvidenceStore;
use opsg_core::kinds::observation::{
    SampleInfo, ScrapeConfig, TargetObservation, TargetStatus, Window,
};
use opsg_core::record::EvidenceRef;
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock; durations are measured.
    System,
    /// A frozen clock (`--now`): sample `k` is at `now + k × interval` and durations read 0, so a
    /// replay with the same input writes the same bytes.
    Frozen(Timestamp),
}

impl Clock {
    /// The clock's idea of now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Frozen(t) => *t,
        }
    }

    pub(crate) fn sample_time(&self, k: u32, interval: Duration) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Frozen(t) => t.plus_millis(interval.as_millis() as i64 * i64::from(k)),
        }
    }

    pub(crate) fn elapsed_ms(&self, started: Instant) -> f64 {
        match self {
            Clock::System => started.elapsed().as_secs_f64() * 1000.0,
            Clock::Frozen(_) => 0.0,
        }
    }
}

/// How to scrape.
#[derive(Debug, Clone)]
pub struct ScrapeOptions {
    /// HTTP behaviour (timeouts, retries, body cap).
    pub http: HttpOptions,
    /// Samples per target (at least 1).
    pub samples: u32,
    /// Time between samples.
    pub interval: Duration,
    /// The clock.
    pub clock: Clock,
    /// Which families travel in the record.
    pub keep: Keep,
    /// A payload timestamp older than this (ms) before the sample time marks the sample stale.
    pub stale_after_ms: i64,
    /// Targets scraped at once.
    pub concurrency: usize,
    /// Where raw payloads go, content-addressed; `None` keeps none.
    pub evidence: Option<EvidenceStore>,
    /// No progress bar.
    pub quiet: bool,
    /// Request settings of HTTP targets by target name (their own headers and CA file); a target
    /// without one uses `http` as it is.
    pub scrape_configs: BTreeMap<String, ScrapeConfig>,
    /// The format of captures (files and stdin), which have no `Content-Type`.
    pub format: CaptureFormat,
}

impl Default for ScrapeOptions {
    fn default() -> ScrapeOptions {
        ScrapeOptions {
            http: HttpOptions::default(),
            samples: 1,
            interval: Duration::from_secs(10),
            clock: Clock::System,
            keep: Keep::default(),
            stale_after_ms: 5 * 60_000,
            concurrency: 16,
            evidence: None,
            quiet: true,
            scrape_configs: BTreeMap::new(),
            format: CaptureFormat::Auto,
        }
    }
}

/// What a scrape produced.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    /// One observation per target, in the order given.
    pub targets: Vec<TargetObservation>,
    /// Raw payloads stored (deduplicated), for the envelope.
    pub evidence: Vec<EvidenceRef>,
    /// First and last sample time.
    pub window: Window,
}

/// Scrape `targets` and return one observation each (see [`scrape`] for evidence and window).
pub fn scrape_targets(targets: &[Target], opts: &ScrapeOptions) -> Result<Vec<TargetObservation>> {
    scrape(targets, opts).map(|s| s.targets)
}

struct SampleOutcome {
    info: SampleInfo,
    readings: Option<Vec<compact::Reading>>,
    evidence: Option<EvidenceRef>,
}

/// Scrape every target `opts.samples` times. Fails only on local trouble (a capture file that
/// cannot be read, an evidence directory that cannot be written); target failures are recorded.
pub fn scrape(targets: &[Target], opts: &ScrapeOptions) -> Result<Scraped> {
    let samples = opts.samples.max(1);
    let stdin = if targets.iter().any(|t| t.source == Source::Stdin) {
        Some(read_stdin(opts.http.max_bytes)?)
    } else {
        None
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.concurrency.clamp(1, 256).min(targets.len().max(1)))
        .thread_name(|i| format!("opsg-scrape-{i}"))
        .build()
        .map_err(|e| Error::internal(format!("cannot start the scrape pool: {e}")))?;
    let agent = fetch::agent(&opts.http);
    let requests = prepare_requests(targets, opts, &agent);
    let bar =
        opsg_core::progress::bar(u64::from(samples) * targets.len() as u64, "scraping", opts.quiet);
    let live = targets.iter().any(|t| !t.source.is_replay());
    let mut sets: Vec<SeriesSet> = targets.iter().map(|_| SeriesSet::default()).collect();
    let mut infos: Vec<Vec<SampleInfo>> = targets.iter().map(|_| Vec::new()).collect();
    let mut evidence: Vec<EvidenceRef> = Vec::new();
    let mut window = Window::default();
    let mut previous: Vec<Option<Previous>> = targets.iter().map(|_| None).collect();
    for k in 0..samples {
        // A replay reads the same bytes every round: the last round reuses what it reduced.
        let keep_previous = k + 1 < samples;
        let round_start = Instant::now();
        let at = opts.clock.sample_time(k, opts.interval);
        if k == 0 {
            window.start = at.to_rfc3339();
        }
        window.end = at.to_rfc3339();
        let outcomes: Vec<Result<SampleOutcome>> = pool.install(|| {
            targets
                .par_iter()
                .zip(&requests)
                .zip(previous.par_iter_mut())
                .map(|((target, request), previous)| {
                    let previous =
                        Reuse { previous, keep: keep_previous && target.source.is_replay() };
                    let outcome = sample_one(target, at, opts, request, stdin.as_ref(), previous);
                    bar.inc(1);
                    outcome
                })
                .collect()
        });
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome?;
            if let Some(readings) = outcome.readings {
                sets[i].add(readings);
            }
            if let Some(e) = outcome.evidence
                && !evidence.iter().any(|x| x.sha256 == e.sha256)
            {
                evidence.push(e);
            }
            infos[i].push(outcome.info);
        }
        // Replays do not change between samples: no point waiting for them.
        if k + 1 < samples && live {
            std::thread::sleep(opts.interval.saturating_sub(round_start.elapsed()));
        }
    }
    bar.finish_and_clear();
    let observations = targets
        .iter()
        .zip(sets)
        .zip(infos)
        .map(|((target, set), samples)| {
            let last = samples.last();
            TargetObservation {
                name: target.name.clone(),
                source: target.source.describe(),
                labels: target.labels.clone(),
                status: last.map_or(TargetStatus::Error, |s| s.status),
                reason: last.and_then(|s| s.reason.clone()),
                series: set.into_series(),
                samples,
            }
        })
        .collect();
    Ok(Scraped { targets: observations, evidence, window })
}

/// How one target's requests are made: its options and agent, or why they cannot be.
type Request = std::result::Result<(HttpOptions, ureq::Agent), String>;

/// Resolve each target's request settings once, before the first round: header values from the
/// environment or files, and one agent per CA file (shared by the targets that name it). A target
/// whose settings cannot be resolved is recorded as an error each sample; the others go on.
fn prepare_requests(
    targets: &[Target],
    opts: &ScrapeOptions,
    shared: &ureq::Agent,
) -> Vec<Request> {
    let mut agents: BTreeMap<String, ureq::Agent> = BTreeMap::new();
    targets
        .iter()
        .map(|target| {
            let config = match (&target.source, opts.scrape_configs.get(&target.name)) {
                (Source::Http(_), Some(config)) if !config.is_empty() => config,
                _ => return Ok((opts.http.clone(), shared.clone())),
            };
            let http = fetch::target_options(config, &opts.http)
                .map_err(|e| format!("request settings: {e}"))?;
            let agent = match &config.ca_file {
                Some(path) => {
                    agents.entry(path.clone()).or_insert_with(|| fetch::agent(&http)).clone()
                }
                None => shared.clone(),
            };
            Ok((http, agent))
        })
        .collect()
}

/// A capture's bytes, or why it is unusable (recorded as the target's error).
type Capture = std::result::Result<Vec<u8>, String>;

fn read_stdin(cap: u64) -> Result<Capture> {
    match capture::read_capture(std::io::stdin().lock(), cap) {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(CaptureError::Unusable(reason)) => Ok(Err(reason)),
        Err(CaptureError::Io(io)) => Err(Error::io("stdin", io)),
    }
}

fn read_file(path: &Path, cap: u64) -> Result<Capture> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    match capture::read_capture(std::io::BufReader::new(file), cap) {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(CaptureError::Unusable(reason)) => Ok(Err(reason)),
        Err(CaptureError::Io(io)) => Err(Error::io(path.display(), io)),
    }
}

fn unusable(reason: String) -> fetch::FetchFailure {
    fetch::FetchFailure {
        status: TargetStatus::Error,
        reason,
        transient: false,
        attempts: 0,
        body: None,
        retry_after: None,
    }
}

/// A target's payload of the round before, as read and as reduced.
struct Previous {
    bytes: Vec<u8>,
    content_type: Option<String>,
    reduced: compact::Reduced,
}

/// What a sample may reuse from the round before, and whether to keep its own for the next.
/// Parsing, checking and reducing the payload was most of opsg-scrape's work on a replay, done
/// again on the same bytes each round; identical bytes reduce to identical readings but for the
/// sample time ([`compact::Reduced::at`]). Only replays keep theirs: a live target's payload
/// changes between rounds, and keeping it would cost a copy for nothing.
struct Reuse<'a> {
    previous: &'a mut Option<Previous>,
    keep: bool,
}

fn sample_one(
    target: &Target,
    at: Timestamp,
    opts: &ScrapeOptions,
    request: &Request,
    stdin: Option<&Capture>,
    reuse: Reuse<'_>,
) -> Result<SampleOutcome> {
    let started = Instant::now();
    let mut info = SampleInfo {
        at: at.to_rfc3339(),
        status: TargetStatus::Up,
        duration_ms: 0.0,
        reason: None,
        stale: target.source.is_replay(),
        evidence: None,
    };
    let fetched: std::result::Result<(Vec<u8>, Option<String>), fetch::FetchFailure> = match &target
        .source
    {
        Source::Http(url) => match request {
            Ok((http, agent)) => fetch::get(agent, url, &[], http).and_then(|f| {
                // A gzip file served as is (a capture in a bucket, `application/gzip`, no
                // `Content-Encoding`): inflate it under the same cap. No exposition starts with
                // the gzip magic (0x8b is not UTF-8).
                if !f.bytes.starts_with(&capture::GZIP_MAGIC) {
                    return Ok((f.bytes, f.content_type));
                }
                let content_type = f.content_type.filter(|ct| !ct.contains("gzip"));
                match capture::read_capture(&f.bytes[..], http.max_bytes) {
                    Ok(bytes) => Ok((bytes, content_type)),
                    Err(CaptureError::Unusable(reason)) => Err(unusable(reason)),
                    Err(CaptureError::Io(io)) => Err(unusable(format!("reading the body: {io}"))),
                }
            }),
            Err(reason) => Err(unusable(reason.clone())),
        },
        Source::File(path) => read_file(path, opts.http.max_bytes)?
            .map(|b| (b, opts.format.content_type().map(str::to_string)))
            .map_err(unusable),
        Source::Stdin => match stdin {
            Some(Ok(bytes)) => Ok((bytes.clone(), opts.format.content_type().map(str::to_string))),
            Some(Err(reason)) => Err(unusable(reason.clone())),
            None => Ok((Vec::new(), None)),
        },
    };
    info.duration_ms = opts.clock.elapsed_ms(started);
    let (bytes, content_type) = match fetched {
        Ok(ok) => ok,
        Err(failure) => {
            info.status = failure.status;
            info.reason = Some(failure.reason);
            let evidence = match (&opts.evidence, failure.body) {
                (Some(store), Some(body)) if !body.is_empty() => {
                    Some(store.put(&body, "text/plain", Some(&target.name))?)
                }
                _ => None,
            };
            info.evidence = evidence.as_ref().map(|e| e.sha256);
            return Ok(SampleOutcome { info, readings: None, evidence });
        }
    };
    let reduced = match reuse.previous.take() {
        Some(p) if p.bytes == bytes && p.content_type == content_type => p.reduced.at(at.millis()),
        _ => compact::reduce(&bytes, content_type.as_deref(), at.millis(), &opts.keep),
    };
    let evidence = match &opts.evidence {
        Some(store) => Some(store.put(&bytes, &reduced.media_type, Some(&target.name))?),
        None => None,
    };
    if reuse.keep {
        *reuse.previous = Some(Previous { bytes, content_type, reduced: reduced.clone() });
    }
    info.evidence = evidence.as_ref().map(|e| e.sha256);
    match reduced.readings {
        Ok(readings) => {
            let oldest = readings.iter().filter_map(|r| r.exposed_at).min();
            if let Some(oldest) = oldest
                && at.millis() - oldest > opts.stale_after_ms
            {
                info.stale = true;
                info.reason = Some(format!(
                    "stale: the payload's oldest timestamp is {} s older than the sample",
                    (at.millis() - oldest) / 1000
                ));
            }
            Ok(SampleOutcome { info, readings: Some(readings), evidence })
        }
        Err(reason) => {
            info.status = TargetStatus::Error;
            info.reason = Some(reason);
            Ok(SampleOutcome { info, readings: None, evidence })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn capture(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opsg-scrape-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn frozen_clock_spaces_samples_by_the_interval() {
        let path = capture(
            "a.prom",
            "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 2\n",
        );
        let opts = ScrapeOptions {
            samples: 3,
            interval: Duration::from_secs(15),
            clock: Clock::Frozen(Timestamp(1_000_000)),
            ..ScrapeOptions::default()
        };
        let scraped = scrape(&[Target::file(&path)], &opts).unwrap();
        assert_eq!(scraped.window.start, Timestamp(1_000_000).to_rfc3339());
        assert_eq!(scraped.window.end, Timestamp(1_030_000).to_rfc3339());
        let t = &scraped.targets[0];
        assert_eq!(t.samples.len(), 3);
        assert!(t.samples.iter().all(|s| s.stale && s.duration_ms == 0.0));
        let times: Vec<i64> = t.series[0].points.iter().map(|p| p.t).collect();
        assert_eq!(times, [1_000_000, 1_015_000, 1_030_000]);
        assert!(scraped.evidence.is_empty(), "no evidence dir, no evidence");
    }

    #[test]
    fn evidence_is_deduplicated_across_samples() {
        let path = capture("b.prom", "# TYPE up gauge\nup 1\n");
        let dir = std::env::temp_dir().join(format!("opsg-scrape-unit-ev-{}", std::process::id()));
        let opts = ScrapeOptions {
            samples: 2,
            interval: Duration::ZERO,
            clock: Clock::Frozen(Timestamp(0)),
            evidence: Some(EvidenceStore::new(&dir)),
            ..ScrapeOptions::default()
        };
        let scraped = scrape(&[Target::file(&path)], &opts).unwrap();
        assert_eq!(scraped.evidence.len(), 1, "same bytes twice, one reference");
        let t = &scraped.targets[0];
        assert_eq!(t.samples[0].evidence, t.samples[1].evidence);
        assert_eq!(t.samples[0].evidence, Some(scraped.evidence[0].sha256));
        assert_eq!(
            EvidenceStore::new(&dir).get(&scraped.evidence[0].sha256).unwrap(),
            b"# TYPE up gauge\nup 1\n"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_missing_capture_is_an_io_error_not_a_target_status() {
        let err = scrape_targets(
            &[Target::file(Path::new("/nonexistent/x.prom"))],
            &ScrapeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err.status().code(), 4);
        assert!(err.to_string().contains("/nonexistent/x.prom"), "{err}");
    }
}

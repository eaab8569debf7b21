//! The fleet's usual traffic, learned from triage's own healthy runs.
//!
//! A KV-cache saturation from long contexts and a traffic surge look alike inside one scrape
//! window when the fault began before it (no growth to see) and long requests are routed to every
//! replica (every replica holds the same KV per request). What tells them apart is what changed
//! against the fleet's usual: more requests per second than usual is a surge; more prompt tokens
//! per request than usual is long contexts (see [`crate::correlate`]).
//!
//! Each run measures the fleet's [`Traffic`] over its whole window ([`measure`]). With
//! `--state-dir DIR`, a run whose finding is `no_incident` adds its traffic to `DIR/traffic.json`,
//! and every run compares itself with the [`Usual`] traffic of the earlier healthy runs:
//!
//! - the fleet is identified by its replicas' `deployment` labels (a target's name when it has
//!   none), so one state directory can serve several fleets without mixing their baselines;
//!   numbers are fleet-wide (summed over replicas), since the router splits one stream of
//!   requests across deployments and replicas come and go;
//! - only runs whose window ended within [`MAX_AGE_MS`] (6 h) before this window's end count,
//!   the latest [`MAX_RUNS`] (20) of them; the usual value is their median, and needs at least
//!   [`MIN_RUNS`] (3) runs that measured it: one odd run (a quiet minute, a batch job) moves a
//!   median of three little, and one healthy run is no baseline;
//! - the file keeps at most [`MAX_RUNS`] runs per fleet, none older than [`MAX_AGE_MS`] before
//!   the newest, so it stays a few kilobytes.
//!
//! Without a state directory, on the first run, or with fewer than [`MIN_RUNS`] healthy runs,
//! there is no usual and triage behaves exactly as without history (the recorded corpus replays
//! with none).

use crate::math::{increase, median};
use crate::signals::is_replica;
use opsg_core::Result;
use opsg_core::kinds::observation::{ObservationBody, TargetObservation};
use opsg_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The most healthy runs a usual value is the median of (and the file keeps per fleet).
pub const MAX_RUNS: usize = 20;
/// The fewest healthy runs that make a usual value.
pub const MIN_RUNS: usize = 3;
/// How far back healthy runs count: six hours, so the usual follows the day's rhythm.
pub const MAX_AGE_MS: i64 = 6 * 3_600_000;

/// What one window's traffic was, fleet-wide.
///
/// Rates are per second of the observation's own timestamps (the sample times). A simulator
/// sped up 5x serves 5x the requests per real second, and so do its healthy runs: only ratios to
/// a usual learned at the same speed are ever used, so the speed cancels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    /// The fleet: its replicas' `deployment` labels (or names), sorted.
    pub fleet: Vec<String>,
    /// Requests arriving per second: completions plus growth of the requests in the system
    /// (running and waiting), over the window, summed over replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_per_s: Option<f64>,
    /// Mean prompt tokens per request: the `vllm:request_prompt_tokens` histogram's sum increase
    /// over its count increase, or without it `vllm:prompt_tokens_total` over
    /// `vllm:request_success_total` increases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_request: Option<f64>,
}

/// One usual value: the median over `runs` healthy runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsualValue {
    /// The median.
    pub value: f64,
    /// How many runs it is the median of.
    pub runs: usize,
}

/// The fleet's usual traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usual {
    /// Usual arrivals per second.
    pub arrivals_per_s: Option<UsualValue>,
    /// Usual mean prompt tokens per request.
    pub prompt_tokens_per_request: Option<UsualValue>,
}

/// Now against the usual: a ratio and the number of runs the usual came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Now over usual.
    pub ratio: f64,
    /// Runs behind the usual.
    pub runs: usize,
}

/// This window's traffic against the usual.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Against {
    /// Arrivals per second now over the usual.
    pub arrivals: Option<Ratio>,
    /// Prompt tokens per request now over the usual.
    pub prompt_tokens: Option<Ratio>,
}

/// Compare an observation's traffic with the usual (either ratio is absent when not measurable).
pub fn against(obs: &ObservationBody, usual: &Usual) -> Against {
    let Some(now) = measure(obs) else { return Against::default() };
    let ratio = |now: Option<f64>, usual: Option<UsualValue>| match (now, usual) {
        (Some(n), Some(u)) if u.value > 0.0 && n.is_finite() => {
            Some(Ratio { ratio: n / u.value, runs: u.runs })
        }
        _ => None,
    };
    Against {
        arrivals: ratio(now.arrivals_per_s, usual.arrivals_per_s),
        prompt_tokens: ratio(now.prompt_tokens_per_request, usual.prompt_tokens_per_request),
    }
}

/// Measure a window's fleet-wide traffic (`None` without replicas).
pub fn measure(obs: &ObservationBody) -> Option<Traffic> {
    let replicas: Vec<&TargetObservation> = obs.targets.iter().filter(|t| is_replica(t)).collect();
    if replicas.is_empty() {
        return None;
    }
    let fleet: BTreeSet<String> =
        replicas.iter().map(|t| t.labels.get("deployment").unwrap_or(&t.name).clone()).collect();
    let mut arrivals = None::<f64>;
    let (mut tokens, mut counted) = (0.0, 0.0);
    let (mut counter_tokens, mut counter_done) = (0.0, 0.0);
    for t in &replicas {
        let done = completions(t);
        if let Some((done, secs)) = done {
            let grew = in_system(t);
            *arrivals.get_or_insert(0.0) += ((done + grew) / secs).max(0.0);
        }
        if let Some((sum, count)) = histogram_increase(t, "vllm:request_prompt_tokens") {
            tokens += sum;
            counted += count;
        }
        if let (Some(prompt), Some((done, _))) =
            (counter_increase(t, "vllm:prompt_tokens_total"), done)
        {
            counter_tokens += prompt;
            counter_done += done;
        }
    }
    let prompt_tokens_per_request = if counted >= 1.0 {
        Some(tokens / counted)
    } else if counter_done >= 1.0 {
        Some(counter_tokens / counter_done)
    } else {
        None
    };
    Some(Traffic {
        fleet: fleet.into_iter().collect(),
        arrivals_per_s: arrivals.filter(|a| a.is_finite()),
        prompt_tokens_per_request: prompt_tokens_per_request.filter(|p| p.is_finite()),
    })
}

/// Finite points of a scalar series.
fn values(points: &[opsg_core::kinds::observation::Point]) -> Vec<(i64, f64)> {
    points.iter().filter_map(|p| p.v.map(|v| (p.t, v.0))).filter(|p| p.1.is_finite()).collect()
}

/// Completions over the window (all `finished_reason`s) and the seconds they span.
fn completions(t: &TargetObservation) -> Option<(f64, f64)> {
    let mut done = 0.0;
    let mut span: Option<(i64, i64)> = None;
    for s in t.series.iter().filter(|s| s.name == "vllm:request_success_total") {
        let pts = values(&s.points);
        let (Some(first), Some(last)) = (pts.first(), pts.last()) else { continue };
        done += increase(&pts.iter().map(|p| p.1).collect::<Vec<_>>());
        span = Some(match span {
            Some((a, b)) => (a.min(first.0), b.max(last.0)),
            None => (first.0, last.0),
        });
    }
    let (a, b) = span?;
    (b > a).then(|| (done, (b - a) as f64 / 1000.0))
}

/// How many more requests are in the system (running and waiting) at the end than at the start.
fn in_system(t: &TargetObservation) -> f64 {
    t.series
        .iter()
        .filter(|s| s.name == "vllm:num_requests_waiting" || s.name == "vllm:num_requests_running")
        .filter_map(|s| {
            let pts = values(&s.points);
            Some(pts.last()?.1 - pts.first()?.1)
        })
        .sum()
}

fn counter_increase(t: &TargetObservation, name: &str) -> Option<f64> {
    let mut any = false;
    let total = t
        .series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            any = true;
            increase(&values(&s.points).iter().map(|p| p.1).collect::<Vec<_>>())
        })
        .sum();
    any.then_some(total)
}

/// A histogram's sum and count increases over the window (reset-aware), over its series.
fn histogram_increase(t: &TargetObservation, name: &str) -> Option<(f64, f64)> {
    let mut out = None::<(f64, f64)>;
    for s in t.series.iter().filter(|s| s.name == name) {
        let of = |f: fn(&opsg_core::kinds::observation::Point) -> Option<f64>| {
            increase(&s.points.iter().filter_map(f).collect::<Vec<_>>())
        };
        let sum = of(|p| p.sum.map(|v| v.0));
        let count = of(|p| p.count.map(|v| v.0));
        let o = out.get_or_insert((0.0, 0.0));
        o.0 += sum;
        o.1 += count;
    }
    out
}

/// A healthy run's traffic, as `DIR/traffic.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedRun {
    /// The end of the run's window (RFC 3339).
    pub at: String,
    /// What it measured.
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// The healthy runs learned so far (`DIR/traffic.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// Format version (1).
    pub version: u32,
    /// Healthy runs, oldest first.
    pub runs: Vec<LearnedRun>,
}

impl Learned {
    /// Load `DIR/traffic.json` (empty when absent). An unreadable file is an error the caller
    /// notes and learns past: it is overwritten by the next healthy run.
    pub fn load(dir: &Path) -> Result<Learned> {
        let learned = crate::state_dir::load(dir, "traffic.json", "traffic baseline")?;
        Ok(learned.unwrap_or(Learned { version: 1, runs: Vec::new() }))
    }

    /// The usual traffic of `fleet` before `until`: medians over the latest [`MAX_RUNS`] runs
    /// whose window ended within [`MAX_AGE_MS`] before it, each needing [`MIN_RUNS`] values.
    pub fn usual(&self, fleet: &[String], until: Timestamp) -> Usual {
        let mut runs: Vec<(Timestamp, &Traffic)> = self
            .runs
            .iter()
            .filter(|r| r.traffic.fleet == fleet)
            .filter_map(|r| Some((Timestamp::parse_rfc3339(&r.at).ok()?, &r.traffic)))
            // Strictly before: the same window run again is not its own baseline.
            .filter(|(at, _)| *at < until && until.millis() - at.millis() <= MAX_AGE_MS)
            .collect();
        runs.sort_by_key(|(at, _)| *at);
        let recent = &runs[runs.len().saturating_sub(MAX_RUNS)..];
        let usual = |f: fn(&Traffic) -> Option<f64>| {
            let vals: Vec<f64> = recent.iter().filter_map(|(_, t)| f(t)).collect();
            let value = median(&vals)?;
            (vals.len() >= MIN_RUNS).then_some(UsualValue { value, runs: vals.len() })
        };
        Usual {
            arrivals_per_s: usual(|t| t.arrivals_per_s),
            prompt_tokens_per_request: usual(|t| t.prompt_tokens_per_request),
        }
    }

    /// Add a healthy run (replacing one of the same fleet and window end); keep at most
    /// [`MAX_RUNS`] per fleet, none older than [`MAX_AGE_MS`] before the newest.
    pub fn learn(mut self, at: Timestamp, traffic: Traffic) -> Learned {
        let stamp = at.to_rfc3339();
        self.runs.retain(|r| !(r.at == stamp && r.traffic.fleet == traffic.fleet));
        self.runs.push(LearnedRun { at: stamp, traffic });
        let mut dated: Vec<(Timestamp, LearnedRun)> = self
            .runs
            .into_iter()
            .filter_map(|r| Some((Timestamp::parse_rfc3339(&r.at).ok()?, r)))
            .collect();
        dated.sort_by_key(|(t, _)| *t);
        let newest = dated.iter().map(|(t, _)| *t).max().unwrap_or(at);
        let mut kept: Vec<LearnedRun> = Vec::new();
        for (t, r) in dated.into_iter().rev() {
            let same = kept.iter().filter(|k| k.traffic.fleet == r.traffic.fleet).count();
            if newest.millis() - t.millis() <= MAX_AGE_MS && same < MAX_RUNS {
                kept.push(r);
            }
        }
        kept.reverse();
        Learned { version: 1, runs: kept }
    }

    /// Write atomically (a temporary file renamed into place).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::state_dir::save(dir, "traffic.json", self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::synth::{steady_traffic, traffic};

    pub(crate) const T0: i64 = 1_795_000_000_000;

    /// Healthy runs (10 req/s of 1,000 prompt tokens) ten minutes apart, the last ending before
    /// `until`.
    pub(crate) fn learned_healthy(n: usize, until: i64) -> Learned {
        let mut learned = Learned::default();
        for k in 0..n {
            let start = until - (n - k) as i64 * 600_000;
            let obs = traffic(&steady_traffic(10.0, 1000.0), start);
            let end = Timestamp::parse_rfc3339(&obs.window.end).unwrap();
            learned = learned.learn(end, measure(&obs).unwrap());
        }
        learned
    }

    #[test]
    fn traffic_is_measured_fleet_wide_per_second_of_the_samples() {
        let obs = traffic(&steady_traffic(10.0, 1000.0), T0);
        let t = measure(&obs).unwrap();
        assert_eq!(t.fleet, ["canary", "stable"]);
        assert!((t.arrivals_per_s.unwrap() - 10.0).abs() < 1e-9, "{t:?}");
        assert!((t.prompt_tokens_per_request.unwrap() - 1000.0).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn the_usual_is_a_bounded_median_of_earlier_healthy_runs_of_the_same_fleet() {
        let until = Timestamp(T0 + 10 * 3_600_000);
        let learned = learned_healthy(2, until.millis());
        let fleet = vec!["canary".to_string(), "stable".to_string()];
        assert_eq!(learned.usual(&fleet, until), Usual::default(), "two runs are no baseline");
        let learned = learned_healthy(30, until.millis());
        assert_eq!(learned.runs.len(), MAX_RUNS, "the file keeps the latest runs per fleet");
        let usual = learned.usual(&fleet, until);
        assert_eq!(usual.arrivals_per_s.map(|u| u.runs), Some(MAX_RUNS));
        assert!((usual.prompt_tokens_per_request.unwrap().value - 1000.0).abs() < 1e-9);
        // Another fleet, or seven hours later: nothing usual.
        assert_eq!(learned.usual(&["other".to_string()], until), Usual::default());
        assert_eq!(learned.usual(&fleet, until.plus_millis(7 * 3_600_000)), Usual::default());
        // The same window learned twice is one run.
        let last = learned.runs.last().unwrap().clone();
        let again = learned
            .clone()
            .learn(Timestamp::parse_rfc3339(&last.at).unwrap(), last.traffic.clone());
        assert_eq!(again.runs.len(), MAX_RUNS);
        assert_eq!(again.runs.last(), Some(&last));
    }

    #[test]
    fn the_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("opsg-triage-baseline-{}", std::process::id()));
        assert_eq!(Learned::load(&dir).unwrap().runs.len(), 0);
        let learned = learned_healthy(3, T0);
        learned.save(&dir).unwrap();
        assert_eq!(Learned::load(&dir).unwrap(), learned);
        std::fs::write(dir.join("traffic.json"), "{").unwrap();
        assert!(Learned::load(&dir).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}

//! From fired rules to one incident: a class, affected targets and ranked hypotheses.
//!
//! # How confidence is computed
//!
//! Each fired rule is one piece of evidence with a *weight* `w` (from the rule: how much that
//! signal alone says about its class) and a *strength* `s` in [0.6, 1]: 0.6 at the threshold,
//! rising linearly to 1 when the value is 50% beyond it. For a rule with `peers` the value is the
//! target's over its peers' median and the threshold that ratio ([`crate::peers`]):
//! `itl_above_peers` (weight 0.7, threshold 2) is 0.6 strong at twice the peers' inter-token
//! latency and full strength at three times. A hypothesis' *support* combines its evidence by
//! noisy-OR, `1 - Π(1 - w·s)`: independent signals that agree raise it, and no single signal
//! reaches certainty. Symptoms (latency, errors, burn rate, and a replica far slower than its
//! peers) on a target count for every cause found on that target or its node. A peer
//! comparison is never evidence of a canary regression or a traffic surge: it fires only against
//! replicas with the same config under about the same load. Conversely, a canary compared with
//! the stable replicas ([`crate::canary`]: `ttft_p95_above_stable`, weight 0.7, TTFT p95 at least
//! 3 times stable's median and at least 0.5 s, with the canary carrying at most 1.5 times stable's
//! throughput, for 3 evaluations in a row) is evidence of a canary regression only, never a
//! symptom for another cause nor load for a surge; its strength is taken from that ratio, 0.6 at
//! 3x and full at 4.5x. Structure then scales the support:
//!
//! - canary regression: raised when regression signals (symptoms, load classes, the comparison
//!   with stable) show on canaries and none on stable. Its evidence is those signals, combined by
//!   noisy-OR with a config on the canary that differs from stable's (`config_version` label,
//!   `config_changed_at` within 24 h, or a different `vllm:cache_config_info`), one more piece of
//!   evidence of weight 0.5; a recent rollout alone (its processes started after every stable
//!   replica's) weighs 0.35; with neither the support is ×0.6. So a config change and a canary's
//!   TTFT p95 at 4.5 times stable's or more give `1 - (1 - 0.7)(1 - 0.5) = 0.85` whether or not
//!   the absolute `ttft_p95_high` fired (with it, at full strength, 0.955); at 3 times, 0.71.
//!   With a config change, load classes seen on the canary alone are scaled ×0.4 (×0.7 after a
//!   rollout): the same traffic mix is fine on stable, so load is the less likely cause;
//! - traffic surge: ×min(1, g − 1), where g is the larger of the fleet's arrival rate at the end
//!   of the window over its start and, when the fleet's usual traffic is known
//!   ([`crate::baseline`]: the median of up to 20 earlier healthy runs within 6 h, at least 3;
//!   only with `--state-dir`), its arrival rate over the window against the usual; g ≥ 1.5 with
//!   load signals on at least half the replicas raises the surge, whose cause text names which
//!   growth it saw ("arrivals 1.6x the usual (20 runs)"). Or ×0.9 when the KV-saturated replicas
//!   hold about the same KV per running request as the healthy ones (at most 1.5×: more
//!   requests, not longer ones). A surge scales queue and KV hypotheses ×0.5 (they are its
//!   symptoms). Conversely, long contexts are one more piece of KV evidence (0.5, counted once):
//!   2.5× or more KV per running request than the healthy replicas, or mean prompt tokens per
//!   request 1.5× the usual or more. When prompts grew more than arrivals did (prompt ratio > g,
//!   with g = 1 when no growth is measurable) no surge is raised at all: a KV burst routed to
//!   every replica (opsg-sim's at 0.6 brings 0.24× more requests with 8× prompts: arrivals
//!   1.24×, prompts 2.3×) fills the cache with longer requests, not more of them, while a surge
//!   at 0.6 brings arrivals 1.6× at the usual prompt length. Without a usual (no state
//!   directory, fewer than 3 healthy runs, a replay of the corpus) none of this applies;
//! - a replica down on a node whose GPU faulted ×0.6 (the GPU is the cause);
//! - log signatures (opsg-scrape `--log`) in the log of an implicated target are one more piece
//!   of evidence: an NVRM Xid line 0.6, a CUDA error 0.4 for a GPU fault; preemption or
//!   insufficient-KV lines 0.4 for KV saturation; an engine-dead line 0.5 for a replica down.
//!   They never raise a hypothesis alone;
//! - a queue backlog on replicas whose KV cache is saturated ×0.6 (waiting is the symptom);
//! - network latency: slow scrapes (`scrape_slow`, weight 0.6) of a replica with no symptom on
//!   it ×0.7, so they alone give at most 0.42, too little to act on under a 0.80 policy. A
//!   symptom on that replica is noisy-OR'd in and lifts the factor: with its inter-token latency
//!   three times its peers' (`itl_above_peers` at full strength) the support is
//!   `1 - (1 - 0.6)(1 - 0.7) = 0.88`, at once, before users' latency SLOs are breached.
//!   Symptoms on a single replica that no cause explains (outside a canary regression) make a
//!   network-latency hypothesis ×0.7 (the peer rule alone: 0.49) and `unknown` ×0.5;
//!   unexplained symptoms on several replicas give `unknown` ×0.5 only;
//! - telemetry: ×(1 − 0.5·stale/total) for everyone; ×0.7 when an implicated target is stale;
//!   ×0.5 for `replica_down` when every replica is down (the scraper's own network is then the
//!   likelier fault).
//!
//! Confidences are rounded to three decimals. So 0.95 means "one decisive signal or several that
//! agree, with clean telemetry"; around 0.5 means "one signal, barely over its threshold".

use crate::baseline::{Ratio, Usual};
use crate::math::median;
use crate::rules::{Rule, Rules};
use crate::signals::{self, is_replica};
use opsg_core::float::Float;
use opsg_core::kinds::finding::{Anomaly, Hypothesis, IncidentClass, TelemetryQuality};
use opsg_core::kinds::observation::{ObservationBody, TargetObservation, TargetStatus};
use opsg_core::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// A fired rule with what correlation needs.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The anomaly as the finding reports it.
    pub anomaly: Anomaly,
    /// The class the rule points at (`None` for symptoms).
    pub class: Option<IncidentClass>,
    /// `w · s`.
    pub score: f64,
    /// Index of the target in the observation.
    pub target: usize,
    /// Start of the breach (ms).
    pub since_ms: Option<i64>,
    /// The rule compared the target with its peers ([`crate::peers`]): the target differs from
    /// replicas with the same config under about the same load, so this is never evidence of a
    /// config change (canary regression) or of a traffic surge.
    pub versus_peers: bool,
    /// A canary compared with the stable replicas under the same traffic ([`crate::canary`]):
    /// evidence of a canary regression only, never a symptom for another cause.
    pub versus_stable: bool,
}

/// What correlation concluded.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// Every fired rule.
    pub fired: Vec<Fired>,
    /// Ranked hypotheses, best first.
    pub hypotheses: Vec<Hypothesis>,
    /// Telemetry quality.
    pub telemetry: TelemetryQuality,
    /// The fleet arrival growth (end of window over start), when measurable.
    pub arrival_growth: Option<f64>,
}

/// How strongly a fired rule's last value supports its class: 0.6 at the threshold, 1 when the
/// value is 50% beyond it.
pub(crate) fn strength(rule: &Rule, value: f64) -> f64 {
    let t = rule.threshold;
    let excess = if t.abs() < 1e-12 {
        if value.abs() > 0.0 { 1.0 } else { 0.0 }
    } else if rule.op.is_low() {
        (t - value) / t.abs()
    } else {
        (value - t) / t.abs()
    };
    (0.6 + 0.4 * (excess / 0.5)).clamp(0.6, 1.0)
}

fn noisy_or(scores: impl IntoIterator<Item = f64>) -> f64 {
    1.0 - scores.into_iter().fold(1.0, |acc, s| acc * (1.0 - s.clamp(0.0, 1.0)))
}

fn round3(v: f64) -> f64 {
    (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

/// Evaluate every rule on every target.
pub fn evaluate(obs: &ObservationBody, rules: &Rules) -> (Vec<Fired>, Vec<String>) {
    let mut fired = Vec::new();
    let mut notes = Vec::new();
    let applies = |rule: &Rule| -> Vec<bool> {
        obs.targets
            .iter()
            .map(|t| rule.applies_to != crate::rules::Applies::Replicas || is_replica(t))
            .collect()
    };
    // Peer rules need every target's evaluation before any can be judged.
    let mut versus_peers: BTreeMap<usize, Vec<signals::Evaluation>> = rules
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.peers.is_some())
        .map(|(ri, r)| (ri, crate::peers::evaluate(r, obs, &applies(r))))
        .collect();
    for (ti, target) in obs.targets.iter().enumerate() {
        let replica = is_replica(target);
        for (ri, rule) in rules.rules.iter().enumerate() {
            if rule.applies_to == crate::rules::Applies::Replicas && !replica {
                continue;
            }
            let ev = match versus_peers.get_mut(&ri) {
                Some(evs) => std::mem::take(&mut evs[ti]),
                None => signals::evaluate(rule, target),
            };
            notes.extend(ev.notes);
            let need = rule.persistence.samples(obs.interval_s);
            let (n, last, since) = signals::trailing_breach(rule, &ev.points);
            let Some(value) = last else { continue };
            let need = if rule.func == crate::rules::Func::Growth { 1 } else { need };
            if n >= need {
                fired.push(Fired {
                    anomaly: Anomaly {
                        rule: rule.name.clone(),
                        target: target.name.clone(),
                        signal: rule.signal_name(),
                        value: Float((value * 1e6).round() / 1e6),
                        op: rule.op.as_str().to_string(),
                        threshold: Float(rule.threshold),
                        samples_breaching: n,
                        for_samples: need,
                        since: since.map(|t| Timestamp(t).to_rfc3339()),
                    },
                    class: rule.class,
                    score: rule.weight() * strength(rule, value),
                    target: ti,
                    since_ms: since,
                    versus_peers: rule.peers.is_some(),
                    versus_stable: false,
                });
            }
        }
    }
    // Canaries against stable, after the rules: a finding's first anomaly on the canary (which a
    // rollback's expected effect names) stays the absolute rule's when both fired.
    fired.extend(crate::canary::evaluate(obs));
    (fired, notes)
}

fn telemetry(obs: &ObservationBody, mut notes: Vec<String>) -> TelemetryQuality {
    let mut stale = Vec::new();
    // Host and GPU snapshots are judged like targets but are not scraped targets: not counted.
    let scraped: Vec<&TargetObservation> =
        obs.targets.iter().filter(|t| !crate::snapshot::is_snapshot(t)).collect();
    for t in scraped.iter().copied() {
        if t.samples.iter().any(|s| s.stale) {
            stale.push(t.name.clone());
        }
        if t.status != TargetStatus::Up && !is_replica(t) {
            notes.push(
                format!(
                    "`{}` is {:?} at the last sample: its signals are missing, not judged",
                    t.name, t.status
                )
                .to_lowercase()
                .replacen(&t.name.to_lowercase(), &t.name, 1),
            );
        }
    }
    if !stale.is_empty() {
        notes.push(format!("stale samples from {}: confidence lowered", stale.join(", ")));
    }
    if obs.targets.is_empty() {
        notes.push("the observation has no targets: nothing could be judged".into());
    }
    let mut seen = BTreeSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    TelemetryQuality {
        targets_total: scraped.len() as u32,
        targets_up: scraped.iter().filter(|t| t.status == TargetStatus::Up).count() as u32,
        stale_targets: stale,
        notes,
    }
}

/// Fleet arrival growth: (completions + queue growth) per second in the last third of the window
/// over the first third, summed over replicas that answered throughout.
pub fn arrival_growth(obs: &ObservationBody) -> Option<f64> {
    let mut first = 0.0;
    let mut last = 0.0;
    let mut used = 0;
    for t in obs.targets.iter().filter(|t| is_replica(t)) {
        let Some((a, b)) = arrivals(t) else { continue };
        first += a;
        last += b;
        used += 1;
    }
    (used > 0 && first > 0.0).then(|| last / first)
}

fn arrivals(t: &TargetObservation) -> Option<(f64, f64)> {
    let mut completions: BTreeMap<i64, f64> = BTreeMap::new();
    let mut any = false;
    for s in t.series.iter().filter(|s| s.name == "vllm:request_success_total") {
        any = true;
        let pts: Vec<(i64, f64)> = s
            .points
            .iter()
            .filter_map(|p| p.v.map(|v| (p.t, v.0)))
            .filter(|p| p.1.is_finite())
            .collect();
        for w in pts.windows(2) {
            let inc = crate::math::increase(&[w[0].1, w[1].1]);
            *completions.entry(w[1].0).or_default() += inc;
        }
    }
    if !any || completions.len() < 6 {
        return None;
    }
    let queue: BTreeMap<i64, f64> = t
        .series
        .iter()
        .filter(|s| s.name == "vllm:num_requests_waiting" || s.name == "vllm:num_requests_running")
        .flat_map(|s| s.points.iter().filter_map(|p| p.v.map(|v| (p.t, v.0))))
        .filter(|p| p.1.is_finite())
        .fold(BTreeMap::new(), |mut m, (t, v)| {
            *m.entry(t).or_default() += v;
            m
        });
    let times: Vec<i64> = completions.keys().copied().collect();
    let third = times.len() / 3;
    let rate = |range: &[i64]| -> Option<f64> {
        let (a, b) = (*range.first()?, *range.last()?);
        let done: f64 = range.iter().filter_map(|t| completions.get(t)).sum();
        let grew = queue.get(&b).copied().unwrap_or(0.0) - queue.get(&a).copied().unwrap_or(0.0);
        let secs = (b - a) as f64 / 1000.0 + 1.0;
        Some(((done + grew.max(0.0)) / secs).max(0.0))
    };
    Some((rate(&times[..third])?, rate(&times[times.len() - third..])?))
}

fn label<'a>(t: &'a TargetObservation, k: &str) -> Option<&'a str> {
    t.labels.get(k).map(String::as_str)
}

/// Correlate: evaluate the rules, then build and rank hypotheses (without history: the fleet's
/// usual traffic unknown).
pub fn correlate(obs: &ObservationBody, rules: &Rules) -> Correlation {
    correlate_with(obs, rules, None)
}

/// [`correlate`], judging arrivals and prompt lengths against the fleet's `usual` traffic too
/// (learned from earlier healthy runs, [`crate::baseline`]). With `None` it is [`correlate`].
pub fn correlate_with(obs: &ObservationBody, rules: &Rules, usual: Option<&Usual>) -> Correlation {
    let (fired, notes) = evaluate(obs, rules);
    let tele = telemetry(obs, notes);
    let growth = arrival_growth(obs);
    let against = usual.map(|u| crate::baseline::against(obs, u)).unwrap_or_default();
    let targets = &obs.targets;
    let total = targets.iter().filter(|t| !crate::snapshot::is_snapshot(t)).count().max(1) as f64;
    let tele_factor = 1.0 - 0.5 * tele.stale_targets.len() as f64 / total;
    let node_of = |i: usize| label(&targets[i], "node");
    let role_of = |i: usize| label(&targets[i], "role");
    let replicas: Vec<usize> = (0..targets.len()).filter(|i| is_replica(&targets[*i])).collect();

    // Cause evidence per class and target; symptoms per target.
    let mut causes: BTreeMap<IncidentClass, Vec<&Fired>> = BTreeMap::new();
    let mut symptoms: BTreeMap<usize, Vec<&Fired>> = BTreeMap::new();
    for f in fired.iter().filter(|f| !f.versus_stable) {
        match f.class {
            Some(c) => causes.entry(c).or_default().push(f),
            None => symptoms.entry(f.target).or_default().push(f),
        }
    }
    let infra = [
        IncidentClass::ReplicaDown,
        IncidentClass::GpuFault,
        IncidentClass::HostMemoryPressure,
        IncidentClass::DiskPressure,
        IncidentClass::MemoryLeak,
        IncidentClass::NetworkLatency,
    ];
    let load = [IncidentClass::KvCacheSaturation, IncidentClass::QueueBacklog];
    // Targets a cause implicates: where it fired, plus the replicas on the same node.
    // An exporter's anomaly (GPU, host, disk) implicates the replicas on its node; a replica's
    // implicates only itself.
    let implicated = |evidence: &[&Fired]| -> BTreeSet<usize> {
        let mut set: BTreeSet<usize> = evidence.iter().map(|f| f.target).collect();
        let nodes: BTreeSet<&str> =
            set.iter().filter(|i| !is_replica(&targets[**i])).filter_map(|i| node_of(*i)).collect();
        for r in &replicas {
            if node_of(*r).is_some_and(|n| nodes.contains(n)) {
                set.insert(*r);
            }
        }
        set
    };
    let mut explained: BTreeSet<usize> = BTreeSet::new();
    let mut hyps: Vec<(IncidentClass, f64, BTreeSet<usize>, Vec<&Fired>)> = Vec::new();
    for (class, evidence) in &causes {
        let set = implicated(evidence);
        let mut all: Vec<&Fired> = evidence.clone();
        for t in &set {
            if let Some(s) = symptoms.get(t) {
                all.extend(s.iter().copied());
                explained.insert(*t);
            }
        }
        let mut support = noisy_or(all.iter().map(|f| f.score));
        if *class == IncidentClass::NetworkLatency && !set.iter().any(|t| symptoms.contains_key(t))
        {
            support *= 0.7;
        }
        hyps.push((*class, support, set, all));
    }

    // Canary regression: regression signals on canaries only, stable replicas fine.
    let regression_on = |i: usize| -> Vec<&Fired> {
        fired
            .iter()
            .filter(|f| {
                f.target == i
                    && !f.versus_peers
                    && !f.versus_stable
                    && (f.class.is_none() || f.class.is_some_and(|c| load.contains(&c)))
            })
            .collect()
    };
    let canaries: Vec<usize> =
        replicas.iter().copied().filter(|i| role_of(*i) == Some("canary")).collect();
    let stables: Vec<usize> =
        replicas.iter().copied().filter(|i| role_of(*i) != Some("canary")).collect();
    // Its latency several times stable's under no more load ([`crate::canary`]) counts here only.
    let canary_ev: Vec<&Fired> = canaries
        .iter()
        .flat_map(|i| {
            let versus_stable = fired.iter().filter(move |f| f.versus_stable && f.target == *i);
            regression_on(*i).into_iter().chain(versus_stable)
        })
        .collect();
    let stable_regressed = stables.iter().any(|i| !regression_on(*i).is_empty());
    let mut canary_only = false;
    let mut canary_load_factor = 1.0;
    if !canary_ev.is_empty() && !stable_regressed && !stables.is_empty() {
        canary_only = true;
        let set: BTreeSet<usize> = canary_ev.iter().map(|f| f.target).collect();
        let evidence_of_change = config_change(obs, &set, &stables);
        canary_load_factor = match evidence_of_change {
            Change::Config => 0.4,
            Change::Rollout => 0.7,
            Change::None => 1.0,
        };
        // A config change is one more piece of evidence (weight 0.5; a recent rollout of the
        // canary's processes alone, 0.35); without either, the regression may as well be the
        // canary's hardware or placement.
        let mut support = match evidence_of_change {
            Change::Config => noisy_or(canary_ev.iter().map(|f| f.score).chain([0.5])),
            Change::Rollout => noisy_or(canary_ev.iter().map(|f| f.score).chain([0.35])),
            Change::None => noisy_or(canary_ev.iter().map(|f| f.score)) * 0.6,
        };
        let infra_on_canary =
            hyps.iter().any(|(c, _, s, _)| infra.contains(c) && s.iter().any(|t| set.contains(t)));
        if infra_on_canary {
            support *= 0.5;
        }
        for t in &set {
            explained.insert(*t);
        }
        hyps.push((IncidentClass::CanaryRegression, support, set, canary_ev.clone()));
    }

    // Traffic surge: arrivals grew and load signals show on at least half the replicas.
    let up_replicas: Vec<usize> =
        replicas.iter().copied().filter(|i| targets[*i].status == TargetStatus::Up).collect();
    let loaded: Vec<usize> =
        up_replicas.iter().copied().filter(|i| !regression_on(*i).is_empty()).collect();
    let mut surge = false;
    // What fills the KV cache: each running request's share of it on the saturated replicas,
    // against the replicas that are fine. Several times more per request: long contexts (the
    // request mix), a KV problem. About the same: more requests, a load problem.
    let kv_set: BTreeSet<usize> = hyps
        .iter()
        .filter(|h| h.0 == IncidentClass::KvCacheSaturation)
        .flat_map(|h| h.2.iter().copied())
        .collect();
    let per_request = |i: usize| kv_per_request(&targets[i]);
    let saturated: Vec<f64> = kv_set.iter().filter_map(|i| per_request(*i)).collect();
    let fine: Vec<f64> = up_replicas
        .iter()
        .filter(|i| !kv_set.contains(i) && regression_on(**i).is_empty())
        .filter_map(|i| per_request(*i))
        .collect();
    let mix_ratio = match (median(&saturated), median(&fine)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    // Against the fleet's usual traffic (earlier healthy runs): arrivals well above the usual are
    // growth even when the fault began before the window; prompts well above the usual length
    // are long contexts even when every replica holds them (a mix ratio of about 1).
    let vs_usual = against.arrivals.map(|r| r.ratio);
    let long_prompts = against.prompt_tokens.filter(|p| p.ratio >= 1.5);
    // The larger evidence of growth: inside the window, or against the usual.
    let growth_seen = match (growth, vs_usual) {
        (Some(g), Some(u)) => Some(g.max(u)),
        (g, u) => g.or(u),
    };
    // Prompts grew more than arrivals did: the KV cache fills with longer requests, not more of
    // them (a KV burst at 0.6: arrivals 1.24x, prompts 2.3x), so no surge is inferred.
    let long_context = long_prompts.is_some_and(|p| p.ratio > growth_seen.unwrap_or(1.0));
    let load_driven = mix_ratio.is_some_and(|r| r <= 1.5) && !long_context;
    if let Some(h) = hyps.iter_mut().find(|h| h.0 == IncidentClass::KvCacheSaturation)
        && (mix_ratio.is_some_and(|r| r >= 2.5) || long_prompts.is_some())
    {
        // The same fact (long contexts) measured two ways counts once.
        h.1 = noisy_or([h.1, 0.5]);
    }
    let grew = growth_seen.is_some_and(|g| g >= 1.5)
        && !long_context
        && !up_replicas.is_empty()
        && loaded.len() * 2 >= up_replicas.len();
    // What the surge's cause text names: growth against the usual when that is the larger.
    let surge_growth = match (growth, against.arrivals) {
        (g, Some(u)) if grew && g.is_none_or(|g| u.ratio > g) => Some(Growth::Usual(u)),
        (g, _) => g.map(Growth::Window),
    };
    if grew || load_driven {
        surge = true;
        let set: Vec<usize> = if grew { loaded.clone() } else { kv_set.iter().copied().collect() };
        let ev: Vec<&Fired> = set.iter().flat_map(|i| regression_on(*i)).collect();
        let factor = match growth_seen {
            Some(g) if grew => (g - 1.0).min(1.0),
            _ => 0.9,
        };
        let support = noisy_or(ev.iter().map(|f| f.score)) * factor;
        for t in &set {
            explained.insert(*t);
        }
        hyps.push((IncidentClass::TrafficSurge, support, set.into_iter().collect(), ev));
    }

    // Unexplained symptoms: one stable replica → network path; otherwise unknown.
    let unexplained: Vec<usize> =
        symptoms.keys().copied().filter(|t| !explained.contains(t)).collect();
    if !unexplained.is_empty() {
        let ev: Vec<&Fired> =
            unexplained.iter().flat_map(|t| symptoms[t].iter().copied()).collect();
        let support = noisy_or(ev.iter().map(|f| f.score));
        let set: BTreeSet<usize> = unexplained.iter().copied().collect();
        if unexplained.len() == 1 && !canary_only {
            if let Some(h) = hyps.iter_mut().find(|h| h.0 == IncidentClass::NetworkLatency) {
                h.1 = noisy_or([h.1, support]);
                h.2.extend(set.iter().copied());
            } else {
                hyps.push((IncidentClass::NetworkLatency, support * 0.7, set.clone(), ev.clone()));
            }
        }
        hyps.push((IncidentClass::Unknown, support * 0.5, set, ev));
    }

    // Structural scaling.
    let all_down =
        !replicas.is_empty() && replicas.iter().all(|i| targets[*i].status != TargetStatus::Up);
    let stale: BTreeSet<&str> = tele.stale_targets.iter().map(String::as_str).collect();
    // Log signatures (opsg-scrape --log) corroborate a hypothesis on the target whose log it is;
    // they never raise one alone (a tail can hold lines from long before the window).
    let mut log_evidence: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (hi, h) in hyps.iter_mut().enumerate() {
        let sigs: &[(&str, f64)] = match h.0 {
            IncidentClass::GpuFault => &[("xid", 0.6), ("cuda_error", 0.4)],
            IncidentClass::KvCacheSaturation => {
                &[("kv_cache_preemption", 0.4), ("kv_cache_insufficient", 0.4)]
            }
            IncidentClass::ReplicaDown => &[("engine_dead", 0.5)],
            _ => &[],
        };
        for entry in &obs.logs {
            let path = entry.get("path").and_then(|p| p.as_str()).unwrap_or_default();
            let Some(t) = h.2.iter().find(|t| log_names_target(path, &targets[**t].name)) else {
                continue;
            };
            for (sig, w) in sigs {
                let n = entry
                    .get("counts")
                    .and_then(|c| c.get(*sig))
                    .and_then(|n| n.as_u64())
                    .unwrap_or(0);
                if n > 0 {
                    h.1 = noisy_or([h.1, *w]);
                    log_evidence
                        .entry(hi)
                        .or_default()
                        .push(format!("log:{sig}@{}", targets[*t].name));
                    if let Some(hash) = entry.get("evidence").and_then(|e| e.as_str()) {
                        log_evidence.entry(hi).or_default().push(format!("sha256:{hash}"));
                    }
                }
            }
        }
    }
    // Requests wait when the KV cache is full: a backlog on saturated replicas is its symptom.
    let kv_targets: BTreeSet<usize> = hyps
        .iter()
        .filter(|h| h.0 == IncidentClass::KvCacheSaturation)
        .flat_map(|h| h.2.iter().copied())
        .collect();
    // A replica on a node whose GPU faulted going down is the fault's symptom.
    let gpu_targets: BTreeSet<usize> = hyps
        .iter()
        .filter(|h| h.0 == IncidentClass::GpuFault)
        .flat_map(|h| h.2.iter().copied())
        .collect();
    let mut out: Vec<Hypothesis> = Vec::new();
    for (hi, (class, mut support, set, ev)) in hyps.into_iter().enumerate() {
        if class == IncidentClass::QueueBacklog && set.iter().any(|t| kv_targets.contains(t)) {
            support *= 0.6;
        }
        if class == IncidentClass::ReplicaDown && set.iter().all(|t| gpu_targets.contains(t)) {
            support *= 0.6;
        }
        if load.contains(&class) {
            if surge {
                support *= 0.5;
            }
            if canary_only && set.iter().all(|t| role_of(*t) == Some("canary")) {
                support *= canary_load_factor;
            }
        }
        if class == IncidentClass::ReplicaDown && all_down {
            support *= 0.5;
        }
        if set.iter().any(|t| stale.contains(targets[*t].name.as_str())) {
            support *= 0.7;
        }
        let confidence = round3(support * tele_factor);
        if confidence <= 0.0 {
            continue;
        }
        let names: Vec<String> = set.iter().map(|i| targets[*i].name.clone()).collect();
        let mut evidence: Vec<String> =
            ev.iter().map(|f| format!("{}@{}", f.anomaly.rule, f.anomaly.target)).collect();
        evidence.extend(log_evidence.remove(&hi).unwrap_or_default());
        evidence.sort();
        evidence.dedup();
        for i in &set {
            if let Some(h) = targets[*i].samples.iter().rev().find_map(|s| s.evidence) {
                evidence.push(format!("sha256:{h}"));
            }
        }
        evidence.truncate(16);
        out.push(Hypothesis {
            class,
            cause: cause_text(class, obs, &set, &ev, surge_growth, long_prompts, all_down),
            confidence,
            targets: names,
            evidence,
        });
    }
    out.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.class.cmp(&b.class)));
    let mut tele = tele;
    if all_down {
        tele.notes.push("every replica is down: the scraper's own network may be at fault".into());
    }
    Correlation { fired, hypotheses: out, telemetry: tele, arrival_growth: growth }
}

/// True when a log path names a target (`/var/log/vllm/stable-1.log` names `stable-1`, not
/// `stable-10`).
fn log_names_target(path: &str, target: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    stem == target || path.split('/').any(|part| part == target)
}

/// The KV cache share each running request holds, averaged over the last three samples.
fn kv_per_request(t: &TargetObservation) -> Option<f64> {
    let tail = |name: &str| -> Option<f64> {
        let s = t.series.iter().find(|s| s.name == name)?;
        let vals: Vec<f64> = s
            .points
            .iter()
            .rev()
            .filter_map(|p| p.v.map(|v| v.0))
            .filter(|v| v.is_finite())
            .take(3)
            .collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
    };
    let kv = tail("vllm:kv_cache_usage_perc")?;
    let running = tail("vllm:num_requests_running")?;
    (running >= 1.0).then(|| kv / running)
}

/// What says the canary's config changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Its config differs from stable's: a `config_version` label, a recent `config_changed_at`,
    /// or a different `vllm:cache_config_info` label set.
    Config,
    /// Its processes started after every stable replica's, within the last day (a rollout).
    Rollout,
    /// Nothing.
    None,
}

fn last_value(t: &TargetObservation, name: &str) -> Option<f64> {
    t.series
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| {
            s.points.iter().rev().find_map(|p| p.v.map(|v| v.0).filter(|v| v.is_finite()))
        })
        .reduce(f64::max)
}

fn cache_config(t: &TargetObservation) -> Option<BTreeMap<&str, &str>> {
    let s = t.series.iter().find(|s| s.name == "vllm:cache_config_info")?;
    Some(
        s.labels
            .iter()
            .filter(|(k, _)| k.as_str() != "engine")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
}

fn config_change(obs: &ObservationBody, canaries: &BTreeSet<usize>, stables: &[usize]) -> Change {
    let targets = &obs.targets;
    let end = Timestamp::parse_rfc3339(&obs.window.end).ok();
    let stable_cfg: BTreeSet<&str> =
        stables.iter().filter_map(|i| label(&targets[*i], "config_version")).collect();
    let stable_info: Vec<BTreeMap<&str, &str>> =
        stables.iter().filter_map(|i| cache_config(&targets[*i])).collect();
    let config = canaries.iter().any(|i| {
        let t = &targets[*i];
        let differs = label(t, "config_version")
            .is_some_and(|v| !stable_cfg.is_empty() && !stable_cfg.contains(v));
        let recent = label(t, "config_changed_at")
            .and_then(|c| Timestamp::parse_rfc3339(c).ok())
            .zip(end)
            .is_some_and(|(c, e)| c <= e && e.millis() - c.millis() <= 86_400_000);
        let info = cache_config(t)
            .is_some_and(|c| !stable_info.is_empty() && stable_info.iter().all(|s| *s != c));
        differs || recent || info
    });
    if config {
        return Change::Config;
    }
    let stable_start = stables
        .iter()
        .filter_map(|i| last_value(&targets[*i], "process_start_time_seconds"))
        .reduce(f64::max);
    let rollout = canaries.iter().any(|i| {
        let started = last_value(&targets[*i], "process_start_time_seconds");
        match (started, stable_start, end) {
            (Some(c), Some(s), Some(e)) => {
                c > s + 1.0 && e.seconds_f64() - c <= 86_400.0 && c <= e.seconds_f64()
            }
            _ => false,
        }
    });
    if rollout { Change::Rollout } else { Change::None }
}

/// The arrival growth a surge's cause text names.
#[derive(Debug, Clone, Copy)]
enum Growth {
    /// End of the window over its start.
    Window(f64),
    /// Now over the fleet's usual.
    Usual(Ratio),
}

fn cause_text(
    class: IncidentClass,
    obs: &ObservationBody,
    set: &BTreeSet<usize>,
    ev: &[&Fired],
    growth: Option<Growth>,
    long_prompts: Option<Ratio>,
    all_down: bool,
) -> String {
    let names: Vec<&str> = set.iter().map(|i| obs.targets[*i].name.as_str()).collect();
    let list = names.join(", ");
    let nodes: BTreeSet<&str> =
        set.iter().filter_map(|i| label(&obs.targets[*i], "node")).collect();
    let nodes = nodes.into_iter().collect::<Vec<_>>().join(", ");
    let rules: BTreeSet<&str> = ev.iter().map(|f| f.anomaly.rule.as_str()).collect();
    let rules = rules.into_iter().collect::<Vec<_>>().join(", ");
    match class {
        IncidentClass::KvCacheSaturation => {
            let long = long_prompts
                .map(|p| {
                    format!(
                        "; prompts are {:.1}x the usual length ({} runs): long contexts",
                        p.ratio, p.runs
                    )
                })
                .unwrap_or_default();
            format!(
                "KV cache exhausted on {list}: requests are preempted and re-queued ({rules}){long}"
            )
        }
        IncidentClass::QueueBacklog => {
            format!("requests queue faster than {list} serve them ({rules})")
        }
        IncidentClass::CanaryRegression => {
            let t = set.iter().next().map(|i| &obs.targets[*i]);
            let cfg = t
                .map(|t| match (label(t, "previous_config_version"), label(t, "config_version")) {
                    (Some(a), Some(b)) => format!(" (config {a} -> {b})"),
                    (None, Some(b)) => format!(" (config {b})"),
                    _ => String::new(),
                })
                .unwrap_or_default();
            format!(
                "the canary's config change{cfg} regressed {list} ({rules}); stable replicas under the same traffic are fine"
            )
        }
        IncidentClass::ReplicaDown => {
            let reason = set
                .iter()
                .find_map(|i| obs.targets[*i].reason.as_deref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if all_down {
                format!("every replica stopped answering{reason}; check the scraper's network too")
            } else {
                format!("{list} stopped answering{reason}")
            }
        }
        IncidentClass::GpuFault => format!("GPU fault on {nodes} ({rules}) affecting {list}"),
        IncidentClass::MemoryLeak => format!("process memory on {list} grows steadily ({rules})"),
        // Without a measured growth, the surge was inferred from the saturated replicas holding
        // about as much KV per request as the healthy ones (more requests, not longer ones).
        IncidentClass::TrafficSurge => match growth {
            Some(Growth::Window(g)) => {
                format!("arrivals grew {g:.1}x across the fleet; {list} are overloaded ({rules})")
            }
            Some(Growth::Usual(u)) => format!(
                "arrivals {:.1}x the usual ({} runs) across the fleet; {list} are overloaded ({rules})",
                u.ratio, u.runs
            ),
            None => format!(
                "{list} are overloaded ({rules}) with about the KV per request of the healthy replicas: more requests, not longer ones"
            ),
        },
        IncidentClass::NetworkLatency => {
            format!(
                "latency added on the network path of {list}; its load signals are normal ({rules})"
            )
        }
        IncidentClass::DiskPressure => format!("a filesystem on {nodes} is nearly full ({rules})"),
        IncidentClass::HostMemoryPressure => {
            format!("host memory on {nodes} is nearly exhausted ({rules})")
        }
        IncidentClass::Unknown | IncidentClass::None => {
            format!("anomalies on {list} fit no known class ({rules})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::tests::{T0, learned_healthy};
    use crate::baseline::{Learned, measure};
    use crate::synth::{steady_traffic, traffic};

    /// The usual traffic `learned` gives at the end of `obs`'s window.
    fn usual_of(obs: &ObservationBody, learned: &Learned) -> Usual {
        let until = Timestamp::parse_rfc3339(&obs.window.end).unwrap();
        learned.usual(&measure(obs).unwrap().fleet, until)
    }

    fn lead(c: &Correlation) -> &Hypothesis {
        c.hypotheses.first().expect("a hypothesis")
    }

    /// A KV burst routed like normal traffic (opsg-sim's kv_cache_saturation at 0.6: 0.24x more
    /// requests, 8x prompts) that began before the window: 12.4 req/s at 2,300 tokens each, the
    /// stable replicas' KV cache full, the canary's half full with the same KV per request.
    fn kv_burst() -> ObservationBody {
        let mut replicas = steady_traffic(12.4, 2300.0);
        for r in &mut replicas {
            (r.running, r.kv) =
                if r.name.starts_with("stable") { (20.0, 0.97) } else { (10.0, 0.485) };
        }
        traffic(&replicas, T0 + 3_600_000)
    }

    /// A surge of plain requests: 16 req/s at the usual 1,000 tokens, queues and KV full everywhere.
    fn surge() -> ObservationBody {
        let mut replicas = steady_traffic(16.0, 1000.0);
        for r in &mut replicas {
            (r.running, r.waiting, r.kv) = (20.0, 30.0, 0.97);
        }
        traffic(&replicas, T0 + 3_600_000)
    }

    // Regression: a KV burst that began before the window and is routed to every replica was
    // named traffic_surge (no growth inside the window, a mix ratio of about 1). Prompts 2.3x the
    // usual length, arrivals only 1.24x, say long contexts.
    #[test]
    fn longer_prompts_than_usual_are_kv_saturation_not_a_surge() {
        let rules = Rules::builtin();
        let obs = kv_burst();
        let before = correlate(&obs, &rules);
        assert_eq!(lead(&before).class, IncidentClass::TrafficSurge, "{:?}", before.hypotheses);

        let usual = usual_of(&obs, &learned_healthy(60, T0 + 3_600_000));
        assert_eq!(usual.arrivals_per_s.map(|u| u.runs), Some(crate::baseline::MAX_RUNS));
        let c = correlate_with(&obs, &rules, Some(&usual));
        let h = lead(&c);
        assert_eq!(h.class, IncidentClass::KvCacheSaturation, "{:?}", c.hypotheses);
        assert!(h.cause.contains("prompts are 2.3x the usual length (20 runs)"), "{}", h.cause);
        assert!(!c.hypotheses.iter().any(|h| h.class == IncidentClass::TrafficSurge));
        let kv_before =
            before.hypotheses.iter().find(|h| h.class == IncidentClass::KvCacheSaturation);
        assert!(h.confidence > kv_before.unwrap().confidence);
    }

    // Regression: a surge that began before the window shows no growth inside it and, with every
    // replica saturated, no healthy replica to compare with: it was named kv_cache_saturation.
    #[test]
    fn more_arrivals_than_usual_are_a_surge_without_growth_in_the_window() {
        let rules = Rules::builtin();
        let obs = surge();
        let before = correlate(&obs, &rules);
        assert_ne!(lead(&before).class, IncidentClass::TrafficSurge, "{:?}", before.hypotheses);
        assert!(before.arrival_growth.is_some_and(|g| (g - 1.0).abs() < 0.05));

        let usual = usual_of(&obs, &learned_healthy(5, T0 + 3_600_000));
        let c = correlate_with(&obs, &rules, Some(&usual));
        let h = lead(&c);
        assert_eq!(h.class, IncidentClass::TrafficSurge, "{:?}", c.hypotheses);
        assert!(h.cause.starts_with("arrivals 1.6x the usual (5 runs)"), "{}", h.cause);
        assert_eq!(h.targets.len(), 4);
    }

    #[test]
    fn without_a_usual_correlation_is_what_it_was() {
        let rules = Rules::builtin();
        for obs in [kv_burst(), surge()] {
            let before = format!("{:?}", correlate(&obs, &rules).hypotheses);
            // No history, or fewer than three healthy runs: nothing usual, nothing changes.
            for usual in [Usual::default(), usual_of(&obs, &learned_healthy(2, T0 + 3_600_000))] {
                let after = format!("{:?}", correlate_with(&obs, &rules, Some(&usual)).hypotheses);
                assert_eq!(before, after);
            }
        }
        // The cause text as it was before the usual existed.
        let c = correlate(&kv_burst(), &rules);
        assert!(
            lead(&c).cause.starts_with("arrivals grew 1.0x across the fleet"),
            "{}",
            lead(&c).cause
        );
    }
}

//! Turning a catalog step into a typed action: target, parameters, safety, blast radius, expected
//! effect, inverse and the prior state the inverse needs.
//!
//! Parameters follow the fleet admin API opsg-exec's default actuators call (opsg-sim's):
//!
//! | action | params | inverse |
//! |---|---|---|
//! | `shift_traffic` | `weights` (the route's new weights, every deployment) , `from` | `shift_traffic` with the prior `weights` |
//! | `set_deployment_status` | `deployment`, `status` | the prior `status` |
//! | `rollback_config` | `deployment`, `to_version` | `rollback_config` to the prior `config_version` |
//! | `restart_replica` | `replica`, `deployment` | none (a restart changes no setting) |
//! | `scale_replicas` | `deployment`, `replicas` | `scale_replicas` to the prior `replicas` |
//! | `drain_node` | `node` | `drain_node` with `uncordon: true` |
//! | `cordon_node` | `node` | `cordon_node` with `uncordon: true` |
//! | `cleanup_node` | `node` | none: what it deletes is gone (it moves no replica and no traffic) |
//! | `escalate` | `reason`, `summary` | none |
//!
//! How many replicas a scale-up adds: a step that sets `max_delta` is sized from the evidence
//! ([`size_scale`]: the arrival rate over what a saturated replica serves, at 80% utilisation,
//! plus what clears the queue as fast as it grew; from the queue alone when the rates are not
//! observed), at most `max_delta` and the free GPUs; without `max_delta`, or with neither rates
//! nor a queue observed, it adds its fixed `delta`. When the rates say the replicas it has
//! already carry the demand, it adds none: the step holds (it is not built, and
//! [`Context::take_hold`] says why), and a plan led by a hold has no actions. A cordon, drain or
//! restart for a network latency on a replica whose deployment is draining a backlog it has the
//! replicas for holds too.
//!
//! How much traffic a shift moves: a step that sets `target_usage` is sized from the observed
//! load ([`size_shift`]: the saturated deployment's KV usage and queue against its peers'
//! headroom, at most `max_share` of the route) and then expects the deployment's KV usage to
//! end below halfway between `target_usage` and full, besides the step's relative decrease; a
//! step without it, or one whose deployments exposed no KV usage, moves its fixed `share`. A step
//! that also sets `min_cover` is skipped (for the next candidate) when the peers can take less
//! than that fraction of what the deployment must shed: a shift too small to relieve it.

use crate::catalog::{Catalog, EffectSpec, Selector, Step};
use crate::fleet::{Deployment, Fleet};
use opsg_core::kinds::finding::{FindingBody, IncidentClass};
use opsg_core::kinds::plan::{
    Action, ActionType, BlastRadius, ExpectedEffect, Inverse, SafetyClass,
};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// What a step is built against.
pub struct Context<'a> {
    /// The finding.
    pub finding: &'a FindingBody,
    /// The fleet.
    pub fleet: &'a Fleet,
    /// The catalog.
    pub catalog: &'a Catalog,
    /// How built steps were sized, in words, for the plan's rationale.
    pub notes: RefCell<Vec<String>>,
    /// Why the last step was not built when nothing needs doing (see [`Context::take_hold`]).
    hold: RefCell<Option<String>>,
}

/// A drain or a cordon of `node`: its parameter, the prior state its inverse restores (not
/// cordoned), and that inverse (the same action with `uncordon`).
fn mark_uncordonable(out: &mut Action, action: ActionType, node: &str) {
    out.params.insert("node".into(), json!(node));
    out.prior_state.insert("cordoned".into(), json!(false));
    out.inverse = Some(Inverse {
        action,
        params: [("node".to_string(), json!(node)), ("uncordon".to_string(), json!(true))].into(),
    });
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// Below this KV usage a receiver's headroom is estimated as if it were this full: a nearly idle
/// cache (a few short requests) says little about how much more it can take, and extrapolating
/// from 2% would promise it 35 times its traffic.
pub const USAGE_FLOOR: f64 = 0.2;

/// The share of a cleaned-up filesystem expected free afterwards.
pub const CLEANUP_MIN_FREE: f64 = 0.1;

/// Less than this share of the route is not worth a shift: the peers have no headroom.
pub const MIN_SHIFT_SHARE: f64 = 0.01;

/// A traffic shift sized from the observed load.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftSize {
    /// The share of the route's traffic to move off the saturated deployment.
    pub moved_share: f64,
    /// The share it would have to move to reach the target usage (more than `moved_share` when
    /// the peers' headroom, `max_share` or its own traffic bound the shift).
    pub needed_share: f64,
    /// Which fraction of the moved traffic each receiver takes (by its headroom; sums to 1).
    pub parts: Vec<(String, f64)>,
    /// Why this much, in words.
    pub basis: String,
}

/// Size a shift away from `d` from the observed load: how much of its traffic must go for its
/// KV demand to come down to `target_usage`, bounded by what the receivers can take before they
/// reach `target_usage` themselves, by `max_share` of the route, and by what `d` has.
///
/// The model is linear in traffic share: a deployment with KV demand `D` (usage scaled by its
/// queue, [`crate::fleet::Load::kv_demand`]) must shed `1 - target / D` of its traffic; a receiver
/// at demand `D_r` with route share `s_r` can take `s_r * (target / D_r - 1)` more. It errs on
/// the safe side when the saturation comes from the requests themselves (long contexts), since
/// the moved requests would then load the receivers more than their old share did.
///
/// `Ok(None)`: the evidence cannot size it (no KV usage observed for `d` or a receiver, or `d`'s
/// demand is already below the target: its queue is not a KV problem); the caller falls back to
/// the step's fixed `share`. `Err`: the receivers have no headroom, so a shift would only move
/// the saturation.
pub fn size_shift(
    d: &Deployment,
    receivers: &[&Deployment],
    weights: &BTreeMap<String, f64>,
    target_usage: f64,
    max_share: f64,
) -> Result<Option<ShiftSize>, String> {
    let total: f64 = weights.values().sum();
    let own = weights.get(&d.name).copied().unwrap_or(0.0);
    let Some(load) = d.load else { return Ok(None) };
    if total <= 0.0 || receivers.iter().any(|r| r.load.is_none()) {
        return Ok(None);
    }
    let demand = load.kv_demand();
    if demand <= target_usage {
        return Ok(None);
    }
    let own_share = own / total;
    let needed = (1.0 - target_usage / demand) * own_share;
    let mut room = Vec::new();
    for r in receivers {
        let share = weights.get(&r.name).copied().unwrap_or(0.0) / total;
        let r_demand = r.load.map_or(1.0, |l| l.kv_demand()).max(USAGE_FLOOR);
        room.push((r.name.clone(), share * (target_usage / r_demand - 1.0).max(0.0)));
    }
    let headroom: f64 = room.iter().map(|(_, h)| h).sum();
    let moved_share = needed.min(headroom).min(max_share).min(own_share);
    if moved_share < MIN_SHIFT_SHARE {
        return Err(format!(
            "the peers of `{}` have no KV headroom below {target_usage} to take its traffic (their room: {headroom:.3} of the route)",
            d.name
        ));
    }
    let parts = room.into_iter().map(|(n, h)| (n, h / headroom)).collect();
    let bound = if moved_share >= needed {
        "all it needs"
    } else if moved_share >= own_share {
        "all its traffic"
    } else if moved_share >= max_share {
        "the step's max_share"
    } else {
        "what the peers' KV headroom takes"
    };
    Ok(Some(ShiftSize {
        moved_share,
        needed_share: needed,
        parts,
        basis: format!(
            "shift sized from the evidence: `{}` at KV usage {:.2} with {:.0} waiting per replica (demand {:.2} of its cache) must shed {:.3} of the route to reach {target_usage}; the peers can take {:.3}; moving {:.3} ({bound})",
            d.name, load.kv_usage, load.waiting, demand, needed, headroom, moved_share
        ),
    }))
}

/// A scale-up sized from the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSize {
    /// Replicas to add; 0 is a hold: the replicas the deployment has already carry its demand
    /// (see [`size_scale`]), so the step is not built and the plan says why instead.
    pub delta: u64,
    /// Replicas the evidence says would hold the whole demand.
    pub needed: u64,
    /// Why this many, in words.
    pub basis: String,
}

/// The utilisation a scale-up sizes for: replicas busy 80% of the time leave a fifth of their
/// capacity to absorb bursts and to drain a queue that stopped growing, without the latency of a
/// fleet run at its limit.
pub const TARGET_UTILIZATION: f64 = 0.8;

/// Replicas needed for the demand, and why, from the deployment's [`Rates`]: `None` when the
/// arrival rate or a saturated replica's service rate was not observed.
///
/// The model: requests arrive at `λ` per second (completions plus the growth of what is in
/// flight, over the later half of the window, so a surge that has only begun is already sized
/// for its whole demand) and a saturated replica serves `μ` per second; `λ / (μ × 0.8)` replicas
/// carry the arrivals at [`TARGET_UTILIZATION`], and the queue growth `g` (`λ` minus what the
/// replicas serve now) over `μ` replicas more clear the backlog about as fast as it piled up.
/// Both rates come from the same clock, so their ratio holds whatever clock stamped the samples.
/// A replica with spare capacity says nothing about what it can serve (its completions are its
/// load), and `vllm:e2e_request_latency_seconds` by Little's law gives throughput at the current
/// concurrency, not capacity: without a saturated interval the caller falls back to the queue.
///
/// [`Rates`]: crate::fleet::Rates
fn demand_size(d: &Deployment, now: u64) -> Option<(u64, String)> {
    let r = d.rates?;
    let served = r.served_per_replica_s.filter(|m| m.is_finite() && *m > 0.0)?;
    let arrivals = r.arrivals_per_s;
    if !arrivals.is_finite() || arrivals <= 0.0 || !r.queue_growth_per_s.is_finite() {
        return None;
    }
    let carry = arrivals / (served * TARGET_UTILIZATION);
    let growth = r.queue_growth_per_s.max(0.0);
    let drain = growth / served;
    // A hair below an integer is that integer: 6.000000001 replicas are 6, not 7.
    let needed = ((carry + drain) - 1e-6).ceil().max(1.0) as u64;
    let mut basis = format!(
        "`{}` takes {arrivals:.1} requests/s and a saturated replica serves {served:.1}/s, so {carry:.1} replicas carry it at {:.0}% utilisation",
        d.name,
        TARGET_UTILIZATION * 100.0
    );
    if drain >= 0.05 {
        basis.push_str(&format!(
            " and {drain:.1} more clear its queue as fast as it grew ({growth:.1}/s)"
        ));
    }
    basis.push_str(&format!(": {needed} replicas for {now} now"));
    Some((needed, basis))
}

/// Replicas needed to admit the whole queue at once, by Little's law, and why: `None` without a
/// queue. A saturated replica holds `running` requests in flight, so the demand in flight,
/// `now x (running + waiting)`, needs `now x (running + waiting) / running` replicas. It overstates
/// a backlog that would drain anyway, so it is the fallback when the rates are not observed.
fn queue_size(d: &Deployment, now: u64) -> Option<(u64, String)> {
    let load = d.load?;
    if load.waiting < 1.0 {
        return None;
    }
    let per_replica = load.running.max(1.0);
    let needed = (now as f64 * (per_replica + load.waiting) / per_replica).ceil() as u64;
    let basis = format!(
        "`{}` has {:.0} waiting and {:.0} running per replica on {now}, so about {needed} replicas would admit its whole queue (no arrival or service rate observed)",
        d.name, load.waiting, load.running
    );
    Some((needed, basis))
}

/// Size a scale-up of `d` (now `now` replicas) from the evidence: from the demand (see
/// [`demand_size`]) when arrival and service rates were observed, else from the queue (see
/// [`queue_size`]). It adds at least one, at most `max_delta` (the step's bound against a
/// mismeasured demand, which the gate's blast radius bounds again) and no more than `free_gpus`
/// when the fleet state lists them.
///
/// When the demand is observed and `now` replicas already carry it, it adds none (`delta` 0, a
/// hold; see [`hold_basis`]). This is the run after a right-sized scale-up: the old replicas
/// still drain the backlog they queued (vLLM does not move queued requests to new replicas), so
/// triage still sees their queues, but more replicas would only sit idle beside the new ones
/// and the next run would add one more again, ratcheting capacity up for as long as the drain
/// lasts. The queue alone cannot say this (a queue always asks for more), so without rates the
/// scale-up is sized as before.
///
/// `Ok(None)`: neither rates nor a queue were observed, so the evidence cannot size it and the
/// caller falls back to the step's fixed `delta`. `Err`: no GPU is free, so a scale-up would be
/// refused.
pub fn size_scale(
    d: &Deployment,
    now: u64,
    max_delta: u64,
    free_gpus: Option<u64>,
) -> Result<Option<ScaleSize>, String> {
    // A hold needs no GPU, so it is decided before the free GPUs are counted.
    if let Some((needed, why)) = demand_size(d, now)
        && needed <= now
    {
        return Ok(Some(ScaleSize { delta: 0, needed, basis: hold_basis(d, now, &why) }));
    }
    if free_gpus == Some(0) {
        return Err(format!("no free GPU to add a replica of `{}` on", d.name));
    }
    let Some((needed, why)) = demand_size(d, now).or_else(|| queue_size(d, now)) else {
        return Ok(None);
    };
    let wanted = needed.saturating_sub(now).max(1);
    let mut delta = wanted.min(max_delta.max(1));
    let mut bound = if delta < wanted { "the step's max_delta" } else { "all it needs" };
    if let Some(free) = free_gpus
        && free < delta
    {
        delta = free;
        bound = "the free GPUs";
    }
    let mut basis = format!("scale-up sized from the evidence: {why}; adding {delta} ({bound})");
    if let Some(r) = d.rates
        && let Some(served) = r.served_per_replica_s.filter(|m| m.is_finite() && *m > 0.0)
        && r.waiting_end >= 1.0
        && r.replicas > 0
        && delta == wanted
    {
        // What the scale-up should achieve, when it is all the demand needs: the queue drains
        // at what the grown deployment serves beyond the arrivals, and no faster than each old
        // replica works off its own queue (a router does not move queued requests).
        let surplus = (now + delta) as f64 * served - r.arrivals_per_s;
        if surplus > 0.0 {
            let secs =
                (r.waiting_end / surplus).max(r.waiting_end / f64::from(r.replicas) / served);
            let when = if secs < 1.0 {
                "within a second".to_string()
            } else {
                format!("in about {secs:.0} s")
            };
            basis.push_str(&format!(
                "; its {:.0} waiting requests should then drain {when}",
                r.waiting_end
            ));
        }
    }
    if let Some(free) = free_gpus
        && needed > now + free
    {
        basis.push_str(&format!(
            "; even every free GPU ({free}) is short of that: this demand needs shedding or more hardware, which a person must decide"
        ));
    }
    Ok(Some(ScaleSize { delta, needed, basis }))
}

/// Why a deployment whose `now` replicas carry its demand gets no scale-up, in words: the
/// numbers (`why`, from [`demand_size`]), and its backlog with an estimate of when it is gone.
///
/// The drain estimate is the later of two bounds: what the deployment serves beyond its
/// arrivals works off the whole backlog (`waiting / (now × μ − λ)`), and each old replica works
/// off its own queue at `μ` (the longest queue over `μ`), since vLLM does not move queued
/// requests. It assumes the new replicas are serving, so a queue that still grew late in the
/// window gets no estimate, and the rationale says it grew.
fn hold_basis(d: &Deployment, now: u64, why: &str) -> String {
    let mut text = format!(
        "hold, no scale-up: {why}, so the {now} replicas `{}` has already carry its demand",
        d.name
    );
    let Some(r) = d.rates else { return text };
    let served = r.served_per_replica_s.unwrap_or(0.0);
    if r.waiting_end < 1.0 {
        text.push_str("; nothing is waiting on it");
        return text;
    }
    let busy = r.busy_replicas.max(1);
    text.push_str(&format!(
        "; its backlog, {:.0} waiting requests on {busy} replica(s) ({:.0} per replica, at most {:.0}), stays where it queued (vLLM does not move queued requests to new replicas)",
        r.waiting_end,
        r.waiting_end / f64::from(busy),
        r.waiting_end_max
    ));
    let surplus = now as f64 * served - r.arrivals_per_s;
    if r.queue_growth_per_s >= 0.05 {
        // The replicas that carry the demand on paper are not all serving (a replica added a
        // run ago may still be loading its model): no drain time to promise, but more replicas
        // would start no sooner.
        text.push_str(&format!(
            ", though its queue still grew {:.1}/s late in the window: replicas added last may not serve yet, so no drain time is promised",
            r.queue_growth_per_s
        ));
    } else if served > 0.0 && surplus > 0.0 {
        let secs = (r.waiting_end / surplus).max(r.waiting_end_max / served);
        let when = if secs < 1.0 {
            "within a second".to_string()
        } else {
            format!("in about {secs:.0} s")
        };
        text.push_str(&format!(" and should drain {when} at {served:.1}/s per replica"));
    }
    text.push_str(&format!(
        "; watch it drain, and scale up only when the demand needs more than {now} replicas"
    ));
    text
}

impl<'a> Context<'a> {
    /// A context with no notes yet.
    pub fn new(finding: &'a FindingBody, fleet: &'a Fleet, catalog: &'a Catalog) -> Context<'a> {
        Context {
            finding,
            fleet,
            catalog,
            notes: RefCell::new(Vec::new()),
            hold: RefCell::new(None),
        }
    }

    /// Take the sizing notes written so far.
    pub fn take_notes(&self) -> Vec<String> {
        self.notes.take()
    }

    /// Take the hold the last step that failed to build recorded, if it failed because nothing
    /// needs doing rather than because it cannot be done.
    pub fn take_hold(&self) -> Option<String> {
        self.hold.take()
    }

    /// Record a hold and return it as the step's error, so the step is not built.
    fn hold(&self, why: String) -> String {
        *self.hold.borrow_mut() = Some(why.clone());
        why
    }

    /// A reason to hold a node action or a restart for a network-latency finding: the affected
    /// replica has requests waiting while its deployment drains a backlog it has the replicas
    /// for (its queue shrank late in the window and its demand needs no more than it has).
    ///
    /// Regression: after a surge's scale-up, triage read the latency of an old replica still
    /// working off its backlog (above that of its new, idle peers) as a slow link, and the plan
    /// cordoned its node and restarted it, which drops the queued requests and cannot make a
    /// queue drain faster. While the deployment's queue shrinks on replicas that carry its
    /// demand, a queue on the replica is the surge's backlog and its latency is that queue's;
    /// once the queue is gone, a link that is still slow is planned for as before.
    fn draining_backlog(&self) -> Option<String> {
        if self.finding.class != IncidentClass::NetworkLatency {
            return None;
        }
        let replica = self.resolve(Selector::AffectedTarget).ok()?;
        let waiting = self.fleet.waiting_end.get(&replica).copied().filter(|w| *w >= 1.0)?;
        let d = self.fleet.deployment_of(&replica)?;
        let r = d.rates?;
        // NaN falls through to `demand_size`, which refuses it.
        if r.queue_growth_per_s > -0.05 {
            return None;
        }
        let now = self.fleet.replicas(d);
        let (needed, why) = demand_size(d, now).filter(|(needed, _)| *needed <= now)?;
        Some(format!(
            "hold, no node action or restart: `{replica}` has {waiting:.0} requests waiting while `{}` drains its backlog (its queue shrank {:.1}/s late in the window) and {needed} of its {now} replicas carry its demand ({why}); its latency is its queue's, which a cordon cannot shorten and a restart would drop; a link still slow once the queue is empty is planned for then",
            d.name, -r.queue_growth_per_s
        ))
    }

    fn note(&self, text: String) {
        self.notes.borrow_mut().push(text);
    }
    /// Resolve a selector to a target name, or say why it cannot be.
    pub fn resolve(&self, selector: Selector) -> Result<String, String> {
        let f = self.finding;
        let fleet = self.fleet;
        match selector {
            Selector::Incident => Ok("incident".into()),
            // The replica the evidence is on first (a GPU fault's finding also lists the node's
            // other replicas), else the first affected replica.
            Selector::AffectedTarget => f
                .anomalies
                .iter()
                .map(|a| &a.target)
                .find(|t| {
                    f.affected_targets.contains(*t) && fleet.replica_deployment.contains_key(*t)
                })
                .or_else(|| {
                    f.affected_targets.iter().find(|t| fleet.replica_deployment.contains_key(*t))
                })
                .cloned()
                .ok_or_else(|| "no affected target is a known replica".to_string()),
            Selector::AffectedNode => f
                .affected_targets
                .iter()
                .find_map(|t| fleet.node_of.get(t).cloned())
                .ok_or_else(|| "no affected target has a `node` label".to_string()),
            Selector::AffectedDeployment => {
                let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                for t in &f.affected_targets {
                    if let Some(d) = fleet.replica_deployment.get(t) {
                        *count.entry(d.as_str()).or_default() += 1;
                    }
                }
                count
                    .into_iter()
                    .max_by(|a, b| {
                        let wa = fleet.deployments.get(a.0).and_then(|d| d.weight).unwrap_or(0.0);
                        let wb = fleet.deployments.get(b.0).and_then(|d| d.weight).unwrap_or(0.0);
                        a.1.cmp(&b.1).then(wa.total_cmp(&wb)).then(b.0.cmp(a.0))
                    })
                    .map(|(d, _)| d.to_string())
                    .ok_or_else(|| "no affected target belongs to a known deployment".to_string())
            }
            Selector::CanaryDeployment => {
                let affected = f
                    .affected_targets
                    .iter()
                    .filter_map(|t| fleet.deployment_of(t))
                    .find(|d| d.role.as_deref() == Some("canary"));
                affected
                    .or_else(|| {
                        fleet.deployments.values().find(|d| d.role.as_deref() == Some("canary"))
                    })
                    .map(|d| d.name.clone())
                    .ok_or_else(|| "no deployment has role `canary`".to_string())
            }
            Selector::StableDeployment => fleet
                .deployments
                .values()
                .filter(|d| d.role.as_deref() != Some("canary"))
                .max_by(|a, b| a.weight.unwrap_or(0.0).total_cmp(&b.weight.unwrap_or(0.0)))
                .map(|d| d.name.clone())
                .ok_or_else(|| "no stable deployment".to_string()),
        }
    }

    fn deployment(&self, name: &str) -> Result<&Deployment, String> {
        self.fleet
            .deployments
            .get(name)
            .ok_or_else(|| format!("`{name}` is not a known deployment"))
    }

    fn effect(&self, spec: &Option<EffectSpec>, target: &str) -> Option<ExpectedEffect> {
        let spec = spec.as_ref()?;
        if spec.signal == "anomaly" {
            // The finding's first anomaly on the target (or a replica of the target deployment).
            let on_target = |t: &str| {
                t == target || self.fleet.replica_deployment.get(t).is_some_and(|d| d == target)
            };
            let a = self.finding.anomalies.iter().find(|a| on_target(&a.target))?;
            let low = a.op.starts_with('<');
            return Some(ExpectedEffect {
                signal: a.signal.clone(),
                target: a.target.clone(),
                direction: if low { "increase".into() } else { "decrease".into() },
                by_fraction: spec.by_fraction,
                below: (!low).then_some(a.threshold.0),
                above: low.then_some(a.threshold.0),
                within_s: spec.within_s,
            });
        }
        Some(ExpectedEffect {
            signal: spec.signal.clone(),
            target: target.to_string(),
            direction: spec.direction.clone(),
            by_fraction: spec.by_fraction,
            below: None,
            above: None,
            within_s: spec.within_s,
        })
    }

    fn param(
        &self,
        action: ActionType,
        params: &BTreeMap<String, f64>,
        name: &str,
    ) -> Result<f64, String> {
        let spec = self
            .catalog
            .actions
            .get(&action)
            .and_then(|a| a.params.get(name))
            .ok_or_else(|| format!("`{action}` has no parameter `{name}`"))?;
        let v = params.get(name).copied().unwrap_or(spec.default);
        if !v.is_finite() || v < spec.min || v > spec.max {
            return Err(format!("`{name}` = {v} is outside [{}, {}]", spec.min, spec.max));
        }
        Ok(v)
    }

    /// Build a catalog step.
    pub fn build_step(&self, index: u32, step: &Step) -> Result<Action, String> {
        let target = self.resolve(step.target)?;
        self.build(index, step.action, &target, &step.params, &step.effect)
    }

    /// Build an action on an explicit target (a catalog step once resolved, or the advisor's).
    pub fn build(
        &self,
        index: u32,
        action: ActionType,
        target: &str,
        params: &BTreeMap<String, f64>,
        effect: &Option<EffectSpec>,
    ) -> Result<Action, String> {
        if let Some(k) = params
            .keys()
            .find(|k| !self.catalog.actions.get(&action).is_some_and(|a| a.params.contains_key(*k)))
        {
            return Err(format!("`{action}` has no parameter `{k}`"));
        }
        let mut out = Action {
            index,
            action,
            target: target.to_string(),
            params: BTreeMap::new(),
            safety: self.catalog.safety(action),
            blast_radius: BlastRadius::default(),
            expected_effect: self.effect(effect, target),
            inverse: None,
            prior_state: BTreeMap::new(),
        };
        let fleet = self.fleet;
        if matches!(
            action,
            ActionType::CordonNode | ActionType::DrainNode | ActionType::RestartReplica
        ) && let Some(why) = self.draining_backlog()
        {
            return Err(self.hold(why));
        }
        match action {
            ActionType::ShiftTraffic => {
                let d = self.deployment(target)?;
                let peers = fleet.route_peers(d);
                let mut weights = BTreeMap::new();
                for p in &peers {
                    let w = p.weight.ok_or_else(|| {
                        format!("the weight of `{}` is unknown (label targets with `weight` or pass --fleet-state)", p.name)
                    })?;
                    weights.insert(p.name.clone(), w);
                }
                let receivers: Vec<&Deployment> = peers
                    .iter()
                    .copied()
                    .filter(|p| p.name != d.name && p.status.as_deref() != Some("drain"))
                    .collect();
                if receivers.is_empty() {
                    return Err(format!(
                        "`{}` has no active peer on route `{}` to take its traffic",
                        d.name, d.route
                    ));
                }
                let total: f64 = weights.values().sum();
                let own = weights.get(&d.name).copied().unwrap_or(0.0);
                if total <= 0.0 || own <= 0.0 {
                    return Err(format!("`{}` takes no traffic: nothing to shift", d.name));
                }
                let sized = if params.contains_key("target_usage") {
                    let target_usage = self.param(action, params, "target_usage")?;
                    let max_share = self.param(action, params, "max_share")?;
                    let size = size_shift(d, &receivers, &weights, target_usage, max_share)?;
                    if let Some(size) = &size
                        && params.contains_key("min_cover")
                    {
                        let min_cover = self.param(action, params, "min_cover")?;
                        if size.moved_share < min_cover * size.needed_share - 1e-9 {
                            return Err(format!(
                                "a shift can move only {:.3} of the {:.3} of the route `{}` must shed (below the step's min_cover {min_cover}): {}",
                                size.moved_share, size.needed_share, d.name, size.basis
                            ));
                        }
                    }
                    size
                } else {
                    None
                };
                let (moved, parts) = match sized {
                    Some(size) => {
                        self.note(size.basis);
                        // A 10% dip is not relief for a cache that was full: a sized shift is
                        // expected to leave the deployment's KV usage halfway between its
                        // target and full, as well.
                        if let Some(e) = out.expected_effect.as_mut()
                            && e.signal == "vllm:kv_cache_usage_perc"
                            && e.direction == "decrease"
                        {
                            let target_usage = self.param(action, params, "target_usage")?;
                            e.below = Some(round4((1.0 + target_usage) / 2.0));
                        }
                        (size.moved_share * total, size.parts)
                    }
                    None => {
                        let share = self.param(action, params, "share")?;
                        let moved = (share * total).min(own);
                        let recv_total: f64 = receivers
                            .iter()
                            .map(|r| weights.get(&r.name).copied().unwrap_or(0.0))
                            .sum();
                        let parts = receivers
                            .iter()
                            .map(|r| {
                                let w = weights.get(&r.name).copied().unwrap_or(0.0);
                                let part = if recv_total > 0.0 {
                                    w / recv_total
                                } else {
                                    1.0 / receivers.len() as f64
                                };
                                (r.name.clone(), part)
                            })
                            .collect();
                        (moved, parts)
                    }
                };
                // Weights keep four decimals; the last receiver takes the rounding remainder, so
                // the route's total weight is exactly what it was.
                let moved = round4(moved.min(own));
                let mut new = weights.clone();
                new.insert(d.name.clone(), round4(own - moved));
                let mut given = 0.0;
                for (i, (name, part)) in parts.iter().enumerate() {
                    let w = weights.get(name).copied().unwrap_or(0.0);
                    let add =
                        if i + 1 == parts.len() { moved - given } else { round4(moved * part) };
                    given += add;
                    new.insert(name.clone(), round4(w + add));
                }
                let moved_share = moved / total;
                if moved_share
                    > self
                        .catalog
                        .actions
                        .get(&action)
                        .and_then(|a| a.safe_max_share)
                        .unwrap_or(0.25)
                {
                    out.safety = out.safety.max(SafetyClass::Impactful);
                }
                let changed: u64 = peers.iter().map(|p| fleet.replicas(p)).sum();
                out.blast_radius =
                    BlastRadius { replicas: changed as u32, traffic_share: round4(moved_share) };
                out.params.insert("weights".into(), json!(new));
                out.params.insert("from".into(), json!(d.name));
                out.prior_state.insert("weights".into(), json!(weights));
                out.inverse = Some(Inverse {
                    action,
                    params: [("weights".to_string(), json!(weights))].into(),
                });
            }
            ActionType::SetDeploymentStatus => {
                let d = self.deployment(target)?;
                let prior = d.status.clone().unwrap_or_else(|| "active".into());
                out.params.insert("deployment".into(), json!(d.name));
                out.params.insert("status".into(), json!("drain"));
                out.prior_state.insert("status".into(), json!(prior));
                out.inverse = Some(Inverse {
                    action,
                    params: [
                        ("deployment".to_string(), json!(d.name)),
                        ("status".to_string(), json!(prior)),
                    ]
                    .into(),
                });
                out.blast_radius = BlastRadius {
                    replicas: fleet.replicas(d) as u32,
                    traffic_share: round4(fleet.traffic_share(d).unwrap_or(1.0)),
                };
            }
            ActionType::RollbackConfig => {
                let d = self.deployment(target)?;
                let cur = d
                    .config_version
                    .clone()
                    .ok_or_else(|| format!("the config version of `{}` is unknown", d.name))?;
                let prev = d
                    .previous_config_version
                    .clone()
                    .ok_or_else(|| format!("no earlier config version of `{}` is known", d.name))?;
                out.params.insert("deployment".into(), json!(d.name));
                out.params.insert("to_version".into(), prev);
                out.prior_state.insert("config_version".into(), cur.clone());
                out.inverse = Some(Inverse {
                    action,
                    params: [
                        ("deployment".to_string(), json!(d.name)),
                        ("to_version".to_string(), cur),
                    ]
                    .into(),
                });
                out.blast_radius = BlastRadius {
                    replicas: fleet.replicas(d) as u32,
                    traffic_share: round4(fleet.traffic_share(d).unwrap_or(1.0)),
                };
            }
            ActionType::RestartReplica => {
                let d = fleet
                    .deployment_of(target)
                    .ok_or_else(|| format!("`{target}` is not a known replica"))?;
                out.params.insert("replica".into(), json!(target));
                out.params.insert("deployment".into(), json!(d.name));
                out.blast_radius = BlastRadius {
                    replicas: 1,
                    traffic_share: round4(
                        fleet.traffic_share(d).unwrap_or(1.0) / fleet.replicas(d) as f64,
                    ),
                };
            }
            ActionType::ScaleReplicas => {
                let d = self.deployment(target)?;
                let mut delta = self.param(action, params, "delta")?.round() as i64;
                let now = fleet.replicas(d) as i64;
                if delta > 0 && params.contains_key("max_delta") {
                    let max_delta = self.param(action, params, "max_delta")?.round() as u64;
                    if let Some(size) = size_scale(d, now as u64, max_delta, fleet.free_gpus)? {
                        if size.delta == 0 {
                            return Err(self.hold(size.basis));
                        }
                        self.note(size.basis);
                        delta = size.delta as i64;
                    }
                }
                let to = (now + delta).max(1);
                if to == now {
                    return Err(format!("scaling `{}` by {delta} changes nothing", d.name));
                }
                if to < now {
                    out.safety = out.safety.max(SafetyClass::Impactful);
                }
                out.params.insert("deployment".into(), json!(d.name));
                out.params.insert("replicas".into(), json!(to));
                out.prior_state.insert("replicas".into(), json!(now));
                out.inverse = Some(Inverse {
                    action,
                    params: [
                        ("deployment".to_string(), json!(d.name)),
                        ("replicas".to_string(), json!(now)),
                    ]
                    .into(),
                });
                let share = fleet.traffic_share(d).unwrap_or(1.0);
                out.blast_radius = BlastRadius {
                    replicas: (to - now).unsigned_abs() as u32,
                    traffic_share: round4(
                        share * (to - now).unsigned_abs() as f64 / to.max(now) as f64,
                    ),
                };
            }
            ActionType::DrainNode => {
                if !fleet.node_of.values().any(|n| n == target) {
                    return Err(format!("`{target}` is not a known node"));
                }
                let on_node: Vec<&String> = fleet
                    .replica_deployment
                    .keys()
                    .filter(|r| fleet.node_of.get(*r).is_some_and(|n| n == target))
                    .collect();
                let share: f64 = on_node
                    .iter()
                    .filter_map(|r| fleet.deployment_of(r))
                    .map(|d| fleet.traffic_share(d).unwrap_or(0.0) / fleet.replicas(d) as f64)
                    .sum();
                mark_uncordonable(&mut out, action, target);
                out.prior_state.insert("replicas".into(), json!(on_node));
                out.blast_radius = BlastRadius {
                    replicas: on_node.len() as u32,
                    traffic_share: round4(share.min(1.0)),
                };
            }
            ActionType::CordonNode => {
                if !fleet.node_of.values().any(|n| n == target) {
                    return Err(format!("`{target}` is not a known node"));
                }
                mark_uncordonable(&mut out, action, target);
                // Nothing running stops; no new replica lands there.
                out.blast_radius = BlastRadius { replicas: 0, traffic_share: 0.0 };
            }
            ActionType::CleanupNode => {
                if !fleet.node_of.values().any(|n| n == target) {
                    return Err(format!("`{target}` is not a known node"));
                }
                out.params.insert("node".into(), json!(target));
                // Deleting logs and unused images stops no replica and moves no traffic.
                out.blast_radius = BlastRadius { replicas: 0, traffic_share: 0.0 };
                // Doubling a filesystem that had 1% free is not relief: the cleanup is also
                // expected to leave a tenth of it free (twice triage's 5% alarm).
                if let Some(e) = out.expected_effect.as_mut()
                    && e.signal == crate::catalog::FS_AVAIL_RATIO
                    && e.direction == "increase"
                {
                    e.above = Some(CLEANUP_MIN_FREE);
                }
            }
            ActionType::Escalate => {
                out.params.insert(
                    "reason".into(),
                    json!(format!("{}: no safe automatic action applies", self.finding.class)),
                );
                out.params.insert(
                    "summary".into(),
                    Value::String(opsg_advisor::sanitize(&self.finding.summary, 400)),
                );
            }
            ActionType::Noop => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Load, Rates};
    use opsg_core::kinds::finding::{FindingStatus, IncidentClass, Method};

    fn dep(name: &str, weight: f64, replicas: u64, load: Option<(f64, f64, f64)>) -> Deployment {
        Deployment {
            name: name.into(),
            route: "default".into(),
            role: Some(name.into()),
            weight: Some(weight),
            replicas: (0..replicas).map(|i| format!("{name}-{i}")).collect(),
            replica_count: Some(replicas),
            load: load.map(|(kv_usage, waiting, running)| Load {
                kv_usage,
                waiting,
                running,
                replicas: replicas as u32,
            }),
            ..Deployment::default()
        }
    }

    fn weights(ds: &[&Deployment]) -> BTreeMap<String, f64> {
        ds.iter().map(|d| (d.name.clone(), d.weight.unwrap())).collect()
    }

    fn fleet(ds: Vec<Deployment>) -> Fleet {
        let mut f = Fleet::default();
        for d in ds {
            for r in &d.replicas {
                f.replica_deployment.insert(r.clone(), d.name.clone());
                f.targets.push(r.clone());
            }
            f.deployments.insert(d.name.clone(), d);
        }
        f
    }

    fn finding(affected: &str) -> FindingBody {
        FindingBody {
            status: FindingStatus::Incident,
            class: IncidentClass::KvCacheSaturation,
            fingerprint: "f".into(),
            summary: "kv".into(),
            affected_targets: vec![affected.into()],
            first_anomalous_at: None,
            anomalies: vec![],
            hypotheses: vec![],
            telemetry: Default::default(),
            method: Method::rules(),
        }
    }

    #[test]
    fn a_saturated_canary_with_a_long_queue_sheds_nearly_all_its_traffic() {
        // Regression: a fixed fifth of the route was moved whatever the evidence said.
        let canary = dep("canary", 0.1, 1, Some((0.97, 300.0, 10.0)));
        let stable = dep("stable", 0.9, 3, Some((0.3, 0.0, 12.0)));
        let size = size_shift(&canary, &[&stable], &weights(&[&canary, &stable]), 0.7, 0.5)
            .unwrap()
            .unwrap();
        let demand = 0.97 * (1.0 + 300.0 / 10.0);
        let needed = (1.0 - 0.7 / demand) * 0.1;
        assert!((size.moved_share - needed).abs() < 1e-12, "{size:?}");
        assert!(size.moved_share > 0.097, "a long queue needs nearly everything moved");
        assert_eq!(size.parts, vec![("stable".to_string(), 1.0)]);
        assert!(size.basis.contains("all it needs"), "{}", size.basis);
    }

    #[test]
    fn a_big_deployment_moves_only_what_its_small_peer_can_take() {
        // Three saturated stable replicas cannot pour their queue onto one canary: the shift
        // stops at the canary's headroom (its near-idle cache counted at USAGE_FLOOR).
        let stable = dep("stable", 0.9, 3, Some((0.98, 1200.0, 12.0)));
        let canary = dep("canary", 0.1, 1, Some((0.03, 0.0, 1.0)));
        let size = size_shift(&stable, &[&canary], &weights(&[&stable, &canary]), 0.7, 0.5)
            .unwrap()
            .unwrap();
        let headroom = 0.1 * (0.7 / USAGE_FLOOR - 1.0);
        assert!((size.moved_share - headroom).abs() < 1e-12, "{size:?}");
        assert!(size.basis.contains("headroom"), "{}", size.basis);
        // A larger peer with room is capped by max_share instead.
        let big = dep("big", 0.9, 8, Some((0.2, 0.0, 5.0)));
        let small = dep("small", 0.1, 1, Some((0.99, 50.0, 10.0)));
        let stable = dep("stable", 0.9, 3, Some((0.98, 1200.0, 12.0)));
        let size = size_shift(&stable, &[&big], &weights(&[&stable, &big, &small]), 0.7, 0.3)
            .unwrap()
            .unwrap();
        assert_eq!(size.moved_share, 0.3, "{size:?}");
        assert!(size.basis.contains("max_share"), "{}", size.basis);
    }

    #[test]
    fn receivers_share_the_moved_traffic_by_their_headroom() {
        let hot = dep("hot", 0.5, 2, Some((0.95, 40.0, 20.0)));
        let cool = dep("cool", 0.25, 2, Some((0.2, 0.0, 5.0)));
        let warm = dep("warm", 0.25, 2, Some((0.6, 0.0, 15.0)));
        let size = size_shift(&hot, &[&cool, &warm], &weights(&[&hot, &cool, &warm]), 0.7, 1.0)
            .unwrap()
            .unwrap();
        let room_cool = 0.25 * (0.7 / 0.2 - 1.0);
        let room_warm = 0.25 * (0.7 / 0.6 - 1.0);
        let parts: BTreeMap<_, _> = size.parts.iter().cloned().collect();
        assert!((parts["cool"] - room_cool / (room_cool + room_warm)).abs() < 1e-12);
        assert!((parts.values().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(parts["cool"] > parts["warm"]);
    }

    #[test]
    fn saturated_peers_mean_no_shift_and_missing_evidence_means_the_fixed_share() {
        let a = dep("a", 0.5, 2, Some((0.97, 100.0, 20.0)));
        let b = dep("b", 0.5, 2, Some((0.9, 10.0, 20.0)));
        let e = size_shift(&a, &[&b], &weights(&[&a, &b]), 0.7, 0.5).unwrap_err();
        assert!(e.contains("no KV headroom"), "{e}");
        let blind = dep("b", 0.5, 2, None);
        assert_eq!(size_shift(&a, &[&blind], &weights(&[&a, &blind]), 0.7, 0.5), Ok(None));
        // A queue that is not a KV problem (cache half empty) is not sized from KV usage.
        let queued = dep("a", 0.5, 2, Some((0.3, 5.0, 48.0)));
        assert_eq!(size_shift(&queued, &[&b], &weights(&[&queued, &b]), 0.7, 0.5), Ok(None));
    }

    #[test]
    fn a_sized_shift_keeps_the_route_total_and_its_inverse_exact() {
        let catalog = Catalog::builtin();
        let fleet = fleet(vec![
            dep("canary", 0.1, 1, Some((0.96, 250.0, 9.0))),
            dep("stable", 0.9, 3, Some((0.33, 0.0, 14.0))),
        ]);
        let finding = finding("canary-0");
        let ctx = Context::new(&finding, &fleet, &catalog);
        let step = &catalog.candidates(IncidentClass::KvCacheSaturation)[0].steps[0];
        let a = ctx.build_step(0, step).unwrap();
        let new = a.params["weights"].as_object().unwrap();
        let total: f64 = new.values().map(|w| w.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{new:?}");
        assert!(new["canary"].as_f64().unwrap() < 0.005, "nearly all of the canary moved: {new:?}");
        assert_eq!(a.inverse.unwrap().params["weights"], json!({"canary": 0.1, "stable": 0.9}));
        assert_eq!(a.safety, SafetyClass::Safe, "a tenth of the route is within safe_max_share");
        let effect = a.expected_effect.as_ref().unwrap();
        assert_eq!((effect.by_fraction, effect.below), (Some(0.1), Some(0.85)), "{effect:?}");
        let notes = ctx.take_notes();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("sized from the evidence"), "{notes:?}");

        // The same step on a fleet without KV telemetry moves the fixed fifth.
        let blind = fleet_without_load(&fleet);
        let ctx = Context::new(&finding, &blind, &catalog);
        let a = ctx.build_step(0, step).unwrap();
        assert_eq!(a.params["weights"], json!({"canary": 0.0, "stable": 1.0}), "min(0.2, 0.1)");
        assert_eq!(a.expected_effect.unwrap().below, None, "no target to hold it to");
        assert!(ctx.take_notes().is_empty());
    }

    fn fleet_without_load(f: &Fleet) -> Fleet {
        let mut f = f.clone();
        for d in f.deployments.values_mut() {
            d.load = None;
        }
        f
    }

    #[test]
    fn a_shift_onto_saturated_peers_is_skipped_for_the_next_candidate() {
        let catalog = Catalog::builtin();
        let fleet = fleet(vec![
            dep("a", 0.5, 2, Some((0.97, 100.0, 20.0))),
            dep("b", 0.5, 2, Some((0.95, 80.0, 20.0))),
        ]);
        let finding = finding("a-0");
        let ctx = Context::new(&finding, &fleet, &catalog);
        let step = &catalog.candidates(IncidentClass::KvCacheSaturation)[0].steps[0];
        let e = ctx.build_step(0, step).unwrap_err();
        assert!(e.contains("no KV headroom"), "{e}");
    }

    #[test]
    fn a_scale_up_is_sized_from_the_queue_and_bounded() {
        // Regression: a surge added a fixed two replicas however deep the queue was, and the
        // backlog drained slower than the cron ran.
        let d = dep("stable", 0.9, 3, Some((0.98, 140.0, 45.0)));
        let size = size_scale(&d, 3, 4, None).unwrap().unwrap();
        let needed = (3.0_f64 * (45.0 + 140.0) / 45.0).ceil() as u64;
        assert_eq!((size.needed, size.delta), (needed, 4), "{size:?}");
        assert!(size.basis.contains("max_delta"), "{}", size.basis);
        // A shallow queue needs less than the bound.
        let shallow = dep("stable", 0.9, 3, Some((0.9, 10.0, 40.0)));
        let size = size_scale(&shallow, 3, 4, Some(12)).unwrap().unwrap();
        assert_eq!((size.needed, size.delta), (4, 1), "{size:?}");
        assert!(size.basis.contains("all it needs"), "{}", size.basis);
        // The free GPUs bound it too, and none free means no scale-up at all.
        let size = size_scale(&d, 3, 4, Some(2)).unwrap().unwrap();
        assert_eq!(size.delta, 2);
        assert!(size.basis.contains("free GPUs"), "{}", size.basis);
        assert!(size_scale(&d, 3, 4, Some(0)).unwrap_err().contains("no free GPU"));
        // No queue, or no load observed: the step's fixed delta.
        let idle = dep("stable", 0.9, 3, Some((0.5, 0.0, 20.0)));
        assert_eq!(size_scale(&idle, 3, 4, None), Ok(None));
        assert_eq!(size_scale(&dep("stable", 0.9, 3, None), 3, 4, None), Ok(None));
    }

    fn with_rates(
        mut d: Deployment,
        arrivals: f64,
        served: Option<f64>,
        growth: f64,
    ) -> Deployment {
        let replicas = d.replicas.len() as u32;
        let per_replica = d.load.map_or(0.0, |l| l.waiting);
        d.rates = Some(Rates {
            arrivals_per_s: arrivals,
            served_per_replica_s: served,
            queue_growth_per_s: growth,
            waiting_end: per_replica * f64::from(replicas),
            waiting_end_max: per_replica,
            busy_replicas: if per_replica >= 1.0 { replicas } else { 0 },
            replicas,
        });
        d
    }

    #[test]
    fn a_young_surge_is_sized_to_its_demand_not_its_short_queue() {
        // Regression: a 3.4x surge seen 30 s in had a short queue, so the queue alone asked for
        // one replica more (or four, once it had grown), and the fleet needed two scale-ups a
        // cron interval apart to catch up. Its arrival rate already showed the whole demand.
        let young = dep("stable", 0.9, 3, Some((0.95, 5.0, 40.0)));
        let queue_only = size_scale(&young, 3, 8, Some(12)).unwrap().unwrap();
        assert_eq!(queue_only.delta, 1, "{queue_only:?}");
        let d = with_rates(young, 36.7, Some(7.0), 15.7);
        let size = size_scale(&d, 3, 8, Some(12)).unwrap().unwrap();
        // 36.7 / (7 x 0.8) = 6.55 replicas carry it, 15.7 / 7 = 2.24 more clear the queue.
        assert_eq!((size.needed, size.delta), (9, 6), "{size:?}");
        assert!(size.basis.contains("36.7 requests/s"), "{}", size.basis);
        assert!(size.basis.contains("7.0/s"), "{}", size.basis);
        assert!(size.basis.contains("80% utilisation"), "{}", size.basis);
        assert!(size.basis.contains("as fast as it grew"), "{}", size.basis);
        assert!(size.basis.contains("all it needs"), "{}", size.basis);
        assert!(
            size.basis.contains("15 waiting requests should then drain within a second"),
            "{}",
            size.basis
        );
    }

    #[test]
    fn a_small_surge_is_not_over_provisioned() {
        // A fifth over capacity with a queue that grows slowly: two replicas, not the bound.
        let d = with_rates(dep("stable", 0.9, 3, Some((0.9, 12.0, 44.0))), 25.0, Some(7.0), 1.0);
        let size = size_scale(&d, 3, 8, Some(12)).unwrap().unwrap();
        // 25 / 5.6 = 4.46, + 1 / 7 = 0.14: 5 replicas.
        assert_eq!((size.needed, size.delta), (5, 2), "{size:?}");
        // A queue that stopped growing on a deployment with headroom: no more (it used to add
        // one anyway; see `a_draining_surge_after_a_right_sized_scale_up_holds`).
        let flat = with_rates(dep("stable", 0.9, 6, Some((0.8, 3.0, 30.0))), 20.0, Some(7.0), 0.0);
        let size = size_scale(&flat, 6, 8, None).unwrap().unwrap();
        assert_eq!((size.needed, size.delta), (4, 0), "{size:?}");
        assert!(!size.basis.contains("as fast as it grew"), "no growth to clear: {}", size.basis);
        assert!(size.basis.contains("already carry its demand"), "{}", size.basis);
        // Exactly at an integer is that integer.
        let exact = with_rates(dep("stable", 0.9, 3, Some((0.9, 5.0, 40.0))), 44.8, Some(7.0), 0.0);
        assert_eq!(size_scale(&exact, 3, 8, None).unwrap().unwrap().needed, 8);
    }

    #[test]
    fn a_demand_sized_scale_up_is_bounded_by_max_delta_and_the_free_gpus() {
        let d = with_rates(dep("stable", 0.9, 3, Some((0.98, 200.0, 40.0))), 40.0, Some(7.0), 19.0);
        let size = size_scale(&d, 3, 8, Some(12)).unwrap().unwrap();
        assert_eq!((size.needed, size.delta), (10, 7), "{size:?}");
        let size = size_scale(&d, 3, 4, Some(12)).unwrap().unwrap();
        assert_eq!(size.delta, 4);
        assert!(size.basis.contains("the step's max_delta"), "{}", size.basis);
        assert!(!size.basis.contains("should then drain"), "a bounded step promises no drain");
        let size = size_scale(&d, 3, 8, Some(3)).unwrap().unwrap();
        assert_eq!(size.delta, 3);
        assert!(size.basis.contains("the free GPUs"), "{}", size.basis);
        assert!(size.basis.contains("a person must decide"), "10 > 3 + 3: {}", size.basis);
        assert!(size_scale(&d, 3, 8, Some(0)).unwrap_err().contains("no free GPU"));
    }

    #[test]
    fn without_rates_a_scale_up_falls_back_to_the_queue() {
        let base = dep("stable", 0.9, 3, Some((0.98, 140.0, 45.0)));
        let from_queue = size_scale(&base, 3, 8, None).unwrap().unwrap();
        assert_eq!(from_queue.needed, 13, "{from_queue:?}");
        assert!(from_queue.basis.contains("no arrival or service rate"), "{}", from_queue.basis);
        // No saturated interval (no service rate), no arrivals, or figures that are not numbers:
        // the queue decides, and nothing panics or turns into NaN.
        for (arrivals, served, growth) in [
            (36.7, None, 15.7),
            (0.0, Some(7.0), 0.0),
            (36.7, Some(0.0), 15.7),
            (f64::NAN, Some(7.0), 1.0),
            (f64::INFINITY, Some(7.0), 1.0),
            (36.7, Some(f64::NAN), 1.0),
            (36.7, Some(7.0), f64::NAN),
        ] {
            let d = with_rates(base.clone(), arrivals, served, growth);
            let size = size_scale(&d, 3, 8, None).unwrap().unwrap();
            assert_eq!(size, from_queue, "{arrivals} {served:?} {growth}");
        }
        // Neither rates nor a queue: the step's fixed delta.
        let idle = with_rates(dep("stable", 0.9, 3, Some((0.5, 0.0, 20.0))), 10.0, None, 0.0);
        assert_eq!(size_scale(&idle, 3, 8, None), Ok(None));
    }

    /// A traffic surge on `stable-0` of `stable` (with a small canary beside it) and `free` GPUs.
    fn surge_on(stable: Deployment, free: u64) -> (Fleet, FindingBody) {
        let mut fleet = fleet(vec![stable, dep("canary", 0.1, 1, Some((0.4, 0.0, 14.0)))]);
        fleet.free_gpus = Some(free);
        let mut finding = finding("stable-0");
        finding.class = IncidentClass::TrafficSurge;
        (fleet, finding)
    }

    #[test]
    fn a_surge_plan_adds_what_the_demand_needs_in_one_step() {
        let catalog = Catalog::builtin();
        let stable =
            with_rates(dep("stable", 0.9, 3, Some((0.97, 60.0, 40.0))), 36.7, Some(7.0), 15.7);
        let (fleet, finding) = surge_on(stable, 12);
        let ctx = Context::new(&finding, &fleet, &catalog);
        let surge = catalog.candidates(IncidentClass::TrafficSurge);
        let scale = ctx.build_step(0, &surge[0].steps[0]).unwrap();
        assert_eq!(scale.params["replicas"], json!(9), "3 + 6 in one step");
        assert_eq!(scale.inverse.unwrap().params["replicas"], json!(3));
        assert_eq!(scale.blast_radius.replicas, 6);
        assert_eq!(scale.safety, SafetyClass::Safe);
        let effect = scale.expected_effect.unwrap();
        assert_eq!(
            (effect.signal.as_str(), effect.direction.as_str()),
            ("vllm:num_requests_waiting", "decrease")
        );
        let notes = ctx.take_notes();
        assert!(notes[0].contains("carry it at 80% utilisation"), "{notes:?}");
        // 60 waiting on each of 3 replicas, each served at 7/s: 9 s (the 9 replicas' surplus
        // over the arrivals, 26.3/s, would clear the 180 in 7 s).
        assert!(
            notes[0].contains("its 180 waiting requests should then drain in about 9 s"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_saturated_stable_scales_up_instead_of_pouring_onto_a_small_canary() {
        // Regression: the planner moved what one small canary's headroom took off three
        // saturated stable replicas, which verification then found too small to relieve them.
        let catalog = Catalog::builtin();
        let mut fleet = fleet(vec![
            dep("stable", 0.9, 3, Some((0.98, 600.0, 12.0))),
            dep("canary", 0.1, 1, Some((0.05, 0.0, 2.0))),
        ]);
        fleet.free_gpus = Some(12);
        let finding = finding("stable-0");
        let ctx = Context::new(&finding, &fleet, &catalog);
        let kv = catalog.candidates(IncidentClass::KvCacheSaturation);
        assert_eq!(kv[0].name, "kv-shift-traffic");
        let e = ctx.build_step(0, &kv[0].steps[0]).unwrap_err();
        assert!(e.contains("min_cover"), "{e}");
        ctx.take_notes();
        assert_eq!(kv[1].name, "kv-scale-up");
        let scale = ctx.build_step(0, &kv[1].steps[0]).unwrap();
        assert_eq!(scale.action, ActionType::ScaleReplicas);
        assert_eq!(scale.params["replicas"], json!(11), "3 + the step's max_delta 8");
        assert_eq!(scale.inverse.unwrap().params["replicas"], json!(3));
        let notes = ctx.take_notes();
        assert!(notes[0].contains("a person must decide"), "150 replicas > 3 + 12 free: {notes:?}");
        // A saturated canary whose peer can take all it sheds still just shifts.
        let fleet = fleet_canary_hot();
        let finding = super::tests::finding("canary-0");
        let ctx = Context::new(&finding, &fleet, &catalog);
        assert!(ctx.build_step(0, &kv[0].steps[0]).is_ok());
    }

    /// The second cron run of a surge: `stable` was scaled 3 -> 9 a run ago for 36.7 requests/s
    /// at 7/s per replica; its 3 old replicas still hold 180 queued requests (at most 62 on one)
    /// and the queue shrinks 4.5/s.
    fn draining(replicas: u64, arrivals: f64, growth: f64) -> Deployment {
        let mut d = dep("stable", 0.9, replicas, Some((0.9, 20.0, 30.0)));
        d.rates = Some(Rates {
            arrivals_per_s: arrivals,
            served_per_replica_s: Some(7.0),
            queue_growth_per_s: growth,
            waiting_end: 180.0,
            waiting_end_max: 62.0,
            busy_replicas: 3,
            replicas: replicas as u32,
        });
        d
    }

    #[test]
    fn a_draining_surge_after_a_right_sized_scale_up_holds() {
        // Regression: at the run after a right-sized scale-up (3 -> 9) the old replicas still
        // drained the backlog vLLM does not move to new replicas; triage still saw their queues
        // and the plan added one more replica at every run while the drain lasted.
        let d = draining(9, 36.7, -4.5);
        let size = size_scale(&d, 9, 8, Some(7)).unwrap().unwrap();
        // 36.7 / (7 x 0.8) = 6.55: 7 replicas carry it, 9 are there.
        assert_eq!((size.needed, size.delta), (7, 0), "{size:?}");
        for part in [
            "hold, no scale-up",
            "36.7 requests/s",
            "7 replicas for 9 now",
            "the 9 replicas `stable` has already carry its demand",
            "180 waiting requests on 3 replica(s) (60 per replica, at most 62)",
            // 62 / 7 = 8.9 s on the longest queue; the surplus, 9 x 7 - 36.7 = 26.3/s, would
            // clear the 180 in 6.8 s.
            "should drain in about 9 s at 7.0/s per replica",
        ] {
            assert!(size.basis.contains(part), "`{part}` not in: {}", size.basis);
        }
        assert!(!size.basis.contains("still grew"), "{}", size.basis);
        // No free GPU is no reason to refuse a hold, which needs none.
        assert_eq!(size_scale(&d, 9, 8, Some(0)).unwrap().unwrap().delta, 0);
        // A queue still growing is said, not hidden.
        let growing = size_scale(&draining(9, 30.0, 1.0), 9, 8, None).unwrap().unwrap();
        assert_eq!(growing.delta, 0, "{growing:?}");
        assert!(growing.basis.contains("still grew 1.0/s"), "{}", growing.basis);
        assert!(!growing.basis.contains("should drain"), "{}", growing.basis);

        // The step is not built, and the context says it is a hold, not a failure.
        let catalog = Catalog::builtin();
        let (fleet, finding) = surge_on(d, 7);
        let ctx = Context::new(&finding, &fleet, &catalog);
        let surge = catalog.candidates(IncidentClass::TrafficSurge);
        let e = ctx.build_step(0, &surge[0].steps[0]).unwrap_err();
        assert!(e.starts_with("hold, no scale-up"), "{e}");
        assert_eq!(ctx.take_hold().as_deref(), Some(e.as_str()));
        assert!(ctx.take_notes().is_empty());
        // A refusal for another reason is no hold.
        let blind = fleet_without_load(&fleet);
        let ctx = Context::new(&finding, &blind, &catalog);
        let mut bad = surge[0].steps[0].clone();
        bad.params.insert("delta".into(), 99.0);
        assert!(ctx.build_step(0, &bad).is_err());
        assert_eq!(ctx.take_hold(), None);
    }

    #[test]
    fn demand_beyond_the_replicas_there_still_scales_up_by_the_remainder() {
        // 60 requests/s at 7/s: 10.7 replicas carry it, 7 / 7 = 1 more clears the queue's
        // growth: 12 needed, 9 there.
        let d = draining(9, 60.0, 7.0);
        let size = size_scale(&d, 9, 8, Some(12)).unwrap().unwrap();
        assert_eq!((size.needed, size.delta), (12, 3), "{size:?}");
        assert!(size.basis.contains("all it needs"), "{}", size.basis);
        assert!(!size.basis.contains("hold"), "{}", size.basis);
        // Bounded by max_delta and by the free GPUs as before, and refused with none free.
        assert_eq!(size_scale(&d, 9, 2, Some(12)).unwrap().unwrap().delta, 2);
        assert_eq!(size_scale(&d, 9, 8, Some(1)).unwrap().unwrap().delta, 1);
        assert!(size_scale(&d, 9, 8, Some(0)).unwrap_err().contains("no free GPU"));
        // One replica short is one more, not a hold.
        let size = size_scale(&draining(9, 51.0, 0.0), 9, 8, None).unwrap().unwrap();
        assert_eq!((size.needed, size.delta), (10, 1), "{size:?}");
        // Without rates a queue is sized as before, however many replicas there are.
        let mut blind = draining(9, 36.7, -4.5);
        blind.rates = None;
        let size = size_scale(&blind, 9, 8, None).unwrap().unwrap();
        assert!(size.delta >= 1 && size.basis.contains("no arrival or service rate"), "{size:?}");
    }

    fn network_finding(replica: &str) -> FindingBody {
        let mut f = finding(replica);
        f.class = IncidentClass::NetworkLatency;
        f
    }

    fn on_nodes(mut f: Fleet) -> Fleet {
        let replicas: Vec<String> = f.replica_deployment.keys().cloned().collect();
        for (i, r) in replicas.iter().enumerate() {
            f.node_of.insert(r.clone(), format!("node-{}", i % 4));
        }
        f
    }

    #[test]
    fn a_slow_replica_draining_a_surge_backlog_is_not_cordoned_or_restarted() {
        // Regression: after a surge's scale-up an old replica still draining its backlog ran
        // at a higher inter-token latency than its new, idle peers; triage read it as a slow
        // link and the plan cordoned its node and restarted it, dropping the queued requests.
        let catalog = Catalog::builtin();
        let steps = &catalog.candidates(IncidentClass::NetworkLatency)[0].steps;
        assert_eq!(
            (steps[0].action, steps[1].action),
            (ActionType::CordonNode, ActionType::RestartReplica)
        );
        let mut f = on_nodes(fleet(vec![draining(9, 36.7, -4.5)]));
        f.waiting_end.insert("stable-0".into(), 62.0);
        let finding = network_finding("stable-0");
        let ctx = Context::new(&finding, &f, &catalog);
        for step in steps {
            let e = ctx.build_step(0, step).unwrap_err();
            assert!(e.starts_with("hold, no node action or restart"), "{e}");
            for part in
                ["`stable-0` has 62 requests waiting", "shrank 4.5/s", "7 of its 9 replicas"]
            {
                assert!(e.contains(part), "`{part}` not in: {e}");
            }
            assert!(ctx.take_hold().is_some());
        }
        // A drain of the node holds as well.
        let drain = &catalog.candidates(IncidentClass::NetworkLatency)[1].steps[0];
        assert_eq!(drain.action, ActionType::DrainNode);
        assert!(ctx.build_step(0, drain).is_err() && ctx.take_hold().is_some());

        // The evidence must say it is a draining backlog, else the link is planned for.
        let mut cases: Vec<(&str, Fleet)> = Vec::new();
        let mut empty = f.clone();
        empty.waiting_end.insert("stable-0".into(), 0.0);
        cases.push(("nothing waiting on it", empty));
        let mut steady = on_nodes(fleet(vec![draining(9, 36.7, 0.0)]));
        steady.waiting_end.insert("stable-0".into(), 62.0);
        cases.push(("a queue that does not shrink", steady));
        let mut short = on_nodes(fleet(vec![draining(5, 36.7, -4.5)]));
        short.waiting_end.insert("stable-0".into(), 62.0);
        cases.push(("fewer replicas than the demand needs", short));
        let mut blind = f.clone();
        blind.deployments.get_mut("stable").unwrap().rates = None;
        cases.push(("no rates", blind));
        for (what, fleet) in &cases {
            let ctx = Context::new(&finding, fleet, &catalog);
            let a = ctx.build_step(0, &steps[0]);
            assert_eq!(a.map(|a| a.action), Ok(ActionType::CordonNode), "{what}");
            assert_eq!(ctx.take_hold(), None, "{what}");
        }
        // Another class's node action is not second-guessed: a GPU fault is hardware evidence.
        let mut gpu = finding.clone();
        gpu.class = IncidentClass::GpuFault;
        let ctx = Context::new(&gpu, &f, &catalog);
        assert!(ctx.build_step(0, &steps[0]).is_ok());
    }

    fn fleet_canary_hot() -> Fleet {
        fleet(vec![
            dep("canary", 0.1, 1, Some((0.97, 200.0, 10.0))),
            dep("stable", 0.9, 3, Some((0.3, 0.0, 12.0))),
        ])
    }
}

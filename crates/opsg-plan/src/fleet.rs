//! What the planner knows about the fleet: deployments, their weights, versions and replicas.
//!
//! Two sources, merged: the labels of the observation's targets (`deployment`, `role`, `node`,
//! `route`, `weight`, `replicas`, `config_version`, `previous_config_version`, `status`), and,
//! when given, `--fleet-state FILE`: a `GET /state` snapshot of the fleet's admin API (opsg-sim's
//! shape: `deployments.<name>.{weight,status,config_version,config_history,replicas}` and
//! `replicas.<name>.{deployment,node}`). The snapshot wins where both say something. The prior
//! state a plan records is what was known at plan time; opsg-exec captures it again right
//! before acting, so an inverse restores what was really there.
//!
//! The observation also says how loaded each deployment is ([`Load`]: KV cache usage, queued and
//! running requests, averaged over the window and the deployment's replicas) and how fast work
//! arrives and is served ([`Rates`], from the `vllm:request_success_total` counters and the queue
//! gauges); a traffic shift is sized from the first, a scale-up from both (see `build`).

use opsg_core::kinds::observation::{ObservationBody, TargetObservation};
use serde_json::Value;
use std::collections::BTreeMap;

/// One deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    /// Its name.
    pub name: String,
    /// The route (router) it takes traffic from (`default` when unlabelled).
    pub route: String,
    /// `canary` or `stable` (from the `role` label), when known.
    pub role: Option<String>,
    /// Router weight, when known.
    pub weight: Option<f64>,
    /// `active` / `drain`, when known.
    pub status: Option<String>,
    /// Current config version, when known.
    pub config_version: Option<Value>,
    /// The version before it, when known.
    pub previous_config_version: Option<Value>,
    /// Replica names.
    pub replicas: Vec<String>,
    /// Replica count (label or snapshot), else the number of replicas seen.
    pub replica_count: Option<u64>,
    /// How loaded it was over the observation window, when its replicas exposed KV usage.
    pub load: Option<Load>,
    /// How fast requests arrived and were served, when its replicas exposed the counters.
    pub rates: Option<Rates>,
}

/// A deployment's load over the observation window: each of its replicas' series averaged over
/// the window (one dip after a preemption does not make a saturated cache look free), then
/// averaged over the replicas that reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// `vllm:kv_cache_usage_perc`, 0..=1.
    pub kv_usage: f64,
    /// `vllm:num_requests_waiting` per replica (0 when not exposed).
    pub waiting: f64,
    /// `vllm:num_requests_running` per replica (0 when not exposed).
    pub running: f64,
    /// Replicas that reported KV usage.
    pub replicas: u32,
}

impl Load {
    /// The KV demand in units of the deployment's own KV capacity: its usage, scaled up by the
    /// queue behind it (a queued request needs about as much cache as a running one once
    /// admitted). 1.0 is a full cache with nothing waiting; 3.0 means three times what it holds.
    pub fn kv_demand(&self) -> f64 {
        self.kv_usage * (1.0 + self.waiting / self.running.max(1.0))
    }
}

/// How fast requests arrive at a deployment and how fast one of its replicas serves them, from
/// the observation window. Rates are per second of the observation's clock (its sample
/// timestamps); a scale-up is sized from their ratio, which does not depend on that clock.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Requests arriving at the whole deployment per second over the later half of the window:
    /// every request that finished (any `finished_reason`) plus the growth of its replicas'
    /// running and waiting requests. Early in a surge the queue is short but this is already
    /// the whole demand.
    pub arrivals_per_s: f64,
    /// Requests one replica completes per second while it is saturated (requests waiting at both
    /// ends of a sampling interval), `abort` and `error` not counted: its service capacity.
    /// `None` when no replica was saturated in any interval, since the completions of a replica
    /// with spare capacity show its load, not what it can do.
    pub served_per_replica_s: Option<f64>,
    /// Growth of the deployment's running and waiting requests per second over the later half of
    /// the window (negative while the queue drains): how fast the backlog piles up.
    pub queue_growth_per_s: f64,
    /// Requests waiting on the deployment's replicas at the end of the window, summed.
    pub waiting_end: f64,
    /// The longest of those queues: after a scale-up each old replica drains its own (vLLM
    /// does not move queued requests), so the longest says when the backlog is gone.
    pub waiting_end_max: f64,
    /// Replicas with a request waiting at the end of the window.
    pub busy_replicas: u32,
    /// Replicas whose counters and gauges the rates come from.
    pub replicas: u32,
}

/// Finished reasons that are not work done: a client that gave up, a request that failed.
const NOT_SERVED: [&str; 2] = ["abort", "error"];

/// One replica's contribution to its deployment's [`Rates`].
#[derive(Debug, Default)]
struct ReplicaRates {
    /// (finished requests, seconds) over the later half of the window.
    late_finished: f64,
    late_secs: f64,
    /// Growth of running + waiting over the later half.
    late_growth: f64,
    /// (served requests, seconds) over the intervals it was saturated.
    saturated_served: f64,
    saturated_secs: f64,
    /// Waiting at the last sample.
    waiting_end: f64,
}

/// A counter's increase between two samples, a reset (the value went down: a restart) counting
/// the new value as the increase, as PromQL's `increase` does.
fn counter_increase(before: f64, after: f64) -> f64 {
    if after >= before { after - before } else { after }
}

/// The finite, non-negative points of a target's gauge `name`, summed over label sets per
/// sample time.
fn summed(t: &TargetObservation, name: &str) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    for s in t.series.iter().filter(|s| s.name == name) {
        for p in &s.points {
            if let Some(v) = p.v.map(|v| v.0).filter(|v| v.is_finite() && *v >= 0.0) {
                *out.entry(p.t).or_insert(0.0) += v;
            }
        }
    }
    out
}

/// A target's counter series `name`: each label set's points by time, and whether it counts as
/// work served.
fn counters(t: &TargetObservation, name: &str) -> Vec<(bool, BTreeMap<i64, f64>)> {
    t.series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let reason = s.labels.get("finished_reason").map_or("", String::as_str);
            let points = s
                .points
                .iter()
                .filter_map(|p| p.v.map(|v| (p.t, v.0)))
                .filter(|(_, v)| v.is_finite() && *v >= 0.0)
                .collect();
            (!NOT_SERVED.contains(&reason), points)
        })
        .collect()
}

/// A replica's rates, or `None` when it did not expose the completions counter and both queue
/// gauges at two sample times at least.
fn replica_rates(t: &TargetObservation) -> Option<ReplicaRates> {
    let finished = counters(t, "vllm:request_success_total");
    let waiting = summed(t, "vllm:num_requests_waiting");
    let running = summed(t, "vllm:num_requests_running");
    let times: Vec<i64> = waiting
        .keys()
        .copied()
        .filter(|k| running.contains_key(k) && finished.iter().any(|(_, c)| c.contains_key(k)))
        .collect();
    if times.len() < 2 {
        return None;
    }
    // Requests finished between two sample times (all of them, or only those served), summed
    // over the label sets sampled at both.
    let done = |a: i64, b: i64, served_only: bool| -> f64 {
        finished
            .iter()
            .filter(|(served, _)| *served || !served_only)
            .filter_map(|(_, c)| Some(counter_increase(*c.get(&a)?, *c.get(&b)?)))
            .sum()
    };
    let in_flight = |k: i64| waiting[&k] + running[&k];
    let mut out = ReplicaRates { waiting_end: waiting[times.last()?], ..ReplicaRates::default() };
    let intervals: Vec<(i64, i64)> = times.windows(2).map(|w| (w[0], w[1])).collect();
    // The later half of the intervals (at least one): the demand now, not as it was before a
    // surge began.
    let late = &intervals[intervals.len() / 2..];
    for &(a, b) in late {
        out.late_finished += done(a, b, false);
        out.late_secs += (b - a) as f64 / 1000.0;
    }
    if let (Some(&(a, _)), Some(&(_, b))) = (late.first(), late.last()) {
        out.late_growth = in_flight(b) - in_flight(a);
    }
    for &(a, b) in &intervals {
        if waiting[&a] >= 1.0 && waiting[&b] >= 1.0 {
            out.saturated_served += done(a, b, true);
            out.saturated_secs += (b - a) as f64 / 1000.0;
        }
    }
    (out.late_secs > 0.0).then_some(out)
}

/// Every deployment's [`Rates`] from the observation's `deployment`-labelled targets.
fn rates(obs: &ObservationBody) -> BTreeMap<String, Rates> {
    let mut parts: BTreeMap<String, Vec<ReplicaRates>> = BTreeMap::new();
    for t in &obs.targets {
        let Some(dep) = t.labels.get("deployment") else { continue };
        if let Some(r) = replica_rates(t) {
            parts.entry(dep.clone()).or_default().push(r);
        }
    }
    parts
        .into_iter()
        .map(|(dep, rs)| {
            let arrivals: f64 =
                rs.iter().map(|r| ((r.late_finished + r.late_growth) / r.late_secs).max(0.0)).sum();
            let growth: f64 = rs.iter().map(|r| r.late_growth / r.late_secs).sum();
            let (served, secs) = rs
                .iter()
                .fold((0.0, 0.0), |(n, s), r| (n + r.saturated_served, s + r.saturated_secs));
            let rates = Rates {
                arrivals_per_s: arrivals,
                served_per_replica_s: (secs > 0.0 && served > 0.0).then(|| served / secs),
                queue_growth_per_s: growth,
                waiting_end: rs.iter().map(|r| r.waiting_end).sum(),
                waiting_end_max: rs.iter().map(|r| r.waiting_end).fold(0.0, f64::max),
                busy_replicas: rs.iter().filter(|r| r.waiting_end >= 1.0).count() as u32,
                replicas: rs.len() as u32,
            };
            (dep, rates)
        })
        .collect()
}

/// The window mean of a target's series `name` (finite points only).
fn window_mean(t: &TargetObservation, name: &str) -> Option<f64> {
    let values: Vec<f64> = t
        .series
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.points.iter().filter_map(|p| p.v.map(|v| v.0)))
        .filter(|v| v.is_finite())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Every deployment's [`Load`] from the observation's `deployment`-labelled targets.
fn loads(obs: &ObservationBody) -> BTreeMap<String, Load> {
    let mut sums: BTreeMap<String, Load> = BTreeMap::new();
    for t in &obs.targets {
        let Some(dep) = t.labels.get("deployment") else { continue };
        let Some(kv) = window_mean(t, "vllm:kv_cache_usage_perc") else { continue };
        let l = sums.entry(dep.clone()).or_default();
        l.kv_usage += kv.clamp(0.0, 1.0);
        l.waiting += window_mean(t, "vllm:num_requests_waiting").unwrap_or(0.0).max(0.0);
        l.running += window_mean(t, "vllm:num_requests_running").unwrap_or(0.0).max(0.0);
        l.replicas += 1;
    }
    for l in sums.values_mut() {
        let n = f64::from(l.replicas);
        l.kv_usage /= n;
        l.waiting /= n;
        l.running /= n;
    }
    sums
}

/// The fleet.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Deployments by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Replica → deployment.
    pub replica_deployment: BTreeMap<String, String>,
    /// Target (replica or exporter) → node.
    pub node_of: BTreeMap<String, String>,
    /// Every target name observed.
    pub targets: Vec<String>,
    /// GPUs a new replica could be placed on (free, not lost, on an uncordoned node), when a
    /// `GET /state` snapshot lists the nodes' GPUs: a scale-up beyond it would be refused.
    pub free_gpus: Option<u64>,
    /// Replica → requests waiting on it at the observation window's last sample, for the
    /// replicas that exposed `vllm:num_requests_waiting`. vLLM does not move queued requests
    /// between replicas, so after a scale-up each old replica drains its own backlog: this is
    /// what tells a replica still draining from one whose deployment is short of capacity.
    pub waiting_end: BTreeMap<String, f64>,
}

fn version_value(text: &str) -> Value {
    match text.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(text),
    }
}

impl Fleet {
    /// The fleet as the observation's labels describe it.
    pub fn from_observation(obs: Option<&ObservationBody>) -> Fleet {
        let mut fleet = Fleet::default();
        let Some(obs) = obs else { return fleet };
        for t in &obs.targets {
            fleet.targets.push(t.name.clone());
            if let Some(node) = t.labels.get("node") {
                fleet.node_of.insert(t.name.clone(), node.clone());
            }
            if let Some((_, &w)) = summed(t, "vllm:num_requests_waiting").last_key_value() {
                fleet.waiting_end.insert(t.name.clone(), w);
            }
            let Some(dep) = t.labels.get("deployment") else { continue };
            fleet.replica_deployment.insert(t.name.clone(), dep.clone());
            let d = fleet.deployments.entry(dep.clone()).or_insert_with(|| Deployment {
                name: dep.clone(),
                route: "default".into(),
                ..Deployment::default()
            });
            d.replicas.push(t.name.clone());
            let l = |k: &str| t.labels.get(k);
            if let Some(v) = l("route") {
                d.route = v.clone();
            }
            if let Some(v) = l("role") {
                d.role = Some(v.clone());
            }
            if let Some(w) = l("weight")
                .and_then(|w| w.parse::<f64>().ok())
                .filter(|w| w.is_finite() && *w >= 0.0)
            {
                d.weight = Some(w);
            }
            if let Some(v) = l("status") {
                d.status = Some(v.clone());
            }
            if let Some(v) = l("config_version") {
                d.config_version = Some(version_value(v));
            }
            if let Some(v) = l("previous_config_version") {
                d.previous_config_version = Some(version_value(v));
            }
            if let Some(n) = l("replicas").and_then(|n| n.parse::<u64>().ok()) {
                d.replica_count = Some(n);
            }
        }
        for (name, load) in loads(obs) {
            if let Some(d) = fleet.deployments.get_mut(&name) {
                d.load = Some(load);
            }
        }
        for (name, rates) in rates(obs) {
            if let Some(d) = fleet.deployments.get_mut(&name) {
                d.rates = Some(rates);
            }
        }
        fleet
    }

    /// Overlay a `GET /state` snapshot.
    pub fn overlay_state(&mut self, state: &Value) {
        if let Some(deps) = state.get("deployments").and_then(Value::as_object) {
            for (name, d) in deps {
                let entry = self.deployments.entry(name.clone()).or_insert_with(|| Deployment {
                    name: name.clone(),
                    route: "default".into(),
                    ..Deployment::default()
                });
                if let Some(w) = d.get("weight").and_then(Value::as_f64) {
                    entry.weight = Some(w);
                }
                if let Some(s) = d.get("status").and_then(Value::as_str) {
                    entry.status = Some(s.to_string());
                }
                if let Some(v) = d.get("config_version").filter(|v| v.is_u64() || v.is_string()) {
                    entry.config_version = Some(v.clone());
                    if let Some(n) = v.as_u64() {
                        let history = d.get("config_history").and_then(Value::as_array);
                        let has_prev = history.is_some_and(|h| {
                            h.iter().any(|c| {
                                c.get("version").and_then(Value::as_u64)
                                    == Some(n.saturating_sub(1))
                            })
                        });
                        if n > 1 && has_prev {
                            entry.previous_config_version = Some(Value::from(n - 1));
                        }
                    }
                }
                if let Some(reps) = d.get("replicas").and_then(Value::as_array) {
                    let names: Vec<String> =
                        reps.iter().filter_map(|r| r.as_str().map(str::to_string)).collect();
                    entry.replica_count = Some(names.len() as u64);
                    for r in &names {
                        self.replica_deployment.insert(r.clone(), name.clone());
                        if !entry.replicas.contains(r) {
                            entry.replicas.push(r.clone());
                        }
                    }
                }
                if entry.role.is_none() && (name == "canary" || name == "stable") {
                    entry.role = Some(name.clone());
                }
            }
        }
        if let Some(nodes) = state.get("nodes").and_then(Value::as_object)
            && nodes.values().any(|n| n.get("gpus").is_some_and(Value::is_array))
        {
            let free = nodes
                .values()
                .filter(|n| n.get("cordoned").and_then(Value::as_bool) != Some(true))
                .flat_map(|n| n.get("gpus").and_then(Value::as_array).into_iter().flatten())
                .filter(|g| g.get("replica").is_some_and(Value::is_null))
                .filter(|g| g.get("lost").and_then(Value::as_bool) != Some(true))
                .count();
            self.free_gpus = Some(free as u64);
        }
        if let Some(reps) = state.get("replicas").and_then(Value::as_object) {
            for (name, r) in reps {
                if let Some(node) = r.get("node").and_then(Value::as_str) {
                    self.node_of.insert(name.clone(), node.to_string());
                }
            }
        }
    }

    /// The deployment a target belongs to.
    pub fn deployment_of(&self, target: &str) -> Option<&Deployment> {
        self.replica_deployment.get(target).and_then(|d| self.deployments.get(d))
    }

    /// Deployments on the same route as `d`, including it.
    pub fn route_peers(&self, d: &Deployment) -> Vec<&Deployment> {
        self.deployments.values().filter(|x| x.route == d.route).collect()
    }

    /// The share of its route's traffic a deployment takes (weight over the route's total).
    pub fn traffic_share(&self, d: &Deployment) -> Option<f64> {
        let total: f64 = self.route_peers(d).iter().map(|x| x.weight.unwrap_or(0.0)).sum();
        let w = d.weight?;
        (total > 0.0).then(|| w / total)
    }

    /// The replica count of a deployment.
    pub fn replicas(&self, d: &Deployment) -> u64 {
        d.replica_count.unwrap_or(d.replicas.len() as u64).max(d.replicas.len() as u64).max(1)
    }

    /// Is the name a known target, deployment or node?
    pub fn knows(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
            || self.deployments.contains_key(name)
            || self.node_of.values().any(|n| n == name)
            || self.replica_deployment.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(name: &str, dep: &str, kv: &[f64], waiting: &[f64], running: &[f64]) -> Value {
        let series = |n: &str, vs: &[f64]| {
            json!({"name": n, "type": "gauge", "labels": {},
                   "points": vs.iter().enumerate().map(|(i, v)| json!({"t": i as i64 * 1000, "v": v})).collect::<Vec<_>>()})
        };
        json!({"name": name, "source": "http://x/metrics", "labels": {"deployment": dep},
               "status": "up", "samples": [],
               "series": [series("vllm:kv_cache_usage_perc", kv), series("vllm:num_requests_waiting", waiting),
                          series("vllm:num_requests_running", running)]})
    }

    #[test]
    fn load_is_the_window_mean_over_replicas() {
        let obs: ObservationBody = serde_json::from_value(json!({
            "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"},
            "interval_s": 15.0,
            "targets": [
                target("s-0", "stable", &[0.9, 1.0], &[10.0, 30.0], &[10.0, 10.0]),
                target("s-1", "stable", &[0.8, 0.9], &[0.0, 0.0], &[20.0, 20.0]),
                {"name": "c-0", "source": "http://y/metrics", "labels": {"deployment": "canary"}, "status": "down", "samples": [], "series": []}
            ]
        }))
        .unwrap();
        let fleet = Fleet::from_observation(Some(&obs));
        let l = fleet.deployments["stable"].load.unwrap();
        assert!((l.kv_usage - 0.9).abs() < 1e-12, "{l:?}");
        assert!((l.waiting - 10.0).abs() < 1e-12 && (l.running - 15.0).abs() < 1e-12, "{l:?}");
        assert_eq!(l.replicas, 2);
        assert!((l.kv_demand() - 0.9 * (1.0 + 10.0 / 15.0)).abs() < 1e-12);
        assert_eq!(fleet.deployments["canary"].load, None, "a down replica says nothing");
    }

    fn counter(reason: &str, vs: &[f64]) -> Value {
        json!({"name": "vllm:request_success_total", "type": "counter",
               "labels": {"finished_reason": reason},
               "points": vs.iter().enumerate().map(|(i, v)| json!({"t": i as i64 * 1000, "v": v})).collect::<Vec<_>>()})
    }

    fn with_counters(mut t: Value, counters: Vec<Value>) -> Value {
        t["series"].as_array_mut().unwrap().extend(counters);
        t
    }

    fn observe(targets: Vec<Value>) -> Fleet {
        let obs: ObservationBody = serde_json::from_value(json!({
            "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:04Z"},
            "interval_s": 1.0, "targets": targets
        }))
        .unwrap();
        Fleet::from_observation(Some(&obs))
    }

    #[test]
    fn rates_are_arrivals_now_and_service_while_saturated() {
        let kv = [0.9; 5];
        let run = [10.0; 5];
        // Four 1 s intervals: 10 served per second, the queue growing by 1 per second.
        let a = with_counters(
            target("s-0", "stable", &kv, &[5.0, 6.0, 7.0, 8.0, 9.0], &run),
            vec![
                counter("stop", &[0.0, 8.0, 16.0, 24.0, 32.0]),
                counter("length", &[0.0, 2.0, 4.0, 6.0, 8.0]),
                counter("abort", &[0.0, 0.0, 0.0, 1.0, 2.0]),
            ],
        );
        // Restarted between the second and third samples (the counter went down): the new
        // value is the increase, as PromQL counts it. No queue: it says nothing about capacity.
        let b = with_counters(
            target("s-1", "stable", &kv, &[0.0; 5], &run),
            vec![counter("stop", &[100.0, 110.0, 5.0, 15.0, 25.0])],
        );
        let r = observe(vec![a, b]).deployments["stable"].rates.unwrap();
        // Later half: s-0 finished 22 and grew by 2 over 2 s (12/s); s-1 finished 20 (10/s).
        assert!((r.arrivals_per_s - 22.0).abs() < 1e-9, "{r:?}");
        assert!((r.queue_growth_per_s - 1.0).abs() < 1e-9, "{r:?}");
        // Only s-0 was saturated: 40 served (the aborts are not work) over 4 s.
        assert_eq!(r.served_per_replica_s, Some(10.0), "{r:?}");
        assert_eq!((r.waiting_end, r.replicas), (9.0, 2));
        assert_eq!((r.waiting_end_max, r.busy_replicas), (9.0, 1), "s-1 has no queue");
    }

    #[test]
    fn absent_or_idle_counters_give_no_service_rate_and_no_panic() {
        let kv = [0.5; 5];
        let run = [4.0; 5];
        // No completions counter at all: no rates.
        let bare = observe(vec![target("s-0", "stable", &kv, &[0.0; 5], &run)]);
        assert_eq!(bare.deployments["stable"].rates, None);
        // Counters that never move and no queue: nothing arrived, nothing known about capacity.
        let idle = observe(vec![with_counters(
            target("s-0", "stable", &kv, &[0.0; 5], &run),
            vec![counter("stop", &[0.0; 5])],
        )]);
        let r = idle.deployments["stable"].rates.unwrap();
        assert_eq!((r.arrivals_per_s, r.served_per_replica_s), (0.0, None));
        // One sample only: no interval to measure.
        let one = observe(vec![with_counters(
            target("s-0", "stable", &[0.9], &[3.0], &[4.0]),
            vec![counter("stop", &[7.0])],
        )]);
        assert_eq!(one.deployments["stable"].rates, None);
        // Non-finite samples are skipped, not summed into NaN.
        let odd = observe(vec![with_counters(
            target("s-0", "stable", &kv, &[2.0; 5], &run),
            vec![
                counter("stop", &[0.0, 5.0, 10.0, 15.0, 20.0]),
                counter("error", &[-1.0, -1.0, -1.0, -1.0, -1.0]),
            ],
        )]);
        let r = odd.deployments["stable"].rates.unwrap();
        assert!(r.arrivals_per_s.is_finite() && r.served_per_replica_s == Some(5.0), "{r:?}");
    }

    #[test]
    fn free_gpus_count_only_empty_healthy_gpus_on_schedulable_nodes() {
        let mut f = Fleet::default();
        f.overlay_state(&serde_json::json!({"nodes": {
            "a": {"cordoned": false, "gpus": [
                {"replica": "stable-0", "lost": false}, {"replica": null, "lost": false},
                {"replica": null, "lost": true}]},
            "b": {"cordoned": true, "gpus": [{"replica": null, "lost": false}]}
        }}));
        assert_eq!(f.free_gpus, Some(1));
        let mut blind = Fleet::default();
        blind.overlay_state(&serde_json::json!({"deployments": {}}));
        assert_eq!(blind.free_gpus, None, "no node list: unknown, not zero");
    }
}

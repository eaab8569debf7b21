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
//! running requests, averaged over the window and the deployment's replicas); a traffic shift is
//! sized from it (see `build`).

use opsg_core::kinds::observation::ObservationBody;
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

/// The window mean of a target's series `name` (finite points only).
fn window_mean(t: &opsg_core::kinds::observation::TargetObservation, name: &str) -> Option<f64> {
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

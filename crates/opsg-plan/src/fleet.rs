//! What the planner knows about the fleet: deployments, their weights, versions and replicas.
//!
//! Two sources, merged: the labels of the observation's targets (`deployment`, `role`, `node`,
//! `route`, `weight`, `replicas`, `config_version`, `previous_config_version`, `status`), and,
//! when given, `--fleet-state FILE`: a `GET /state` snapshot of the fleet's admin API (opsg-sim's
//! shape: `deployments.<name>.{weight,status,config_version,config_history,replicas}` and
//! `replicas.<name>.{deployment,node}`). The snapshot wins where both say something. The prior
//! state a plan records is what was known at plan time; opsg-exec captures it again right
//! before acting, so an inverse restores what was really there.

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

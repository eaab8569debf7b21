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
//! | `escalate` | `reason`, `summary` | none |

use crate::catalog::{Catalog, EffectSpec, Selector, Step};
use crate::fleet::{Deployment, Fleet};
use opsg_core::kinds::finding::FindingBody;
use opsg_core::kinds::plan::{
    Action, ActionType, BlastRadius, ExpectedEffect, Inverse, SafetyClass,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What a step is built against.
pub struct Context<'a> {
    /// The finding.
    pub finding: &'a FindingBody,
    /// The fleet.
    pub fleet: &'a Fleet,
    /// The catalog.
    pub catalog: &'a Catalog,
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

impl Context<'_> {
    /// Resolve a selector to a target name, or say why it cannot be.
    pub fn resolve(&self, selector: Selector) -> Result<String, String> {
        let f = self.finding;
        let fleet = self.fleet;
        match selector {
            Selector::Incident => Ok("incident".into()),
            Selector::AffectedTarget => f
                .affected_targets
                .iter()
                .find(|t| fleet.replica_deployment.contains_key(*t))
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
        match action {
            ActionType::ShiftTraffic => {
                let share = self.param(action, params, "share")?;
                let d = self.deployment(target)?;
                let peers = fleet.route_peers(d);
                let mut weights = BTreeMap::new();
                for p in &peers {
                    let w = p.weight.ok_or_else(|| {
                        format!("the weight of `{}` is unknown (label targets with `weight` or pass --fleet-state)", p.name)
                    })?;
                    weights.insert(p.name.clone(), w);
                }
                let receivers: Vec<&&Deployment> = peers
                    .iter()
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
                let moved = (share * total).min(own);
                let recv_total: f64 =
                    receivers.iter().map(|r| weights.get(&r.name).copied().unwrap_or(0.0)).sum();
                let mut new = weights.clone();
                new.insert(d.name.clone(), round4(own - moved));
                for r in &receivers {
                    let w = weights.get(&r.name).copied().unwrap_or(0.0);
                    let part = if recv_total > 0.0 {
                        moved * w / recv_total
                    } else {
                        moved / receivers.len() as f64
                    };
                    new.insert(r.name.clone(), round4(w + part));
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
                let delta = self.param(action, params, "delta")?.round() as i64;
                let now = fleet.replicas(d) as i64;
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
                out.params.insert("node".into(), json!(target));
                out.prior_state.insert("cordoned".into(), json!(false));
                out.prior_state.insert("replicas".into(), json!(on_node));
                out.inverse = Some(Inverse {
                    action,
                    params: [
                        ("node".to_string(), json!(target)),
                        ("uncordon".to_string(), json!(true)),
                    ]
                    .into(),
                });
                out.blast_radius = BlastRadius {
                    replicas: on_node.len() as u32,
                    traffic_share: round4(share.min(1.0)),
                };
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

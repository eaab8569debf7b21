//! The action catalog: which actions exist, how safe each is, and which plans answer which class.
//!
//! The catalog is data (`schemas/catalog.schema.json`; the built-in one is checked in as
//! `examples/catalog.json`). A file replaces the built-in catalog as a whole. Safety has a floor
//! the catalog cannot lower (a catalog may make `shift_traffic` impactful, never `drain_node`
//! safe): restarts, rollbacks and status changes are at least impactful, draining a node is
//! destructive, a shift is safe only up to `safe_max_share` of the route's traffic, scaling up is
//! safe and scaling down impactful.

use opsg_core::kinds::finding::IncidentClass;
use opsg_core::kinds::plan::{ActionType, SafetyClass};
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The catalog schema, embedded.
pub const SCHEMA: &str = include_str!("../../../schemas/catalog.schema.json");

/// A numeric parameter's bounds and default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value.
    pub max: f64,
    /// The value when a step does not say.
    pub default: f64,
}

/// One action type's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Safety class (raised to the type's floor if lower).
    pub safety: SafetyClass,
    /// For `shift_traffic`: moving more than this share of the route's traffic is impactful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_max_share: Option<f64>,
    /// Numeric parameters a step (or the advisor) may set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamSpec>,
}

/// Which target a step acts on, resolved against the finding and the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The first affected replica.
    AffectedTarget,
    /// The deployment with the most affected replicas.
    AffectedDeployment,
    /// The node of the first affected target that has one.
    AffectedNode,
    /// The canary deployment (an affected one first).
    CanaryDeployment,
    /// The stable deployment.
    StableDeployment,
    /// No target (escalate, noop): the incident itself.
    Incident,
}

/// What verification should see after a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectSpec {
    /// The signal; `anomaly` means the finding's first anomaly signal on the action's target
    /// (with `below`/`above` its threshold).
    pub signal: String,
    /// `decrease`, `increase` or `recover`.
    pub direction: String,
    /// Relative change required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_fraction: Option<f64>,
    /// Seconds to wait for it.
    pub within_s: f64,
}

/// One step of a candidate plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The action.
    pub action: ActionType,
    /// Its target.
    pub target: Selector,
    /// Numeric parameters (within the action type's bounds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, f64>,
    /// The expected effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectSpec>,
}

/// A candidate plan for a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// A unique name.
    pub name: String,
    /// The class it answers.
    pub class: IncidentClass,
    /// Why, in words (copied into the plan's rationale).
    pub why: String,
    /// Ordered steps.
    pub steps: Vec<Step>,
}

/// The catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version (1).
    pub version: u32,
    /// Settings per action type.
    pub actions: BTreeMap<ActionType, ActionSpec>,
    /// Candidate plans, in preference order within a class.
    pub plans: Vec<PlanSpec>,
}

/// The least safety class an action type can have.
pub fn safety_floor(action: ActionType) -> SafetyClass {
    match action {
        ActionType::ShiftTraffic
        | ActionType::ScaleReplicas
        | ActionType::Noop
        | ActionType::Escalate => SafetyClass::Safe,
        ActionType::SetDeploymentStatus
        | ActionType::RollbackConfig
        | ActionType::RestartReplica => SafetyClass::Impactful,
        // What it deletes cannot be brought back, but it takes no capacity and no traffic away:
        // impactful (an approval by default), not destructive.
        ActionType::CleanupNode => SafetyClass::Impactful,
        // Running replicas are untouched, but the node's free GPUs leave the pool until an
        // uncordon: impactful.
        ActionType::CordonNode => SafetyClass::Impactful,
        ActionType::DrainNode => SafetyClass::Destructive,
    }
}

/// The share of a filesystem still available (`opsg-verify` measures a `num/den` signal per
/// label set, so each mount point is its own ratio and the fullest one counts).
pub const FS_AVAIL_RATIO: &str = "node_filesystem_avail_bytes/node_filesystem_size_bytes";

fn effect(signal: &str, direction: &str, by: Option<f64>, within: f64) -> Option<EffectSpec> {
    Some(EffectSpec {
        signal: signal.into(),
        direction: direction.into(),
        by_fraction: by,
        within_s: within,
    })
}

fn step(
    action: ActionType,
    target: Selector,
    params: &[(&str, f64)],
    eff: Option<EffectSpec>,
) -> Step {
    Step {
        action,
        target,
        params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        effect: eff,
    }
}

/// Cordon the affected node, then restart the affected replica (which moves it off the node):
/// the one-replica fix for a faulty GPU or a slow network path, where a drain would restart every
/// replica on the node.
fn cordon_and_move() -> Vec<Step> {
    vec![
        step(ActionType::CordonNode, Selector::AffectedNode, &[], None),
        step(
            ActionType::RestartReplica,
            Selector::AffectedTarget,
            &[],
            effect("anomaly", "decrease", None, 180.0),
        ),
    ]
}

fn plan(name: &str, class: IncidentClass, why: &str, steps: Vec<Step>) -> PlanSpec {
    PlanSpec { name: name.into(), class, why: why.into(), steps }
}

impl Catalog {
    /// The built-in catalog.
    pub fn builtin() -> Catalog {
        use ActionType as A;
        use IncidentClass as C;
        use Selector as S;
        let spec = |safety, params: &[(&str, ParamSpec)]| ActionSpec {
            safety,
            safe_max_share: None,
            params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let mut actions = BTreeMap::new();
        // `share`: the fixed share of the route a step moves; `target_usage` (when a step sets
        // it): size the shift from the observed KV load instead, for that usage on every
        // deployment, moving at most `max_share` of the route (see `build::size_shift`).
        let mut shift = spec(
            SafetyClass::Safe,
            &[
                ("share", ParamSpec { min: 0.05, max: 1.0, default: 0.2 }),
                ("target_usage", ParamSpec { min: 0.3, max: 0.95, default: 0.7 }),
                ("max_share", ParamSpec { min: 0.05, max: 1.0, default: 0.5 }),
                ("min_cover", ParamSpec { min: 0.0, max: 1.0, default: 0.0 }),
            ],
        );
        shift.safe_max_share = Some(0.25);
        actions.insert(A::ShiftTraffic, shift);
        actions.insert(A::SetDeploymentStatus, spec(SafetyClass::Impactful, &[]));
        actions.insert(A::RollbackConfig, spec(SafetyClass::Impactful, &[]));
        actions.insert(A::RestartReplica, spec(SafetyClass::Impactful, &[]));
        actions.insert(
            A::ScaleReplicas,
            spec(
                SafetyClass::Safe,
                &[
                    ("delta", ParamSpec { min: -4.0, max: 4.0, default: 1.0 }),
                    ("max_delta", ParamSpec { min: 1.0, max: 8.0, default: 4.0 }),
                ],
            ),
        );
        actions.insert(A::DrainNode, spec(SafetyClass::Destructive, &[]));
        actions.insert(A::CleanupNode, spec(SafetyClass::Impactful, &[]));
        actions.insert(A::CordonNode, spec(SafetyClass::Impactful, &[]));
        actions.insert(A::Noop, spec(SafetyClass::Safe, &[]));
        actions.insert(A::Escalate, spec(SafetyClass::Safe, &[]));
        let kv = effect("vllm:kv_cache_usage_perc", "decrease", Some(0.1), 180.0);
        let waiting = effect("vllm:num_requests_waiting", "decrease", Some(0.3), 300.0);
        let plans = vec![
            plan(
                "kv-shift-traffic",
                C::KvCacheSaturation,
                "move the saturated deployment's traffic to its peers, as much as brings its KV demand to 70% of its cache, when their headroom takes all of it (a fifth when the load is not observed): frees KV blocks within a minute, fully reversible; when the peers cannot take it all, scaling up comes first",
                vec![step(
                    A::ShiftTraffic,
                    S::AffectedDeployment,
                    &[
                        ("share", 0.2),
                        ("target_usage", 0.7),
                        ("max_share", 0.5),
                        ("min_cover", 1.0),
                    ],
                    kv.clone(),
                )],
            ),
            plan(
                "kv-scale-up",
                C::KvCacheSaturation,
                "add replicas to the saturated deployment (as many as its demand needs, at most 8): a shift would only move the saturation onto peers without the headroom for it",
                vec![step(
                    A::ScaleReplicas,
                    S::AffectedDeployment,
                    &[("delta", 1.0), ("max_delta", 8.0)],
                    kv,
                )],
            ),
            plan(
                "backlog-scale-up",
                C::QueueBacklog,
                "add replicas where requests queue (as many as the demand needs, at most 8)",
                vec![step(
                    A::ScaleReplicas,
                    S::AffectedDeployment,
                    &[("delta", 1.0), ("max_delta", 8.0)],
                    waiting.clone(),
                )],
            ),
            plan(
                "backlog-shift-traffic",
                C::QueueBacklog,
                "move a fifth of the backlogged deployment's traffic to its peers",
                vec![step(
                    A::ShiftTraffic,
                    S::AffectedDeployment,
                    &[("share", 0.2)],
                    waiting.clone(),
                )],
            ),
            // A surge gets a larger bound than a backlog or a KV saturation: triage has seen the
            // arrivals grow across the fleet, so capacity is the fix, and a 3.4x surge on three
            // replicas needs about seven more; two steps of four cost a cron interval each while
            // the queue keeps growing. Eight is half of a 16-GPU fleet: still a bound against a
            // mismeasured demand, and the gate's blast radius bounds it again. A backlog or a KV
            // saturation can have causes more replicas do not fix (a slow replica, long
            // contexts), so they keep four.
            plan(
                "surge-scale-up",
                C::TrafficSurge,
                "add capacity to the busiest deployment in one step: as many replicas as carry its arrivals at 80% utilisation and clear its queue as fast as it grew, at most 8 (a surge is more demand, so capacity is the fix; two when neither rates nor a queue are observed)",
                vec![step(
                    A::ScaleReplicas,
                    S::AffectedDeployment,
                    &[("delta", 2.0), ("max_delta", 8.0)],
                    waiting,
                )],
            ),
            plan(
                "canary-rollback",
                C::CanaryRegression,
                "roll the canary's config back to the version before the change",
                vec![step(
                    A::RollbackConfig,
                    S::CanaryDeployment,
                    &[],
                    effect("anomaly", "decrease", None, 300.0),
                )],
            ),
            plan(
                "canary-shift-away",
                C::CanaryRegression,
                "take all traffic off the canary",
                vec![step(
                    A::ShiftTraffic,
                    S::CanaryDeployment,
                    &[("share", 1.0)],
                    effect("anomaly", "decrease", None, 180.0),
                )],
            ),
            plan(
                "replica-restart",
                C::ReplicaDown,
                "restart the replica that stopped answering",
                vec![step(
                    A::RestartReplica,
                    S::AffectedTarget,
                    &[],
                    effect("up", "recover", None, 180.0),
                )],
            ),
            plan(
                "gpu-cordon-and-move",
                C::GpuFault,
                "cordon the node with the faulty GPU and restart the replica on it, which moves it to a healthy GPU on another node; its neighbours keep serving (a drain would restart them all)",
                cordon_and_move(),
            ),
            plan(
                "gpu-drain-node",
                C::GpuFault,
                "drain the node with the faulty GPU so its replicas are rescheduled",
                vec![step(A::DrainNode, S::AffectedNode, &[], None)],
            ),
            plan(
                "gpu-escalate",
                C::GpuFault,
                "hand the faulty GPU to a human",
                vec![step(A::Escalate, S::Incident, &[], None)],
            ),
            plan(
                "leak-restart",
                C::MemoryLeak,
                "restart the leaking replica (frees its memory; the leak needs a fix upstream)",
                vec![step(
                    A::RestartReplica,
                    S::AffectedTarget,
                    &[],
                    effect("process_resident_memory_bytes", "decrease", Some(0.2), 180.0),
                )],
            ),
            plan(
                "network-cordon-and-move",
                C::NetworkLatency,
                "cordon the node whose network path adds latency and restart the replica there, which moves it off the link; its neighbours keep serving",
                cordon_and_move(),
            ),
            plan(
                "network-drain-node",
                C::NetworkLatency,
                "drain the node whose network path adds latency",
                vec![step(
                    A::DrainNode,
                    S::AffectedNode,
                    &[],
                    effect("anomaly", "decrease", None, 300.0),
                )],
            ),
            plan(
                "network-escalate",
                C::NetworkLatency,
                "hand the slow network path to a human",
                vec![step(A::Escalate, S::Incident, &[], None)],
            ),
            plan(
                "disk-cleanup-node",
                C::DiskPressure,
                "free the node's root filesystem (rotated logs, core dumps, unused images), as logrotate and an image prune would, before replicas there can no longer restart; irreversible, but no replica or traffic is touched",
                vec![step(
                    A::CleanupNode,
                    S::AffectedNode,
                    &[],
                    effect(FS_AVAIL_RATIO, "increase", Some(1.0), 120.0),
                )],
            ),
            plan(
                "disk-escalate",
                C::DiskPressure,
                "hand the nearly full filesystem to a human before the node fails",
                vec![step(A::Escalate, S::Incident, &[], None)],
            ),
            plan(
                "disk-drain-node",
                C::DiskPressure,
                "drain the node whose filesystem is nearly full",
                vec![step(A::DrainNode, S::AffectedNode, &[], None)],
            ),
            plan(
                "host-memory-restart",
                C::HostMemoryPressure,
                "restart the replica on the node under memory pressure (frees its host memory)",
                vec![step(
                    A::RestartReplica,
                    S::AffectedTarget,
                    &[],
                    effect("node_memory_MemAvailable_bytes", "increase", Some(0.2), 180.0),
                )],
            ),
            plan(
                "unknown-escalate",
                C::Unknown,
                "anomalies fit no known class: hand them to a human",
                vec![step(A::Escalate, S::Incident, &[], None)],
            ),
        ];
        Catalog { version: 1, actions, plans }
    }

    /// Parse and check a catalog file's text.
    pub fn parse(text: &str, source: &str) -> Result<Catalog> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("malformed JSON: {e}")).in_source(source))?;
        let schema: serde_json::Value = serde_json::from_str(SCHEMA)
            .map_err(|e| Error::internal(format!("embedded catalog schema: {e}")))?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| {
            Error::internal(format!("embedded catalog schema does not compile: {e}"))
        })?;
        if let Some(err) = validator.iter_errors(&value).next() {
            let field = opsg_core::schema::pointer_to_dotted(&err.instance_path().to_string());
            let e = Error::invalid(format!("does not match `catalog.schema.json`: {err}"));
            let e = if field.is_empty() { e } else { e.at_field(field) };
            return Err(e.in_source(source));
        }
        let catalog: Catalog = serde_json::from_value(value)
            .map_err(|e| Error::invalid(format!("invalid catalog: {e}")).in_source(source))?;
        catalog.check().map_err(|e| e.in_source(source))?;
        Ok(catalog)
    }

    /// Load a catalog file.
    pub fn load(path: &std::path::Path) -> Result<Catalog> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        Catalog::parse(&text, &path.display().to_string())
    }

    /// Check meaning: unique plan names, every step's action defined, parameters within bounds.
    pub fn check(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.plans.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return Err(Error::invalid(format!("duplicate plan name `{}`", p.name))
                    .at_field(format!("plans[{i}].name")));
            }
            for (j, s) in p.steps.iter().enumerate() {
                let at = format!("plans[{i}].steps[{j}]");
                let Some(spec) = self.actions.get(&s.action) else {
                    return Err(Error::invalid(format!(
                        "plan `{}` uses `{}`, which `actions` does not define",
                        p.name, s.action
                    ))
                    .at_field(format!("{at}.action")));
                };
                for (k, v) in &s.params {
                    let Some(b) = spec.params.get(k) else {
                        return Err(Error::invalid(format!(
                            "`{}` has no parameter `{k}`",
                            s.action
                        ))
                        .at_field(format!("{at}.params.{k}")));
                    };
                    if !(b.min..=b.max).contains(v) {
                        return Err(Error::invalid(format!(
                            "`{k}` = {v} is outside [{}, {}]",
                            b.min, b.max
                        ))
                        .at_field(format!("{at}.params.{k}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// The candidate plans for a class, in catalog order.
    pub fn candidates(&self, class: IncidentClass) -> Vec<&PlanSpec> {
        self.plans.iter().filter(|p| p.class == class).collect()
    }

    /// The effective safety of an action type (the catalog's, raised to the floor).
    pub fn safety(&self, action: ActionType) -> SafetyClass {
        let declared = self.actions.get(&action).map_or(SafetyClass::Destructive, |s| s.safety);
        declared.max(safety_floor(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_passes_schema_and_checks() {
        let c = Catalog::builtin();
        let text = serde_json::to_string_pretty(&c).unwrap();
        assert_eq!(Catalog::parse(&text, "builtin").unwrap(), c);
        for class in
            [IncidentClass::KvCacheSaturation, IncidentClass::ReplicaDown, IncidentClass::Unknown]
        {
            assert!(!c.candidates(class).is_empty(), "{class}");
        }
    }

    #[test]
    fn checked_in_example_is_the_builtin_catalog() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/catalog.json");
        let text = serde_json::to_string_pretty(&Catalog::builtin()).unwrap() + "\n";
        if std::env::var_os("OPSG_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == text,
            "examples/catalog.json drifted from Catalog::builtin(): rerun with OPSG_BLESS=1"
        );
    }

    #[test]
    fn a_catalog_cannot_lower_the_safety_floor() {
        let mut c = Catalog::builtin();
        if let Some(s) = c.actions.get_mut(&ActionType::DrainNode) {
            s.safety = SafetyClass::Safe;
        }
        assert_eq!(c.safety(ActionType::DrainNode), SafetyClass::Destructive);
        assert_eq!(c.safety(ActionType::ShiftTraffic), SafetyClass::Safe);
    }

    #[test]
    fn bad_catalogs_name_the_field() {
        let mut c = serde_json::to_value(Catalog::builtin()).unwrap();
        c["plans"][0]["steps"][0]["params"]["share"] = serde_json::json!(3.0);
        let e = Catalog::parse(&c.to_string(), "cat.json").unwrap_err().to_string();
        assert!(e.contains("cat.json") && e.contains("plans[0].steps[0].params.share"), "{e}");
        let mut c = serde_json::to_value(Catalog::builtin()).unwrap();
        c["plans"][0]["steps"][0]["action"] = serde_json::json!("reboot_datacenter");
        let e = Catalog::parse(&c.to_string(), "cat.json").unwrap_err();
        assert_eq!(e.status().code(), 3);
        assert!(e.to_string().contains("plans[0].steps[0].action"), "{e}");
    }
}

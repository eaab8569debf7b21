//! `opsg.plan/v1`: ordered, typed remediation actions, each with its inverse and expected effect.

use crate::kinds::finding::{IncidentClass, Method};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The catalog's action types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    /// Move traffic weight between deployments.
    ShiftTraffic,
    /// Set a deployment's status (`active`, `drain`).
    SetDeploymentStatus,
    /// Roll a deployment's config back to an earlier version.
    RollbackConfig,
    /// Restart one replica.
    RestartReplica,
    /// Change a deployment's replica count.
    ScaleReplicas,
    /// Drain a node (move its replicas' traffic away).
    DrainNode,
    /// Cordon a node: nothing new is placed there (what runs keeps running); undone by an
    /// uncordon. With a replica restart after it, moves one replica off the node.
    CordonNode,
    /// Free a node's root filesystem (rotated logs, core dumps, unused images): what filled it
    /// is deleted, so it has no inverse.
    CleanupNode,
    /// Do nothing (the finding needs no action).
    Noop,
    /// Hand over to a human: nothing safe applies.
    Escalate,
}

impl ActionType {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::ShiftTraffic => "shift_traffic",
            ActionType::SetDeploymentStatus => "set_deployment_status",
            ActionType::RollbackConfig => "rollback_config",
            ActionType::RestartReplica => "restart_replica",
            ActionType::ScaleReplicas => "scale_replicas",
            ActionType::DrainNode => "drain_node",
            ActionType::CordonNode => "cordon_node",
            ActionType::CleanupNode => "cleanup_node",
            ActionType::Noop => "noop",
            ActionType::Escalate => "escalate",
        }
    }
}

impl std::fmt::Display for ActionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much harm an action can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyClass {
    /// Reversible, no capacity lost (shift a little traffic).
    Safe,
    /// Reversible but user-visible (restart, rollback, large shifts): approval by default.
    Impactful,
    /// Hard to reverse or capacity-destroying (drain a node): blocked unless policy allows.
    Destructive,
}

/// What an action touches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Replicas touched.
    pub replicas: u32,
    /// Share of traffic touched, in [0, 1].
    pub traffic_share: f64,
}

/// What `opsg-verify` checks after the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedEffect {
    /// The signal (as triage names it: `vllm:kv_cache_usage_perc`, `ttft_p95_s`, `up`).
    pub signal: String,
    /// The target or deployment whose signal it is.
    pub target: String,
    /// `decrease` or `increase` (or `recover` for `up`).
    pub direction: String,
    /// Relative change required, in [0, 1] (0.2 = by at least 20%); or the absolute bound with
    /// `below`/`above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_fraction: Option<f64>,
    /// The value must end below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// The value must end above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Within this many seconds of the action.
    pub within_s: f64,
}

/// How to undo an action exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inverse {
    /// The undoing action.
    pub action: ActionType,
    /// Its parameters, built from the prior state.
    pub params: BTreeMap<String, serde_json::Value>,
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Position in the plan (0-based); with the plan's hash it forms the idempotency key.
    pub index: u32,
    /// The action type.
    pub action: ActionType,
    /// The target (deployment, replica or node name).
    pub target: String,
    /// Typed parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Safety class.
    pub safety: SafetyClass,
    /// Blast radius.
    pub blast_radius: BlastRadius,
    /// What verification checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_effect: Option<ExpectedEffect>,
    /// How to undo it (absent for noop/escalate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse: Option<Inverse>,
    /// The state the inverse needs, as known at plan time (exec captures it again before acting).
    #[serde(default)]
    pub prior_state: BTreeMap<String, serde_json::Value>,
}

/// A past incident that informed the ranking (runbook memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precedent {
    /// The past incident id.
    pub incident: String,
    /// Its first action.
    pub action: ActionType,
    /// How it ended.
    pub outcome: crate::exit::Outcome,
    /// Seconds to resolve, when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_resolve_s: Option<f64>,
}

/// The plan body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanBody {
    /// The class the plan addresses (from the leading hypothesis).
    pub class: IncidentClass,
    /// The leading hypothesis' confidence, carried for the gate.
    pub confidence: f64,
    /// Why these actions, in words.
    pub rationale: String,
    /// Ordered actions (empty when the finding was `no_incident`).
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Past incidents that ranked this plan (with `--history`).
    #[serde(default)]
    pub precedents: Vec<Precedent>,
    /// How the plan was produced.
    pub method: Method,
}

//! `opsg.execution/v1`: what `opsg-exec` ran (or would run in dry-run) and what came back.

use crate::kinds::decision::Mode;
use crate::kinds::plan::ActionType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// The actuator succeeded.
    Succeeded,
    /// The actuator failed (after retries); the plan stopped here.
    Failed,
    /// Dry-run: printed, not called.
    DryRun,
    /// Already executed under this idempotency key by an earlier run: not run again.
    AlreadyDone,
    /// Not reached because an earlier action failed.
    NotRun,
    /// Deliberately not called: the state captured just before acting differs from the state
    /// the plan was made for (the compare-and-swap in `opsg-exec` refused a stale plan). Nothing
    /// ran and nothing broke, so this is not `failed`: the pipe should simply be run again.
    /// Added in a minor revision of `opsg.execution/v1`; older ledgers never carry it.
    StalePlan,
}

/// The request an actuator made (secrets redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActuatorRequest {
    /// `http` or `command`.
    pub actuator: String,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Command argv (each parameter one whole argument; never a shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// HTTP headers sent, or environment variables set for a command; values that came from
    /// the environment (secrets) are shown as `<redacted:NAME>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl ActuatorRequest {
    /// The request of an action no actuator was called for (not run, or nothing to call).
    pub fn none() -> ActuatorRequest {
        ActuatorRequest {
            actuator: "none".into(),
            method: None,
            url: None,
            body: None,
            argv: vec![],
            headers: BTreeMap::new(),
        }
    }
}

/// One action's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    /// The plan's action index.
    pub index: u32,
    /// Plan hash + index: an action with this key runs at most once.
    pub idempotency_key: String,
    /// The action type (so cooldowns and reports need not look the plan up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionType>,
    /// The action's target (deployment, replica or node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The request.
    pub request: ActuatorRequest,
    /// HTTP status or process exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Wall time, milliseconds.
    pub duration_ms: f64,
    /// The outcome.
    pub outcome: ActionOutcome,
    /// Why, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many attempts were made (1 + retries used); 0 when not called.
    #[serde(default)]
    pub attempts: u32,
    /// The first bytes of the response body or the command's output (secrets redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// The state captured before acting, which the inverse needs.
    #[serde(default)]
    pub prior_state: BTreeMap<String, serde_json::Value>,
    /// When it started (RFC 3339).
    pub started: String,
}

/// The execution body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionBody {
    /// Live or dry-run.
    pub mode: Mode,
    /// The hash of the decision record executed.
    pub decision_hash: crate::seal::HashHex,
    /// One entry per approved action, in order.
    #[serde(default)]
    pub actions: Vec<ActionRun>,
    /// `completed`, `failed`, `dry_run`, `nothing_to_do`, or `stale_plan` (the plan stopped at an
    /// action exec refused because the fleet changed since the plan was made; none failed).
    pub status: String,
    /// Indices of the actions that ran (now or in an earlier run) and must be undone, in reverse,
    /// if verification fails or a later action failed: what `opsg-verify` rolls back.
    #[serde(default)]
    pub handed_to_rollback: Vec<u32>,
    /// Why the plan stopped, when it did (the failed action and its error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

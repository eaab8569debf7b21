//! `opsg.decision/v1`: the policy verdict on a plan, with every reason that applied.

use serde::{Deserialize, Serialize};

/// The gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// May run (live or dry-run per `mode`).
    Approved,
    /// Needs a signed approval token for this plan.
    AwaitingApproval,
    /// Policy forbids it.
    Blocked,
    /// Nothing to decide (no incident, or a noop plan).
    NoAction,
}

/// Live or dry-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Print what would be called; call nothing.
    DryRun,
    /// Call the actuators.
    Live,
}

/// What a reason does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonEffect {
    /// The plan may not run (any one of these makes the verdict `blocked`).
    Blocks,
    /// The plan needs a signed approval (`awaiting_approval` until a valid token is given).
    NeedsApproval,
    /// Informative: recorded so the decision can be understood later.
    Info,
}

/// One policy rule that applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// A stable code (`below_confidence`, `not_allowlisted`, `cooldown`, …).
    pub code: String,
    /// The explanation with values.
    pub message: String,
    /// The action it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_index: Option<u32>,
    /// What it does to the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<ReasonEffect>,
}

/// The approval that let an impactful plan through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    /// Who approved.
    pub approver: String,
    /// Until when the token was valid (RFC 3339).
    pub expires: String,
    /// The token's id (its nonce), so a replay can be refused.
    pub token_id: String,
}

/// The decision body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionBody {
    /// The verdict.
    pub verdict: Verdict,
    /// Live or dry-run.
    pub mode: Mode,
    /// The hash of the plan record decided on (approval tokens bind to it).
    pub plan_hash: crate::seal::HashHex,
    /// Indices of the plan's actions approved to run, in order.
    #[serde(default)]
    pub approved_actions: Vec<u32>,
    /// Every reason that applied (blocking and informative).
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// The approval used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalInfo>,
    /// SHA-256 of the policy file's bytes (which policy decided).
    pub policy_sha256: crate::seal::HashHex,
    /// Where the policy came from: a path, or `built-in` for the conservative default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_source: Option<String>,
}

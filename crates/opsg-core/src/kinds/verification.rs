//! `opsg.verification/v1`: the re-measurement, its verdict, and any rollback.

use crate::exit::Outcome;
use crate::float::Float;
use crate::kinds::execution::ActionRun;
use serde::{Deserialize, Serialize};

/// One expected effect checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectCheck {
    /// The action it belongs to.
    pub action_index: u32,
    /// The signal.
    pub signal: String,
    /// The target.
    pub target: String,
    /// The value before the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Float>,
    /// The value after the settle time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Float>,
    /// What was required, in words (`decrease by >= 20%`).
    pub expected: String,
    /// `pass`, `fail`, or `inconclusive`.
    pub result: String,
    /// Why, when not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The rollback, when verification failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// The inverses run, in reverse order of the actions.
    pub actions: Vec<ActionRun>,
    /// Whether the rollback itself was verified (the prior state restored).
    pub verified: bool,
    /// Checks made on the rollback.
    #[serde(default)]
    pub checks: Vec<EffectCheck>,
}

/// The verification body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationBody {
    /// The incident outcome.
    pub outcome: Outcome,
    /// When the re-measurement started and ended (RFC 3339).
    pub window: crate::kinds::observation::Window,
    /// One check per expected effect.
    #[serde(default)]
    pub checks: Vec<EffectCheck>,
    /// Present when the inverses were run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// When the outcome was established (RFC 3339): the end of MTTR for `resolved`.
    pub verified_at: String,
    /// Why this outcome, in one line for people (and `opsg-audit`'s timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

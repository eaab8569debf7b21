//! The exit-code table shared by every opsg binary.
//!
//! A cron job acts on `$?` of the pipe, so the codes are one documented table (README, man pages
//! `EXIT STATUS`): generic failures in the low range, incident outcomes from 10 up. Intermediate
//! stages exit 0 when they did their job; the last stage (`opsg-audit`, and `opsg-verify` for its
//! own run) exits with the incident's [`Outcome`].

use serde::{Deserialize, Serialize};
use std::process::ExitCode;

/// Why a process ended, as a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success; at the end of the pipe, the incident was resolved.
    Success,
    /// 1: an internal error (a bug): please report it.
    Internal,
    /// 2: the command line was wrong (clap's own code for usage errors).
    Usage,
    /// 3: input was invalid: malformed JSON, a record failing its schema, a bad config file.
    InvalidInput,
    /// 4: an I/O error: a file could not be read or written, a lock could not be taken.
    Io,
    /// 5: tampering detected: a hash does not match or a chain link is broken.
    Tamper,
    /// 6: `opsg-replay`: at least one case did not meet its expectations (a diff is printed).
    ExpectationsFailed,
    /// An incident outcome reported by the last stage.
    Outcome(Outcome),
}

impl ExitStatus {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Internal => 1,
            ExitStatus::Usage => 2,
            ExitStatus::InvalidInput => 3,
            ExitStatus::Io => 4,
            ExitStatus::Tamper => 5,
            ExitStatus::ExpectationsFailed => 6,
            ExitStatus::Outcome(outcome) => outcome.exit_code(),
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// How an incident ended, as the last stage of the pipe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The fix was applied and verification showed the expected effect (exit 0).
    Resolved,
    /// Triage found nothing wrong; later stages did nothing (exit 10).
    NoIncident,
    /// The plan needs a signed approval before it can run (exit 11).
    AwaitingApproval,
    /// Policy blocked the plan; nothing was executed (exit 12).
    Blocked,
    /// The fix did not work and its inverses were applied (exit 13).
    RolledBack,
    /// An action or its rollback failed; a human must look (exit 14).
    Failed,
    /// Verification could not tell (target unreachable, stale telemetry); never "resolved" (exit 15).
    Inconclusive,
    /// The plan was approved in dry-run mode: printed, not executed (exit 16).
    DryRun,
    /// The fleet changed since the plan was made, so `opsg-exec` refused to act on it: nothing
    /// failed, and whatever the plan had already done was rolled back; run the pipe again for a
    /// fresh plan (exit 17). Distinct from `failed` so a cron job can retry instead of paging.
    StalePlan,
}

impl Outcome {
    /// Every outcome, in exit-code order (for documentation and tests).
    pub const ALL: [Outcome; 9] = [
        Outcome::Resolved,
        Outcome::NoIncident,
        Outcome::AwaitingApproval,
        Outcome::Blocked,
        Outcome::RolledBack,
        Outcome::Failed,
        Outcome::Inconclusive,
        Outcome::DryRun,
        Outcome::StalePlan,
    ];

    /// The exit code a terminal stage uses for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Resolved => 0,
            Outcome::NoIncident => 10,
            Outcome::AwaitingApproval => 11,
            Outcome::Blocked => 12,
            Outcome::RolledBack => 13,
            Outcome::Failed => 14,
            Outcome::Inconclusive => 15,
            Outcome::DryRun => 16,
            Outcome::StalePlan => 17,
        }
    }

    /// The snake_case name used in records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Resolved => "resolved",
            Outcome::NoIncident => "no_incident",
            Outcome::AwaitingApproval => "awaiting_approval",
            Outcome::Blocked => "blocked",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Inconclusive => "inconclusive",
            Outcome::DryRun => "dry_run",
            Outcome::StalePlan => "stale_plan",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exit-status table as man-page/`--help` text, generated from the code so it cannot drift.
pub fn table() -> String {
    let mut rows = vec![
        (0u8, "success; at the end of the pipe: the incident was resolved".to_string()),
        (1, "internal error (a bug; please report it)".into()),
        (2, "usage error (bad flags or arguments)".into()),
        (3, "invalid input: malformed JSON, schema violation, bad config; the message names file, line and field".into()),
        (4, "I/O error: a file or lock could not be read or written".into()),
        (5, "tamper detected: a record hash does not match or a chain link is broken".into()),
        (6, "expectations failed: a replayed case did not match what its case file expects (opsg-replay)".into()),
    ];
    for outcome in Outcome::ALL.iter().skip(1) {
        let meaning = match outcome {
            Outcome::NoIncident => "no incident: nothing was wrong, nothing was done",
            Outcome::AwaitingApproval => {
                "awaiting approval: the plan needs a signed approval token"
            }
            Outcome::Blocked => "blocked by policy: nothing was executed",
            Outcome::RolledBack => "rolled back: the fix did not work and was undone",
            Outcome::Failed => "failed: an action or its rollback failed; a human must look",
            Outcome::Inconclusive => {
                "inconclusive: verification could not tell (stale or missing telemetry)"
            }
            Outcome::DryRun => "dry run: the approved plan was printed, not executed",
            Outcome::StalePlan => {
                "stale plan: the fleet changed since the plan was made; nothing was executed \
                 (or it was rolled back); run the pipe again"
            }
            Outcome::Resolved => unreachable_resolved(),
        };
        rows.push((outcome.exit_code(), meaning.to_string()));
    }
    rows.iter().map(|(code, text)| format!("{code:>3}  {text}\n")).collect()
}

fn unreachable_resolved() -> &'static str {
    // `Resolved` shares code 0 with plain success and is listed in the first row.
    "resolved"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_documented() {
        let mut codes: Vec<u8> = Outcome::ALL.iter().map(|o| o.exit_code()).collect();
        codes.extend([1, 2, 3, 4, 5, 6]);
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "exit codes collide");
        let table = table();
        for code in codes {
            assert!(table.contains(&format!("{code:>3}  ")), "code {code} missing from the table");
        }
    }

    #[test]
    fn outcome_names_round_trip_through_serde() {
        for outcome in Outcome::ALL {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            let back: Outcome = serde_json::from_str(&json).unwrap();
            assert_eq!(back, outcome);
        }
    }
}

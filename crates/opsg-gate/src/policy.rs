//! The gate's policy file (`schemas/policy.schema.json`) and its conservative built-in default.
//!
//! A policy says which actions may run at all, how sure triage must be, how much of the fleet one
//! plan may touch, which safety classes need a signed approval, how often the same action may hit
//! the same target, how many actions an hour the fleet tolerates, when nothing may change (freeze
//! windows), and whether approved plans run live or only print (dry-run, the default).

use opsg_core::kinds::decision::Mode;
use opsg_core::kinds::plan::{ActionType, SafetyClass};
use opsg_core::seal::HashHex;
use opsg_core::time::{Timestamp, parse_duration_ms};
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The policy schema, embedded so a binary validates without the source tree.
pub const SCHEMA: &str = include_str!("../../../schemas/policy.schema.json");

/// The built-in policy, used when no `--policy` is given. Conservative by design: dry-run, every
/// impactful action needs an approval, destructive actions are blocked, cooldowns on everything.
pub const DEFAULT_POLICY: &str = r#"{
  "mode": "dry_run",
  "allow_actions": ["shift_traffic", "set_deployment_status", "rollback_config", "restart_replica", "scale_replicas", "noop", "escalate"],
  "min_confidence": 0.80,
  "max_blast_radius": {"replicas": 2, "traffic_share": 0.5},
  "require_approval": ["impactful", "destructive"],
  "allow_destructive": false,
  "cooldowns": [
    {"action": "restart_replica", "target": "*", "duration": "15m"},
    {"action": "rollback_config", "target": "*", "duration": "30m"},
    {"action": "shift_traffic", "target": "*", "duration": "5m"},
    {"action": "set_deployment_status", "target": "*", "duration": "10m"},
    {"action": "scale_replicas", "target": "*", "duration": "10m"},
    {"action": "drain_node", "target": "*", "duration": "1h"}
  ],
  "max_actions_per_hour": 6,
  "freeze_windows": [],
  "targets": {"allow": ["*"], "deny": []},
  "max_approval_ttl": "24h"
}
"#;

/// Limits on what one plan may touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastLimit {
    /// The most replicas one action (and the whole plan) may touch.
    pub replicas: u32,
    /// The largest share of traffic one action (and the whole plan) may touch, in [0, 1].
    pub traffic_share: f64,
}

/// A cooldown: after `action` ran on a matching `target`, it may not run there again for `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cooldown {
    /// The action type, or `*` for any.
    pub action: String,
    /// A target pattern (`*` matches any run of characters).
    #[serde(default = "star")]
    pub target: String,
    /// How long (`15m`, `1h`).
    pub duration: String,
}

fn star() -> String {
    "*".into()
}

/// A period when nothing may change: absolute (`start`/`end`, RFC 3339) or daily in UTC
/// (`daily_start`/`daily_end` as `HH:MM`, optionally only on some `days`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// A name people recognise (`black-friday`, `weekend`).
    pub name: String,
    /// Absolute start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Absolute end (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Daily start, `HH:MM` UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_start: Option<String>,
    /// Daily end, `HH:MM` UTC (may be before the start: the window spans midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_end: Option<String>,
    /// Days of the week the daily window applies (`mon` … `sun`); all days when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
}

/// Which targets the gate may let actions touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRules {
    /// Patterns a target must match (`*` wildcard).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Patterns no target may match (wins over `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Default for TargetRules {
    fn default() -> Self {
        TargetRules { allow: vec!["*".into()], deny: Vec::new() }
    }
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `live` or `dry_run`.
    pub mode: Mode,
    /// Action types that may run at all.
    pub allow_actions: Vec<ActionType>,
    /// The plan's confidence must be at least this.
    pub min_confidence: f64,
    /// The most one action (and the plan in total) may touch.
    pub max_blast_radius: BlastLimit,
    /// Safety classes that need a signed approval.
    pub require_approval: Vec<SafetyClass>,
    /// Destructive actions are blocked unless this is true.
    #[serde(default)]
    pub allow_destructive: bool,
    /// Per action/target cooldowns.
    #[serde(default)]
    pub cooldowns: Vec<Cooldown>,
    /// The most actions (executed, rollbacks included) in any hour, this plan's included.
    pub max_actions_per_hour: u32,
    /// When nothing may change.
    #[serde(default)]
    pub freeze_windows: Vec<FreezeWindow>,
    /// Which targets may be touched.
    #[serde(default)]
    pub targets: TargetRules,
    /// The longest validity an approval token may claim (a token asking more is refused).
    #[serde(default = "default_ttl")]
    pub max_approval_ttl: String,
}

fn default_ttl() -> String {
    "24h".into()
}

/// A policy with where it came from and the hash of its bytes (recorded in the decision).
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: Policy,
    /// A path, or `built-in`.
    pub source: String,
    /// SHA-256 of the exact bytes.
    pub sha256: HashHex,
}

impl Policy {
    /// Parse and validate policy bytes; errors name `source`, the field and why.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Policy> {
        Policy::parse_with(bytes, source, true)
    }

    /// Parse, validating against the schema only when `validate` (the built-in policy is
    /// checked against it by a unit test instead: compiling the schema costs every cron run).
    fn parse_with(bytes: &[u8], source: &str, validate: bool) -> Result<Policy> {
        let value = if validate {
            opsg_core::schema::parse_config(bytes, source, "policy.schema.json")?
        } else {
            opsg_core::schema::parse_json(bytes, source)?
        };
        let policy: Policy = serde_json::from_value(value)
            .map_err(|e| Error::invalid(format!("invalid policy: {e}")).in_source(source))?;
        policy.check().map_err(|e| e.in_source(source))?;
        Ok(policy)
    }

    /// Semantic checks the schema cannot express (durations, times, patterns).
    fn check(&self) -> Result<()> {
        for (i, c) in self.cooldowns.iter().enumerate() {
            parse_duration_ms(&c.duration).map_err(|e| {
                Error::invalid(e.message().to_string()).at_field(format!("cooldowns[{i}].duration"))
            })?;
            if c.action != "*" && action_from_name(&c.action).is_none() {
                return Err(Error::invalid(format!("unknown action type `{}`", c.action))
                    .at_field(format!("cooldowns[{i}].action")));
            }
        }
        parse_duration_ms(&self.max_approval_ttl)
            .map_err(|e| Error::invalid(e.message().to_string()).at_field("max_approval_ttl"))?;
        for (i, w) in self.freeze_windows.iter().enumerate() {
            let field = |f: &str| format!("freeze_windows[{i}].{f}");
            match (&w.start, &w.end, &w.daily_start, &w.daily_end) {
                (Some(s), Some(e), None, None) => {
                    let s = Timestamp::parse_rfc3339(s).map_err(|x| {
                        Error::invalid(x.message().to_string()).at_field(field("start"))
                    })?;
                    let e = Timestamp::parse_rfc3339(e).map_err(|x| {
                        Error::invalid(x.message().to_string()).at_field(field("end"))
                    })?;
                    if e <= s {
                        return Err(Error::invalid("the window ends before it starts")
                            .at_field(field("end")));
                    }
                }
                (None, None, Some(s), Some(e)) => {
                    parse_hhmm(s).map_err(|x| x.at_field(field("daily_start")))?;
                    parse_hhmm(e).map_err(|x| x.at_field(field("daily_end")))?;
                    for (j, d) in w.days.iter().enumerate() {
                        weekday_index(d).ok_or_else(|| {
                            Error::invalid(format!("`{d}` is not a day (mon … sun)"))
                                .at_field(field(&format!("days[{j}]")))
                        })?;
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        "a freeze window has either `start` and `end`, or `daily_start` and `daily_end`",
                    )
                    .at_field(format!("freeze_windows[{i}]")));
                }
            }
        }
        Ok(())
    }

    /// The cooldown that applies to `action` on `target`, in milliseconds (the longest match).
    pub fn cooldown_ms(&self, action: ActionType, target: &str) -> Option<i64> {
        self.cooldowns
            .iter()
            .filter(|c| (c.action == "*" || c.action == action.as_str()) && glob(&c.target, target))
            .filter_map(|c| parse_duration_ms(&c.duration).ok())
            .max()
    }

    /// How far back the gate must remember: the longest cooldown, the hour of the rate limit,
    /// and the longest an approval token may live (a spent token must stay spent), plus an hour
    /// for clock skew between hosts.
    pub fn memory_ms(&self) -> i64 {
        let cooldown =
            self.cooldowns.iter().filter_map(|c| parse_duration_ms(&c.duration).ok()).max();
        let ttl = parse_duration_ms(&self.max_approval_ttl).unwrap_or(0);
        cooldown.unwrap_or(0).max(3_600_000).max(ttl) + 3_600_000
    }

    /// The freeze window `now` falls in, if any.
    pub fn freeze_at(&self, now: Timestamp) -> Option<&FreezeWindow> {
        self.freeze_windows.iter().find(|w| w.contains(now))
    }
}

impl FreezeWindow {
    /// True when `now` is inside the window.
    pub fn contains(&self, now: Timestamp) -> bool {
        if let (Some(s), Some(e)) = (&self.start, &self.end) {
            return match (Timestamp::parse_rfc3339(s), Timestamp::parse_rfc3339(e)) {
                (Ok(s), Ok(e)) => s <= now && now < e,
                _ => false,
            };
        }
        let (Some(s), Some(e)) = (&self.daily_start, &self.daily_end) else { return false };
        let (Ok(s), Ok(e)) = (parse_hhmm(s), parse_hhmm(e)) else { return false };
        let day_ms = 86_400_000i64;
        let minute = now.millis().rem_euclid(day_ms) / 60_000;
        let day = now.millis().div_euclid(day_ms);
        // 1970-01-01 was a Thursday: index 3 with Monday = 0.
        let weekday = |d: i64| (d + 3).rem_euclid(7) as usize;
        let day_ok = |d: i64| {
            self.days.is_empty() || self.days.iter().any(|x| weekday_index(x) == Some(weekday(d)))
        };
        if s <= e {
            s <= minute && minute < e && day_ok(day)
        } else if minute >= s {
            day_ok(day)
        } else if minute < e {
            // After midnight: the window belongs to the day it started on.
            day_ok(day - 1)
        } else {
            false
        }
    }
}

fn parse_hhmm(text: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("`{text}` is not a time of day (`HH:MM`, UTC)"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn weekday_index(day: &str) -> Option<usize> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| d.eq_ignore_ascii_case(day))
}

/// Look an action type up by its snake_case name.
pub fn action_from_name(name: &str) -> Option<ActionType> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}

/// Match `text` against a pattern where `*` matches any run of characters (no other syntax).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Load the policy from a file, or the built-in default.
pub fn load(path: Option<&std::path::Path>) -> Result<LoadedPolicy> {
    match path {
        Some(path) => {
            let source = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| Error::io(&source, e))?;
            let policy = Policy::parse(&bytes, &source)?;
            Ok(LoadedPolicy { policy, sha256: HashHex::of(&bytes), source })
        }
        None => Ok(LoadedPolicy {
            policy: Policy::parse_with(DEFAULT_POLICY.as_bytes(), "built-in policy", false)?,
            source: "built-in".into(),
            sha256: HashHex::of(DEFAULT_POLICY.as_bytes()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_conservative() {
        let p = load(None).unwrap().policy;
        assert_eq!(p.mode, Mode::DryRun);
        assert!((p.min_confidence - 0.80).abs() < 1e-12);
        assert!(p.require_approval.contains(&SafetyClass::Impactful));
        assert!(!p.allow_destructive);
        assert!(!p.allow_actions.contains(&ActionType::DrainNode));
    }

    #[test]
    fn the_built_in_policy_matches_the_schema() {
        Policy::parse(DEFAULT_POLICY.as_bytes(), "built-in").unwrap();
    }

    #[test]
    fn example_policy_parses() {
        let text = include_str!("../../../examples/policy.json");
        Policy::parse(text.as_bytes(), "examples/policy.json").unwrap();
    }

    #[test]
    fn bad_policies_name_the_field() {
        let bad = DEFAULT_POLICY.replace("\"min_confidence\": 0.80", "\"min_confidence\": 1.5");
        let e = Policy::parse(bad.as_bytes(), "p.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json: field `min_confidence`"), "{e}");
        assert_eq!(e.status().code(), 3);

        let bad =
            DEFAULT_POLICY.replace("\"duration\": \"15m\"", "\"duration\": \"15 fortnights\"");
        let e = Policy::parse(bad.as_bytes(), "p.json").unwrap_err();
        assert!(e.to_string().contains("cooldowns[0].duration"), "{e}");

        let bad = DEFAULT_POLICY.replace("\"mode\": \"dry_run\"", "\"mode\": \"yolo\"");
        let e = Policy::parse(bad.as_bytes(), "p.json").unwrap_err();
        assert!(e.to_string().contains("field `mode`"), "{e}");

        let bad = DEFAULT_POLICY.replace("\"mode\"", "\"mdoe\"");
        assert!(Policy::parse(bad.as_bytes(), "p.json").is_err(), "a typo must not pass");
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("llama-*", "llama-canary"));
        assert!(!glob("llama-*", "mistral"));
        assert!(glob("*-canary", "llama-canary"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn freeze_windows_absolute_and_daily() {
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let abs = FreezeWindow {
            name: "launch".into(),
            start: Some("2026-11-27T00:00:00Z".into()),
            end: Some("2026-11-28T00:00:00Z".into()),
            daily_start: None,
            daily_end: None,
            days: vec![],
        };
        assert!(abs.contains(t("2026-11-27T12:00:00Z")));
        assert!(!abs.contains(t("2026-11-28T00:00:00Z")));
        let nightly = FreezeWindow {
            name: "weekend-nights".into(),
            start: None,
            end: None,
            daily_start: Some("22:00".into()),
            daily_end: Some("06:00".into()),
            days: vec!["sat".into()],
        };
        // 2026-11-21 is a Saturday.
        assert!(nightly.contains(t("2026-11-21T23:00:00Z")));
        assert!(nightly.contains(t("2026-11-22T05:59:00Z")), "Saturday night spills into Sunday");
        assert!(!nightly.contains(t("2026-11-22T23:00:00Z")), "Sunday night is not frozen");
        assert!(!nightly.contains(t("2026-11-21T12:00:00Z")));
    }

    #[test]
    fn cooldown_lookup_takes_the_longest_match() {
        let p = load(None).unwrap().policy;
        assert_eq!(p.cooldown_ms(ActionType::RestartReplica, "r1"), Some(15 * 60_000));
        assert_eq!(p.cooldown_ms(ActionType::Noop, "r1"), None);
    }
}

//! What the acting stages remember between runs: the state directory and the ledger.
//!
//! Cron runs the pipe again and again, so cooldowns, the hourly action budget, single-use
//! approvals and idempotency keys must outlive a process. Two sources feed them:
//!
//! - the **state directory** (`--state-dir`, `OPSG_STATE_DIR`, default
//!   `$XDG_STATE_HOME/opsg` or `~/.local/state/opsg`), written by `opsg-gate` and `opsg-exec`:
//!   - `actions/<key>.claim`: created with `O_EXCL` before an action runs (the idempotency key);
//!   - `actions/<key>.done`: the action's run record, written atomically after it ran;
//!   - `history.jsonl`: one line per live action attempt (`at`, `action`, `target`, `key`);
//!   - `approvals/<nonce>`: created with `O_EXCL` when a live decision uses an approval;
//! - the **ledger** `opsg-audit` keeps (`--ledger`, `schemas/HASHING.md` §5): executions and
//!   rollbacks recorded there count for cooldowns and rate limits, and approvals used there are
//!   spent, even when the state directory was lost.

use opsg_core::kinds::plan::ActionType;
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the state directory.
pub const STATE_DIR_ENV: &str = "OPSG_STATE_DIR";

/// The default state directory: `$XDG_STATE_HOME/opsg`, else `~/.local/state/opsg`, else
/// `.opsg-state` in the working directory.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("opsg");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/state/opsg");
    }
    PathBuf::from(".opsg-state")
}

/// One live action attempt, as remembered for cooldowns and rate limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// When it started (RFC 3339).
    pub at: String,
    /// The action type.
    pub action: ActionType,
    /// The target.
    pub target: String,
    /// Its idempotency key (deduplicates the state directory against the ledger).
    pub key: String,
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The result of trying to claim an idempotency key.
#[derive(Debug)]
pub enum Claim {
    /// This process owns the key now and must run the action.
    Acquired,
    /// Another run claimed it before; its recorded result, if it finished.
    Taken(Option<Value>),
}

impl StateDir {
    /// Use `root`; directories are created on first write.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure(&self, sub: &str) -> Result<PathBuf> {
        let dir = self.root.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(dir)
    }

    /// Claim an idempotency key atomically (`O_CREAT|O_EXCL`): exactly one process, across
    /// concurrent cron runs, gets [`Claim::Acquired`].
    pub fn claim(&self, key: &str, owner: &str) -> Result<Claim> {
        check_key(key)?;
        let dir = self.ensure("actions")?;
        let path = dir.join(format!("{key}.claim"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(owner.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| Error::io(path.display(), e))?;
                Ok(Claim::Acquired)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let done = dir.join(format!("{key}.done"));
                let result = std::fs::read(&done)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                Ok(Claim::Taken(result))
            }
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Record what happened under a claimed key (written to a temporary file, then renamed).
    pub fn finish(&self, key: &str, result: &Value) -> Result<()> {
        check_key(key)?;
        let dir = self.ensure("actions")?;
        let tmp = dir.join(format!(".{key}.done.{}", std::process::id()));
        let path = dir.join(format!("{key}.done"));
        let bytes = serde_json::to_vec(result).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io(path.display(), e))
    }

    /// Append a live action attempt to `history.jsonl` (one `write` of one line with `O_APPEND`,
    /// so concurrent writers do not interleave within a line).
    pub fn record_event(&self, event: &ActionEvent) -> Result<()> {
        let dir = self.ensure("")?;
        let path = dir.join("history.jsonl");
        let mut line = serde_json::to_vec(event).map_err(|e| Error::internal(e.to_string()))?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(|e| Error::io(path.display(), e))
    }

    /// The action attempts in `history.jsonl`; unreadable lines are warned about and skipped.
    pub fn events(&self) -> Result<Vec<ActionEvent>> {
        let path = self.root.join("history.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match serde_json::from_str::<ActionEvent>(line) {
                Ok(ev) => out.push(ev),
                Err(e) => {
                    opsg_core::cli::warn(format!("{}:{}: skipped: {e}", path.display(), i + 1))
                }
            }
        }
        Ok(out)
    }

    /// Spend an approval nonce: `Ok(true)` when this call spent it, `Ok(false)` when it was
    /// already spent.
    pub fn spend_nonce(&self, nonce: &str) -> Result<bool> {
        check_key(nonce)?;
        let dir = self.ensure("approvals")?;
        let path = dir.join(nonce);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// True when the nonce was spent.
    pub fn nonce_spent(&self, nonce: &str) -> bool {
        check_key(nonce).is_ok() && self.root.join("approvals").join(nonce).exists()
    }
}

/// Keys become file names: only `[A-Za-z0-9_-]`, never a path.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > 200
        || !key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(Error::invalid(format!("`{key}` is not a valid state key")));
    }
    Ok(())
}

/// What the ledger says about past actions and spent approvals.
#[derive(Debug, Clone, Default)]
pub struct LedgerMemory {
    /// Live action attempts (executions and rollbacks).
    pub events: Vec<ActionEvent>,
    /// Approval nonces used by live decisions, with the ledger line that used them.
    pub spent_nonces: BTreeMap<String, u64>,
}

/// Read a ledger (`schemas/HASHING.md` §5), checking each line's seal. A torn last line is
/// warned about and ignored; any other damage is refused (exit 5): the gate does not decide on
/// a history someone may have rewritten.
pub fn read_ledger(path: &Path) -> Result<LedgerMemory> {
    let source = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        // A ledger that does not exist yet has no history: the first cron run.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LedgerMemory::default()),
        Err(e) => return Err(Error::io(&source, e)),
    };
    let mut memory = LedgerMemory::default();
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    let mut line_no = 0u64;
    while let Some(line) = lines.next() {
        line_no += 1;
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        let torn = lines.peek().is_none();
        if let Err(e) = opsg_core::seal::verify(line) {
            if torn {
                opsg_core::cli::warn(format!("{source}:{line_no}: torn last line ignored ({e})"));
                break;
            }
            return Err(Error::tamper(e.to_string()).in_source(&source).at_line(line_no));
        }
        let value: Value = serde_json::from_slice(line).map_err(|e| {
            Error::invalid(format!("malformed JSON: {e}")).in_source(&source).at_line(line_no)
        })?;
        remember(&value["record"], line_no, &mut memory);
    }
    Ok(memory)
}

fn remember(record: &Value, line_no: u64, memory: &mut LedgerMemory) {
    let body = &record["body"];
    let mut runs: Vec<&Value> = Vec::new();
    match record["kind"].as_str() {
        Some("execution") => runs.extend(body["actions"].as_array().into_iter().flatten()),
        Some("verification") => {
            runs.extend(body["rollback"]["actions"].as_array().into_iter().flatten())
        }
        Some("decision") => {
            if body["mode"] == "live"
                && let Some(nonce) = body["approval"]["token_id"].as_str()
            {
                memory.spent_nonces.insert(nonce.to_string(), line_no);
            }
        }
        _ => {}
    }
    for run in runs {
        if !matches!(run["outcome"].as_str(), Some("succeeded" | "failed")) {
            continue;
        }
        let action = run["action"].as_str().and_then(crate::policy::action_from_name);
        let (Some(action), Some(target), Some(at), Some(key)) = (
            action,
            run["target"].as_str(),
            run["started"].as_str(),
            run["idempotency_key"].as_str(),
        ) else {
            continue;
        };
        memory.events.push(ActionEvent {
            at: at.into(),
            action,
            target: target.into(),
            key: key.into(),
        });
    }
}

/// Merge action events from several sources, one per idempotency key, as (time, event).
pub fn merge_events(
    sources: impl IntoIterator<Item = ActionEvent>,
) -> Vec<(Timestamp, ActionEvent)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for ev in sources {
        if !seen.insert(ev.key.clone()) {
            continue;
        }
        if let Ok(t) = Timestamp::parse_rfc3339(&ev.at) {
            out.push((t, ev));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("opsg-gate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_key_is_claimed_once_even_by_racing_threads() {
        let dir = tmp("race");
        let state = StateDir::new(&dir);
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let state = state.clone();
                    s.spawn(move || {
                        matches!(state.claim("abc-0", &format!("t{i}")).unwrap(), Claim::Acquired)
                    })
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(winners, 1);
        state.finish("abc-0", &serde_json::json!({"outcome": "succeeded"})).unwrap();
        match state.claim("abc-0", "late").unwrap() {
            Claim::Taken(Some(v)) => assert_eq!(v["outcome"], "succeeded"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_cannot_escape_the_directory() {
        let state = StateDir::new(tmp("escape"));
        assert!(state.claim("../../etc/passwd", "x").is_err());
        assert!(state.spend_nonce("a/b").is_err());
    }

    #[test]
    fn nonces_are_spent_once() {
        let dir = tmp("nonce");
        let state = StateDir::new(&dir);
        assert!(state.spend_nonce("ab12").unwrap());
        assert!(!state.spend_nonce("ab12").unwrap());
        assert!(state.nonce_spent("ab12"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn events_round_trip_and_merge_dedups_by_key() {
        let dir = tmp("events");
        let state = StateDir::new(&dir);
        let ev = ActionEvent {
            at: "2026-11-22T06:00:00.000Z".into(),
            action: ActionType::RestartReplica,
            target: "r1".into(),
            key: "k-0".into(),
        };
        state.record_event(&ev).unwrap();
        state.record_event(&ev).unwrap();
        let events = state.events().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(merge_events(events).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! What the acting stages remember between runs: the state directory and the ledger.
//!
//! Cron runs the pipe again and again, so cooldowns, the hourly action budget, single-use
//! approvals and idempotency keys must outlive a process. Two sources feed them:
//!
//! - the **state directory** (`--state-dir`, `OPSG_STATE_DIR`, default
//!   `$XDG_STATE_HOME/opsg` or `~/.local/state/opsg`), written by `opsg-gate` and `opsg-exec`:
//!   - `actions/<key>.claim`: created with `O_EXCL` before an action runs (the idempotency key);
//!   - `actions/<key>.done`: the action's run record, written atomically after it ran;
//!   - `history.jsonl`: one line per live action attempt (`at`, `action`, `target`, `key`),
//!     compacted by the gate once past 1 MiB to what its memory still needs (`history.lock`
//!     keeps appends and a compaction apart);
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
    /// so concurrent writers do not interleave within a line). Appenders hold `history.lock`
    /// shared, so a compaction ([`StateDir::compact_history`]) never drops a line written while
    /// it rewrites the file.
    pub fn record_event(&self, event: &ActionEvent) -> Result<()> {
        let dir = self.ensure("")?;
        let _lock = self.history_lock(false)?;
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

    /// `history.lock`, held shared by appenders and exclusively by a compaction; released when
    /// the returned file is dropped.
    fn history_lock(&self, exclusive: bool) -> Result<std::fs::File> {
        let path = self.ensure("")?.join("history.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(|e| Error::io(path.display(), e))?;
        Ok(file)
    }

    /// Keep `history.jsonl` bounded: once it is larger than `max_bytes`, rewrite it with only
    /// the events at or after `since` (the gate's memory horizon: older attempts no longer
    /// count for any cooldown or rate limit). The new file is written beside the old one and
    /// renamed over it, under `history.lock` held exclusively, so a reader sees the old file or
    /// the new one and an appender waits instead of writing into the file being replaced.
    /// Unreadable lines are dropped with the old events (they were skipped on every read).
    /// Returns how many events were dropped (0 when the file was small enough).
    pub fn compact_history(&self, since: Timestamp, max_bytes: u64) -> Result<usize> {
        let path = self.root.join("history.jsonl");
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > max_bytes => {}
            Ok(_) => return Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(path.display(), e)),
        }
        let _lock = self.history_lock(true)?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        let mut kept = Vec::with_capacity(text.len() / 2);
        let mut dropped = 0;
        for line in text.lines() {
            let recent = serde_json::from_str::<ActionEvent>(line)
                .ok()
                .and_then(|ev| Timestamp::parse_rfc3339(&ev.at).ok())
                .is_some_and(|at| at >= since);
            if recent {
                kept.extend_from_slice(line.as_bytes());
                kept.push(b'\n');
            } else {
                dropped += 1;
            }
        }
        let tmp = self.root.join(format!(".history.jsonl.{}", std::process::id()));
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&kept).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(path.display(), e)
            })?;
        Ok(dropped)
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

/// Read the recent part of a ledger (`schemas/HASHING.md` §5): lines are read from the end
/// backwards ([`opsg_core::ledger::TailReader`]) and reading stops at the first line appended
/// before `since` (all of it when `None`), so a cron run costs what the last hours of history
/// cost, not the whole ledger's. Every line read is checked on its own and against the line after
/// it (sequence number and link), so a rewritten, deleted or reordered line among them is refused
/// (exit 5): the gate does not decide on a history someone rewrote. A torn last line (a writer cut
/// off) is warned about and ignored. The full check of every line is `opsg-audit verify`.
pub fn read_ledger(path: &Path, since: Option<Timestamp>) -> Result<LedgerMemory> {
    read_ledger_blocks(path, since, 1 << 20)
}

fn read_ledger_blocks(
    path: &Path,
    since: Option<Timestamp>,
    block_size: u64,
) -> Result<LedgerMemory> {
    let source = path.display().to_string();
    let mut memory = LedgerMemory::default();
    // A ledger that does not exist yet has no history: the first cron run.
    let Some(reader) = opsg_core::ledger::TailReader::open(path)? else { return Ok(memory) };
    let mut reader = reader.block_size(block_size);
    if let Some(len) = reader.torn() {
        opsg_core::cli::warn(format!("{source}: torn last line ignored ({len} bytes, no newline)"));
    }
    for entry in reader.by_ref() {
        let entry = entry?;
        if let Some(since) = since
            && Timestamp::parse_rfc3339(entry.appended()).is_ok_and(|t| t < since)
        {
            break;
        }
        let record: Value = entry.record_as(&source)?;
        remember(&record, entry.seq, &mut memory);
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

    fn event(target: &str, at: Timestamp, key: &str) -> ActionEvent {
        ActionEvent {
            at: at.to_rfc3339(),
            action: ActionType::RestartReplica,
            target: target.into(),
            key: key.into(),
        }
    }

    #[test]
    fn history_is_compacted_to_the_horizon_once_it_is_large() {
        let dir = tmp("compact");
        let state = StateDir::new(&dir);
        let now = Timestamp(1_800_000_000_000);
        for i in 0..200 {
            let at = now.plus_millis(-(i64::from(i) + 1) * 60_000);
            state.record_event(&event(&format!("r{i}"), at, &format!("k{i}"))).unwrap();
        }
        let path = dir.join("history.jsonl");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"not json\n"))
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        // Under the size bound: nothing is touched.
        assert_eq!(state.compact_history(now.plus_millis(-3_600_000), before).unwrap(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
        // Over it: only the last hour stays (events 1..=60 minutes ago), the junk line goes.
        let dropped = state.compact_history(now.plus_millis(-3_600_000), 1024).unwrap();
        assert_eq!(dropped, 141);
        let kept = state.events().unwrap();
        assert_eq!(kept.len(), 60);
        assert!(
            kept.iter()
                .all(|e| Timestamp::parse_rfc3339(&e.at).unwrap() >= now.plus_millis(-3_600_000))
        );
        assert_eq!(kept[0].target, "r0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_compaction_never_loses_an_event_appended_while_it_runs() {
        let dir = tmp("compact-race");
        let state = StateDir::new(&dir);
        let now = Timestamp(1_800_000_000_000);
        let old = now.plus_millis(-86_400_000);
        std::thread::scope(|s| {
            for w in 0..4 {
                let state = state.clone();
                s.spawn(move || {
                    for i in 0..100 {
                        let at = if i % 2 == 0 { old } else { now };
                        state.record_event(&event(&format!("w{w}-{i}"), at, "k")).unwrap();
                    }
                });
            }
            let state = state.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    state.compact_history(now.plus_millis(-60_000), 0).unwrap();
                }
            });
        });
        state.compact_history(now.plus_millis(-60_000), 0).unwrap();
        let mut recent: Vec<String> =
            state.events().unwrap().into_iter().map(|e| e.target).collect();
        recent.sort();
        let mut expected: Vec<String> =
            (0..4).flat_map(|w| (1..100).step_by(2).map(move |i| format!("w{w}-{i}"))).collect();
        expected.sort();
        assert_eq!(recent, expected, "every recent event survives, every old one is gone");
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

    fn record(kind: opsg_core::record::Kind, body: Value) -> Vec<u8> {
        let stamp = opsg_core::record::Stamp { tool: "opsg-test", version: "0", now: Timestamp(0) };
        let mut r = opsg_core::Record::new(kind, &stamp, "run-1".into(), None, body);
        r.seal(opsg_core::seal::GENESIS).unwrap().0
    }

    fn sample_ledger(dir: &Path, now: Timestamp) -> PathBuf {
        use opsg_core::record::Kind;
        let exec = |target: &str, at: Timestamp, key: &str| {
            record(
                Kind::Execution,
                serde_json::json!({"mode": "live", "actions": [{"index": 0, "idempotency_key": key,
                "action": "restart_replica", "target": target, "outcome": "succeeded", "started": at.to_rfc3339()}]}),
            )
        };
        let decision = record(
            Kind::Decision,
            serde_json::json!({"mode": "live", "verdict": "approved", "approval": {"token_id": "n0nce"}}),
        );
        let mut out = Vec::new();
        let mut prev = opsg_core::seal::GENESIS;
        for (seq, (ago, rec)) in [
            (7_200_000, exec("old", now.plus_millis(-7_200_000), "k-old")),
            (600_000, decision),
            (60_000, exec("new", now.plus_millis(-60_000), "k-new")),
        ]
        .into_iter()
        .enumerate()
        {
            let appended = now.plus_millis(-ago).to_rfc3339();
            let (line, h) = opsg_core::ledger::build(seq as u64 + 1, &appended, &rec, prev);
            out.extend_from_slice(&line);
            out.push(b'\n');
            prev = h;
        }
        let path = dir.join("ledger.jsonl");
        std::fs::write(&path, out).unwrap();
        path
    }

    #[test]
    fn the_ledger_is_read_from_the_end_back_to_the_horizon() {
        let dir = tmp("ledger");
        std::fs::create_dir_all(&dir).unwrap();
        let now = Timestamp(1_800_000_000_000);
        let path = sample_ledger(&dir, now);
        for block in [7, 64, 1 << 20] {
            let all = read_ledger_blocks(&path, None, block).unwrap();
            let mut targets: Vec<&str> = all.events.iter().map(|e| e.target.as_str()).collect();
            targets.sort_unstable();
            assert_eq!(targets, vec!["new", "old"], "block {block}");
            assert_eq!(all.spent_nonces.get("n0nce"), Some(&2));
            let recent =
                read_ledger_blocks(&path, Some(now.plus_millis(-3_600_000)), block).unwrap();
            assert_eq!(recent.events.len(), 1, "block {block}");
            assert_eq!(recent.events[0].target, "new");
            assert!(recent.spent_nonces.contains_key("n0nce"));
        }
        // A torn append (no newline) is ignored; the lines before it still count.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"ledger\":\"opsg.ledger/v1\",\"seq\":4,\"app");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_ledger_blocks(&path, None, 64).unwrap().events.len(), 2);
        // A modified line is refused, naming it.
        let text = String::from_utf8(std::fs::read(&path).unwrap())
            .unwrap()
            .replace("\"target\":\"new\"", "\"target\":\"wen\"");
        std::fs::write(&path, text).unwrap();
        let e = read_ledger_blocks(&path, None, 64).unwrap_err();
        assert_eq!(e.status().code(), 5, "{e}");
        assert!(e.to_string().contains(":3:"), "{e}");
        assert!(read_ledger(&dir.join("missing.jsonl"), None).unwrap().events.is_empty());
        // A recent line deleted (the decision that spent a nonce, say): every line left is
        // intact, but the links between them are not, and the gate refuses to decide on it.
        let path = sample_ledger(&dir, now);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> =
            text.lines().enumerate().filter(|(i, _)| *i != 1).map(|l| l.1).collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
        for block in [7, 1 << 20] {
            let e = read_ledger_blocks(&path, None, block).unwrap_err();
            assert_eq!(e.status().code(), 5, "{e}");
            assert!(e.to_string().contains(":2:"), "{e}");
        }
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

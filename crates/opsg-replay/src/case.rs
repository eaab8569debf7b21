//! Cases: a directory holding a `case.json` (expectations) and the recorded input.
//!
//! ```text
//! examples/incidents/kv_cache_saturation-100/
//!   case.json          {"id": …, "now": …, "expected_class": …, "expected_first_action": …,
//!                       "expected_decision": …, "expected_outcome": …}
//!   observation.jsonl  a recording: any prefix of a pipe's output (the stages after the last
//!                      observation are recomputed), or
//!   *.prom             raw `/metrics` captures, one target each (named after the file)
//!   fleet-state.json   optional: opsg-sim's `GET /state` when recorded, for plan's prior state
//! ```
//!
//! Every `expected_*` member is optional: a case checks what it names. Unknown members
//! (`scenario`, `seed`, `source`) are kept as notes.

use opsg_core::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The expectations and settings in a `case.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CaseFile {
    /// The case's name (default: the directory name).
    #[serde(default)]
    pub id: Option<String>,
    /// The clock for the stages (RFC 3339); default: the observation's creation time.
    #[serde(default)]
    pub now: Option<String>,
    /// The incident class triage must name (`none` for a healthy window).
    #[serde(default)]
    pub expected_class: Option<String>,
    /// The first planned action (`none` when no action is expected).
    #[serde(default)]
    pub expected_first_action: Option<String>,
    /// The gate's verdict: approved, awaiting_approval, blocked, no_action.
    #[serde(default)]
    pub expected_decision: Option<String>,
    /// The outcome the pure stages imply: no_incident, blocked, awaiting_approval, dry_run,
    /// approved (live, would execute).
    #[serde(default)]
    pub expected_outcome: Option<String>,
    /// The input file, relative to the case directory (default: `recording.jsonl`, then
    /// `observation.jsonl`, then every `*.prom`).
    #[serde(default)]
    pub input: Option<String>,
    /// A rules file for triage, relative to the case directory.
    #[serde(default)]
    pub rules: Option<String>,
    /// An action catalog for plan, relative to the case directory.
    #[serde(default)]
    pub catalog: Option<String>,
    /// A policy for the gate, relative to the case directory.
    #[serde(default)]
    pub policy: Option<String>,
    /// A `GET /state` snapshot of the fleet for plan's prior state (`opsg-plan --fleet-state`),
    /// relative to the case directory; default: `fleet-state.json` when the case has one.
    #[serde(default)]
    pub fleet_state: Option<String>,
    /// Labels for `.prom` capture targets, by file stem (`deployment`, `role`, `node`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Anything else (kept, not checked).
    #[serde(flatten)]
    pub notes: BTreeMap<String, serde_json::Value>,
}

/// A discovered case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its case file.
    pub file: CaseFile,
}

/// What a case's input is.
#[derive(Debug, Clone)]
pub enum Input {
    /// A JSON Lines recording.
    Recording(PathBuf),
    /// Raw exposition captures.
    Captures(Vec<PathBuf>),
}

impl Case {
    /// Load the case in `dir`.
    pub fn load(dir: &Path) -> Result<Case> {
        let path = dir.join("case.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        let file: CaseFile = serde_json::from_str(&text).map_err(|e| {
            Error::invalid(format!("invalid case file: {e}"))
                .in_source(path.display().to_string())
                .at_line(e.line() as u64)
        })?;
        let name = file.id.clone().unwrap_or_else(|| {
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        });
        Ok(Case { name, dir: dir.to_path_buf(), file })
    }

    /// Resolve a path named in the case file.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The fleet-state snapshot, if the case has one.
    pub fn fleet_state(&self) -> Option<PathBuf> {
        match &self.file.fleet_state {
            Some(name) => Some(self.path(name)),
            None => Some(self.path("fleet-state.json")).filter(|p| p.is_file()),
        }
    }

    /// Find the input.
    pub fn input(&self) -> Result<Input> {
        if let Some(name) = &self.file.input {
            let path = self.path(name);
            return Ok(if name.ends_with(".jsonl") {
                Input::Recording(path)
            } else {
                Input::Captures(vec![path])
            });
        }
        for name in ["recording.jsonl", "observation.jsonl"] {
            let path = self.path(name);
            if path.is_file() {
                return Ok(Input::Recording(path));
            }
        }
        let mut captures: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(self.dir.display(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "prom"))
            .collect();
        captures.sort();
        if captures.is_empty() {
            return Err(Error::invalid(
                "no input: expected recording.jsonl, observation.jsonl or *.prom captures",
            )
            .in_source(self.dir.display().to_string()));
        }
        Ok(Input::Captures(captures))
    }
}

/// Every case under `root` (directories holding a `case.json`, at any depth), sorted by path so
/// results are in a stable order. `root` may itself be a case.
pub fn discover(root: &Path) -> Result<Vec<Case>> {
    let mut dirs = Vec::new();
    walk(root, &mut dirs, 0)?;
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::invalid("no cases found (a case is a directory with a case.json)")
            .in_source(root.display().to_string()));
    }
    dirs.iter().map(|d| Case::load(d)).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    // Bounded: corpora are shallow; a symlink loop must not recurse forever.
    if depth > 16 {
        return Ok(());
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir.display(), e))?;
    if !meta.is_dir() {
        return Err(Error::invalid("not a directory").in_source(dir.display().to_string()));
    }
    if dir.join("case.json").is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out, depth + 1)?;
        }
    }
    Ok(())
}

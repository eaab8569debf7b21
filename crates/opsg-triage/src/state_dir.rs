//! The files triage keeps in `--state-dir`: small JSON documents, read whole and written
//! atomically (a temporary file renamed into place), so a cron run killed mid-write leaves the
//! previous version, and two runs racing leave one of theirs whole.

use opsg_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Read `DIR/name` (`None` when absent); `what` names it in errors ("triage state").
pub fn load<T: DeserializeOwned>(dir: &Path, name: &str, what: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::invalid(format!("invalid {what}: {e}")).in_source(path.display().to_string())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

/// Write `DIR/name` atomically, pretty-printed, creating DIR.
pub fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::internal(e.to_string()))? + "\n";
    std::fs::write(&tmp, text).map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display(), e))
}

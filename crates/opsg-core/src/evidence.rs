//! A content-addressed evidence store: raw bytes kept out of records, named by their SHA-256.
//!
//! Layout: `DIR/sha256/<64 hex>`. Writes go to a temporary file in the same directory and are
//! renamed into place, so a reader never sees a partial file and two writers of the same bytes
//! cannot corrupt each other.

use crate::error::{Error, Result};
use crate::record::EvidenceRef;
use crate::seal::HashHex;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An evidence directory.
#[derive(Debug, Clone)]
pub struct EvidenceStore {
    root: PathBuf,
}

impl EvidenceStore {
    /// Use `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> EvidenceStore {
        EvidenceStore { root: root.into() }
    }

    /// Where the bytes with this hash live.
    pub fn path_of(&self, hash: &HashHex) -> PathBuf {
        self.root.join("sha256").join(hash.as_str())
    }

    /// Store `bytes` (idempotently) and return the reference to put in a record.
    pub fn put(&self, bytes: &[u8], media_type: &str, about: Option<&str>) -> Result<EvidenceRef> {
        let hash = HashHex::of(bytes);
        let dir = self.root.join("sha256");
        let dest = dir.join(hash.as_str());
        if !dest.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
            let tmp = dir.join(format!(".{}.{}.tmp", hash.short(16), std::process::id()));
            let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
            file.write_all(bytes)
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(tmp.display(), e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| Error::io(dest.display(), e))?;
        }
        Ok(EvidenceRef {
            sha256: hash,
            media_type: media_type.to_string(),
            bytes: bytes.len() as u64,
            about: about.map(str::to_string),
        })
    }

    /// Read the bytes back and check they still hash to their name.
    pub fn get(&self, hash: &HashHex) -> Result<Vec<u8>> {
        let path = self.path_of(hash);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
        if HashHex::of(&bytes) != *hash {
            return Err(Error::tamper(format!(
                "evidence `{}` does not hash to its name",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_detect_tamper() {
        let dir = std::env::temp_dir().join(format!("opsg-evidence-{}", std::process::id()));
        let store = EvidenceStore::new(&dir);
        let r = store.put(b"metric 1\n", "text/plain; version=0.0.4", Some("t1")).unwrap();
        assert_eq!(r.bytes, 9);
        assert_eq!(store.get(&r.sha256).unwrap(), b"metric 1\n");
        // Idempotent.
        assert_eq!(store.put(b"metric 1\n", "text/plain", None).unwrap().sha256, r.sha256);
        std::fs::write(store.path_of(&r.sha256), b"metric 2\n").unwrap();
        assert_eq!(store.get(&r.sha256).unwrap_err().status().code(), 5);
        std::fs::remove_dir_all(dir).ok();
    }
}

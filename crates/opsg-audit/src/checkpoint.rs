//! Checkpoints (`schemas/HASHING.md`, section 6): the head of a ledger, kept elsewhere, optionally
//! HMAC-signed, so that truncation and rewriting can be detected.

use opsg_core::hmac::{constant_time_eq, hmac_sha256_hex};
use opsg_core::seal::HashHex;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The checkpoint format id.
pub const CHECKPOINT_ID: &str = "opsg.checkpoint/v1";

/// The environment variable holding the checkpoint key.
pub const KEY_ENV: &str = "OPSG_CHECKPOINT_KEY";

const MAC_PREFIX: &str = "hmac-sha256:";

/// A ledger checkpoint. Members serialize in the documented order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Always `opsg.checkpoint/v1`.
    pub checkpoint: String,
    /// The ledger path, as given when the checkpoint was made (informative, not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
    /// Number of ledger lines `N`.
    pub records: u64,
    /// The hash of line `N` (`GENESIS` when `N = 0`).
    pub head: HashHex,
    /// When it was made, RFC 3339 UTC.
    pub created: String,
    /// `hmac-sha256:<64 hex>` when a key was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The bytes the MAC covers.
fn mac_message(records: u64, head: HashHex, created: &str) -> String {
    format!("{CHECKPOINT_ID}\n{records}\n{head}\n{created}")
}

impl Checkpoint {
    /// A checkpoint of `records` lines ending in `head`, signed when `key` is given.
    pub fn new(
        ledger: Option<String>,
        records: u64,
        head: HashHex,
        created: String,
        key: Option<&[u8]>,
    ) -> Checkpoint {
        let mac = key.map(|key| {
            let message = mac_message(records, head, &created);
            format!("{MAC_PREFIX}{}", hmac_sha256_hex(key, message.as_bytes()))
        });
        Checkpoint { checkpoint: CHECKPOINT_ID.to_string(), ledger, records, head, created, mac }
    }

    /// Parse a checkpoint file's bytes (schema-checked); errors name the file and member.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Checkpoint> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(format!("malformed checkpoint JSON: {e}")).in_source(source)
        })?;
        opsg_core::schema::validate("checkpoint.schema.json", &value)
            .map_err(|e| e.in_source(source))?;
        let checkpoint = Checkpoint::deserialize(&value)
            .map_err(|e| Error::invalid(format!("invalid checkpoint: {e}")).in_source(source))?;
        opsg_core::time::Timestamp::parse_rfc3339(&checkpoint.created)
            .map_err(|e| e.at_field("created").in_source(source))?;
        Ok(checkpoint)
    }

    /// Check the MAC against `key` (from [`KEY_ENV`]). A signed checkpoint needs the key to be
    /// trusted (usage error without it: exit 2); with a key set, an unsigned or wrongly signed
    /// checkpoint is refused as forged (exit 5).
    pub fn authenticate(&self, key: Option<&[u8]>, source: &str) -> Result<()> {
        match (&self.mac, key) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(Error::usage(format!(
                "the checkpoint is signed but {KEY_ENV} is not set: cannot check its MAC"
            ))
            .in_source(source)),
            (None, Some(_)) => Err(Error::tamper(format!(
                "the checkpoint is not signed but {KEY_ENV} is set: an unsigned checkpoint could \
                 be forged"
            ))
            .at_field("mac")
            .in_source(source)),
            (Some(mac), Some(key)) => {
                let expected = format!(
                    "{MAC_PREFIX}{}",
                    hmac_sha256_hex(
                        key,
                        mac_message(self.records, self.head, &self.created).as_bytes()
                    )
                );
                if constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
                    Ok(())
                } else {
                    Err(Error::tamper(
                        "forged checkpoint: its MAC does not verify under the key (the checkpoint \
                         or the key changed)",
                    )
                    .at_field("mac")
                    .in_source(source))
                }
            }
        }
    }

    /// The checkpoint as one line of JSON (no newline).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::internal(format!("cannot serialize a checkpoint: {e}")))
    }
}

/// The checkpoint key from the environment, if set and not empty.
pub fn key_from_env() -> Option<Vec<u8>> {
    std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()).map(|v| v.into_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsg_core::seal::GENESIS;

    #[test]
    fn signed_checkpoints_round_trip_and_forgeries_fail() {
        let created = "2026-11-22T06:24:23.123Z".to_string();
        let cp = Checkpoint::new(Some("l".into()), 3, GENESIS, created, Some(b"k"));
        let json = cp.to_json().unwrap();
        assert!(
            json.starts_with(
                "{\"checkpoint\":\"opsg.checkpoint/v1\",\"ledger\":\"l\",\"records\":3,"
            )
        );
        let back = Checkpoint::parse(json.as_bytes(), "cp").unwrap();
        assert_eq!(back, cp);
        back.authenticate(Some(b"k"), "cp").unwrap();
        assert_eq!(back.authenticate(Some(b"other"), "cp").unwrap_err().status().code(), 5);
        assert_eq!(back.authenticate(None, "cp").unwrap_err().status().code(), 2);
        let forged = Checkpoint { records: 2, ..back.clone() };
        assert_eq!(forged.authenticate(Some(b"k"), "cp").unwrap_err().status().code(), 5);
        let unsigned = Checkpoint { mac: None, ..back };
        assert_eq!(unsigned.authenticate(Some(b"k"), "cp").unwrap_err().status().code(), 5);
        unsigned.authenticate(None, "cp").unwrap();
    }

    #[test]
    fn mac_matches_the_documented_message() {
        // HASHING.md section 6: HMAC-SHA256(key, "opsg.checkpoint/v1\n" N "\n" H_N "\n" T).
        let cp = Checkpoint::new(None, 0, GENESIS, "T".into(), Some(b"key"));
        let message = format!("opsg.checkpoint/v1\n0\n{GENESIS}\nT");
        let expected = hmac_sha256_hex(b"key", message.as_bytes());
        assert_eq!(cp.mac.unwrap(), format!("hmac-sha256:{expected}"));
    }

    #[test]
    fn bad_checkpoints_name_the_member() {
        let err = Checkpoint::parse(b"{\"checkpoint\":\"opsg.checkpoint/v1\"}", "cp").unwrap_err();
        assert_eq!(err.status().code(), 3);
        assert!(err.to_string().starts_with("cp"), "{err}");
        assert!(Checkpoint::parse(b"not json", "cp").is_err());
    }
}

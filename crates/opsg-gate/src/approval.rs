//! Signed approvals: tokens bound to one plan hash, one approver, an expiry and a nonce.
//!
//! A token is `opsg-approval.v1.<payload>.<mac>` where `payload` is the base64url (no padding)
//! encoding of a compact JSON object `{"plan","approver","issued","expires","nonce"}` and `mac` is
//! `HMAC-SHA256(key, "opsg.approval/v1\n" || payload)` in lowercase hex, the key being the UTF-8
//! bytes of `OPSG_APPROVAL_KEY`. The MAC covers the encoded payload bytes exactly, so verifying
//! needs no canonical JSON. The nonce (128 random bits) makes each token single-use: the gate
//! records it when a live decision uses it, and refuses it afterwards (replay).

use opsg_core::hmac::{constant_time_eq, hmac_sha256_hex};
use opsg_core::seal::HashHex;
use opsg_core::time::Timestamp;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The environment variable holding the HMAC key.
pub const KEY_ENV: &str = "OPSG_APPROVAL_KEY";
/// The token prefix (names the format and its version).
pub const PREFIX: &str = "opsg-approval.v1.";
const DOMAIN: &[u8] = b"opsg.approval/v1\n";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The plan record's hash the approval is for.
    pub plan: HashHex,
    /// Who approved.
    pub approver: String,
    /// When the token was issued (RFC 3339).
    pub issued: String,
    /// When it stops being valid (RFC 3339).
    pub expires: String,
    /// 32 hex digits of randomness: the token's id.
    pub nonce: String,
}

/// Why a token was refused. Each maps to a decision reason code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a token at all.
    Malformed(String),
    /// No key in the environment to check it with.
    NoKey,
    /// The MAC does not verify: forged, or signed under another key.
    Forged,
    /// Signed for another plan.
    OtherPlan {
        /// The plan the token names.
        token_plan: HashHex,
    },
    /// Past its expiry.
    Expired {
        /// When it expired.
        expires: String,
    },
    /// Valid for longer than the policy allows.
    TooLong {
        /// The policy's maximum, as written.
        max: String,
    },
    /// Already used by an earlier decision.
    Replayed {
        /// Where the earlier use was found.
        seen_in: String,
    },
}

impl Rejection {
    /// The decision reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "approval_malformed",
            Rejection::NoKey => "approval_no_key",
            Rejection::Forged => "approval_forged",
            Rejection::OtherPlan { .. } => "approval_other_plan",
            Rejection::Expired { .. } => "approval_expired",
            Rejection::TooLong { .. } => "approval_too_long",
            Rejection::Replayed { .. } => "approval_replayed",
        }
    }

    /// The explanation.
    pub fn message(&self, plan: &HashHex) -> String {
        match self {
            Rejection::Malformed(why) => format!("the approval token is malformed: {why}"),
            Rejection::NoKey => format!("an approval token was given but `{KEY_ENV}` is not set, so it cannot be verified"),
            Rejection::Forged => "the approval token's signature does not verify (forged, altered, or signed under another key)".into(),
            Rejection::OtherPlan { token_plan } => format!(
                "the approval token is for plan `{}`, not this plan `{}`",
                token_plan.short(16),
                plan.short(16)
            ),
            Rejection::Expired { expires } => format!("the approval token expired at {expires}"),
            Rejection::TooLong { max } => format!("the approval token is valid for longer than the policy's `max_approval_ttl` ({max})"),
            Rejection::Replayed { seen_in } => format!("the approval token was already used ({seen_in}); approvals are single-use"),
        }
    }
}

/// Issue a token for `plan`.
pub fn issue(
    key: &[u8],
    plan: HashHex,
    approver: &str,
    now: Timestamp,
    ttl_ms: i64,
) -> Result<(String, Claims)> {
    if approver.trim().is_empty() {
        return Err(Error::usage("`--approver` must name a person"));
    }
    let claims = Claims {
        plan,
        approver: approver.to_string(),
        issued: now.to_rfc3339(),
        expires: now.plus_millis(ttl_ms).to_rfc3339(),
        nonce: random_hex(16)?,
    };
    let json = serde_json::to_vec(&claims).map_err(|e| Error::internal(e.to_string()))?;
    let payload = b64url_encode(&json);
    let mac = mac(key, &payload);
    Ok((format!("{PREFIX}{payload}.{mac}"), claims))
}

fn mac(key: &[u8], payload: &str) -> String {
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(payload.as_bytes());
    hmac_sha256_hex(key, &message)
}

/// Check a token's form and signature and return its claims; plan, expiry and replay are
/// checked by [`check`].
pub fn decode(token: &str, key: Option<&[u8]>) -> std::result::Result<Claims, Rejection> {
    let token = token.trim();
    let rest = token
        .strip_prefix(PREFIX)
        .ok_or_else(|| Rejection::Malformed(format!("it does not start with `{PREFIX}`")))?;
    let (payload, mac_hex) =
        rest.split_once('.').ok_or_else(|| Rejection::Malformed("no signature part".into()))?;
    if mac_hex.len() != 64 || !mac_hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Rejection::Malformed("the signature is not 64 hex digits".into()));
    }
    let json = b64url_decode(payload)
        .ok_or_else(|| Rejection::Malformed("the payload is not base64url".into()))?;
    let key = key.ok_or(Rejection::NoKey)?;
    // Signature first: nothing in an unauthenticated payload is believed, not even its shape.
    if !constant_time_eq(mac(key, payload).as_bytes(), mac_hex.to_ascii_lowercase().as_bytes()) {
        return Err(Rejection::Forged);
    }
    serde_json::from_slice::<Claims>(&json)
        .map_err(|e| Rejection::Malformed(format!("the payload is not valid claims: {e}")))
}

/// Check a decoded token against the plan, the clock, the policy's longest TTL and the nonces
/// already used.
pub fn check(
    claims: &Claims,
    plan: HashHex,
    now: Timestamp,
    max_ttl_ms: i64,
    used: impl Fn(&str) -> Option<String>,
) -> std::result::Result<(), Rejection> {
    if claims.nonce.len() != 32 || !claims.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::Malformed("the nonce is not 32 hex digits".into()));
    }
    if claims.plan != plan {
        return Err(Rejection::OtherPlan { token_plan: claims.plan });
    }
    let expires = Timestamp::parse_rfc3339(&claims.expires)
        .map_err(|_| Rejection::Malformed("`expires` is not RFC 3339".into()))?;
    let issued = Timestamp::parse_rfc3339(&claims.issued)
        .map_err(|_| Rejection::Malformed("`issued` is not RFC 3339".into()))?;
    if now >= expires {
        return Err(Rejection::Expired { expires: claims.expires.clone() });
    }
    if expires.millis() - issued.millis() > max_ttl_ms {
        return Err(Rejection::TooLong { max: format!("{} s", max_ttl_ms / 1000) });
    }
    if let Some(seen_in) = used(&claims.nonce) {
        return Err(Rejection::Replayed { seen_in });
    }
    Ok(())
}

/// `n` random bytes from the kernel, as hex.
pub fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5).
pub fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decode base64url without padding; `None` on any invalid character or length.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = B64.iter().position(|b| b == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-key-not-secret";
    const HOUR: i64 = 3_600_000;

    fn plan() -> HashHex {
        HashHex::of(b"plan")
    }

    #[test]
    fn base64url_round_trips() {
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let enc = b64url_encode(&bytes);
            assert!(!enc.contains('=') && !enc.contains('+') && !enc.contains('/'));
            assert_eq!(b64url_decode(&enc).unwrap(), bytes, "n={n}");
        }
        assert_eq!(b64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64url_encode(b"fo"), "Zm8");
        assert!(b64url_decode("Zm9v!").is_none());
    }

    #[test]
    fn a_valid_token_checks() {
        let now = Timestamp(1_800_000_000_000);
        let (token, claims) = issue(KEY, plan(), "alice", now, HOUR / 2).unwrap();
        let back = decode(&token, Some(KEY)).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.nonce.len(), 32);
        check(&back, plan(), now.plus_millis(1000), HOUR, |_| None).unwrap();
    }

    #[test]
    fn every_kind_of_bad_token_is_refused_with_its_reason() {
        let now = Timestamp(1_800_000_000_000);
        let (token, claims) = issue(KEY, plan(), "alice", now, HOUR / 2).unwrap();
        // Forged: signed under another key.
        assert_eq!(decode(&token, Some(b"other-key")), Err(Rejection::Forged));
        // Forged: payload altered (approver changed), signature kept.
        let (_, rest) = token.split_at(PREFIX.len());
        let (_, mac) = rest.split_once('.').unwrap();
        let mut evil = claims.clone();
        evil.approver = "mallory".into();
        let evil_payload = b64url_encode(&serde_json::to_vec(&evil).unwrap());
        let forged = format!("{PREFIX}{evil_payload}.{mac}");
        assert_eq!(decode(&forged, Some(KEY)), Err(Rejection::Forged));
        // The old prefix check some tools do is not a signature.
        assert!(matches!(decode("apr_123", Some(KEY)), Err(Rejection::Malformed(_))));
        assert_eq!(decode(&token, None), Err(Rejection::NoKey));
        // Other plan.
        let other = HashHex::of(b"another plan");
        assert!(matches!(
            check(&claims, other, now, HOUR, |_| None),
            Err(Rejection::OtherPlan { .. })
        ));
        // Expired.
        let later = now.plus_millis(HOUR);
        assert!(matches!(
            check(&claims, plan(), later, HOUR, |_| None),
            Err(Rejection::Expired { .. })
        ));
        // Longer than policy allows.
        assert!(matches!(
            check(&claims, plan(), now, HOUR / 4, |_| None),
            Err(Rejection::TooLong { .. })
        ));
        // Replayed.
        let r = check(&claims, plan(), now, HOUR, |n| (n == claims.nonce).then(|| "ledger".into()));
        assert!(matches!(r, Err(Rejection::Replayed { .. })));
    }

    #[test]
    fn nonces_differ() {
        let now = Timestamp(0);
        let (a, _) = issue(KEY, plan(), "a", now, HOUR).unwrap();
        let (b, _) = issue(KEY, plan(), "a", now, HOUR).unwrap();
        assert_ne!(a, b);
    }
}

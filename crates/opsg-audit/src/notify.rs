//! `--notify URL`: post a short incident summary to a webhook (Slack-compatible `{"text": …}`,
//! plus the figures as fields for other receivers).
//!
//! The post is made while the ledger is locked, after the new lines' positions are known and
//! before they are written, so that the report record can carry how it went (a failure is logged
//! and recorded, never fatal) and the message can carry the ledger position. The lock is held at
//! most the timeout longer. Should the ledger write then fail, the message announced an append
//! that did not happen; the run exits 4 and the next run notifies again (at least once).
//! Only the URL's scheme and host are recorded: a webhook's path is often its secret.

use opsg_core::kinds::report::{Notification, ReportBody};
use opsg_core::record::Envelope;
use opsg_core::{Error, Result, cli};
use serde_json::{Value, json};
use std::time::Duration;

/// Check a webhook URL before anything is read or appended.
pub fn check_url(url: &str) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(Error::usage(format!("--notify: `{}` is not an http(s) URL", endpoint(url)))),
    }
}

/// The scheme and host of a URL (what may be recorded and logged).
pub fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Drop credentials (`user:pass@host`).
    let host = host.rsplit('@').next().unwrap_or(host);
    if scheme.is_empty() { host.to_string() } else { format!("{scheme}://{host}") }
}

/// The message: `text` for Slack-compatible receivers, then the figures as fields.
pub fn payload(envelope: &Envelope, body: &ReportBody, report_seq: u64) -> Value {
    let incident = envelope.incident.as_deref().unwrap_or("(no incident)");
    let class = body.class.as_deref().unwrap_or("none");
    let mut text = format!("opsg: incident {incident} ({class}): {}", body.outcome);
    if let Some(mttr) = body.mttr_s {
        text.push_str(&format!(", MTTR {}", crate::read::human_duration(mttr)));
    }
    let a = &body.actions;
    text.push_str(&format!(
        "; {} action(s) ({} safe, {} impactful, {} destructive), {} rolled back",
        a.total, a.safe, a.impactful, a.destructive, a.rolled_back
    ));
    if let Some(ledger) = &body.ledger {
        text.push_str(&format!(
            "; ledger {} lines {}..{report_seq}",
            ledger.path, ledger.first_seq
        ));
    }
    if let Some(note) = &body.note {
        text.push_str(&format!(" ({note})"));
    }
    json!({
        "text": text,
        "incident": envelope.incident,
        "run": envelope.run,
        "report": envelope.id,
        "class": body.class,
        "outcome": body.outcome,
        "mttr_s": body.mttr_s,
        "time_to_detect_s": body.time_to_detect_s,
        "time_to_mitigate_s": body.time_to_mitigate_s,
        "actions": body.actions,
        "ledger": body.ledger.as_ref().map(|l| json!({
            "path": l.path, "first_seq": l.first_seq, "last_seq": l.last_seq, "report_seq": report_seq
        })),
    })
}

/// Post `payload` to `url` within `timeout`; never fails, says how it went.
pub fn send(url: &str, payload: &Value, timeout: Duration) -> Notification {
    let endpoint = endpoint(url);
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("opsg-audit/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let body = payload.to_string();
    let result = agent.post(url).header("content-type", "application/json").send(body.as_bytes());
    let notification = match result {
        Ok(response) if response.status().is_success() => Notification {
            endpoint,
            status: "sent".into(),
            http_status: Some(response.status().as_u16()),
            error: None,
        },
        Ok(response) => Notification {
            endpoint,
            status: "failed".into(),
            http_status: Some(response.status().as_u16()),
            error: Some(format!("the receiver answered HTTP {}", response.status().as_u16())),
        },
        Err(e) => Notification {
            endpoint,
            status: "failed".into(),
            http_status: None,
            // ureq's messages may quote the URL; keep only the kind of failure.
            error: Some(redact(&e.to_string(), url)),
        },
    };
    if notification.status != "sent" {
        cli::warn(format!(
            "notification to {} failed: {} (recorded in the report; the ledger is unaffected)",
            notification.endpoint,
            notification.error.as_deref().unwrap_or("unknown error")
        ));
    }
    notification
}

fn redact(message: &str, url: &str) -> String {
    message.replace(url, &endpoint(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_scheme_and_host_only() {
        assert_eq!(
            endpoint("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com"
        );
        assert_eq!(endpoint("http://user:pw@127.0.0.1:8080/hook?k=v"), "http://127.0.0.1:8080");
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert_eq!(check_url("ftp://x").unwrap_err().status().code(), 2);
        assert!(check_url("http:///path").is_err());
    }
}

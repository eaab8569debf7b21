//! Fetching an exposition over HTTP, defensively.
//!
//! A `/metrics` endpoint on a sick replica is exactly what this tool points at, so every way it can
//! misbehave ends as a classified [`FetchFailure`] instead of a hang or a crash: connect and total
//! timeouts, a cap on the (decompressed) body that stops a runaway payload after `cap` bytes, a
//! bounded number of redirects, and retries with jittered exponential backoff for failures that
//! may pass (refused connections, timeouts, 5xx, 429), never for ones that will not (4xx, the cap).
//! Proxies come from `HTTP(S)_PROXY`/`NO_PROXY`, as with curl.

use opsg_core::kinds::observation::{HeaderSource, ScrapeConfig, TargetStatus};
use std::io::Read;
use std::time::Duration;

/// The `Accept` header: OpenMetrics preferred, then text 0.0.4, as Prometheus 3 sends it.
///
/// `escaping=allow-utf-8` matters for vLLM: asked for plain OpenMetrics, prometheus_client 0.22+
/// escapes `vllm:x` to `vllm_x` in sample names but not in `# TYPE`, which no strict parser
/// (its own included) accepts; allowed UTF-8, it keeps the names as they are.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// How to fetch. Its `Debug` shows header names, never their values.
#[derive(Clone)]
pub struct HttpOptions {
    /// TCP (and TLS) connection setup bound.
    pub connect_timeout: Duration,
    /// Bound on one whole attempt: connect, headers, body, redirects.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// The first backoff; doubled after each failed attempt (capped at 8 s).
    pub backoff: Duration,
    /// The most body bytes accepted (after gzip decoding).
    pub max_bytes: u64,
    /// Redirects followed before giving up (a loop ends here).
    pub max_redirects: u32,
    /// The `Accept` header to send.
    pub accept: &'static str,
    /// Extra request headers (`Authorization`, a Mimir/Cortex `X-Scope-OrgID`, …). Their values
    /// never appear in records or messages.
    pub headers: Vec<(String, String)>,
    /// Trust these roots for HTTPS instead of the bundled Mozilla roots (an internal CA).
    pub roots: Option<ureq::tls::RootCerts>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> =
            self.headers.iter().map(|(n, _)| format!("{n}: <redacted>")).collect();
        f.debug_struct("HttpOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_bytes", &self.max_bytes)
            .field("max_redirects", &self.max_redirects)
            .field("accept", &self.accept)
            .field("headers", &names)
            .field("roots", &self.roots.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
            max_bytes: 64 << 20,
            max_redirects: 5,
            accept: ACCEPT,
            headers: Vec::new(),
            roots: None,
        }
    }
}

/// A body that came back with a 2xx status.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body, decompressed.
    pub bytes: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Attempts it took (1 when the first worked).
    pub attempts: u32,
}

/// Why a fetch gave up, classified for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchFailure {
    /// `down`, `timeout` or `error`.
    pub status: TargetStatus,
    /// One line for people: what happened.
    pub reason: String,
    /// Whether another attempt could help.
    pub transient: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The body of an HTTP error response (capped), kept as evidence of what the server said.
    pub body: Option<Vec<u8>>,
    /// How long a 429/503 answer asked us to wait (`Retry-After`, in seconds).
    pub retry_after: Option<Duration>,
}

/// Build the agent every fetch shares (connection reuse across samples of one target).
pub fn agent(opts: &HttpOptions) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(roots) = &opts.roots {
        tls = tls.root_certs(roots.clone());
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_global(Some(opts.timeout))
        .max_redirects(opts.max_redirects)
        .max_redirects_will_error(true)
        .user_agent(concat!("opsg-scrape/", env!("CARGO_PKG_VERSION")))
        .accept_encoding("gzip")
        .build()
        .new_agent()
}

/// GET `url` with retries and backoff; `query` pairs are URL-encoded onto it.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, String)],
    opts: &HttpOptions,
) -> Result<Fetched, FetchFailure> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match get_once(agent, url, query, opts) {
            Ok(mut fetched) => {
                fetched.attempts = attempt;
                return Ok(fetched);
            }
            Err(mut failure) => {
                failure.attempts = attempt;
                if !failure.transient || attempt > opts.retries {
                    if attempt > 1 {
                        failure.reason = format!("{} (after {attempt} attempts)", failure.reason);
                    }
                    return Err(failure);
                }
                let wait = jitter(backoff(opts.backoff, attempt), jitter_seed(url, attempt));
                // A server that says when to come back is believed, within the backoff ceiling.
                let wait = failure.retry_after.map_or(wait, |r| r.min(MAX_BACKOFF).max(wait));
                std::thread::sleep(wait);
            }
        }
    }
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The wait before attempt `attempt + 1`: `base × 2^(attempt-1)`, at most 8 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(10);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// `Retry-After` in its delay-seconds form (the HTTP-date form is ignored: clocks disagree).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// "Equal jitter": somewhere in `[d/2, d]`, so scrapers that failed together do not retry in
/// lockstep against a recovering replica.
pub fn jitter(d: Duration, seed: u64) -> Duration {
    let fraction = (seed % 1024) as f64 / 1023.0;
    d.mul_f64(0.5 + 0.5 * fraction)
}

/// A seed that differs between processes, targets and attempts (no RNG crate needed).
fn jitter_seed(url: &str, attempt: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(url.as_bytes());
    h.write_u32(attempt);
    h.finish()
}

fn get_once(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, String)],
    opts: &HttpOptions,
) -> Result<Fetched, FetchFailure> {
    let mut request = agent.get(url).header("Accept", opts.accept);
    for (name, value) in &opts.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    for (key, value) in query {
        request = request.query(*key, value);
    }
    let response = request.call().map_err(|e| classify(&e, opts))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let reader = response.into_body().into_with_config().limit(u64::MAX).reader();
    let bytes = read_capped(reader, opts.max_bytes).map_err(|e| match e {
        CappedError::TooBig => FetchFailure {
            status: TargetStatus::Error,
            reason: format!(
                "payload exceeds the {}-byte cap (--max-bytes); stopped reading",
                opts.max_bytes
            ),
            transient: false,
            attempts: 0,
            body: None,
            retry_after: None,
        },
        CappedError::Io(io) => classify(&ureq::Error::from(io), opts),
    });
    if !(200..300).contains(&status) {
        let body = bytes.ok().map(|mut b| {
            b.truncate(4096);
            b
        });
        let snippet = body
            .as_deref()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(160)]).trim().replace('\n', " "))
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return Err(FetchFailure {
            status: TargetStatus::Error,
            reason: format!("HTTP {status}{snippet}"),
            transient: status >= 500 || status == 429,
            attempts: 0,
            body,
            retry_after,
        });
    }
    Ok(Fetched { bytes: bytes?, content_type, attempts: 0 })
}

/// Read the certificates of a PEM file (`--ca-file`) as the only roots to trust.
pub fn load_roots(pem: &[u8]) -> Result<ureq::tls::RootCerts, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {} // keys and other sections are not roots
            Err(e) => return Err(format!("malformed PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// The request options of one target: its own headers ([`ScrapeConfig::headers`], read from the
/// environment or a file now) replace the run-wide ones of the same name (case-insensitive); its
/// `ca_file`, loaded, replaces the run-wide roots. An error names the header and the variable or
/// file, never a value.
pub fn target_options(config: &ScrapeConfig, base: &HttpOptions) -> Result<HttpOptions, String> {
    let mut opts = base.clone();
    for (name, source) in &config.headers {
        let value = header_value(name, source)?;
        opts.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        opts.headers.push((name.clone(), value));
    }
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file `{path}`: {e}"))?;
        opts.roots = Some(load_roots(&pem).map_err(|e| format!("ca_file `{path}`: {e}"))?);
    }
    Ok(opts)
}

/// The value a [`HeaderSource`] gives now: a literal, an environment variable (which must be
/// set and not empty) or a file's single line, after the prefix.
pub fn header_value(name: &str, source: &HeaderSource) -> Result<String, String> {
    let (prefix, value) = match source {
        HeaderSource::Value(v) => (None, v.clone()),
        HeaderSource::Env { env, prefix } => match std::env::var(env) {
            Ok(v) if !v.trim().is_empty() => (prefix.as_deref(), v.trim().to_string()),
            Ok(_) => return Err(format!("header `{name}`: environment variable `{env}` is empty")),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("header `{name}`: environment variable `{env}` is not set"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("header `{name}`: environment variable `{env}` is not UTF-8"));
            }
        },
        HeaderSource::File { file, prefix } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("header `{name}`: cannot read `{file}`: {e}"))?;
            let value = text.trim();
            if value.is_empty() || value.contains(['\r', '\n']) {
                return Err(format!("header `{name}`: `{file}` must hold one value on one line"));
            }
            (prefix.as_deref(), value.to_string())
        }
    };
    let value = format!("{}{value}", prefix.unwrap_or(""));
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("header `{name}`: the value contains a control character"));
    }
    Ok(value)
}

/// Parse a `Name: value` request header given on the command line.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not a header: expected `Name: value`"))?;
    let name = name.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("`{name}` is not a valid header name"));
    }
    let value = value.trim();
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("the value of header `{name}` contains a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Why [`read_capped`] stopped.
#[derive(Debug)]
pub enum CappedError {
    /// More than the cap.
    TooBig,
    /// The read failed.
    Io(std::io::Error),
}

/// Read at most `cap` bytes; one byte more is an error, found without reading the rest.
pub fn read_capped(reader: impl Read, cap: u64) -> Result<Vec<u8>, CappedError> {
    let mut bytes = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(CappedError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(CappedError::TooBig);
    }
    Ok(bytes)
}

fn classify(err: &ureq::Error, opts: &HttpOptions) -> FetchFailure {
    use std::io::ErrorKind;
    let (status, reason, transient) = match err {
        ureq::Error::Timeout(which) => (
            TargetStatus::Timeout,
            match which {
                ureq::Timeout::Connect => {
                    format!("connect timed out after {} ms", opts.connect_timeout.as_millis())
                }
                _ => format!("no complete answer within {} ms", opts.timeout.as_millis()),
            },
            true,
        ),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                (TargetStatus::Down, "connection refused".to_string(), true)
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                (TargetStatus::Timeout, format!("timed out: {io}"), true)
            }
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                (TargetStatus::Error, format!("connection reset: {io}"), true)
            }
            ErrorKind::UnexpectedEof => (
                TargetStatus::Error,
                "connection closed before the answer was complete".into(),
                true,
            ),
            ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::AddrNotAvailable => {
                (TargetStatus::Down, format!("unreachable: {io}"), true)
            }
            // rustls reports certificate and handshake failures as invalid data: retrying will
            // not change the peer's certificate.
            ErrorKind::InvalidData => (TargetStatus::Error, io.to_string(), false),
            _ => (TargetStatus::Error, format!("i/o error: {io}"), true),
        },
        ureq::Error::HostNotFound => (TargetStatus::Down, "host not found".into(), true),
        ureq::Error::ConnectionFailed => (TargetStatus::Down, "connection failed".into(), true),
        ureq::Error::TooManyRedirects => (
            TargetStatus::Error,
            format!("redirect loop: more than {} redirects", opts.max_redirects),
            false,
        ),
        ureq::Error::BadUri(uri) => (TargetStatus::Error, format!("bad URL: {uri}"), false),
        ureq::Error::Protocol(p) => {
            (TargetStatus::Error, format!("HTTP protocol error: {p}"), false)
        }
        ureq::Error::Tls(t) => (TargetStatus::Error, format!("TLS error: {t}"), false),
        ureq::Error::BodyExceedsLimit(n) => (
            TargetStatus::Error,
            format!("payload exceeds the {n}-byte cap; stopped reading"),
            false,
        ),
        ureq::Error::LargeResponseHeader(..) => {
            (TargetStatus::Error, "response headers too large".into(), false)
        }
        other => (TargetStatus::Error, other.to_string(), false),
    };
    FetchFailure { status, reason, transient, attempts: 0, body: None, retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_and_checked() {
        assert_eq!(
            parse_header("X-Scope-OrgID: tenant-1").unwrap(),
            ("X-Scope-OrgID".to_string(), "tenant-1".to_string())
        );
        assert_eq!(parse_header("Authorization:Bearer a:b").unwrap().1, "Bearer a:b");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header(": x").is_err());
    }

    #[test]
    fn target_headers_come_from_env_and_files_and_replace_run_wide_ones() {
        let dir = std::env::temp_dir().join(format!("opsg-fetch-hdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        // A variable every test process has (setting one would need `unsafe`); the end-to-end
        // tests set their own on the child process.
        let var = "PATH".to_string();
        let path_value = std::env::var(&var).unwrap();
        let base = HttpOptions {
            headers: vec![("authorization".into(), "Bearer run-wide".into())],
            ..HttpOptions::default()
        };
        let config = ScrapeConfig {
            headers: [
                (
                    "Authorization".to_string(),
                    HeaderSource::Env { env: var.clone(), prefix: Some("Bearer ".into()) },
                ),
                (
                    "X-Key".to_string(),
                    HeaderSource::File { file: token.display().to_string(), prefix: None },
                ),
                ("X-Scope-OrgID".to_string(), HeaderSource::Value("fleet".into())),
            ]
            .into(),
            ..ScrapeConfig::default()
        };
        let opts = target_options(&config, &base).unwrap();
        let mut got = opts.headers.clone();
        got.sort();
        assert_eq!(
            got,
            [
                ("Authorization".to_string(), format!("Bearer {}", path_value.trim())),
                ("X-Key".to_string(), "from-file".to_string()),
                ("X-Scope-OrgID".to_string(), "fleet".to_string()),
            ]
        );

        let missing = HeaderSource::Env { env: "OPSG_TEST_SURELY_UNSET".into(), prefix: None };
        let e = header_value("Authorization", &missing).unwrap_err();
        assert!(e.contains("is not set") && e.contains("_UNSET"), "{e}");
        let e =
            header_value("X", &HeaderSource::File { file: "/nonexistent/t".into(), prefix: None })
                .unwrap_err();
        assert!(e.contains("/nonexistent/t"), "{e}");
        std::fs::write(&token, "two\nlines\n").unwrap();
        let e = header_value(
            "X",
            &HeaderSource::File { file: token.display().to_string(), prefix: None },
        )
        .unwrap_err();
        assert!(e.contains("one line") && !e.contains("two"), "{e}");

        let bad_ca =
            ScrapeConfig { ca_file: Some(token.display().to_string()), ..ScrapeConfig::default() };
        let e = target_options(&bad_ca, &base).unwrap_err();
        assert!(e.contains("ca_file") && e.contains("PEM"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn debug_output_never_shows_a_header_value() {
        let opts = HttpOptions {
            headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
            ..HttpOptions::default()
        };
        let shown = format!("{opts:?}");
        assert!(shown.contains("Authorization") && !shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 30), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let d = Duration::from_millis(1000);
        assert_eq!(jitter(d, 0), Duration::from_millis(500));
        assert_eq!(jitter(d, 1023), d);
        for seed in [1, 77, 512, 9_999_999, u64::MAX] {
            let j = jitter(d, seed);
            assert!(j >= Duration::from_millis(500) && j <= d, "{j:?}");
        }
    }

    #[test]
    fn capped_read_stops_one_byte_past_the_cap() {
        // An endless reader: the cap must end the read.
        let endless = std::io::repeat(b'x');
        assert!(matches!(read_capped(endless, 1000), Err(CappedError::TooBig)));
        assert_eq!(read_capped(&b"abc"[..], 3).unwrap(), b"abc");
        assert!(matches!(read_capped(&b"abcd"[..], 3), Err(CappedError::TooBig)));
    }
}

//! What to scrape: HTTP `/metrics` endpoints, recorded captures and stdin, with their labels.
//!
//! Targets come from `--target URL`, `--file PATH` and a targets file (`--targets FILE`, JSON,
//! described by `schemas/targets.schema.json`). Every target gets a unique name, because triage
//! and the later stages address replicas by it.

use opsg_core::kinds::observation::{HeaderSource, ScrapeConfig};
use opsg_core::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The targets-file schema, embedded so a binary never needs the source tree.
pub const TARGETS_SCHEMA: &str = include_str!("../../../schemas/targets.schema.json");

/// Where a target's exposition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An HTTP(S) `/metrics` URL.
    Http(String),
    /// A recorded capture on disk (replay).
    File(PathBuf),
    /// A capture piped on stdin (replay).
    Stdin,
}

impl Source {
    /// How the source is written in the record (`source` member): the URL, the path, or `-`.
    pub fn describe(&self) -> String {
        match self {
            Source::Http(url) => url.clone(),
            Source::File(path) => path.display().to_string(),
            Source::Stdin => "-".to_string(),
        }
    }

    /// True for recorded captures (files and stdin): their values are not current.
    pub fn is_replay(&self) -> bool {
        !matches!(self, Source::Http(_))
    }
}

/// One thing to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Unique name (from the targets file, else derived from the URL or path).
    pub name: String,
    /// Where to read it.
    pub source: Source,
    /// Labels that travel into the record: `deployment`, `role`, `route`, `node`, …
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// A target for an HTTP URL, named after its host and port (and path, when not `/metrics`).
    pub fn http(url: &str) -> Result<Target> {
        check_url(url)?;
        Ok(Target {
            name: name_from_url(url),
            source: Source::Http(url.to_string()),
            labels: BTreeMap::new(),
        })
    }

    /// A target for a capture file (`-` for stdin), named after the file.
    pub fn file(path: &Path) -> Target {
        if path.as_os_str() == "-" {
            return Target { name: "stdin".into(), source: Source::Stdin, labels: BTreeMap::new() };
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| path.display().to_string());
        Target { name, source: Source::File(path.to_path_buf()), labels: BTreeMap::new() }
    }
}

/// Reject what is not an absolute `http://` or `https://` URL with a host.
pub fn check_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| Error::usage(format!("`{url}` is not an http:// or https:// URL")))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(Error::usage(format!("`{url}` has no host")));
    }
    Ok(())
}

/// `http://10.0.0.7:8000/metrics` → `10.0.0.7:8000`; other paths are kept: `host:port/path`.
pub fn name_from_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if path.is_empty() || path == "metrics" {
        host.to_string()
    } else {
        format!("{host}/{}", path.trim_end_matches('/'))
    }
}

#[derive(Debug, Deserialize)]
struct TargetsFile {
    targets: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
struct TargetEntry {
    name: Option<String>,
    url: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, HeaderSource>,
    ca_file: Option<String>,
}

/// A target of a targets file with its own request settings (empty when it has none).
pub type FileTarget = (Target, ScrapeConfig);

/// Read a targets file: JSON checked against `schemas/targets.schema.json`. Errors name the file,
/// the line (for malformed JSON) or the field, and why. Relative `ca_file` and header `file`
/// paths are made relative to the targets file's folder (as Prometheus does with its config), so
/// the record names a file a later re-scrape finds from anywhere.
pub fn load_targets_file(path: &Path) -> Result<Vec<FileTarget>> {
    let source = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| Error::io(&source, e))?;
    let mut targets = parse_targets(&text, &source)?;
    let dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let anchor = |p: &mut String| {
        if Path::new(p.as_str()).is_relative() {
            *p = dir.join(p.as_str()).display().to_string();
        }
    };
    for (_, config) in &mut targets {
        if let Some(ca) = &mut config.ca_file {
            anchor(ca);
        }
        for header in config.headers.values_mut() {
            if let HeaderSource::File { file, .. } = header {
                anchor(file);
            }
        }
    }
    Ok(targets)
}

/// Header names whose values are credentials: a targets file must say where to read them
/// (`env`, `file`), never hold them, because the file and the record are not secret.
pub fn is_credential_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(lower.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "key", "password", "auth"].iter().any(|w| lower.contains(w))
}

/// Parse a targets file's bytes (see [`load_targets_file`]); `source` names it in errors.
pub fn parse_targets(text: &[u8], source: &str) -> Result<Vec<FileTarget>> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        let message = e.to_string();
        let reason = message.rfind(" at line ").map_or(message.as_str(), |i| &message[..i]);
        Error::invalid(format!("malformed JSON: {reason}"))
            .in_source(source)
            .at_line(e.line() as u64)
            .at_column(e.column() as u64)
    })?;
    validate_targets(&value).map_err(|e| e.in_source(source))?;
    if value.is_array() {
        return file_sd_targets(value, source);
    }
    let file: TargetsFile = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("invalid targets file: {e}")).in_source(source))?;
    let mut out = Vec::with_capacity(file.targets.len());
    for (i, entry) in file.targets.into_iter().enumerate() {
        let field = format!("targets[{i}].url");
        let mut target = Target::http(&entry.url).map_err(|e| {
            Error::invalid(e.message().to_string()).in_source(source).at_field(&field)
        })?;
        if let Some(name) = entry.name {
            target.name = name;
        }
        target.labels = entry.labels;
        for (name, value) in &entry.headers {
            if matches!(value, HeaderSource::Value(_)) && is_credential_header(name) {
                return Err(Error::invalid(format!(
                    "header `{name}` carries a credential: give {{\"env\": \"VAR\"}} or {{\"file\": \"PATH\"}} (with an optional \"prefix\") so the secret stays out of the file and the records"
                ))
                .in_source(source)
                .at_field(format!("targets[{i}].headers.{name}")));
            }
        }
        let config =
            ScrapeConfig { headers: entry.headers, ca_file: entry.ca_file, ..Default::default() };
        out.push((target, config));
    }
    Ok(out)
}

/// Validate against the branch of the schema the file's shape selects (object: opsg's form;
/// array: Prometheus file_sd), so an error names the failing field instead of "matches no branch".
fn validate_targets(value: &serde_json::Value) -> Result<()> {
    let schema: serde_json::Value = serde_json::from_str(TARGETS_SCHEMA)
        .map_err(|e| Error::internal(format!("embedded targets schema is not JSON: {e}")))?;
    let branch = usize::from(value.is_array());
    let branch_schema = schema
        .get("oneOf")
        .and_then(|o| o.get(branch))
        .ok_or_else(|| Error::internal("embedded targets schema has no `oneOf` branches"))?;
    let validator = jsonschema::validator_for(branch_schema)
        .map_err(|e| Error::internal(format!("embedded targets schema does not compile: {e}")))?;
    if let Some(err) = validator.iter_errors(value).next() {
        let field = opsg_core::schema::pointer_to_dotted(&err.instance_path().to_string());
        let mut message = err.to_string();
        if message.len() > 300 {
            message.truncate(300);
            message.push('…');
        }
        let e = Error::invalid(format!("does not match `targets.schema.json`: {message}"));
        return Err(if field.is_empty() { e } else { e.at_field(field) });
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct TargetGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Prometheus file_sd target groups: `host:port` targets, `__scheme__` and `__metrics_path__`
/// honoured, other `__`-prefixed labels dropped (as relabelling would), the rest kept.
fn file_sd_targets(value: serde_json::Value, source: &str) -> Result<Vec<FileTarget>> {
    let groups: Vec<TargetGroup> = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("invalid file_sd targets: {e}")).in_source(source))?;
    let mut out = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let scheme = group.labels.get("__scheme__").map_or("http", String::as_str);
        let path = group.labels.get("__metrics_path__").map_or("/metrics", String::as_str);
        let labels: BTreeMap<String, String> = group
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (i, host) in group.targets.iter().enumerate() {
            let url = format!("{scheme}://{host}{path}");
            let mut target = Target::http(&url).map_err(|e| {
                Error::invalid(e.message().to_string())
                    .in_source(source)
                    .at_field(format!("[{g}].targets[{i}]"))
            })?;
            target.name = labels.get("instance").cloned().unwrap_or_else(|| host.clone());
            target.labels = labels.clone();
            out.push((target, ScrapeConfig::default()));
        }
    }
    Ok(out)
}

/// Make names unique: an explicit duplicate is an error (stages address targets by name); derived
/// names (from URLs and paths) get `#2`, `#3`, … appended.
pub fn dedupe_names(targets: &mut [Target], explicit: &[bool]) -> Result<()> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, target) in targets.iter_mut().enumerate() {
        let count = seen.entry(target.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            if explicit.get(i).copied().unwrap_or(false) {
                return Err(Error::invalid(format!(
                    "duplicate target name `{}`: names must be unique",
                    target.name
                ))
                .at_field(format!("targets[{i}].name")));
            }
            target.name = format!("{}#{}", target.name, count);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8], source: &str) -> Result<Vec<Target>> {
        parse_targets(text, source).map(|v| v.into_iter().map(|(t, _)| t).collect())
    }

    #[test]
    fn names_from_urls() {
        assert_eq!(name_from_url("http://10.0.0.7:8000/metrics"), "10.0.0.7:8000");
        assert_eq!(name_from_url("http://h:1"), "h:1");
        assert_eq!(name_from_url("https://h/replica/3/metrics"), "h/replica/3/metrics");
        assert_eq!(name_from_url("http://h:9/metrics?x=1"), "h:9");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9/metrics").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http:///metrics").is_err());
        assert_eq!(check_url("localhost:9").unwrap_err().status().code(), 2);
    }

    #[test]
    fn targets_file_round_trip() {
        let text = br#"{"targets":[
            {"name":"stable-0","url":"http://127.0.0.1:8001/metrics",
             "labels":{"deployment":"llama","role":"stable","route":"chat","node":"n1"}},
            {"url":"http://127.0.0.1:8002/metrics"}]}"#;
        let targets = parse(text, "t.json").unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].name, "stable-0");
        assert_eq!(targets[0].labels["role"], "stable");
        assert_eq!(targets[1].name, "127.0.0.1:8002");
        assert_eq!(targets[1].source, Source::Http("http://127.0.0.1:8002/metrics".into()));
    }

    #[test]
    fn bad_targets_files_name_where_and_why() {
        let e = parse(b"{\"targets\": [\n  {\"url\": }\n]}", "t.json").unwrap_err();
        assert!(e.to_string().starts_with("t.json:2:"), "{e}");
        assert_eq!(e.status().code(), 3);

        let e = parse(
            br#"{"targets":[{"url":"http://h:1/metrics","labels":{"role":"blue"}}]}"#,
            "t.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `targets[0].labels.role`"), "{e}");

        let e = parse(br#"{"targets":[{"url":"gopher://h"}]}"#, "t.json").unwrap_err();
        assert!(e.to_string().contains("targets[0].url"), "{e}");

        let e = parse(br#"{"targets":[{"name":"a"}]}"#, "t.json").unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
    }

    #[test]
    fn prometheus_file_sd_is_read() {
        let text = br#"[
            {"targets": ["10.0.0.7:8000", "10.0.0.8:8000"],
             "labels": {"job": "vllm", "deployment": "llama", "role": "canary", "__meta_x": "y"}},
            {"targets": ["10.0.0.9:9400"],
             "labels": {"__scheme__": "https", "__metrics_path__": "/dcgm/metrics", "instance": "gpu-node-1"}}
        ]"#;
        let targets = parse(text, "sd.json").unwrap();
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].name, "10.0.0.7:8000");
        assert_eq!(targets[0].source, Source::Http("http://10.0.0.7:8000/metrics".into()));
        assert_eq!(targets[1].labels["role"], "canary");
        assert!(!targets[1].labels.contains_key("__meta_x"));
        assert_eq!(targets[2].source, Source::Http("https://10.0.0.9:9400/dcgm/metrics".into()));
        assert_eq!(targets[2].name, "gpu-node-1");

        let e = parse(br#"[{"targets": ["h:1"], "labels": {"job": 7}}]"#, "sd.json").unwrap_err();
        assert!(e.to_string().contains("field `[0].labels.job`"), "{e}");
        let e = parse(br#"[{"targets": ["http://h:1/metrics"]}]"#, "sd.json").unwrap_err();
        assert!(e.to_string().contains("[0].targets[0]"), "{e}");
    }

    #[test]
    fn the_example_targets_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/scrape/fleet.targets.json");
        let targets: Vec<Target> =
            load_targets_file(&path).unwrap().into_iter().map(|(t, _)| t).collect();
        assert_eq!(targets.len(), 5);
        assert_eq!(targets[2].labels["role"], "canary");
        assert!(targets.iter().all(|t| matches!(t.source, Source::Http(_))));
    }

    #[test]
    fn per_target_headers_and_ca_file() {
        let text = br#"{"targets":[
            {"name":"a","url":"https://h:1/metrics","ca_file":"ca.pem",
             "headers":{"Authorization":{"env":"VLLM_TOKEN","prefix":"Bearer "},
                        "X-Scope-OrgID":"fleet",
                        "X-Api-Key":{"file":"/run/secrets/k"}}},
            {"url":"http://h:2/metrics"}]}"#;
        let t = parse_targets(text, "t.json").unwrap();
        let config = &t[0].1;
        assert_eq!(config.ca_file.as_deref(), Some("ca.pem"));
        assert_eq!(
            config.headers["Authorization"],
            HeaderSource::Env { env: "VLLM_TOKEN".into(), prefix: Some("Bearer ".into()) }
        );
        assert_eq!(config.headers["X-Scope-OrgID"], HeaderSource::Value("fleet".into()));
        assert_eq!(
            config.headers["X-Api-Key"],
            HeaderSource::File { file: "/run/secrets/k".into(), prefix: None }
        );
        assert!(t[1].1.is_empty());
    }

    #[test]
    fn relative_paths_are_anchored_at_the_targets_file() {
        let dir = std::env::temp_dir().join(format!("opsg-targets-rel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.json");
        std::fs::write(
            &path,
            br#"{"targets":[{"url":"https://h:1/metrics","ca_file":"certs/ca.pem",
                "headers":{"Authorization":{"file":"tok"},"X-Other":{"file":"/abs/x"}}}]}"#,
        )
        .unwrap();
        let t = load_targets_file(&path).unwrap();
        let config = &t[0].1;
        assert_eq!(config.ca_file, Some(dir.join("certs/ca.pem").display().to_string()));
        assert_eq!(
            config.headers["Authorization"],
            HeaderSource::File { file: dir.join("tok").display().to_string(), prefix: None }
        );
        assert_eq!(
            config.headers["X-Other"],
            HeaderSource::File { file: "/abs/x".into(), prefix: None }
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn credentials_must_not_be_literals_in_a_targets_file() {
        for name in ["Authorization", "cookie", "X-Api-Key", "X-Auth-Token", "Proxy-Authorization"]
        {
            let text = format!(
                r#"{{"targets":[{{"url":"http://h:1/metrics","headers":{{"{name}":"Bearer s3cr3t"}}}}]}}"#
            );
            let e = parse_targets(text.as_bytes(), "t.json").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("targets[0].headers.{name}")), "{msg}");
            assert!(msg.contains("credential") && !msg.contains("s3cr3t"), "{msg}");
            assert_eq!(e.status().code(), 3);
        }
        // Not a credential: a literal is fine.
        assert!(!is_credential_header("X-Scope-OrgID"));
        // Malformed sources are refused by the schema, naming the field.
        for bad in [
            r#"{"Authorization":{"env":"1BAD"}}"#,
            r#"{"Authorization":{"env":"A","file":"b"}}"#,
            r#"{"Authorization":{"prefix":"Bearer "}}"#,
            r#"{"bad name":"x"}"#,
            r#"{"X-Tenant":"a\nb"}"#,
        ] {
            let text = format!(r#"{{"targets":[{{"url":"http://h:1/metrics","headers":{bad}}}]}}"#);
            let e = parse_targets(text.as_bytes(), "t.json").unwrap_err();
            assert!(e.to_string().contains("targets[0].headers"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_secured_example_targets_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/scrape/secured.targets.json");
        let targets = load_targets_file(&path).unwrap();
        assert_eq!(targets.len(), 2);
        let (t, config) = &targets[0];
        assert_eq!(t.name, "llama-stable-0");
        assert_eq!(config.ca_file.as_deref(), Some("/etc/opsg/internal-ca.pem"));
        assert_eq!(
            config.headers["Authorization"],
            HeaderSource::Env { env: "VLLM_API_KEY".into(), prefix: Some("Bearer ".into()) }
        );
        assert!(matches!(targets[1].1.headers["Authorization"], HeaderSource::File { .. }));
    }

    #[test]
    fn duplicate_names() {
        let mut t = vec![
            Target::http("http://h:1/metrics").unwrap(),
            Target::http("http://h:1/metrics").unwrap(),
        ];
        dedupe_names(&mut t, &[false, false]).unwrap();
        assert_eq!(t[1].name, "h:1#2");
        let mut t = vec![
            Target::http("http://h:1/metrics").unwrap(),
            Target::http("http://h:1/metrics").unwrap(),
        ];
        assert!(dedupe_names(&mut t, &[true, true]).is_err());
    }
}

//! The actuators config (`schemas/actuators.schema.json`): how each catalog action is carried out.
//!
//! Two kinds of actuator:
//!
//! - `http`: a method, a URL template, a JSON body built from the action's typed parameters,
//!   headers (secrets from the environment), a timeout and retries;
//! - `command`: an argv array run directly (`execve`, never a shell), each template element
//!   becoming exactly one argument, with an environment of its own.
//!
//! Templates name values in braces: `{base_url}`, `{target}`, `{action}`, `{index}`,
//! `{plan_hash}`, `{key}`, `{params}` (the whole parameter object) and `{params.NAME}`; secrets are
//! `${env:NAME}`, read from the environment at run time and shown as `<redacted:NAME>` in records
//! and logs. In a URL, substituted values are percent-encoded (a target named `a/../b` stays one
//! path segment); in a JSON body, a string that is exactly one placeholder becomes the value with
//! its JSON type (`{params.weights}` stays an object); in argv, each element is one argument
//! whatever it contains (spaces, `;`, `$(…)`, newlines are inert data).

use opsg_core::kinds::plan::ActionType;
use opsg_core::time::parse_duration_ms;
use opsg_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The actuators schema, embedded.
pub const SCHEMA: &str = include_str!("../../../schemas/actuators.schema.json");

/// The built-in actuators: opsg-sim's admin API under `base_url` (`--sim URL`).
pub const DEFAULT_ACTUATORS: &str = r#"{
  "base_url": "http://127.0.0.1:9400",
  "actuators": {
    "shift_traffic": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/traffic",
      "body": {"weights": "{params.weights}"},
      "capture": {"url": "{base_url}/state", "pointers": {"weights": "/deployments/*/weight"}}
    },
    "set_deployment_status": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/deployments/{target}/status",
      "body": {"status": "{params.status}"},
      "capture": {"url": "{base_url}/state", "pointers": {"status": "/deployments/{target}/status"}}
    },
    "rollback_config": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/deployments/{target}/rollback",
      "body": {"to_version": "{params.to_version}"},
      "capture": {"url": "{base_url}/state", "pointers": {"to_version": "/deployments/{target}/config_version", "config_version": "/deployments/{target}/config_version"}}
    },
    "restart_replica": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/replicas/{target}/restart",
      "body": {}
    },
    "scale_replicas": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/deployments/{target}/scale",
      "body": {"replicas": "{params.replicas}"},
      "capture": {"url": "{base_url}/state", "pointers": {"replicas": "/deployments/{target}/replicas/#"}}
    },
    "drain_node": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/nodes/{target}/drain",
      "body": {}
    },
    "cleanup_node": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/nodes/{target}/cleanup",
      "body": {}
    },
    "cordon_node": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/nodes/{target}/cordon",
      "body": {}
    }
  },
  "inverses": {
    "drain_node": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/nodes/{target}/uncordon",
      "body": {}
    },
    "cordon_node": {
      "type": "http", "method": "POST", "url": "{base_url}/admin/nodes/{target}/uncordon",
      "body": {}
    }
  }
}
"#;

/// Timeout and retry settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Bound on one attempt (`5s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Extra attempts after a transient failure (connection refused, timeout, 5xx, 429).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> String {
    "10s".into()
}
fn default_retries() -> u32 {
    2
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { timeout: default_timeout(), retries: default_retries() }
    }
}

/// How to read the state an inverse needs before acting: a GET (or a command printing JSON),
/// and JSON pointers naming each value. Each name becomes a key of the action's `prior_state`,
/// and overrides the inverse parameter of the same name at rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// URL template to GET (http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// argv template of a command printing JSON on stdout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// Name → JSON pointer (templated) into the answer. A `*` segment maps over an object's
    /// members: `/deployments/*/weight` gives `{"stable": 1.0, "canary": 1.0}`; a final `#`
    /// counts: `/deployments/stable/replicas/#` gives `3`.
    pub pointers: BTreeMap<String, String>,
}

/// One actuator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actuator {
    /// An HTTP call.
    Http {
        /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
        method: String,
        /// URL template.
        url: String,
        /// Header templates.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// JSON body template; default `"{params}"` for methods with a body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        /// Overrides the default timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        /// Overrides the default retries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
        /// The prior state to capture first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capture: Option<Capture>,
    },
    /// A command, never through a shell.
    Command {
        /// argv templates; the first is the program.
        argv: Vec<String>,
        /// Environment templates for the command (`${env:…}` for secrets).
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Overrides the default timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        /// Overrides the default retries (commands are not retried unless set).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<u32>,
        /// The prior state to capture first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capture: Option<Capture>,
    },
}

/// The actuators config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `{base_url}` in templates (`--sim URL` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Timeout and retries.
    #[serde(default)]
    pub defaults: Defaults,
    /// One actuator per action type; an action without one fails (nothing is guessed).
    pub actuators: BTreeMap<ActionType, Actuator>,
    /// Actuators for inverses that are a different call than the action itself (the inverse of
    /// `drain_node` is an uncordon); rollbacks use these first, then `actuators`.
    #[serde(default)]
    pub inverses: BTreeMap<ActionType, Actuator>,
}

impl Config {
    /// Parse and validate; errors name the source, the field and why.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Config> {
        Config::parse_with(bytes, source, true)
    }

    /// Parse, validating against the schema only when `validate` (the built-in config is
    /// checked against it by a unit test instead: compiling the schema costs every run).
    fn parse_with(bytes: &[u8], source: &str, validate: bool) -> Result<Config> {
        let value = if validate {
            opsg_core::schema::parse_config(bytes, source, "actuators.schema.json")?
        } else {
            opsg_core::schema::parse_json(bytes, source)?
        };
        let config: Config = serde_json::from_value(value).map_err(|e| {
            Error::invalid(format!("invalid actuators config: {e}")).in_source(source)
        })?;
        config.check().map_err(|e| e.in_source(source))?;
        Ok(config)
    }

    /// The built-in config (opsg-sim's admin API).
    pub fn builtin() -> Result<Config> {
        Config::parse_with(DEFAULT_ACTUATORS.as_bytes(), "built-in actuators", false)
    }

    /// Load from a file, or the built-in.
    pub fn load(path: Option<&std::path::Path>) -> Result<Config> {
        match path {
            Some(p) => {
                let source = p.display().to_string();
                let bytes = std::fs::read(p).map_err(|e| Error::io(&source, e))?;
                Config::parse(&bytes, &source)
            }
            None => Config::builtin(),
        }
    }

    fn check(&self) -> Result<()> {
        parse_duration_ms(&self.defaults.timeout)
            .map_err(|e| Error::invalid(e.message().to_string()).at_field("defaults.timeout"))?;
        let all = self
            .actuators
            .iter()
            .map(|(a, x)| ("actuators", a, x))
            .chain(self.inverses.iter().map(|(a, x)| ("inverses", a, x)));
        for (section, action, actuator) in all {
            let at = |f: &str| format!("{section}.{action}.{f}");
            let check = |t: &str, f: &str| {
                parse_template(t).map(|_| ()).map_err(|e| Error::invalid(e).at_field(at(f)))
            };
            let (timeout, capture) = match actuator {
                Actuator::Http { method, url, headers, body, timeout, capture, .. } => {
                    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                        return Err(Error::invalid(format!("unsupported method `{method}`"))
                            .at_field(at("method")));
                    }
                    check(url, "url")?;
                    for (k, v) in headers {
                        check(v, &format!("headers.{k}"))?;
                    }
                    if let Some(body) = body {
                        check_value(body).map_err(|e| Error::invalid(e).at_field(at("body")))?;
                    }
                    (timeout, capture)
                }
                Actuator::Command { argv, env, timeout, capture, .. } => {
                    if argv.is_empty() {
                        return Err(Error::invalid("argv must name a program").at_field(at("argv")));
                    }
                    for (i, a) in argv.iter().enumerate() {
                        check(a, &format!("argv[{i}]"))?;
                    }
                    for (k, v) in env {
                        check(v, &format!("env.{k}"))?;
                    }
                    (timeout, capture)
                }
            };
            if let Some(t) = timeout {
                parse_duration_ms(t)
                    .map_err(|e| Error::invalid(e.message().to_string()).at_field(at("timeout")))?;
            }
            if let Some(c) = capture {
                if c.url.is_none() == c.argv.is_empty() {
                    return Err(Error::invalid("a capture has either `url` or `argv`")
                        .at_field(at("capture")));
                }
                if let Some(u) = &c.url {
                    check(u, "capture.url")?;
                }
                for p in c.pointers.values() {
                    check(p, "capture.pointers")?;
                }
            }
        }
        Ok(())
    }

    /// The timeout of an actuator.
    pub fn timeout(&self, actuator: &Actuator) -> Duration {
        let own = match actuator {
            Actuator::Http { timeout, .. } | Actuator::Command { timeout, .. } => {
                timeout.as_deref()
            }
        };
        let ms = own
            .and_then(|t| parse_duration_ms(t).ok())
            .or_else(|| parse_duration_ms(&self.defaults.timeout).ok())
            .unwrap_or(10_000);
        Duration::from_millis(ms.max(1) as u64)
    }

    /// The retries of an actuator (commands: 0 unless set, since a command may not be idempotent).
    pub fn retries(&self, actuator: &Actuator) -> u32 {
        match actuator {
            Actuator::Http { retries, .. } => retries.unwrap_or(self.defaults.retries),
            Actuator::Command { retries, .. } => retries.unwrap_or(0),
        }
    }
}

fn check_value(v: &Value) -> std::result::Result<(), String> {
    match v {
        Value::String(s) => parse_template(s).map(|_| ()),
        Value::Array(a) => a.iter().try_for_each(check_value),
        Value::Object(o) => o.values().try_for_each(check_value),
        _ => Ok(()),
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// `{name}`.
    Var(String),
    /// `${env:NAME}`: a secret.
    Env(String),
}

const VARS: &[&str] = &["base_url", "target", "action", "index", "plan_hash", "key", "params"];

/// Parse a template; `{{` and `}}` are literal braces.
pub fn parse_template(text: &str) -> std::result::Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                lit.push('}');
            }
            '$' if text[i..].starts_with("${env:") => {
                let end =
                    text[i..].find('}').ok_or_else(|| format!("unclosed `${{env:` in `{text}`"))?;
                let name = &text[i + 6..i + end];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!("`{name}` is not an environment variable name"));
                }
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(Piece::Env(name.to_string()));
                while chars.peek().is_some_and(|(j, _)| *j <= i + end) {
                    chars.next();
                }
            }
            '{' => {
                let end =
                    text[i..].find('}').ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
                let name = &text[i + 1..i + end];
                let known = VARS.contains(&name)
                    || name.strip_prefix("params.").is_some_and(|p| {
                        !p.is_empty()
                            && p.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    });
                if !known {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}` (known: {}, params.NAME, ${{env:NAME}})",
                        VARS.iter().map(|v| format!("{{{v}}}")).collect::<Vec<_>>().join(", ")
                    ));
                }
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(Piece::Var(name.to_string()));
                while chars.peek().is_some_and(|(j, _)| *j <= i + end) {
                    chars.next();
                }
            }
            '}' => {
                return Err(format!(
                    "unmatched `}}` in `{text}` (write `}}}}` for a literal brace)"
                ));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// What templates are filled with.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// `{base_url}`.
    pub base_url: &'a str,
    /// `{action}`.
    pub action: ActionType,
    /// `{target}`.
    pub target: &'a str,
    /// `{params}` and `{params.NAME}`.
    pub params: &'a BTreeMap<String, Value>,
    /// `{plan_hash}`.
    pub plan_hash: &'a str,
    /// `{index}`.
    pub index: u32,
    /// `{key}`.
    pub key: &'a str,
}

/// How a substituted value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As is (argv elements, header values, environment values).
    Raw,
    /// Percent-encoded, except `{base_url}` (URLs).
    Url,
}

/// A rendered string: what is sent, what is shown (secrets redacted), and the secrets used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// The real value.
    pub real: String,
    /// The value with `<redacted:NAME>` for each secret.
    pub shown: String,
    /// The secret values used (to scrub responses and errors).
    pub secrets: Vec<String>,
}

impl Context<'_> {
    fn var(&self, name: &str) -> std::result::Result<Value, String> {
        Ok(match name {
            "base_url" => Value::String(self.base_url.into()),
            "target" => Value::String(self.target.into()),
            "action" => Value::String(self.action.as_str().into()),
            "index" => Value::from(self.index),
            "plan_hash" => Value::String(self.plan_hash.into()),
            "key" => Value::String(self.key.into()),
            "params" => Value::Object(self.params.clone().into_iter().collect()),
            other => {
                let p = other.strip_prefix("params.").unwrap_or(other);
                self.params
                    .get(p)
                    .cloned()
                    .ok_or_else(|| format!("the action has no parameter `{p}`"))?
            }
        })
    }

    /// Render a string template.
    pub fn render(&self, template: &str, escape: Escape) -> std::result::Result<Rendered, String> {
        let mut r = Rendered::default();
        for piece in parse_template(template)? {
            match piece {
                Piece::Lit(s) => {
                    r.real.push_str(&s);
                    r.shown.push_str(&s);
                }
                Piece::Var(name) => {
                    let v = self.var(&name)?;
                    let text = match &v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let text = if escape == Escape::Url && name != "base_url" {
                        percent_encode(&text)
                    } else {
                        text
                    };
                    r.real.push_str(&text);
                    r.shown.push_str(&text);
                }
                Piece::Env(name) => {
                    let value = std::env::var(&name)
                        .map_err(|_| format!("the environment variable `{name}` is not set"))?;
                    // In a URL the secret is percent-encoded like any other value; both spellings
                    // are scrubbed from what comes back.
                    let sent =
                        if escape == Escape::Url { percent_encode(&value) } else { value.clone() };
                    if !value.is_empty() {
                        r.secrets.push(value);
                        if !r.secrets.contains(&sent) {
                            r.secrets.push(sent.clone());
                        }
                    }
                    r.real.push_str(&sent);
                    r.shown.push_str(&format!("<redacted:{name}>"));
                }
            }
        }
        Ok(r)
    }

    /// Render a JSON body template: (real, shown, secrets).
    pub fn render_value(
        &self,
        template: &Value,
    ) -> std::result::Result<(Value, Value, Vec<String>), String> {
        match template {
            Value::String(s) => {
                let pieces = parse_template(s)?;
                if let [Piece::Var(name)] = pieces.as_slice() {
                    let v = self.var(name)?;
                    return Ok((v.clone(), v, Vec::new()));
                }
                let r = self.render(s, Escape::Raw)?;
                Ok((Value::String(r.real), Value::String(r.shown), r.secrets))
            }
            Value::Array(items) => {
                let (mut real, mut shown, mut secrets) = (Vec::new(), Vec::new(), Vec::new());
                for item in items {
                    let (r, s, mut sec) = self.render_value(item)?;
                    real.push(r);
                    shown.push(s);
                    secrets.append(&mut sec);
                }
                Ok((Value::Array(real), Value::Array(shown), secrets))
            }
            Value::Object(map) => {
                let (mut real, mut shown, mut secrets) =
                    (serde_json::Map::new(), serde_json::Map::new(), Vec::new());
                for (k, item) in map {
                    let (r, s, mut sec) = self.render_value(item)?;
                    real.insert(k.clone(), r);
                    shown.insert(k.clone(), s);
                    secrets.append(&mut sec);
                }
                Ok((Value::Object(real), Value::Object(shown), secrets))
            }
            other => Ok((other.clone(), other.clone(), Vec::new())),
        }
    }
}

/// Resolve a JSON pointer where a `*` segment maps over an object's members and a final `#`
/// segment counts the members of what precedes it.
pub fn pointer(value: &Value, pointer: &str) -> Option<Value> {
    if let Some(head) = pointer.strip_suffix("/#") {
        // `/#` at the end: how many members (a replica list's length is a replica count).
        return match self::pointer(value, head)? {
            Value::Array(a) => Some(Value::from(a.len())),
            Value::Object(o) => Some(Value::from(o.len())),
            _ => None,
        };
    }
    let Some((head, rest)) = pointer.split_once("/*") else {
        return value.pointer(pointer).cloned();
    };
    let obj = value.pointer(head)?.as_object()?;
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        out.insert(k.clone(), self::pointer(v, rest)?);
    }
    Some(Value::Object(out))
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replace every secret value in `text` with `<redacted>`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(params: &BTreeMap<String, Value>) -> Context<'_> {
        Context {
            base_url: "http://h:1",
            action: ActionType::ShiftTraffic,
            target: "llama/../admin; rm -rf /",
            params,
            plan_hash: "ab",
            index: 3,
            key: "ab-3",
        }
    }

    #[test]
    fn builtin_and_example_configs_parse() {
        Config::builtin().unwrap();
        Config::parse(DEFAULT_ACTUATORS.as_bytes(), "built-in").unwrap();
        Config::parse(
            include_bytes!("../../../examples/actuators.json"),
            "examples/actuators.json",
        )
        .unwrap();
    }

    #[test]
    fn every_action_that_changes_the_fleet_has_a_builtin_actuator() {
        // Regression: `cleanup_node` entered the catalog; an action without an actuator fails
        // at run time (nothing is guessed), so the built-in mapping must cover every type.
        let envelope: Value =
            serde_json::from_str(include_str!("../../../schemas/envelope.schema.json")).unwrap();
        let builtin = Config::builtin().unwrap();
        let types = envelope["$defs"]["action_type"]["enum"].as_array().unwrap();
        assert!(types.len() >= 9, "{types:?}");
        for t in types {
            let action: ActionType = serde_json::from_value(t.clone()).unwrap();
            if matches!(action, ActionType::Noop | ActionType::Escalate) {
                continue;
            }
            assert!(builtin.actuators.contains_key(&action), "no built-in actuator for {action}");
        }
        let Actuator::Http { url, .. } = &builtin.actuators[&ActionType::CleanupNode] else {
            panic!("cleanup_node is an HTTP call to the admin API");
        };
        assert_eq!(url, "{base_url}/admin/nodes/{target}/cleanup");
    }

    #[test]
    fn urls_percent_encode_substituted_values() {
        let params = BTreeMap::new();
        let r = ctx(&params)
            .render("{base_url}/admin/deployments/{target}/status", Escape::Url)
            .unwrap();
        assert_eq!(
            r.real,
            "http://h:1/admin/deployments/llama%2F..%2Fadmin%3B%20rm%20-rf%20%2F/status"
        );
    }

    #[test]
    fn body_placeholders_keep_their_json_type() {
        let params: BTreeMap<String, Value> =
            [("weights".to_string(), json!({"a": 0.3, "b": 0.7})), ("n".to_string(), json!(2))]
                .into();
        let (real, shown, _) = ctx(&params)
            .render_value(
                &json!({"weights": "{params.weights}", "n": "{params.n}", "why": "idx {index}"}),
            )
            .unwrap();
        assert_eq!(real, json!({"weights": {"a": 0.3, "b": 0.7}, "n": 2, "why": "idx 3"}));
        assert_eq!(real, shown);
        let (all, _, _) = ctx(&params).render_value(&json!("{params}")).unwrap();
        assert_eq!(all, json!({"weights": {"a": 0.3, "b": 0.7}, "n": 2}));
    }

    #[test]
    fn secrets_are_redacted_in_what_is_shown() {
        // `set_var` is unsafe in edition 2024 (and unsafe is denied), so use a variable cargo
        // always sets for tests; the end-to-end suite passes real secrets to child processes.
        let secret = std::env::var("CARGO_PKG_NAME").unwrap();
        let params = BTreeMap::new();
        let r = ctx(&params).render("Bearer ${env:CARGO_PKG_NAME}", Escape::Raw).unwrap();
        assert_eq!(r.real, format!("Bearer {secret}"));
        assert_eq!(r.shown, "Bearer <redacted:CARGO_PKG_NAME>");
        assert_eq!(scrub(&format!("echo {secret} back"), &r.secrets), "echo <redacted> back");
        assert!(ctx(&params).render("${env:OPSG_EXEC_TEST_UNSET_VAR}", Escape::Raw).is_err());
    }

    #[test]
    fn wildcard_pointers_map_over_members() {
        let state = json!({"deployments": {"stable": {"weight": 1.0}, "canary": {"weight": 0.5}}});
        assert_eq!(
            pointer(&state, "/deployments/*/weight"),
            Some(json!({"stable": 1.0, "canary": 0.5}))
        );
        assert_eq!(pointer(&state, "/deployments/canary/weight"), Some(json!(0.5)));
        assert_eq!(pointer(&state, "/deployments/*/nope"), None);
        assert_eq!(pointer(&state, "/nope/*/weight"), None);
        let state = json!({"deployments": {"stable": {"replicas": ["s-0", "s-1", "s-2"]}}});
        assert_eq!(pointer(&state, "/deployments/stable/replicas/#"), Some(json!(3)));
        assert_eq!(pointer(&state, "/deployments/#"), Some(json!(1)));
        assert_eq!(pointer(&json!({"a": 1}), "/a/#"), None);
    }

    #[test]
    fn bad_templates_are_config_errors() {
        assert!(parse_template("{nope}").is_err());
        assert!(parse_template("{params.}").is_err());
        assert!(parse_template("x}").is_err());
        assert_eq!(parse_template("{{lit}}").unwrap(), vec![Piece::Lit("{lit}".into())]);
        let bad = DEFAULT_ACTUATORS.replace("{base_url}/admin/traffic", "{base_url}/admin/{oops}");
        let e = Config::parse(bad.as_bytes(), "a.json").unwrap_err();
        assert!(e.to_string().contains("actuators.shift_traffic.url"), "{e}");
        let params = BTreeMap::new();
        assert!(
            ctx(&params).render("{params.missing}", Escape::Raw).unwrap_err().contains("missing")
        );
    }
}

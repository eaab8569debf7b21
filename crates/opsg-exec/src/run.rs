//! Carrying out one action: render its actuator, capture the prior state, claim its idempotency
//! key, call, record. `opsg-verify` runs rollbacks through the same [`Executor`].

use crate::actuators::{Actuator, Capture, Config, Context, Escape, scrub};
use opsg_core::kinds::execution::{ActionOutcome, ActionRun, ActuatorRequest};
use opsg_core::kinds::plan::ActionType;
use opsg_core::time::Timestamp;
use opsg_gate::state::{ActionEvent, Claim, StateDir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

/// The most response bytes kept in a record.
const RESPONSE_EXCERPT: usize = 512;
/// The most response bytes read at all.
const RESPONSE_CAP: u64 = 1 << 20;

/// One action to carry out.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    /// The plan's action index.
    pub index: u32,
    /// The action type.
    pub action: ActionType,
    /// The target.
    pub target: String,
    /// Typed parameters.
    pub params: BTreeMap<String, Value>,
    /// The prior state known at plan time (used when nothing is captured).
    pub prior_state: BTreeMap<String, Value>,
    /// True for a rollback's inverse: the config's `inverses` are used first.
    pub inverse: bool,
}

/// A rendered request: what is sent and what is shown.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The actuator's request as the record shows it (secrets redacted).
    pub shown: ActuatorRequest,
    real: RealRequest,
    secrets: Vec<String>,
}

#[derive(Debug, Clone)]
enum RealRequest {
    Http { method: String, url: String, headers: Vec<(String, String)>, body: Option<Vec<u8>> },
    Command { argv: Vec<String>, env: Vec<(String, String)> },
    None,
}

/// What a call returned.
#[derive(Debug, Clone, Default)]
pub struct CallResult {
    /// HTTP status or exit code.
    pub status: Option<i64>,
    /// Attempts made.
    pub attempts: u32,
    /// The first bytes of the answer.
    pub response: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Runs actions with one actuators config.
#[derive(Debug, Clone)]
pub struct Executor {
    /// The actuators.
    pub config: Config,
    /// `{base_url}`.
    pub base_url: String,
    /// Where idempotency keys and history live.
    pub state: StateDir,
}

impl Executor {
    /// The actuator for an action type (or its inverse), if configured.
    pub fn actuator(&self, action: ActionType, inverse: bool) -> Option<&Actuator> {
        inverse
            .then(|| self.config.inverses.get(&action))
            .flatten()
            .or_else(|| self.config.actuators.get(&action))
    }

    fn context<'a>(
        &'a self,
        spec: &'a ActionSpec,
        plan_hash: &'a str,
        key: &'a str,
    ) -> Context<'a> {
        Context {
            base_url: &self.base_url,
            action: spec.action,
            target: &spec.target,
            params: &spec.params,
            plan_hash,
            index: spec.index,
            key,
        }
    }

    /// Render the request an action would make.
    pub fn prepare(
        &self,
        spec: &ActionSpec,
        plan_hash: &str,
        key: &str,
    ) -> std::result::Result<Prepared, String> {
        let ctx = self.context(spec, plan_hash, key);
        let Some(actuator) = self.actuator(spec.action, spec.inverse) else {
            if matches!(spec.action, ActionType::Noop) {
                return Ok(Prepared {
                    shown: ActuatorRequest::none(),
                    real: RealRequest::None,
                    secrets: vec![],
                });
            }
            return Err(format!("no actuator is configured for `{}`", spec.action));
        };
        let mut secrets = Vec::new();
        match actuator {
            Actuator::Http { method, url, headers, body, .. } => {
                let u = ctx.render(url, Escape::Url)?;
                check_http_url(&u.real)?;
                secrets.extend(u.secrets.iter().cloned());
                let mut real_headers = Vec::new();
                let mut shown_headers = BTreeMap::new();
                for (k, v) in headers {
                    let r = ctx.render(v, Escape::Raw)?;
                    if r.real.contains(['\r', '\n']) {
                        return Err(format!("header `{k}` would contain a line break"));
                    }
                    secrets.extend(r.secrets.iter().cloned());
                    real_headers.push((k.clone(), r.real));
                    shown_headers.insert(k.clone(), r.shown);
                }
                let with_body = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
                let template =
                    body.clone().or_else(|| with_body.then(|| Value::String("{params}".into())));
                let (real_body, shown_body) = match template {
                    Some(t) => {
                        let (real, shown, mut sec) = ctx.render_value(&t)?;
                        secrets.append(&mut sec);
                        let bytes = serde_json::to_vec(&real).map_err(|e| e.to_string())?;
                        (Some(bytes), Some(shown))
                    }
                    None => (None, None),
                };
                Ok(Prepared {
                    shown: ActuatorRequest {
                        actuator: "http".into(),
                        method: Some(method.clone()),
                        url: Some(u.shown),
                        body: shown_body,
                        argv: vec![],
                        headers: shown_headers,
                    },
                    real: RealRequest::Http {
                        method: method.clone(),
                        url: u.real,
                        headers: real_headers,
                        body: real_body,
                    },
                    secrets,
                })
            }
            Actuator::Command { argv, env, .. } => {
                let mut real_argv = Vec::new();
                let mut shown_argv = Vec::new();
                for a in argv {
                    let r = ctx.render(a, Escape::Raw)?;
                    secrets.extend(r.secrets.iter().cloned());
                    real_argv.push(r.real);
                    shown_argv.push(r.shown);
                }
                let mut real_env = Vec::new();
                let mut shown_env = BTreeMap::new();
                for (k, v) in env {
                    let r = ctx.render(v, Escape::Raw)?;
                    secrets.extend(r.secrets.iter().cloned());
                    real_env.push((k.clone(), r.real));
                    shown_env.insert(k.clone(), r.shown);
                }
                Ok(Prepared {
                    shown: ActuatorRequest {
                        actuator: "command".into(),
                        method: None,
                        url: None,
                        body: None,
                        argv: shown_argv,
                        headers: shown_env,
                    },
                    real: RealRequest::Command { argv: real_argv, env: real_env },
                    secrets,
                })
            }
        }
    }

    /// Read the prior state the inverse needs (a GET or a command printing JSON); `None` when
    /// the actuator captures nothing (the plan's prior state then stands).
    pub fn capture(
        &self,
        spec: &ActionSpec,
        plan_hash: &str,
        key: &str,
    ) -> std::result::Result<Option<BTreeMap<String, Value>>, String> {
        let Some(actuator) = self.actuator(spec.action, spec.inverse) else {
            return Ok(None);
        };
        let (Actuator::Http { capture, .. } | Actuator::Command { capture, .. }) = actuator;
        let Some(capture) = capture else { return Ok(None) };
        let ctx = self.context(spec, plan_hash, key);
        let timeout = self.config.timeout(actuator);
        let answer = fetch_capture(&ctx, capture, timeout)?;
        let mut out = BTreeMap::new();
        for (name, pointer) in &capture.pointers {
            let p = ctx.render(pointer, Escape::Raw)?.real;
            let v = crate::actuators::pointer(&answer, &p).ok_or_else(|| {
                format!("the prior state has nothing at `{p}` (capture `{name}`)")
            })?;
            out.insert(name.clone(), v);
        }
        Ok(Some(out))
    }

    /// Call the actuator (with retries for transient failures).
    pub fn call(&self, spec: &ActionSpec, prepared: &Prepared) -> CallResult {
        let Some(actuator) = self.actuator(spec.action, spec.inverse) else {
            return CallResult { status: None, attempts: 0, response: None, error: None };
        };
        let timeout = self.config.timeout(actuator);
        let retries = self.config.retries(actuator);
        let mut result = CallResult::default();
        for attempt in 1..=retries + 1 {
            result.attempts = attempt;
            let (r, transient) = match &prepared.real {
                RealRequest::Http { method, url, headers, body } => {
                    http_call(method, url, headers, body.as_deref(), timeout)
                }
                RealRequest::Command { argv, env } => command_call(argv, env, timeout),
                RealRequest::None => (Ok((0, String::new())), false),
            };
            match r {
                Ok((status, text)) => {
                    result.status = Some(status);
                    result.response = Some(excerpt(&scrub(&text, &prepared.secrets)));
                    result.error = None;
                    return result;
                }
                Err((status, why)) => {
                    result.status = status;
                    result.error = Some(scrub(&why, &prepared.secrets));
                    if !transient || attempt > retries {
                        return result;
                    }
                    std::thread::sleep(Duration::from_millis(100u64 << (attempt - 1).min(6)));
                }
            }
        }
        result
    }

    /// Carry out one action under an idempotency key: dry-run prints; live claims the key
    /// (`O_EXCL`), captures the prior state, calls, and records the result and the history line.
    pub fn run_action(
        &self,
        spec: &ActionSpec,
        plan_hash: &str,
        key: &str,
        live: bool,
    ) -> ActionRun {
        let started = Timestamp::now();
        let mut run = ActionRun {
            index: spec.index,
            idempotency_key: key.to_string(),
            action: Some(spec.action),
            target: Some(spec.target.clone()),
            request: ActuatorRequest::none(),
            status: None,
            duration_ms: 0.0,
            outcome: ActionOutcome::NotRun,
            error: None,
            attempts: 0,
            response: None,
            prior_state: spec.prior_state.clone(),
            started: started.to_rfc3339(),
        };
        let prepared = match self.prepare(spec, plan_hash, key) {
            Ok(p) => p,
            Err(why) => {
                // Failed, not stale: no actuator, or a template or URL that does not render, is
                // a broken config whatever the fleet's state; running the pipe again would fail
                // the same way, so a human must fix it.
                run.outcome = if live { ActionOutcome::Failed } else { ActionOutcome::DryRun };
                run.error = Some(why);
                return run;
            }
        };
        run.request = prepared.shown.clone();
        if !live {
            run.outcome = ActionOutcome::DryRun;
            return run;
        }
        match self.state.claim(key, &format!("pid {} at {}", std::process::id(), started)) {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Taken(earlier)) => {
                run.outcome = ActionOutcome::AlreadyDone;
                match earlier {
                    Some(earlier) => {
                        if let Some(ps) = earlier
                            .get("prior_state")
                            .and_then(|v| serde_json::from_value(v.clone()).ok())
                        {
                            run.prior_state = ps;
                        }
                        let outcome =
                            earlier.get("outcome").and_then(Value::as_str).unwrap_or("unknown");
                        run.error = Some(format!(
                            "already executed under this key (earlier outcome: {outcome})"
                        ));
                        if outcome == "failed" {
                            // An earlier failure stays a failure: the plan must not go on past it.
                            run.outcome = ActionOutcome::Failed;
                        } else if outcome == "stale_plan" {
                            // An earlier run found this plan stale, and a plan does not get
                            // fresher: the same refusal, and the same advice, stand.
                            run.outcome = ActionOutcome::StalePlan;
                            run.error = Some(
                                "not called: an earlier run found the fleet changed since the plan was made; run the pipe again"
                                    .into(),
                            );
                        }
                    }
                    None => {
                        run.error = Some(format!(
                            "claimed by another run that has not recorded a result: still running, or it crashed mid-action; \
                             a human must look, then remove {} to let it run again",
                            self.state
                                .root()
                                .join("actions")
                                .join(format!("{key}.claim"))
                                .display()
                        ));
                        run.status = None;
                    }
                }
                return run;
            }
            Err(e) => {
                // Failed: the state directory is broken (I/O), which says nothing about the plan.
                run.outcome = ActionOutcome::Failed;
                run.error = Some(format!("cannot claim the idempotency key: {e}"));
                return run;
            }
        }
        let clock = Instant::now();
        match self.capture(spec, plan_hash, key) {
            Ok(Some(prior)) => {
                // Compare-and-swap: the plan (and the gate's decision) were made for the state
                // the planner saw. If the fleet has changed since (someone shifted traffic by
                // hand, another incident's fix ran), acting on the old plan would be acting blind.
                // That refusal is `stale_plan`, not `failed`: nothing was called and nothing
                // broke; the plan was out of date and a fresh run of the pipe is the fix.
                if let Some(drift) = drifted(&spec.prior_state, &prior) {
                    run.outcome = ActionOutcome::StalePlan;
                    run.error = Some(format!(
                        "not called: the fleet changed since the plan was made ({drift}); run the pipe again"
                    ));
                    run.prior_state = prior;
                    run.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
                    self.settle(&run);
                    return run;
                }
                run.prior_state = prior;
            }
            Ok(None) => {}
            Err(why) => {
                // Failed, not stale: the state could not be read at all (target unreachable,
                // capture misconfigured, a member missing), so nothing says the plan is out of
                // date, and acting without the state the inverse needs would be unsafe. Unlike a
                // stale plan, re-running the pipe is not known to help: a human must look.
                run.outcome = ActionOutcome::Failed;
                run.error = Some(format!(
                    "not called: cannot capture the prior state the inverse needs: {}",
                    scrub(&why, &prepared.secrets)
                ));
                run.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
                self.settle(&run);
                return run;
            }
        }
        let result = self.call(spec, &prepared);
        run.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
        run.status = result.status;
        run.attempts = result.attempts;
        run.response = result.response;
        run.error = result.error;
        run.outcome =
            if run.error.is_none() { ActionOutcome::Succeeded } else { ActionOutcome::Failed };
        self.settle(&run);
        run
    }

    /// Record a live attempt's result under its key and in the history. A stale-plan refusal is
    /// kept out of the history: the gate's cooldowns and rate limits count actions on the fleet,
    /// and one that was never called must not hold back the fresh run of the pipe it asks for.
    fn settle(&self, run: &ActionRun) {
        if let Ok(v) = serde_json::to_value(run)
            && let Err(e) = self.state.finish(&run.idempotency_key, &v)
        {
            opsg_core::cli::warn(format!(
                "cannot record the result of {}: {e}",
                run.idempotency_key
            ));
        }
        if run.outcome == ActionOutcome::StalePlan {
            return;
        }
        if let (Some(action), Some(target)) = (run.action, run.target.clone()) {
            let ev = ActionEvent {
                at: run.started.clone(),
                action,
                target,
                key: run.idempotency_key.clone(),
            };
            if let Err(e) = self.state.record_event(&ev) {
                opsg_core::cli::warn(format!(
                    "cannot record the history of {}: {e}",
                    run.idempotency_key
                ));
            }
        }
    }
}

/// Where the state captured now differs from what the plan recorded, for the keys both have
/// (objects compare on the plan's members only: the planner may know a subset, such as the
/// deployments on one route). `None` when they agree.
pub fn drifted(
    planned: &BTreeMap<String, Value>,
    captured: &BTreeMap<String, Value>,
) -> Option<String> {
    fn differs(path: &str, p: &Value, c: &Value) -> Option<String> {
        match (p, c) {
            (Value::Object(po), Value::Object(co)) => {
                po.iter().find_map(|(k, pv)| match co.get(k) {
                    Some(cv) => differs(&format!("{path}.{k}"), pv, cv),
                    None => Some(format!("`{path}.{k}` is gone")),
                })
            }
            _ if json_close(p, c) => None,
            _ => Some(format!("`{path}` was {p} at plan time, is {c} now")),
        }
    }
    planned.iter().find_map(|(k, p)| captured.get(k).and_then(|c| differs(k, p, c)))
}

/// JSON equality with numbers compared to 1e-9 (relative): `1` and `1.0` are the same weight.
pub fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

fn check_http_url(url: &str) -> std::result::Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

fn excerpt(text: &str) -> String {
    if text.len() <= RESPONSE_EXCERPT {
        return text.to_string();
    }
    let mut end = RESPONSE_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .user_agent(concat!("opsg-exec/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

type CallOutcome = (std::result::Result<(i64, String), (Option<i64>, String)>, bool);

fn http_call(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> CallOutcome {
    let agent = agent(timeout);
    let response = match method {
        "GET" | "DELETE" => {
            let mut req = if method == "GET" { agent.get(url) } else { agent.delete(url) };
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.call()
        }
        _ => {
            let mut req = match method {
                "PUT" => agent.put(url),
                "PATCH" => agent.patch(url),
                _ => agent.post(url),
            };
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            req.content_type("application/json").send(body.unwrap_or(b"{}"))
        }
    };
    match response {
        Ok(mut resp) => {
            let status = i64::from(resp.status().as_u16());
            let text = resp
                .body_mut()
                .with_config()
                .limit(RESPONSE_CAP)
                .read_to_vec()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if (200..300).contains(&status) {
                (Ok((status, text)), false)
            } else {
                let transient = retry_status(method, status);
                (Err((Some(status), format!("HTTP {status}: {}", excerpt(text.trim())))), transient)
            }
        }
        Err(e) => {
            let transient = retry_error(method, &e);
            (Err((None, format!("{method} {url}: {e}"))), transient)
        }
    }
}

/// Idempotent methods (RFC 9110 §9.2.2) may be sent again after any transient failure.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "PUT" | "DELETE")
}

/// Whether an HTTP status is worth another attempt. A POST that got a 500 or a 502 may have
/// acted (a replica restarted twice is a second outage), so only answers that say the request
/// was not processed are retried for it: 429 and 503.
fn retry_status(method: &str, status: i64) -> bool {
    status == 429 || status == 503 || (idempotent(method) && status >= 500)
}

/// Whether a transport failure is worth another attempt: when the request surely never
/// reached the server (no connection, no such host), always; after a timeout or a dropped
/// connection, only for idempotent methods.
fn retry_error(method: &str, e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => true,
        _ => idempotent(method),
    }
}

fn command_call(argv: &[String], env: &[(String, String)], timeout: Duration) -> CallOutcome {
    let Some((program, args)) = argv.split_first() else {
        return (Err((None, "empty argv".into())), false);
    };
    // A clean environment: the command sees PATH, HOME, LANG and what the config gives it, not
    // whatever secrets the cron job's environment happens to hold.
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env_clear();
    for var in ["PATH", "HOME", "LANG", "TZ"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (Err((None, format!("cannot start `{program}`: {e}"))), false),
    };
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(RESPONSE_CAP).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    if !stderr.is_empty() {
        text.push_str(&String::from_utf8_lossy(&stderr));
    }
    match status {
        None => (
            Err((
                None,
                format!(
                    "`{program}` did not finish within {} ms and was killed",
                    timeout.as_millis()
                ),
            )),
            true,
        ),
        Some(s) if s.success() => (Ok((0, text)), false),
        Some(s) => {
            let code = s.code().map(i64::from);
            (
                Err((
                    code,
                    format!(
                        "`{program}` exited with {}: {}",
                        code.map_or("a signal".into(), |c| c.to_string()),
                        excerpt(text.trim())
                    ),
                )),
                false,
            )
        }
    }
}

fn fetch_capture(
    ctx: &Context<'_>,
    capture: &Capture,
    timeout: Duration,
) -> std::result::Result<Value, String> {
    let text = if let Some(url) = &capture.url {
        let u = ctx.render(url, Escape::Url)?;
        check_http_url(&u.real)?;
        match http_call("GET", &u.real, &[], None, timeout) {
            (Ok((_, text)), _) => text,
            (Err((_, why)), _) => return Err(why),
        }
    } else {
        let mut argv = Vec::new();
        for a in &capture.argv {
            argv.push(ctx.render(a, Escape::Raw)?.real);
        }
        match command_call(&argv, &[], timeout) {
            (Ok((_, text)), _) => text,
            (Err((_, why)), _) => return Err(why),
        }
    };
    serde_json::from_str(&text).map_err(|e| format!("the prior state is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_compares_what_the_plan_knew() {
        use serde_json::json;
        let map = |v: Value| -> BTreeMap<String, Value> {
            v.as_object().unwrap().clone().into_iter().collect()
        };
        let planned = map(json!({"weights": {"stable": 0.9, "canary": 0.1}, "config_version": 2}));
        let same = map(
            json!({"weights": {"stable": 0.9, "canary": 0.1, "other": 3.0}, "config_version": 2.0, "status": "x"}),
        );
        assert_eq!(drifted(&planned, &same), None, "extra members and 2 vs 2.0 are not drift");
        let moved = map(json!({"weights": {"stable": 0.5, "canary": 0.5}}));
        let why = drifted(&planned, &moved).unwrap();
        assert!(why.contains("`weights.canary` was 0.1 at plan time, is 0.5 now"), "{why}");
        let gone = map(json!({"weights": {"stable": 0.9}}));
        assert!(drifted(&planned, &gone).unwrap().contains("is gone"));
        assert_eq!(drifted(&BTreeMap::new(), &moved), None);
    }

    #[test]
    fn non_idempotent_calls_are_retried_only_when_they_cannot_have_acted() {
        assert!(retry_status("POST", 503) && retry_status("POST", 429));
        assert!(!retry_status("POST", 500) && !retry_status("POST", 502));
        assert!(retry_status("PUT", 500) && retry_status("GET", 502));
        assert!(!retry_status("GET", 404));
        assert!(retry_error("POST", &ureq::Error::ConnectionFailed));
        assert!(!retry_error("POST", &ureq::Error::Timeout(ureq::Timeout::Global)));
        assert!(retry_error("GET", &ureq::Error::Timeout(ureq::Timeout::Global)));
    }
}

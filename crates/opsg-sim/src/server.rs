//! Listeners and the control API.
//!
//! One control listener serves `/state`, `/chaos`, `/admin/*`, `/tick`, `/reset`. Every replica
//! has its own listener (so a crashed replica really refuses connections: its socket is closed),
//! and every node has a dcgm-exporter and a node_exporter listener. Replica ports are remembered
//! by name, so a restarted replica answers on the same URL again.
//!
//! Threads: one accept loop per listener and one thread per connection, capped at
//! [`MAX_CONNECTIONS`]. Replica listeners poll a non-blocking accept every 10 ms, so a crash can
//! stop and join them without waking tricks; the control and node listeners, which live as long as
//! the process, block in accept. Accept loops never take the fleet lock, so closing a listener
//! while holding it cannot deadlock.

use crate::http::{self, ReadError, Request, Response};
use crate::model::{ApiError, ConfigPatch, FaultKind, Fleet};
use crate::render;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once across all listeners; beyond it clients get 503.
pub const MAX_CONNECTIONS: usize = 256;

/// What a listener serves.
#[derive(Debug, Clone)]
enum Role {
    Control,
    Replica(String),
    Dcgm(usize),
    NodeExporter(usize),
}

#[derive(Debug)]
struct Endpoint {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Endpoint {
    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The fleet plus the listeners that expose it.
#[derive(Debug)]
pub struct World {
    /// The simulation.
    pub fleet: Fleet,
    /// Bound control address.
    pub listen: SocketAddr,
    /// Time advances only through `POST /tick`.
    pub manual_clock: bool,
    /// Sim seconds per real second (background ticker).
    pub speed: f64,
    replica_endpoints: BTreeMap<String, Endpoint>,
    node_endpoints: Vec<(Endpoint, Endpoint)>,
    connections: Arc<AtomicUsize>,
}

/// The shared handle every thread holds.
pub type Shared = Arc<Mutex<World>>;

/// Lock, recovering from a poisoned mutex (a panicking handler must not take the fleet down).
pub fn lock(shared: &Shared) -> MutexGuard<'_, World> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spawn_listener(
    listener: TcpListener,
    role: Role,
    shared: Shared,
    conns: Arc<AtomicUsize>,
) -> Endpoint {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Only replica listeners ever close; the others block in accept and cost nothing idle.
    let closable = matches!(role, Role::Replica(_));
    let _ = listener.set_nonblocking(closable);
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    if flag.load(Ordering::SeqCst) {
                        break; // closing: drop the connection with the listener
                    }
                    if conns.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                        conns.fetch_sub(1, Ordering::SeqCst);
                        let mut stream = stream;
                        http::write_response(
                            &mut stream,
                            &Response::error(503, "too many connections"),
                            false,
                        );
                        continue;
                    }
                    let (role, shared, conns) = (role.clone(), shared.clone(), conns.clone());
                    std::thread::spawn(move || {
                        serve(stream, &role, &shared);
                        conns.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Endpoint { stop, handle: Some(handle) }
}

fn bind_preferring(host: IpAddr, port: Option<u16>) -> std::io::Result<TcpListener> {
    if let Some(p) = port
        && let Ok(l) = TcpListener::bind((host, p))
    {
        return Ok(l);
    }
    TcpListener::bind((host, 0))
}

/// Start the control listener, the node exporters and the replicas; returns the shared world.
pub fn start(
    fleet: Fleet,
    control: TcpListener,
    manual_clock: bool,
    speed: f64,
) -> std::io::Result<Shared> {
    let listen = control.local_addr()?;
    let connections = Arc::new(AtomicUsize::new(0));
    let shared: Shared = Arc::new(Mutex::new(World {
        fleet,
        listen,
        manual_clock,
        speed,
        replica_endpoints: BTreeMap::new(),
        node_endpoints: Vec::new(),
        connections: connections.clone(),
    }));
    {
        let mut w = lock(&shared);
        let n = w.fleet.nodes.len();
        for ni in 0..n {
            let dcgm = TcpListener::bind((listen.ip(), 0))?;
            let exporter = TcpListener::bind((listen.ip(), 0))?;
            w.fleet.nodes[ni].dcgm_port = Some(dcgm.local_addr()?.port());
            w.fleet.nodes[ni].node_exporter_port = Some(exporter.local_addr()?.port());
            let a = spawn_listener(dcgm, Role::Dcgm(ni), shared.clone(), connections.clone());
            let b = spawn_listener(
                exporter,
                Role::NodeExporter(ni),
                shared.clone(),
                connections.clone(),
            );
            w.node_endpoints.push((a, b));
        }
        reconcile(&mut w, &shared);
    }
    let endpoint = spawn_listener(control, Role::Control, shared.clone(), connections);
    // The control endpoint lives as long as the process.
    std::mem::forget(endpoint);
    Ok(shared)
}

/// Make the replica listeners match the fleet: a listener per serving replica, none otherwise.
pub fn reconcile(w: &mut World, shared: &Shared) {
    let host = w.listen.ip();
    let wanted: Vec<(String, Option<u16>)> =
        w.fleet.replicas.values().filter(|r| r.is_up()).map(|r| (r.name.clone(), r.port)).collect();
    let stale: Vec<String> = w
        .replica_endpoints
        .keys()
        .filter(|name| !wanted.iter().any(|(n, _)| n == *name))
        .cloned()
        .collect();
    for name in stale {
        if let Some(ep) = w.replica_endpoints.remove(&name) {
            ep.close();
        }
    }
    for (name, port) in wanted {
        if w.replica_endpoints.contains_key(&name) {
            continue;
        }
        match bind_preferring(host, port) {
            Ok(listener) => {
                let bound = listener.local_addr().map(|a| a.port()).ok();
                if port.is_some() && bound != port {
                    opsg_core::cli::warn(format!(
                        "replica `{name}`: port {} was taken; now on {}",
                        port.unwrap_or(0),
                        bound.unwrap_or(0)
                    ));
                }
                if let Some(r) = w.fleet.replicas.get_mut(&name) {
                    r.port = bound;
                }
                let ep = spawn_listener(
                    listener,
                    Role::Replica(name.clone()),
                    shared.clone(),
                    w.connections.clone(),
                );
                w.replica_endpoints.insert(name, ep);
            }
            Err(err) => opsg_core::cli::warn(format!("replica `{name}`: cannot listen: {err}")),
        }
    }
}

/// Advance the simulation (ticker or `/tick`) and reconcile listeners with its outcome.
pub fn advance(shared: &Shared, seconds: f64) {
    let mut w = lock(shared);
    w.fleet.advance(seconds);
    reconcile(&mut w, shared);
}

fn serve(mut stream: TcpStream, role: &Role, shared: &Shared) {
    let request = match http::read_request(&mut stream) {
        Ok(r) => r,
        Err(ReadError::Respond(resp)) => {
            http::write_response(&mut stream, &resp, false);
            return;
        }
        Err(ReadError::Gone) => return,
    };
    let head_only = request.method == "HEAD";
    let response = match role {
        Role::Control => control(&request, shared),
        Role::Replica(name) => {
            let Some((response, delay)) = replica(&request, name, shared) else {
                return; // the replica died meanwhile: drop the connection
            };
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            response
        }
        // node_exporter's promhttp handler gzips; dcgm-exporter's plain handler does not.
        Role::Dcgm(ni) => exporter(&request, shared, false, |f| render::dcgm_exporter(f, *ni)),
        Role::NodeExporter(ni) => {
            exporter(&request, shared, true, |f| render::node_exporter(f, *ni))
        }
    };
    http::write_response(&mut stream, &response, head_only);
}

/// Gzip the body when the client accepts it (vLLM's prometheus_client app and node_exporter do).
fn encoded(req: &Request, mut response: Response) -> Response {
    if req.accepts_gzip() {
        response.body = http::gzip_stored(&response.body);
        response.headers.push(("Content-Encoding", "gzip".to_string()));
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = Response::error(405, &format!("method not allowed; use {allow}"));
    r.headers.push(("Allow", allow.to_string()));
    r
}

fn is_get(req: &Request) -> bool {
    req.method == "GET" || req.method == "HEAD"
}

fn replica(req: &Request, name: &str, shared: &Shared) -> Option<(Response, u64)> {
    let w = lock(shared);
    let r = w.fleet.replicas.get(name).filter(|r| r.is_up())?;
    let delay = w.fleet.metrics_delay_ms(name);
    let response = match req.path.as_str() {
        "/metrics" if is_get(req) => {
            // As vLLM's prometheus_client app: OpenMetrics when asked for, gzip when accepted.
            let format = render::Format::negotiate(req.header("accept"));
            let body = render::vllm(&w.fleet, r, format);
            encoded(req, Response::text(200, format.content_type(), body))
        }
        "/health" | "/ping" if is_get(req) => {
            Response::text(200, "application/json", String::new())
        }
        "/v1/models" if is_get(req) => Response::json(
            200,
            &json!({"object": "list", "data": [{
                "id": crate::model::MODEL_NAME, "object": "model", "created": w.fleet.unix(r.started_at).floor(),
                "owned_by": "vllm", "root": crate::model::MODEL_NAME, "parent": null,
                "max_model_len": crate::model::MAX_MODEL_LEN, "permission": [],
            }]}),
        ),
        "/version" if is_get(req) => {
            Response::json(200, &json!({"version": crate::model::VLLM_VERSION}))
        }
        "/metrics" | "/health" | "/ping" | "/version" | "/v1/models" => {
            method_not_allowed("GET, HEAD")
        }
        _ => Response::error(404, &format!("no route `{}` on a vLLM replica", req.path)),
    };
    Some((response, delay))
}

fn exporter(
    req: &Request,
    shared: &Shared,
    gzip: bool,
    render: impl Fn(&Fleet) -> String,
) -> Response {
    match req.path.as_str() {
        "/metrics" if is_get(req) => {
            let w = lock(shared);
            let response = Response::text(200, render::CONTENT_TYPE, render(&w.fleet));
            if gzip { encoded(req, response) } else { response }
        }
        "/metrics" => method_not_allowed("GET, HEAD"),
        _ => Response::error(404, &format!("no route `{}`; try /metrics", req.path)),
    }
}

// ----- control API ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosBody {
    target: Option<String>,
    intensity: Option<f64>,
    /// Sim seconds after which the fault ends by itself.
    duration_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TickBody {
    seconds: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficBody {
    weights: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to_version: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleBody {
    replicas: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    /// Reseed the fleet (campaigns run each incident on its own seed).
    seed: Option<u64>,
}

/// Parse a JSON object body; an empty body is `{}` (every field optional) or an error.
fn body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let text = std::str::from_utf8(&req.body).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad("body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad(format!("invalid body: {e}")))
}

fn body_for_log(req: &Request) -> Value {
    if req.body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&req.body).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(&req.body).chars().take(512).collect())
    })
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::error(e.status, &e.message),
    }
}

fn control(req: &Request, shared: &Shared) -> Response {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let mutating = matches!(segments.first(), Some(&"admin") | Some(&"chaos") | Some(&"reset"))
        && matches!(req.method.as_str(), "POST" | "DELETE");
    let response = route(req, &segments, shared);
    if mutating && response.status != 405 {
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let mut w = lock(shared);
        w.fleet.log_admin(&req.method, &target, body_for_log(req), response.status);
        // One line per call on stderr, so a demo's terminal shows what the pipe did to the fleet.
        opsg_core::cli::info(format!(
            "t={:.1}s {} {target} -> {}",
            w.fleet.time, req.method, response.status
        ));
    }
    response
}

fn route(req: &Request, seg: &[&str], shared: &Shared) -> Response {
    let m = req.method.as_str();
    let get = is_get(req);
    match seg {
        [""] if get => Response::json(200, &index()),
        ["healthz"] if get => Response::json(200, &json!({"status": "ok"})),
        ["state"] if get => {
            let w = lock(shared);
            Response::json(200, &state(&w))
        }
        ["targets"] if get => {
            let w = lock(shared);
            match req.query_param("format") {
                None | Some("opsg") => Response::json(200, &targets(&w, false)),
                Some("file_sd") => Response::json(200, &targets(&w, true)),
                Some(other) => Response::error(
                    400,
                    &format!("unknown targets format `{other}`; use `opsg` or `file_sd`"),
                ),
            }
        }
        ["chaos"] if get => {
            let w = lock(shared);
            Response::json(200, &json!({"faults": w.fleet.faults_json(), "sim_time": w.fleet.time}))
        }
        ["chaos", fault] if m == "POST" || m == "DELETE" => {
            let Some(kind) = FaultKind::parse(fault) else {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                return Response::error(
                    404,
                    &format!("unknown fault `{fault}`; known: {}", known.join(", ")),
                );
            };
            respond(chaos(req, kind, shared))
        }
        ["tick"] if m == "POST" => respond(body::<TickBody>(req).and_then(|b| {
            if !b.seconds.is_finite() || b.seconds <= 0.0 || b.seconds > 3600.0 {
                return Err(ApiError::bad("`seconds` must be a number in (0, 3600]"));
            }
            advance(shared, b.seconds);
            let w = lock(shared);
            Ok(json!({"sim_time": w.fleet.time, "unix_time": w.fleet.unix(w.fleet.time)}))
        })),
        ["reset"] if m == "POST" => respond(body::<ResetBody>(req).map(|b| {
            let mut w = lock(shared);
            if let Some(seed) = b.seed {
                w.fleet.cfg.seed = seed;
            }
            w.fleet.reset();
            reconcile(&mut w, shared);
            json!({"reset": true, "seed": w.fleet.cfg.seed, "sim_time": w.fleet.time})
        })),
        ["admin", ..] if m == "POST" => respond(admin(req, seg, shared)),
        [""] | ["healthz"] | ["state"] | ["targets"] | ["chaos"] => method_not_allowed("GET, HEAD"),
        ["chaos", _] => method_not_allowed("POST, DELETE"),
        ["tick"] | ["reset"] | ["admin", ..] => method_not_allowed("POST"),
        _ => Response::error(404, &format!("no route `{}`; GET / lists the API", req.path)),
    }
}

fn chaos(req: &Request, kind: FaultKind, shared: &Shared) -> Result<Value, ApiError> {
    let b: ChaosBody = body(req)?;
    let query_target = req.query_param("target").map(str::to_string);
    let target = b.target.or(query_target);
    let mut w = lock(shared);
    let out = if req.method == "POST" {
        w.fleet.inject_for(kind, target.as_deref(), b.intensity.unwrap_or(0.8), b.duration_s)
    } else {
        w.fleet.clear(kind, target.as_deref())
    };
    reconcile(&mut w, shared);
    out
}

fn admin(req: &Request, seg: &[&str], shared: &Shared) -> Result<Value, ApiError> {
    let mut w = lock(shared);
    let out = match seg {
        ["admin", "traffic"] => {
            let b: TrafficBody = body(req)?;
            w.fleet.set_weights(&b.weights)
        }
        ["admin", "deployments", d, "status"] => {
            let b: StatusBody = body(req)?;
            w.fleet.set_status(d, &b.status)
        }
        ["admin", "deployments", d, "rollback"] => {
            let b: RollbackBody = body(req)?;
            w.fleet.rollback(d, b.to_version)
        }
        ["admin", "deployments", d, "config"] => {
            let b: ConfigPatch = body(req)?;
            w.fleet.change_config(d, &b)
        }
        ["admin", "deployments", d, "scale"] => {
            let b: ScaleBody = body(req)?;
            w.fleet.scale(d, b.replicas)
        }
        ["admin", "replicas", r, "restart"] => {
            body::<EmptyBody>(req)?;
            w.fleet.restart(r)
        }
        ["admin", "nodes", n, action @ ("drain" | "cordon" | "uncordon" | "cleanup")] => {
            body::<EmptyBody>(req)?;
            match *action {
                "drain" => w.fleet.drain_node(n),
                "cordon" => w.fleet.cordon_node(n),
                "uncordon" => w.fleet.uncordon_node(n),
                _ => w.fleet.cleanup_node(n),
            }
        }
        _ => {
            Err(ApiError::not_found(format!("no admin route `{}`; GET / lists the API", req.path)))
        }
    };
    reconcile(&mut w, shared);
    let host = w.listen.ip();
    out.map(|mut v| {
        decorate(&mut v, host);
        v
    })
}

/// Add URLs to replica/node objects (the model knows ports, the server knows the host).
fn decorate(v: &mut Value, host: IpAddr) {
    let host = match host {
        IpAddr::V6(h) => format!("[{h}]"),
        IpAddr::V4(h) => h.to_string(),
    };
    if let Some(obj) = v.as_object_mut() {
        if let Some(port) = obj.get("port").and_then(Value::as_u64) {
            obj.insert("metrics_url".into(), json!(format!("http://{host}:{port}/metrics")));
        }
        if let Some(port) = obj.get("dcgm_port").and_then(Value::as_u64) {
            obj.insert("dcgm_url".into(), json!(format!("http://{host}:{port}/metrics")));
        }
        if let Some(port) = obj.get("node_exporter_port").and_then(Value::as_u64) {
            obj.insert("node_exporter_url".into(), json!(format!("http://{host}:{port}/metrics")));
        }
    }
}

/// `GET /state`.
pub fn state(w: &World) -> Value {
    let f = &w.fleet;
    let host = w.listen.ip();
    let mut replicas = serde_json::Map::new();
    let mut targets = Vec::new();
    for name in f.replicas.keys() {
        let mut v = f.replica_json(name);
        decorate(&mut v, host);
        if let Some(url) = v.get("metrics_url").cloned() {
            let r = &f.replicas[name];
            targets.push(json!({
                "url": url, "job": "vllm", "replica": name, "deployment": r.deployment,
                "role": r.deployment, "node": f.nodes[r.node].name,
                "config_version": r.config_version.to_string(),
            }));
        }
        replicas.insert(name.clone(), v);
    }
    let mut nodes = serde_json::Map::new();
    for (ni, node) in f.nodes.iter().enumerate() {
        let mut v = f.node_json(ni);
        decorate(&mut v, host);
        for (key, job) in [("dcgm_url", "dcgm"), ("node_exporter_url", "node")] {
            if let Some(url) = v.get(key) {
                targets.push(json!({"url": url, "job": job, "node": node.name}));
            }
        }
        nodes.insert(node.name.clone(), v);
    }
    let deployments: serde_json::Map<String, Value> =
        f.deployments.keys().map(|d| (d.clone(), f.deployment_json(d))).collect();
    json!({
        "seed": f.cfg.seed,
        "sim_time": f.time,
        "unix_time": f.unix(f.time),
        "manual_clock": w.manual_clock,
        "speed": w.speed,
        "listen": w.listen.to_string(),
        "arrival_rate": f.cfg.rate,
        "router": {
            "requests_total": f.router_requests,
            "rejected_total": f.router_rejected,
            "failed_total": f.router_failed,
            "traffic_shares": f.traffic_shares(),
        },
        "deployments": deployments,
        "replicas": replicas,
        "nodes": nodes,
        "targets": targets,
        "faults": f.faults_json(),
        "admin_log": f.admin_log_json(),
        "admin_log_total": f.admin_seq,
    })
}

/// `GET /targets`: every endpoint to scrape, as an opsg-scrape targets file (`schemas/
/// targets.schema.json`: name, url, labels) or, with `file_sd`, as Prometheus `file_sd_configs`
/// target groups (one per endpoint, with `__metrics_path__`-free host:port targets).
fn targets(w: &World, file_sd: bool) -> Value {
    let f = &w.fleet;
    let host = match w.listen.ip() {
        IpAddr::V6(h) => format!("[{h}]"),
        IpAddr::V4(h) => h.to_string(),
    };
    // (name, port, labels)
    let mut out: Vec<(String, u16, serde_json::Map<String, Value>)> = Vec::new();
    for r in f.replicas.values() {
        let Some(port) = r.port else { continue };
        let role = if r.deployment == "canary" { "canary" } else { "stable" };
        // `config_version`: the version the replica's process runs, as a Kubernetes pod's
        // template label would tell service discovery (triage compares canary and stable).
        let labels = json!({
            "job": "vllm", "replica": r.name, "deployment": r.deployment, "role": role,
            "node": f.nodes[r.node].name, "config_version": r.config_version.to_string(),
        });
        out.push((r.name.clone(), port, labels.as_object().cloned().unwrap_or_default()));
    }
    for n in &f.nodes {
        for (job, port) in [("dcgm", n.dcgm_port), ("node", n.node_exporter_port)] {
            let Some(port) = port else { continue };
            let labels = json!({"job": job, "node": n.name});
            out.push((
                format!("{}/{job}", n.name),
                port,
                labels.as_object().cloned().unwrap_or_default(),
            ));
        }
    }
    if file_sd {
        json!(out
            .into_iter()
            .map(|(_, port, labels)| json!({"targets": [format!("{host}:{port}")], "labels": labels}))
            .collect::<Vec<_>>())
    } else {
        json!({"targets": out
            .into_iter()
            .map(|(name, port, labels)| {
                json!({"name": name, "url": format!("http://{host}:{port}/metrics"), "labels": labels})
            })
            .collect::<Vec<_>>()})
    }
}

fn index() -> Value {
    json!({
        "service": "opsg-sim",
        "endpoints": {
            "GET /healthz": "liveness",
            "GET /state": "the whole fleet as JSON",
            "GET /targets": "every /metrics endpoint as an opsg-scrape targets file (?format=file_sd: Prometheus file_sd)",
            "GET /chaos": "active faults",
            "POST /chaos/<fault>": "start a fault: {\"target\": NAME, \"intensity\": 0..1, \"duration_s\": N (optional)}",
            "DELETE /chaos/<fault>": "end a fault (optional ?target=NAME) and undo its effects",
            "POST /tick": "advance sim time: {\"seconds\": N}",
            "POST /reset": "back to the seeded initial state; {\"seed\": N} reseeds",
            "POST /admin/traffic": "{\"weights\": {\"stable\": 0.5, \"canary\": 0.5}}",
            "POST /admin/deployments/<d>/status": "{\"status\": \"drain\"|\"active\"}",
            "POST /admin/deployments/<d>/config": "{\"max_num_seqs\": N, ...}: new config version",
            "POST /admin/deployments/<d>/rollback": "{\"to_version\": N}",
            "POST /admin/deployments/<d>/scale": "{\"replicas\": N}",
            "POST /admin/replicas/<r>/restart": "restart a replica",
            "POST /admin/nodes/<n>/drain": "cordon and move replicas away",
            "POST /admin/nodes/<n>/cordon": "no new placements; a replica restarted there moves to another node",
            "POST /admin/nodes/<n>/uncordon": "allow placement again",
            "POST /admin/nodes/<n>/cleanup": "free the root filesystem",
        },
        "faults": FaultKind::ALL
            .iter()
            .map(|k| json!({"fault": k.as_str(), "target": k.target_kind(), "remediation": k.remediation()}))
            .collect::<Vec<_>>(),
    })
}

//! Helpers for the opsg-scrape end-to-end tests: a tiny std::net HTTP server whose routes misbehave
//! on purpose, a way to run the real binary, and a reader that checks its record (seal, schema).

#![allow(dead_code)]

use opsg_core::kinds::observation::{ObservationBody, TargetObservation};
use opsg_core::stream::{Limits, RecordLine, read_chain};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a route answers.
#[derive(Clone)]
pub enum Reply {
    /// A status, extra headers and a body.
    Fixed { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// A body produced per request (the request count is passed in, starting at 1).
    Counting(Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>),
    /// Headers announcing `len` bytes, then an endless stream of valid lines (never allocated).
    Endless { len: u64 },
    /// Read the request and never answer (until the server is dropped).
    Hang,
    /// Redirect to `to`.
    Redirect { to: String },
    /// `failures` answers of HTTP 503 (with `Retry-After: 0`), then `then`.
    FailFirst { failures: u64, then: Box<Reply> },
    /// HTTP 401 unless the request carries header `name` (lower-case) with exactly `value`.
    Guarded { name: String, value: String, then: Box<Reply> },
}

impl Reply {
    /// 200 with a text 0.0.4 body.
    pub fn text(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Fixed {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "text/plain; version=0.0.4; charset=utf-8".into(),
            )],
            body: body.into(),
        }
    }
}

/// A test HTTP server on 127.0.0.1 with fixed routes.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Bytes written by `Endless` routes (to prove a cap stopped the stream early).
    pub streamed: Arc<AtomicU64>,
    /// Requests seen per path.
    pub hits: Arc<Mutex<HashMap<String, u64>>>,
    /// The headers of the last request per path (names lower-cased).
    pub headers: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
}

impl Server {
    pub fn start(routes: Vec<(&str, Reply)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let addr = listener.local_addr().expect("local addr");
        let routes: Arc<HashMap<String, Reply>> =
            Arc::new(routes.into_iter().map(|(p, r)| (p.to_string(), r)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let streamed = Arc::new(AtomicU64::new(0));
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let headers = Arc::new(Mutex::new(HashMap::new()));
        let (s, b, h, hd) = (stop.clone(), streamed.clone(), hits.clone(), headers.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, s, b, h, hd) =
                    (routes.clone(), s.clone(), b.clone(), h.clone(), hd.clone());
                std::thread::spawn(move || serve(conn, &routes, &s, &b, &h, &hd));
            }
        });
        Server { addr, stop, streamed, hits, headers }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A header of the last request to `path`.
    pub fn header(&self, path: &str, name: &str) -> Option<String> {
        self.headers.lock().ok()?.get(path)?.get(name).cloned()
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.hits.lock().map(|h| h.get(path).copied().unwrap_or(0)).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(
    mut conn: TcpStream,
    routes: &HashMap<String, Reply>,
    stop: &AtomicBool,
    streamed: &AtomicU64,
    hits: &Mutex<HashMap<String, u64>>,
    seen_headers: &Mutex<HashMap<String, HashMap<String, String>>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    // Keep-alive: serve requests on this connection until the client closes it.
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let path = target.split('?').next().unwrap_or("/").to_string();
        let count = {
            let mut h = hits.lock().expect("hits lock");
            let n = h.entry(path.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if let Ok(mut seen) = seen_headers.lock() {
            seen.insert(path.clone(), headers);
        }
        let mut reply = routes.get(&path).cloned().unwrap_or(Reply::Fixed {
            status: 404,
            headers: vec![],
            body: b"not found\n".to_vec(),
        });
        if let Reply::Guarded { name, value, then } = reply {
            let sent = seen_headers.lock().ok().and_then(|s| s.get(&path)?.get(&name).cloned());
            reply = if sent.as_deref() == Some(value.as_str()) {
                *then
            } else {
                Reply::Fixed {
                    status: 401,
                    headers: vec![("WWW-Authenticate".into(), "Bearer".into())],
                    body: b"unauthorized\n".to_vec(),
                }
            };
        }
        if let Reply::FailFirst { failures, then } = reply {
            reply = if count <= failures {
                Reply::Fixed {
                    status: 503,
                    headers: vec![("Retry-After".into(), "0".into())],
                    body: b"warming up\n".to_vec(),
                }
            } else {
                *then
            };
        }
        let ok = match reply {
            Reply::FailFirst { .. } | Reply::Guarded { .. } => false,
            Reply::Fixed { status, headers, body } => respond(&mut conn, status, &headers, &body),
            Reply::Counting(f) => respond(
                &mut conn,
                200,
                &[("Content-Type".into(), "text/plain; version=0.0.4".into())],
                &f(count),
            ),
            Reply::Redirect { to } => respond(&mut conn, 302, &[("Location".into(), to)], b""),
            Reply::Hang => {
                for _ in 0..600 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Reply::Endless { len } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {len}\r\n\r\n"
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = "# a valid line, repeated\nfiller_metric{i=\"0\"} 1\n".repeat(1500);
                let mut sent = 0u64;
                while sent < len {
                    if conn.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                    sent += chunk.len() as u64;
                    streamed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                return;
            }
        };
        if !ok {
            return;
        }
    }
}

fn respond(conn: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body)).is_ok()
}

/// A port nothing listens on (bound, then released).
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/metrics")
}

/// gzip with stored (uncompressed) deflate blocks: a valid gzip stream without a compressor.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opsg-scrape")
}

/// Run opsg-scrape with `args` (and optional stdin), in a cleared environment.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run_env(args, stdin, &[])
}

/// [`run`] with these environment variables set (the only ones besides `PATH` and `NO_COLOR`).
pub fn run_env(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn opsg-scrape");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // A capped reader stops reading early (that is the point): a broken pipe is fine.
        if let Err(e) = pipe.write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    child.wait_with_output().expect("wait for opsg-scrape")
}

/// The one record opsg-scrape wrote, checked (seal, schema id, schema, genesis link).
pub fn record(out: &Output) -> (RecordLine, ObservationBody) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let chain = read_chain(&out.stdout[..], "stdout", &Limits::default())
        .unwrap_or_else(|e| panic!("output is not a valid chain: {e}"));
    assert_eq!(chain.records.len(), 1, "exactly one record");
    let rec = chain.records.into_iter().next().expect("one record");
    assert!(rec.prev.is_genesis(), "a new chain starts at GENESIS");
    let value = rec.value().expect("JSON");
    opsg_core::schema::validate_record(rec.kind(), &value).expect("schema-valid");
    let body: ObservationBody = rec.body("stdout").expect("typed body");
    // No unplanned field: the typed body serializes back to exactly what was written.
    let again = serde_json::to_value(&body).expect("body serializes");
    assert_eq!(&again, &value["body"], "the record has members the contract does not know");
    (rec, body)
}

pub fn target<'b>(body: &'b ObservationBody, name: &str) -> &'b TargetObservation {
    body.targets.iter().find(|t| t.name == name).unwrap_or_else(|| {
        panic!(
            "no target `{name}` in {:?}",
            body.targets.iter().map(|t| &t.name).collect::<Vec<_>>()
        )
    })
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scrape").join(name)
}

pub fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "opsg-scrape-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Read everything from a reader (helper for child processes' pipes).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

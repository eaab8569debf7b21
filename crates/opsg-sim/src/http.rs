//! A small, strict HTTP/1.1 server side: read one request with bounds, write one response, close.
//!
//! No framework: the simulator needs GET/POST/DELETE with small JSON bodies, and a scraper-facing
//! `/metrics`. Bounds keep a misbehaving client from costing memory or a thread forever: headers
//! are capped at [`MAX_HEAD`], bodies at [`MAX_BODY`], and every read has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Maximum size of the request line plus headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// Maximum request body.
pub const MAX_BODY: usize = 256 * 1024;
/// Read timeout per request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Method, upper case as sent.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string (without `?`), possibly empty.
    pub query: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True when the client accepts gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
    pub fn accepts_gzip(&self) -> bool {
        self.header("accept-encoding").is_some_and(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                let zero = parts.any(|p| {
                    p.trim().strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0)
                });
                coding.eq_ignore_ascii_case("gzip") && !zero
            })
        })
    }

    /// A query parameter's (undecoded) value.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Response { status, content_type: "application/json", body, headers: Vec::new() }
    }

    /// A JSON error `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({"error": message, "status": status}))
    }

    /// A text response.
    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response { status, content_type, body: body.into_bytes(), headers: Vec::new() }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// CRC-32 (IEEE), as gzip's trailer needs it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Wrap `data` in a gzip member made of *stored* deflate blocks (RFC 1951 §3.2.4, RFC 1952).
///
/// Valid gzip that any decoder reads, without a compression dependency: the simulator's payloads
/// are small and local, and what matters is that scrapers exercise their `Content-Encoding: gzip`
/// path against it as they would against vLLM's prometheus_client app.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 32);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown)
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        let len = chunk.len() as u16;
        out.push(last); // BFINAL + BTYPE=00, then byte-aligned LEN, NLEN
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Why a request could not be read: the response to send (if the connection still works).
#[derive(Debug)]
pub enum ReadError {
    /// Send this error response.
    Respond(Response),
    /// The peer went away or timed out: just close.
    Gone,
}

/// Read one request from `stream`.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, ReadError> {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let reader_stream = stream.try_clone().map_err(|_| ReadError::Gone)?;
    let mut reader = BufReader::new(reader_stream.take((MAX_HEAD + MAX_BODY + 1) as u64));
    let mut head_len = 0usize;
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD + 1) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|_| ReadError::Gone)?;
        if n == 0 {
            return Err(ReadError::Gone);
        }
        head_len += n;
        if head_len > MAX_HEAD {
            return Err(ReadError::Respond(Response::error(431, "request head exceeds 16 KiB")));
        }
        if !line.ends_with(b"\n") {
            return Err(ReadError::Gone);
        }
        let text = String::from_utf8(line)
            .map_err(|_| ReadError::Respond(Response::error(400, "request head is not UTF-8")))?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate leading CRLF (RFC 9112 §2.2)
            }
            break;
        }
        lines.push(text);
    }
    let bad = |m: &str| ReadError::Respond(Response::error(400, m));
    let request_line = lines.first().ok_or_else(|| bad("empty request"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Respond(Response::error(505, "only HTTP/1.x is supported")));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("malformed method"));
    }
    if !target.starts_with('/') {
        return Err(bad("request target must be an absolute path"));
    }
    let mut content_length: Option<usize> = None;
    let mut expect_continue = false;
    let mut headers = Vec::new();
    for header in &lines[1..] {
        let (name, value) = header.split_once(':').ok_or_else(|| bad("malformed header line"))?;
        let value = value.trim();
        if headers.len() < 100 {
            headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
        }
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value.parse().map_err(|_| bad("invalid Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("conflicting Content-Length headers"));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                return Err(ReadError::Respond(Response::error(
                    501,
                    "Transfer-Encoding is not supported; send Content-Length",
                )));
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => expect_continue = true,
            _ => {}
        }
    }
    let length = content_length.unwrap_or(0);
    if length > MAX_BODY {
        return Err(ReadError::Respond(Response::error(413, "request body exceeds 256 KiB")));
    }
    if expect_continue && length > 0 {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|_| ReadError::Gone)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    Ok(Request { method: method.to_string(), path, query, headers, body })
}

/// Write `response` and close (`Connection: close`). HEAD gets the headers only.
pub fn write_response(stream: &mut TcpStream, response: &Response, head_only: bool) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(&response.body);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Drain what the client may still send so the close does not turn into a reset that loses
    // the response (bounded by the read timeout and a byte cap).
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 || drained > MAX_BODY {
            break;
        }
        drained += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn roundtrip(raw: &[u8]) -> Result<Request, ReadError> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = raw.to_vec();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(&raw);
            let _ = s.shutdown(std::net::Shutdown::Write);
        });
        let (mut stream, _) = listener.accept().unwrap();
        let out = read_request(&mut stream);
        client.join().unwrap();
        out
    }

    #[test]
    fn parses_method_path_query_and_body() {
        let req = roundtrip(
            b"POST /chaos/gpu_fault?target=x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/chaos/gpu_fault");
        assert_eq!(req.query_param("target"), Some("x"));
        assert_eq!(req.body, b"{}");
    }

    #[test]
    fn rejects_bad_requests_with_a_status() {
        let status = |raw: &[u8]| match roundtrip(raw) {
            Err(ReadError::Respond(r)) => r.status,
            other => panic!("expected an error response, got {other:?}"),
        };
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"), 413);
        assert_eq!(status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        huge.extend(b"\r\n\r\n");
        assert_eq!(status(&huge), 431);
    }

    #[test]
    fn gzip_stored_frames_are_well_formed() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip_stored(&data);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        // 3 stored blocks (65535 + 65535 + 18930), each with a 5-byte header.
        assert_eq!(gz.len(), 10 + data.len() + 3 * 5 + 8);
        assert_eq!(gz[10], 0, "first block is not final");
        let trailer = &gz[gz.len() - 8..];
        assert_eq!(&trailer[4..], &(data.len() as u32).to_le_bytes());
        assert_eq!(gzip_stored(b"").len(), 10 + 5 + 8);
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        let with = |v: &str| Request {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![("accept-encoding".into(), v.into())],
            body: Vec::new(),
        };
        assert!(with("gzip").accepts_gzip());
        assert!(with("br, gzip;q=0.8").accepts_gzip());
        assert!(!with("gzip;q=0").accepts_gzip());
        assert!(!with("identity").accepts_gzip());
    }

    #[test]
    fn truncated_body_is_gone_not_a_panic() {
        assert!(matches!(
            roundtrip(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(ReadError::Gone)
        ));
    }
}

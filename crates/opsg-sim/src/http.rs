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
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Request {
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
    for header in &lines[1..] {
        let (name, value) = header.split_once(':').ok_or_else(|| bad("malformed header line"))?;
        let value = value.trim();
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
    Ok(Request { method: method.to_string(), path, query, body })
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
    fn truncated_body_is_gone_not_a_panic() {
        assert!(matches!(
            roundtrip(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(ReadError::Gone)
        ));
    }
}

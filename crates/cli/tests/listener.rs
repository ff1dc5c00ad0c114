//! `serve`'s listener as a newcomer meets it (issue 30): `--bind localhost:PORT` is accepted, a chunked body over
//! a route's limit gets the same JSON 413 as a declared one, and `serve --help` lists the routes.

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use fernando_cache_testkit::RedisServer;
use serde_json::Value;
use support::{ACME, Server};

/// `localhost:PORT` is the loopback address: the server starts, says where, and answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binds_localhost() {
    let redis = RedisServer::start();
    let server = Server::spawn(&redis.url(), &["serve", "--bind", "localhost:0"], &[]);
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    let health = server.get("/health", None).await;
    assert_eq!(health.status(), 200);
}

/// A host name other than localhost is refused with the address forms that work, before anything starts.
#[test]
fn serve_refuses_other_host_names_saying_what_works() {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "serve", "--bind", "example.invalid:8080"])
        .env_remove("FERNANDO_CACHE_ENV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"example.invalid:8080\""), "{err}");
    assert!(err.contains("localhost:8080"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Sends `head` (a request's lines, without the blank line) and `body` as chunks of `chunk` bytes, then reads
/// the whole answer (the server closes the connection after a body it refused); returns its status line, its
/// headers (lower-cased names) and its body.
fn send_chunked(base: &str, head: &str, body: &[u8], chunk: usize) -> (String, String, Value) {
    let mut s = TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    let mut request =
        format!("{head}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for part in body.chunks(chunk) {
        request.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        request.extend_from_slice(part);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all: a failed write is not the test's concern.
    let _ = s.write_all(&request);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = headers.lines().next().unwrap_or_default().to_owned();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, headers.to_ascii_lowercase(), json)
}

/// Sends `body` with its length declared, and returns the status line and the JSON body.
fn send_declared(base: &str, head: &str, body: &[u8]) -> (String, Value) {
    let mut s = TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    let mut request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let _ = s.write_all(&request);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (headers.lines().next().unwrap_or_default().to_owned(), json)
}

/// A body over the route's limit is one answer whether its length was declared or it came in chunks: 413, the
/// same JSON message naming the limit, a request id — never the framework's "Failed to buffer the request body".
/// On the document route and on a JSON route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_the_same_413_as_a_declared_one() {
    let redis = RedisServer::start();
    let server = Server::spawn(
        &redis.url(),
        &["serve", "--bind", "127.0.0.1:0"],
        &[
            ("FERNANDO_CACHE__PROCESSOR__MAX_DOCUMENT_BYTES", "2048"),
            ("FERNANDO_CACHE__SERVER__LIMITS__JSON_BODY_BYTES", "1024"),
        ],
    );
    let auth = format!("Authorization: Bearer {ACME}");
    let routes = [
        ("/v1/documents", "text/plain", 2048, b'a'),
        ("/v1/events", "application/json", 1024, b' '),
    ];
    for (path, content_type, limit, filler) in routes {
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: {content_type}");
        let body = vec![filler; limit * 3 / 2];
        let expected = format!("the body is larger than this route accepts ({limit} bytes)");

        let (status, headers, chunked) = send_chunked(&server.base, &head, &body, 500);
        assert!(status.contains(" 413 "), "{path}: {status}");
        assert_eq!(chunked["error"], expected.as_str(), "{path}: {chunked}");
        assert!(
            chunked["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{chunked}"
        );
        assert!(headers.contains("connection: close"), "{path}: {headers}");

        let (status, declared) = send_declared(&server.base, &head, &body);
        assert!(status.contains(" 413 "), "{path}: {status}");
        assert_eq!(declared["error"], chunked["error"], "{path}");
    }
    // Within the limit, a chunked document is processed as ever.
    let head =
        format!("POST /v1/documents HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: text/plain");
    let mut s = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    let body = b"Invoice number: N-4001\nTotal: 3.00 EUR\n";
    let mut request =
        format!("{head}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&request).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("N-4001"), "{answer}");
}

/// `serve --help` says which routes there are and who may call them.
#[test]
fn serve_help_lists_the_routes() {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for route in [
        "POST /v1/documents",
        "GET  /v1/documents/{sha256}",
        "POST /v1/events",
        "GET  /v1/cache/stats",
        "POST /v1/cache/invalidate",
        "GET  /health",
        "GET  /metrics",
        "GET  /dashboard",
        "localhost:8080",
    ] {
        assert!(help.contains(route), "{route} in:\n{help}");
    }
}

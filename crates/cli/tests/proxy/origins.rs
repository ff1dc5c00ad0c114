//! The origins `proxy` meets beyond a plain HTTP/1.1 one (issue 30): an `https://` origin trusted through
//! `proxy.origin_ca_file` or the system's roots, and refused — as a 502 that says so — when its certificate is
//! not trusted; an HTTP/1.0 origin, whose answers still reach the client as HTTP/1.1; and `HEAD`, answered from
//! a stored `GET` and never stored itself. The TLS and HTTP/1.0 origins are raw sockets, so what reaches the
//! proxy is exactly what is written here.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    http::{Method, Uri},
};
use fernando_cache_testkit::RedisServer;

use crate::support::{Server, proxy, wire::read_response};

/// A request a raw origin received: its method, its path and the server name the client sent (SNI, over TLS).
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    sni: Option<String>,
}

/// An origin on a raw socket: every connection is read up to the end of one request's head, answered with what
/// `answer` writes for its path and its number, and closed — over TLS when it has a server config.
struct RawOrigin {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl RawOrigin {
    fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        answer: fn(&str, usize) -> String,
    ) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let (tls, kept) = (tls.clone(), kept.clone());
                std::thread::spawn(move || serve_one(tcp, tls, &kept, answer));
            }
        });
        RawOrigin { addr, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve_one(
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    received: &Mutex<Vec<Received>>,
    answer: fn(&str, usize) -> String,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match tls {
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            // A client that refuses the certificate ends the handshake here: nothing is received.
            let Some(head) = read_head(&mut stream) else {
                return;
            };
            let sni = stream.conn.server_name().map(str::to_owned);
            respond(&mut stream, &head, sni, received, answer);
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        None => {
            let mut tcp = tcp;
            if let Some(head) = read_head(&mut tcp) {
                respond(&mut tcp, &head, None, received, answer);
            }
        }
    }
}

/// A request's head, up to its blank line; `None` when the connection ends (or fails) before it.
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

fn respond(
    stream: &mut impl Write,
    head: &str,
    sni: Option<String>,
    received: &Mutex<Vec<Received>>,
    answer: fn(&str, usize) -> String,
) {
    let mut line = head.lines().next().unwrap_or_default().split(' ');
    let method = line.next().unwrap_or_default().to_owned();
    let path = line.next().unwrap_or_default().to_owned();
    let n = {
        let mut received = received.lock().unwrap();
        received.push(Received {
            method,
            path: path.clone(),
            sni,
        });
        received.len()
    };
    let _ = stream.write_all(answer(&path, n).as_bytes());
    let _ = stream.flush();
}

/// `HTTP/1.1 200`, fresh for ten minutes, `{path} #{n}`.
fn answer_http_1_1(path: &str, n: usize) -> String {
    let body = format!("{path} #{n}");
    format!(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The same answer from an HTTP/1.0 server.
fn answer_http_1_0(path: &str, n: usize) -> String {
    let body = format!("{path} #{n}");
    format!(
        "HTTP/1.0 200 OK\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n\
         {body}",
        body.len()
    )
}

/// A fresh self-signed certificate for `localhost`: the server config of an origin presenting it, and the
/// certificate as a PEM file for a client that is to trust it.
struct Certificate {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl Certificate {
    fn new() -> Certificate {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], signing_key.into())
        .unwrap();
        Certificate {
            dir,
            server: Arc::new(server),
        }
    }

    fn pem_file(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }
}

/// `proxy` in front of `origin` with `env`.
fn proxy_with(redis: &RedisServer, origin: &str, env: &[(&str, &str)]) -> Server {
    Server::spawn(
        &redis.url(),
        &["proxy", "--origin", origin, "--bind", "127.0.0.1:0"],
        env,
    )
}

/// Whether `p` logs a line that `matches` within a few seconds (its log is read on a thread of its own).
async fn logs(p: &Server, matches: impl Fn(&str) -> bool) -> bool {
    for _ in 0..100 {
        if p.log_lines().iter().any(|l| matches(l.as_str())) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn get(p: &Server, path: &str) -> reqwest::Response {
    p.client
        .get(format!("{}{path}", p.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_reached_through_the_configured_ca_with_its_host_as_sni_and_cached() {
    let redis = RedisServer::start();
    let cert = Certificate::new();
    let origin = RawOrigin::start(Some(cert.server.clone()), answer_http_1_1);
    let url = format!("https://localhost:{}", origin.addr.port());
    let ca = cert.pem_file();
    let p = proxy_with(
        &redis,
        &url,
        &[("FERNANDO_CACHE__PROXY__ORIGIN_CA_FILE", ca.as_str())],
    );
    for expected in ["MISS", "HIT"] {
        let r = get(&p, "/tls/1").await;
        assert_eq!(r.status(), 200, "{expected}");
        assert_eq!(r.headers()["x-cache"], expected);
        assert_eq!(r.text().await.unwrap(), "/tls/1 #1", "{expected}");
    }
    let received = origin.received();
    assert_eq!(
        received.len(),
        1,
        "the second answer came from the cache: {received:?}"
    );
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("GET", "/tls/1")
    );
    assert_eq!(
        received[0].sni.as_deref(),
        Some("localhost"),
        "the origin's host is sent as SNI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_file_the_systems_roots_decide_and_a_refused_certificate_is_a_clear_502() {
    let redis = RedisServer::start();
    let cert = Certificate::new();
    let origin = RawOrigin::start(Some(cert.server.clone()), answer_http_1_1);
    let url = format!("https://localhost:{}", origin.addr.port());
    // The system's roots, made the same on every machine: the native store is read from SSL_CERT_FILE when it
    // is set. First a store holding some other authority only.
    let stranger = Certificate::new();
    let stranger_roots = stranger.pem_file();
    let untrusting = proxy_with(&redis, &url, &[("SSL_CERT_FILE", stranger_roots.as_str())]);
    let r = get(&untrusting, "/tls/refused").await;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the origin's certificate was not accepted: it is not signed by a trusted authority"
    );
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let text = body.to_string();
    for internal in [
        "rustls",
        "UnknownIssuer",
        "invalid peer",
        "client error",
        "Connect",
    ] {
        assert!(
            !text.contains(internal),
            "{internal:?} reached the client: {text}"
        );
    }
    assert!(
        origin.received().is_empty(),
        "nothing was sent over a connection whose certificate was refused"
    );
    // The operator's log has the cause and what to do about a private CA.
    assert!(
        logs(&untrusting, |l| l.contains("not accepted")
            && l.contains("proxy.origin_ca_file"))
        .await,
        "{:#?}",
        untrusting.log_lines()
    );

    // A store that holds the origin's authority: reached, without proxy.origin_ca_file.
    let roots = cert.pem_file();
    let trusting = proxy_with(&redis, &url, &[("SSL_CERT_FILE", roots.as_str())]);
    let r = get(&trusting, "/tls/trusted").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "/tls/trusted #1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_origins_answers_reach_the_client_as_http_1_1_on_miss_and_hit() {
    let redis = RedisServer::start();
    let origin = RawOrigin::start(None, answer_http_1_0);
    let p = proxy(&redis, origin.addr, &[]);
    for expected in ["MISS", "HIT"] {
        let r = get(&p, "/old/1").await;
        assert_eq!(r.version(), reqwest::Version::HTTP_11, "{expected}");
        assert_eq!(r.headers()["x-cache"], expected);
        // Via records what this hop received (RFC 9110 §7.6.3); it is stored with the response.
        assert_eq!(r.headers()["via"], "1.0 fernando-cache", "{expected}");
        assert_eq!(r.text().await.unwrap(), "/old/1 #1", "{expected}");
    }
    // The status line itself, of a miss and of the hit that follows it.
    for path in ["/old/2", "/old/2"] {
        let mut s = TcpStream::connect(p.base.trim_start_matches("http://")).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        assert_eq!(read_response(&s), "HTTP/1.1 200 OK", "{path}");
    }
    assert_eq!(origin.received().len(), 2, "{:?}", origin.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_from_a_stored_get_and_never_stored_itself() {
    let redis = RedisServer::start();
    let received: Arc<Mutex<Vec<(Method, String)>>> = Arc::default();
    let seen = received.clone();
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push((method, uri.path().to_owned()));
            (
                [
                    ("cache-control", "max-age=600"),
                    ("etag", "\"h1\""),
                    ("x-origin", "kept"),
                ],
                "the GET's body",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let p = proxy(&redis, addr, &[]);
    let url = format!("{}/page/1", p.base);
    let methods = || {
        received
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.to_string())
            .collect::<Vec<_>>()
    };

    // Nothing stored: the HEAD goes to the origin as a HEAD, and what it answers is not kept.
    let head = p.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-cache"], "MISS");
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(methods(), ["HEAD"]);
    let get = p.client.get(&url).send().await.unwrap();
    assert_eq!(get.headers()["x-cache"], "MISS", "the HEAD stored nothing");
    assert_eq!(get.text().await.unwrap(), "the GET's body");
    assert_eq!(methods(), ["HEAD", "GET"]);

    // Stored by the GET: a HEAD is a hit, with the GET's status and fields and no body.
    let head = p.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-cache"], "HIT");
    assert_eq!(head.headers()["x-origin"], "kept");
    assert_eq!(head.headers()["etag"], "\"h1\"");
    assert_eq!(head.headers()["cache-control"], "max-age=600");
    assert_eq!(
        head.headers()["content-length"],
        "the GET's body".len().to_string().as_str()
    );
    assert!(head.headers().contains_key("age"));
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(methods(), ["HEAD", "GET"], "the origin was not asked");

    // A HEAD that must ask the origin goes as a HEAD, and leaves the stored GET as it was.
    let asked = p
        .client
        .head(&url)
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.headers()["x-cache"], "MISS");
    assert_eq!(methods(), ["HEAD", "GET", "HEAD"]);
    let get = p.client.get(&url).send().await.unwrap();
    assert_eq!(get.headers()["x-cache"], "HIT");
    assert_eq!(get.text().await.unwrap(), "the GET's body");
    assert_eq!(methods(), ["HEAD", "GET", "HEAD"]);
}

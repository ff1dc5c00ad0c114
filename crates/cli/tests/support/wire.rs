//! Raw HTTP/1.1 on a socket, for the tests of what a server does with clients that misbehave: stalled bodies,
//! idle connections, responses read byte for byte.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// Whether the server closed the connection (EOF or reset) within `within`; what it sent before closing (a 408,
/// say) is read past.
pub fn closed_within(mut s: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// Reads one response on `s` (headers, then `Content-Length` bytes of body) and returns its status line.
pub fn read_response(mut s: &TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head.lines().next().unwrap_or("").to_owned();
            }
        }
        let n = s.read(&mut buf).expect("read a response");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Opens a connection to `base` and sends a POST to `path` with `headers` that declares a body of 1000 bytes
/// and sends 16 of them: a client whose body stops arriving.
pub fn stalled_body(base: &str, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut s = TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write the head");
    s.write_all(b"{\"event_type\": \"par")
        .expect("write the start of the body");
    s
}

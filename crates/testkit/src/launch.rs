//! The one way the testkit starts a server process — a `redis-server`, a cluster node, a sentinel, each with any
//! TLS or cluster-bus port it needs: on ports found free, and again on new ones when a port was lost. A port found
//! free can be taken by another process before the server binds it ("Address already in use"); the server then
//! exits while it starts, or its log says so, and another attempt on other ports succeeds.

use std::{
    collections::VecDeque,
    net::TcpListener,
    sync::{Mutex, PoisonError},
};

/// How many times a server is started, on new ports each time, before the testkit gives up.
const ATTEMPTS: usize = 5;

/// How many ports handed out lately are remembered, so that two servers of one test process starting at the same
/// moment are never handed the same port.
const RECENT_PORTS: usize = 256;

static RECENT: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());

/// Why one attempt to start a server failed; each holds what the server said (its log).
#[derive(Debug)]
pub(crate) enum StartError {
    /// A port it was given was taken before it bound it: another attempt, on other ports, may succeed.
    PortLost(String),
    /// It failed otherwise (it never answered); other ports would not help.
    Failed(String),
}

impl StartError {
    /// What an attempt that did not come up means: a lost port when the process exited while starting or its
    /// `report` (its log, with why the attempt ended) says an address was in use; otherwise a failure.
    pub(crate) fn classify(exited: bool, report: String) -> StartError {
        if exited || report.contains("Address already in use") {
            StartError::PortLost(report)
        } else {
            StartError::Failed(report)
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortLost(report) => {
                write!(f, "it lost a port or exited while starting: {report}")
            }
            StartError::Failed(report) => f.write_str(report),
        }
    }
}

/// Calls `start` with `count` distinct free ports on 127.0.0.1, and again with new ones while it reports a lost
/// port, up to [`ATTEMPTS`] times.
///
/// # Panics
/// When `start` fails otherwise, or loses a port on every attempt (`what` names the server; the last report is
/// printed).
pub(crate) fn on_free_ports<T>(
    what: &str,
    count: usize,
    mut start: impl FnMut(&[u16]) -> Result<T, StartError>,
) -> T {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match start(&free_ports(count)) {
            Ok(started) => return started,
            Err(StartError::PortLost(report)) => last = Some(report),
            Err(e @ StartError::Failed(_)) => panic!("{what} did not come up: {e}"),
        }
    }
    panic!(
        "{what} did not come up in {ATTEMPTS} attempts, each on new free ports; the last: {}",
        last.unwrap_or_default()
    );
}

/// `count` distinct ports that were free a moment ago, none handed out lately by this process.
///
/// # Panics
/// When no port on 127.0.0.1 can be bound.
fn free_ports(count: usize) -> Vec<u16> {
    let mut recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    // Every listener is held until all ports are chosen, so the kernel hands out a different port each time.
    let mut held = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        if !recent.contains(&port) {
            ports.push(port);
        }
        held.push(listener);
    }
    drop(held);
    for &port in &ports {
        if recent.len() == RECENT_PORTS {
            recent.pop_front();
        }
        recent.push_back(port);
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_one_call_and_of_calls_close_together_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            for port in free_ports(3) {
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
    }

    #[test]
    fn a_lost_port_is_tried_again_on_new_ports_and_a_failure_is_not() {
        let mut tried = Vec::new();
        let started = on_free_ports("a server", 2, |ports| {
            tried.push(ports.to_vec());
            if tried.len() < 3 {
                Err(StartError::classify(
                    false,
                    "bind: Address already in use".to_owned(),
                ))
            } else {
                Ok(ports[1])
            }
        });
        assert_eq!(tried.len(), 3);
        assert_ne!(tried[0], tried[1], "each attempt gets new ports");
        assert_eq!(started, tried[2][1]);
        assert!(matches!(
            StartError::classify(true, String::new()),
            StartError::PortLost(_)
        ));
        let failed = std::panic::catch_unwind(|| {
            on_free_ports("a server", 1, |_| -> Result<(), _> {
                Err(StartError::classify(false, "no answer".to_owned()))
            })
        });
        assert!(
            failed.is_err(),
            "a failure that is no lost port is not retried"
        );
    }
}

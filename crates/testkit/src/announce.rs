//! Programs under test that announce where they listen: `fernando-cache serve` and `proxy` print one line with
//! their `http://` address on stdout before anything else.

use std::{
    io::{BufRead, BufReader},
    process::Child,
};

/// Reads `child`'s first stdout line (stdout must be piped) and returns the `http://…` address in it; the rest
/// of stdout is drained on a thread so the program never blocks writing it.
///
/// # Panics
/// When the program prints nothing, or a first line without an address (its stderr says why).
pub fn announced_address(child: &mut Child) -> String {
    announced_addresses(child).swap_remove(0)
}

/// Every `http://…` address of the first line, in order (`proxy` names its origin after its own address, and
/// with `--dashboard` its console's last).
///
/// # Panics
/// As [`announced_address`].
pub fn announced_addresses(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().expect("the program's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("the program printed nothing")
        .expect("stdout");
    let addresses: Vec<String> = line
        .split_whitespace()
        .filter(|w| w.starts_with("http://"))
        .map(|w| w.trim_end_matches([';', ',']).to_owned())
        .collect();
    assert!(!addresses.is_empty(), "unexpected first line: {line}");
    std::thread::spawn(move || for _ in lines {});
    addresses
}

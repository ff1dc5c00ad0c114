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
    let stdout = child.stdout.take().expect("the program's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .expect("the program printed nothing")
        .expect("stdout");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    base
}

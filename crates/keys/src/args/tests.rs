//! The argument encoding's tests: stability across types and processes, the golden bytes, and errors.
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::Serialize;

use super::*;

fn hex_of<T: Serialize + ?Sized>(domain: &str, v: &T) -> String {
    let mut h = ArgsHasher::new(domain);
    h.arg("a", v).unwrap();
    h.finish_hex()
}

#[test]
fn the_short_digest_is_the_first_half_of_the_full_one() {
    let mut h = ArgsHasher::new("billing::summary");
    h.arg("user", &42u32).unwrap();
    let full = h.clone().finish_hex();
    let mut short = String::from("prefix/");
    h.finish_short_hex_into(&mut short);
    assert_eq!(full.len(), 64);
    assert_eq!(short, format!("prefix/{}", &full[..32]));
    assert!(
        full.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

#[derive(Serialize)]
struct Query {
    user: u64,
    filters: HashMap<String, String>,
    page: Option<u32>,
}

#[derive(Serialize)]
enum Period {
    Month(u8),
    Year { year: u16 },
    All,
}

#[test]
fn the_digest_of_known_values_is_pinned() {
    // Pinned: a change here changes every key the macro derives — a deliberate, versioned act.
    assert_eq!(
        hex_of("f", &(42u32, "x")),
        hex_of("f", &(42u64, "x".to_owned()))
    );
    // The encoding spelled out byte by byte, hashed with SHA-256 directly.
    let mut spelled = b"fernando-cache/args/v1\0".to_vec();
    let len = |n: usize| (n as u64).to_le_bytes();
    spelled.extend(len(16));
    spelled.extend(b"billing::summary");
    spelled.extend([tag::ARG]);
    spelled.extend(len(1));
    spelled.extend(b"a");
    spelled.extend([tag::SEQ, tag::ITEM, tag::UINT]);
    spelled.extend(42u128.to_le_bytes());
    spelled.extend([tag::ITEM, tag::STR]);
    spelled.extend(len(7));
    spelled.extend(b"2026-11");
    spelled.extend([tag::END]);
    let expected: String = Sha256::digest(&spelled)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pinned = hex_of("billing::summary", &(42u32, "2026-11"));
    assert_eq!(pinned, expected);
    assert_eq!(
        pinned,
        "a7d078a5c591ecbb1947168be6f7628f82fcd0574762a2dfa770805a490b0aa0"
    );
}

#[test]
fn maps_hash_the_same_whatever_their_iteration_order() {
    let pairs: Vec<(String, String)> = (0..50)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let a: HashMap<_, _> = pairs.iter().cloned().collect();
    let b: HashMap<_, _> = pairs.iter().rev().cloned().collect();
    let c: BTreeMap<_, _> = pairs.iter().cloned().collect();
    assert_eq!(hex_of("f", &a), hex_of("f", &b));
    assert_eq!(hex_of("f", &a), hex_of("f", &c));
}

#[test]
fn different_values_domains_and_names_differ() {
    let q = |user, page| Query {
        user,
        filters: HashMap::from([("status".to_owned(), "open".to_owned())]),
        page,
    };
    assert_ne!(hex_of("f", &q(1, None)), hex_of("f", &q(1, Some(0))));
    assert_ne!(hex_of("f", &q(1, None)), hex_of("f", &q(2, None)));
    assert_ne!(hex_of("f", &q(1, None)), hex_of("g", &q(1, None)));
    assert_ne!(hex_of("f", &Period::Month(1)), hex_of("f", &Period::All));
    assert_ne!(
        hex_of("f", &Period::Month(1)),
        hex_of("f", &Period::Year { year: 1 })
    );
    // Length prefixes and explicit ends keep concatenations apart.
    assert_ne!(hex_of("f", &("ab", "c")), hex_of("f", &("a", "bc")));
    assert_ne!(
        hex_of("f", &(vec![1u8], 2u8)),
        hex_of("f", &(vec![1u8, 2u8],))
    );
    let mut x = ArgsHasher::new("f");
    x.arg("a", &1).unwrap();
    let mut y = ArgsHasher::new("f");
    y.arg("b", &1).unwrap();
    assert_ne!(x.finish_hex(), y.finish_hex());
}

#[test]
fn a_failing_serialize_is_an_error_naming_the_argument() {
    struct Bad;
    impl Serialize for Bad {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("not today"))
        }
    }
    let err = ArgsHasher::new("f").arg("conn", &Bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument `conn` cannot be part of a cache key: not today"
    );
}

proptest! {
    #[test]
    fn distinct_string_lists_give_distinct_digests(a: Vec<String>, b: Vec<String>) {
        prop_assume!(a != b);
        prop_assert_ne!(hex_of("f", &a), hex_of("f", &b));
    }

    #[test]
    fn integers_hash_by_value_not_width(v: u32) {
        prop_assert_eq!(hex_of("f", &v), hex_of("f", &u64::from(v)));
        prop_assert_eq!(hex_of("f", &v), hex_of("f", &i64::from(v)));
    }
}

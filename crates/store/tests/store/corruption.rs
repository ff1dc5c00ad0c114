//! Hostile or broken stored values are misses, are counted and removed, and never panic or allocate wildly.

use fernando_cache_config::CacheType;
use fernando_cache_store::Store;
use fernando_cache_testkit::RedisServer;
use serde::{Deserialize, Serialize};

use crate::support::{Deployment, contract, redis_store, tenant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    title: String,
    body: String,
}

fn full_key(store: &Store, key: &str) -> String {
    store
        .admin()
        .keys()
        .key(&tenant("acme"), &CacheType::OCR_RESULT, key)
        .unwrap()
        .into_string()
}

fn header(codec: u8, flags: u8, tag: u64, decoded_len: u32) -> Vec<u8> {
    let mut v = vec![b'F', b'C', 1, codec, flags];
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&[0u8; 16]);
    v.extend_from_slice(&decoded_len.to_le_bytes());
    v
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn exists(server: &RedisServer, key: &str) -> bool {
    server.command(&["EXISTS", key]).unwrap().starts_with(":1")
}

contract! {
    async fn broken_entries_are_misses_are_counted_and_removed(d, store) {
        broken_entries(d, store).await;
    }
    on [disk, standalone, cluster]
}

async fn broken_entries(d: &Deployment, store: &Store) {
    let t = tenant("acme");
    let ty = CacheType::OCR_RESULT;

    // A genuine entry to cut and to re-type.
    let _ = store
        .set(
            &t,
            &ty,
            "good",
            &Doc {
                title: "t".into(),
                body: "b".repeat(5000),
            },
        )
        .await
        .unwrap();
    // 1 GiB of zeros, zstd-compressed (~40 KiB), streamed so this test never holds the gigabyte.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();

    // bincode: a String whose length prefix claims 2^40 bytes.
    let mut claim = vec![253u8];
    claim.extend_from_slice(&(1u64 << 40).to_le_bytes());

    let doc_tag = {
        // The tag of `Doc` as the store computes it: FNV-1a 64 of the type name.
        let name = std::any::type_name::<Doc>();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\xffnot an envelope at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated_header", b"FC\x01\x01".to_vec()),
    ];
    let mut huge_claim = header(1, 0, doc_tag, claim.len() as u32);
    huge_claim.extend_from_slice(&claim);
    cases.push(("length_2_pow_40", huge_claim));
    for (name, announced) in [("bomb_honest", 1u32 << 30), ("bomb_lying", 4096)] {
        let mut v = header(0, 1, 0x5054_51d8_1923_8fd3, announced);
        v.extend_from_slice(&bomb);
        cases.push((name, v));
    }
    // A real envelope of another type (u64) read as Doc.
    let _ = store.set(&t, &ty, "foreign", &42u64).await.unwrap();

    let rss_before = peak_rss_bytes();
    for (name, bytes) in &cases {
        d.put_raw(&full_key(store, name), bytes);
    }
    // A truncated copy of the genuine compressed envelope.
    d.truncated_copy(&full_key(store, "good"), &full_key(store, "cut"), 10);

    let mut names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    names.extend(["foreign", "cut"]);
    for name in &names {
        let got = store.get::<Doc>(&t, &ty, name).await.unwrap();
        assert_eq!(got, None, "{name} must be a miss");
        assert!(
            !d.exists_raw(&full_key(store, name)),
            "{name} must be removed"
        );
    }
    let grown = peak_rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < 256 << 20,
        "decoding hostile values grew peak memory by {grown} bytes"
    );

    let c = store
        .metrics()
        .series("acme", "ocr_result")
        .unwrap()
        .counters;
    assert_eq!(c.corrupt, names.len() as u64, "{c:?}");
    assert_eq!(c.misses, names.len() as u64);
    assert_eq!(c.hits, 0);

    // The genuine entry still decodes.
    assert!(store.get::<Doc>(&t, &ty, "good").await.unwrap().is_some());
}

/// A hash under an entry key (only Redis has other value types) is a counted miss, and the computed value
/// replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_under_an_entry_key_is_a_counted_miss_and_is_replaced() {
    let (server, store) = redis_store();
    let t = tenant("acme");
    let ty = CacheType::OCR_RESULT;
    server
        .command(&["HSET", &full_key(&store, "wrongtype"), "f", "v"])
        .unwrap();
    // A hash under the key is a miss either way: a tracked hit's GET answers WRONGTYPE (counted and removed at
    // once); an MGET (tracking not yet on) sees it as absent, and get_or_compute's miss path then recognises the
    // WRONGTYPE, counts it and removes it. Either way it is counted once and the computed value replaces it.
    let wrong = full_key(&store, "wrongtype");
    assert_eq!(store.get::<Doc>(&t, &ty, "wrongtype").await.unwrap(), None);
    let computed = store
        .get_or_compute(&t, &ty, "wrongtype", || async {
            Ok::<_, std::io::Error>(Doc {
                title: "fresh".into(),
                body: String::new(),
            })
        })
        .await
        .unwrap();
    assert_eq!(computed.title, "fresh");
    assert!(
        server
            .command(&["TYPE", &wrong])
            .unwrap()
            .starts_with("+string")
    );
    let c = store
        .metrics()
        .series("acme", "ocr_result")
        .unwrap()
        .counters;
    assert_eq!(c.corrupt, 1, "{c:?}");
    assert!(exists(&server, &wrong));
    let again = store.get::<Doc>(&t, &ty, "wrongtype").await.unwrap();
    assert_eq!(again.unwrap().title, "fresh");
}

//! The envelope's unit tests: formats, sections, bounds on hostile input.

use proptest::prelude::*;
use serde::Deserialize;

use super::*;

/// The production profile's compression, for the codec's tests.
pub(super) const POLICY: CompressionPolicy = CompressionPolicy {
    enabled: true,
    threshold: 1024,
    level: 3,
    max_decoded: 64 << 20,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    id: u64,
    text: String,
    fields: Vec<(String, String)>,
}

fn round_trip<T: Serialize + DeserializeOwned>(v: &T) -> T {
    let enc = encode_typed(v, [7, 9], &POLICY).unwrap();
    let h = read_header(&enc.bytes).unwrap();
    assert_eq!(h.generations, [7, 9]);
    decode_typed(&enc.bytes, &h, POLICY.max_decoded).unwrap()
}

#[test]
fn an_uncompressed_copy_decodes_to_the_same_value() {
    let doc = Doc {
        id: 7,
        text: "invoice total ".repeat(400),
        fields: vec![],
    };
    let sealed = encode_typed(&doc, [3, 4], &POLICY).unwrap();
    let header = read_header(&sealed.bytes).unwrap();
    assert!(header.compressed);
    let copy = uncompressed(sealed.bytes.clone().into(), &header, POLICY.max_decoded).unwrap();
    let copy_header = read_header(&copy).unwrap();
    assert!(!copy_header.compressed);
    assert_eq!(copy_header.generations, [3, 4]);
    let back: Doc = decode_typed(&copy, &copy_header, POLICY.max_decoded).unwrap();
    assert_eq!(back, doc);
}

#[test]
fn golden_bytes_of_a_small_value() {
    // Pins the envelope layout: changing it must be a conscious act with a new format version.
    let enc = encode_typed(&(1u8, "hi".to_owned()), [1, 2], &POLICY).unwrap();
    let tag = type_tag_of::<(u8, String)>().to_le_bytes();
    let mut expected = vec![b'F', b'C', 2, 1, 0];
    expected.extend_from_slice(&tag);
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(&4u32.to_le_bytes());
    expected.extend_from_slice(&[0; 16]);
    expected.extend_from_slice(&[1, 2, b'h', b'i']);
    assert_eq!(enc.bytes, expected);
    let mut stamped = enc.bytes.clone();
    set_freshness(&mut stamped, 1_000, 60_000, true);
    expected[4] = 0b10;
    expected[33..41].copy_from_slice(&1_000u64.to_le_bytes());
    expected[41..49].copy_from_slice(&60_000u64.to_le_bytes());
    assert_eq!(stamped, expected);
    let h = read_header(&stamped).unwrap();
    assert!(h.fail_safe && h.is_fresh(60_999) && !h.is_fresh(61_000));
    assert!(h.is_past(0.5, 31_000) && !h.is_past(0.5, 30_999));
    assert_eq!(RAW_TYPE_TAG, 0x5054_51d8_1923_8fd3);
    assert_eq!(crate::hash::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn tags_ride_between_header_and_payload() {
    let doc = Doc {
        id: 1,
        text: "total 12.00 EUR ".repeat(300),
        fields: vec![],
    };
    let sealed = encode_typed(&doc, [1, 2], &POLICY).unwrap();
    let tagged = with_tags(&sealed.bytes, &[("customer:42", 7), ("reports", 9)]).unwrap();
    let h = read_header(&tagged).unwrap();
    assert_eq!(tags(&tagged, &h), [("customer:42", 7), ("reports", 9)]);
    let back: Doc = decode_typed(&tagged, &h, POLICY.max_decoded).unwrap();
    assert_eq!(back, doc);
    // Kept through decompression for the in-process tier.
    let copy = uncompressed(tagged.clone().into(), &h, POLICY.max_decoded).unwrap();
    let ch = read_header(&copy).unwrap();
    assert!(!ch.compressed);
    assert_eq!(tags(&copy, &ch), [("customer:42", 7), ("reports", 9)]);
    assert_eq!(
        decode_typed::<Doc>(&copy, &ch, POLICY.max_decoded).unwrap(),
        doc
    );
    // A cut or lying tag section is refused, not read past.
    for cut in [HEADER_LEN + 1, HEADER_LEN + 12] {
        assert_eq!(
            read_header(&tagged[..cut]),
            Err(DecodeError::Tags),
            "cut at {cut}"
        );
    }
    let mut lying = tagged.clone();
    lying[HEADER_LEN] = 200;
    assert_eq!(read_header(&lying), Err(DecodeError::Tags));
    assert!(with_tags(&tagged, &[("x", 1)]).is_err(), "tagged twice");
    let many: Vec<(&str, u64)> = (0..17).map(|_| ("t", 0)).collect();
    assert!(with_tags(&sealed.bytes, &many).is_err());
}

#[test]
fn a_version_goes_into_the_room_the_encoder_kept_and_reads_the_same() {
    let doc = (7u8, "total 12.00 EUR ".repeat(300));
    let version = Version {
        hlc: 9 << 16,
        origin: 42,
    };
    let mut roomy = encode_typed_with(&doc, [1, 2], &POLICY, None, true, |_| {})
        .unwrap()
        .bytes;
    let mut exact = encode_typed(&doc, [1, 2], &POLICY).unwrap().bytes;
    assert_eq!(roomy.capacity(), roomy.len() + 16);
    let kept = roomy.as_ptr();
    set_version(&mut roomy, version);
    set_version(&mut exact, version);
    // In place: the same buffer, now full (it becomes the write's bytes without another allocation).
    assert_eq!(roomy.as_ptr(), kept);
    assert_eq!(roomy.capacity(), roomy.len());
    assert_eq!(exact.capacity(), exact.len());
    assert_eq!(roomy, exact);
    let h = read_header(&roomy).unwrap();
    assert_eq!(h.version, Some(version));
    assert_eq!(
        decode_typed::<(u8, String)>(&roomy, &h, POLICY.max_decoded).unwrap(),
        doc
    );
}

#[test]
fn a_version_rides_between_header_and_tags_and_orders_as_its_bytes() {
    let doc = (7u8, "total 12.00 EUR ".repeat(300));
    let plain = encode_typed(&doc, [1, 2], &POLICY).unwrap();
    let tagged = with_tags(&plain.bytes, &[("customer:42", 7)]).unwrap();
    let (older, newer) = (
        Version {
            hlc: 5 << 16,
            origin: u64::MAX,
        },
        Version {
            hlc: (5 << 16) + 1,
            origin: 0,
        },
    );
    assert!(older < newer && older.to_bytes() < newer.to_bytes());
    assert_eq!(Version::from_bytes(&newer.to_bytes()), newer);
    for bytes in [plain.bytes.clone(), tagged] {
        let mut versioned = bytes.clone();
        set_version(&mut versioned, older);
        assert_eq!(versioned.len(), bytes.len() + 16);
        // Said again in place, not added twice.
        set_version(&mut versioned, newer);
        assert_eq!(versioned.len(), bytes.len() + 16);
        let h = read_header(&versioned).unwrap();
        assert_eq!(h.version, Some(newer));
        assert_eq!(
            tags(&versioned, &h),
            tags(&bytes, &read_header(&bytes).unwrap())
        );
        assert_eq!(
            decode_typed::<(u8, String)>(&versioned, &h, POLICY.max_decoded).unwrap(),
            doc
        );
        // Cut inside the section: truncated, not read past.
        assert!(read_header(&versioned[..HEADER_LEN + 8]).is_err());
        assert!(with_tags(&versioned, &[("x", 1)]).is_err(), "tagged after");
    }
}

#[test]
fn format_1_envelopes_still_read_and_are_always_fresh() {
    // Written by earlier releases: no freshness fields, payload at 33.
    let tag = type_tag_of::<(u8, String)>().to_le_bytes();
    let mut v1 = vec![b'F', b'C', 1, 1, 0];
    v1.extend_from_slice(&tag);
    v1.extend_from_slice(&1u64.to_le_bytes());
    v1.extend_from_slice(&2u64.to_le_bytes());
    v1.extend_from_slice(&4u32.to_le_bytes());
    v1.extend_from_slice(&[1, 2, b'h', b'i']);
    let h = read_header(&v1).unwrap();
    assert_eq!((h.len, h.written_ms, h.fresh_ms), (33, 0, 0));
    assert!(h.is_fresh(u64::MAX) && !h.is_past(0.5, u64::MAX));
    let back: (u8, String) = decode_typed(&v1, &h, POLICY.max_decoded).unwrap();
    assert_eq!(back, (1, "hi".to_owned()));
    // A format-2 header cut short is truncated, not read as format 1.
    let v2 = encode_typed(&(1u8, "hi".to_owned()), [1, 2], &POLICY)
        .unwrap()
        .bytes;
    assert_eq!(read_header(&v2[..40]), Err(DecodeError::Truncated(40)));
}

#[test]
fn compresses_only_above_threshold_and_only_when_smaller() {
    let small = "x".repeat(1000);
    let big = "invoice line 42: widgets 3 x 19.99 EUR\n".repeat(100);
    let enc_small = encode_raw(small.as_bytes(), [0, 0], &POLICY).unwrap();
    let enc_big = encode_raw(big.as_bytes(), [0, 0], &POLICY).unwrap();
    assert!(!read_header(&enc_small.bytes).unwrap().compressed);
    assert!(read_header(&enc_big.bytes).unwrap().compressed);
    assert!(enc_big.bytes.len() < big.len() / 3);
    let h = read_header(&enc_big.bytes).unwrap();
    assert_eq!(
        decode_raw(&enc_big.bytes, &h, POLICY.max_decoded).unwrap(),
        big.as_bytes()
    );
    // Incompressible data above the threshold is stored as it is.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            // xorshift64*: bytes with no structure zstd can use.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect();
    let enc_noise = encode_raw(&noise, [0, 0], &POLICY).unwrap();
    assert!(!read_header(&enc_noise.bytes).unwrap().compressed);
}

#[test]
fn borrowed_and_owned_forms_share_a_tag() {
    assert_eq!(type_tag_of::<&str>(), type_tag_of::<String>());
    assert_eq!(type_tag_of::<str>(), type_tag_of::<String>());
    assert_eq!(type_tag_of::<&[u32]>(), type_tag_of::<Vec<u32>>());
    assert_eq!(type_tag_of::<&&u8>(), type_tag_of::<u8>());
    assert_ne!(type_tag_of::<[u8; 4]>(), type_tag_of::<Vec<u8>>());
    assert_ne!(type_tag_of::<u64>(), type_tag_of::<i64>());
    let enc = encode_typed("text", [0, 0], &POLICY).unwrap();
    let h = read_header(&enc.bytes).unwrap();
    assert_eq!(
        decode_typed::<String>(&enc.bytes, &h, 1 << 20).unwrap(),
        "text"
    );
}

#[test]
fn foreign_types_and_codecs_are_refused() {
    let enc = encode_typed(&42u64, [0, 0], &POLICY).unwrap();
    let h = read_header(&enc.bytes).unwrap();
    assert_eq!(
        decode_typed::<i64>(&enc.bytes, &h, 1 << 20),
        Err(DecodeError::ForeignType)
    );
    let raw = encode_raw(b"abc", [0, 0], &POLICY).unwrap();
    let h = read_header(&raw.bytes).unwrap();
    assert_eq!(
        decode_typed::<Vec<u8>>(&raw.bytes, &h, 1 << 20),
        Err(DecodeError::ForeignType)
    );
    assert_eq!(decode_raw(&raw.bytes, &h, 1 << 20).unwrap(), b"abc");
}

#[test]
fn hostile_inputs_are_errors_not_panics_or_huge_allocations() {
    assert_eq!(read_header(b"FC\x01"), Err(DecodeError::Truncated(3)));
    assert_eq!(read_header(&[0u8; 40]), Err(DecodeError::BadMagic));
    let good = encode_typed(&"hello".to_owned(), [0, 0], &POLICY)
        .unwrap()
        .bytes;
    let mut v = good.clone();
    v[2] = 9;
    assert_eq!(read_header(&v), Err(DecodeError::Version(9)));
    let mut v = good.clone();
    v[3] = 200;
    assert_eq!(read_header(&v), Err(DecodeError::Codec(200)));
    let mut v = good.clone();
    v[4] = 0x80;
    assert_eq!(read_header(&v), Err(DecodeError::Flags(0x80)));

    // A bincode length prefix claiming 2^40 bytes for a String.
    let mut claim = vec![253u8];
    claim.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let mut v = good[..HEADER_LEN].to_vec();
    v[29..33].copy_from_slice(&(claim.len() as u32).to_le_bytes());
    v.extend_from_slice(&claim);
    let h = read_header(&v).unwrap();
    assert!(matches!(
        decode_typed::<String>(&v, &h, 1 << 20),
        Err(DecodeError::Bincode(_))
    ));

    // A header announcing more than the limit is refused before any allocation.
    let mut v = good.clone();
    v[29..33].copy_from_slice(&u32::MAX.to_le_bytes());
    let h = read_header(&v).unwrap();
    assert!(matches!(
        decode_typed::<String>(&v, &h, 1 << 20),
        Err(DecodeError::TooLarge { .. })
    ));

    // Truncated payload.
    let v = &good[..good.len() - 1];
    let h = read_header(v).unwrap();
    assert!(matches!(
        decode_typed::<String>(v, &h, 1 << 20),
        Err(DecodeError::LengthMismatch { .. })
    ));
}

#[test]
fn a_zstd_bomb_is_bounded_by_the_announced_length() {
    // 1 GiB of zeros compresses to ~40 KiB; streamed so the test never holds the gigabyte.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    for announced in [100u32, 1 << 20, u32::MAX] {
        let mut v = vec![b'F', b'C', 1, 0, 1];
        v.extend_from_slice(&RAW_TYPE_TAG.to_le_bytes());
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&announced.to_le_bytes());
        v.extend_from_slice(&bomb);
        let h = read_header(&v).unwrap();
        let err = decode_raw(&v, &h, 64 << 20).unwrap_err();
        assert!(
            matches!(err, DecodeError::Zstd(_) | DecodeError::TooLarge { .. }),
            "{err}"
        );
    }
}

proptest! {
    #[test]
    fn typed_round_trip(id in any::<u64>(), text in ".{0,3000}", n in 0usize..20) {
        let doc = Doc { id, fields: (0..n).map(|i| (format!("k{i}"), text.clone())).collect(), text };
        prop_assert_eq!(round_trip(&doc), doc);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(h) = read_header(&bytes) {
            let _ = decode_typed::<Doc>(&bytes, &h, 1 << 20);
            let _ = decode_raw(&bytes, &h, 1 << 20);
        }
    }

    #[test]
    fn mutated_envelopes_never_panic(idx in 0usize..200, byte in any::<u8>()) {
        let doc = Doc { id: 1, text: "abc".repeat(400), fields: vec![("a".into(), "b".into())] };
        let mut bytes = encode_typed(&doc, [0, 0], &POLICY).unwrap().bytes;
        let i = idx % bytes.len();
        bytes[i] = byte;
        if let Ok(h) = read_header(&bytes) {
            let _ = decode_typed::<Doc>(&bytes, &h, 1 << 20);
        }
    }
}

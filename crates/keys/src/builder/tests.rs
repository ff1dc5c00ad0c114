//! Tests of the key builder: the layout the seed fixed (golden), one-to-one keys, literal patterns, and
//! entries sharing their slot with their generation keys and lease.

use proptest::prelude::*;

use super::*;

#[test]
fn an_entry_keys_group_is_its_scope_and_type() {
    let keys = KeyBuilder::new("fernando", Environment::Production, 128);
    let t = TenantId::new("a:b").unwrap();
    let k = keys.key(&t, &CacheType::DOC_HASH, "x:y/z").unwrap();
    assert_eq!(
        KeyBuilder::group_of(k.as_str()),
        "fernando:production:{tenant_a%3Ab}:doc_hash"
    );
    let other = keys.key(&t, &CacheType::OCR_RESULT, "x").unwrap();
    assert_ne!(
        KeyBuilder::group_of(k.as_str()),
        KeyBuilder::group_of(other.as_str())
    );
}

#[test]
fn quota_keys_share_the_scopes_slot_outside_its_data() {
    let keys = builder();
    let t = tenant("acme");
    let [bytes, requests] = keys.quota_keys(&t).unwrap();
    assert_eq!(bytes, "fernando:production:_quota:{tenant_acme}:bytes");
    assert_eq!(
        requests,
        "fernando:production:_quota:{tenant_acme}:requests"
    );
    // The tenant's data pattern starts with its scope right after the prefix; quota keys do not.
    let data = keys.scan_pattern(&t, None);
    assert_eq!(data, "fernando:production:{tenant_acme}:*");
}

#[test]
fn tenant_globs_match_the_tenants_keys_and_no_other_tenants() {
    let keys = builder();
    let acme = TenantId::new("acme").unwrap();
    let globs = keys.tenant_globs(&acme);
    let matches = |key: &str| {
        globs
            .iter()
            .any(|g| crate::glob_match(g.as_bytes(), key.as_bytes()))
    };
    let t: Scope = acme.clone().into();
    let entry = keys.key(&t, &CacheType::DOC_HASH, "x").unwrap();
    let gens = keys.generation_keys(&t, &CacheType::DOC_HASH).unwrap();
    let [bytes, requests] = keys.quota_keys(&t).unwrap();
    for key in [
        entry.as_str(),
        gens.scope(),
        gens.cache_type(),
        &keys.lease_key(&entry),
        &bytes,
        &requests,
        "fernando:production:{tenant_acme%s3}:doc_hash:x",
        "fernando:production:_gen:{tenant_acme%s0}:doc_hash",
    ] {
        assert!(matches(key), "{key} is acme's");
    }
    for other in [
        "acme2",
        "acm",
        "acme}",
        "acme%s1",
        "acme%",
        "acme*",
        "{tenant_acme}",
    ] {
        let o: Scope = TenantId::new(other).unwrap().into();
        let entry = keys.key(&o, &CacheType::DOC_HASH, "x").unwrap();
        let gens = keys.generation_keys(&o, &CacheType::DOC_HASH).unwrap();
        let [bytes, _] = keys.quota_keys(&o).unwrap();
        for key in [
            entry.as_str(),
            gens.scope(),
            &keys.lease_key(&entry),
            &bytes,
        ] {
            assert!(!matches(key), "{key} belongs to {other:?}, not acme");
        }
    }
    let global = keys.key(&Scope::Global, &CacheType::DOC_HASH, "x").unwrap();
    assert!(!matches(global.as_str()));
}

fn builder() -> KeyBuilder {
    KeyBuilder::new("fernando", Environment::Production, 128)
}

fn tenant(s: &str) -> Scope {
    TenantId::new(s).unwrap().into()
}

#[test]
fn layout_matches_the_seed() {
    let k = builder()
        .key(&tenant("user123"), &CacheType::DOC_HASH, "a1b2c3d4e5f6")
        .unwrap();
    assert_eq!(
        k.as_str(),
        "fernando:production:{tenant_user123}:doc_hash:a1b2c3d4e5f6"
    );
    let g = builder()
        .key(&Scope::Global, &CacheType::REFERENCE_DATA, "countries")
        .unwrap();
    assert_eq!(
        g.as_str(),
        "fernando:production:{global}:reference_data:countries"
    );
    let gens = builder()
        .generation_keys(&tenant("a:b"), &CacheType::SESSION)
        .unwrap();
    assert_eq!(gens.scope(), "fernando:production:_gen:{tenant_a%3Ab}");
    assert_eq!(
        gens.cache_type(),
        "fernando:production:_gen:{tenant_a%3Ab}:session"
    );
}

#[test]
fn hostile_tenants_get_distinct_keys_and_literal_patterns() {
    let b = builder();
    let tenants = ["a", "a:b", "*", "a%3Ab", "a\\", "[a]", "a?"];
    let keys: Vec<_> = tenants
        .iter()
        .map(|t| b.key(&tenant(t), &CacheType::SESSION, "k").unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        for (j, other) in keys.iter().enumerate() {
            if i != j {
                assert_ne!(k, other);
            }
        }
    }
    assert_eq!(
        b.scan_pattern(&tenant("*"), None),
        "fernando:production:{tenant_\\*}:*"
    );
    assert_eq!(
        b.scan_pattern(&tenant("a:b"), Some(&CacheType::SESSION)),
        "fernando:production:{tenant_a%3Ab}:session:*"
    );
    assert_eq!(
        b.key_pattern(&tenant("a"), Some(&CacheType::SESSION), "user:*"),
        "fernando:production:{tenant_a}:session:user%3A*"
    );
    assert_eq!(
        b.key_pattern(&tenant("a"), None, "x*"),
        "fernando:production:{tenant_a}:*:x*"
    );
}

#[test]
fn limits_are_enforced() {
    let b = KeyBuilder::new("fernando", Environment::Test, 4);
    assert!(matches!(
        b.key(&tenant("abcde"), &CacheType::SESSION, "k"),
        Err(KeyError::TenantTooLong { len: 5, max: 4 })
    ));
    assert!(matches!(
        b.key(&tenant("abc"), &CacheType::SESSION, &"k".repeat(5000)),
        Err(KeyError::KeyTooLong { .. })
    ));
}

/// A tiny model of Redis glob matching, enough to check our patterns: `*`, `?` and backslash escapes.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|i| glob_match(&pattern[1..], &text[i..])),
        Some(b'?') => !text.is_empty() && glob_match(&pattern[1..], &text[1..]),
        Some(b'\\') if pattern.len() > 1 => {
            text.first() == Some(&pattern[1]) && glob_match(&pattern[2..], &text[1..])
        }
        Some(c) => text.first() == Some(c) && glob_match(&pattern[1..], &text[1..]),
    }
}

fn tenant_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c:%*?{}\\\\\\[\\]]{1,6}").unwrap()
}

/// The part of a key Redis Cluster hashes: between the first `{` and the first `}` after it, when that is
/// not empty (the rule of the cluster specification).
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

proptest! {
    #[test]
    fn keys_are_one_to_one(
        t1 in tenant_strategy(), t2 in tenant_strategy(),
        k1 in any::<String>(), k2 in any::<String>(),
        ty1 in 0usize..8, ty2 in 0usize..8,
    ) {
        let b = builder();
        let a = b.key(&tenant(&t1), &CacheType::BUILT_IN[ty1], &k1).unwrap();
        let c = b.key(&tenant(&t2), &CacheType::BUILT_IN[ty2], &k2).unwrap();
        prop_assert_eq!(a == c, (t1, ty1, k1) == (t2, ty2, k2));
    }

    #[test]
    fn tenant_patterns_match_only_their_tenant(
        t1 in tenant_strategy(), t2 in tenant_strategy(), k in "[a-z:*]{0,6}",
    ) {
        let b = builder();
        let key = b.key(&tenant(&t2), &CacheType::SESSION, &k).unwrap();
        let pattern = b.scan_pattern(&tenant(&t1), None);
        prop_assert_eq!(glob_match(pattern.as_bytes(), key.as_str().as_bytes()), t1 == t2);
        let typed = b.scan_pattern(&tenant(&t1), Some(&CacheType::SESSION));
        prop_assert_eq!(glob_match(typed.as_bytes(), key.as_str().as_bytes()), t1 == t2);
        let gens = b.generation_keys(&tenant(&t2), &CacheType::SESSION).unwrap();
        prop_assert!(!glob_match(pattern.as_bytes(), gens.scope().as_bytes()));
    }

    /// An entry and both its generation keys hash to one cluster slot, whatever the tenant is called and over
    /// however many shards it is spread (design 0024: each shard has its own generations), so a read of all
    /// three is one single-slot command; the entry's lease, byte ledger and tag keys share that slot too, and
    /// an invalidation of the scope bumps the very keys the entry is checked against.
    #[test]
    fn an_entry_shares_its_slot_with_its_generations(
        t in tenant_strategy(), k in any::<String>(), ty in 0usize..8, shards in 1u16..=8,
    ) {
        let b = builder().with_shards(ShardCounts::new(shards));
        let (scope, ty) = (tenant(&t), &CacheType::BUILT_IN[ty]);
        let key = b.key(&scope, ty, &k).unwrap();
        let gens = b.generation_keys_of(&key);
        if shards == 1 {
            let one_tag = b.generation_keys(&scope, ty).unwrap();
            prop_assert_eq!(&gens, &one_tag);
        }
        let tag = hash_tag(key.as_str());
        prop_assert!(tag.starts_with("tenant_"), "{}", key);
        prop_assert_eq!(hash_tag(gens.scope()), tag);
        prop_assert_eq!(hash_tag(gens.cache_type()), tag);
        let tag_key = gens.tag("customer:42").unwrap();
        prop_assert_eq!(hash_tag(&tag_key), tag);
        let lease = b.lease_key(&key);
        prop_assert_eq!(hash_tag(&lease), tag);
        let ledger = b.byte_ledger_of(key.as_str()).unwrap();
        prop_assert_eq!(hash_tag(&ledger), tag);
        prop_assert!(b.generation_keys_per_shard(&scope, ty).unwrap().contains(&gens));
        let patterns = b.scan_patterns(&scope, None);
        prop_assert!(patterns.iter().any(|p| glob_match(p.as_bytes(), key.as_str().as_bytes())));
        for other in [&lease, &ledger, &tag_key] {
            prop_assert!(!patterns.iter().any(|p| glob_match(p.as_bytes(), other.as_bytes())), "{}", other);
        }
    }
}

proptest! {
    /// A batch's keys are the keys built one by one — global scope or tenant, on one hash tag or spread over
    /// shards, escaped or not — and a batch with a refused key is refused.
    #[test]
    fn keys_built_for_a_batch_are_the_keys_built_one_by_one(
        t in proptest::option::of(tenant_strategy()),
        specifics in proptest::collection::vec("[a-z:%é]{0,8}", 0..12),
        ty in 0usize..8, shards in 1u16..=4,
    ) {
        let b = builder().with_shards(ShardCounts::new(shards));
        let ty = &CacheType::BUILT_IN[ty];
        let refs: Vec<&str> = specifics.iter().map(String::as_str).collect();
        let (batch, one_by_one): (KeyBatch, Vec<CacheKey>) = match &t {
            Some(t) => {
                let t = tenant(t);
                (
                    b.keys_in(&t, ty, &refs).unwrap(),
                    refs.iter().map(|k| b.key(&t, ty, k).unwrap()).collect(),
                )
            }
            None => (
                b.keys_in(&Scope::Global, ty, &refs).unwrap(),
                refs.iter().map(|k| b.key(&Scope::Global, ty, k).unwrap()).collect(),
            ),
        };
        prop_assert_eq!(batch.len(), one_by_one.len());
        prop_assert!(batch.iter().eq(one_by_one.iter().map(CacheKey::as_str)));
        for (i, key) in one_by_one.iter().enumerate() {
            prop_assert_eq!(batch.get(i), Some(key.as_str()));
            prop_assert_eq!(batch.key(i), Some(key.clone()));
        }
        prop_assert_eq!(batch.get(one_by_one.len()), None);
        let mut refused = refs.clone();
        refused.push("fc.dictionary.current");
        prop_assert!(b.keys_in(&tenant("acme"), ty, &refused).is_err());
    }
}

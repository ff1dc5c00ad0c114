//! Every profile loads and validates, and gives each cache type what it gave before the per-type settings were
//! gathered into `[types]` (issue 29): the same TTLs, single-flight reach, fail-safe and sealing.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, FlightMode, Settings};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_profile_validates_and_gives_every_built_in_type_a_ttl() {
    for env in Environment::ALL {
        let s = Settings::embedded(env).unwrap();
        s.validate().unwrap();
        for t in CacheType::BUILT_IN {
            assert!(s.types.get(&t).ttl.is_some(), "{env}: {t}");
            assert!(s.types.listed().any(|l| *l == t), "{env}: {t}");
        }
        // The one bound of every backend call reaches the Redis backends too.
        assert_eq!(s.command_timeout, Duration::from_millis(250), "{env}");
        assert_eq!(s.redis.command_timeout, s.command_timeout, "{env}");
    }
}

#[test]
fn each_profile_keeps_what_each_type_had() {
    for env in Environment::ALL {
        let s = Settings::embedded(env).unwrap();
        for t in CacheType::BUILT_IN {
            let p = s.types.get(&t);
            let distributed = t == CacheType::OCR_RESULT || t == CacheType::LLM_EXTRACTION;
            let mode = if distributed {
                FlightMode::Distributed
            } else {
                FlightMode::Process
            };
            assert_eq!(p.flight.mode, mode, "{env}: {t}");
            assert_eq!(p.flight.lease_ttl, secs(10), "{env}: {t}");
            assert_eq!(p.flight.max_wait, secs(120), "{env}: {t}");
            let stale = if distributed {
                secs(7 * 24 * 3600)
            } else {
                Duration::ZERO
            };
            assert_eq!(p.tier.max_stale, stale, "{env}: {t}");
            assert!(!p.tier.l1, "{env}: {t}");
            assert_eq!(p.tier.l1_max_ttl, secs(300), "{env}: {t}");
            assert_eq!(p.tier.fail_safe_throttle, secs(30), "{env}: {t}");
            let soft = (t == CacheType::LLM_EXTRACTION).then_some(secs(20));
            assert_eq!(p.tier.soft_timeout, soft, "{env}: {t}");
            assert_eq!(p.tier.hard_timeout, None, "{env}: {t}");
            assert_eq!(p.tier.refresh_ahead, None, "{env}: {t}");
            assert!(!p.sealed, "{env}: {t}: sealed by its own table");
            let sealed = env == Environment::Production && CacheType::DOCUMENT_DATA.contains(&t);
            assert_eq!(s.seals(&t), sealed, "{env}: {t}");
        }
        // The response cache's TTL is api_response's.
        let api = s.types.get(&CacheType::API_RESPONSE).ttl.unwrap();
        let expected = match env {
            Environment::Staging | Environment::Production => secs(300),
            _ => secs(30),
        };
        assert_eq!(api, expected, "{env}");
    }
}

#[test]
fn the_renamed_settings_keep_their_values() {
    let s = Settings::embedded(Environment::Production).unwrap();
    assert_eq!(s.warming.interval, secs(60));
    assert_eq!(s.warming.min_hits, 3);
    assert_eq!(s.server.limits.per_process_rate, 100);
    assert_eq!(s.server.limits.per_process_burst, 200);
    assert_eq!(s.quotas.shared_requests, 0);
    assert_eq!(s.quotas.shared_window, secs(3600));
}

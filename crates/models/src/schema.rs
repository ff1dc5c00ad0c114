//! The Diesel schema of the six statistics tables (identical on PostgreSQL and SQLite).

#![allow(missing_docs)]

diesel::table! {
    cache_statistics (id) {
        id -> BigInt,
        tenant_id -> Text,
        cache_type -> Text,
        window_start -> Timestamp,
        window_seconds -> Integer,
        hits -> BigInt,
        misses -> BigInt,
        sets -> BigInt,
        deletes -> BigInt,
        errors -> BigInt,
        degraded -> BigInt,
        raw_bytes -> BigInt,
        stored_bytes -> BigInt,
        latency_p50_us -> BigInt,
        latency_p95_us -> BigInt,
        latency_p99_us -> BigInt,
        updated_at -> Timestamp,
        compute_spent_ms -> BigInt,
        compute_saved_ms -> BigInt,
        tokens_spent -> BigInt,
        tokens_saved -> BigInt,
        money_spent_micros -> BigInt,
        money_saved_micros -> BigInt,
    }
}

diesel::table! {
    cache_statistics_rollups (resolution, bucket_start, tenant_id, cache_type) {
        tenant_id -> Text,
        cache_type -> Text,
        resolution -> Integer,
        bucket_start -> Timestamp,
        hits -> BigInt,
        misses -> BigInt,
        sets -> BigInt,
        deletes -> BigInt,
        errors -> BigInt,
        degraded -> BigInt,
        raw_bytes -> BigInt,
        stored_bytes -> BigInt,
        latency_p50_us -> BigInt,
        latency_p95_us -> BigInt,
        latency_p99_us -> BigInt,
        compute_spent_ms -> BigInt,
        compute_saved_ms -> BigInt,
        tokens_spent -> BigInt,
        tokens_saved -> BigInt,
        money_spent_micros -> BigInt,
        money_saved_micros -> BigInt,
    }
}

diesel::table! {
    cache_invalidation_rules (id) {
        id -> BigInt,
        name -> Text,
        event_type -> Text,
        tenant_id -> Nullable<Text>,
        cache_types -> Text,
        strategy -> Text,
        delay_seconds -> Integer,
        enabled -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    cache_performance_metrics (id) {
        id -> BigInt,
        window_start -> Timestamp,
        operation -> Text,
        cache_type -> Text,
        count -> BigInt,
        errors -> BigInt,
        p50_us -> BigInt,
        p95_us -> BigInt,
        p99_us -> BigInt,
        max_us -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    cache_health_status (id) {
        id -> BigInt,
        checked_at -> Timestamp,
        component -> Text,
        status -> Text,
        latency_us -> Nullable<BigInt>,
        used_memory -> Nullable<BigInt>,
        max_memory -> Nullable<BigInt>,
        eviction_policy -> Nullable<Text>,
        evicted_keys -> Nullable<BigInt>,
        connected_clients -> Nullable<BigInt>,
        message -> Text,
    }
}

diesel::table! {
    cache_warmup_jobs (id) {
        id -> BigInt,
        name -> Text,
        tenant_id -> Nullable<Text>,
        cache_type -> Text,
        strategy -> Text,
        interval_seconds -> Integer,
        priority -> Integer,
        enabled -> Bool,
        last_run_at -> Nullable<Timestamp>,
        next_run_at -> Nullable<Timestamp>,
        last_status -> Nullable<Text>,
        keys_warmed -> BigInt,
    }
}

diesel::table! {
    cache_event_log (id) {
        id -> BigInt,
        occurred_at -> Timestamp,
        event_type -> Text,
        severity -> Text,
        tenant_id -> Nullable<Text>,
        cache_type -> Nullable<Text>,
        details -> Text,
    }
}

diesel::table! {
    cache_recorder_flushes (flush_id) {
        flush_id -> Text,
        applied_at -> Timestamp,
    }
}

diesel::table! {
    cache_tenant_erasures (tenant_id) {
        tenant_id -> Text,
        erased_at -> Timestamp,
    }
}

diesel::table! {
    cache_pending_invalidations (id) {
        id -> BigInt,
        rule_name -> Text,
        event_type -> Text,
        tenant_id -> Nullable<Text>,
        subject -> Nullable<Text>,
        cache_type -> Text,
        strategy -> Text,
        due_at -> Timestamp,
        claim -> Nullable<Text>,
        claimed_at -> Nullable<Timestamp>,
        done_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    cache_access_history (tenant_id, doc_key, bucket_start) {
        tenant_id -> Text,
        doc_key -> Text,
        fingerprint -> Text,
        bucket_start -> Timestamp,
        reads -> BigInt,
        cost_ms -> BigInt,
        cost_micros -> BigInt,
    }
}

diesel::table! {
    cache_reference_data (id) {
        id -> BigInt,
        tenant_id -> Nullable<Text>,
        key -> Text,
        value -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    cache_access_history,
    cache_reference_data,
    cache_statistics,
    cache_statistics_rollups,
    cache_invalidation_rules,
    cache_performance_metrics,
    cache_health_status,
    cache_warmup_jobs,
    cache_event_log,
    cache_pending_invalidations,
    cache_recorder_flushes,
    cache_tenant_erasures,
);

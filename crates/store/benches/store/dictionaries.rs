//! The store bench's `dictionary` section (issue 32, item 3; design 0025): small values of three kinds — an
//! invoice's extracted fields, an API answer as JSON, 1 KB of OCR-like text — written and read by a store
//! without dictionaries (today) and by one whose group has trained its dictionary, on the same server: stored
//! bytes per value, and hit and write throughput in alternating windows. Goals: ≤ 0.5× the bytes, hits ≥ 0.90×,
//! writes ≥ 0.80×.

use std::sync::Arc;

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_keys::TenantId;
use fernando_cache_store::Store;
use fernando_cache_testkit::{
    RedisServer,
    bench::{pair, scaled},
};
use serde::{Deserialize, Serialize};

use super::{Raw, ocr_text};

/// Values each group writes before it is measured (its dictionary trains from the first thousand).
const WRITTEN: u64 = 1_100;
/// Distinct keys (and values) the measured reads and writes cycle through.
const MEASURED: usize = 200;

/// What the pipeline's extraction stage stores for an invoice (the shape of the processor's `ExtractedFields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fields {
    invoice_number: Option<String>,
    total: Option<String>,
    dates: Vec<String>,
    ibans: Vec<String>,
    vat_ids: Vec<String>,
    emails: Vec<String>,
}

fn fields(i: u64) -> Fields {
    Fields {
        invoice_number: Some(format!("RE-2026-{i:06}")),
        total: Some(format!("{}.{:02} EUR", 100 + i % 900, i % 100)),
        dates: vec![format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)],
        ibans: vec![format!(
            "DE89 3704 0044 0532 {:04} {:02}",
            i % 10_000,
            i % 100
        )],
        vat_ids: vec!["DE123456789".into()],
        emails: vec![format!("rechnungen+{}@acme-office.example", i % 50)],
    }
}

fn api_answer(i: u64) -> String {
    serde_json::json!({
        "status": "ok",
        "request_id": format!("req-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "customer": {"id": format!("K-{}", i % 977), "name": format!("ACME Office Supplies GmbH, branch {}", i % 17)},
        "items": (0..(i % 4 + 1)).map(|n| serde_json::json!({
            "sku": format!("DP-A4-{n}"), "description": "Druckerpapier A4, Karton", "quantity": (i * 7 + n) % 50 + 1,
            "unit_price": {"amount": format!("{}.{:02}", 4 + n, i % 100), "currency": "EUR"}
        })).collect::<Vec<_>>(),
        "total": {"amount": format!("{}.{:02}", 100 + i % 900, i % 100), "currency": "EUR"},
        "payment_terms": "Zahlbar innerhalb von 14 Tagen ohne Abzug",
    })
    .to_string()
}

/// A 1 KB page of OCR-like text, the lines of each page different.
fn page(i: u64) -> String {
    let text = ocr_text(1024 + (i as usize % 7) * 64);
    text.lines()
        .skip(i as usize % 5)
        .collect::<Vec<_>>()
        .join("\n")
        .chars()
        .take(1024)
        .collect()
}

fn settings(server: &RedisServer, dictionaries: bool) -> Settings {
    Settings::load(
        LoadOptions::isolated(Environment::Production)
            .set("encryption.document_data", "false")
            .set_all(server.overrides())
            .set("compression.dictionaries", dictionaries.to_string()),
    )
    .unwrap()
}

/// Runs the section for one kind of value: its rows, as `print_rows` prints them.
async fn kind<V>(
    server: &RedisServer,
    raw: &Raw,
    label: &'static str,
    ty: CacheType,
    value: fn(u64) -> V,
    rows: &mut Vec<super::Row>,
) where
    V: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let today = Store::from_settings(&settings(server, false)).unwrap();
    let trained = Store::from_settings(&settings(server, true)).unwrap();
    let (plain_t, dict_t) = (
        TenantId::new(format!("today-{}", ty.as_str())).unwrap(),
        TenantId::new(format!("dict-{}", ty.as_str())).unwrap(),
    );
    for i in 0..scaled(WRITTEN, WRITTEN) {
        let _ = today.set(&plain_t, &ty, &format!("w{i}"), &value(i)).await;
        let _ = trained.set(&dict_t, &ty, &format!("w{i}"), &value(i)).await;
    }
    // The dictionary trains in the background: wait for a value stored with it (flag bit 4 of the envelope).
    let stored = |store: &Store, t: &TenantId, key: &str| {
        store.admin().keys().key(t, &ty, key).unwrap().into_string()
    };
    let mut waited = 0;
    loop {
        let _ = trained.set(&dict_t, &ty, "probe", &value(99_999)).await;
        let bytes = raw.get(&stored(&trained, &dict_t, "probe")).await;
        if bytes[4] & 0b0001_0000 != 0 {
            break;
        }
        waited += 1;
        assert!(
            waited < 300,
            "{label}: no dictionary after {WRITTEN} values"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (mut plain_bytes, mut dict_bytes, mut value_bytes) = (0usize, 0usize, 0usize);
    for i in 0..MEASURED as u64 {
        let v = value(10_000 + i);
        value_bytes += serde_json::to_vec(&v).map_or(0, |j| j.len());
        let _ = today.set(&plain_t, &ty, &format!("m{i}"), &v).await;
        let _ = trained.set(&dict_t, &ty, &format!("m{i}"), &v).await;
        plain_bytes += raw
            .get(&stored(&today, &plain_t, &format!("m{i}")))
            .await
            .len();
        dict_bytes += raw
            .get(&stored(&trained, &dict_t, &format!("m{i}")))
            .await
            .len();
    }
    println!(
        "- {label}: ~{} bytes a value (as JSON); stored today {} bytes, with the dictionary {} bytes: {:.2}×",
        value_bytes / MEASURED,
        plain_bytes / MEASURED,
        dict_bytes / MEASURED,
        dict_bytes as f64 / plain_bytes as f64
    );
    let keys: Arc<Vec<String>> = Arc::new((0..MEASURED).map(|i| format!("m{i}")).collect());
    let values: Arc<Vec<V>> = Arc::new((0..MEASURED as u64).map(|i| value(10_000 + i)).collect());
    for (what, write) in [
        ("hit (goal ≥ 0.90×)", false),
        ("write (goal ≥ 0.80×)", true),
    ] {
        let side = |store: Store, t: TenantId| {
            let (keys, values, ty) = (keys.clone(), values.clone(), ty.clone());
            move |i: usize| {
                let (store, t, keys, values, ty) = (
                    store.clone(),
                    t.clone(),
                    keys.clone(),
                    values.clone(),
                    ty.clone(),
                );
                async move {
                    let at = i % MEASURED;
                    if write {
                        let _ = store.set(&t, &ty, &keys[at], &values[at]).await;
                    } else {
                        std::hint::black_box(store.get::<V>(&t, &ty, &keys[at]).await.unwrap());
                    }
                }
            }
        };
        let (b, s, ratio) = pair(
            64,
            side(today.clone(), plain_t.clone()),
            side(trained.clone(), dict_t.clone()),
        )
        .await;
        rows.push(super::Row {
            what: format!("{label}: {what}"),
            size: "small",
            concurrency: 64,
            baseline: b,
            subject: s,
            ratio,
        });
    }
}

/// The section: every kind's rows.
pub(super) async fn run(server: &RedisServer, raw: &Raw) -> Vec<super::Row> {
    let mut rows = Vec::new();
    println!("\ncompression dictionaries: stored bytes per value ({MEASURED} values each)");
    kind(
        server,
        raw,
        "extracted fields",
        CacheType::LLM_EXTRACTION,
        fields,
        &mut rows,
    )
    .await;
    kind(
        server,
        raw,
        "API answer (JSON)",
        CacheType::API_RESPONSE,
        api_answer,
        &mut rows,
    )
    .await;
    kind(
        server,
        raw,
        "1 KB OCR text",
        CacheType::OCR_RESULT,
        page,
        &mut rows,
    )
    .await;
    rows
}

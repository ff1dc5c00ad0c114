//! Hostile documents against `serve` (issue 28, item 17): a PDF whose unreferenced object stream parses into an
//! enormous array, and HTML tables with one very wide cell over many rows, which a table layout at a wide render
//! width turned into gigabytes (or a 40 MB text). The server runs under an address-space limit below what
//! either made it allocate, so a parser running inside it would crash it; instead each document gets its own
//! answer — a 422 naming the budget, or a text of bounded size — and the server serves on.

mod support;

use fernando_cache_testkit::{RedisServer, hostile};
use serde_json::Value;
use support::{ACME, Server};

/// The whole program, parser children included: a parser in the server process past this kills it.
const SERVER_ADDRESS_SPACE: u64 = 3 << 30;

/// Each document's parsing (`processor.parse_memory_bytes`): well below the bombs, well above a real document.
const PARSE_MEMORY: &str = "268435456";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_get_their_own_answers_and_the_server_serves_on() {
    let redis = RedisServer::start();
    let server = Server::spawn_limited(
        &redis.url(),
        &["serve", "--bind", "127.0.0.1:0"],
        &[(
            "FERNANDO_CACHE__PROCESSOR__PARSE_MEMORY_BYTES",
            PARSE_MEMORY,
        )],
        SERVER_ADDRESS_SPACE,
    );

    // 30 million zeros in an object stream nothing refers to: under 400 KB, some 3.5 GB as lopdf's objects.
    let bomb = hostile::object_stream_bomb_pdf(30_000_000);
    assert!(bomb.len() < 400_000, "{} bytes", bomb.len());
    let response = server.upload(ACME, "application/pdf", bomb).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("256 MiB") && error.contains("processor.parse_memory_bytes"),
        "{body}"
    );
    assert!(
        !error.contains("allocation") && !error.contains("SIG"),
        "nothing of the child's own output reaches the client: {body}"
    );

    // 610 KB: a 100 000-character cell over 17 000 rows; 76 KB: the page that answered 40 MB of text.
    for (words, rows) in [(20_000, 17_000), (10_000, 850)] {
        let page = hostile::wide_table_html(words, rows);
        let size = page.len();
        let response = server.upload(ACME, "text/html", page.into_bytes()).await;
        assert_eq!(response.status(), 200, "{size} bytes of HTML");
        let doc: Value = response.json().await.unwrap();
        let text = doc["text"].as_str().unwrap_or_default();
        assert!(
            text.len() < 2 * size,
            "{} bytes of text from {size} bytes of HTML",
            text.len()
        );
        assert_eq!(doc["fields"]["invoice_number"], "INV-5150", "{size}");
    }

    // Still serving, and a real PDF is read as before — its page tree in a parser child too.
    assert_eq!(server.get("/health", None).await.status(), 200);
    let doc = server
        .upload_sample("acme/invoices/INV-7781.pdf", "application/pdf")
        .await;
    assert_eq!(doc["fields"]["invoice_number"], "INV-7781", "{doc}");
    let page = b"<!DOCTYPE html><p>Invoice number: INV-6006</p>".to_vec();
    let response = server.upload(ACME, "text/html", page).await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["fields"]["invoice_number"], "INV-6006", "{doc}");
}

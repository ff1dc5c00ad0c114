//! What a client of `serve` is told when its request is not what the server expected (issue 30, "errors that
//! hide their cause"), as a real process: a document sent under another type is read as what its bytes are and
//! the answer says so — without slipping past a bound; bytes of an unreadable format and an empty body are
//! refused naming what was wrong and what to send; an unknown path is a 404 for everyone, before any credential
//! is asked for, while a known route still asks; `GET /` lists the routes.

mod support;

use fernando_cache_testkit::{RedisServer, hostile};
use serde_json::Value;
use support::{ACME, ADMIN, Server, sample};

fn serve(redis: &RedisServer) -> Server {
    Server::spawn(&redis.url(), &["serve", "--bind", "127.0.0.1:0"], &[])
}

/// Status and JSON body of an upload as acme.
async fn upload(server: &Server, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = server.upload(ACME, content_type, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_sent_under_another_type_is_read_as_what_its_bytes_are_and_the_answer_says_so() {
    let redis = RedisServer::start();
    let server = serve(&redis);
    let pdf = sample("acme/invoices/INV-7781.pdf");

    // A PDF sent as text or as an image is read as a PDF; the answer names the type used and why.
    for (declared, stage) in [("text/plain", "miss"), ("image/png", "hit")] {
        let (status, body) = upload(&server, declared, pdf.clone()).await;
        assert_eq!(status, 200, "{declared}: {body}");
        assert_eq!(body["kind"], "pdf", "{body}");
        assert_eq!(body["fields"]["invoice_number"], "INV-7781", "{body}");
        assert_eq!(body["detected_type"], "application/pdf", "{body}");
        assert_eq!(
            body["warnings"],
            serde_json::json!([format!(
                "sent as {declared}, but the bytes are a PDF: read as application/pdf"
            )]),
            "{body}"
        );
        // One document, however it was labelled.
        assert_eq!(body["stages"]["document"], stage, "{body}");
    }
    // Declared rightly, nothing to say.
    let (status, body) = upload(&server, "application/pdf", pdf).await;
    assert_eq!(status, 200);
    assert!(
        body.get("detected_type").is_none() && body.get("warnings").is_none(),
        "{body}"
    );

    // Text sent as an image is read as text.
    let (status, body) = upload(
        &server,
        "image/png",
        b"Invoice number: INV-4242\nTotal: 10.00 EUR\n".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "text");
    assert_eq!(body["detected_type"], "text/plain");
    assert_eq!(
        body["warnings"][0],
        "sent as image/png, but the bytes are text: read as text/plain"
    );
    assert_eq!(body["fields"]["invoice_number"], "INV-4242");

    // Believing the bytes slips past no bound: 25 000 × 25 000 pixels sent as text meets the pixel bound of
    // what it is, read from its header before any decoder runs.
    let (status, body) = upload(&server, "text/plain", hostile::huge_png(25_000, 25_000)).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("25000 × 25000 pixels") && error.contains("processor.max_page_pixels"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_empty_documents_are_refused_saying_what_was_wrong_and_what_to_send() {
    let redis = RedisServer::start();
    let server = serve(&redis);

    // Bytes plainly of another format: 415 naming both, with the types to send (message and Accept-Post).
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00some compressed bytes\x00\x01".to_vec();
    let r = server.upload(ACME, "text/plain", zip).await;
    assert_eq!(r.status(), 415);
    let accept = r.headers()["accept-post"].to_str().unwrap().to_owned();
    for mime in [
        "text/plain",
        "text/html",
        "application/pdf",
        "image/png",
        "image/tiff",
    ] {
        assert!(accept.contains(mime), "{accept}");
    }
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("sent as text/plain, but the bytes are application/zip (.zip). Send the document with Content-Type one of: text/plain,"),
        "{body}"
    );
    assert!(error.contains("application/octet-stream"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    // A type the pipeline does not read, over bytes with no magic number: 415 with the list too.
    let r = server
        .upload(
            ACME,
            "application/x-www-form-urlencoded",
            b"Invoice 7".to_vec(),
        )
        .await;
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\"application/x-www-form-urlencoded\"")
            && error.contains("Content-Type one of: text/plain"),
        "{body}"
    );

    // An empty body is a 400 that says so, whatever it was declared as.
    for declared in [
        "text/plain",
        "application/pdf",
        "image/png",
        "application/octet-stream",
    ] {
        let (status, body) = upload(&server, declared, Vec::new()).await;
        assert_eq!(status, 400, "{declared}: {body}");
        assert_eq!(
            body["error"], "the document is empty: send its bytes as the request body",
            "{declared}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_a_404_for_everyone_and_the_root_lists_the_routes() {
    let redis = RedisServer::start();
    let server = serve(&redis);

    let r = server.get("/", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["console"], "/dashboard", "{index}");
    let routes = index["routes"].as_array().unwrap();
    for (method, path) in [
        ("POST", "/v1/documents"),
        ("GET", "/v1/documents/{sha256}"),
        ("POST", "/v1/cache/invalidate"),
        ("GET", "/health"),
        ("GET", "/dashboard"),
    ] {
        assert!(
            routes
                .iter()
                .any(|r| r["method"] == method && r["path"] == path && r["auth"].is_string()),
            "{method} {path}: {index}"
        );
    }
    // The console's own data routes are not advertised.
    assert!(!index.to_string().contains("/v1/admin"), "{index}");
    assert!(
        index["document_types"]
            .as_array()
            .unwrap()
            .contains(&Value::from("application/pdf"))
    );

    for path in [
        "/nope",
        "/v1/nope",
        "/v1/admin/nope",
        "/v1/documents/a/b",
        "/dashboard/nope",
    ] {
        for key in [None, Some(ACME), Some(ADMIN), Some("not-a-key")] {
            let r = server.get(path, key).await;
            assert_eq!(r.status(), 404, "{path} with {key:?}");
            assert!(r.headers().get("www-authenticate").is_none(), "{path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(
                body["error"], "no such route; GET / lists the routes this server answers",
                "{path} with {key:?}"
            );
            assert!(body["request_id"].is_string());
        }
    }

    // A known route still asks for its credential first, whatever the method.
    let doc = format!("/v1/documents/{}", "0".repeat(64));
    for (method, path, needs) in [
        (reqwest::Method::GET, doc.as_str(), "tenant API key"),
        (reqwest::Method::POST, "/v1/documents", "tenant API key"),
        (reqwest::Method::DELETE, "/v1/documents", "tenant API key"),
        (reqwest::Method::POST, "/v1/cache/invalidate", "admin token"),
        (reqwest::Method::GET, "/v1/cache/invalidate", "admin token"),
        (reqwest::Method::GET, "/v1/admin/series", "admin token"),
    ] {
        let r = server
            .client
            .request(method.clone(), format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap_or_default().contains(needs),
            "{method} {path}: {body}"
        );
    }
    let r = server.get("/v1/admin/series?range=1h", Some(ACME)).await;
    assert_eq!(r.status(), 403);
}

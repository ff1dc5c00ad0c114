//! The disk backend's own promises, beside the contract suite it passes with the others: its file is
//! versioned (a newer format or a foreign file is refused with a clear error, an older one rebuilt), it stays
//! within its byte bound by evicting what expires first, two stores on one file see each other's writes, and
//! its folder and files are the owner's alone.

use std::time::Duration;

use fernando_cache_config::{CacheType, Environment, LoadOptions, Settings};
use fernando_cache_store::{Store, Target, Write};

use crate::support::tenant;

fn settings(path: &std::path::Path, max_bytes: u64) -> Settings {
    Settings::load(LoadOptions::isolated(Environment::Test).set_all([
        ("backend", "disk".to_owned()),
        ("disk.path", path.display().to_string()),
        ("disk.max_bytes", max_bytes.to_string()),
    ]))
    .expect("settings")
}

fn setup_error(path: &std::path::Path) -> String {
    let err = Store::from_settings(&settings(path, 1 << 20)).expect_err("the file is refused");
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn a_newer_format_or_a_foreign_file_is_refused_and_an_older_one_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/cache.sqlite3");
    let store = Store::from_settings(&settings(&path, 1 << 20)).unwrap();
    let _ = store
        .set(&tenant("acme"), &CacheType::SESSION, "k", &1u32)
        .await
        .unwrap();
    drop(store);

    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    let err = setup_error(&path);
    assert!(err.contains("format 99") && err.contains("newer"), "{err}");
    assert!(
        err.contains("cache.sqlite3"),
        "the error names the file: {err}"
    );

    // An older format: emptied and recreated, then usable.
    db.pragma_update(None, "user_version", 0).unwrap();
    let store = Store::from_settings(&settings(&path, 1 << 20)).unwrap();
    assert_eq!(
        store
            .get::<u32>(&tenant("acme"), &CacheType::SESSION, "k")
            .await
            .unwrap(),
        None
    );
    let _ = store
        .set(&tenant("acme"), &CacheType::SESSION, "k", &2u32)
        .await
        .unwrap();
    assert_eq!(
        store
            .get::<u32>(&tenant("acme"), &CacheType::SESSION, "k")
            .await
            .unwrap(),
        Some(2)
    );

    let foreign = dir.path().join("other.sqlite3");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = setup_error(&foreign);
    assert!(err.contains("not a fernando-cache"), "{err}");
    std::fs::write(dir.path().join("garbage.sqlite3"), vec![0x5a; 8192]).unwrap();
    let err = setup_error(&dir.path().join("garbage.sqlite3"));
    assert!(err.contains("garbage.sqlite3"), "{err}");
}

#[tokio::test]
async fn it_stays_within_its_byte_bound_evicting_what_expires_first() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256 * 1024;
    let store = Store::from_settings(&settings(&dir.path().join("c.sqlite3"), max)).unwrap();
    let t = tenant("acme");
    // 400 incompressible-ish values of ~2 KiB, each living longer than the one before: 800 KiB in all.
    for i in 0..400u64 {
        let value: Vec<u64> = (0..256)
            .map(|j| (i * 7919 + j).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let _ = store
            .set_with(
                &t,
                &CacheType::SESSION,
                &format!("k{i}"),
                &value,
                Write::default().ttl(Duration::from_secs(600 + i)),
            )
            .await
            .unwrap();
    }
    let info = store.admin().backend_info().await.unwrap();
    let used = info.used_memory.expect("bytes in use");
    assert!(used <= max, "{used} bytes stored, bound {max}");
    assert!(used > max / 2, "eviction stops near the bound: {used}");
    let present = |i: u64| {
        let store = store.clone();
        let t = t.clone();
        async move {
            store
                .get::<Vec<u64>>(&t, &CacheType::SESSION, &format!("k{i}"))
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(present(399).await, "the entry expiring last is kept");
    assert!(!present(0).await, "the entry expiring first went first");
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_writes_and_invalidations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite3");
    let (a, b) = (
        Store::from_settings(&settings(&path, 1 << 20)).unwrap(),
        Store::from_settings(&settings(&path, 1 << 20)).unwrap(),
    );
    let (t, ty) = (tenant("acme"), CacheType::OCR_RESULT);
    let _ = a.set(&t, &ty, "doc", &"text".to_owned()).await.unwrap();
    assert_eq!(
        b.get::<String>(&t, &ty, "doc").await.unwrap().as_deref(),
        Some("text")
    );
    let _ = b
        .invalidate(
            Target::entries(&t, &ty),
            fernando_cache_store::InvalidationStrategy::Lazy,
        )
        .await
        .unwrap();
    assert_eq!(a.get::<String>(&t, &ty, "doc").await.unwrap(), None);
}

/// Issue 28, item 11: the file holds every tenant's values, so neither it, nor SQLite's WAL and `-shm` beside it,
/// nor its folder may be readable by other users — and what an earlier version left open is narrowed on open.
#[cfg(unix)]
#[tokio::test]
async fn its_folder_and_files_are_the_owners_alone_even_when_an_earlier_version_left_them_open() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("var");
    let path = folder.join("cache.sqlite3");
    let file = |suffix: &str| {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let (t, ty) = (tenant("acme"), CacheType::SESSION);

    let store = Store::from_settings(&settings(&path, 1 << 20)).unwrap();
    let _ = store.set(&t, &ty, "k", &1u32).await.unwrap();
    // The store keeps its connections open, so the WAL and -shm are there to be seen.
    assert_eq!(mode(&folder), 0o700, "the folder");
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(&file(suffix)), 0o600, "cache.sqlite3{suffix}");
    }

    // What an earlier version created: 0755 and 0644.
    chmod(&folder, 0o755);
    for suffix in ["", "-wal", "-shm"] {
        chmod(&file(suffix), 0o644);
    }
    let again = Store::from_settings(&settings(&path, 1 << 20)).unwrap();
    assert_eq!(mode(&folder), 0o700, "the folder is narrowed on open");
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(
            mode(&file(suffix)),
            0o600,
            "cache.sqlite3{suffix} is narrowed on open"
        );
    }
    assert_eq!(
        again.get::<u32>(&t, &ty, "k").await.unwrap(),
        Some(1),
        "and the cache still answers"
    );
    drop(store);

    // Another application's database that disk.path points at by mistake is refused, and left as it was.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    let foreign = theirs.join("app.sqlite3");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    chmod(&foreign, 0o644);
    assert!(setup_error(&foreign).contains("not a fernando-cache"));
    assert_eq!((mode(&theirs), mode(&foreign)), (0o755, 0o644));
}

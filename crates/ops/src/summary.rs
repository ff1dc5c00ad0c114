//! What an invalidation did, in the words a user reads — which entries were hidden at once, how many keys were
//! deleted now, whether deletion goes on in the background — and counts with their noun in the right number.
//! One wording for the `event` and `cache invalidate` commands, the answers of `serve` and the event log.
//!
//! Why it matters: a lazy or hybrid invalidation deletes nothing before it returns, yet every entry it names
//! reads as a miss from then on. "0 keys deleted" about entries no reader will see again is the opposite of what
//! happened.

use fernando_cache_keys::Scope;

/// `n` with its noun in the right number: `1 key`, `0 keys`, `2 documents`.
///
/// ```
/// use fernando_cache_ops::summary::count;
///
/// assert_eq!(count(1, "key", "keys"), "1 key");
/// assert_eq!(count(0, "key", "keys"), "0 keys");
/// ```
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Where the hybrid strategy's background deletion stands when the summary is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sweep {
    /// None was started: eager and lazy strategies, subjects, tags.
    None,
    /// Still going (or waiting out `invalidation.hybrid_sweep_delay`) when the answer is given: a server, which
    /// keeps running, answers before it ends.
    Running,
    /// Waited for, having deleted this many keys: a command, whose process would otherwise end the sweep with it.
    Finished(u64),
}

/// The entries an invalidation reached, as [`invalidation`] names them: `ocr_result entries of tenant "acme"`,
/// `entries of the global scope`.
pub fn entries(scope: &Scope, cache_type: Option<&str>) -> String {
    let of = match scope {
        Scope::Tenant(t) => format!("tenant {:?}", t.as_str()),
        Scope::Global => "the global scope".to_owned(),
    };
    match cache_type {
        Some(t) => format!("{t} entries of {of}"),
        None => format!("entries of {of}"),
    }
}

/// What an invalidation did: the `entries` hidden at once (when `hidden`, see
/// `fernando_cache_store::Invalidation::hidden`), the keys deleted before it returned, and the background
/// deletion.
///
/// ```
/// use fernando_cache_ops::summary::{Sweep, invalidation};
///
/// assert_eq!(invalidation("x", false, 1, Sweep::None), "1 key deleted");
/// assert_eq!(
///     invalidation("ocr_result entries of tenant \"acme\"", true, 0, Sweep::Running),
///     "all ocr_result entries of tenant \"acme\" hidden; deletion continuing in the background"
/// );
/// assert_eq!(
///     invalidation("entries of tenant \"acme\"", true, 0, Sweep::Finished(7)),
///     "all entries of tenant \"acme\" hidden; 7 keys deleted in the background"
/// );
/// assert_eq!(
///     invalidation("billing entries of tenant \"acme\"", true, 0, Sweep::None),
///     "all billing entries of tenant \"acme\" hidden; their storage is reclaimed as they expire"
/// );
/// ```
pub fn invalidation(entries: &str, hidden: bool, deleted: u64, sweep: Sweep) -> String {
    let mut parts = Vec::with_capacity(3);
    if hidden {
        parts.push(format!("all {entries} hidden"));
    }
    if !hidden || deleted > 0 {
        parts.push(format!("{} deleted", count(deleted, "key", "keys")));
    }
    match sweep {
        Sweep::None if hidden => parts.push("their storage is reclaimed as they expire".to_owned()),
        Sweep::None => {}
        Sweep::Running => parts.push("deletion continuing in the background".to_owned()),
        Sweep::Finished(n) => parts.push(format!(
            "{} deleted in the background",
            count(n, "key", "keys")
        )),
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use fernando_cache_keys::TenantId;

    use super::*;

    #[test]
    fn entries_name_the_type_and_the_scope() {
        let acme = Scope::Tenant(TenantId::new("acme").unwrap());
        assert_eq!(
            entries(&acme, Some("ocr_result")),
            "ocr_result entries of tenant \"acme\""
        );
        assert_eq!(entries(&acme, None), "entries of tenant \"acme\"");
        assert_eq!(
            entries(&Scope::Global, Some("reference_data")),
            "reference_data entries of the global scope"
        );
    }

    #[test]
    fn eager_says_only_what_was_deleted() {
        assert_eq!(invalidation("e", false, 0, Sweep::None), "0 keys deleted");
        assert_eq!(invalidation("e", false, 3, Sweep::None), "3 keys deleted");
    }
}

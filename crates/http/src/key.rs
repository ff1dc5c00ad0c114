//! Route patterns, query normalisation and the cache keys of responses.

use fernando_cache_keys::{ArgsHasher, layout};
use http::HeaderMap;

/// A path pattern: `/v1/reports/*` (`*` is exactly one segment), `/v1/reports/**` (`**`, last only, is any
/// number of segments, including none), `/v1/documents/{subject}` (one segment that names the subject the
/// entries belong to, so invalidating that subject removes them; see [`layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    segments: Vec<String>,
    rest: bool,
    /// The index of the `{subject}` segment, if any.
    subject: Option<usize>,
}

/// The segment that names a route's subject.
const SUBJECT_SEGMENT: &str = "{subject}";

impl PathPattern {
    pub(crate) fn parse(pattern: &str) -> Result<PathPattern, String> {
        if !pattern.starts_with('/') {
            return Err(format!("route pattern {pattern:?} must start with '/'"));
        }
        let mut segments: Vec<String> = pattern[1..].split('/').map(str::to_owned).collect();
        let rest = segments.last().is_some_and(|s| s == "**");
        if rest {
            segments.pop();
        }
        if let Some(bad) = segments.iter().find(|s| *s == "**") {
            return Err(format!(
                "route pattern {pattern:?}: `{bad}` may only be the last segment"
            ));
        }
        let mut subjects = segments
            .iter()
            .enumerate()
            .filter(|(_, s)| *s == SUBJECT_SEGMENT);
        let subject = subjects.next().map(|(i, _)| i);
        if subjects.next().is_some() {
            return Err(format!(
                "route pattern {pattern:?}: `{SUBJECT_SEGMENT}` may appear once"
            ));
        }
        Ok(PathPattern {
            segments,
            rest,
            subject,
        })
    }

    /// The subject a matching `path` names (its `{subject}` segment), if the pattern has one.
    pub(crate) fn subject_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        let i = self.subject?;
        path.strip_prefix('/')?.split('/').nth(i)
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = path.split('/');
        for seg in &self.segments {
            match parts.next() {
                Some(p) if seg == "*" || seg == p => {}
                Some(p) if seg == SUBJECT_SEGMENT && !p.is_empty() => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

/// `text` with RFC 3986 §6.2.2's equivalences applied and nothing else: a percent-encoded unreserved character
/// is decoded (`%41` is `A`) and the hex digits of every other percent-encoding are uppercased (`%2f` is `%2F`).
/// Two strings with different meanings stay different: reserved characters, `+`, other encodings and the order of
/// parameters are as sent, because an origin may tell them apart.
pub(crate) fn rfc3986_normalise(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('%') {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hv), Some(lv)) = (hex(h), hex(l))
        {
            let decoded = u8::try_from(hv * 16 + lv).unwrap_or(0);
            // `%2E` stays encoded: decoded, `/a/%2e%2e/b` would reach the service as the dot segments `/a/../b`
            // (RFC 3986 allows either; only the encoded form cannot climb a path).
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'_' | b'~') {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(h).to_ascii_uppercase());
                out.push(char::from(l).to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // Not a valid encoding: kept byte for byte (the text is a valid `str`, so whole characters).
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + len]);
        i += len;
    }
    std::borrow::Cow::Owned(out)
}

/// `path` without dot segments (RFC 3986 §5.2.4 `remove_dot_segments`): `/a/./b/../c` is `/a/c`, and no
/// `..` climbs above the root (`/../x` is `/x`). RFC 3986 §6.2.2.3 makes the two forms one resource, and a
/// service behind a base path must never be sent a target that leaves it.
pub(crate) fn remove_dot_segments(path: &str) -> std::borrow::Cow<'_, str> {
    let dotted = path
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if !dotted {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    // A path ending in a dot segment names a directory: it keeps its trailing slash.
    let mut trailing = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing = i == last,
            ".." => {
                // The first element is the empty text before the leading `/`: never popped.
                if kept.len() > 1 {
                    kept.pop();
                }
                trailing = i == last;
            }
            other => {
                kept.push(other);
                trailing = false;
            }
        }
    }
    let mut out = kept.join("/");
    if trailing || (path.starts_with('/') && out.is_empty()) {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// The query string as keyed: as sent, up to RFC 3986's equivalences ([`rfc3986_normalise`]), without the
/// parameters the operator named as ignored (tracking parameters). `?a=1&b=2` and `?b=2&a=1` are two entries:
/// an origin may read parameters in order.
pub(crate) fn normalise_query(query: Option<&str>, ignored: &[String]) -> String {
    let Some(q) = query else {
        return String::new();
    };
    if q.is_empty() {
        // `/a?` is not `/a` to every origin; `#` cannot be part of a query, so no query is keyed as this one.
        return "#".to_owned();
    }
    let q = rfc3986_normalise(q);
    if ignored.is_empty() {
        return q.into_owned();
    }
    q.split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            let decoded: String = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !ignored.contains(&decoded)
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn digest(parts: &[(&str, &[u8])]) -> String {
    // v2: entries carry their freshness judgement (issue 15); v1 entries are never read again.
    let mut h = ArgsHasher::new("fernando-cache-http/v2");
    for (name, value) in parts {
        // Byte slices always serialize; an error here is impossible, and would only merge nothing.
        let _ = h.arg(name, &serde_bytes::Bytes::new(value));
    }
    h.finish_hex()
}

/// The key of the set bounding how many paths of one route a tenant may have cached, across replicas (named by
/// the route's pattern, which every replica configures alike).
pub(crate) fn paths_budget_key(route_pattern: &str) -> String {
    layout::http_budget(&digest(&[("route", route_pattern.as_bytes())]))
}

/// The key of the set bounding a tenant's variants (query strings, `Vary` values) of one URL path.
pub(crate) fn variants_budget_key(route_pattern: &str, path: &str) -> String {
    layout::http_budget(&digest(&[
        ("route", route_pattern.as_bytes()),
        ("path", path.as_bytes()),
    ]))
}

/// The member a path is admitted as into its route's set of paths.
pub(crate) fn path_member(path: &str) -> String {
    digest(&[("path", path.as_bytes())])
}

/// The key of the entry that holds a path's current epoch (changed by every invalidation of the path).
pub(crate) fn epoch_key(subject: Option<&str>, path: &str) -> String {
    layout::http_epoch(subject, &digest(&[("path", path.as_bytes())]))
}

/// The primary key of a request: path, canonical query, the path's epoch, and the headers the operator
/// configured as keyed.
pub(crate) fn primary_key(
    subject: Option<&str>,
    path: &str,
    query: &str,
    epoch: u64,
    keyed: &[(String, Option<Vec<u8>>)],
) -> String {
    let mut parts: Vec<(&str, &[u8])> =
        vec![("path", path.as_bytes()), ("query", query.as_bytes())];
    let epoch = epoch.to_le_bytes();
    parts.push(("epoch", &epoch));
    let mut header_parts = Vec::new();
    for (name, value) in keyed {
        header_parts.push((name.as_str(), header_part(value.as_deref())));
    }
    for (name, value) in &header_parts {
        parts.push((name, value));
    }
    layout::http_entry(subject, &digest(&parts))
}

/// A header value as key material: an absent header differs from an empty one.
fn header_part(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            out
        }
    }
}

/// The request's values of some headers (all values of a repeated header, joined), by lowercase name.
pub(crate) fn header_values(
    headers: &HeaderMap,
    names: &[String],
) -> Vec<(String, Option<Vec<u8>>)> {
    names
        .iter()
        .map(|n| {
            let mut all = headers.get_all(n.as_str()).iter().peekable();
            let value = all.peek().is_some().then(|| {
                let mut joined = Vec::new();
                for (i, v) in all.enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(b", ");
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                joined
            });
            (n.clone(), value)
        })
        .collect()
}

/// The key of one variant under a primary key that varies by `vary` headers.
pub(crate) fn variant_key(primary: &str, values: &[(String, Option<Vec<u8>>)]) -> String {
    let parts: Vec<(String, Vec<u8>)> = values
        .iter()
        .map(|(n, v)| (n.clone(), header_part(v.as_deref())))
        .collect();
    let mut refs: Vec<(&str, &[u8])> = vec![("primary", primary.as_bytes())];
    refs.extend(parts.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    layout::http_variant(primary, &digest(&refs))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn dot_segments_are_removed_and_never_climb_above_the_root() {
        for (given, want) in [
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/../secret.txt", "/secret.txt"),
            ("/x/../../secret.txt", "/secret.txt"),
            ("/a/..", "/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/.../c", "/a/.../c"),
        ] {
            assert_eq!(remove_dot_segments(given), want, "{given}");
        }
    }

    #[test]
    fn patterns_match_segments() {
        let one = PathPattern::parse("/v1/reports/*").unwrap();
        assert!(one.matches("/v1/reports/42"));
        assert!(!one.matches("/v1/reports/42/pdf"));
        assert!(!one.matches("/v1/reports"));
        let rest = PathPattern::parse("/v1/**").unwrap();
        assert!(rest.matches("/v1") && rest.matches("/v1/a/b/c"));
        assert!(!rest.matches("/v2/a"));
        assert!(PathPattern::parse("/a/**/b").is_err());
        assert!(PathPattern::parse("v1").is_err());
    }

    #[test]
    fn a_subject_segment_matches_one_segment_and_names_the_subject() {
        let p = PathPattern::parse("/v1/documents/{subject}").unwrap();
        assert!(p.matches("/v1/documents/ab12"));
        assert!(
            !p.matches("/v1/documents/"),
            "an empty subject names nothing"
        );
        assert!(!p.matches("/v1/documents/ab/c"));
        assert_eq!(p.subject_of("/v1/documents/ab12"), Some("ab12"));
        assert_eq!(
            PathPattern::parse("/v1/*").unwrap().subject_of("/v1/x"),
            None
        );
        assert!(PathPattern::parse("/{subject}/{subject}").is_err());
        // Entries and epochs of a subject's route live under the subject.
        assert!(epoch_key(Some("ab12"), "/v1/documents/ab12").starts_with("ab12/"));
        assert!(primary_key(Some("ab12"), "/x", "", 1, &[]).starts_with("ab12/"));
    }

    #[test]
    fn queries_are_keyed_as_sent_up_to_rfc_3986_equivalence() {
        let n = |q| normalise_query(Some(q), &["utm_source".to_owned()]);
        assert_eq!(
            n("a=%31&b=2"),
            n("a=1&b=2"),
            "an encoded unreserved character"
        );
        assert_eq!(n("a=%2f"), n("a=%2F"), "hex digits' case");
        assert_eq!(n("a=1&b=2&utm_source=x"), n("a=1&b=2"));
        assert_eq!(n("utm_source=x&a=1"), "a=1");
        // What an origin may tell apart stays apart.
        for (x, y) in [
            ("a=1", "a=2"),
            ("a=%FF", "a=%FE"),
            ("a=1&a=2", "a=2&a=1"),
            ("b=2&a=1", "a=1&b=2"),
            ("q=a+b", "q=a%20b"),
            ("a=%2F", "a=/"),
            ("a=1&", "a=1"),
        ] {
            assert_ne!(n(x), n(y), "{x} vs {y}");
        }
        assert_eq!(normalise_query(None, &[]), "");
        assert_ne!(n(""), normalise_query(None, &[]), "`/a?` is not `/a`");
        assert_eq!(rfc3986_normalise("/a%41%7e%zz%"), "/aA~%zz%");
        assert_eq!(rfc3986_normalise("/a/%2e%2e/b"), "/a/%2E%2E/b");
        assert_eq!(rfc3986_normalise("/%c3%bc"), "/%C3%BC");
    }

    #[test]
    fn absent_and_empty_headers_are_different_variants() {
        let mut h = HeaderMap::new();
        let names = ["accept-language".to_owned()];
        let absent = variant_key("p", &header_values(&h, &names));
        h.insert("accept-language", HeaderValue::from_static(""));
        let empty = variant_key("p", &header_values(&h, &names));
        h.insert("accept-language", HeaderValue::from_static("de"));
        let de = variant_key("p", &header_values(&h, &names));
        assert_ne!(absent, empty);
        assert_ne!(empty, de);
        assert_ne!(
            primary_key(None, "/a", "", 1, &[]),
            primary_key(None, "/a", "", 2, &[])
        );
    }
}

//! Segment escaping (one-to-one) and glob escaping for SCAN MATCH patterns.

use std::borrow::Cow;

use crate::KeyError;

/// Percent-escapes `%` and `:` so a segment can never contain the separator.
///
/// The mapping is injective: `unescape_segment(escape_segment(s)) == s` for every `s`.
pub fn escape_segment(segment: &str) -> Cow<'_, str> {
    if !needs_escape(segment) {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len() + 8);
    push_escaped(&mut out, segment);
    Cow::Owned(out)
}

/// Appends `segment` to `out` as [`escape_segment`] escapes it, without a copy of its own: a key is built in
/// one buffer.
pub(crate) fn push_escaped(out: &mut String, segment: &str) {
    // One pass: runs between the escaped bytes are copied whole (a segment with none is one run).
    let mut rest = segment;
    while let Some(at) = rest.bytes().position(|b| b == b'%' || b == b':') {
        out.push_str(&rest[..at]);
        out.push_str(if rest.as_bytes()[at] == b'%' {
            "%25"
        } else {
            "%3A"
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

fn needs_escape(segment: &str) -> bool {
    segment.bytes().any(|b| b == b'%' || b == b':')
}

/// Reverses [`escape_segment`].
///
/// # Errors
/// [`KeyError::BadEscape`] for a `%` not followed by `25` or `3A`.
pub fn unescape_segment(segment: &str) -> Result<Cow<'_, str>, KeyError> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3);
        match code {
            Some("25") => out.push('%'),
            Some("3A") => out.push(':'),
            _ => return Err(KeyError::BadEscape(segment.to_owned())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Escapes the glob characters of Redis `MATCH` (`* ? [ ] \`) with a backslash, so the text matches only itself.
pub fn escape_glob(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(is_glob) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii() && is_glob(c as u8) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn is_glob(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'\\')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_only_separator_and_percent() {
        assert_eq!(escape_segment("a:b%c*"), "a%3Ab%25c*");
        assert_eq!(escape_segment("plain"), "plain");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert!(unescape_segment("a%2").is_err());
        assert!(unescape_segment("a%41").is_err());
    }

    proptest! {
        #[test]
        fn segment_escape_round_trips(s in any::<String>()) {
            let escaped = escape_segment(&s);
            prop_assert!(!escaped.contains(':'));
            prop_assert_eq!(unescape_segment(&escaped).unwrap(), s.as_str());
            let mut pushed = String::from("p:");
            push_escaped(&mut pushed, &s);
            prop_assert_eq!(&pushed[2..], &*escaped);
        }

        #[test]
        fn segment_escape_is_injective(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b);
            prop_assert_ne!(escape_segment(&a), escape_segment(&b));
        }
    }
}

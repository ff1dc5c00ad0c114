//! Segment escaping (one-to-one) and glob escaping for SCAN MATCH patterns.

use std::borrow::Cow;

use crate::KeyError;

/// Percent-escapes `%` and `:` so a segment can never contain the separator.
///
/// The mapping is injective: `unescape_segment(escape_segment(s)) == s` for every `s`.
pub fn escape_segment(segment: &str) -> Cow<'_, str> {
    if !segment.bytes().any(|b| b == b'%' || b == b':') {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len() + 8);
    for c in segment.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
        }

        #[test]
        fn segment_escape_is_injective(a in any::<String>(), b in any::<String>()) {
            prop_assume!(a != b);
            prop_assert_ne!(escape_segment(&a), escape_segment(&b));
        }
    }
}

//! Names a user types that must be one of a known list — cache types, event names: [`UnknownName`], the error
//! that lists the valid ones and suggests the nearest, so a typo fails loudly instead of doing nothing.

use std::fmt;

/// Longest part of an unknown name echoed back; a longer one is cut (a request body can be kilobytes).
const ECHO_LEN: usize = 64;

/// Names longer than this get no suggestion: the edit distance costs the product of the two lengths.
const SUGGEST_LEN: usize = 256;

/// A name that is not one of the known ones: an unknown cache type (`sessoin`), an event no rule or built-in
/// names (`document.updatd`). Its message names what was given, the nearest known name when one is close (a
/// small Damerau–Levenshtein distance, so a swapped pair of letters counts as one edit) and every known name.
///
/// ```
/// use fernando_cache_config::UnknownName;
///
/// let err = UnknownName::check("cache type", "sessoin", ["doc_hash", "session"]).unwrap_err();
/// assert_eq!(err.suggestion(), Some("session"));
/// assert_eq!(
///     err.to_string(),
///     "unknown cache type \"sessoin\" (did you mean \"session\"?); known cache types: doc_hash, session"
/// );
/// assert!(UnknownName::check("cache type", "session", ["session"]).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    kind: &'static str,
    given: String,
    known: Vec<String>,
    suggestion: Option<String>,
}

impl UnknownName {
    /// `Ok` when `given` is one of `known`; otherwise the error, `kind` naming what was looked for (`"cache
    /// type"`, `"event"`). The known names are listed sorted and once each.
    ///
    /// # Errors
    /// [`UnknownName`] when `given` is not one of `known`.
    pub fn check<'a>(
        kind: &'static str,
        given: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), UnknownName> {
        let known: Vec<&str> = known.into_iter().collect();
        if known.contains(&given) {
            return Ok(());
        }
        Err(UnknownName::new(kind, given, known))
    }

    /// The error for `given`, known to be none of `known` (use [`UnknownName::check`] when that is not yet
    /// known).
    pub fn new<'a>(
        kind: &'static str,
        given: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) -> UnknownName {
        let mut known: Vec<String> = known.into_iter().map(str::to_owned).collect();
        known.sort();
        known.dedup();
        let suggestion = nearest(given, &known).map(str::to_owned);
        UnknownName {
            kind,
            given: given.to_owned(),
            known,
            suggestion,
        }
    }

    /// What was looked for, e.g. `cache type`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The name as given.
    pub fn given(&self) -> &str {
        &self.given
    }

    /// Every known name, sorted.
    pub fn known(&self) -> &[String] {
        &self.known
    }

    /// The known name nearest to the one given, when one is close enough to be a likely typo.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }
}

/// The known name closest to `given`: at most a third of its letters (and at least one) away, ignoring case;
/// the first in order among equally close ones.
fn nearest<'k>(given: &str, known: &'k [String]) -> Option<&'k str> {
    if given.is_empty() || given.len() > SUGGEST_LEN {
        return None;
    }
    let given = given.to_lowercase();
    let most = (given.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&given, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= most)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given: String = self.given.chars().take(ECHO_LEN).collect();
        let cut = if given.len() < self.given.len() {
            "…"
        } else {
            ""
        };
        write!(f, "unknown {} {given:?}{cut}", self.kind)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean {s:?}?)")?;
        }
        if self.known.is_empty() {
            write!(f, "; no {}s are known", self.kind)
        } else {
            write!(f, "; known {}s: {}", self.kind, self.known.join(", "))
        }
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [&str; 4] = [
        "document.updated",
        "user.logout",
        "billing.changed",
        "reference_data.changed",
    ];

    #[test]
    fn typos_get_the_nearest_name() {
        for (typo, meant) in [
            ("document.updatd", "document.updated"),
            ("documnet.updated", "document.updated"),
            ("user.logut", "user.logout"),
            ("Billing.Changed", "billing.changed"),
        ] {
            let err = UnknownName::check("event", typo, EVENTS).unwrap_err();
            assert_eq!(err.suggestion(), Some(meant), "{typo}");
            assert!(err.to_string().contains(&format!("did you mean {meant:?}")));
        }
        let err = UnknownName::check("cache type", "doc_hsh", ["doc_hash", "session"]).unwrap_err();
        assert_eq!(err.suggestion(), Some("doc_hash"));
    }

    #[test]
    fn far_names_get_no_suggestion_but_the_list() {
        let err = UnknownName::check("event", "invoice.paid", EVENTS).unwrap_err();
        assert_eq!(err.suggestion(), None);
        assert_eq!(
            err.to_string(),
            "unknown event \"invoice.paid\"; known events: billing.changed, document.updated, \
             reference_data.changed, user.logout"
        );
        let err = UnknownName::check("event", "", EVENTS).unwrap_err();
        assert_eq!(err.suggestion(), None);
    }

    #[test]
    fn a_long_name_is_cut_in_the_message() {
        let long = "x".repeat(10_000);
        let err = UnknownName::check("event", &long, EVENTS).unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.contains('…'), "{text}");
        assert_eq!(err.given().len(), 10_000);
    }

    #[test]
    fn none_known_says_so() {
        let err = UnknownName::check("event", "a", []).unwrap_err();
        assert_eq!(err.to_string(), "unknown event \"a\"; no events are known");
    }
}

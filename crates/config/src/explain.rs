//! Settings errors in our own words. The `config` crate reports a value it could not read as Rust sees it —
//! `enum BackendKind does not have variant constructor reddis`, `invalid type: string "abc", expected an
//! integer for key ...` — and serde reports a misspelt key as `unknown field`. Here each becomes a
//! [`ConfigError::Invalid`] naming the key, what the value must be (every valid name, the nearest one to a
//! typo) and where it was given (`origin.rs`: the variable and its value, or the file).

use config::{Map, Value};

use crate::{ConfigError, choice, origin};

/// How the reason for a name that is no setting starts.
const NOT_A_SETTING: &str = "is not a setting";

/// What `config` said when the merged settings could not be read into [`crate::Settings`], with `tree` (the
/// merged values and their origins) to say where the value came from.
pub(crate) fn read_error(error: config::ConfigError, tree: &Map<String, Value>) -> ConfigError {
    let (key, problem) = parts(error);
    let (key, reason) = refine(key, problem);
    match key {
        // A misspelt name says nothing of what its value is (`REDIS__PASSWOR` holds a password all the same):
        // it is named by its variable or file, never with its value.
        Some(key) if reason.starts_with(NOT_A_SETTING) => ConfigError::Invalid {
            detail: origin::detail_without_value(&key, tree),
            key,
            reason,
        },
        Some(key) => ConfigError::Invalid {
            detail: origin::detail(&key, tree),
            key,
            reason,
        },
        None => ConfigError::Source(reason),
    }
}

/// A validation error (a value out of range, a rule across sections) with where its value was given added.
pub(crate) fn locate(error: ConfigError, tree: &Map<String, Value>) -> ConfigError {
    match error {
        ConfigError::Invalid {
            key,
            reason,
            detail,
        } if detail.is_empty() => ConfigError::Invalid {
            detail: origin::detail(&key, tree),
            key,
            reason,
        },
        other => other,
    }
}

/// What went wrong before it is put in words: a value of the wrong kind, or a message.
enum Problem {
    /// The value is not of the kind the field wants (`config`'s own type check).
    Kind {
        /// What was found, as `config` shows it (`string "abc"`).
        found: String,
        /// What the field wants, as `config` says it (`an integer`).
        expected: &'static str,
    },
    /// Anything else, in the words of whoever raised it.
    Said(String),
}

/// The innermost key `config` attached to the error, and the problem.
fn parts(error: config::ConfigError) -> (Option<String>, Problem) {
    match error {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key,
            Problem::Kind {
                found: unexpected.to_string(),
                expected,
            },
        ),
        config::ConfigError::At { error, key, .. } => {
            let (inner, problem) = parts(*error);
            (key.or(inner), problem)
        }
        config::ConfigError::NotFound(key) => (Some(key), Problem::Said("is missing".to_owned())),
        config::ConfigError::Message(message) => (None, Problem::Said(message)),
        other => (None, Problem::Said(other.to_string())),
    }
}

/// The most precise key the error names, and the reason in our words.
fn refine(key: Option<String>, problem: Problem) -> (Option<String>, String) {
    match problem {
        Problem::Kind { found, expected } => {
            let what = wanted(expected);
            // The value itself is left out where it may be a secret.
            let reason = match &key {
                Some(k) if origin::is_secret(k) => format!("must be {what}"),
                _ => format!("must be {what}, not {found}"),
            };
            (key, reason)
        }
        Problem::Said(message) => said(key, &message),
    }
}

/// A message's key and reason: an unknown field becomes the key it was given under; a message that starts
/// with a deeper key than `config` knew (`types.session.ttl: …`, written by the `[types]` reader) or that is
/// one of our own errors (`invalid configuration `redis.url`: …`) gives that key.
fn said(key: Option<String>, message: &str) -> (Option<String>, String) {
    let join = |k: &Option<String>, field: &str| match k {
        Some(k) => format!("{k}.{field}"),
        None => field.to_owned(),
    };
    for what in ["field", "variant"] {
        if let Some((given, names)) = serde_unknown(message, what) {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return if what == "field" {
                let section = key
                    .as_deref()
                    .map_or_else(String::new, |k| format!(" of [{k}]"));
                let full = join(&key, &given);
                let hint = choice::nearest(&given, &names).map_or_else(String::new, |n| {
                    format!("; did you mean `{}`?", join(&key, n))
                });
                let list = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (the settings there: {})", names.join(", "))
                };
                (Some(full), format!("{NOT_A_SETTING}{section}{hint}{list}"))
            } else {
                (key, choice::not_one_of(&given, &names))
            };
        }
    }
    let mut key = key;
    let mut rest = message;
    if let Some((head, tail)) = rest.split_once(": ")
        && is_key(head)
        && key.as_deref().map_or(head.contains('.'), |k| {
            head == k || head.starts_with(&format!("{k}."))
        })
    {
        key = Some(head.to_owned());
        rest = tail;
    }
    if let Some(inner) = rest.strip_prefix("invalid configuration `")
        && let Some((inner_key, tail)) = inner.split_once("`: ")
    {
        // Our own error, raised inside a deserializer: its reason, under the key `config` located it at.
        key = key.or_else(|| Some(inner_key.to_owned()));
        rest = tail;
    }
    if let Some(name) = rest
        .strip_prefix("enum ")
        .and_then(|r| r.split_once(" does not have variant constructor "))
        .map(|(_, given)| given)
    {
        // Only an enum read without our names could still say this; it is not shown as Rust sees it.
        return (key, format!("{name:?} is not a value it accepts"));
    }
    (key, rest.to_owned())
}

/// Serde's `unknown field `x`, expected one of `a`, `b`` (or `unknown variant …`): the name given and the
/// names expected.
fn serde_unknown(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (given, expected) = rest.split_once('`')?;
    let names = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((given.to_owned(), names))
}

/// Whether `text` looks like a dotted settings key (`types.session.ttl`, `server.api_keys[0].tenant`).
fn is_key(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

/// What `config`'s type names mean to a person writing settings.
fn wanted(expected: &str) -> &str {
    if expected.contains("unsigned") {
        "a whole number, 0 or more"
    } else if expected.contains("integer") {
        "a whole number"
    } else if expected.contains("floating point") {
        "a number"
    } else if expected.contains("boolean") {
        "true or false"
    } else if expected == "a map" {
        "a table"
    } else {
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_become_keys_with_the_nearest_field() {
        let (key, reason) = said(
            Some("redis".to_owned()),
            "unknown field `urll`, expected one of `url`, `mode`, `nodes`",
        );
        assert_eq!(key.as_deref(), Some("redis.urll"));
        assert_eq!(
            reason,
            "is not a setting of [redis]; did you mean `redis.url`? (the settings there: url, mode, nodes)"
        );
        let (key, reason) = said(
            None,
            "unknown field `bakend`, expected `backend` or `redis`",
        );
        assert_eq!(key.as_deref(), Some("bakend"));
        assert!(reason.contains("did you mean `backend`?"), "{reason}");
    }

    #[test]
    fn a_deeper_key_in_the_message_wins_and_our_own_prefix_is_not_repeated() {
        let (key, reason) = said(
            Some("types".to_owned()),
            "types.session.ttl: \"x\" is not a duration",
        );
        assert_eq!(key.as_deref(), Some("types.session.ttl"));
        assert_eq!(reason, "\"x\" is not a duration");
        let (key, reason) = said(
            Some("redis.url".to_owned()),
            "invalid configuration `redis.url`: not a URL (no scheme://)",
        );
        assert_eq!(key.as_deref(), Some("redis.url"));
        assert_eq!(reason, "not a URL (no scheme://)");
        let (_, reason) = said(
            Some("backend".to_owned()),
            "enum BackendKind does not have variant constructor reddis",
        );
        assert!(!reason.contains("BackendKind"), "{reason}");
    }
}

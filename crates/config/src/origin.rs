//! Where a setting's value was given — an environment variable, a file, or the embedded profiles and explicit
//! overrides — read from the merged tree the `config` crate builds (each value keeps its origin), so that an
//! error can say it in the words the user wrote it in: `FERNANDO_CACHE__BACKEND=reddis`, or the file's path.

use config::{Map, Value, ValueKind};

/// The origin `config` gives values read from environment variables.
pub(crate) const ENV_ORIGIN: &str = "the environment";

/// The environment variable that sets `key`: `types.ocr_result.ttl` is `FERNANDO_CACHE__TYPES__OCR_RESULT__TTL`.
pub(crate) fn env_var(key: &str) -> String {
    let name = printable(&key.replace('.', "__").to_ascii_uppercase());
    format!("FERNANDO_CACHE__{name}")
}

/// `text` as an error may echo it to a terminal: control characters escaped (`\u{1b}`), and no longer than a
/// screen line or two.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .take(200)
        .collect()
}

/// The value at the dotted `key` of the merged tree (`name[2]` is a list's third item); keys are compared as
/// given, then in lower case (environment variables arrive in lower case).
pub(crate) fn lookup<'a>(tree: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut current: Option<&'a Value> = None;
    for segment in key.split('.') {
        let table = match current {
            None => tree,
            Some(value) => match &value.kind {
                ValueKind::Table(t) => t,
                _ => return None,
            },
        };
        let (name, indexes) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        let mut value = table
            .get(name)
            .or_else(|| table.get(&name.to_ascii_lowercase()))?;
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            value = match &value.kind {
                ValueKind::Array(items) => items.get(index.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        current = Some(value);
    }
    current
}

/// Whether `key` may hold a secret — a password, a token, a key, a URL that may carry credentials — whose
/// value an error must never repeat.
pub(crate) fn is_secret(key: &str) -> bool {
    // Another region's Redis, named by its region: a URL, or a table of them.
    if key.starts_with("regions.from.") {
        return true;
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last).to_ascii_lowercase();
    [
        "password", "token", "key", "secret", "url", "endpoint", "webhook",
    ]
    .iter()
    .any(|word| last.contains(word))
        || matches!(last.as_str(), "nodes" | "sentinels")
}

/// Where the value of `key` was given, for the end of an error message, starting with a space:
/// ` (given as FERNANDO_CACHE__BACKEND=reddis)` — the variable alone for a secret — or ` (in <file>)`; empty
/// when the key is not in the tree or came from the embedded profiles or an explicit override, whose key the
/// message names already.
pub(crate) fn detail(key: &str, tree: &Map<String, Value>) -> String {
    let Some(value) = lookup(tree, key) else {
        return String::new();
    };
    match value.origin() {
        Some(ENV_ORIGIN) if is_secret(key) => format!(" (given as {})", env_var(key)),
        Some(ENV_ORIGIN) => {
            let given = printable(&value.to_string());
            format!(" (given as {}={given})", env_var(key))
        }
        Some(file) => format!(" (in {file})"),
        None => String::new(),
    }
}

/// [`detail`] that never repeats the value: the variable alone, or the file.
pub(crate) fn detail_without_value(key: &str, tree: &Map<String, Value>) -> String {
    let Some(value) = lookup(tree, key) else {
        return String::new();
    };
    match value.origin() {
        Some(ENV_ORIGIN) => format!(" (given as {})", env_var(key)),
        Some(file) => format!(" (in {file})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Map<String, Value> {
        let merged = config::Config::builder()
            .add_source(config::File::from_str(
                "[server]\napi_keys = [{ tenant = \"acme\", key_sha256 = \"x\" }]\n[redis]\nurl = \"redis://h\"\n",
                config::FileFormat::Toml,
            ))
            .add_source(
                config::Environment::with_prefix("FERNANDO_CACHE")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(
                        [
                            ("FERNANDO_CACHE__BACKEND".to_owned(), "reddis".to_owned()),
                            ("FERNANDO_CACHE__REDIS__PASSWORD".to_owned(), "pw".to_owned()),
                        ]
                        .into_iter()
                        .collect(),
                    )),
            )
            .build()
            .unwrap();
        config::Source::collect(&merged).unwrap()
    }

    #[test]
    fn a_variable_is_named_with_its_value_unless_it_is_a_secret() {
        let tree = tree();
        assert_eq!(
            detail("backend", &tree),
            " (given as FERNANDO_CACHE__BACKEND=reddis)"
        );
        assert_eq!(
            detail("redis.password", &tree),
            " (given as FERNANDO_CACHE__REDIS__PASSWORD)"
        );
        // The embedded files say nothing of where they are.
        assert_eq!(detail("redis.url", &tree), "");
        assert_eq!(detail("compression.level", &tree), "");
        assert!(lookup(&tree, "server.api_keys[0].tenant").is_some());
        assert!(lookup(&tree, "server.api_keys[1].tenant").is_none());
        assert!(lookup(&tree, "backend.deeper").is_none());
    }
}

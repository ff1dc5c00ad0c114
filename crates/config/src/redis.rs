//! Redis connection settings: the URL (never shown with its password), the topology (`redis.mode`: one server,
//! a cluster, or a Sentinel-watched primary) and the connection tuning.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{ConfigError, check, duration};

/// How the Redis deployment is laid out (`redis.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum RedisMode {
    /// One server (or a proxy in front of several) at `redis.url`.
    #[default]
    Standalone,
    /// A Redis Cluster: `redis.url` and `redis.nodes` are seed nodes; the client follows the slot map.
    Cluster,
    /// A primary and replicas watched by Redis Sentinel: the primary named `redis.sentinel_master` is
    /// discovered through `redis.sentinels` and followed through failovers.
    Sentinel,
}

impl RedisMode {
    /// Each topology under its name in the settings.
    const NAMES: [(&'static str, RedisMode); 3] = [
        ("standalone", RedisMode::Standalone),
        ("cluster", RedisMode::Cluster),
        ("sentinel", RedisMode::Sentinel),
    ];
}

/// A topology by its name in the settings; an unknown name lists the valid ones and suggests the nearest.
impl TryFrom<String> for RedisMode {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        crate::choice::pick(&name, &Self::NAMES)
    }
}

/// A Redis URL whose password is never shown by `Debug` or `Display`.
///
/// Checked here only as far as configuration needs — scheme, authority, port — and split where its password
/// is: the Redis client parses the whole URL when it connects. (A general URL parser would bring IDNA and
/// Unicode tables into every build of the store, `#[cached]` users' included, for host names Redis never has.)
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    text: String,
    /// Where the password is in `text`, if the URL has one.
    password: Option<std::ops::Range<usize>>,
}

impl RedisUrl {
    /// Parses and checks a `redis://`, `rediss://` or `redis+unix://` URL.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an unparsable URL or another scheme; the message never repeats a password.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |why: &str| ConfigError::invalid("redis.url", why.to_owned());
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(invalid("not a URL (no scheme://)"));
        };
        if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix") {
            let shown: String = scheme.chars().take(32).collect();
            return Err(ConfigError::invalid(
                "redis.url",
                format!("scheme {shown:?} is not redis://, rediss:// or redis+unix://"),
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("not a URL (white space or a control character)"));
        }
        let start = scheme.len() + 3;
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        // The last `@` ends the user information (an unescaped `@` in a password stays hidden too).
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let password = userinfo.and_then(|u| {
            let colon = u.find(':')?;
            Some(start + colon + 1..start + u.len())
        });
        let unix = matches!(scheme, "redis+unix" | "unix");
        if !unix {
            let (host, port) = match host_port.rsplit_once(':') {
                // An IPv6 literal's own colons are inside brackets.
                Some((h, p)) if !p.contains(']') => (h, Some(p)),
                _ => (host_port, None),
            };
            if host.is_empty() {
                return Err(invalid("not a URL (no host)"));
            }
            if port.is_some_and(|p| p.parse::<u16>().is_err()) {
                return Err(invalid("not a URL (the port is not a number up to 65535)"));
            }
        }
        Ok(RedisUrl {
            text: text.to_owned(),
            password,
        })
    }

    /// The full URL, password included: hand it to the client, never to a log.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The user the URL logs in as, as the Redis client reads it: `redis://user:password@…` percent-decoded, or
    /// a socket URL's `?user=` (form-decoded); `None` when it names none.
    pub fn user(&self) -> Option<String> {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = if self.is_unix() {
            let query = self.text.split_once('?')?.1;
            let query = query.split('#').next().unwrap_or("");
            query.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "user").then(|| decode(&value.replace('+', " ")))
            })?
        } else {
            let rest = &self.text[self.text.find("://")? + 3..];
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            let userinfo = &authority[..authority.rfind('@')?];
            decode(userinfo.split(':').next().unwrap_or(""))
        };
        (!user.is_empty()).then_some(user)
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.text.starts_with("rediss://")
    }

    /// Whether the URL names a Unix socket rather than a TCP address.
    pub fn is_unix(&self) -> bool {
        self.text.starts_with("redis+unix://") || self.text.starts_with("unix://")
    }

    /// The URL with `password` (percent-encoded) in place of its own; a Unix socket URL is returned as it is
    /// (its password goes in the query, as the client reads it there).
    fn with_password(&self, password: &str) -> String {
        if self.is_unix() {
            return self.text.clone();
        }
        let mut encoded = String::with_capacity(password.len());
        for b in password.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let start = self.text.find("://").map_or(0, |i| i + 3);
        let rest = &self.text[start..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        match (&self.password, authority.rfind('@')) {
            (Some(p), _) => format!("{}{encoded}{}", &self.text[..p.start], &self.text[p.end..]),
            // A user without a password.
            (None, Some(at)) => format!(
                "{}:{encoded}{}",
                &self.text[..start + at],
                &self.text[start + at..]
            ),
            (None, None) => format!("{}:{encoded}@{}", &self.text[..start], rest),
        }
    }

    /// The URL with any password replaced by `***`, safe for logs and errors.
    pub fn redacted(&self) -> String {
        match &self.password {
            Some(p) => format!("{}***{}", &self.text[..p.start], &self.text[p.end..]),
            None => self.text.clone(),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RedisUrl::parse(&text).map_err(D::Error::custom)
    }
}

/// Redis connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisSettings {
    /// Server URL (`redis://host:port/db`, `rediss://` for TLS). In cluster mode, the first seed node; in
    /// sentinel mode, only its scheme, user, password and database are used (the address comes from the
    /// sentinels).
    pub url: RedisUrl,
    /// `standalone`, `cluster` or `sentinel`.
    #[serde(default)]
    pub mode: RedisMode,
    /// Cluster mode: more seed nodes besides `url` (a list, or one comma-separated string), so the client starts
    /// while some nodes are down.
    #[serde(default, deserialize_with = "url_list")]
    pub nodes: Vec<RedisUrl>,
    /// Sentinel mode: the sentinels' URLs (a list, or one comma-separated string), e.g.
    /// `redis://10.0.0.5:26379`.
    #[serde(default, deserialize_with = "url_list")]
    pub sentinels: Vec<RedisUrl>,
    /// Sentinel mode: the name the sentinels monitor the primary under.
    #[serde(default = "default_sentinel_master")]
    pub sentinel_master: String,
    /// Password, from `FERNANDO_CACHE__REDIS__PASSWORD`; overrides one in the URL. Redacted in `Debug`.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Require TLS even if the URL says `redis://`.
    pub tls: bool,
    /// A PEM file of the CA that signed the server's certificate, for private CAs (default: the system's roots).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// Size of the pool of exclusive connections (SCAN sweeps, INFO).
    pub pool_size: usize,
    /// Multiplexed connections shared by the hot GET/SET path, used in rotation.
    pub multiplexed_connections: usize,
    /// Longest wait for a new connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for any one command; past it the call degrades (a miss, a dropped write). Not a key of
    /// `[redis]`: the loader copies the top-level `command_timeout` here, the one bound of every backend call,
    /// for the Redis backends, which are handed these settings alone.
    #[serde(skip, default = "default_command_timeout")]
    pub command_timeout: Duration,
    /// `COUNT` hint of each SCAN step and size of each UNLINK batch.
    pub scan_batch: usize,
    /// Keep the invalidation generations in process, kept current by Redis's server-assisted client-side
    /// caching (RESP3 `CLIENT TRACKING … BCAST`), so a hit costs one `GET` instead of an `MGET` of three keys.
    /// Needs Redis ≥ 6 (or Valkey); set `false` for older servers or proxies that do not forward push messages.
    #[serde(default = "default_true")]
    pub track_generations: bool,
    /// Send the hits that are ready at the same moment as one pipeline per connection (auto-pipelining): far
    /// fewer system calls per hit under load, one extra task hop (a few µs) for a lone request.
    #[serde(default = "default_true")]
    pub auto_pipeline: bool,
}

fn default_true() -> bool {
    true
}

/// The top-level `command_timeout` of `config/default.toml`, until the loader copies the configured one.
fn default_command_timeout() -> Duration {
    Duration::from_millis(250)
}

pub(crate) fn default_sentinel_master() -> String {
    "mymaster".to_owned()
}

/// A list of Redis URLs written as a TOML list or as one comma-separated string (the form an environment
/// variable or a `--set` override gives).
pub(crate) fn url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RedisUrl>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    let texts = match Form::deserialize(d)? {
        Form::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Form::Many(v) => v,
    };
    texts
        .iter()
        .map(|t| RedisUrl::parse(t).map_err(D::Error::custom))
        .collect()
}

impl RedisSettings {
    /// Checks the pool sizes, the connect timeout and what the topology (`redis.mode`) needs.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check::range("redis.pool_size", self.pool_size, 1, 1024)?;
        check::range(
            "redis.multiplexed_connections",
            self.multiplexed_connections,
            1,
            64,
        )?;
        check::range("redis.scan_batch", self.scan_batch, 1, 100_000)?;
        check::duration("redis.connect_timeout", self.connect_timeout)?;
        match self.mode {
            RedisMode::Standalone => {}
            RedisMode::Cluster => {
                if self.url.is_unix() || self.nodes.iter().any(RedisUrl::is_unix) {
                    return Err(ConfigError::invalid(
                        "redis.nodes",
                        "cluster nodes are reached over TCP, not a Unix socket",
                    ));
                }
            }
            RedisMode::Sentinel => {
                if self.sentinels.is_empty() {
                    return Err(ConfigError::invalid(
                        "redis.sentinels",
                        "sentinel mode needs at least one sentinel URL",
                    ));
                }
                if self.sentinel_master.is_empty() || self.sentinel_master.len() > 128 {
                    return Err(ConfigError::invalid(
                        "redis.sentinel_master",
                        "must be 1 to 128 characters",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether connections use TLS (`rediss://` or `redis.tls`).
    pub fn uses_tls(&self) -> bool {
        self.tls || self.url.is_tls()
    }

    /// The URL to connect to: the configured one, with the configured password (if any) put in.
    pub fn connection_url(&self) -> String {
        self.with_credentials(&self.url)
    }

    /// Cluster mode: `url` then `nodes`, each with the configured password and TLS put in.
    pub fn seed_urls(&self) -> Vec<String> {
        std::iter::once(&self.url)
            .chain(&self.nodes)
            .map(|u| self.with_credentials(u))
            .collect()
    }

    fn with_credentials(&self, url: &RedisUrl) -> String {
        let mut text = match &self.password {
            Some(pw) => url.with_password(pw.expose_secret()),
            None => url.text.clone(),
        };
        if self.tls && text.starts_with("redis://") {
            text.replace_range(..5, "rediss");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::RedisUrl;

    #[test]
    fn passwords_are_hidden_and_urls_kept_as_written() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
            (
                "rediss://user:hunter2@cache.internal:6380/1",
                "rediss://user:***@cache.internal:6380/1",
            ),
            ("redis://user:p@ss@cache", "redis://user:***@cache"),
            ("redis://user@cache", "redis://user@cache"),
            ("redis://[::1]:6379", "redis://[::1]:6379"),
            (
                "redis+unix:///run/redis.sock?db=2",
                "redis+unix:///run/redis.sock?db=2",
            ),
        ] {
            let parsed = RedisUrl::parse(url).unwrap();
            assert_eq!(parsed.redacted(), shown);
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(parsed.expose(), url);
        }
        assert!(RedisUrl::parse("rediss://h").unwrap().is_tls());
        assert!(RedisUrl::parse("redis+unix:///s").unwrap().is_unix());
    }

    #[test]
    fn a_configured_password_is_put_in_encoded() {
        for (url, with) in [
            ("redis://cache:6379/0", "redis://:p%40ss%2Fw@cache:6379/0"),
            ("redis://user@cache", "redis://user:p%40ss%2Fw@cache"),
            ("redis://user:old@cache", "redis://user:p%40ss%2Fw@cache"),
        ] {
            assert_eq!(RedisUrl::parse(url).unwrap().with_password("p@ss/w"), with);
        }
    }

    #[test]
    fn what_is_not_a_redis_url_is_refused_without_repeating_it() {
        for bad in [
            "ftp://user:hunter2@x",
            "cache:6379",
            "redis://",
            "redis://:hunter2@",
            "redis://host:99999",
            "redis://host:port",
            "redis://ho st",
        ] {
            let err = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }
}

//! Redis connection settings: the URL (never shown with its password), the topology (`redis.mode`: one server,
//! a cluster, or a Sentinel-watched primary) and the connection tuning.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{ConfigError, duration};

/// How the Redis deployment is laid out (`redis.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// A Redis URL whose password is never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(url::Url);

impl RedisUrl {
    /// Parses and checks a `redis://`, `rediss://` or `redis+unix://` URL.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an unparsable URL or another scheme; the message never repeats a password.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let url = url::Url::parse(text)
            .map_err(|e| ConfigError::invalid("redis.url", format!("not a URL ({e})")))?;
        match url.scheme() {
            "redis" | "rediss" | "redis+unix" | "unix" => Ok(RedisUrl(url)),
            other => Err(ConfigError::invalid(
                "redis.url",
                format!("scheme {other:?} is not redis://, rediss:// or redis+unix://"),
            )),
        }
    }

    /// The full URL, password included: hand it to the client, never to a log.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.0.scheme() == "rediss"
    }

    /// Whether the URL names a Unix socket rather than a TCP address.
    pub fn is_unix(&self) -> bool {
        matches!(self.0.scheme(), "redis+unix" | "unix")
    }

    /// The URL with any password replaced by `***`, safe for logs and errors.
    pub fn redacted(&self) -> String {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Setting a password only fails for URLs that cannot have one, which were rejected above.
            let _ = shown.set_password(Some("***"));
        }
        shown.to_string()
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
    /// Longest wait for any one command; past it the call degrades (a miss, a dropped write).
    #[serde(with = "duration")]
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

fn default_sentinel_master() -> String {
    "mymaster".to_owned()
}

/// A list of Redis URLs written as a TOML list or as one comma-separated string (the form an environment
/// variable or a `--set` override gives).
fn url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RedisUrl>, D::Error> {
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
        let mut url = url.0.clone();
        if let Some(pw) = &self.password {
            let _ = url.set_password(Some(pw.expose_secret()));
        }
        if self.tls && url.scheme() == "redis" {
            let _ = url.set_scheme("rediss");
        }
        url.to_string()
    }
}

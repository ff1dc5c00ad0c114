//! The settings tree and its validation.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de::Error as _};

use crate::{ConfigError, Environment, SingleFlightTable, TtlTable, duration};

/// Where cache entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In-process, bounded by bytes; needs no server (the development and test default).
    Memory,
    /// Redis (the staging and production default).
    Redis,
}

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

/// Every setting of the cache, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The profile these settings were loaded for (set by the loader, not by files).
    #[serde(skip, default = "default_env")]
    pub environment: Environment,
    /// First segment of every key, e.g. `fernando`.
    pub namespace: String,
    /// Which backend the store uses.
    pub backend: BackendKind,
    /// Redis connection settings.
    pub redis: RedisSettings,
    /// In-process backend settings.
    pub memory: MemorySettings,
    /// Value compression settings.
    pub compression: CompressionSettings,
    /// Multi-tenant settings.
    pub tenancy: TenancySettings,
    /// Timeouts and circuit breaker.
    pub degradation: DegradationSettings,
    /// Invalidation strategy tuning.
    pub invalidation: InvalidationSettings,
    /// Per cache type: single-flight per process or across processes (`[single_flight.<type>]`).
    pub single_flight: SingleFlightTable,
    /// In-process metrics.
    pub metrics: MetricsSettings,
    /// Persistent statistics.
    pub statistics: StatisticsSettings,
    /// The document pipeline.
    pub processor: ProcessorSettings,
    /// The HTTP API (`fernando-cache serve`).
    pub server: ServerSettings,
    /// Time to live per cache type.
    pub ttl: TtlTable,
}

fn default_env() -> Environment {
    Environment::Development
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

/// In-process backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {
    /// Upper bound on the bytes of stored entries (keys plus encoded values).
    pub max_bytes: u64,
}

/// Value compression settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CompressionSettings {
    /// Compress at all.
    pub enabled: bool,
    /// Encoded values larger than this are zstd-compressed; smaller ones are stored as they are.
    pub threshold_bytes: usize,
    /// zstd level, 1 (fastest) to 19.
    pub level: i32,
    /// Largest decoded value accepted; bigger claims are treated as corrupt entries.
    pub max_decoded_bytes: usize,
}

/// Multi-tenant settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TenancySettings {
    /// Longest tenant id accepted, in bytes.
    pub max_tenant_id_len: usize,
}

/// Circuit-breaker settings (timeouts are in [`RedisSettings`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DegradationSettings {
    /// Consecutive failed calls that open the breaker.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe call through.
    #[serde(with = "duration")]
    pub breaker_open_for: Duration,
}

/// Invalidation tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InvalidationSettings {
    /// Delay before the background sweep of the hybrid strategy.
    #[serde(with = "duration")]
    pub hybrid_sweep_delay: Duration,
    /// How often `serve` looks for delayed invalidations that are due (rules with a delay).
    #[serde(with = "duration")]
    pub pending_poll_interval: Duration,
}

/// In-process metrics settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// Distinct (tenant, cache type) series kept before new tenants fold into `_other`.
    pub max_series: usize,
}

/// Persistent statistics settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StatisticsSettings {
    /// Record statistics at all.
    pub enabled: bool,
    /// `postgres://…` or `sqlite://path`; may contain a password, so it is a secret.
    pub database_url: SecretString,
    /// Apply pending migrations when the program starts.
    pub run_migrations_at_start: bool,
    /// How often metrics are written.
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// The length of a statistics row's window.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Rows buffered while the database is unreachable.
    pub buffer_max_rows: usize,
    /// How often Redis and the database are checked.
    #[serde(with = "duration")]
    pub health_interval: Duration,
    /// Alert when a window's hit ratio falls below this (0.0–1.0).
    pub hit_ratio_alert: f64,
    /// Alert when Redis uses more than this share of its `maxmemory` (0.0–1.0).
    pub memory_alert_ratio: f64,
}

/// Which field extractor the document pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExtractorKind {
    /// The built-in rule-based extractor (no network).
    Rules,
    /// Any OpenAI-compatible chat completions endpoint.
    Openai,
}

/// Document pipeline settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProcessorSettings {
    /// Largest document accepted, in bytes.
    pub max_document_bytes: u64,
    /// The `tesseract` program (a name on `PATH` or a path).
    pub tesseract: String,
    /// Tesseract languages, e.g. `eng` or `eng+deu`.
    pub ocr_languages: String,
    /// Longest an OCR run may take.
    #[serde(with = "duration")]
    pub ocr_timeout: Duration,
    /// The field extractor.
    pub extractor: ExtractorKind,
    /// The OpenAI-compatible extractor.
    pub openai: OpenAiSettings,
    /// Warming: entries read at least this often (per warming interval) are refreshed before they expire.
    pub warm_min_hits: u32,
    /// How often the warmer looks at hot documents and due warmup jobs.
    #[serde(with = "duration")]
    pub warm_interval: Duration,
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// SHA-256 (hex) of the admin token; empty disables the admin routes.
    pub admin_token_sha256: String,
    /// Tenants' API keys, stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKey>,
    /// How long `GET /v1/documents/{sha256}` answers are cached by the HTTP layer.
    #[serde(with = "duration")]
    pub response_ttl: Duration,
}

/// One tenant API key, by hash: the key itself is never stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKey {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// SHA-256 of the key, 64 hexadecimal digits.
    pub key_sha256: String,
}

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenAiSettings {
    /// Base URL, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub url: String,
    /// Model name.
    pub model: String,
    /// API key; set `FERNANDO_CACHE__PROCESSOR__OPENAI__API_KEY`, never in a file.
    pub api_key: Option<SecretString>,
    /// Longest a request may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Settings {
    /// Checks every value; the first problem found is returned, naming its key.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ns = &self.namespace;
        if ns.is_empty() || ns.len() > 64 {
            return Err(ConfigError::invalid(
                "namespace",
                "must be 1 to 64 characters",
            ));
        }
        if !ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(ConfigError::invalid(
                "namespace",
                format!("{ns:?} may contain only ASCII letters, digits, '_', '-' and '.'"),
            ));
        }
        let r = &self.redis;
        check_range("redis.pool_size", r.pool_size, 1, 1024)?;
        check_range(
            "redis.multiplexed_connections",
            r.multiplexed_connections,
            1,
            64,
        )?;
        check_range("redis.scan_batch", r.scan_batch, 1, 100_000)?;
        check_duration("redis.connect_timeout", r.connect_timeout)?;
        check_duration("redis.command_timeout", r.command_timeout)?;
        match r.mode {
            RedisMode::Standalone => {}
            RedisMode::Cluster => {
                if r.url.is_unix() || r.nodes.iter().any(RedisUrl::is_unix) {
                    return Err(ConfigError::invalid(
                        "redis.nodes",
                        "cluster nodes are reached over TCP, not a Unix socket",
                    ));
                }
            }
            RedisMode::Sentinel => {
                if r.sentinels.is_empty() {
                    return Err(ConfigError::invalid(
                        "redis.sentinels",
                        "sentinel mode needs at least one sentinel URL",
                    ));
                }
                if r.sentinel_master.is_empty() || r.sentinel_master.len() > 128 {
                    return Err(ConfigError::invalid(
                        "redis.sentinel_master",
                        "must be 1 to 128 characters",
                    ));
                }
            }
        }
        self.single_flight.validate()?;
        if self.memory.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "memory.max_bytes",
                "must be at least 1024",
            ));
        }
        let c = &self.compression;
        if !(1..=19).contains(&c.level) {
            return Err(ConfigError::invalid(
                "compression.level",
                format!("{} is outside 1..=19", c.level),
            ));
        }
        check_range(
            "compression.max_decoded_bytes",
            c.max_decoded_bytes,
            1024,
            1 << 30,
        )?;
        if c.threshold_bytes > c.max_decoded_bytes {
            return Err(ConfigError::invalid(
                "compression.threshold_bytes",
                "is larger than compression.max_decoded_bytes",
            ));
        }
        check_range(
            "tenancy.max_tenant_id_len",
            self.tenancy.max_tenant_id_len,
            1,
            1024,
        )?;
        let d = &self.degradation;
        if d.breaker_failure_threshold == 0 {
            return Err(ConfigError::invalid(
                "degradation.breaker_failure_threshold",
                "must be at least 1",
            ));
        }
        check_duration("degradation.breaker_open_for", d.breaker_open_for)?;
        check_duration(
            "invalidation.pending_poll_interval",
            self.invalidation.pending_poll_interval,
        )?;
        check_range("metrics.max_series", self.metrics.max_series, 1, 10_000_000)?;
        let st = &self.statistics;
        if st.enabled && st.database_url.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid(
                "statistics.database_url",
                "is empty while statistics.enabled is true",
            ));
        }
        check_duration("statistics.flush_interval", st.flush_interval)?;
        if st.window < Duration::from_secs(1) || st.window > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "statistics.window",
                "must be between 1s and 24h",
            ));
        }
        check_duration("statistics.health_interval", st.health_interval)?;
        check_range(
            "statistics.buffer_max_rows",
            st.buffer_max_rows,
            1,
            10_000_000,
        )?;
        for (key, v) in [
            ("statistics.hit_ratio_alert", st.hit_ratio_alert),
            ("statistics.memory_alert_ratio", st.memory_alert_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v} is outside 0.0..=1.0"),
                ));
            }
        }
        let sv = &self.server;
        if sv.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "server.bind",
                format!("{:?} is not an address like 127.0.0.1:8080", sv.bind),
            ));
        }
        let is_sha256 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !sv.admin_token_sha256.is_empty() && !is_sha256(&sv.admin_token_sha256) {
            return Err(ConfigError::invalid(
                "server.admin_token_sha256",
                "must be the SHA-256 of the token: 64 hexadecimal digits",
            ));
        }
        for (i, k) in sv.api_keys.iter().enumerate() {
            if !is_sha256(&k.key_sha256) {
                return Err(ConfigError::invalid(
                    format!("server.api_keys[{i}].key_sha256"),
                    "must be the SHA-256 of the key: 64 hexadecimal digits",
                ));
            }
            if k.tenant.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("server.api_keys[{i}].tenant"),
                    "is empty",
                ));
            }
        }
        check_duration("server.response_ttl", sv.response_ttl)?;
        let p = &self.processor;
        if p.max_document_bytes < 1024 || p.max_document_bytes > 1 << 32 {
            return Err(ConfigError::invalid(
                "processor.max_document_bytes",
                "must be between 1 KiB and 4 GiB",
            ));
        }
        if p.tesseract.trim().is_empty() {
            return Err(ConfigError::invalid("processor.tesseract", "is empty"));
        }
        if p.ocr_languages.is_empty()
            || !p
                .ocr_languages
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '_')
        {
            return Err(ConfigError::invalid(
                "processor.ocr_languages",
                "must be tesseract language codes joined by '+', like eng+deu",
            ));
        }
        check_duration("processor.ocr_timeout", p.ocr_timeout)?;
        check_duration("processor.openai.timeout", p.openai.timeout)?;
        check_duration("processor.warm_interval", p.warm_interval)?;
        if p.extractor == ExtractorKind::Openai {
            if url::Url::parse(&p.openai.url).is_err() {
                return Err(ConfigError::invalid(
                    "processor.openai.url",
                    format!("{:?} is not a URL", p.openai.url),
                ));
            }
            if p.openai.model.trim().is_empty() {
                return Err(ConfigError::invalid("processor.openai.model", "is empty"));
            }
        }
        self.ttl.validate()
    }
}

fn check_range(key: &str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            key,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

fn check_duration(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    if value > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(key, "must be at most 1h"));
    }
    Ok(())
}

//! Building a [`RedisBackend`] from settings, without contacting the server: the client (TLS with a private
//! CA when asked), the hot connection slots (RESP3 with a tracking push handler when generations are tracked)
//! and the deadpool pool for work that wants a connection of its own.

use std::sync::Arc;

use deadpool_redis::{Pool, Runtime};
use fernando_cache_config::{RedisMode, RedisSettings};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, TlsMode,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};

use super::{
    RedisBackend,
    endpoint::{Endpoint, ExclusiveSource},
    hot::SwitchUser,
    read::{HotPath, HotSettings},
    tracking::TrackedKeys,
};
use crate::BackendError;

/// The TLS a connection to the data nodes of `settings` uses: `None` without TLS; otherwise
/// [`ca_roots`] (`Some(None)`: the system's roots).
pub(super) fn tls_roots(settings: &RedisSettings) -> Result<Option<Option<Vec<u8>>>, BackendError> {
    if !settings.uses_tls() {
        return Ok(None);
    }
    ca_roots(settings).map(Some)
}

/// The private CA certificate `redis.tls_ca_file` names, read here once (`None`: the system's roots). Installs
/// rustls' process-wide crypto provider, which TLS needs (installing it twice is harmless).
fn ca_roots(settings: &RedisSettings) -> Result<Option<Vec<u8>>, BackendError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &settings.tls_ca_file {
        Some(path) => Ok(Some(std::fs::read(path).map_err(|e| {
            BackendError::Other(format!("redis.tls_ca_file {path}: {e}"))
        })?)),
        None => Ok(None),
    }
}

impl RedisBackend {
    /// Prepares connections without contacting the server, so a program starts (degraded) while Redis is down
    /// and recovers when it comes up. `tracked` names the keys the hot connections track when
    /// `settings.track_generations` is on.
    ///
    /// # Errors
    /// [`BackendError::Other`] when the URL cannot be used (for example `rediss://` in a build without TLS).
    pub fn connect(settings: &RedisSettings, tracked: &TrackedKeys) -> Result<Self, BackendError> {
        Self::connect_as(settings, tracked, None)
    }

    /// [`RedisBackend::connect`] as the Redis user `credentials` names (`(user, password)`) in place of the
    /// URL's: an `acl` tenant's connections to the shared deployment (design 0023). Under Sentinel, the
    /// sentinels are still asked with their own URLs' credentials.
    pub(crate) fn connect_as(
        settings: &RedisSettings,
        tracked: &TrackedKeys,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, BackendError> {
        let mut shown_url = settings.url.redacted();
        let mut url = settings
            .connection_url()
            .into_connection_info()
            .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let mut hot = HotSettings::from_settings(settings, tracked);
        // The deployment's own connection info: a tenant's tracking hot connection opens with it and then
        // becomes the tenant's user (`SwitchUser`).
        let deployment = url.clone();
        if let Some((user, password)) = credentials {
            if hot.track.is_some() {
                hot.switch = Some(Arc::new(SwitchUser::new(user, password)));
            }
            let redis = url
                .redis_settings()
                .clone()
                .set_username(user)
                .set_password(password);
            url = url.set_redis_settings(redis);
            shown_url = format!("{shown_url} as user {user}");
        }
        let tls = tls_roots(settings)?;
        let client = client_for(url.clone(), tls.clone())
            .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let hot_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            // The store bounds every call with its own timeout; a second timer per request only costs.
            .set_response_timeout(None);
        // Push messages need RESP3; the exclusive connections stay on RESP2.
        let resp3 = hot.track.is_some();
        let (hot_endpoint, exclusive, listen_endpoint) = if settings.mode == RedisMode::Sentinel {
            let shown = settings
                .sentinels
                .iter()
                .map(|u| u.redacted())
                .collect::<Vec<_>>()
                .join(",");
            shown_url = format!("sentinel {} at {shown}", settings.sentinel_master);
            let sentinels =
                |url: &redis::ConnectionInfo, resp3| -> Result<Endpoint, BackendError> {
                    Ok(Endpoint::Sentinel {
                        sentinels: Box::new(tokio::sync::Mutex::new(sentinel_client(
                            settings,
                            url,
                            tls.as_ref(),
                        )?)),
                        resp3,
                    })
                };
            let hot_url = if hot.switch.is_some() {
                &deployment
            } else {
                &url
            };
            (
                sentinels(hot_url, resp3)?,
                ExclusiveSource::Fresh {
                    endpoint: Box::new(sentinels(&url, false)?),
                    connect_timeout: settings.connect_timeout,
                },
                sentinels(&url, false)?,
            )
        } else {
            let hot_client = if resp3 {
                let resp3 = |info: redis::ConnectionInfo| {
                    let redis = info
                        .redis_settings()
                        .clone()
                        .set_protocol(ProtocolVersion::RESP3);
                    info.set_redis_settings(redis)
                };
                // The client's own info carries its TLS parameters; the deployment's is given them here.
                if hot.switch.is_some() {
                    client_for(resp3(deployment.clone()), tls.clone())
                } else {
                    redis::Client::open(resp3(client.get_connection_info().clone()))
                }
                .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?
            } else {
                client.clone()
            };
            // The pool connects with redis's own connection info, which keeps the TLS parameters
            // (deadpool-redis's serialisable `Config` would drop a private CA).
            let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())
                .map_err(|e| BackendError::Other(format!("redis pool for {shown_url}: {e}")))?;
            let pool = Pool::builder(manager)
                .max_size(settings.pool_size)
                .wait_timeout(Some(settings.connect_timeout))
                .create_timeout(Some(settings.connect_timeout))
                .recycle_timeout(Some(settings.command_timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| BackendError::Other(format!("redis pool for {shown_url}: {e}")))?;
            (
                Endpoint::Fixed(Box::new(hot_client)),
                ExclusiveSource::Pool(pool),
                Endpoint::Fixed(Box::new(client.clone())),
            )
        };
        Ok(RedisBackend {
            hot: HotPath::new(Arc::new(hot_endpoint), &hot_config, &hot),
            exclusive,
            listen_endpoint: Arc::new(listen_endpoint),
            listeners: Default::default(),
            shown_url,
        })
    }
}

/// A client of `info`, over TLS trusting `tls` when it is `Some` (see [`tls_roots`]).
fn client_for(
    info: redis::ConnectionInfo,
    tls: Option<Option<Vec<u8>>>,
) -> redis::RedisResult<redis::Client> {
    match tls {
        Some(root_cert) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert,
            },
        ),
        None => redis::Client::open(info),
    }
}

/// A client of the sentinels that names the primary `redis.sentinel_master`, reached with the credentials,
/// database and TLS choice of `redis.url`, trusting `tls`'s private CA when one is given (see [`tls_roots`]).
/// The sentinels are reached as their URLs say, with the first URL's credentials, and over `rediss://` trust
/// the same CA.
fn sentinel_client(
    settings: &RedisSettings,
    url: &redis::ConnectionInfo,
    tls: Option<&Option<Vec<u8>>>,
) -> Result<SentinelClient, BackendError> {
    let bad = |e: redis::RedisError| BackendError::Other(format!("redis.sentinels: {e}"));
    let sentinels = settings
        .sentinels
        .iter()
        .map(|u| u.expose().into_connection_info())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let Some(first) = sentinels.first() else {
        return Err(BackendError::Other("redis.sentinels: none given".into()));
    };
    let trusted = |root: &Vec<u8>| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root.clone()),
    };
    let mut builder = SentinelClientBuilder::new(
        sentinels.iter().map(|s| s.addr().clone()),
        settings.sentinel_master.as_str(),
        SentinelServerType::Master,
    )
    .map_err(bad)?;
    let to_sentinels = first.redis_settings();
    if let Some(user) = to_sentinels.username() {
        builder = builder.set_client_to_sentinel_username(user);
    }
    if let Some(password) = to_sentinels.password() {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if sentinels
        .iter()
        .any(|s| matches!(s.addr(), ConnectionAddr::TcpTls { .. }))
    {
        // The sentinels may speak TLS while the data nodes do not: the CA is then read for them alone.
        let root = match tls {
            Some(root) => root.clone(),
            None => ca_roots(settings)?,
        };
        if let Some(root) = &root {
            builder = builder.set_client_to_sentinel_certificates(trusted(root));
        }
    }
    let to_primary = url.redis_settings();
    builder = builder
        .set_client_to_redis_db(to_primary.db())
        .set_client_to_redis_protocol(to_primary.protocol());
    if let Some(user) = to_primary.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = to_primary.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(root) = tls {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(root) = root {
            builder = builder.set_client_to_redis_certificates(trusted(root));
        }
    }
    builder.build().map_err(bad)
}

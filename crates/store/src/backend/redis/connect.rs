//! Building a [`RedisBackend`] from settings, without contacting the server: the client (TLS with a private
//! CA when asked), the hot connection slots (RESP3 with a tracking push handler when generations are tracked)
//! and the deadpool pool for work that wants a connection of its own.

use deadpool_redis::{Pool, Runtime};
use fernando_cache_config::RedisSettings;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion};

use super::{RedisBackend, hot::HotConn, tracking::Tracker};
use crate::BackendError;

impl RedisBackend {
    /// Prepares connections without contacting the server, so a program starts (degraded) while Redis is down
    /// and recovers when it comes up. `generation_prefix` is
    /// [`KeyBuilder::generation_prefix`](fernando_cache_keys::KeyBuilder::generation_prefix), tracked on the
    /// hot connections when `settings.track_generations` is on.
    ///
    /// # Errors
    /// [`BackendError::Other`] when the URL cannot be used (for example `rediss://` in a build without TLS).
    pub fn connect(
        settings: &RedisSettings,
        generation_prefix: &str,
    ) -> Result<Self, BackendError> {
        let shown_url = settings.url.redacted();
        let url = settings
            .connection_url()
            .into_connection_info()
            .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let client = if settings.uses_tls() {
            // rustls needs a process-wide crypto provider; installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let root_cert =
                match &settings.tls_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        BackendError::Other(format!("redis.tls_ca_file {path}: {e}"))
                    })?),
                    None => None,
                };
            redis::Client::build_with_tls(
                url.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert,
                },
            )
        } else {
            redis::Client::open(url.clone())
        }
        .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?;
        let hot_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            // The store bounds every call with its own timeout; a second timer per request only costs.
            .set_response_timeout(None);
        let n = settings.multiplexed_connections;
        let tracker = settings
            .track_generations
            .then(|| Tracker::new(n, generation_prefix.to_owned(), settings.command_timeout));
        // Push messages need RESP3; the pool's connections stay on RESP2.
        let hot_client = match &tracker {
            Some(_) => {
                let info = client.get_connection_info().clone();
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                redis::Client::open(info.set_redis_settings(redis))
                    .map_err(|e| BackendError::Other(format!("redis URL {shown_url}: {e}")))?
            }
            None => client.clone(),
        };
        let conns = (0..n)
            .map(|i| match &tracker {
                Some(t) => {
                    let t2 = t.clone();
                    HotConn::new(
                        hot_client.clone(),
                        hot_config.clone().set_push_sender(t.handler(i)),
                        Some(Box::new(move || t2.connection_changed(i))),
                    )
                }
                None => HotConn::new(hot_client.clone(), hot_config.clone(), None),
            })
            .collect();
        // The pool connects with redis's own connection info, which keeps the TLS parameters (deadpool-redis's
        // serialisable `Config` would drop a private CA).
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
        Ok(RedisBackend {
            conns,
            tracker,
            auto_pipeline: settings.auto_pipeline,
            command_timeout: settings.command_timeout,
            pool,
            shown_url,
        })
    }
}

//! `[server]`: the HTTP API of `fernando-cache serve` — its address, who may call it (tenants' API keys, the
//! admin and metrics tokens, all by hash) and, in `[server.limits]` (`limits.rs`), what bounds it.

use std::net::{AddrParseError, Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::{ConfigError, check};

/// Reads an address to listen on (`server.bind`, `serve --bind`, `proxy --bind`): an IP address and port
/// (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`), or `localhost:PORT` in any case, which is 127.0.0.1 — the
/// loopback address every client tries for `localhost`. Other host names are not resolved: what a name resolves
/// to can change, and the address decides who can connect.
///
/// # Errors
/// Why `text` is neither an IP address and port nor `localhost:PORT`.
pub fn listen_address(text: &str) -> Result<SocketAddr, AddrParseError> {
    let localhost = text
        .rsplit_once(':')
        .filter(|(host, _)| host.eq_ignore_ascii_case("localhost"))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    match localhost {
        Some(port) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        None => text.parse(),
    }
}

/// `[server]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `localhost:8080` ([`listen_address`]).
    pub bind: String,
    /// SHA-256 (hex) of the admin token; empty disables the admin routes.
    pub admin_token_sha256: String,
    /// Tenants' API keys, stored as SHA-256 hashes.
    pub api_keys: Vec<ApiKey>,
    /// SHA-256 (hex) of the token `/metrics` asks for. Empty: `/metrics` is open on a loopback address and needs
    /// the admin token on any other.
    pub metrics_token_sha256: String,
    /// Timeouts, connections, bodies, engine work and the per-process request rate.
    pub limits: crate::ServerLimits,
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

impl ServerSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if listen_address(&self.bind).is_err() {
            return Err(ConfigError::invalid(
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080 or localhost:8080",
                    self.bind
                ),
            ));
        }
        check::sha256(
            "server.admin_token_sha256",
            &self.admin_token_sha256,
            true,
            "token",
        )?;
        check::sha256(
            "server.metrics_token_sha256",
            &self.metrics_token_sha256,
            true,
            "token",
        )?;
        for (i, k) in self.api_keys.iter().enumerate() {
            check::sha256(
                &format!("server.api_keys[{i}].key_sha256"),
                &k.key_sha256,
                false,
                "key",
            )?;
            if k.tenant.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("server.api_keys[{i}].tenant"),
                    "is empty",
                ));
            }
        }
        self.limits.validate()
    }
}

//! Whether `serve` can serve anyone before it starts listening (issue 30): with neither tenant API keys nor an
//! admin token configured every request but `/health` would be refused, so it refuses to start and says what
//! to set; with one of the two missing it starts, and a warning names what is missing and what is refused.

use fernando_cache_config::Settings;

/// How to configure a tenant's key, for the messages.
const HOW_KEYS: &str = "add [[server.api_keys]] entries (tenant = \"…\", key_sha256 = the SHA-256 of the key: \
                        printf '%s' \"$KEY\" | sha256sum) to the config folder's local.toml or {profile}.toml";
/// How to configure the admin token, for the messages.
const HOW_ADMIN: &str = "set server.admin_token_sha256 (FERNANDO_CACHE__SERVER__ADMIN_TOKEN_SHA256) to the \
                         SHA-256 of a token: printf '%s' \"$TOKEN\" | sha256sum";

/// Refuses a server no request could use, and warns of one only some requests can.
///
/// # Errors
/// When neither `server.api_keys` nor `server.admin_token_sha256` is set, naming both and how to set them.
pub(super) fn check(settings: &Settings) -> anyhow::Result<()> {
    let server = &settings.server;
    let profile = settings.environment;
    let keys = !server.api_keys.is_empty();
    let admin = !server.admin_token_sha256.trim().is_empty();
    match (keys, admin) {
        (false, false) => anyhow::bail!(
            "serve would refuse every request: the {profile} profile has no tenant API keys (server.api_keys) \
             and no admin token (server.admin_token_sha256). To let tenants in, {}; for the admin routes and \
             the console, {HOW_ADMIN} (docs/configuration.md, [server])",
            HOW_KEYS.replace("{profile}", profile.as_str())
        ),
        (false, true) => tracing::warn!(
            "NO TENANT API KEYS: the {profile} profile has no server.api_keys, so every tenant route \
             (/v1/documents, /v1/events, /v1/cache/stats) answers 401; only the admin token is accepted. {}",
            HOW_KEYS.replace("{profile}", profile.as_str())
        ),
        (true, false) => tracing::warn!(
            "NO ADMIN TOKEN: the {profile} profile has no server.admin_token_sha256, so the admin routes \
             (/v1/cache/invalidate, /v1/admin/…) refuse everyone and the console (/dashboard) cannot be \
             signed into. {HOW_ADMIN}"
        ),
        (true, true) => {}
    }
    Ok(())
}

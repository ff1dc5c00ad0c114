//! `[regions]`: the region this deployment is, for replication between regions (design 0026) — its name, which
//! names the replication stream the deployment appends to, and how long that stream may grow. Which types'
//! values travel is each type's own `types.<name>.replicate`.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::{ConfigError, RedisMode, RedisUrl, duration};

/// `[regions]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RegionSettings {
    /// This deployment's region, e.g. `eu-west` (1 to 32 lowercase ASCII letters, digits, `-` and `_`). Empty:
    /// the deployment is no region — nothing is appended to a replication stream.
    pub name: String,
    /// Entries the replication stream keeps at most (`XADD … MAXLEN ~`): a region whose replicator falls
    /// further behind than this has lost entries, and invalidates what they could have touched.
    pub stream_max_entries: u64,
    /// How long the replication stream keeps an entry at most (`XTRIM … MINID ~`, at most once a second): a
    /// region whose replicator is further behind than this has lost entries, as past `stream_max_entries`.
    #[serde(with = "duration")]
    pub stream_max_age: Duration,
    /// The regions whose streams this one applies, each with its Redis (`[regions.from] eu = "redis://…"`, or
    /// a table with `url`, `mode`, `nodes`, `sentinels`, `sentinel_master` as `[redis]` has them):
    /// `serve` runs a replicator for each (unless `serve_replicates` is off), `fernando-cache replicate` with no
    /// `--from` too, and `stats`, `/metrics` and the dashboard report how far behind each is.
    pub from: BTreeMap<String, RegionRedis>,
    /// Whether `serve` runs the replicators of `from` (off: they run as `fernando-cache replicate` processes).
    pub serve_replicates: bool,
    /// How far behind another region's stream (in time) this one may fall before an alert fires; a replicator
    /// that has noted nothing for this long counts as that far behind.
    #[serde(with = "duration")]
    pub max_lag: Duration,
}

/// Another region's Redis: its URL, and its topology when it is not one server (each region may run its own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RegionRedisForm")]
#[non_exhaustive]
pub struct RegionRedis {
    /// As `redis.url` (in sentinel mode, only its scheme, user, password and database are used).
    pub url: RedisUrl,
    /// As `redis.mode`.
    pub mode: RedisMode,
    /// As `redis.nodes`.
    pub nodes: Vec<RedisUrl>,
    /// As `redis.sentinels`.
    pub sentinels: Vec<RedisUrl>,
    /// As `redis.sentinel_master`.
    pub sentinel_master: String,
}

impl RegionRedis {
    /// One server at `url`.
    pub fn standalone(url: RedisUrl) -> RegionRedis {
        RegionRedis {
            url,
            mode: RedisMode::Standalone,
            nodes: Vec::new(),
            sentinels: Vec::new(),
            sentinel_master: crate::redis::default_sentinel_master(),
        }
    }
}

/// How `[regions.from]` may name a region's Redis: a URL, or a table. Read as text first, so that what is
/// wrong is said in words (never repeating the URL) rather than as a failed match.
#[derive(Deserialize)]
#[serde(untagged)]
enum RegionRedisForm {
    Url(String),
    Topology(RegionTopology),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionTopology {
    url: RedisUrl,
    #[serde(default)]
    mode: RedisMode,
    #[serde(default, deserialize_with = "crate::redis::url_list")]
    nodes: Vec<RedisUrl>,
    #[serde(default, deserialize_with = "crate::redis::url_list")]
    sentinels: Vec<RedisUrl>,
    #[serde(default = "crate::redis::default_sentinel_master")]
    sentinel_master: String,
}

impl TryFrom<RegionRedisForm> for RegionRedis {
    type Error = String;

    fn try_from(form: RegionRedisForm) -> Result<RegionRedis, String> {
        Ok(match form {
            RegionRedisForm::Url(text) => {
                RegionRedis::standalone(RedisUrl::parse(&text).map_err(|e| match e {
                    ConfigError::Invalid { reason, .. } => reason,
                    other => other.to_string(),
                })?)
            }
            RegionRedisForm::Topology(t) => RegionRedis {
                url: t.url,
                mode: t.mode,
                nodes: t.nodes,
                sentinels: t.sentinels,
                sentinel_master: t.sentinel_master,
            },
        })
    }
}

impl RegionSettings {
    /// Fewest entries a stream may be bounded to.
    pub const MIN_STREAM_ENTRIES: u64 = 100;
    /// Most entries a stream may be bounded to.
    pub const MAX_STREAM_ENTRIES: u64 = 100_000_000;

    /// This deployment's region, if it is one.
    pub fn region(&self) -> Option<&str> {
        (!self.name.is_empty()).then_some(self.name.as_str())
    }

    /// Checks a region's name: 1 to 32 lowercase ASCII letters, digits, `-` and `_` (it is part of a key).
    ///
    /// # Errors
    /// Why `name` is not one.
    pub fn check_name(name: &str) -> Result<(), String> {
        if name.is_empty() || name.len() > 32 {
            return Err(format!("{name:?} must be 1 to 32 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{name:?} may contain only lowercase ASCII letters, digits, '-' and '_'"
            ));
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = self.region() {
            Self::check_name(name).map_err(|e| ConfigError::invalid("regions.name", e))?;
        }
        for (from, redis) in &self.from {
            let key = format!("regions.from.{from}");
            Self::check_name(from).map_err(|e| ConfigError::invalid(key.clone(), e))?;
            if redis.mode == RedisMode::Sentinel && redis.sentinels.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.sentinels"),
                    "sentinel mode needs the sentinels' URLs",
                ));
            }
            match self.region() {
                None => {
                    return Err(ConfigError::invalid(
                        key.clone(),
                        "name this region (regions.name) to apply another's stream",
                    ));
                }
                Some(here) if here == from => {
                    return Err(ConfigError::invalid(key.clone(), "is this region"));
                }
                Some(_) => {}
            }
        }
        crate::check::duration("regions.max_lag", self.max_lag)?;
        if self.stream_max_age < Duration::from_secs(60)
            || self.stream_max_age > Duration::from_secs(30 * 86_400)
        {
            return Err(ConfigError::invalid(
                "regions.stream_max_age",
                "must be 1m to 30d",
            ));
        }
        if !(Self::MIN_STREAM_ENTRIES..=Self::MAX_STREAM_ENTRIES).contains(&self.stream_max_entries)
        {
            return Err(ConfigError::invalid(
                "regions.stream_max_entries",
                format!(
                    "must be {} to {}",
                    Self::MIN_STREAM_ENTRIES,
                    Self::MAX_STREAM_ENTRIES
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RegionSettings;

    #[test]
    fn a_region_name_is_a_short_lowercase_word() {
        assert!(RegionSettings::check_name("eu-west_1").is_ok());
        for bad in ["", "EU", "eu:west", "eu west", &"a".repeat(33), "é"] {
            assert!(RegionSettings::check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}

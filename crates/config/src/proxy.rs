//! `[proxy]`: what `fernando-cache proxy` reads from the settings rather than from its flags — the certificate
//! authority an `https://` origin is checked against.

use serde::Deserialize;

use crate::ConfigError;

/// `[proxy]`: the settings of `fernando-cache proxy` that belong in a file (the origin, the address and the
/// tenancy are its flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxySettings {
    /// A PEM file of the certificate authority (or authorities) that signed an `https://` origin's certificate,
    /// for private CAs; it replaces the system's roots. Unset: the system's roots (the files `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` name, when set). Read once, when `proxy` starts.
    #[serde(default)]
    pub origin_ca_file: Option<String>,
}

impl ProxySettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .origin_ca_file
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                "proxy.origin_ca_file",
                "is empty: name a PEM file, or leave it unset to use the system's roots",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_the_systems_roots_and_an_empty_path_is_refused_by_name() {
        assert!(ProxySettings::default().validate().is_ok());
        let empty = ProxySettings {
            origin_ca_file: Some(" ".to_owned()),
        };
        let error = empty.validate().unwrap_err().to_string();
        assert!(error.contains("proxy.origin_ca_file"), "{error}");
    }
}

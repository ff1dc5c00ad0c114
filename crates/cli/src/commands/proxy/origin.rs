//! The origin `proxy` forwards to: its URL, the client that reaches it — plain TCP for `http://`, rustls for
//! `https://` (the origin's host name sent as SNI and checked against its certificate; the system's roots, or
//! the CA that `proxy.origin_ca_file` names) — and what the client is told when the exchange fails: a 502 or 504
//! whose message says which of these went wrong, with the cause in the log only.

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum::{
    body::Body,
    http::{HeaderValue, Request, StatusCode, Uri},
    response::Response,
};
use fernando_cache_http::server as edge;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, ResponseFuture, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{
    CertificateError, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};

/// The origin, and the client that reaches it.
pub(super) struct Origin {
    /// `http://host:port` or `https://host:port`, and any base path, without a trailing `/`.
    pub(super) base: String,
    pub(super) authority: HeaderValue,
    client: OriginClient,
    pub(super) timeout: Duration,
}

/// One pooled client per scheme: an `http://` origin never needs roots, so it never loads any.
enum OriginClient {
    Plain(Client<HttpConnector, Body>),
    Tls(Client<HttpsConnector<HttpConnector>, Body>),
}

impl Origin {
    /// The origin at `url` (`--origin`), reached within `timeout`; an `https://` one is trusted through
    /// `ca_file` (`proxy.origin_ca_file`) when given, else through the system's roots.
    ///
    /// # Errors
    /// When `url` is not an `http://` or `https://` URL with a host and without a query, when its host cannot
    /// be named by a certificate, or when the roots cannot be loaded (the CA file's path and what is wrong
    /// with it, or that the system has none).
    pub(super) fn parse(
        url: &str,
        timeout: Duration,
        ca_file: Option<&str>,
    ) -> anyhow::Result<Origin> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--origin {url:?} is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("--origin {url:?} must be an http:// or https:// URL"),
        };
        let authority = uri
            .authority()
            .with_context(|| format!("--origin {url:?} names no host"))?
            .as_str()
            .to_owned();
        // Credentials in the URL would be shown in every log line and sent as part of `Host`.
        if authority.contains('@') {
            bail!(
                "--origin must not carry a user name or password (user:password@host); the origin is given \
                 only its host and port"
            );
        }
        // `http::Uri` accepts any digits as a port; a TCP port is at most 65535.
        if let Some(port) = uri.port()
            && port.as_str().parse::<u16>().is_err()
        {
            bail!(
                "--origin {url:?}: {} is not a TCP port (1-65535)",
                port.as_str()
            );
        }
        if uri.query().is_some() {
            bail!("--origin {url:?} must not carry a query string");
        }
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{authority}{}", uri.path().trim_end_matches('/'));
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(30));
        let client = if tls {
            // The host the certificate must name, sent as SNI (hyper-rustls takes it from each request's URI,
            // which is always this origin's): checked here, so a bad one stops the start, not every request.
            let host = uri.host().unwrap_or_default();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            ServerName::try_from(host.to_owned()).map_err(|_| {
                anyhow::anyhow!(
                    "--origin {url:?}: {host:?} is not a host name or address a certificate can name"
                )
            })?;
            // The https connector checks the scheme; the TCP connector under it must let https:// URIs through.
            connector.enforce_http(false);
            let connector = HttpsConnectorBuilder::new()
                .with_tls_config(tls_config(url, ca_file)?)
                .https_only()
                .enable_http1()
                .wrap_connector(connector);
            OriginClient::Tls(builder.build(connector))
        } else {
            OriginClient::Plain(builder.build(connector))
        };
        Ok(Origin {
            base,
            authority: HeaderValue::from_str(&authority)?,
            client,
            timeout,
        })
    }

    /// Sends `request` (whose URI is under `base`) on a pooled connection.
    pub(super) fn request(&self, request: Request<Body>) -> ResponseFuture {
        match &self.client {
            OriginClient::Plain(c) => c.request(request),
            OriginClient::Tls(c) => c.request(request),
        }
    }
}

/// The TLS the origin is reached with: TLS 1.2 or 1.3 on the workspace's ring provider (the process-wide
/// default is not relied on), no client certificate, and the roots `ca_file` holds or else the system's.
fn tls_config(url: &str, ca_file: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS for the origin")?;
    let builder = match ca_file {
        Some(path) => builder.with_root_certificates(private_roots(path)?),
        None => builder.with_native_roots().with_context(|| {
            format!(
                "--origin {url:?}: the system's root certificates could not be loaded; install them (Debian: \
                 ca-certificates) or name the CA that signed the origin's certificate in proxy.origin_ca_file"
            )
        })?,
    };
    Ok(builder.with_no_client_auth())
}

/// Most bytes a CA file may have: a bundle of every public root is about 250 KB.
const MAX_CA_FILE: u64 = 4 << 20;

/// The CA file's bytes: a regular file of at most [`MAX_CA_FILE`] bytes (never `/dev/zero` or a FIFO read until
/// memory or patience runs out).
fn read_bounded(path: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).with_context(|| format!("proxy.origin_ca_file {path}"))?;
    if !meta.is_file() {
        bail!("proxy.origin_ca_file {path} is not a regular file");
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .with_context(|| format!("proxy.origin_ca_file {path}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        bail!("proxy.origin_ca_file {path} is larger than {MAX_CA_FILE} bytes: not a CA bundle");
    }
    Ok(pem)
}

/// Every certificate of the PEM file at `path`, as the only roots the origin's certificate may chain to.
fn private_roots(path: &str) -> anyhow::Result<RootCertStore> {
    let pem = read_bounded(path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .with_context(|| format!("proxy.origin_ca_file {path} is not a readable PEM file"))?;
        roots.add(cert).with_context(|| {
            format!("proxy.origin_ca_file {path}: a certificate in it cannot be used as a root")
        })?;
    }
    if roots.is_empty() {
        bail!(
            "proxy.origin_ca_file {path} holds no certificate (a PEM file of -----BEGIN CERTIFICATE----- blocks \
             is expected)"
        );
    }
    Ok(roots)
}

/// The answer to a request whose exchange with the origin failed: 502, with a message that says whether the
/// origin's certificate was refused (and why, in words), its TLS handshake failed otherwise, or it could not be
/// reached. The error chain itself goes to the log with the request id, never to the client.
pub(super) fn failed(error: &hyper_util::client::legacy::Error) -> Response {
    let causes = Causes(error);
    match tls_error(error) {
        Some(rustls::Error::InvalidCertificate(why)) => edge::internal_error(
            StatusCode::BAD_GATEWAY,
            &format!(
                "the origin's certificate was not accepted: {}",
                refusal(why)
            ),
            &format_args!(
                "{causes} (a certificate from a private CA is accepted once proxy.origin_ca_file names that CA)"
            ),
        ),
        Some(rustls::Error::NoCertificatesPresented) => edge::internal_error(
            StatusCode::BAD_GATEWAY,
            "the origin's certificate was not accepted: it presented none",
            &causes,
        ),
        Some(_) => edge::internal_error(
            StatusCode::BAD_GATEWAY,
            "the TLS handshake with the origin failed",
            &causes,
        ),
        None => edge::internal_error(
            StatusCode::BAD_GATEWAY,
            "the origin could not be reached",
            &causes,
        ),
    }
}

/// Why a certificate was refused, in the words a client of the proxy may read: what is wrong with the origin's
/// certificate, never how the check was made.
fn refusal(why: &CertificateError) -> &'static str {
    match why {
        // A bad signature: a trusted authority's name on a certificate it did not sign.
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            "it is not signed by a trusted authority"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not name the origin's host"
        }
        CertificateError::Revoked => "it has been revoked",
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not for a server"
        }
        _ => "it could not be verified",
    }
}

/// The rustls error somewhere in `error`'s chain. `io::Error::source` skips the error an `io::Error` wraps
/// (it returns that error's source), and both hyper-rustls and tokio-rustls wrap theirs in one, so each
/// `io::Error` is looked into as well.
fn tls_error<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(tls) = tls_error(inner)
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// An error and its sources on one line, for the log: hyper-util's own message is only "client error
/// (Connect)".
struct Causes<'e>(&'e (dyn StdError + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> anyhow::Result<Origin> {
        Origin::parse(url, Duration::from_secs(1), None)
    }

    #[test]
    fn origins_are_http_or_https_urls_without_a_query() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert_eq!(
            parse("http://127.0.0.1:9000/api/").unwrap().base,
            "http://127.0.0.1:9000/api"
        );
        for bad in ["ftp://x", "http://h/?q=1", "https://h/?q=1", "not a url"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_stops_the_start_naming_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = empty.display().to_string();
        for path in [&missing, &empty] {
            let error = Origin::parse("https://localhost:9443", Duration::from_secs(1), Some(path))
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                error.contains("proxy.origin_ca_file") && error.contains(path.as_str()),
                "{error}"
            );
        }
    }

    #[test]
    fn certificate_refusals_are_told_in_words_and_found_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let found = tls_error(&wrapped);
        assert!(
            matches!(
                found,
                Some(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "{found:?}"
        );
        assert_eq!(
            refusal(&CertificateError::UnknownIssuer),
            "it is not signed by a trusted authority"
        );
        assert!(tls_error(&std::io::Error::other("refused")).is_none());
    }
}

//! TLS toward vendors at call time: a connection's [`TlsSettings`] applied to pingora's
//! `HttpPeer`, the negotiated version checked against `min_version`, and every way a session
//! can fail named so an operator can act on it.
//!
//! Pingora reports a failed certificate check as `InvalidCert` and drops OpenSSL's verify
//! result, so the *why* (untrusted issuer, expired, wrong name) is not in its error. When that
//! happens the client repeats the handshake once with the same trust store and name through
//! tokio-openssl, only to read the verify result ([`diagnose`]); the answer is cached briefly per
//! peer, so a vendor that keeps failing costs one extra handshake per [`DIAGNOSIS_TTL`], not
//! one per request. Pingora's own handshake stays the one that decides.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use pingora::tls::ssl_sys;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::CertKey;
use pingora::ErrorType;

use super::BaseUrl;

/// A TLS protocol version floor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The version as config and logs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }

    /// The version of a negotiated session, from OpenSSL's name for it (`TLSv1.2`).
    fn from_negotiated(name: &str) -> Option<Self> {
        match name {
            "TLSv1.2" => Some(TlsVersion::Tls12),
            "TLSv1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// A connection's TLS, ready to apply to each new vendor session. The default is system roots,
/// full verification, the base URL's host as the name, no client certificate, TLS 1.2 or newer.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// The trust anchors; `None` = the system roots (pingora's default store).
    pub ca: Option<Arc<Box<[X509]>>>,
    /// The client certificate chain and key, for mTLS.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// SNI and the name verified, instead of the base URL's host.
    pub server_name: Option<String>,
    pub min_version: TlsVersion,
    /// Pingora's pool group: sessions made under other settings are never reused for these.
    /// 0 for the default settings.
    pub pool_key: u64,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client_cert", &self.client_cert_key.is_some())
            .field("server_name", &self.server_name)
            .field("min_version", &self.min_version)
            .field("pool_key", &self.pool_key)
            .finish()
    }
}

/// How long a diagnosis of a failed certificate check is reused for the same peer.
pub(super) const DIAGNOSIS_TTL: Duration = Duration::from_secs(10);

/// Why no usable TLS session could be made with a vendor. Each is the `cause` of the access
/// log and the warn line; all count as outcome `tls_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The vendor's chain does not lead to a trusted CA (the system roots, or `ca_file`).
    UntrustedIssuer,
    /// The certificate is valid, but not for the name we asked for (base URL host or
    /// `server_name`).
    HostnameMismatch,
    /// The vendor's certificate (or one in its chain) has expired or is not valid yet.
    Expired,
    /// The certificate check failed for another reason (bad signature, wrong purpose, …).
    CertificateRejected,
    /// The vendor refused our client certificate, or requires one we did not send.
    ClientCertificate,
    /// Anything else in the handshake: no common version or cipher, not TLS at all, a version
    /// below `min_version`, the connection closed mid-handshake.
    Handshake,
}

impl TlsFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::UntrustedIssuer => "untrusted_issuer",
            TlsFailure::HostnameMismatch => "hostname_mismatch",
            TlsFailure::Expired => "expired",
            TlsFailure::CertificateRejected => "certificate_rejected",
            TlsFailure::ClientCertificate => "client_certificate",
            TlsFailure::Handshake => "handshake",
        }
    }

    /// For the problem detail: what failed, in words, never an address.
    pub fn describe(self) -> &'static str {
        match self {
            TlsFailure::UntrustedIssuer => "its TLS certificate is not issued by a trusted CA",
            TlsFailure::HostnameMismatch => "its TLS certificate is for another host name",
            TlsFailure::Expired => "its TLS certificate has expired or is not valid yet",
            TlsFailure::CertificateRejected => "its TLS certificate failed verification",
            TlsFailure::ClientCertificate => "it refused the connection's client certificate",
            TlsFailure::Handshake => "the TLS handshake failed",
        }
    }
}

/// A classified TLS failure. `reason` is safe to log: OpenSSL's words, never an address,
/// a host name or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({reason})", failure.as_str())]
pub struct TlsError {
    pub failure: TlsFailure,
    pub reason: String,
}

impl TlsError {
    pub fn new(failure: TlsFailure, reason: impl Into<String>) -> Self {
        TlsError {
            failure,
            reason: reason.into(),
        }
    }
}

/// The peer for one vendor call: address, SNI (`server_name` or the base URL's host), the
/// connection's trust store and client certificate, and its pool group.
pub fn vendor_peer(addr: SocketAddr, base: &BaseUrl, tls: &TlsSettings) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, base.tls, server_name(base, tls).to_owned());
    if base.tls {
        peer.group_key = tls.pool_key;
        peer.options.ca = tls.ca.clone();
        peer.client_cert_key = tls.client_cert_key.clone();
    }
    peer
}

fn server_name<'a>(base: &'a BaseUrl, tls: &'a TlsSettings) -> &'a str {
    tls.server_name.as_deref().unwrap_or(&base.host)
}

/// Which pooled sessions a connection can use: its pool group, name, port and scheme. Two
/// connections with the same identity share pooled sessions; when a reload leaves no
/// connection with an identity, its idle sessions are closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolIdentity {
    pub pool_key: u64,
    pub server_name: String,
    pub port: u16,
    pub tls: bool,
}

impl PoolIdentity {
    pub fn of(base: &BaseUrl, tls: &TlsSettings) -> Self {
        PoolIdentity {
            pool_key: if base.tls { tls.pool_key } else { 0 },
            server_name: server_name(base, tls).to_owned(),
            port: base.port,
            tls: base.tls,
        }
    }
}

/// `Err` when a new TLS session negotiated a version below the connection's `min_version`
/// (`negotiated` is OpenSSL's name, `TLSv1.3`; `None` when the session reports none, which
/// fails closed). Pingora's connector offers TLS 1.0–1.3 to every peer; the floor is enforced
/// here, before a single byte of the request is written on the session.
pub(super) fn check_version(negotiated: Option<&str>, min: TlsVersion) -> Result<(), TlsError> {
    let name = negotiated.unwrap_or("an unknown version");
    match TlsVersion::from_negotiated(name) {
        Some(version) if version >= min => Ok(()),
        _ => Err(TlsError::new(
            TlsFailure::Handshake,
            format!(
                "the vendor negotiated {name}, below min_version {}",
                min.as_str()
            ),
        )),
    }
}

/// What a pingora connect error means. `None`: not TLS (refused, timeout, DNS …).
pub(super) fn classify_connect(error: &pingora::Error) -> Option<TlsError> {
    match error.etype() {
        // Diagnosed separately (the verify result is not in the error).
        ErrorType::InvalidCert => Some(TlsError::new(
            TlsFailure::CertificateRejected,
            "certificate verify failed",
        )),
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::TLSWantX509Lookup
        | ErrorType::HandshakeError => Some(classify_text(&error.to_string(), true)),
        _ => None,
    }
}

/// A read or write error on a session that was just made: with TLS 1.3 the vendor's verdict
/// on our client certificate arrives as an alert after the client's side of the handshake has
/// finished, on the first read. `None`: an ordinary I/O error (any other alert included).
pub(super) fn classify_io(error: &pingora::Error) -> Option<TlsError> {
    let text = error.to_string();
    let alert = alert_number(&text)?;
    let classified = classify_alert(alert, &text);
    (classified.failure == TlsFailure::ClientCertificate).then_some(classified)
}

/// Classify OpenSSL's error text (from a handshake).
fn classify_text(text: &str, in_handshake: bool) -> TlsError {
    if let Some(alert) = alert_number(text) {
        return classify_alert(alert, text);
    }
    let reason = openssl_reason(text);
    let reason = match reason.as_deref() {
        Some("wrong version number")
        | Some("packet length too long")
        | Some("record layer failure") => {
            "the vendor did not answer with TLS (is the base_url scheme right?)".to_owned()
        }
        Some("unexpected eof while reading") => {
            "the vendor closed the connection during the TLS handshake".to_owned()
        }
        Some(other) => other.to_owned(),
        None if text.contains("timeout") || text.contains("Timedout") => {
            "the TLS handshake timed out".to_owned()
        }
        None if in_handshake => "the TLS handshake failed".to_owned(),
        None => "the TLS session failed".to_owned(),
    };
    TlsError::new(TlsFailure::Handshake, reason)
}

fn classify_alert(alert: u32, text: &str) -> TlsError {
    // Alerts a server sends about the client's certificate (RFC 8446 §6.2).
    let client_certificate = match alert {
        116 => Some("the vendor requires a client certificate (TLS alert certificate_required)"),
        42 => Some("the vendor refused the client certificate (TLS alert bad_certificate)"),
        43 => Some("the vendor refused the client certificate (TLS alert unsupported_certificate)"),
        44 => Some("the vendor refused the client certificate (TLS alert certificate_revoked)"),
        45 => Some("the vendor refused the client certificate (TLS alert certificate_expired)"),
        46 => Some("the vendor refused the client certificate (TLS alert certificate_unknown)"),
        48 => Some("the vendor does not trust the client certificate's CA (TLS alert unknown_ca)"),
        49 => Some("the vendor denied access to the client certificate (TLS alert access_denied)"),
        _ => None,
    };
    if let Some(reason) = client_certificate {
        return TlsError::new(TlsFailure::ClientCertificate, reason);
    }
    let reason = match alert {
        70 => "no TLS version in common with the vendor (TLS alert protocol_version)".to_owned(),
        40 => "the vendor ended the handshake (TLS alert handshake_failure: no common cipher, \
               or a client certificate it requires)"
            .to_owned(),
        71 => "the vendor's security requirements are not met (TLS alert insufficient_security)"
            .to_owned(),
        112 => {
            "the vendor does not know the server name sent (TLS alert unrecognized_name)".to_owned()
        }
        other => match openssl_reason(text) {
            Some(reason) => format!("{reason} (TLS alert {other})"),
            None => format!("TLS alert {other}"),
        },
    };
    TlsError::new(TlsFailure::Handshake, reason)
}

/// `N` of OpenSSL's "SSL alert number N".
fn alert_number(text: &str) -> Option<u32> {
    let at = text.find("SSL alert number ")? + "SSL alert number ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The reason field of OpenSSL's `error:CODE:LIBRARY:FUNCTION:REASON:FILE:LINE:` text.
fn openssl_reason(text: &str) -> Option<String> {
    let at = text.find("error:")?;
    let reason = text[at..].split(':').nth(4)?.trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

/// The failure an OpenSSL verify result stands for.
fn classify_verify_result(code: i32, words: &str) -> TlsError {
    let failure = match code {
        ssl_sys::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | ssl_sys::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ssl_sys::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | ssl_sys::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | ssl_sys::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | ssl_sys::X509_V_ERR_CERT_UNTRUSTED
        | ssl_sys::X509_V_ERR_INVALID_CA => TlsFailure::UntrustedIssuer,
        ssl_sys::X509_V_ERR_CERT_HAS_EXPIRED
        | ssl_sys::X509_V_ERR_CERT_NOT_YET_VALID
        | ssl_sys::X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD
        | ssl_sys::X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD => TlsFailure::Expired,
        ssl_sys::X509_V_ERR_HOSTNAME_MISMATCH | ssl_sys::X509_V_ERR_IP_ADDRESS_MISMATCH => {
            TlsFailure::HostnameMismatch
        }
        _ => TlsFailure::CertificateRejected,
    };
    TlsError::new(failure, words)
}

/// Repeat a handshake whose certificate check failed in pingora, with the same trust store
/// and name, to read OpenSSL's verify result. Bounded by `timeout`; any trouble on the way
/// answers `certificate_rejected` (pingora did say the certificate failed).
pub(super) async fn diagnose(
    addr: SocketAddr,
    base: &BaseUrl,
    tls: &TlsSettings,
    timeout: Duration,
) -> TlsError {
    let unknown = || TlsError::new(TlsFailure::CertificateRejected, "certificate verify failed");
    let name = server_name(base, tls).to_owned();
    let ca = tls.ca.clone();
    let attempt = async move {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
        match &ca {
            Some(ca) => {
                let mut store = X509StoreBuilder::new().ok()?;
                for cert in ca.iter() {
                    store.add_cert(cert.clone()).ok()?;
                }
                builder.set_verify_cert_store(store.build()).ok()?;
            }
            None => builder.set_default_verify_paths().ok()?,
        }
        builder.set_verify(SslVerifyMode::PEER);
        let ssl = builder.build().configure().ok()?.into_ssl(&name).ok()?;
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).ok()?;
        let handshake = Pin::new(&mut stream).connect().await;
        let verify = stream.ssl().verify_result();
        match (handshake, verify.as_raw()) {
            (_, ssl_sys::X509_V_OK) => None,
            (_, code) => Some(classify_verify_result(code, verify.error_string())),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_about_our_certificate_are_client_certificate_failures() {
        let text = "ReadError context: while reading response headers cause: error:0A00045C:SSL \
                    routines:ssl3_read_bytes:tlsv13 alert certificate required:ssl/record/\
                    rec_layer_s3.c:918:SSL alert number 116";
        let e = classify_text(text, false);
        assert_eq!(e.failure, TlsFailure::ClientCertificate);
        assert!(e.reason.contains("certificate_required"), "{}", e.reason);
        let e = classify_text("error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:ssl/record/rec_layer_s3.c:918:SSL alert number 48, SNI: vendor.test", true);
        assert_eq!(e.failure, TlsFailure::ClientCertificate);
        assert!(!e.reason.contains("vendor.test"));
    }

    #[test]
    fn other_handshake_failures_say_what_openssl_said_without_addresses() {
        let text = " TLSHandshakeFailure context: TLS connect() failed: error:0A00010B:SSL \
                    routines:tls_validate_record_header:wrong version number:ssl/record/methods/\
                    tlsany_meth.c:77:, SNI: desk.internal cause: local address 10.0.0.7:50300";
        let e = classify_text(text, true);
        assert_eq!(e.failure, TlsFailure::Handshake);
        assert!(e.reason.contains("did not answer with TLS"), "{}", e.reason);
        assert!(!e.to_string().contains("10.0.0.7") && !e.to_string().contains("desk.internal"));
        let e = classify_text("error:0A000410:SSL routines:ssl3_read_bytes:ssl/tls alert handshake failure:ssl/record/rec_layer_s3.c:918:SSL alert number 40", true);
        assert_eq!(e.failure, TlsFailure::Handshake);
        assert!(e.reason.contains("handshake_failure"));
        let e = classify_text(
            "error:0A000102:SSL routines::unsupported protocol:x.c:1:",
            true,
        );
        assert_eq!(e.reason, "unsupported protocol");
    }

    #[test]
    fn verify_results_map_to_their_class() {
        let class = |code| classify_verify_result(code, "x").failure;
        assert_eq!(
            class(ssl_sys::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
            TlsFailure::UntrustedIssuer
        );
        assert_eq!(
            class(ssl_sys::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
            TlsFailure::UntrustedIssuer
        );
        assert_eq!(
            class(ssl_sys::X509_V_ERR_CERT_HAS_EXPIRED),
            TlsFailure::Expired
        );
        assert_eq!(
            class(ssl_sys::X509_V_ERR_CERT_NOT_YET_VALID),
            TlsFailure::Expired
        );
        assert_eq!(
            class(ssl_sys::X509_V_ERR_HOSTNAME_MISMATCH),
            TlsFailure::HostnameMismatch
        );
        assert_eq!(
            class(ssl_sys::X509_V_ERR_CERT_SIGNATURE_FAILURE),
            TlsFailure::CertificateRejected
        );
    }

    #[test]
    fn the_version_floor_is_enforced() {
        assert!(check_version(Some("TLSv1.3"), TlsVersion::Tls13).is_ok());
        assert!(check_version(Some("TLSv1.2"), TlsVersion::Tls12).is_ok());
        let e = check_version(Some("TLSv1.2"), TlsVersion::Tls13).unwrap_err();
        assert_eq!(e.failure, TlsFailure::Handshake);
        assert!(e.reason.contains("below min_version 1.3"), "{}", e.reason);
        assert!(check_version(Some("TLSv1.1"), TlsVersion::Tls12).is_err());
        assert!(check_version(Some("TLSv1"), TlsVersion::Tls12).is_err());
        // A TLS session that reports no version is refused, not waved through.
        assert!(check_version(None, TlsVersion::Tls12).is_err());
    }
}

//! A connection's TLS toward its vendor: the `tls:` block of the connections file, checked and
//! loaded once per snapshot (certificates parsed, the client key matched to its certificate),
//! ready for pingora's connector.
//!
//! Trust is full by default: the system roots, the chain and the host name are verified on
//! every new connection. `ca_file` *replaces* the system roots for that one connection
//! (`ca_mode: replace`, the default — a company CA then vouches for that vendor and nothing
//! else, like curl's `--cacert` or nginx's `proxy_ssl_trusted_certificate`), or is *added* to
//! them (`ca_mode: add`). There is deliberately no switch that turns verification off.
//!
//! Everything that changes how a connection's TLS sessions are made is folded into
//! [`TlsSettings::pool_key`](crate::upstream::tls::TlsSettings::pool_key), which becomes pingora's `HttpPeer::group_key`: pingora's own reuse
//! hash covers the SNI, the client certificate's serial and the verify flags, but not the trust
//! store or the version floor, so without it a rotated `ca_file` could reuse a pooled session
//! that the old store verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pingora::utils::tls::CertKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::sha256_hex;
use crate::config_error::{ConfigError, ConfigWarning};
use crate::snapshot::FileHash;
use crate::upstream::tls::{TlsSettings, TlsVersion};
use crate::upstream::BaseUrl;

/// A client certificate this close to expiry gets a warning from `switchboard check` and on
/// every reload.
const EXPIRY_WARNING_DAYS: u32 = 30;

/// `tls:` of one connection in the connections file. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM file of CA certificates that vouch for the vendor's certificate.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Whether `ca_file` replaces the system roots (default) or is added to them.
    #[serde(default)]
    pub ca_mode: Option<CaMode>,
    /// The name sent as SNI and checked against the vendor's certificate, when it is not the
    /// base URL's host (an IP address, a load balancer's name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM certificate (leaf first, then any intermediates) for vendors that require mTLS.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file` (unencrypted; keep the file private).
    #[serde(default)]
    pub client_key_file: Option<String>,
    /// Lowest TLS version accepted: `1.2` (default) or `1.3`.
    #[serde(default)]
    pub min_version: Option<VersionValue>,
}

/// What `ca_file` does to the system roots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaMode {
    /// Only `ca_file` is trusted for this connection.
    #[default]
    Replace,
    /// `ca_file` and the system roots are trusted.
    Add,
}

/// `min_version` as written: YAML reads an unquoted `1.2` as a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum VersionValue {
    Number(f64),
    Text(String),
}

/// `min_version` as a version floor: `1.2`, `1.3`, `TLSv1.3`, …
fn parse_version(value: &VersionValue) -> Option<TlsVersion> {
    let text = match value {
        VersionValue::Number(n) => format!("{n}"),
        VersionValue::Text(s) => s.trim().to_ascii_lowercase(),
    };
    match text.trim_start_matches("tlsv").trim_start_matches("tls") {
        "1.2" => Some(TlsVersion::Tls12),
        "1.3" => Some(TlsVersion::Tls13),
        _ => None,
    }
}

/// Where a connection's `tls:` block sits, for errors and warnings.
pub(super) struct Place<'a> {
    /// The connections file.
    pub file: &'a Path,
    /// `tenants.<tenant>.<connection>`.
    pub key: &'a str,
}

impl Place<'_> {
    fn error(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, format!("{}.tls.{key}", self.key), reason)
    }

    fn warning(&self, key: &str, reason: impl Into<String>) -> ConfigWarning {
        ConfigWarning {
            file: self.file.to_path_buf(),
            key: format!("{}.{key}", self.key),
            reason: reason.into(),
        }
    }
}

/// Check and load a connection's `tls:` block. File paths are relative to the connections
/// file's folder; every file read is added to `files` (watched for reloads, hashed in
/// `/admin/config`). `system_roots` is asked only for `ca_mode: add`.
pub(super) fn build(
    tls: Option<&TlsFile>,
    base: &BaseUrl,
    place: &Place<'_>,
    files: &mut Vec<FileHash>,
    warnings: &mut Vec<ConfigWarning>,
    system_roots: &mut dyn FnMut() -> Result<Vec<X509>, String>,
) -> Result<TlsSettings, ConfigError> {
    let dir = place.file.parent().unwrap_or(Path::new("."));
    let Some(tls) = tls else {
        if base.tls && base.host.parse::<std::net::IpAddr>().is_ok() {
            warnings.push(place.warning(
                "base_url",
                "an https base URL with an IP address: the vendor's certificate is checked \
                 against a DNS name; set tls.server_name to the name in its certificate",
            ));
        }
        return Ok(TlsSettings::default());
    };
    if !base.tls {
        return Err(ConfigError::new(
            place.file,
            format!("{}.tls", place.key),
            "TLS settings need an https base_url",
        ));
    }

    let ca = match (&tls.ca_file, tls.ca_mode) {
        (None, Some(_)) => return Err(place.error("ca_mode", "needs ca_file")),
        (None, None) => None,
        (Some(file), mode) => {
            let (path, pem) = read(dir, file, |r| place.error("ca_file", r), files)?;
            let mut certs = parse_certs(&pem)
                .map_err(|r| place.error("ca_file", format!("{}: {r}", path.display())))?;
            for cert in &certs {
                if let Some(problem) = validity_problem(cert, 0) {
                    warnings.push(place.warning(
                        "tls.ca_file",
                        format!("{}: CA {} {problem}", path.display(), subject(cert)),
                    ));
                }
            }
            if mode.unwrap_or_default() == CaMode::Add {
                let roots = system_roots().map_err(|r| place.error("ca_mode", r))?;
                certs.extend(roots);
            }
            Some(Arc::new(certs.into_boxed_slice()))
        }
    };

    let server_name = match &tls.server_name {
        None => None,
        Some(name) => Some(check_server_name(name).map_err(|r| place.error("server_name", r))?),
    };
    if server_name.is_none() && base.host.parse::<std::net::IpAddr>().is_ok() {
        warnings.push(place.warning(
            "tls.server_name",
            "the base URL's host is an IP address and the vendor's certificate is checked \
             against a DNS name; set server_name to the name in its certificate",
        ));
    }

    let client_cert_key = match (&tls.client_cert_file, &tls.client_key_file) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(place.error("client_key_file", "required with client_cert_file"))
        }
        (None, Some(_)) => {
            return Err(place.error("client_cert_file", "required with client_key_file"))
        }
        (Some(cert_file), Some(key_file)) => {
            let (cert_path, cert_pem) = read(
                dir,
                cert_file,
                |r| place.error("client_cert_file", r),
                files,
            )?;
            let chain = parse_certs(&cert_pem).map_err(|r| {
                place.error("client_cert_file", format!("{}: {r}", cert_path.display()))
            })?;
            let (key_path, key_pem) =
                read(dir, key_file, |r| place.error("client_key_file", r), files)?;
            let key = parse_key(&key_pem).map_err(|r| {
                place.error("client_key_file", format!("{}: {r}", key_path.display()))
            })?;
            let leaf = &chain[0];
            let matches = leaf.public_key().is_ok_and(|public| public.public_eq(&key));
            if !matches {
                return Err(place.error(
                    "client_key_file",
                    format!(
                        "{}: this key does not belong to the certificate in {}",
                        key_path.display(),
                        cert_path.display()
                    ),
                ));
            }
            if let Some(problem) = validity_problem(leaf, EXPIRY_WARNING_DAYS) {
                warnings.push(place.warning(
                    "tls.client_cert_file",
                    format!("{}: {} {problem}", cert_path.display(), subject(leaf)),
                ));
            }
            Some(Arc::new(CertKey::new(chain, key)))
        }
    };

    let min_version = match &tls.min_version {
        None => TlsVersion::default(),
        Some(value) => parse_version(value)
            .ok_or_else(|| place.error("min_version", "use \"1.2\" or \"1.3\""))?,
    };

    let mut settings = TlsSettings {
        ca,
        client_cert_key,
        server_name,
        min_version,
        pool_key: 0,
    };
    settings.pool_key = pool_key(&settings, tls.ca_mode.unwrap_or_default());
    Ok(settings)
}

/// Read a file named in the config, relative to `dir`; remember its hash.
fn read(
    dir: &Path,
    name: &str,
    error: impl Fn(String) -> ConfigError,
    files: &mut Vec<FileHash>,
) -> Result<(PathBuf, Vec<u8>), ConfigError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| error(format!("{}: {e}", path.display())))?;
    files.push(FileHash {
        path: path.clone(),
        sha256: sha256_hex(&bytes),
    });
    Ok((path, bytes))
}

/// Every certificate in a PEM file; at least one.
fn parse_certs(pem: &[u8]) -> Result<Vec<X509>, String> {
    let certs = X509::stack_from_pem(pem).map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_owned());
    }
    Ok(certs)
}

/// An unencrypted PEM private key. Never prompts for a passphrase (OpenSSL would, on a
/// terminal, for an encrypted key) and never quotes the file.
fn parse_key(pem: &[u8]) -> Result<PKey<Private>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED") {
        return Err(
            "an encrypted private key; give switchboard an unencrypted key file \
                    readable only by its user"
                .to_owned(),
        );
    }
    PKey::private_key_from_pem_callback(pem, |_| Ok(0))
        .map_err(|_| "no PEM private key (PKCS#8, RSA or EC) in the file".to_owned())
}

/// A DNS name for SNI and verification: letters, digits, '-', '.', and a leading `*.` never.
fn check_server_name(name: &str) -> Result<String, String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!(
            "{name:?} is not a DNS name (such as desk.acme.example)"
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(
            "an IP address cannot be verified by name; use the DNS name in the \
                    vendor's certificate"
                .to_owned(),
        );
    }
    Ok(name)
}

/// `Some("expired on …")` when `cert` is outside its validity period now or within `days`.
fn validity_problem(cert: &X509, days: u32) -> Option<String> {
    let now = Asn1Time::days_from_now(0).ok()?;
    let soon = Asn1Time::days_from_now(days).ok()?;
    if cert.not_after() < now {
        return Some(format!("expired on {}", cert.not_after()));
    }
    if cert.not_before() > now {
        return Some(format!("is not valid before {}", cert.not_before()));
    }
    if cert.not_after() < soon {
        return Some(format!("expires on {}", cert.not_after()));
    }
    None
}

/// `CN=…` of a certificate, for warnings.
fn subject(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .map(|e| format!("CN={}", String::from_utf8_lossy(e.data().as_slice())))
        .unwrap_or_else(|| "(no CN)".to_owned())
}

/// Hash of everything that decides how a session is made and verified.
fn pool_key(settings: &TlsSettings, mode: CaMode) -> u64 {
    let mut h = Sha256::new();
    let mut der = |cert: &X509| {
        if let Ok(d) = cert.digest(MessageDigest::sha256()) {
            h.update(d);
        }
    };
    for cert in settings.ca.iter().flat_map(|c| c.iter()) {
        der(cert);
    }
    if let Some(ck) = &settings.client_cert_key {
        der(ck.leaf());
        for cert in ck.intermediates() {
            der(cert);
        }
    }
    h.update(format!(
        "|{mode:?}|{:?}|{}|client:{}",
        settings.server_name,
        settings.min_version.as_str(),
        settings.client_cert_key.is_some()
    ));
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 0 is the default settings' group.
    u64::from_be_bytes(first).max(1)
}

/// The system's trust anchors, as pingora's default store finds them (`SSL_CERT_FILE` /
/// `SSL_CERT_DIR`, else the distribution's bundle), for `ca_mode: add`.
pub fn system_roots() -> Result<Vec<X509>, String> {
    let probe = openssl_probe::probe();
    let mut certs = Vec::new();
    if let Some(file) = &probe.cert_file {
        let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        certs = X509::stack_from_pem(&pem).map_err(|e| format!("{}: {e}", file.display()))?;
    } else if let Some(dir) = &probe.cert_dir {
        let mut seen = std::collections::BTreeSet::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Ok(pem) = std::fs::read(&path) else {
                continue;
            };
            for cert in X509::stack_from_pem(&pem).unwrap_or_default() {
                let digest = cert
                    .digest(MessageDigest::sha256())
                    .map(|d| d.to_vec())
                    .unwrap_or_default();
                if seen.insert(digest) {
                    certs.push(cert);
                }
            }
        }
    }
    if certs.is_empty() {
        return Err(
            "ca_mode: add, but no system CA bundle was found (set SSL_CERT_FILE, or \
                    install ca-certificates)"
                .to_owned(),
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version_takes_numbers_and_strings() {
        let parse = |v: VersionValue| parse_version(&v);
        assert_eq!(parse(VersionValue::Number(1.2)), Some(TlsVersion::Tls12));
        assert_eq!(parse(VersionValue::Number(1.3)), Some(TlsVersion::Tls13));
        assert_eq!(
            parse(VersionValue::Text("TLSv1.3".into())),
            Some(TlsVersion::Tls13)
        );
        assert_eq!(parse(VersionValue::Text("1.1".into())), None);
        assert_eq!(parse(VersionValue::Number(1.0)), None);
    }

    #[test]
    fn server_names_are_dns_names() {
        assert_eq!(
            check_server_name("Desk.Acme.Example.").unwrap(),
            "desk.acme.example"
        );
        assert!(check_server_name("").is_err());
        assert!(check_server_name("https://desk").is_err());
        assert!(check_server_name("desk:443").is_err());
        assert!(check_server_name("127.0.0.1").is_err());
        assert!(check_server_name("a b").is_err());
    }
}

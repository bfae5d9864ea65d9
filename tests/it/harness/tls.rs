//! Certificates made by the tests themselves (OpenSSL, the library pingora links): a test CA,
//! server certificates for a name, expired ones, client certificates for mTLS; written as PEM.

// Test helpers fail loudly: a broken fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

/// A certificate with its private key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Issued {
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("cert pem")
    }
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("key pem")
    }
    /// Write `<stem>.crt` and `<stem>.key` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, self.cert_pem()).expect("write cert");
        std::fs::write(&key, self.key_pem()).expect("write key");
        (cert, key)
    }
}

fn new_key() -> PKey<Private> {
    PKey::ec_gen("prime256v1").expect("EC key")
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut bn = BigNum::new().expect("bignum");
    bn.rand(120, MsbOption::MAYBE_ZERO, false).expect("rand");
    bn.to_asn1_integer().expect("serial")
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().expect("name");
    n.append_entry_by_text("CN", cn).expect("CN");
    n.append_entry_by_text("O", "switchboard tests").expect("O");
    n.build()
}

/// Validity in days relative to now (negative = in the past).
fn time(days: i64) -> Asn1Time {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    Asn1Time::from_unix(now + days * 86_400).expect("time")
}

/// A self-signed certificate authority.
pub fn ca(cn: &str) -> Issued {
    let key = new_key();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&serial()).expect("serial");
    let n = name(cn);
    b.set_subject_name(&n).expect("subject");
    b.set_issuer_name(&n).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&time(-1)).expect("nb");
    b.set_not_after(&time(365)).expect("na");
    b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    Issued {
        cert: b.build(),
        key,
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

/// A leaf certificate for `dns_name`, signed by `ca`, valid from `from_days` to `to_days`
/// (relative to now).
pub fn leaf(ca: &Issued, dns_name: &str, usage: Usage, from_days: i64, to_days: i64) -> Issued {
    let key = new_key();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&serial()).expect("serial");
    b.set_subject_name(&name(dns_name)).expect("subject");
    b.set_issuer_name(ca.cert.subject_name()).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&time(from_days)).expect("nb");
    b.set_not_after(&time(to_days)).expect("na");
    b.append_extension(BasicConstraints::new().build().expect("bc"))
        .expect("bc");
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    let eku = match usage {
        Usage::Server => ExtendedKeyUsage::new().server_auth().build(),
        Usage::Client => ExtendedKeyUsage::new().client_auth().build(),
    };
    b.append_extension(eku.expect("eku")).expect("eku");
    let ctx = b.x509v3_context(Some(&ca.cert), None);
    let san = SubjectAlternativeName::new()
        .dns(dns_name)
        .build(&ctx)
        .expect("san");
    b.append_extension(san).expect("san");
    b.sign(&ca.key, MessageDigest::sha256()).expect("sign");
    Issued {
        cert: b.build(),
        key,
    }
}

/// A server certificate for `dns_name`, valid for a year.
pub fn server(ca: &Issued, dns_name: &str) -> Issued {
    leaf(ca, dns_name, Usage::Server, -1, 365)
}

/// A client certificate (mTLS) for `cn`, valid for a year.
pub fn client(ca: &Issued, cn: &str) -> Issued {
    leaf(ca, cn, Usage::Client, -1, 365)
}

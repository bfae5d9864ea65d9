//! HTTPS for sandboxes: a vendor sandbox can serve TLS with any certificate a test makes
//! (a private CA, a wrong name, an expired one), optionally demand a client certificate (mTLS)
//! or cap the protocol at TLS 1.2 — the situations the gateway's per-connection `tls` settings
//! are for. OpenSSL (through tokio-openssl), the same library the gateway's client uses.

use std::io;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

/// A sandbox's TLS server side. Cheap to clone.
#[derive(Clone)]
pub struct SandboxTls {
    pub(super) acceptor: Arc<SslAcceptor>,
}

impl std::fmt::Debug for SandboxTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SandboxTls")
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("sandbox TLS: {what}: {e}"),
    )
}

impl SandboxTls {
    /// Serve `cert_chain_pem` (leaf first, then intermediates) with `key_pem`.
    pub fn new(cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<SandboxTls> {
        Ok(Self::builder(cert_chain_pem, key_pem)?.build())
    }

    pub fn builder(cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<SandboxTlsBuilder> {
        let chain = X509::stack_from_pem(cert_chain_pem).map_err(|e| invalid("certificate", e))?;
        let key = PKey::private_key_from_pem(key_pem).map_err(|e| invalid("key", e))?;
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(|e| invalid("acceptor", e))?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| invalid("certificate", "no certificate in the PEM"))?;
        builder
            .set_certificate(leaf)
            .map_err(|e| invalid("certificate", e))?;
        for cert in intermediates {
            builder
                .add_extra_chain_cert(cert.clone())
                .map_err(|e| invalid("chain", e))?;
        }
        builder
            .set_private_key(&key)
            .map_err(|e| invalid("key", e))?;
        builder.check_private_key().map_err(|e| invalid("key", e))?;
        Ok(SandboxTlsBuilder { builder })
    }
}

/// Options of a [`SandboxTls`].
pub struct SandboxTlsBuilder {
    builder: SslAcceptorBuilder,
}

impl SandboxTlsBuilder {
    /// Demand a client certificate issued by one of the CAs in `ca_pem` (mTLS); a client
    /// without one fails the handshake.
    pub fn require_client_certificate(mut self, ca_pem: &[u8]) -> io::Result<Self> {
        let mut store = X509StoreBuilder::new().map_err(|e| invalid("client CA", e))?;
        for cert in X509::stack_from_pem(ca_pem).map_err(|e| invalid("client CA", e))? {
            store.add_cert(cert).map_err(|e| invalid("client CA", e))?;
        }
        self.builder
            .set_verify_cert_store(store.build())
            .map_err(|e| invalid("client CA", e))?;
        self.builder
            .set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        Ok(self)
    }

    /// Speak TLS 1.2 at most (a vendor that has not moved to 1.3).
    pub fn max_tls12(mut self) -> io::Result<Self> {
        self.builder
            .set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| invalid("version", e))?;
        Ok(self)
    }

    pub fn build(self) -> SandboxTls {
        SandboxTls {
            acceptor: Arc::new(self.builder.build()),
        }
    }
}

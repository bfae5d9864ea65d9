//! The upstream side of a streamed (proxied) call: the peer pingora's proxy phases connect to,
//! and what a pingora error met on the way means as a [`CallError`]. The same resolver, TLS
//! settings, pool groups and failure vocabulary as the pooled client's calls
//! ([`VendorClient::send`]), so a passthrough call fails with the same words a translated one
//! does.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

use super::client::{CONNECT_TIMEOUT, POOL_IDLE};
use super::tls::{self as vendor_tls, TlsSettings};
use super::{BaseUrl, CallError, VendorClient};

/// Where one streamed call goes: the peer, and what a failure diagnosis needs.
#[derive(Debug, Clone)]
pub struct ProxyPeer {
    pub peer: HttpPeer,
    pub addr: SocketAddr,
}

impl VendorClient {
    /// The peer for one streamed call to `base`: resolved through the client's DNS cache, with
    /// the connection's TLS settings and pool group. `timeout` bounds the connect and every
    /// single read or write (an idle vendor), not the whole transfer: a large download takes
    /// as long as it takes while bytes keep moving.
    pub async fn proxy_peer(
        &self,
        base: &BaseUrl,
        tls: &TlsSettings,
        timeout: Duration,
    ) -> Result<ProxyPeer, CallError> {
        let addr = self.resolve(&base.host, base.port).await?;
        let mut peer = vendor_tls::vendor_peer(addr, base, tls);
        let connect = CONNECT_TIMEOUT.min(timeout);
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect);
        peer.options.read_timeout = Some(timeout);
        peer.options.write_timeout = Some(timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        Ok(ProxyPeer { peer, addr })
    }

    /// What `error`, met while proxying to `peer`, means as a vendor call failure; `None` when
    /// it is not the vendor's doing (the client went away, the gateway refused the body).
    /// Connect failures get the same classification (and certificate diagnosis) as the pooled
    /// client's.
    pub async fn proxy_failure(
        &self,
        error: &pingora::Error,
        peer: &ProxyPeer,
        base: &BaseUrl,
        tls: &TlsSettings,
    ) -> Option<CallError> {
        if error.esource() != &pingora::ErrorSource::Upstream {
            return None;
        }
        Some(match error.etype() {
            ErrorType::ConnectTimedout => CallError::Timeout(
                peer.peer
                    .options
                    .connection_timeout
                    .unwrap_or(CONNECT_TIMEOUT),
            ),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                CallError::Timeout(peer.peer.options.read_timeout.unwrap_or(CONNECT_TIMEOUT))
            }
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::ConnectProxyFailure
            | ErrorType::BindError
            | ErrorType::SocketError
            | ErrorType::InvalidCert
            | ErrorType::TLSHandshakeFailure
            | ErrorType::TLSHandshakeTimedout
            | ErrorType::TLSWantX509Lookup
            | ErrorType::HandshakeError => {
                self.connect_error(error, &peer.peer, peer.addr, base, tls)
                    .await
            }
            _ => match vendor_tls::classify_io(error) {
                Some(tls_error) => CallError::Tls(tls_error),
                None => CallError::Io(error.to_string()),
            },
        })
    }
}

/// `Err` when a new TLS session with the vendor negotiated a version below `tls.min_version`
/// (the pooled client makes the same check before writing a request).
pub fn check_tls_version(negotiated: Option<&str>, tls: &TlsSettings) -> Result<(), CallError> {
    vendor_tls::check_version(negotiated, tls.min_version).map_err(CallError::Tls)
}

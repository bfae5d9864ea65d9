//! The floor under switchboard's proxy path: pingora's own proxy with nothing of switchboard
//! in it (no token, no route, no metrics, no access log) — `upstream_peer` names the vendor
//! and `upstream_request_filter` sets its credentials. `scripts/bench.sh` runs it beside
//! nginx so the table shows how much of the gap is the framework's and how much is ours.
//!
//! `cargo run --release --example bare_proxy -- LISTEN VENDOR_ADDR AUTHORIZATION [THREADS]`;
//! `GET /direct` is answered without a vendor call (the floor under a cache hit).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// About the size of a normalized conversation.
const DIRECT_BODY: &[u8] = br#"{"id":"cv_WyJiZW5jaCIsImxpYnJlZGVzayIsIjAxOTI4Yjc0LTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMSJd","status":"open","subject":"Order 1234 never arrived","channel":"email","contact_id":"ct_WyJiZW5jaCIsImxpYnJlZGVzayIsIjQyIl0","assignee_id":null,"tags":["shipping","urgent"],"created_at":"2025-01-01T10:00:00Z","updated_at":"2025-01-02T10:00:00Z","last_message_at":"2025-01-02T10:00:00Z"}"#;

struct Bare {
    vendor: String,
    authorization: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    /// `GET /direct`: answered by the proxy itself with a small JSON body, the floor under a
    /// cache hit (no vendor call).
    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.req_header().uri.path() != "/direct" {
            return Ok(false);
        }
        let body = bytes::Bytes::from_static(DIRECT_BODY);
        let mut header = ResponseHeader::build(200, Some(2))?;
        header.insert_header("content-type", "application/json")?;
        header.insert_header("content-length", body.len())?;
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.vendor.as_str(),
            false,
            String::new(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        request.insert_header("authorization", self.authorization.as_str())?;
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, vendor, authorization, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bare_proxy LISTEN VENDOR_ADDR AUTHORIZATION [THREADS]");
        std::process::exit(2);
    };
    let threads = rest.first().and_then(|t| t.parse().ok()).unwrap_or(2);
    let conf = ServerConf {
        threads,
        // As switchboard runs: pingora's no-steal runtime.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            vendor: vendor.clone(),
            authorization: authorization.clone(),
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}

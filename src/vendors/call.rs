//! One vendor call as an adapter describes it ([`VendorCall`]: path placeholders, query,
//! body) and its translation into the upstream client's request: the routes file's method
//! and path template, the connection's base URL prefix, defaults and auth header.

use crate::snapshot::routes::Endpoint;
use crate::snapshot::Connection;
use crate::upstream::{CallError, UpstreamRequest, VendorBody};

/// One vendor call: path placeholders, query string, body.
#[derive(Debug, Clone, Default)]
pub struct VendorCall {
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(&'static str, String)>,
    pub body: VendorBody,
}

impl VendorCall {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.params.push((name, value.into()));
        self
    }
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: VendorBody) -> Self {
        self.body = body;
        self
    }
}

/// The request for `call` to `endpoint` of `connection`: the path template filled from the
/// call's params, then the connection's defaults; the query form-encoded; the request id
/// (when it is a valid header value) and the connection's auth header.
pub(super) fn upstream_request(
    connection: &Connection,
    endpoint: &Endpoint,
    call: VendorCall,
    request_id: &str,
) -> Result<UpstreamRequest, CallError> {
    let path = endpoint
        .path
        .render(|name| {
            call.params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| connection.default_string(name))
        })
        .map_err(CallError::Target)?;
    let mut target = format!("{}{}", connection.base_url.path_prefix, path);
    if !call.query.is_empty() {
        target.push('?');
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &call.query {
            query.append_pair(k, v);
        }
        target.push_str(&query.finish());
    }
    let mut headers = Vec::with_capacity(2);
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        headers.push((http::HeaderName::from_static("x-request-id"), v));
    }
    headers.push(connection.auth_header.clone());
    Ok(UpstreamRequest {
        method: endpoint.method.clone(),
        target,
        headers,
        body: call.body,
    })
}

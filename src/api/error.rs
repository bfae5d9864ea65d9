//! The one place where any failure becomes a status code and a problem+json body (RFC 9457).

use std::sync::Arc;

use serde::Serialize;

use super::operation::Vendor;

/// The stable error words of docs/api.md. The same word is used in responses, logs and the
/// `code` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InvalidRequest,
    UnsupportedFilter,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    HeaderTooLarge,
    UnsupportedOperation,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    IdempotencyUnavailable,
    RateLimited,
    VendorRateLimited,
    VendorAuthFailed,
    VendorError,
    VendorBadResponse,
    VendorTimeout,
    VendorUnavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the error table.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidRequest,
        ErrorCode::UnsupportedFilter,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RequestTimeout,
        ErrorCode::HeaderTooLarge,
        ErrorCode::UnsupportedOperation,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyInProgress,
        ErrorCode::IdempotencyUnavailable,
        ErrorCode::RateLimited,
        ErrorCode::VendorRateLimited,
        ErrorCode::VendorAuthFailed,
        ErrorCode::VendorError,
        ErrorCode::VendorBadResponse,
        ErrorCode::VendorTimeout,
        ErrorCode::VendorUnavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnsupportedFilter => "unsupported_filter",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::HeaderTooLarge => "header_too_large",
            ErrorCode::UnsupportedOperation => "unsupported_operation",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::IdempotencyInProgress => "idempotency_in_progress",
            ErrorCode::IdempotencyUnavailable => "idempotency_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::VendorRateLimited => "vendor_rate_limited",
            ErrorCode::VendorAuthFailed => "vendor_auth_failed",
            ErrorCode::VendorError => "vendor_error",
            ErrorCode::VendorBadResponse => "vendor_bad_response",
            ErrorCode::VendorTimeout => "vendor_timeout",
            ErrorCode::VendorUnavailable => "vendor_unavailable",
            ErrorCode::Internal => "internal_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::InvalidRequest | ErrorCode::UnsupportedFilter => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::HeaderTooLarge => 431,
            ErrorCode::UnsupportedOperation => 501,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::IdempotencyInProgress => 409,
            ErrorCode::IdempotencyUnavailable => 503,
            ErrorCode::RateLimited | ErrorCode::VendorRateLimited => 429,
            ErrorCode::VendorAuthFailed | ErrorCode::VendorError | ErrorCode::VendorBadResponse => {
                502
            }
            ErrorCode::VendorTimeout => 504,
            ErrorCode::VendorUnavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::UnsupportedFilter => "Unsupported filter",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::HeaderTooLarge => "Request header too large",
            ErrorCode::UnsupportedOperation => "Unsupported operation",
            ErrorCode::IdempotencyKeyReused => "Idempotency key reused",
            ErrorCode::IdempotencyInProgress => "Idempotent request in progress",
            ErrorCode::IdempotencyUnavailable => "Idempotency store unavailable",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::VendorRateLimited => "Vendor rate limited",
            ErrorCode::VendorAuthFailed => "Vendor authentication failed",
            ErrorCode::VendorError => "Vendor error",
            ErrorCode::VendorBadResponse => "Vendor bad response",
            ErrorCode::VendorTimeout => "Vendor timeout",
            ErrorCode::VendorUnavailable => "Vendor unavailable",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// Any failure of a request, already classified. `detail` is written for the caller and must
/// never contain a credential, a token or an internal address.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub vendor: Option<Vendor>,
    pub vendor_status: Option<u16>,
    pub retry_after: Option<u64>,
    /// What failed underneath (a vendor call's `upstream::CallError`, …), kept for the log:
    /// the gateway's `logging` phase writes it once per request (it may name an internal
    /// address, so it never reaches the problem body). Building an `ApiError` logs nothing.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// The methods the resource allows, sent as `Allow` with a 405.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            vendor: None,
            vendor_status: None,
            retry_after: None,
            cause: None,
            allow: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, detail)
    }
    pub fn unsupported_filter(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedFilter, detail)
    }
    pub fn unsupported_operation(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedOperation, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, detail)
    }

    /// An error caused by a vendor's answer (or lack of one).
    pub fn vendor(code: ErrorCode, vendor: Vendor, detail: impl Into<String>) -> Self {
        ApiError {
            vendor: Some(vendor),
            ..Self::new(code, detail)
        }
    }

    pub fn with_vendor_status(mut self, status: u16) -> Self {
        self.vendor_status = Some(status);
        self
    }

    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    pub fn with_allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The RFC 9457 body for this error.
    pub fn to_problem(&self, request_id: &str) -> Problem<'_> {
        Problem {
            type_: format!(
                "https://switchboard.dev/problems/{}",
                self.code.as_str().replace('_', "-")
            ),
            title: self.code.title(),
            status: self.status(),
            detail: &self.detail,
            code: self.code.as_str(),
            request_id: request_id.to_owned(),
            vendor: self.vendor.map(Vendor::as_str),
            vendor_status: self.vendor_status,
            retry_after: self.retry_after,
        }
    }
}

/// The problem+json body. Field order follows docs/api.md.
#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: &'a str,
    pub code: &'static str,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_carries_code_status_and_request_id() {
        let err = ApiError::vendor(ErrorCode::VendorRateLimited, Vendor::Libredesk, "slow down")
            .with_vendor_status(429)
            .with_retry_after(Some(7));
        let body = serde_json::to_value(err.to_problem("req-1")).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["code"], "vendor_rate_limited");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["vendor"], "libredesk");
        assert_eq!(body["vendor_status"], 429);
        assert_eq!(body["retry_after"], 7);
    }

    #[test]
    fn optional_fields_are_omitted() {
        let body = serde_json::to_value(ApiError::not_found("no").to_problem("r")).unwrap();
        assert!(body.get("vendor").is_none());
        assert!(body.get("retry_after").is_none());
        assert_eq!(body["status"], 404);
    }
}

#[cfg(test)]
mod completeness {
    use super::ErrorCode;

    /// Adding a variant without listing it in `ErrorCode::ALL` fails here (the match is
    /// exhaustive), so the docs tests that read `ALL` see every code.
    #[test]
    fn all_lists_every_code_once() {
        let position = |c: ErrorCode| match c {
            ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::InvalidRequest
            | ErrorCode::UnsupportedFilter
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::RequestTimeout
            | ErrorCode::HeaderTooLarge
            | ErrorCode::UnsupportedOperation
            | ErrorCode::IdempotencyKeyReused
            | ErrorCode::IdempotencyInProgress
            | ErrorCode::IdempotencyUnavailable
            | ErrorCode::RateLimited
            | ErrorCode::VendorRateLimited
            | ErrorCode::VendorAuthFailed
            | ErrorCode::VendorError
            | ErrorCode::VendorBadResponse
            | ErrorCode::VendorTimeout
            | ErrorCode::VendorUnavailable
            | ErrorCode::Internal => ErrorCode::ALL.iter().position(|x| *x == c),
        };
        for code in ErrorCode::ALL {
            assert!(position(*code).is_some());
        }
        let mut words: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        words.sort();
        words.dedup();
        assert_eq!(words.len(), ErrorCode::ALL.len());
        assert_eq!(
            ErrorCode::ALL.len(),
            22,
            "a new code: add it to ALL and the docs"
        );
    }
}

//! The one error type of the HTTP surface and its OpenAI-shaped envelope:
//! `{"error":{"message","type","param","code"}}` ([`ErrorEnvelope`], built only here). Every
//! failure, actix's own included (see [`json_error_handler`] and [`rewrite_plain_errors`]),
//! leaves through here; a 402 adds the invoice to pay. Storage errors become a 503 through the
//! `From<DbError>` impl below.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::api::views::InvoiceView;

/// The OpenAI error object (the value under `"error"`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: &'static str,
}

/// Every error body the gateway writes: `{"error": …}`, and for a 402 the invoice to pay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope<'a> {
    pub error: ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice: Option<&'a InvoiceView>,
}

impl ErrorEnvelope<'_> {
    pub fn of(error: ErrorBody) -> Self {
        ErrorEnvelope {
            error,
            invoice: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
        code: &'static str,
    },
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key without the right to do this (a `use` key on a management call).
    #[error("{0}")]
    Forbidden(String),
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    NotFoundCode {
        message: String,
        param: Option<&'static str>,
        code: &'static str,
    },
    #[error("Request body is larger than the limit of {0} bytes.")]
    TooLarge(usize),
    /// The client did not send its body in time (`server.body_timeout`).
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{message}")]
    /// `limit` adds the `x-ratelimit-*-requests` headers (per-key RPM).
    RateLimited {
        message: String,
        retry_after_secs: u64,
        limit: Option<u32>,
    },
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after_secs: u64,
    },
    /// `invoice` is the fund invoice (the fields of `POST /api/wallet/fund`) the 402 carries.
    #[error("{message}")]
    PaymentRequired {
        message: String,
        invoice: Option<Box<InvoiceView>>,
    },
    #[error("{0}")]
    UpstreamFailed(String),
    #[error("{0}")]
    UpstreamTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: None,
            code: "invalid_request",
        }
    }

    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: Some(param),
            code: "invalid_request",
        }
    }

    /// The same error answered as a 404 (unknown or foreign invoice, say).
    pub fn into_not_found(self) -> Self {
        match self {
            ApiError::BadRequest {
                message,
                param,
                code,
            } => ApiError::NotFoundCode {
                message,
                param,
                code,
            },
            other => other,
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    /// A body extractor's failure (`web::Bytes`): 413 over `limit`, 408 past the body
    /// deadline, 400 otherwise.
    pub fn from_body(e: &actix_web::Error, limit: usize) -> Self {
        match e.as_error::<PayloadError>() {
            Some(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::RequestTimeout(io.to_string())
            }
            _ if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(limit)
            }
            _ => ApiError::bad_request(format!("Invalid request body: {e}")),
        }
    }

    fn kind_and_code(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => ("invalid_request_error", code),
            ApiError::Unauthorized(_) => ("authentication_error", "invalid_api_key"),
            ApiError::Forbidden(_) => ("permission_error", "insufficient_permissions"),
            ApiError::ModelNotFound(_) => ("invalid_request_error", "model_not_found"),
            ApiError::NotFound(_) => ("invalid_request_error", "not_found"),
            ApiError::NotFoundCode { code, .. } => ("invalid_request_error", code),
            ApiError::TooLarge(_) => ("invalid_request_error", "request_too_large"),
            ApiError::RequestTimeout(_) => ("invalid_request_error", "request_timeout"),
            ApiError::RateLimited { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            ApiError::QuotaExceeded { .. } => ("insufficient_quota", "insufficient_quota"),
            ApiError::PaymentRequired { .. } => ("payment_required", "payment_required"),
            ApiError::UpstreamFailed(_) => ("upstream_error", "upstream_failed"),
            ApiError::UpstreamTimeout(_) => ("upstream_error", "upstream_timeout"),
            ApiError::Unavailable(_) => ("api_error", "unavailable"),
            ApiError::Internal(_) => ("api_error", "internal_error"),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { param, .. } | ApiError::NotFoundCode { param, .. } => *param,
            ApiError::ModelNotFound(_) => Some("model"),
            ApiError::TooLarge(_) => None,
            _ => None,
        }
    }

    /// The OpenAI error object (the value under `"error"`).
    pub fn body(&self) -> ErrorBody {
        let (kind, code) = self.kind_and_code();
        ErrorBody {
            message: self.to_string(),
            kind,
            param: self.param(),
            code,
        }
    }

    /// The whole JSON body of this error.
    pub fn envelope(&self) -> ErrorEnvelope<'_> {
        let invoice = match self {
            ApiError::PaymentRequired { invoice, .. } => invoice.as_deref(),
            _ => None,
        };
        ErrorEnvelope {
            error: self.body(),
            invoice,
        }
    }
}

/// A database that cannot be reached is a 503: the client may retry, nothing was served.
impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::Unavailable(format!("Database unavailable: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) | ApiError::NotFoundCode { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            log::error!("internal error: {e}");
        }
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self {
            ApiError::RateLimited {
                retry_after_secs,
                limit,
                ..
            } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
                if let Some(limit) = limit {
                    resp.insert_header(("x-ratelimit-limit-requests", limit.to_string()));
                    resp.insert_header(("x-ratelimit-remaining-requests", "0"));
                    resp.insert_header((
                        "x-ratelimit-reset-requests",
                        format!("{retry_after_secs}s"),
                    ));
                }
            }
            ApiError::QuotaExceeded {
                retry_after_secs, ..
            } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        if let ApiError::PaymentRequired {
            invoice: Some(invoice),
            ..
        } = self
        {
            // An L402-style challenge: the invoice to pay to be let in (no macaroon yet).
            resp.insert_header((
                header::WWW_AUTHENTICATE,
                format!("L402 invoice=\"{}\"", invoice.payment_request),
            ));
        }
        resp.json(self.envelope())
    }
}

/// What the body stream yields when the body deadline passes (see `routes::limits`).
pub fn body_timed_out(timeout: std::time::Duration) -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "The request body was not received within {} s.",
            timeout.as_secs_f64()
        ),
    ))
}

/// `JsonConfig::error_handler`: bad JSON, wrong content type and oversize bodies become our envelope.
pub fn json_error_handler(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    json_error(&err).into()
}

/// A JSON body's failure as our error: 413, 408 past the body deadline, or 400.
pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::TooLarge(*limit),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::TooLarge(0),
        JsonPayloadError::Payload(PayloadError::Io(io))
            if io.kind() == std::io::ErrorKind::TimedOut =>
        {
            ApiError::RequestTimeout(io.to_string())
        }
        JsonPayloadError::ContentType => ApiError::BadRequest {
            message: "Content-Type must be application/json.".into(),
            param: None,
            code: "invalid_content_type",
        },
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest {
            message: format!("Invalid request body: {e}"),
            param: None,
            code: "invalid_request",
        },
        other => ApiError::bad_request(format!("Invalid request body: {other}")),
    }
}

/// `QueryConfig::error_handler`: bad query strings become our envelope.
pub fn query_error_handler(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("Invalid query string: {err}")).into()
}

/// `ErrorHandlers` fallback for responses actix produced itself (404 for unknown paths,
/// 405, or any plain-text error): rewrite them into the OpenAI envelope, unless the body is
/// already JSON.
pub fn rewrite_plain_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (kind, code, message): (_, _, String) = match status {
        StatusCode::NOT_FOUND => (
            "invalid_request_error",
            "not_found",
            "Unknown path.".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "invalid_request_error",
            "method_not_allowed",
            "Method not allowed on this path.".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "invalid_request_error",
            "request_too_large",
            "Request body is too large.".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "invalid_request_error",
            "request_timeout",
            "The request was not received in time.".to_owned(),
        ),
        s if s.is_client_error() => (
            "invalid_request_error",
            "invalid_request",
            s.canonical_reason().unwrap_or("Bad request").to_owned(),
        ),
        s => (
            "api_error",
            "internal_error",
            s.canonical_reason().unwrap_or("Error").to_owned(),
        ),
    };
    let body = ErrorEnvelope::of(ErrorBody {
        message,
        kind,
        param: None,
        code,
    });
    let (req, _) = res.into_parts();
    let resp: HttpResponse<BoxBody> = HttpResponse::build(status).json(body);
    let res = ServiceResponse::new(req, resp).map_into_right_body::<B>();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice() -> InvoiceView {
        InvoiceView {
            invoice_id: "inv_1".into(),
            amount_sats: 10,
            payment_request: "lnbc1x".into(),
            lightning_url: "lightning:lnbc1x".into(),
            invoice_url: "http://gw/invoice/inv_1".into(),
            status: "pending".into(),
            expires_at: "2026-11-29T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_envelope_is_openai_shaped_and_a_402_adds_its_invoice() {
        let plain = serde_json::to_value(ApiError::bad_param("n", "bad").envelope()).expect("json");
        assert_eq!(
            plain,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error",
                "param": "n", "code": "invalid_request"}})
        );
        let e = ApiError::PaymentRequired {
            message: "pay".into(),
            invoice: Some(Box::new(invoice())),
        };
        let body = serde_json::to_value(e.envelope()).expect("json");
        assert_eq!(body["error"]["code"], "payment_required");
        assert_eq!(body["invoice"]["paymentRequest"], "lnbc1x");
        let resp = e.error_response();
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(
            resp.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("L402 invoice=\"lnbc1x\"")
        );
    }
}

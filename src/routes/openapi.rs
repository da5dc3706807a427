//! `GET /openapi.json`: the OpenAPI 3.1 document of every public path. The schemas are derived
//! (`utoipa::ToSchema`) from the very structs the handlers read and write, so they cannot drift
//! from the code; the operations are listed here in one table ([`OPS`]) rather than as
//! attributes on each handler, because what they add (auth, error statuses, the `X-Pura-*`
//! headers) is the same across most paths and reads best side by side. `scripts/schemathesis.sh`
//! checks the live gateway against this document.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, Header, OpenApi as Doc, Ref, RefOr, Required, ResponseBuilder,
};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::api::chat::ChatRequest;
use crate::api::messages as anthropic;
use crate::api::responses::{ResponseObject, ResponsesRequest};
use crate::api::views::*;
use crate::api::Usage;
use crate::error::ErrorEnvelope;
use crate::routes::{admin, health, keys, views, wallet};

/// OpenAI's `chat.completion` object as the gateway answers it (the upstream's own fields
/// pass through; these are the ones every answer has).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the body itself is the upstream's bytes
struct ChatCompletion {
    id: String,
    object: String,
    created: i64,
    model: String,
    choices: Vec<serde_json::Value>,
    usage: Option<Usage>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pura",
        description = "Self-hosted OpenAI-compatible LLM gateway: complexity routing, budgets, \
                       Lightning top-ups."
    ),
    components(schemas(
        ChatRequest,
        ChatCompletion,
        ResponsesRequest,
        ResponseObject,
        anthropic::MessagesRequest,
        anthropic::MessageResponse,
        anthropic::ErrorEnvelope,
        anthropic::ModelList,
        anthropic::TokenCount,
        ErrorEnvelope,
        CreatedKey,
        RotatedKey,
        KeyView,
        BalanceView,
        InvoiceView,
        InvoiceStatusView,
        ReportView,
        crate::api::requests::RequestsPage,
        crate::api::history::HistoryView,
        AccountView,
        AccountKeyView,
        ModelView,
        AdminKeyView,
        CreditView,
        keys::CreateKey,
        views::SettingsPatch,
        wallet::FundBody,
        admin::CreditBody,
        health::Health,
        health::Ready
    ))
)]
struct Schemas;

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    None,
    /// A key as `Authorization: Bearer`.
    Key,
    /// No auth, or a manage key (`POST /api/keys`).
    OptionalKey,
    /// A key as bearer or `x-api-key` (the Anthropic paths).
    KeyOrApiKey,
    /// The admin token as bearer.
    Admin,
}

/// What a successful answer is.
#[derive(Clone, Copy)]
enum Answer {
    Json(u16, fn() -> RefOr<Schema>),
    /// JSON, or an SSE stream when the request asked for one; with the `X-Pura-*` headers.
    Served(fn() -> RefOr<Schema>),
    Empty(u16),
    Text(&'static str),
}

struct Op {
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<fn() -> RefOr<Schema>>,
    query: &'static [(&'static str, bool)],
    answer: Answer,
    errors: &'static [u16],
}

fn r<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}
fn models() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(List::<ModelView>::schema())
        .item(r::<anthropic::ModelList>())
        .into()
}
fn admin_keys() -> RefOr<Schema> {
    List::<AdminKeyView>::schema()
}
fn text() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}
/// One event of an SSE stream, as a client parses it (the JSON travels as the `data` text).
fn sse_event() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("event", text())
        .property("data", text())
        .required("data")
        .into()
}
/// `/v1/models` answers OpenAI's errors, or Anthropic's when the client sent `anthropic-version`.
fn either_envelope() -> RefOr<Schema> {
    utoipa::openapi::schema::AnyOfBuilder::new()
        .item(r::<ErrorEnvelope>())
        .item(r::<anthropic::ErrorEnvelope>())
        .into()
}

/// Errors of a path that reads a JSON body (bad JSON, too large, too slow) and needs a key.
const BODY: &[u16] = &[400, 401, 408, 413, 503];
/// Errors of a path that only needs a key.
const KEYED: &[u16] = &[400, 401, 503];
/// Errors of a served request: the body's, money, routing and upstream failures.
const SERVED: &[u16] = &[400, 401, 402, 404, 408, 413, 429, 502, 503, 504];
const MANAGE: &[u16] = &[400, 401, 403, 404, 408, 413, 503];

const fn op(
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    auth: Auth,
    answer: Answer,
    errors: &'static [u16],
) -> Op {
    Op {
        method,
        path,
        id,
        summary,
        auth,
        body: None,
        query: &[],
        answer,
        errors,
    }
}

const fn with_body(mut o: Op, body: fn() -> RefOr<Schema>) -> Op {
    o.body = Some(body);
    o
}

const fn with_query(mut o: Op, query: &'static [(&'static str, bool)]) -> Op {
    o.query = query;
    o
}

use Answer::{Empty, Json, Served};
use Auth::{Admin, Key, KeyOrApiKey, OptionalKey};
use HttpMethod::{Delete, Get, Patch, Post};

/// Every public path of the contract, as served by `routes::configure`.
const OPS: &[Op] = &[
    op(Get, "/health", "health", "Liveness and database reachability", Auth::None,
        Json(200, r::<health::Health>), &[503]),
    op(Get, "/ready", "ready", "Readiness for load balancers", Auth::None,
        Json(200, r::<health::Ready>), &[503]),
    op(Get, "/metrics", "metrics", "Prometheus metrics", Auth::None,
        Answer::Text("text/plain"), &[503]),
    op(Get, "/openapi.json", "openapi", "This document", Auth::None,
        Answer::Text("application/json"), &[]),
    op(Get, "/", "console", "The console", Auth::None, Answer::Text("text/html"), &[]),
    op(Get, "/v1/models", "listModelsV1",
        "Models: `auto`, aliases and concrete models (Anthropic's shape with `anthropic-version`)",
        KeyOrApiKey, Json(200, models), &[401, 503]),
    op(Get, "/api/models", "listModels", "Models: `auto`, aliases and concrete models", Key,
        Json(200, models), &[401, 503]),
    with_body(op(Post, "/v1/chat/completions", "chatCompletionsV1", "OpenAI Chat Completions",
        Key, Served(r::<ChatCompletion>), SERVED), r::<ChatRequest>),
    with_body(op(Post, "/api/chat/completions", "chatCompletions", "OpenAI Chat Completions",
        Key, Served(r::<ChatCompletion>), SERVED), r::<ChatRequest>),
    with_body(op(Post, "/api/chat", "chat", "Pura chat (streams unless `stream` is false)", Key,
        Served(r::<ChatCompletion>), SERVED), r::<ChatRequest>),
    with_body(op(Post, "/v1/responses", "responsesV1", "OpenAI Responses", Key,
        Served(r::<ResponseObject>), SERVED), r::<ResponsesRequest>),
    with_body(op(Post, "/api/responses", "responses", "OpenAI Responses", Key,
        Served(r::<ResponseObject>), SERVED), r::<ResponsesRequest>),
    with_body(op(Post, "/v1/messages", "messages", "Anthropic Messages", KeyOrApiKey,
        Served(r::<anthropic::MessageResponse>), SERVED), r::<anthropic::MessagesRequest>),
    with_body(op(Post, "/v1/messages/count_tokens", "countTokens",
        "Anthropic token count (a local estimate)", KeyOrApiKey,
        Json(200, r::<anthropic::TokenCount>), BODY), r::<anthropic::MessagesRequest>),
    with_body(op(Post, "/api/keys", "createKey",
        "Mint a key: a new account without auth, or a key of the caller's account with a manage key",
        OptionalKey, Json(201, r::<CreatedKey>), &[400, 401, 403, 408, 413, 429, 503]),
        r::<keys::CreateKey>),
    op(Get, "/api/keys/me", "getKey", "The calling key", Key, Json(200, r::<KeyView>), KEYED),
    with_body(op(Patch, "/api/keys/me", "updateKey", "Change the calling key's settings", Key,
        Json(200, r::<KeyView>), BODY), r::<views::SettingsPatch>),
    op(Delete, "/api/keys/me", "disableKey", "Disable the calling key", Key, Empty(204), KEYED),
    op(Post, "/api/keys/me/rotate", "rotateKey", "A new secret for the calling key", Key,
        Json(200, r::<RotatedKey>), KEYED),
    op(Get, "/api/wallet/balance", "balance", "Balance, free tier and budget", Key,
        Json(200, r::<BalanceView>), KEYED),
    with_body(op(Post, "/api/wallet/fund", "fund", "A Lightning invoice to top up the balance",
        Key, Json(201, r::<InvoiceView>), &[400, 401, 408, 413, 502, 503]), r::<wallet::FundBody>),
    with_query(op(Get, "/api/wallet/status", "invoiceStatus", "An invoice of the caller's", Key,
        Json(200, r::<InvoiceStatusView>), &[400, 401, 404, 503]), &[("invoiceId", true)]),
    with_query(op(Get, "/api/report", "report", "Spend report", Key,
        Json(200, r::<ReportView>), &[400, 401, 403, 404, 503]),
        &[("period", false), ("key", false)]),
    with_query(op(Get, "/api/requests", "requests",
        "The key's recent requests, newest first (`format=csv` gives the same rows as CSV)", Key,
        Json(200, r::<crate::api::requests::RequestsPage>), &[400, 401, 403, 404, 503]),
        &[("limit", false), ("before", false), ("model", false), ("status", false),
          ("key", false)]),
    op(Get, "/api/wallet/history", "walletHistory",
        "Ledger entries and invoices, newest first (the account's for a manage key)", Key,
        Json(200, r::<crate::api::history::HistoryView>), KEYED),
    op(Get, "/api/account", "account", "The account and its keys (manage key)", Key,
        Json(200, r::<AccountView>), &[400, 401, 403, 503]),
    with_body(op(Patch, "/api/account/keys/{id}", "updateAccountKey",
        "Change a key of the account (manage key)", Key, Json(200, r::<AccountKeyView>), MANAGE),
        r::<views::SettingsPatch>),
    op(Delete, "/api/account/keys/{id}", "disableAccountKey",
        "Disable a key of the account (manage key)", Key, Empty(204), MANAGE),
    op(Post, "/api/account/keys/{id}/rotate", "rotateAccountKey",
        "A new secret for a key of the account (manage key)", Key, Json(200, r::<RotatedKey>),
        MANAGE),
    op(Get, "/api/admin/keys", "adminKeys", "Every key (admin)", Admin, Json(200, admin_keys),
        &[401, 503]),
    with_body(op(Patch, "/api/admin/keys/{id}", "adminUpdateKey", "Change any key (admin)",
        Admin, Json(200, r::<KeyView>), &[400, 401, 404, 408, 413, 503]),
        r::<views::SettingsPatch>),
    with_body(op(Post, "/api/admin/keys/{id}/credit", "adminCredit",
        "Credit a key's account (admin)", Admin, Json(200, r::<CreditView>),
        &[400, 401, 404, 408, 413, 503]), r::<admin::CreditBody>),
];

/// `X-Pura-*` and request-id headers of a served request (ARCHITECTURE.md §2).
const SERVED_HEADERS: &[(&str, &str)] = &[
    (
        "X-Pura-Request-Id",
        "Pura's id of the request (the usage row's), always",
    ),
    (
        "X-Pura-Body-Sha256",
        "Hex SHA-256 of the request bytes received",
    ),
    ("X-Pura-Provider", "The provider that served the request"),
    ("X-Pura-Model", "The upstream model actually used"),
    (
        "X-Pura-Cost",
        "USD, decimal; for a stream the reserved estimate",
    ),
    ("X-Pura-Tier", "cheap, mid or premium"),
    ("X-Pura-Budget-Remaining", "USD left today"),
    (
        "X-Pura-Free-Requests-Remaining",
        "Free requests left on the account",
    ),
    (
        "x-request-id",
        "The upstream's request id when it sent one, otherwise Pura's",
    ),
];

fn header(description: &str) -> Header {
    let mut h = Header::new(text());
    h.description = Some(description.to_owned());
    h
}

fn reason(status: u16) -> &'static str {
    actix_web::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn operation(o: &Op) -> utoipa::openapi::path::Operation {
    let mut b = OperationBuilder::new()
        .operation_id(Some(o.id))
        .summary(Some(o.summary));
    let bearer = || SecurityRequirement::new("bearer", Vec::<String>::new());
    b = match o.auth {
        Auth::None => b.securities(Some(Vec::new())),
        Key => b.security(bearer()),
        OptionalKey => b
            .security(SecurityRequirement::default())
            .security(bearer()),
        KeyOrApiKey => b
            .security(bearer())
            .security(SecurityRequirement::new("apiKey", Vec::<String>::new())),
        Admin => b.security(SecurityRequirement::new("admin", Vec::<String>::new())),
    };
    if o.path.contains("{id}") {
        b = b.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(text())),
        );
    }
    for (name, required) in o.query {
        let required = if *required {
            Required::True
        } else {
            Required::False
        };
        b = b.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(required)
                .schema(Some(text())),
        );
    }
    if let Some(body) = o.body {
        b = b.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(body())).build(),
                )
                .build(),
        ));
    }
    let served = matches!(o.answer, Served(_));
    b = match o.answer {
        Json(status, schema) => b.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(reason(status))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema())).build(),
                )
                .build(),
        ),
        Served(schema) => {
            let mut ok = ResponseBuilder::new()
                .description("Served: JSON, or an SSE stream when the request asked for one")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema())).build(),
                )
                .content(
                    "text/event-stream",
                    ContentBuilder::new().schema(Some(sse_event())).build(),
                );
            for (name, description) in SERVED_HEADERS {
                ok = ok.header(*name, header(description));
            }
            b.response("200", ok.build())
        }
        Empty(status) => b.response(
            status.to_string(),
            ResponseBuilder::new().description(reason(status)).build(),
        ),
        Answer::Text(content_type) => b.response(
            "200",
            ResponseBuilder::new()
                .description("OK")
                .content(
                    content_type,
                    ContentBuilder::new().schema(Some(text())).build(),
                )
                .build(),
        ),
    };
    // The Anthropic paths answer errors in Anthropic's envelope, every other path in OpenAI's.
    let envelope = match o.path {
        "/v1/models" => either_envelope,
        p if p.starts_with("/v1/messages") => r::<anthropic::ErrorEnvelope>,
        _ => r::<ErrorEnvelope>,
    };
    for status in o.errors {
        let mut resp = ResponseBuilder::new().description(reason(*status)).content(
            "application/json",
            ContentBuilder::new().schema(Some(envelope())).build(),
        );
        if served {
            // Once the body is read, errors carry the request id and body hash too.
            for (name, description) in &SERVED_HEADERS[..2] {
                resp = resp.header(*name, header(description));
            }
        }
        b = b.response(status.to_string(), resp.build());
    }
    let mut built = b.build();
    add_links(o, &mut built);
    built
}

/// Stateful links: a minted key can be managed, an invoice looked up.
fn add_links(o: &Op, op: &mut utoipa::openapi::path::Operation) {
    let link = |target: &str, param: &str, from: &str| {
        LinkBuilder::new()
            .operation_id(target)
            .parameter(param, from)
            .build()
    };
    let made = match o.id {
        "createKey" => vec![
            (
                "UpdateKey",
                link("updateAccountKey", "id", "$response.body#/id"),
            ),
            (
                "RotateKey",
                link("rotateAccountKey", "id", "$response.body#/id"),
            ),
            (
                "DisableKey",
                link("disableAccountKey", "id", "$response.body#/id"),
            ),
        ],
        "fund" => vec![(
            "InvoiceStatus",
            link("invoiceStatus", "invoiceId", "$response.body#/invoiceId"),
        )],
        _ => return,
    };
    if let Some(RefOr::T(resp)) = op.responses.responses.get_mut("201") {
        for (name, l) in made {
            resp.links.insert(name.to_owned(), RefOr::T(l));
        }
    }
}

/// The whole document.
pub fn document() -> Doc {
    let mut doc = Schemas::openapi();
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "apiKey",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
    );
    components.add_security_scheme(
        "admin",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for o in OPS {
        doc.paths
            .add_path_operation(o.path, vec![o.method.clone()], operation(o));
    }
    doc
}

/// The document as JSON. utoipa 5.5 writes a link's `operationId` as `operation_id` (its
/// `Link` lacks the camelCase rename), which no OpenAPI tool reads: renamed here.
pub fn json() -> String {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    let ops = doc.get_mut("paths").and_then(|p| p.as_object_mut());
    for item in ops.into_iter().flat_map(|p| p.values_mut()) {
        let methods = item
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut());
        for op in methods {
            let responses = op.get_mut("responses").and_then(|r| r.as_object_mut());
            for resp in responses.into_iter().flat_map(|r| r.values_mut()) {
                let links = resp.get_mut("links").and_then(|l| l.as_object_mut());
                for link in links.into_iter().flat_map(|l| l.values_mut()) {
                    if let Some(l) = link.as_object_mut() {
                        if let Some(id) = l.remove("operation_id") {
                            l.insert("operationId".to_owned(), id);
                        }
                    }
                }
            }
        }
    }
    doc.to_string()
}

/// `GET /openapi.json`, built once per process.
pub async fn serve() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(json);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_the_document_with_its_errors_and_links() {
        let doc: serde_json::Value = serde_json::from_str(&json()).expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        for o in OPS {
            let method = serde_json::to_value(&o.method).expect("method");
            let method = method.as_str().expect("method name");
            let op = &doc["paths"][o.path][method];
            assert_eq!(op["operationId"], o.id, "{} {}", method, o.path);
            for status in o.errors {
                assert!(
                    op["responses"][status.to_string()].is_object(),
                    "{} {status}",
                    o.path
                );
            }
        }
        let link = &doc["paths"]["/api/keys"]["post"]["responses"]["201"]["links"]["UpdateKey"];
        assert_eq!(link["operationId"], "updateAccountKey", "{link}");
        let served = &doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"];
        assert!(
            served["headers"]["X-Pura-Body-Sha256"].is_object(),
            "{served}"
        );
    }
}

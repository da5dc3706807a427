//! The public HTTP contract outside chat content: errors in OpenAI's envelope for every
//! failure (actix's own included), auth, key minting, models, health, config handling.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{provider_toml, FakeDialect, FakeUpstream, Gateway};
use serde_json::{json, Value};

fn assert_envelope(v: &Value, kind: &str, code: &str) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["type"], kind, "{v}");
    assert_eq!(e["code"], code, "{v}");
    assert!(
        e.as_object().is_some_and(|o| o.contains_key("param")),
        "{v}"
    );
}

async fn raw_post(
    gw: &Gateway,
    path: &str,
    key: Option<&str>,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = gw.client().post(format!("{}{path}", gw.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(c) = ctype {
        req = req.insert_header(("content-type", c));
    }
    let mut resp = req.send_body(body).await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.body().await.expect("body");
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)})),
    )
}

#[actix_web::test]
async fn health_and_no_provider_configured() {
    let gw = Gateway::start("", &[]);
    let mut resp = gw
        .client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );
    let (_, key) = gw.key().await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 503);
    assert_envelope(&r.json(), "api_error", "unavailable");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("No provider is configured"));
}

#[actix_web::test]
async fn bad_credentials_are_401_in_openai_shape() {
    let gw = Gateway::start("", &[]);
    let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    for key in [
        None,
        Some("pura_unknownunknownunknownunknownunknown"),
        Some(""),
    ] {
        let (status, v) = raw_post(
            &gw,
            "/v1/chat/completions",
            key,
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_eq!(status, 401, "{key:?}");
        assert_envelope(&v, "authentication_error", "invalid_api_key");
    }
    // Auth is judged before the body: a bad key with a bad body is still a 401.
    let (status, _) = raw_post(
        &gw,
        "/v1/chat/completions",
        Some("nope"),
        None,
        b"{".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    let mut resp = gw
        .client()
        .get(format!("{}/v1/models", gw.url))
        .send()
        .await
        .expect("models");
    assert_eq!(resp.status().as_u16(), 401);
    assert_envelope(
        &resp.json::<Value>().await.expect("json"),
        "authentication_error",
        "invalid_api_key",
    );
}

#[actix_web::test]
async fn malformed_requests_are_400_and_oversize_413() {
    let gw = Gateway::start("", &[("PURA__SERVER__MAX_BODY_BYTES", "2000")]);
    let (_, key) = gw.key().await;
    let k = Some(key.as_str());
    let json_ct = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (json_ct, b"{not json".to_vec(), "invalid_request"),
        (json_ct, br#"{"model":"auto"}"#.to_vec(), "invalid_request"),
        (json_ct, br#"{"messages":"hi"}"#.to_vec(), "invalid_request"),
        (
            json_ct,
            br#"{"messages":[{"role":"wizard","content":"hi"}]}"#.to_vec(),
            "invalid_request",
        ),
        (json_ct, br#"{"messages":[]}"#.to_vec(), "invalid_request"),
        (
            json_ct,
            br#"{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#.to_vec(),
            "invalid_request",
        ),
        (
            Some("text/plain"),
            br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            "invalid_content_type",
        ),
    ];
    for (ct, body, code) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, v) = raw_post(&gw, "/v1/chat/completions", k, ct, body).await;
        assert_eq!(status, 400, "{shown}: {v}");
        assert_envelope(&v, "invalid_request_error", code);
    }
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(5000)}]})
        .to_string()
        .into_bytes();
    let (status, v) = raw_post(&gw, "/v1/chat/completions", k, json_ct, big).await;
    assert_eq!(status, 413);
    assert_envelope(&v, "invalid_request_error", "request_too_large");
}

#[actix_web::test]
async fn unknown_model_and_unknown_path_are_404() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let gw = Gateway::start(&provider_toml("openai", &fake, "mid", "gpt-4o", 0.005), &[]);
    let (_, key) = gw.key().await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_envelope(&r.json(), "invalid_request_error", "model_not_found");
    assert_eq!(fake.hits(), 0);
    let (status, v) = raw_post(&gw, "/v1/nothing-here", Some(&key), None, vec![]).await;
    assert_eq!(status, 404);
    assert_envelope(&v, "invalid_request_error", "not_found");
}

#[actix_web::test]
async fn models_list_auto_aliases_and_concrete_models() {
    let fake = FakeUpstream::start(FakeDialect::OpenAi);
    let toml = provider_toml("openai", &fake, "mid", "gpt-4o", 0.005);
    let gw = Gateway::start(
        &toml,
        &[(
            "PURA__ROUTING__ALIASES",
            "{ \"codex-auto-review\" = \"auto\" }",
        )],
    );
    let (_, key) = gw.key().await;
    for path in ["/v1/models", "/api/models"] {
        let mut resp = gw
            .client()
            .get(format!("{}{path}", gw.url))
            .bearer_auth(&key)
            .send()
            .await
            .expect("models");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str())
            .collect();
        for want in ["auto", "codex-auto-review", "gpt-4o"] {
            assert!(ids.contains(&want), "{path} lacks {want}: {ids:?}");
        }
        assert!(v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["object"] == "model"));
    }
    // An alias routes like its target.
    let r = gw
        .post(
            "/v1/chat/completions",
            &key,
            &json!({"model": "codex-auto-review", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[actix_web::test]
async fn keys_are_shown_once_and_stored_hashed() {
    let gw = Gateway::start("", &[]);
    let mut resp = gw
        .client()
        .post(format!("{}/api/keys", gw.url))
        .send_json(&json!({"label": "my-agent"}))
        .await
        .expect("mint");
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.expect("json");
    let key = v["key"].as_str().expect("key");
    let random = key.strip_prefix("pura_").expect("prefix");
    assert!(
        random.len() >= 32 && random.chars().all(|c| c.is_ascii_alphanumeric()),
        "{key}"
    );
    assert_eq!(v["label"], "my-agent");
    assert_eq!(v["freeRequestsRemaining"], 5000);
    assert!(v["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let id = v["id"].as_str().expect("id");
    let pool = pura::db::pool(&gw.db_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    use diesel::prelude::*;
    use pura::db::schema::api_keys;
    let hash: String = api_keys::table
        .filter(api_keys::id.eq(id))
        .select(api_keys::key_hash)
        .first(&mut *conn)
        .expect("row");
    assert_ne!(hash, key);
    assert_eq!(hash, pura::auth::hash_key(key));
    assert!(!gw.log().contains(key), "the key must never be logged");
}

#[actix_web::test]
async fn key_minting_is_rate_limited_and_can_be_admin_only() {
    // Isolated: the mint count is kept in the database, which other tests share on PostgreSQL.
    let gw = Gateway::start_isolated("", &[("PURA__SERVER__KEY_MINT_PER_IP_PER_HOUR", "2")]);
    for _ in 0..2 {
        gw.key().await;
    }
    let (status, v) = raw_post(
        &gw,
        "/api/keys",
        None,
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 429);
    assert_envelope(&v, "rate_limit_error", "rate_limit_exceeded");

    let gw = Gateway::start(
        "",
        &[
            ("PURA__SERVER__OPEN_KEY_MINTING", "false"),
            ("PURA_ADMIN_TOKEN", "admin-secret"),
        ],
    );
    let (status, v) = raw_post(
        &gw,
        "/api/keys",
        None,
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    assert_envelope(&v, "authentication_error", "invalid_api_key");
    let (status, v) = raw_post(
        &gw,
        "/api/keys",
        Some("admin-secret"),
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

#[test]
fn unknown_config_key_is_refused_by_name() {
    let err = Gateway::start_failing("[server]\nbind = \"127.0.0.1:0\"\nmax_body_byts = 10\n");
    assert!(err.contains("max_body_byts"), "{err}");
    let err = Gateway::start_failing("[providers.openai]\ntimeout = \"60s\"\nmodles = [\"x\"]\n");
    assert!(err.contains("modles"), "{err}");
}

#[test]
fn starts_with_no_config_file_on_sqlite_in_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pura"))
        .current_dir(dir.path())
        .env("PURA__SERVER__BIND", "127.0.0.1:0")
        .env_remove("PURA_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("pura listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(dir.path().join("pura.db").exists());
}

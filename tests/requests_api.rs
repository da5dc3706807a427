//! `GET /api/requests`: a key's usage rows newest first, paged by a cursor on the time-ordered
//! id, filtered by model and status, as JSON or CSV; a manage key reads another key of its
//! account or all of them, a use key only its own, and another account's key is unknown.

mod common;

use common::{exact_gateway, exact_request, Gateway};
use serde_json::{json, Value};

/// A chat request that reaches the fake upstream, tagged with a client request id.
async fn call(gw: &Gateway, key: &str, client_id: &str) {
    let resp = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .insert_header(("x-client-request-id", client_id))
        .send_json(&exact_request(false))
        .await
        .expect("chat");
    assert_eq!(resp.status().as_u16(), 200, "chat {client_id}");
}

async fn get_text(gw: &Gateway, path: &str, key: &str) -> (u16, String, String) {
    let mut resp = gw
        .client()
        .get(format!("{}{path}", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .expect("get");
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.body().await.expect("body");
    (
        resp.status().as_u16(),
        ctype,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Waits until the usage writer has committed `n` rows of the key (it commits in groups).
async fn rows_of(gw: &Gateway, key: &str, n: usize) -> Value {
    for _ in 0..200 {
        let (status, page) = gw.get("/api/requests?limit=200", key).await;
        assert_eq!(status, 200, "{page}");
        if page["data"].as_array().map_or(0, Vec::len) >= n {
            return page;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the usage rows never appeared");
}

#[actix_web::test]
async fn pages_filters_csv_and_scopes() {
    let (_fake, gw) = exact_gateway(&[]);
    let (manage_id, manage) = gw.key().await;
    for i in 0..5 {
        call(&gw, &manage, &format!("m-{i}")).await;
    }
    // A client request id a spreadsheet would read as a formula, with a comma and a quote.
    call(&gw, &manage, "=HYPERLINK(\"x\",1)").await;
    let all = rows_of(&gw, &manage, 6).await;
    assert_eq!(all["hasMore"], false);
    assert_eq!(all["nextBefore"], Value::Null);
    let newest = &all["data"][0];
    assert_eq!(newest["clientRequestId"], "=HYPERLINK(\"x\",1)");
    assert_eq!(newest["keyId"], manage_id.as_str());
    assert_eq!(newest["protocol"], "chat");
    assert_eq!(newest["model"], "gpt-4o");
    assert_eq!(newest["provider"], "openai");
    assert_eq!(newest["tier"], "mid");
    assert_eq!(newest["promptTokens"], 10);
    assert_eq!(newest["completionTokens"], 5);
    assert_eq!(newest["cachedTokens"], 0);
    assert_eq!(newest["costUsd"], 0.015);
    assert!(newest["savingsUsd"].is_number(), "{newest}");
    assert_eq!(newest["status"], "ok");
    assert_eq!(newest["stream"], false);
    assert!(newest["latencyMs"].is_i64(), "{newest}");
    let time = newest["time"].as_str().expect("time");
    assert!(time.ends_with('Z'), "not RFC 3339 UTC: {time}");
    chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");

    // The report the console's savings panel and chart read: per model, per tier, per hour.
    let (status, report) = gw.get("/api/report?period=24h", &manage).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["byModel"]["gpt-4o"]["requests"], 6, "{report}");
    assert_eq!(report["byTier"]["mid"]["requests"], 6, "{report}");
    assert_eq!(report["byTier"]["mid"]["spendUsd"], 0.09, "{report}");
    let hours = report["hourly"].as_array().expect("hourly");
    let tokens: i64 = hours.iter().filter_map(|h| h["tokens"].as_i64()).sum();
    assert_eq!(tokens, 6 * 15, "{report}");
    let stacked: i64 = hours
        .iter()
        .filter_map(|h| h["byProvider"]["openai"]["requests"].as_i64())
        .sum();
    assert_eq!(stacked, 6, "{report}");

    // The model list carries each concrete model's price (the console's getting-started table).
    let (status, list) = gw.get("/v1/models", &manage).await;
    assert_eq!(status, 200, "{list}");
    let entries = list["data"].as_array().expect("data");
    let gpt = entries
        .iter()
        .find(|m| m["id"] == "gpt-4o")
        .expect("gpt-4o");
    assert_eq!(gpt["pricing"]["inputPer1kUsd"], 1.0, "{gpt}");
    assert_eq!(gpt["pricing"]["outputPer1kUsd"], 1.0, "{gpt}");
    let auto = entries.iter().find(|m| m["id"] == "auto").expect("auto");
    assert!(auto.get("pricing").is_none(), "{auto}");

    // Newest first; pages of 2 walk the same ids in the same order, then stop.
    let every = ids(&all);
    let mut sorted = every.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(every, sorted, "not newest first");
    let mut walked = Vec::new();
    let mut path = "/api/requests?limit=2".to_owned();
    loop {
        let (status, page) = gw.get(&path, &manage).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(ids(&page));
        match page["nextBefore"].as_str() {
            Some(before) => {
                assert_eq!(page["hasMore"], true);
                path = format!("/api/requests?limit=2&before={before}");
            }
            None => break,
        }
    }
    assert_eq!(walked, every);

    // Filters: an unknown model or status matches nothing; an empty one is no filter.
    for (query, n) in [
        ("model=gpt-4o", 6),
        ("model=other", 0),
        ("status=ok", 6),
        ("status=error", 0),
        ("model=&status=", 6),
    ] {
        let (status, page) = gw.get(&format!("/api/requests?{query}"), &manage).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(ids(&page).len(), n, "{query}");
    }
    for bad in ["limit=0", "limit=201", "format=xml", "colour=red"] {
        let (status, body) = gw.get(&format!("/api/requests?{bad}"), &manage).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].is_string(), "{bad}: {body}");
    }

    // CSV: the header line, one line per row, the hostile id quoted and defused.
    let (status, ctype, csv) = get_text(&gw, "/api/requests?format=csv", &manage).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(
        lines[0].starts_with("id,time,keyId,protocol,model,provider,tier,"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(",\"'=HYPERLINK(\"\"x\"\",1)\""),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with(",m-4"), "{}", lines[2]);

    // A use key of the account: its own rows only; it may not ask for others.
    let (status, created) = gw
        .send(
            "POST",
            "/api/keys",
            &manage,
            Some(json!({"label": "tool", "role": "use"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (tool_id, tool) = (
        created["id"].as_str().expect("id").to_owned(),
        created["key"].as_str().expect("key").to_owned(),
    );
    call(&gw, &tool, "t-0").await;
    let mine = rows_of(&gw, &tool, 1).await;
    assert_eq!(ids(&mine).len(), 1);
    assert_eq!(mine["data"][0]["clientRequestId"], "t-0");
    for other in [format!("key={manage_id}"), "key=all".to_owned()] {
        let (status, body) = gw.get(&format!("/api/requests?{other}"), &tool).await;
        assert_eq!(status, 403, "{other}: {body}");
    }

    // The manage key: the tool's rows, and the account's.
    let (status, page) = gw
        .get(&format!("/api/requests?key={tool_id}"), &manage)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), ids(&mine));
    let (status, page) = gw.get("/api/requests?key=all&limit=200", &manage).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page).len(), 7);

    // Another account's key id is as unknown as a made-up one.
    let (stranger_id, stranger) = gw.key().await;
    for id in [stranger_id.as_str(), "key_madeup"] {
        let (status, body) = gw.get(&format!("/api/requests?key={id}"), &manage).await;
        assert_eq!(status, 404, "{id}: {body}");
    }
    let (status, page) = gw.get("/api/requests", &stranger).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page).len(), 0, "a new account sees no one's rows");
    let (status, _) = gw.get("/api/requests", "pura_wrong").await;
    assert_eq!(status, 401);
}

/// `GET /api/wallet/history`: credits and debits newest first; a use key sees only its own.
#[actix_web::test]
async fn money_history_lists_credits_and_debits() {
    let (_fake, gw) = exact_gateway(&[("PURA__FREE_TIER__REQUESTS", "0")]);
    let (manage_id, manage) = gw.key().await;
    gw.admin_credit(&manage_id, 100_000).await;
    call(&gw, &manage, "paid-1").await;
    let (status, history) = gw.get("/api/wallet/history", &manage).await;
    assert_eq!(status, 200, "{history}");
    let ledger = history["ledger"].as_array().expect("ledger");
    let kinds: Vec<&str> = ledger.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"admin_credit"), "{history}");
    let credit = ledger
        .iter()
        .find(|e| e["kind"] == "admin_credit")
        .expect("credit");
    assert_eq!(credit["memo"], "test credit");
    assert!(credit["amountUsd"].as_f64().expect("amount") > 0.0);
    assert_eq!(credit["keyId"], manage_id.as_str());
    assert!(history["invoices"].as_array().expect("invoices").is_empty());
    // This gateway has no Lightning backend: the console hides its top-up form.
    assert_eq!(history["lightning"], false, "{history}");
    assert!(history["usdPerSat"].as_f64().expect("rate") > 0.0);

    let (status, created) = gw
        .send(
            "POST",
            "/api/keys",
            &manage,
            Some(json!({"label": "tool", "role": "use"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let tool = created["key"].as_str().expect("key");
    let (status, theirs) = gw.get("/api/wallet/history", tool).await;
    assert_eq!(status, 200, "{theirs}");
    assert!(
        theirs["ledger"].as_array().expect("ledger").is_empty(),
        "a use key sees the manage key's credit: {theirs}"
    );
}

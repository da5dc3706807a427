//! The web console: `GET /` serves the page with its panels, and its script and stylesheet are
//! served from the binary with the right content types and caching headers.

mod common;

use common::Gateway;

async fn fetch(gw: &Gateway, path: &str) -> (u16, String, String, String) {
    let mut resp = gw
        .client()
        .get(format!("{}{path}", gw.url))
        .send()
        .await
        .expect("request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (ctype, cache) = (header("content-type"), header("cache-control"));
    let status = resp.status().as_u16();
    let body = resp.body().await.expect("body");
    (
        status,
        ctype,
        cache,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[actix_web::test]
async fn console_page_and_assets() {
    let gw = Gateway::start("", &[]);

    let (status, ctype, cache, html) = fetch(&gw, "/").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(!cache.is_empty(), "GET / has no Cache-Control");
    for id in [
        "key-panel",
        "info-panel",
        "balance-panel",
        "topup-panel",
        "report-panel",
        "message",
        "chart",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "no #{id} in the page"
        );
    }
    assert!(html.contains("src=\"/static/console.js\""), "no script tag");
    assert!(
        html.contains("href=\"/static/console.css\""),
        "no stylesheet"
    );
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !html.contains(external),
            "the console loads an external asset"
        );
    }

    let (status, ctype, cache, js) = fetch(&gw, "/static/console.js").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/javascript"), "{ctype}");
    assert!(!cache.is_empty(), "the script has no Cache-Control");
    for path in [
        "/api/keys/me",
        "/api/wallet/balance",
        "/api/wallet/fund",
        "/api/report",
    ] {
        assert!(js.contains(path), "the script never calls {path}");
    }

    let (status, ctype, _, css) = fetch(&gw, "/static/console.css").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/css"), "{ctype}");
    assert!(!css.is_empty());

    // Anything else under /static is the usual JSON 404.
    let (status, ctype, _, _) = fetch(&gw, "/static/nope.js").await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("application/json"), "{ctype}");
}

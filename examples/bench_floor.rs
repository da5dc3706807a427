//! The least a gateway built on Pura's stack can do, for `bench/instructions.py`: an actix-web
//! server that forwards `POST /v1/chat/completions` to one upstream with awc (one client per
//! worker, as Pura makes it) and relays the answer, JSON whole or a stream chunk by chunk as it
//! comes, untouched. No key, no budget, no routing, no usage row, no parsing. Its instructions per
//! request are the floor the stack itself sets under Pura's own.
//!
//! ```sh
//! cargo run --release --example bench_floor -- --upstream http://127.0.0.1:9000 --workers 1
//! ```
//!
//! It prints `bench_floor listening on http://ADDR` on stdout once bound.

use std::time::Duration;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;

struct Upstream(String);

async fn forward(
    body: Bytes,
    client: web::Data<awc::Client>,
    upstream: web::Data<Upstream>,
) -> HttpResponse {
    let sent = client
        .post(&upstream.0)
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", "Bearer bench"))
        .send_body(body)
        .await;
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut out = HttpResponse::build(resp.status());
    out.insert_header((CONTENT_TYPE, content_type.clone()));
    if content_type.as_bytes().starts_with(b"text/event-stream") {
        // Each upstream read goes out as it comes: the stream is relayed, never buffered.
        return out.streaming(resp);
    }
    match resp.body().limit(8 << 20).await {
        Ok(answer) => out.body(answer),
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let upstream = flag(&args, "--upstream").expect("--upstream http://HOST:PORT is required");
    let workers: usize = flag(&args, "--workers").map_or(1, |w| w.parse().expect("--workers N"));
    let bind = flag(&args, "--bind").unwrap_or_else(|| "127.0.0.1:0".into());
    let url = format!("{}/v1/chat/completions", upstream.trim_end_matches('/'));
    let server = HttpServer::new(move || {
        // As Pura: awc::Client is !Send, so one per worker, made in the factory.
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(600))
            .connector(awc::Connector::new().limit(1024))
            .finish();
        App::new()
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(Upstream(url.clone())))
            .route("/v1/chat/completions", web::post().to(forward))
    })
    .workers(workers)
    .tcp_nodelay(true)
    .bind(bind)?;
    let addr = server.addrs()[0];
    println!("bench_floor listening on http://{addr}");
    server.run().await
}

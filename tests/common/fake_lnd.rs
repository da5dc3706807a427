//! A fake LND REST node for the tests, following LND's documented JSON: `POST /v1/invoices`
//! answers a base64 `r_hash` and a real signed BOLT11 `payment_request`; `GET
//! /v1/invoice/{r_hash hex}` answers `state` OPEN or SETTLED. It serves HTTPS with a
//! self-signed certificate (written to a file for `lightning.tls_cert_path`) and checks the
//! `Grpc-Metadata-macaroon` header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};

pub const MACAROON: &str = "0201036c6e640258030a10fakefakefakefake";

#[derive(Default)]
struct Node {
    /// hex payment hash -> settled?
    invoices: HashMap<String, bool>,
}

pub struct FakeLnd {
    pub url: String,
    pub cert_path: std::path::PathBuf,
    node: Arc<Mutex<Node>>,
    _dir: tempfile::TempDir,
}

impl FakeLnd {
    pub fn start() -> FakeLnd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        let cert_path = dir.path().join("tls.cert");
        std::fs::write(&cert_path, cert.to_pem().expect("pem")).expect("write cert");
        let mut acceptor = SslAcceptor::mozilla_intermediate(SslMethod::tls()).expect("acceptor");
        acceptor.set_private_key(&key).expect("key");
        acceptor.set_certificate(&cert).expect("cert");
        let node: Arc<Mutex<Node>> = Arc::default();
        let shared = node.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(shared.clone()))
                        .route("/v1/invoices", web::post().to(add_invoice))
                        .route("/v1/invoice/{hash}", web::get().to(lookup))
                })
                .workers(1)
                .bind_openssl("127.0.0.1:0", acceptor)
                .expect("bind");
                let _ = tx.send(server.addrs()[0]);
                let _ = server.run().await;
            });
        });
        let addr = rx.recv().expect("lnd address");
        FakeLnd {
            url: format!("https://{addr}"),
            cert_path,
            node,
            _dir: dir,
        }
    }

    /// Marks every open invoice settled (the customer paid).
    pub fn settle_all(&self) {
        for v in self.node.lock().expect("lock").invoices.values_mut() {
            *v = true;
        }
    }
}

fn self_signed() -> (X509, PKey<openssl::pkey::Private>) {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "127.0.0.1").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("x509");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("na");
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .expect("san");
    b.append_extension(san).expect("ext");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (b.build(), key)
}

fn authorized(req: &HttpRequest) -> bool {
    req.headers()
        .get("Grpc-Metadata-macaroon")
        .and_then(|v| v.to_str().ok())
        == Some(MACAROON)
}

fn int_field(v: &Value, name: &str) -> Option<u64> {
    v.get(name).and_then(|x| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    })
}

async fn add_invoice(
    req: HttpRequest,
    node: web::Data<Arc<Mutex<Node>>>,
    body: web::Json<Value>,
) -> HttpResponse {
    if !authorized(&req) {
        return HttpResponse::Forbidden().json(json!({"code": 2, "message": "verification failed: signature mismatch after caveat verification", "details": []}));
    }
    let Some(sats) = int_field(&body, "value") else {
        return HttpResponse::BadRequest()
            .json(json!({"code": 3, "message": "value required", "details": []}));
    };
    let expiry = int_field(&body, "expiry").unwrap_or(86_400);
    let preimage: [u8; 32] = rand::random();
    let hash = sha256::Hash::hash(&preimage);
    let secp = Secp256k1::new();
    let node_key = SecretKey::from_slice(&[0x42; 32]).expect("key");
    let invoice = InvoiceBuilder::new(Currency::Bitcoin)
        .description(
            body.get("memo")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
        .payment_hash(hash)
        .payment_secret(PaymentSecret(rand::random()))
        .amount_milli_satoshis(sats * 1000)
        .current_timestamp()
        .min_final_cltv_expiry_delta(144)
        .expiry_time(Duration::from_secs(expiry))
        .build_signed(|h| secp.sign_ecdsa_recoverable(h, &node_key))
        .expect("invoice");
    let hash_hex = hash.to_string();
    node.lock().expect("lock").invoices.insert(hash_hex, false);
    let engine = base64::engine::general_purpose::STANDARD;
    HttpResponse::Ok().json(json!({
        "r_hash": engine.encode(hash.to_byte_array()),
        "payment_request": invoice.to_string(),
        "add_index": "1",
        "payment_addr": engine.encode([7u8; 32]),
    }))
}

async fn lookup(
    req: HttpRequest,
    node: web::Data<Arc<Mutex<Node>>>,
    path: web::Path<String>,
) -> HttpResponse {
    if !authorized(&req) {
        return HttpResponse::Forbidden()
            .json(json!({"code": 2, "message": "permission denied", "details": []}));
    }
    match node.lock().expect("lock").invoices.get(&path.into_inner()) {
        Some(settled) => HttpResponse::Ok().json(json!({
            "state": if *settled { "SETTLED" } else { "OPEN" },
            "settled": settled,
        })),
        None => HttpResponse::NotFound()
            .json(json!({"code": 5, "message": "unable to locate invoice", "details": []})),
    }
}

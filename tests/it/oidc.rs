//! OIDC ID tokens against a JWKS server of the test's own: signature, issuer, audience, expiry
//! and not-before checked against the gateway's clock, groups from a claim, key rotation.

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sesame::clock::Clock;
use sesame::identity::oidc::OidcConfig;

use crate::harness::{BackendKind, Ctx, Output, run};

const ISSUER: &str = "https://login.example.test";
const AUDIENCE: &str = "sesame";

/// One signing key of the test identity provider.
struct SigningKey {
    kid: String,
    private: EncodingKey,
    jwk: serde_json::Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    SigningKey {
        kid: kid.to_owned(),
        private: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": kid, "alg": "ES256", "use": "sig"}),
    }
}

/// Serves whatever key set is in `jwks` at any path, on a free loopback port.
fn jwks_server(jwks: Arc<Mutex<serde_json::Value>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let body = jwks.lock().unwrap().to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    url
}

fn mint(key: &SigningKey, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.private).unwrap()
}

fn claims(ctx: &Ctx, email: &str, groups: &[&str]) -> serde_json::Value {
    let now = ctx.clock.now().unix_timestamp();
    serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "email": email, "groups": groups, "iat": now, "exp": now + 600})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_are_checked_and_keys_can_rotate() {
    let first = signing_key("key-1");
    let jwks = Arc::new(Mutex::new(serde_json::json!({"keys": [first.jwk.clone()]})));
    let jwks_url = jwks_server(jwks.clone());
    let config: OidcConfig = toml::from_str(&format!(
        "issuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{jwks_url}\""
    ))
    .unwrap();
    let ctx = Ctx::start_with_oidc(BackendKind::Fs, config).await;

    let token = mint(
        &first,
        &claims(&ctx, "alice@example.test", &["data-eng", "staff"]),
    );
    let out = tokio::task::spawn_blocking({
        let t = token.clone();
        let url = ctx.gateway.api_addr;
        move || whoami_at(url, &t)
    })
    .await
    .unwrap();
    let me: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
    assert_eq!(me["name"], "alice@example.test");
    assert_eq!(me["groups"], serde_json::json!(["data-eng", "staff"]));

    // Each broken property is refused with the reason.
    let bad = |c: serde_json::Value| mint(&first, &c);
    let mut wrong_aud = claims(&ctx, "a@x", &[]);
    wrong_aud["aud"] = "other".into();
    let mut wrong_iss = claims(&ctx, "a@x", &[]);
    wrong_iss["iss"] = "https://evil.example".into();
    let mut expired = claims(&ctx, "a@x", &[]);
    expired["exp"] = (ctx.clock.now().unix_timestamp() - 120).into();
    let mut early = claims(&ctx, "a@x", &[]);
    early["nbf"] = (ctx.clock.now().unix_timestamp() + 3600).into();
    let mut tampered = token.clone();
    let tail = if tampered.ends_with("AAAAAA") {
        "BBBBBB"
    } else {
        "AAAAAA"
    };
    tampered.replace_range(tampered.len() - 6.., tail);
    let other_key = signing_key("key-1"); // same kid, different key: a forgery
    for (token, reason) in [
        (bad(wrong_aud), "InvalidAudience"),
        (bad(wrong_iss), "InvalidIssuer"),
        (bad(expired), "expired at"),
        (bad(early), "not valid before"),
        (tampered, "not valid"),
        (
            mint(&other_key, &claims(&ctx, "mallory@x", &[])),
            "InvalidSignature",
        ),
    ] {
        let addr = ctx.gateway.api_addr;
        let out = tokio::task::spawn_blocking(move || whoami_at(addr, &token))
            .await
            .unwrap();
        assert!(
            out.code == 1 && out.stderr.contains(reason),
            "{reason}: {out:#?}"
        );
    }

    // The provider rotates to a new key: tokens signed with it work once the cache refreshes.
    let second = signing_key("key-2");
    *jwks.lock().unwrap() = serde_json::json!({"keys": [second.jwk.clone()]});
    ctx.clock.advance(time::Duration::seconds(11));
    let rotated = mint(
        &second,
        &claims(&ctx, "bob@example.test", &["hr-approvers"]),
    );
    let addr = ctx.gateway.api_addr;
    let out = tokio::task::spawn_blocking(move || whoami_at(addr, &rotated))
        .await
        .unwrap();
    let me: serde_json::Value = serde_json::from_str(&out.ok().stdout).unwrap();
    assert_eq!(me["name"], "bob@example.test");
}

/// `sesame whoami` against the in-process gateway with this bearer token.
fn whoami_at(addr: std::net::SocketAddr, token: &str) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args([
        "whoami",
        "--json",
        "--server",
        &format!("http://{addr}"),
        "--token",
        token,
    ]);
    run(cmd)
}

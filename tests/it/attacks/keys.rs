//! Keys with every encoding, against the key the backend is actually asked for: generated
//! raw request paths (percent-encoded or not, dot segments, encoded slashes, sibling prefixes,
//! non-ASCII), signed in the test, read and written under a grant on `team-a/`. Whatever
//! Sesame lets through, the recording relay must see it ask the backend only for keys inside
//! `team-a/` with no dot segment; whatever it refuses, the backend never sees; and a key that
//! decodes to one inside the grant is let through.

use std::fmt::Write as _;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sesame::model::Action::{Read, Write};

use super::Tally;
use crate::harness::{BackendKind, Ctx};
use crate::sigv4::Knobs;

crate::on_every_backend!(no_encoding_of_a_key_reaches_outside_the_grant);

/// Pieces of a key an attacker would combine.
const PIECES: &[&str] = &[
    "team-a",
    "team-a-secrets",
    "team-a.",
    "..",
    ".",
    "x.txt",
    "src.bin",
    "",
    "é",
    "a b",
    "+",
    "%",
    "~",
    "?",
];

/// One character of a raw path: as it is, or percent-encoded (upper or lower hex).
fn encode(text: &str, choice: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        let how = choice.get(i % choice.len().max(1)).copied().unwrap_or(0) % 3;
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        let must = !(c.is_ascii_alphanumeric() || "-._~/".contains(c));
        match (how, must) {
            (0, false) => out.push(c),
            (1, _) | (0, true) => bytes.iter().for_each(|b| {
                let _ = write!(out, "%{b:02X}");
            }),
            _ => bytes.iter().for_each(|b| {
                let _ = write!(out, "%{b:02x}");
            }),
        }
    }
    out
}

/// How generated keys start: mostly where the grant does.
const FIRST: &[&str] = &[
    "team-a",
    "team-a",
    "team-a",
    "team-a-secrets",
    "..",
    "team-a.",
];

/// A raw key path: pieces joined by `/`, some slashes themselves encoded, each piece
/// percent-encoded at random. Most start where the grant does, so both sides of its boundary
/// are reached.
pub(super) fn raw_key() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(FIRST),
        proptest::collection::vec(
            (
                proptest::sample::select(PIECES),
                proptest::bool::weighted(0.2),
            ),
            1..4,
        ),
        proptest::collection::vec(proptest::num::u8::ANY, 1..8),
    )
        .prop_map(|(first, parts, choice)| {
            let mut key = encode(first, &choice);
            for (part, encoded_slash) in &parts {
                key.push_str(if *encoded_slash { "%2F" } else { "/" });
                key.push_str(&encode(part, &choice));
            }
            key
        })
}

/// `count` values of `strategy`, the same on every run.
pub(super) fn samples<S: Strategy>(strategy: &S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// A key as the backend resolves it: percent-decoded, split on `/`.
fn decoded(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// SigV4's canonical URI of a path: decoded once, then every byte but the unreserved ones
/// and `/` percent-encoded.
fn canonical_uri(raw: &str) -> String {
    let mut out = String::new();
    for b in percent_encoding::percent_decode_str(raw) {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(super) fn inside_the_grant(key: &str) -> bool {
    key.starts_with("team-a/") && !key.split('/').any(|s| s == "." || s == "..")
}

async fn no_encoding_of_a_key_reaches_outside_the_grant(kind: BackendKind) {
    let ctx = Ctx::start_with_relay(kind).await;
    let bucket = ctx
        .bucket_with(&[("team-a/x.txt", b"a"), ("team-a-secrets/x.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{bucket}/team-a/"), &[Read, Write]);
    let host = ctx.gateway.s3_addr.to_string();
    let mut tally = Tally::default();
    for raw in &samples(&raw_key(), 150) {
        for method in ["GET", "PUT"] {
            let path = format!("/{bucket}/{raw}");
            ctx.take_backend_requests();
            // Signed as a client signs the key it means (the canonical URI encodes the
            // decoded path once), sent with the raw path the attacker chose.
            let mut signed = Knobs::new(&cred).sign_header(
                method,
                &canonical_uri(&path),
                &[],
                vec![("host".into(), host.clone())],
                "UNSIGNED-PAYLOAD",
            );
            signed.path.clone_from(&path);
            let body: &[u8] = if method == "PUT" { b"w" } else { b"" };
            let answer = signed.send(ctx.gateway.s3_addr, body).await;
            let forwarded = ctx.take_backend_requests();
            let asked: Vec<(String, bool)> = forwarded
                .iter()
                .filter_map(|f| {
                    let key = decoded(&f.path)
                        .strip_prefix(&format!("/{bucket}/"))?
                        .to_owned();
                    Some((format!("{key:?}"), inside_the_grant(&key)))
                })
                .collect();
            let meant_inside = inside_the_grant(&decoded(raw));
            tally.add(
                &format!("{method} {path}"),
                &answer,
                &forwarded,
                &asked,
                meant_inside,
            );
        }
    }
    tally.assert_held();
    assert_eq!(
        ctx.backend_object(&bucket, "team-a-secrets/x.txt")
            .await
            .unwrap(),
        b"secret"
    );
}

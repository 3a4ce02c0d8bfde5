//! Keys with every encoding, against the key the backend is actually asked for: generated
//! raw request paths (percent-encoded or not, dot segments, encoded slashes, sibling prefixes,
//! non-ASCII), signed in the test, read and written under a grant on `team-a/`. Whatever
//! Sesame lets through, the recording relay must see it ask the backend only for keys inside
//! `team-a/` with no dot segment; whatever it refuses, the backend never sees; and a key that
//! decodes to one inside the grant is let through.

use std::fmt::Write as _;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sesame::grant::Action::{Read, Write};

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
    "",
    "é",
    "a b",
    "+",
    "%",
    "~",
];

/// One character of a raw path: as it is, or percent-encoded (upper or lower hex).
pub(super) fn encode(text: &str, choice: &[u8]) -> String {
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

/// A raw key path: pieces joined by `/`, some slashes themselves encoded.
fn raw_keys(count: usize) -> Vec<String> {
    let piece = proptest::sample::select(PIECES);
    // Most keys start where the grant does, so both sides of its boundary are reached.
    let first = proptest::sample::select(
        &[
            "team-a",
            "team-a",
            "team-a",
            "team-a-secrets",
            "..",
            "team-a.",
        ][..],
    );
    let strategy = (
        first,
        proptest::collection::vec((piece, proptest::bool::weighted(0.2)), 1..4),
        proptest::collection::vec(proptest::num::u8::ANY, 1..8),
    )
        .prop_map(|(first, parts, choice)| {
            let mut key = encode(first, &choice);
            for (part, encoded_slash) in &parts {
                key.push_str(if *encoded_slash { "%2F" } else { "/" });
                key.push_str(&encode(part, &choice));
            }
            key
        });
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
    let keys = raw_keys(150);
    let (mut passed, mut refused, mut wrong) = (0, 0, Vec::new());
    for raw in &keys {
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
            let asked: Vec<String> = forwarded
                .iter()
                .filter_map(|f| {
                    decoded(&f.path)
                        .strip_prefix(&format!("/{bucket}/"))
                        .map(str::to_owned)
                })
                .collect();
            if forwarded.is_empty() {
                if inside_the_grant(&decoded(raw)) {
                    wrong.push(format!(
                        "{method} {path}: a key inside the grant was refused: {} {:?} {}",
                        answer.status,
                        answer.code(),
                        answer.message()
                    ));
                }
                refused += 1;
            } else {
                passed += 1;
            }
            if let Some(outside) = asked.iter().find(|k| !inside_the_grant(k)) {
                wrong.push(format!(
                    "{method} {path} ({}) asked the backend for {outside:?}",
                    answer.status
                ));
            }
            if forwarded.len() != asked.len() {
                wrong.push(format!(
                    "{method} {path} reached the backend elsewhere: {forwarded:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Both sides of the property were exercised.
    assert!(
        passed > 10 && refused > 10,
        "{passed} let through, {refused} refused"
    );
    assert_eq!(
        ctx.backend_object(&bucket, "team-a-secrets/x.txt")
            .await
            .unwrap(),
        b"secret"
    );
}

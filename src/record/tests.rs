//! Records as older gateways wrote them (`tests/fixtures/audit-v1`, written before the types
//! existed) read into the types and serialise back to the very bytes their hashes cover; the
//! fixture holds one record of every shape, and a new shape cannot be added without one.

use super::*;

const RECORDS_V1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-v1/records.jsonl"
));

const TRAIL_V1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-v1/trail/audit/trail-000001.jsonl"
));

/// Two replicas' chains as version 3 wrote them, by replica.
const TRAILS_V3: [(&str, &str); 2] = [
    (
        "r-0a1b2c3d",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/audit-v3/trail/audit/r-0a1b2c3d/trail-000001.jsonl"
        )),
    ),
    (
        "r-4e5f6a7b",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/audit-v3/trail/audit/r-4e5f6a7b/trail-000001.jsonl"
        )),
    ),
];

/// The body of a trail line, untyped, as the file holds it.
fn raw_body(line: &str) -> serde_json::Value {
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["body"].take()
}

/// Every shape a body can have: one name per variant, nested variants included. A new
/// variant fails to compile here until it is named, and then fails
/// `the_fixture_has_a_record_of_every_shape` until a fixture of it exists.
fn shape(kind: &Kind) -> &'static str {
    match kind {
        Kind::S3(S3::Allowed(_)) => "s3 allowed",
        Kind::S3(S3::Denied(_)) => "s3 denied",
        Kind::S3(S3::Refused(_)) => "s3 refused",
        Kind::DeniedAfterParse(_) => "s3.denied",
        Kind::Completion(c) => match (c.outcome, c.stop_kind.is_some()) {
            (Outcome::Complete, false) => "s3.complete complete",
            (Outcome::ClientGone, false) => "s3.complete client gone",
            (Outcome::Cut, _) | (Outcome::Complete | Outcome::ClientGone, true) => {
                "s3.complete cut"
            }
        },
        Kind::Share(u) => match u.decision {
            Verdict::Allowed => "share allowed",
            Verdict::Denied => "share denied",
        },
        Kind::Lifecycle(l) => l.name(),
        Kind::Checkpoint(_) => "checkpoint",
    }
}

#[test]
fn every_version_1_record_reads_and_serialises_back_to_its_hashed_bytes() {
    let lines: Vec<&str> = RECORDS_V1.lines().chain(TRAIL_V1.lines()).collect();
    assert!(lines.len() > 150, "{}", lines.len());
    for line in lines {
        let raw = raw_body(line);
        let body = Body::deserialize(&raw).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(body.v, None, "{line}");
        assert_eq!(body.version(), 1);
        // What the chain hashes: the canonical form of the body as stored.
        assert_eq!(body.canonical(), canonical(&raw), "{line}");
        // Today's lines store that form as it is.
        assert!(
            line.contains(&format!(r#""body":{},"hash""#, body.canonical())),
            "{line}"
        );
    }
}

#[test]
fn the_fixture_has_a_record_of_every_shape() {
    let mut found: Vec<&str> = RECORDS_V1
        .lines()
        .map(|line| shape(&Body::deserialize(&raw_body(line)).unwrap().kind))
        .collect();
    found.sort_unstable();
    let mut every = vec![
        "s3 allowed",
        "s3 denied",
        "s3 refused",
        "s3.denied",
        "s3.complete complete",
        "s3.complete client gone",
        "s3.complete cut",
        "share allowed",
        "share denied",
        "checkpoint",
        "request.created",
        "request.approved",
        "request.denied",
        "request.withdrawn",
        "request.timed_out",
        "request.not_stored",
        "grant.started",
        "grant.expiring_soon",
        "grant.expired",
        "grant.revoked",
        "grant.created",
        "credentials.issued",
        "user.added",
        "mfa.enrolled",
        "mfa.reset",
        "share.created",
        "share.revoked",
        "action.undone",
        "policy.reloaded",
        "audit.repaired",
        "audit.pruned",
    ];
    every.sort_unstable();
    assert_eq!(found, every);
}

#[test]
fn a_new_body_says_its_version_and_reads_back_the_same() {
    let body = note("a reload");
    let text = body.canonical();
    assert_eq!(
        text,
        r#"{"at":"2026-11-29T10:00:00Z","event":"policy.reloaded","kind":"lifecycle","summary":"a reload","v":3}"#
    );
    let back: Body = serde_json::from_str(&text).unwrap();
    assert_eq!(back, body);
    assert_eq!(back.version(), VERSION);
}

#[test]
fn times_are_written_to_the_second_in_utc() {
    let body = Body::new(Lifecycle::PolicyReloaded(Note {
        at: time::macros::datetime!(2026-11-29 10:00:00.75 +02:00),
        summary: String::new(),
    }));
    assert!(
        body.canonical().contains(r#""at":"2026-11-29T08:00:00Z""#),
        "{}",
        body.canonical()
    );
}

#[test]
fn a_body_of_an_unknown_kind_or_a_missing_field_is_refused() {
    for text in [
        r#"{"kind":"s3.teleported","at":"2026-11-29T10:00:00Z"}"#,
        r#"{"kind":"lifecycle","event":"grant.created","at":"2026-11-29T10:00:00Z"}"#,
        r#"{"kind":"s3","decision":"maybe","at":"2026-11-29T10:00:00Z","op":"GetObject"}"#,
    ] {
        assert!(serde_json::from_str::<Body>(text).is_err(), "{text}");
    }
}

/// Version 2 adds the typed denial to refusals: a version-1 refusal reads without one and
/// keeps its bytes; a version-2 one carries it beside the code and message, and reads back.
#[test]
fn refusals_carry_their_denial_from_version_2_and_older_ones_read_without() {
    let old_denials: Vec<Body> = RECORDS_V1
        .lines()
        .map(|line| Body::deserialize(&raw_body(line)).unwrap())
        .filter(|b| matches!(shape(&b.kind), "s3 denied" | "s3.denied" | "share denied"))
        .collect();
    assert_eq!(old_denials.len(), 3);
    for body in &old_denials {
        assert_eq!(body.kind.denial(), None, "{body:?}");
        assert!(
            !body.canonical().contains("\"denial\""),
            "{}",
            body.canonical()
        );
    }

    let at = time::macros::datetime!(2026-11-29 10:00 UTC);
    let body = examples::decision(
        examples::Use {
            at,
            op: "GetObject",
            principal: "alice",
            grant: "g-1",
            bucket: "data",
            key: "b/x",
        },
        false,
    );
    let text = body.canonical();
    assert!(
        text.contains(concat!(
            r#""denial":{"action":"read","bucket":"data","#,
            r#""grant":{"actions":"read","id":"g-1","scope":"s3://data/elsewhere/"},"#,
            r#""key":"b/x","reason":"outside_scope"}"#
        )),
        "{text}"
    );
    let back: Body = serde_json::from_str(&text).unwrap();
    assert_eq!(back, body);
    assert_eq!(back.kind.denial().map(Denial::name), Some("outside_scope"));
}

/// Version 3 names the replica whose chain holds each record: every body of the version-3
/// fixture says its version and its chain's replica, and serialises back to the bytes its
/// hash covers; a version-1 body reads without a replica and gains none when serialised
/// again. A body kept to be written later is written as the current version, naming the
/// replica that writes it.
#[test]
fn bodies_name_their_replica_from_version_3_and_older_ones_read_without() {
    let mut kinds = std::collections::BTreeSet::new();
    for (replica, trail) in TRAILS_V3 {
        for line in trail.lines() {
            let raw = raw_body(line);
            let body = Body::deserialize(&raw).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(
                (body.version(), body.replica.as_deref()),
                (3, Some(replica)),
                "{line}"
            );
            assert_eq!(body.canonical(), canonical(&raw), "{line}");
            kinds.insert(shape(&body.kind));
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "checkpoint",
            "policy.reloaded",
            "s3 allowed",
            "s3 denied",
            "s3 refused",
            "s3.complete complete",
            "share denied"
        ]
    );

    for line in RECORDS_V1.lines() {
        let body = Body::deserialize(&raw_body(line)).unwrap();
        assert_eq!(body.replica, None);
        assert!(!body.canonical().contains("\"replica\""), "{line}");
    }

    let mut kept = Body::deserialize(&raw_body(RECORDS_V1.lines().next().unwrap())).unwrap();
    kept.v = Some(2);
    let written = kept.written_by("r-0a1b2c3d");
    assert_eq!(
        (written.version(), written.replica.as_deref()),
        (VERSION, Some("r-0a1b2c3d"))
    );
    let back: Body = serde_json::from_str(&written.canonical()).unwrap();
    assert_eq!(back, written);
}

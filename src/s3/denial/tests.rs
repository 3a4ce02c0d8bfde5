//! What each denial says on the wire, one row per variant: its S3 code, its status and its
//! exact message. The integration tests assert many of these texts through real clients;
//! here a change to one is seen first.

use std::collections::BTreeSet;

use super::*;
use crate::model::Action;
use crate::record::GrantName;
use time::macros::datetime;

fn grant() -> GrantName {
    GrantName {
        id: "g-1".into(),
        scope: "s3://data/a/".into(),
        actions: "read,list".into(),
    }
}

/// Every variant, each numbered by [`Denial::index`].
const VARIANTS: usize = Denial::REASONS.len();

fn expired() -> Denial {
    Denial::Expired {
        grant: "g-1".into(),
        expires_at: datetime!(2026-11-29 11:00 UTC),
    }
}

/// A denial, the code and status it answers with, and its message.
#[allow(clippy::too_many_lines)] // a table: one short row per variant
fn rows() -> Vec<(Denial, &'static str, u16, &'static str)> {
    vec![
        (
            Denial::Anonymous,
            "AccessDenied",
            403,
            "anonymous requests are refused: sign requests with the credentials of a Sesame grant",
        ),
        (
            Denial::UnknownKey {
                access_key: "SESAXYZ".into(),
            },
            "InvalidAccessKeyId",
            403,
            "access key SESAXYZ is not a Sesame credential: ask for a grant and use the credentials it prints",
        ),
        (
            Denial::KeyUnbound,
            "InvalidAccessKeyId",
            403,
            "access key is not a Sesame credential",
        ),
        (
            Denial::MissingToken,
            "InvalidToken",
            400,
            "the session token is missing: Sesame credentials come with one (AWS_SESSION_TOKEN)",
        ),
        (
            Denial::BadToken,
            "InvalidToken",
            400,
            "the session token does not belong to this access key",
        ),
        (
            Denial::NotYetActive {
                grant: "g-1".into(),
                starts_at: datetime!(2026-11-29 10:00 UTC),
            },
            "AccessDenied",
            403,
            "grant g-1 starts at 2026-11-29T10:00:00Z; it is not active yet",
        ),
        (
            expired(),
            "ExpiredToken",
            400,
            "grant g-1 expired at 2026-11-29T11:00:00Z; ask for access again",
        ),
        (
            Denial::Revoked {
                grant: "g-1".into(),
                at: datetime!(2026-11-29 10:30 UTC),
                by: Some("bob".into()),
            },
            "AccessDenied",
            403,
            "grant g-1 was revoked at 2026-11-29T10:30:00Z by bob",
        ),
        (
            Denial::Revoked {
                grant: "g-1".into(),
                at: datetime!(2026-11-29 10:30 UTC),
                by: None,
            },
            "AccessDenied",
            403,
            "grant g-1 was revoked at 2026-11-29T10:30:00Z",
        ),
        (
            Denial::OperationNotAllowed {
                op: "PutBucketPolicy".into(),
            },
            "AccessDenied",
            403,
            "operation PutBucketPolicy is not allowed through Sesame",
        ),
        (
            Denial::WrongTarget {
                op: "GetObject".into(),
                target: "bucket data".into(),
            },
            "InvalidRequest",
            400,
            "operation GetObject does not apply to bucket data",
        ),
        (
            Denial::ActionNotAllowed {
                grant: grant(),
                action: Action::Write,
            },
            "AccessDenied",
            403,
            "grant g-1 (s3://data/a/, read,list) does not allow write",
        ),
        (
            Denial::OutsideBucket {
                grant: grant(),
                bucket: "other".into(),
            },
            "AccessDenied",
            403,
            "grant g-1 (s3://data/a/, read,list) does not cover bucket other",
        ),
        (
            Denial::DotSegment {
                key: "a/../b".into(),
            },
            "AccessDenied",
            403,
            "key \"a/../b\" has a '.' or '..' segment, which Sesame refuses",
        ),
        (
            Denial::BlankKey,
            "InvalidArgument",
            400,
            "keys made only of whitespace are not supported through Sesame",
        ),
        (
            Denial::OutsideScope {
                grant: grant(),
                bucket: "data".into(),
                key: "a-secrets/x".into(),
                action: Action::Read,
            },
            "AccessDenied",
            403,
            "grant g-1 (s3://data/a/, read,list) does not cover s3://data/a-secrets/x for read",
        ),
        (
            Denial::ListOutsideScope {
                grant: grant(),
                bucket: "data".into(),
                prefix: "b/".into(),
            },
            "AccessDenied",
            403,
            "grant g-1 (s3://data/a/, read,list) does not cover listing s3://data/b/: list with a prefix inside the grant",
        ),
        (
            Denial::CopySourceNotObject,
            "AccessDenied",
            403,
            "copy sources must be bucket/key; access points and outposts are refused",
        ),
        (
            Denial::UploadNotYours {
                upload_id: "u-1".into(),
                bucket: "data".into(),
                key: "a/x".into(),
                grant: "g-1".into(),
                principal: "alice".into(),
            },
            "NoSuchUpload",
            404,
            "upload id \"u-1\" is not one started for s3://data/a/x under grant g-1 or another grant of alice: use the id CreateMultipartUpload returned for this key",
        ),
        (
            Denial::LimitReached {
                message: "grant g-1 reached its limit of 2 objects read and written".into(),
            },
            "AccessDenied",
            403,
            "grant g-1 reached its limit of 2 objects read and written",
        ),
        (
            Denial::HeaderNotSigned {
                name: "x-amz-meta-a".into(),
            },
            "AccessDenied",
            403,
            "header x-amz-meta-a is not signed: every x-amz-* header must be part of the signature",
        ),
        (
            Denial::HeaderNotAllowed {
                name: "x-amz-acl".into(),
            },
            "AccessDenied",
            403,
            "header x-amz-acl is not accepted by this gateway: access is given by Sesame grants, never by ACLs",
        ),
        (
            Denial::FormUpload,
            "NotImplemented",
            501,
            "form POST uploads (multipart/form-data) are not accepted by Sesame: upload with a SigV4-signed PUT using the credentials of a grant, or share a link to read",
        ),
        (
            Denial::LinkMethodNotAllowed,
            "MethodNotAllowed",
            405,
            "share links answer GET and HEAD only",
        ),
        (
            Denial::LinkTokenInvalid,
            "AccessDenied",
            403,
            "this share link is not valid: it was altered or cut short; ask its sender for the whole link",
        ),
        (
            Denial::LinkUnknown {
                share: "s-1".into(),
            },
            "AccessDenied",
            403,
            "share link s-1 does not exist on this gateway",
        ),
        (
            Denial::LinkEnded {
                share: "s-1".into(),
                message: "share link s-1 was revoked by bob".into(),
            },
            "AccessDenied",
            403,
            "share link s-1 was revoked by bob",
        ),
        (
            Denial::LinkGrantGone {
                share: "s-1".into(),
            },
            "AccessDenied",
            403,
            "the grant behind share link s-1 is gone",
        ),
        (
            Denial::LinkGrantEnded {
                share: "s-1".into(),
                why: Box::new(expired()),
            },
            "AccessDenied",
            403,
            "share link s-1 no longer works: grant g-1 expired at 2026-11-29T11:00:00Z; ask for access again",
        ),
        (
            Denial::LinkOutsideGrant {
                grant: "g-1".into(),
                uri: "s3://data/b/x".into(),
            },
            "AccessDenied",
            403,
            "grant g-1 no longer covers s3://data/b/x",
        ),
        (
            Denial::Unrecorded {
                error: "the audit trail cannot be written: disk full".into(),
            },
            "ServiceUnavailable",
            503,
            "the audit trail cannot be written: disk full",
        ),
        (
            Denial::Uncounted,
            "ServiceUnavailable",
            503,
            "the download could not be counted; try again",
        ),
        (
            Denial::StaleState {
                store: "postgresql db.internal:5432/sesame".into(),
                seconds: 7,
            },
            "ServiceUnavailable",
            503,
            "this gateway has not reached its store (postgresql db.internal:5432/sesame) for 7s, so it cannot know whether access was revoked meanwhile; it refuses until the store is back (try again, or another gateway)",
        ),
        (
            Denial::NotDecided,
            "AccessDenied",
            403,
            "request was not authorised",
        ),
    ]
}

#[test]
fn every_denial_says_its_code_status_and_message() {
    for (denial, code, status, message) in rows() {
        assert_eq!(denial.code().as_str(), code, "{denial:?}");
        assert_eq!(denial.status().as_u16(), status, "{denial:?}");
        assert_eq!(denial.message(), message, "{denial:?}");
    }
}

/// A new variant needs its place in `Denial::index` to compile, and then a row here.
#[test]
fn every_variant_has_a_row() {
    let covered: BTreeSet<usize> = rows().iter().map(|(d, ..)| d.index()).collect();
    assert_eq!(covered, (0..VARIANTS).collect::<BTreeSet<_>>());
}

/// Each variant's name in the list readers check against is the tag it is serialised with.
#[test]
fn the_list_of_reasons_names_every_variant_as_it_is_serialised() {
    for (denial, ..) in rows() {
        let tag = serde_json::to_value(&denial).unwrap()["reason"].clone();
        assert_eq!(tag, denial.name(), "{denial:?}");
    }
}

/// The status is the one s3s gives the code by itself, so setting it changes no answer.
#[test]
fn the_status_is_the_codes_own() {
    for (denial, ..) in rows() {
        assert_eq!(
            denial.code().status_code(),
            Some(denial.status()),
            "{denial:?}"
        );
    }
}

#[test]
fn the_wire_error_carries_code_status_and_message() {
    for (denial, code, status, message) in rows() {
        let error = S3Error::from(denial);
        assert_eq!(error.code().as_str(), code);
        assert_eq!(error.status_code().map(|s| s.as_u16()), Some(status));
        assert_eq!(error.message(), Some(message));
    }
}

/// A denial serialises as its reason and the fields its message names, ready for the
/// trail to carry.
#[test]
fn a_denial_serialises_as_its_reason_and_fields() {
    let denial = Denial::OutsideScope {
        grant: grant(),
        bucket: "data".into(),
        key: "a-secrets/x".into(),
        action: Action::Read,
    };
    assert_eq!(
        serde_json::to_value(&denial).unwrap(),
        serde_json::json!({
            "reason": "outside_scope",
            "grant": {"id": "g-1", "scope": "s3://data/a/", "actions": "read,list"},
            "bucket": "data",
            "key": "a-secrets/x",
            "action": "read",
        })
    );
    let nested = Denial::LinkGrantEnded {
        share: "s-1".into(),
        why: Box::new(expired()),
    };
    assert_eq!(
        serde_json::to_value(&nested).unwrap(),
        serde_json::json!({
            "reason": "link_grant_ended",
            "share": "s-1",
            "why": {"reason": "expired", "grant": "g-1", "expires_at": "2026-11-29T11:00:00Z"},
        })
    );
}

/// Every denial goes into each record that can carry one (an S3 decision, a refusal after
/// parsing, a share-link use) beside the code and message the client got, as the writers
/// build them, and comes back out of the record's stored form as the same value: the trail
/// re-serialises it to the bytes it hashed, and the reason a reader matches on is the tag
/// it was written with.
#[test]
fn every_denial_round_trips_through_the_records_that_carry_it() {
    use crate::record::{Body, Decision, DeniedAfterParse, Kind, S3, ShareUse, Verdict};
    let at = datetime!(2026-11-29 10:00 UTC);
    let facts = crate::record::examples::facts();
    // The denial rows, and one whose times carry fractions of a second and an offset.
    let mut denials: Vec<Denial> = rows().into_iter().map(|(d, ..)| d).collect();
    denials.push(Denial::Revoked {
        grant: "g-1".into(),
        at: datetime!(2026-11-29 10:30:00.123_456_789 +02:00),
        by: None,
    });
    for denial in denials {
        let Recorded {
            error_code,
            error,
            denial: typed,
        } = Recorded::of(Some(&denial));
        assert_eq!(error_code.as_deref(), Some(denial.code().as_str()));
        assert_eq!(error, Some(denial.message()));
        let bodies = [
            Body::new(S3::Denied(Decision {
                at,
                request: Some(facts.clone()),
                op: "GetObject".into(),
                access_key: Some("SESAABCDEFGHIJKLMNOP".into()),
                principal: Some("alice".into()),
                grant: Some("g-1".into()),
                bucket: Some("data".into()),
                key: Some("a/x".into()),
                error_code: error_code.clone(),
                error: error.clone(),
                denial: typed.clone(),
            })),
            Body::new(Kind::DeniedAfterParse(DeniedAfterParse {
                at,
                request: Some(facts.clone()),
                decision: Some(7),
                error_code: error_code.clone().unwrap(),
                error: error.clone(),
                denial: typed.clone(),
            })),
            Body::new(Kind::Share(ShareUse {
                at,
                request: facts.clone(),
                op: "GetObject".into(),
                share: Some("s-1".into()),
                downloads: Some(0),
                max_downloads: None,
                principal: Some("alice".into()),
                grant: Some("g-1".into()),
                bucket: Some("data".into()),
                key: Some("a/x".into()),
                decision: Verdict::Denied,
                error_code: error_code.clone(),
                error: error.clone(),
                denial: typed.clone(),
            })),
        ];
        for body in bodies {
            let text = body.canonical();
            let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(stored["denial"]["reason"], denial.name(), "{text}");
            assert_eq!(stored["error_code"], denial.code().as_str(), "{text}");
            let back: Body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(back.kind.denial(), Some(&denial), "{text}");
            assert_eq!(back, body, "{text}");
            assert_eq!(back.canonical(), text);
        }
    }
}

/// Each binding failure of the grant book has its own denial.
#[test]
fn binding_failures_map_to_their_denials() {
    use crate::grant::book::BindError;
    assert_eq!(Denial::from(BindError::UnknownKey), Denial::KeyUnbound);
    assert_eq!(Denial::from(BindError::MissingToken), Denial::MissingToken);
    assert_eq!(Denial::from(BindError::BadToken), Denial::BadToken);
}

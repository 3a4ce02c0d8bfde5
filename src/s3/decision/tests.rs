//! The decision as a table: one row per outcome, each a grant, what is asked, when, and the
//! verdict. Every variant the decision can return has a row (the last test checks it).

use std::collections::BTreeSet;

use super::*;
use crate::record::GrantName;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);
const HOUR: time::Duration = time::Duration::hours(1);

/// `read,list` on `s3://data/a/` from T0 for an hour.
fn reader() -> Grant {
    let mut grant = crate::model::example_grant("g-1", T0, T0 + HOUR);
    grant.scope = crate::model::Scope::parse("s3://data/a/", vec![Action::Read, Action::List])
        .expect("a valid scope");
    grant
}

/// The reader's grant, starting an hour from T0.
fn scheduled() -> Grant {
    Grant {
        starts_at: T0 + HOUR,
        expires_at: T0 + HOUR * 2,
        ..reader()
    }
}

/// The reader's grant, revoked by bob half an hour in.
fn revoked() -> Grant {
    Grant {
        revoked_at: Some(T0 + HOUR / 2),
        revoked_by: Some("bob".into()),
        ..reader()
    }
}

/// `list` only, on the same prefix.
fn lister() -> Grant {
    let mut grant = reader();
    grant.scope = crate::model::Scope::parse("s3://data/a/", vec![Action::List]).unwrap();
    grant
}

fn object(bucket: &str, key: &str) -> S3Path {
    S3Path::Object {
        bucket: bucket.into(),
        key: key.into(),
    }
}

fn bucket(bucket: &str) -> S3Path {
    S3Path::Bucket {
        bucket: bucket.into(),
    }
}

fn source(bucket: &str, key: &str) -> CopySource {
    CopySource::Bucket {
        bucket: bucket.into(),
        key: key.into(),
        version_id: None,
    }
}

/// What a row asks of the grant: an operation on its path, or one of the checks on the
/// parsed input, or a share link's use.
enum Ask {
    Op(&'static str, S3Path),
    ListPrefix(&'static str, Option<&'static str>),
    CopySource(CopySource),
    DeletedKey(&'static str, &'static str),
    Link(&'static str, &'static str),
}

fn ask(grant: &Grant, ask: &Ask, now: OffsetDateTime) -> Result<(), Denial> {
    match ask {
        Ask::Op(op, path) => decide(grant, op, path, now).map(|rule| {
            assert_eq!(rule.op, *op, "the rule returned is the operation's own");
        }),
        Ask::ListPrefix(bucket, prefix) => require_list_prefix(grant, bucket, *prefix),
        Ask::CopySource(source) => require_copy_source(grant, source),
        Ask::DeletedKey(bucket, key) => require_key(grant, bucket, key, Action::Delete),
        Ask::Link(bucket, key) => decide_link(grant, "s-1", bucket, key, now),
    }
}

fn name(grant: &Grant) -> GrantName {
    GrantName::from(grant)
}

#[allow(clippy::too_many_lines)] // a table: one short row per outcome
fn rows() -> Vec<(Grant, Ask, OffsetDateTime, Result<(), Denial>)> {
    let r = reader();
    let soon = T0 + HOUR / 4;
    vec![
        // Inside the window, scope and table: every kind of path is allowed.
        (
            r.clone(),
            Ask::Op("GetObject", object("data", "a/x.csv")),
            soon,
            Ok(()),
        ),
        (
            r.clone(),
            Ask::Op("ListObjectsV2", bucket("data")),
            soon,
            Ok(()),
        ),
        (
            r.clone(),
            Ask::Op("ListBuckets", S3Path::Root),
            soon,
            Ok(()),
        ),
        // Before the window opens.
        (
            scheduled(),
            Ask::Op("GetObject", object("data", "a/x.csv")),
            soon,
            Err(Denial::NotYetActive {
                grant: "g-1".into(),
                starts_at: T0 + HOUR,
            }),
        ),
        // At the very end of the window: expired (the end is exclusive).
        (
            r.clone(),
            Ask::Op("GetObject", object("data", "a/x.csv")),
            T0 + HOUR,
            Err(Denial::Expired {
                grant: "g-1".into(),
                expires_at: T0 + HOUR,
            }),
        ),
        // Revoked: said with when and by whom, even before the window would have ended.
        (
            revoked(),
            Ask::Op("GetObject", object("data", "a/x.csv")),
            soon,
            Err(Denial::Revoked {
                grant: "g-1".into(),
                at: T0 + HOUR / 2,
                by: Some("bob".into()),
            }),
        ),
        // Time comes first: an expired grant is told so even for an operation never allowed.
        (
            r.clone(),
            Ask::Op("PutBucketPolicy", bucket("data")),
            T0 + HOUR * 2,
            Err(Denial::Expired {
                grant: "g-1".into(),
                expires_at: T0 + HOUR,
            }),
        ),
        // Bucket configuration is not in the table.
        (
            r.clone(),
            Ask::Op("PutBucketPolicy", bucket("data")),
            soon,
            Err(Denial::OperationNotAllowed {
                op: "PutBucketPolicy".into(),
            }),
        ),
        // A write with a read grant, inside its prefix.
        (
            r.clone(),
            Ask::Op("PutObject", object("data", "a/x.csv")),
            soon,
            Err(Denial::ActionNotAllowed {
                grant: name(&r),
                action: Action::Write,
            }),
        ),
        // An object operation on a bucket path.
        (
            r.clone(),
            Ask::Op("GetObject", bucket("data")),
            soon,
            Err(Denial::WrongTarget {
                op: "GetObject".into(),
                target: "bucket data".into(),
            }),
        ),
        // A bucket operation on another bucket.
        (
            r.clone(),
            Ask::Op("HeadBucket", bucket("other")),
            soon,
            Err(Denial::OutsideBucket {
                grant: name(&r),
                bucket: "other".into(),
            }),
        ),
        // A key that climbs out of the prefix.
        (
            r.clone(),
            Ask::Op("GetObject", object("data", "a/../b/x")),
            soon,
            Err(Denial::DotSegment {
                key: "a/../b/x".into(),
            }),
        ),
        // A key of spaces.
        (
            r.clone(),
            Ask::Op("GetObject", object("data", "  ")),
            soon,
            Err(Denial::BlankKey),
        ),
        // The prefix boundary: a/ never reaches a-secrets/.
        (
            r.clone(),
            Ask::Op("GetObject", object("data", "a-secrets/x")),
            soon,
            Err(Denial::OutsideScope {
                grant: name(&r),
                bucket: "data".into(),
                key: "a-secrets/x".into(),
                action: Action::Read,
            }),
        ),
        // Listing inside the prefix, then outside it, then the whole bucket.
        (
            r.clone(),
            Ask::ListPrefix("data", Some("a/2026/")),
            soon,
            Ok(()),
        ),
        (
            r.clone(),
            Ask::ListPrefix("data", Some("b/")),
            soon,
            Err(Denial::ListOutsideScope {
                grant: name(&r),
                bucket: "data".into(),
                prefix: "b/".into(),
            }),
        ),
        (
            r.clone(),
            Ask::ListPrefix("data", None),
            soon,
            Err(Denial::ListOutsideScope {
                grant: name(&r),
                bucket: "data".into(),
                prefix: String::new(),
            }),
        ),
        // A copy source is read: inside the grant, outside it, and without read at all.
        (
            r.clone(),
            Ask::CopySource(source("data", "a/x")),
            soon,
            Ok(()),
        ),
        (
            r.clone(),
            Ask::CopySource(source("data", "a-secrets/x")),
            soon,
            Err(Denial::OutsideScope {
                grant: name(&r),
                bucket: "data".into(),
                key: "a-secrets/x".into(),
                action: Action::Read,
            }),
        ),
        (
            lister(),
            Ask::CopySource(source("data", "a/x")),
            soon,
            Err(Denial::ActionNotAllowed {
                grant: name(&lister()),
                action: Action::Read,
            }),
        ),
        // Access point and outpost sources are refused whatever they name.
        (
            r.clone(),
            Ask::CopySource(CopySource::AccessPoint {
                partition: "aws".into(),
                region: "us-east-1".into(),
                account_id: "123456789012".into(),
                access_point_name: "ap".into(),
                key: "a/x".into(),
                version_id: None,
            }),
            soon,
            Err(Denial::CopySourceNotObject),
        ),
        // Each deleted key needs delete, which a reader does not have.
        (
            r.clone(),
            Ask::DeletedKey("data", "a/x"),
            soon,
            Err(Denial::ActionNotAllowed {
                grant: name(&r),
                action: Action::Delete,
            }),
        ),
        // A link reads through its grant: allowed, then the grant ended, then out of scope.
        (r.clone(), Ask::Link("data", "a/x.csv"), soon, Ok(())),
        (
            revoked(),
            Ask::Link("data", "a/x.csv"),
            soon,
            Err(Denial::LinkGrantEnded {
                share: "s-1".into(),
                why: Box::new(Denial::Revoked {
                    grant: "g-1".into(),
                    at: T0 + HOUR / 2,
                    by: Some("bob".into()),
                }),
            }),
        ),
        (
            r.clone(),
            Ask::Link("data", "a-secrets/x"),
            soon,
            Err(Denial::LinkOutsideGrant {
                grant: "g-1".into(),
                uri: "s3://data/a-secrets/x".into(),
            }),
        ),
        // A grant narrowed to list no longer lets its links read.
        (
            lister(),
            Ask::Link("data", "a/x.csv"),
            soon,
            Err(Denial::LinkOutsideGrant {
                grant: "g-1".into(),
                uri: "s3://data/a/x.csv".into(),
            }),
        ),
    ]
}

#[test]
fn every_row_gets_its_verdict() {
    for (i, (grant, asked, now, expected)) in rows().iter().enumerate() {
        assert_eq!(ask(grant, asked, *now), *expected, "row {i}");
    }
}

/// The variants the decision returns, by their serialised reason; a new one needs a row.
#[test]
fn the_table_covers_every_denial_the_decision_returns() {
    let covered: BTreeSet<String> = rows()
        .into_iter()
        .filter_map(|(_, _, _, verdict)| verdict.err())
        .map(|denial| {
            serde_json::to_value(denial).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = [
        "not_yet_active",
        "expired",
        "revoked",
        "operation_not_allowed",
        "action_not_allowed",
        "wrong_target",
        "outside_bucket",
        "dot_segment",
        "blank_key",
        "outside_scope",
        "list_outside_scope",
        "copy_source_not_object",
        "link_grant_ended",
        "link_outside_grant",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(covered, expected);
}

/// Every operation in the table is allowed to a grant with all four actions, on the kind
/// of path its row names, inside the grant.
#[test]
fn every_row_of_the_table_is_allowed_inside_a_full_grant() {
    let mut grant = reader();
    grant.scope = crate::model::Scope::parse("s3://data/a/", Action::ALL.to_vec()).unwrap();
    for rule in crate::s3::ops::TABLE {
        let path = match rule.target {
            Target::Root => S3Path::Root,
            Target::Bucket => bucket("data"),
            Target::Object => object("data", "a/x"),
        };
        assert_eq!(decide(&grant, rule.op, &path, T0), Ok(rule), "{}", rule.op);
    }
}

//! The access checks' wiring: every extra check the operation table names on a row has an
//! s3s hook that Sesame overrides, and that hook refuses a request outside the grant. s3s's
//! hooks default to allow, so a forgotten or deleted override would let such a request
//! through; here it fails instead.

use s3s::S3ErrorCode;
use s3s::dto::{
    AbortMultipartUploadInput, CompleteMultipartUploadInput, CopyObjectInput, CopySource, Delete,
    DeleteObjectsInput, ListMultipartUploadsInput, ListObjectVersionsInput, ListObjectsInput,
    ListObjectsV2Input, ListPartsInput, ObjectIdentifier, UploadPartCopyInput, UploadPartInput,
};
use time::macros::datetime;

use super::*;
use crate::clock::{ManualClock, SharedClock};
use crate::model::Scope;
use crate::s3::ops::{Extra, TABLE};
use crate::secret::Key;
use crate::store::UploadBinding;

const BUCKET: &str = "data";
/// The key every crafted request names; inside the grant.
const KEY: &str = "a/x";
/// The upload Sesame bound to [`KEY`] for the grant's principal.
const BOUND: &str = "u-bound";

/// The access checks over a real grant book, trail and upload book, and a live grant with
/// every action on `s3://data/a/`.
struct Fixture {
    access: Access,
    grant: LiveGrant,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(datetime!(2026-11-29 10:00 UTC)));
    let store = crate::store::open_file(&dir.path().join("s.redb"))
        .await
        .unwrap();
    let grants = Arc::new(
        Grants::open(store.clone(), clock.clone(), Key::from_bytes([7; 32]))
            .await
            .unwrap(),
    );
    let scope = Scope::parse("s3://data/a/", Action::ALL.to_vec()).unwrap();
    let granted = grants
        .create("alice", scope, None, time::Duration::hours(1))
        .await
        .unwrap();
    let uploads = Arc::new(Uploads::open(store).await.unwrap());
    uploads
        .bind(UploadBinding {
            bucket: BUCKET.into(),
            key: KEY.into(),
            upload_id: BOUND.into(),
            principal: "alice".into(),
            grant_id: granted.id.clone(),
            created_at: clock.now(),
        })
        .await
        .unwrap();
    let audit_dir = dir.path().join("audit");
    let audit = crate::audit::AuditLog::open(&audit_dir, &crate::audit::Settings::default(), clock)
        .unwrap();
    Fixture {
        grant: grants.subscribe(&granted.id).unwrap(),
        access: Access {
            grants,
            audit,
            meter: Arc::default(),
            uploads,
        },
        _dir: dir,
    }
}

/// A request as s3s hands it to a hook: parsed, and allowed under `grant` by `check`.
fn request<T>(input: T, grant: &LiveGrant) -> S3Request<T> {
    let mut extensions = hyper::http::Extensions::new();
    extensions.insert(Allowed {
        grant: grant.clone(),
    });
    S3Request {
        input,
        method: hyper::Method::GET,
        uri: hyper::Uri::from_static("/"),
        headers: hyper::HeaderMap::new(),
        extensions,
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// What a crafted request names for each resource an extra check looks at: inside the
/// grant, or (for the one check under test) outside it.
struct Names {
    list_prefix: &'static str,
    copy_source: CopySource,
    deleted: Vec<&'static str>,
    upload_id: &'static str,
}

impl Names {
    fn inside() -> Names {
        Names {
            list_prefix: "a/",
            copy_source: source("a/y"),
            deleted: vec!["a/x", "a/y"],
            upload_id: BOUND,
        }
    }

    /// Inside, except for what `extra` checks, with the code its hook refuses that with;
    /// none for the checks that narrow or bind the answer in the operation itself
    /// (`gateway.rs`, driven against real backends in tests/it/), which have no input to
    /// refuse.
    fn outside(extra: Extra) -> Option<(Names, S3ErrorCode)> {
        let mut names = Names::inside();
        let code = match extra {
            Extra::ListPrefix => {
                names.list_prefix = "a-secrets/";
                S3ErrorCode::AccessDenied
            }
            Extra::CopySource => {
                names.copy_source = source("a-secrets/x");
                S3ErrorCode::AccessDenied
            }
            Extra::EachDeletedKey => {
                // Only the last key is outside: every key is checked, not the first.
                names.deleted = vec!["a/x", "a-secrets/x"];
                S3ErrorCode::AccessDenied
            }
            Extra::BoundUpload => {
                names.upload_id = "made-up";
                S3ErrorCode::NoSuchUpload
            }
            Extra::FilterBuckets | Extra::FilterUploads | Extra::BindsUpload => return None,
        };
        Some((names, code))
    }
}

fn source(key: &str) -> CopySource {
    CopySource::Bucket {
        bucket: BUCKET.into(),
        key: key.into(),
        version_id: None,
    }
}

/// Sends a request for `op` naming `n` through the hook s3s calls for `op`. Every operation
/// of the table with a check on its input needs an arm here, and the arm's hook must be
/// Sesame's: s3s's default allows everything.
#[allow(clippy::too_many_lines)] // one short arm per operation with a check on its input
async fn through_hook(f: &Fixture, op: &str, n: Names) -> S3Result<()> {
    let (a, g) = (&f.access, &f.grant);
    let (bucket, key) = (BUCKET.to_owned(), KEY.to_owned());
    let prefix = Some(n.list_prefix.to_owned());
    let upload_id = n.upload_id.to_owned();
    match op {
        "ListObjects" => {
            let input = ListObjectsInput {
                bucket,
                prefix,
                ..Default::default()
            };
            a.list_objects(&mut request(input, g)).await
        }
        "ListObjectsV2" => {
            let input = ListObjectsV2Input {
                bucket,
                prefix,
                ..Default::default()
            };
            a.list_objects_v2(&mut request(input, g)).await
        }
        "ListObjectVersions" => {
            let input = ListObjectVersionsInput {
                bucket,
                prefix,
                ..Default::default()
            };
            a.list_object_versions(&mut request(input, g)).await
        }
        "ListMultipartUploads" => {
            let input = ListMultipartUploadsInput {
                bucket,
                prefix,
                ..Default::default()
            };
            a.list_multipart_uploads(&mut request(input, g)).await
        }
        "ListParts" => {
            let input = ListPartsInput {
                bucket,
                key,
                upload_id,
                ..Default::default()
            };
            a.list_parts(&mut request(input, g)).await
        }
        "UploadPart" => {
            let input = UploadPartInput {
                bucket,
                key,
                upload_id,
                part_number: 1,
                ..Default::default()
            };
            a.upload_part(&mut request(input, g)).await
        }
        "UploadPartCopy" => {
            let input = UploadPartCopyInput::builder()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(1)
                .copy_source(n.copy_source)
                .build()
                .unwrap();
            a.upload_part_copy(&mut request(input, g)).await
        }
        "CompleteMultipartUpload" => {
            let input = CompleteMultipartUploadInput {
                bucket,
                key,
                upload_id,
                ..Default::default()
            };
            a.complete_multipart_upload(&mut request(input, g)).await
        }
        "AbortMultipartUpload" => {
            let input = AbortMultipartUploadInput {
                bucket,
                key,
                upload_id,
                ..Default::default()
            };
            a.abort_multipart_upload(&mut request(input, g)).await
        }
        "CopyObject" => {
            let input = CopyObjectInput::builder()
                .bucket(bucket)
                .key(key)
                .copy_source(n.copy_source)
                .build()
                .unwrap();
            a.copy_object(&mut request(input, g)).await
        }
        "DeleteObjects" => {
            let objects = n
                .deleted
                .iter()
                .map(|k| ObjectIdentifier {
                    key: (*k).to_owned(),
                    ..Default::default()
                })
                .collect();
            let delete = Delete {
                objects,
                quiet: None,
            };
            let input = DeleteObjectsInput::builder()
                .bucket(bucket)
                .delete(delete)
                .build()
                .unwrap();
            a.delete_objects(&mut request(input, g)).await
        }
        other => panic!(
            "no hook is called for {other}'s checks on its input: override its S3Access \
             method in access.rs and add a crafted request for it here"
        ),
    }
}

#[tokio::test]
async fn every_extra_check_on_the_input_has_a_hook_that_refuses_outside_the_grant() {
    let f = fixture().await;
    let mut checked = 0;
    for rule in TABLE {
        for &extra in rule.extra {
            let Some((outside, code)) = Names::outside(extra) else {
                continue;
            };
            // Inside the grant in every way, the hook lets the request on to the backend.
            let inside = through_hook(&f, rule.op, Names::inside()).await;
            assert!(inside.is_ok(), "{} inside the grant: {inside:?}", rule.op);
            // Outside it only where this check looks, the hook refuses it.
            let Err(refused) = through_hook(&f, rule.op, outside).await else {
                panic!(
                    "{}'s {extra:?} check let a request outside the grant through: is its \
                     S3Access hook overridden in access.rs?",
                    rule.op
                );
            };
            assert_eq!(refused.code(), &code, "{} {extra:?}", rule.op);
            checked += 1;
        }
    }
    // 4 list prefixes, 2 copy sources, 1 batch delete, 5 upload ids.
    assert_eq!(checked, 12);
}

/// A hook runs only after `check` allowed the request; without that proof it refuses.
#[tokio::test]
async fn a_hook_without_a_decision_refuses() {
    let f = fixture().await;
    let mut req = request(
        ListObjectsV2Input {
            bucket: BUCKET.into(),
            prefix: Some("a/".into()),
            ..Default::default()
        },
        &f.grant,
    );
    req.extensions = hyper::http::Extensions::new();
    let refused = f.access.list_objects_v2(&mut req).await.unwrap_err();
    assert_eq!(refused.message(), Some("request was not authorised"));
}

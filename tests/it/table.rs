//! Every row of the operation table (`src/s3/ops.rs`), called once by boto3: through Sesame
//! inside a grant it behaves exactly as the backend does directly; outside the grant, after
//! revocation and after expiry it is refused and never reaches the backend.

use std::collections::BTreeMap;
use std::process::Command;

use sesame::model::Action::{Delete, List, Read, Write};
use sesame::s3::{TABLE, rule_for};

use crate::harness::{BackendKind, Ctx, REGION, python_bin, run};

crate::on_every_backend!(every_operation_follows_its_grant);

/// Operation → `OK` or `Code<TAB>message`, as `every_operation.py` prints them.
type Outcomes = BTreeMap<String, String>;

fn every_operation(
    endpoint: &str,
    keys: (&str, &str, Option<&str>),
    bucket: &str,
    prefix: &str,
    bucket_ops_on: &str,
) -> Outcomes {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/every_operation.py");
    let mut cmd = Command::new(python_bin("python"));
    cmd.args([script, endpoint, bucket, prefix, bucket_ops_on])
        // Sesame credentials carry a session token; the backend's own keys do not.
        .args(keys.2.is_some().then_some("with-bucket-configuration"))
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", keys.0)
        .env("AWS_SECRET_ACCESS_KEY", keys.1)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(token) = keys.2 {
        cmd.env("AWS_SESSION_TOKEN", token);
    }
    let out = run(cmd);
    assert_eq!(out.code, 0, "{out:#?}");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(op, rest)| (op.to_owned(), rest.to_owned()))
        .collect()
}

/// `OK`, or the error code; a 500 is a server error whether or not the backend sent a body.
fn class(outcome: &str) -> &str {
    match outcome.split('\t').next().unwrap() {
        "500" | "InternalError" => "server error",
        code => code,
    }
}

/// Only the status of a HEAD error arrives: HEAD responses have no body to carry a code.
fn is_head(op: &str) -> bool {
    matches!(op, "HeadObject" | "HeadBucket")
}

#[track_caller]
fn assert_refused(outcomes: &Outcomes, op: &str, code: &str, head_status: &str, message: &str) {
    let got = &outcomes[op];
    if is_head(op) {
        assert!(got.starts_with(head_status), "{op}: {got}");
    } else {
        assert!(
            got.starts_with(&format!("{code}\t")) && got.contains(message),
            "{op}: expected {code} with {message:?}, got {got}"
        );
    }
}

async fn every_operation_follows_its_grant(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let six_mib: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 239) as u8).collect();
    let b = ctx
        .bucket_with(&[
            ("in/obj", b"inside"),
            ("out/obj", b"outside"),
            ("direct/obj", b"direct"),
        ])
        .await;
    for prefix in ["in/", "out/", "direct/"] {
        ctx.put(&b, &format!("{prefix}big"), &six_mib).await;
    }
    let other = ctx.bucket_with(&[]).await;
    let ops: Vec<&str> = TABLE.iter().map(|r| r.op).collect();

    let admin = (
        ctx.backend.access_key.as_str(),
        ctx.backend.secret.as_str(),
        None,
    );
    let direct = every_operation(&ctx.backend.endpoint, admin, &b, "direct/", &b);
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let keys = (
        cred.access_key_id.as_str(),
        cred.secret_access_key.expose(),
        Some(cred.session_token.expose()),
    );
    let inside = every_operation(&ctx.s3_url, keys, &b, "in/", &b);
    // Answered by Sesame itself, never by the backend (whose answers differ: Garage and the
    // directory backend have no ACLs; S3 answers its owner's CreateBucket differently by
    // region): an object's fixed ACL, an ACL write refused as unimplemented, and the bucket
    // the grant is in, which exists.
    assert_eq!(inside["GetObjectAcl"], "OK");
    assert!(
        inside["PutObjectAcl"].starts_with("NotImplemented\tSesame keeps no ACLs"),
        "{}",
        inside["PutObjectAcl"]
    );
    assert!(
        inside["CreateBucket"].starts_with("BucketAlreadyOwnedByYou\t"),
        "{}",
        inside["CreateBucket"]
    );
    for op in ops
        .iter()
        .filter(|op| !matches!(**op, "GetObjectAcl" | "PutObjectAcl" | "CreateBucket"))
    {
        // Same outcome as the backend gives directly (OK, or the backend's own error).
        assert_eq!(
            class(&inside[*op]),
            class(&direct[*op]),
            "{op} through Sesame vs direct: {} vs {}",
            inside[*op],
            direct[*op]
        );
    }
    assert_eq!(inside["GetObject"], "OK");
    assert_eq!(inside["PutObject"], "OK");
    // A bucket the grant is not in is never created.
    assert_refused(
        &inside,
        "CreateBucket(new)",
        "AccessDenied",
        "403",
        "does not cover",
    );
    for op in ["PutBucketPolicy", "PutBucketVersioning", "DeleteBucket"] {
        assert!(rule_for(op).is_none());
        assert_refused(
            &inside,
            op,
            "AccessDenied",
            "403",
            &format!("operation {op} is not allowed through Sesame"),
        );
    }

    let outside = every_operation(&ctx.s3_url, keys, &b, "out/", &other);
    for op in ops.iter().filter(|op| **op != "ListBuckets") {
        assert_refused(&outside, op, "AccessDenied", "403", "does not cover");
    }
    assert!(ctx.backend_object(&b, "out/put").await.is_none());
    assert!(ctx.backend_object(&b, "out/copy").await.is_none());
    assert_eq!(ctx.backend_object(&b, "out/obj").await.unwrap(), b"outside");

    ctx.revoke(&cred);
    let revoked = every_operation(&ctx.s3_url, keys, &b, "in/", &b);
    for op in &ops {
        assert_refused(&revoked, op, "AccessDenied", "403", "was revoked");
    }

    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let keys = (
        cred.access_key_id.as_str(),
        cred.secret_access_key.expose(),
        Some(cred.session_token.expose()),
    );
    ctx.expire_all();
    let expired = every_operation(&ctx.s3_url, keys, &b, "in/", &b);
    for op in &ops {
        assert_refused(&expired, op, "ExpiredToken", "400", "expired at");
    }
}

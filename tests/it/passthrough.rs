//! What passes through the gateway unchanged: ranges, metadata, tagging, conditional
//! requests and unusual keys behave as the backend makes them behave.

use sesame::model::Action::{Delete, Read, Write};

use crate::harness::{BackendKind, Ctx};

crate::on_every_backend!(
    tagging_metadata_and_ranges_pass_through,
    conditional_requests_and_odd_keys_behave_as_on_the_backend,
);

async fn tagging_metadata_and_ranges_pass_through(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("docs/readme.txt", b"0123456789")]).await;
    let cred = ctx.grant(&format!("s3://{b}/docs/"), &[Read, Write, Delete]);

    let out = ctx.aws(
        &cred,
        &[
            "s3api",
            "get-object",
            "--bucket",
            &b,
            "--key",
            "docs/readme.txt",
            "--range",
            "bytes=2-5",
            "/dev/stdout",
        ],
    );
    assert!(out.ok().stdout.starts_with("2345"), "{out:#?}");

    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &b,
            "--key",
            "docs/meta.txt",
            "--body",
            &ctx.empty_file(),
            "--metadata",
            "owner=alice",
            "--content-type",
            "text/plain",
        ],
    )
    .ok();
    let out = ctx.aws(
        &cred,
        &[
            "s3api",
            "head-object",
            "--bucket",
            &b,
            "--key",
            "docs/meta.txt",
        ],
    );
    assert!(out.ok().stdout.contains("\"owner\": \"alice\""), "{out:#?}");

    // Neither s3s-fs nor Garage implements object tagging: Sesame lets the call through to
    // the backend (which answers NotImplemented) only with the right action.
    let tagging = "TagSet=[{Key=class,Value=internal}]";
    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/readme.txt",
            "--tagging",
            tagging,
        ],
    )
    .refused("NotImplemented");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "get-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/readme.txt",
        ],
    )
    .refused("NotImplemented");
    let read_only = ctx.grant(&format!("s3://{b}/docs/"), &[Read]);
    ctx.aws(
        &read_only,
        &[
            "s3api",
            "put-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/readme.txt",
            "--tagging",
            "TagSet=[{Key=a,Value=b}]",
        ],
    )
    .refused("does not allow write");
    ctx.aws(
        &read_only,
        &[
            "s3api",
            "delete-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/readme.txt",
        ],
    )
    .refused("does not allow delete");
}

async fn conditional_requests_and_odd_keys_behave_as_on_the_backend(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("f.txt", b"content")]).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, Write]);
    let script = format!(
        r"
etag = s3.head_object(Bucket='{b}', Key='f.txt')['ETag']
try:
    s3.get_object(Bucket='{b}', Key='f.txt', IfNoneMatch=etag)
    print('no 304')
except botocore.exceptions.ClientError as e:
    print(e.response['ResponseMetadata']['HTTPStatusCode'], e.response['ResponseMetadata']['HTTPHeaders'].get('etag') == etag)
try:
    s3.put_object(Bucket='{b}', Key=' ', Body=b'space')
except botocore.exceptions.ClientError as e:
    print(e.response['Error']['Code'], e.response['Error']['Message'])
s3.put_object(Bucket='{b}', Key='sp ace/ü+%.txt', Body=b'odd')
print(s3.get_object(Bucket='{b}', Key='sp ace/ü+%.txt')['Body'].read().decode())
"
    );
    let out = ctx.boto3(&cred, &script);
    let expected = "304 True\nInvalidArgument keys made only of whitespace are not supported through Sesame\nodd\n";
    assert_eq!(out.ok().stdout, expected, "{out:#?}");
}

/// Neither s3s-fs nor Garage has object tagging; moto has, so the round trip is checked there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_round_trips_on_a_backend_that_has_it() {
    let ctx = Ctx::start(BackendKind::Moto).await;
    let b = ctx
        .bucket_with(&[("docs/a.txt", b"a"), ("other/b.txt", b"b")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/docs/"), &[Read, Write, Delete]);
    let tagging = "TagSet=[{Key=class,Value=internal}]";
    let tag = |cred, key: &str| {
        ctx.aws(
            cred,
            &[
                "s3api",
                "put-object-tagging",
                "--bucket",
                &b,
                "--key",
                key,
                "--tagging",
                tagging,
            ],
        )
    };
    tag(&cred, "docs/a.txt").ok();
    let out = ctx.aws(
        &cred,
        &[
            "s3api",
            "get-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/a.txt",
        ],
    );
    assert!(
        out.ok().stdout.contains("\"Value\": \"internal\""),
        "{out:#?}"
    );
    tag(&cred, "other/b.txt").refused("does not cover");
    let read_only = ctx.grant(&format!("s3://{b}/docs/"), &[Read]);
    tag(&read_only, "docs/a.txt").refused("does not allow write");
    ctx.aws(
        &read_only,
        &[
            "s3api",
            "delete-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/a.txt",
        ],
    )
    .refused("does not allow delete");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "delete-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/a.txt",
        ],
    )
    .ok();
    let out = ctx.aws(
        &read_only,
        &[
            "s3api",
            "get-object-tagging",
            "--bucket",
            &b,
            "--key",
            "docs/a.txt",
        ],
    );
    assert!(!out.ok().stdout.contains("internal"), "{out:#?}");
}

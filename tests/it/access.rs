//! Each action and operation of the table, allowed inside a grant and denied outside it,
//! after expiry and after revocation, as aws-cli, boto3 and aws-sdk-s3 report it.

use sesame::model::Action::{Delete, List, Read, Write};

use crate::harness::{BackendKind, Ctx};

crate::on_every_backend!(
    read_works_inside_the_prefix_and_nowhere_else,
    list_needs_a_prefix_inside_the_grant,
    list_buckets_shows_only_the_granted_bucket,
    write_puts_small_and_multipart_objects_inside_only,
    delete_checks_every_key_of_a_batch,
    copy_needs_read_on_the_source_and_write_on_the_destination,
    expired_grants_are_refused_by_every_client,
    revoked_grants_are_refused_at_once,
    a_grant_that_expired_while_the_gateway_was_down_is_refused_at_start,
);

async fn read_works_inside_the_prefix_and_nowhere_else(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[
            ("team-a/report.csv", b"a,b\n1,2\n"),
            ("team-a-secrets/keys", b"secret"),
        ])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/team-a/"), &[Read]);

    let out = ctx.aws(
        &cred,
        &["s3", "cp", &format!("s3://{b}/team-a/report.csv"), "-"],
    );
    assert_eq!(out.ok().stdout, "a,b\n1,2\n");

    // A sibling prefix that starts with the same letters is outside.
    ctx.get_object(&cred, &b, "team-a-secrets/keys")
        .refused("AccessDenied")
        .refused(&format!("does not cover s3://{b}/team-a-secrets/keys"));
    ctx.aws(
        &cred,
        &["s3", "cp", &format!("s3://{b}/team-a-secrets/keys"), "-"],
    )
    .refused("403");

    let out = ctx.boto3(&cred, &format!("print(s3.get_object(Bucket='{b}', Key='team-a/report.csv')['Body'].read().decode(), end='')"));
    assert_eq!(out.ok().stdout, "a,b\n1,2\n");
    ctx.boto3(
        &cred,
        &format!("s3.get_object(Bucket='{b}', Key='team-a-secrets/keys')"),
    )
    .refused("AccessDenied");

    let sdk = ctx.sdk(&cred);
    let got = sdk
        .get_object()
        .bucket(&b)
        .key("team-a/report.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"a,b\n1,2\n"
    );
    let err = sdk
        .get_object()
        .bucket(&b)
        .key("team-a-secrets/keys")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("AccessDenied"));

    // Read does not include list, write or delete.
    ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/team-a/")])
        .refused("does not allow list");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &b,
            "--key",
            "team-a/new",
            "--body",
            &ctx.empty_file(),
        ],
    )
    .refused("does not allow write");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "delete-object",
            "--bucket",
            &b,
            "--key",
            "team-a/report.csv",
        ],
    )
    .refused("does not allow delete");
    assert!(ctx.backend_object(&b, "team-a/report.csv").await.is_some());
}

async fn list_needs_a_prefix_inside_the_grant(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[
            ("team-a/1.csv", b"1"),
            ("team-a/sub/2.csv", b"2"),
            ("team-b/3.csv", b"3"),
        ])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/team-a/"), &[List]);

    let out = ctx.aws(
        &cred,
        &["s3", "ls", "--recursive", &format!("s3://{b}/team-a/")],
    );
    let listing = &out.ok().stdout;
    assert!(
        listing.contains("team-a/1.csv") && listing.contains("team-a/sub/2.csv"),
        "{listing}"
    );
    assert!(!listing.contains("team-b"), "{listing}");

    ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/")])
        .refused("does not cover listing");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "list-objects",
            "--bucket",
            &b,
            "--prefix",
            "team-b/",
        ],
    )
    .refused("AccessDenied");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &b,
            "--prefix",
            "team-a",
        ],
    )
    .refused("does not cover listing");
    ctx.aws(
        &cred,
        &[
            "s3api",
            "list-multipart-uploads",
            "--bucket",
            &b,
            "--prefix",
            "team-a/",
        ],
    )
    .ok();
    ctx.aws(&cred, &["s3api", "list-multipart-uploads", "--bucket", &b])
        .refused("does not cover listing");
    ctx.aws(&cred, &["s3api", "head-bucket", "--bucket", &b])
        .ok();
    ctx.aws(&cred, &["s3api", "get-bucket-location", "--bucket", &b])
        .ok();
    ctx.aws(
        &cred,
        &["s3api", "head-bucket", "--bucket", "another-bucket"],
    )
    .refused("403");

    let out = ctx.boto3(&cred, &format!("print([o['Key'] for o in s3.list_objects_v2(Bucket='{b}', Prefix='team-a/sub/')['Contents']])"));
    assert_eq!(out.ok().stdout.trim(), "['team-a/sub/2.csv']");
}

async fn list_buckets_shows_only_the_granted_bucket(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let granted = ctx.bucket_with(&[]).await;
    let other = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{granted}/"), &[List]);
    let out = ctx.aws(&cred, &["s3", "ls"]);
    assert!(out.ok().stdout.contains(&granted), "{out:#?}");
    assert!(!out.stdout.contains(&other), "{out:#?}");

    let read_only = ctx.grant(&format!("s3://{granted}/"), &[Read]);
    ctx.aws(&read_only, &["s3", "ls"])
        .refused("does not allow list");
}

async fn write_puts_small_and_multipart_objects_inside_only(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/uploads/"), &[Write, List]);
    let dir = ctx.dir.path().join("upload");
    std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
    std::fs::write(dir.join("small.txt"), b"hello").unwrap();
    // Above aws-cli's 8 MiB threshold: a multipart upload of three parts.
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("tree/a.txt"), b"a").unwrap();
    std::fs::write(dir.join("tree/sub/b.txt"), b"b").unwrap();

    let small = dir.join("small.txt");
    ctx.aws(
        &cred,
        &[
            "s3",
            "cp",
            small.to_str().unwrap(),
            &format!("s3://{b}/uploads/small.txt"),
        ],
    )
    .ok();
    assert_eq!(
        ctx.backend_object(&b, "uploads/small.txt").await.unwrap(),
        b"hello"
    );

    ctx.aws(
        &cred,
        &[
            "s3",
            "cp",
            dir.join("big.bin").to_str().unwrap(),
            &format!("s3://{b}/uploads/big.bin"),
        ],
    )
    .ok();
    assert!(
        ctx.backend_object(&b, "uploads/big.bin").await.unwrap() == big,
        "multipart upload arrived intact"
    );

    ctx.aws(
        &cred,
        &[
            "s3",
            "sync",
            dir.join("tree").to_str().unwrap(),
            &format!("s3://{b}/uploads/tree/"),
        ],
    )
    .ok();
    assert_eq!(
        ctx.backend_object(&b, "uploads/tree/sub/b.txt")
            .await
            .unwrap(),
        b"b"
    );

    ctx.aws(
        &cred,
        &[
            "s3",
            "cp",
            small.to_str().unwrap(),
            &format!("s3://{b}/elsewhere.txt"),
        ],
    )
    .refused("AccessDenied");
    ctx.aws(
        &cred,
        &[
            "s3",
            "cp",
            dir.join("big.bin").to_str().unwrap(),
            &format!("s3://{b}/elsewhere.bin"),
        ],
    )
    .refused("AccessDenied");
    assert!(ctx.backend_object(&b, "elsewhere.txt").await.is_none());
    assert!(ctx.backend_object(&b, "elsewhere.bin").await.is_none());

    let sdk = ctx.sdk(&cred);
    let path = dir.join("small.txt");
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&path)
        .await
        .unwrap();
    sdk.put_object()
        .bucket(&b)
        .key("uploads/from-sdk.txt")
        .body(body)
        .send()
        .await
        .expect("sdk upload (aws-chunked with a crc32 trailer)");
    assert_eq!(
        ctx.backend_object(&b, "uploads/from-sdk.txt")
            .await
            .unwrap(),
        b"hello"
    );
    // The framing between client and gateway is not the object's encoding.
    let head = ctx
        .admin
        .head_object()
        .bucket(&b)
        .key("uploads/from-sdk.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.content_encoding(),
        None,
        "aws-chunked was not forwarded as Content-Encoding"
    );
}

async fn delete_checks_every_key_of_a_batch(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("tmp/1", b"1"), ("tmp/2", b"2"), ("keep/3", b"3")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/tmp/"), &[Delete]);

    // One key outside the grant refuses the whole batch: nothing is deleted.
    let batch = r#"{"Objects":[{"Key":"tmp/1"},{"Key":"keep/3"}]}"#;
    ctx.aws(
        &cred,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    )
    .refused(&format!("does not cover s3://{b}/keep/3"));
    assert!(ctx.backend_object(&b, "tmp/1").await.is_some());
    assert!(ctx.backend_object(&b, "keep/3").await.is_some());

    let batch = r#"{"Objects":[{"Key":"tmp/1"},{"Key":"tmp/2"}]}"#;
    ctx.aws(
        &cred,
        &["s3api", "delete-objects", "--bucket", &b, "--delete", batch],
    )
    .ok();
    assert!(ctx.backend_object(&b, "tmp/1").await.is_none());
    assert!(ctx.backend_object(&b, "tmp/2").await.is_none());

    ctx.aws(&cred, &["s3", "rm", &format!("s3://{b}/keep/3")])
        .refused("AccessDenied");
    assert!(ctx.backend_object(&b, "keep/3").await.is_some());
    ctx.put(&b, "tmp/4", b"4").await;
    ctx.aws(&cred, &["s3", "rm", &format!("s3://{b}/tmp/4")])
        .ok();
    assert!(ctx.backend_object(&b, "tmp/4").await.is_none());
}

async fn copy_needs_read_on_the_source_and_write_on_the_destination(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("work/src.txt", b"source"), ("secret/x.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/work/"), &[Read, Write]);

    ctx.aws(
        &cred,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &b,
            "--key",
            "work/copy.txt",
            "--copy-source",
            &format!("{b}/work/src.txt"),
        ],
    )
    .ok();
    assert_eq!(
        ctx.backend_object(&b, "work/copy.txt").await.unwrap(),
        b"source"
    );

    ctx.aws(
        &cred,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &b,
            "--key",
            "work/stolen.txt",
            "--copy-source",
            &format!("{b}/secret/x.txt"),
        ],
    )
    .refused(&format!("does not cover s3://{b}/secret/x.txt for read"));
    assert!(ctx.backend_object(&b, "work/stolen.txt").await.is_none());

    let write_only = ctx.grant(&format!("s3://{b}/work/"), &[Write]);
    ctx.aws(
        &write_only,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &b,
            "--key",
            "work/c2.txt",
            "--copy-source",
            &format!("{b}/work/src.txt"),
        ],
    )
    .refused("does not allow read");

    // UploadPartCopy: the same rule for the copy source of a part (Garage wants at least 5 MiB).
    let six_mib: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 249) as u8).collect();
    ctx.put(&b, "work/src.bin", &six_mib).await;
    let script = format!(
        r"
up = s3.create_multipart_upload(Bucket='{b}', Key='work/parts.txt')
try:
    s3.upload_part_copy(Bucket='{b}', Key='work/parts.txt', UploadId=up['UploadId'], PartNumber=1, CopySource={{'Bucket': '{b}', 'Key': 'secret/x.txt'}})
    print('copied')
except botocore.exceptions.ClientError as e:
    print(e.response['Error']['Code'], e.response['Error']['Message'])
part = s3.upload_part_copy(Bucket='{b}', Key='work/parts.txt', UploadId=up['UploadId'], PartNumber=1, CopySource={{'Bucket': '{b}', 'Key': 'work/src.bin'}})
s3.complete_multipart_upload(Bucket='{b}', Key='work/parts.txt', UploadId=up['UploadId'], MultipartUpload={{'Parts': [{{'PartNumber': 1, 'ETag': part['CopyPartResult']['ETag']}}]}})
print('done')
"
    );
    let out = ctx.boto3(&cred, &script);
    assert!(
        out.ok()
            .stdout
            .contains(&format!("AccessDenied grant {} ", cred.grant_id)),
        "{out:#?}"
    );
    assert!(out.stdout.trim_end().ends_with("done"), "{out:#?}");
    assert!(
        ctx.backend_object(&b, "work/parts.txt").await.unwrap() == six_mib,
        "the copied part arrived intact"
    );
}

async fn expired_grants_are_refused_by_every_client(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read, List]);
    ctx.aws(&cred, &["s3", "cp", &format!("s3://{b}/data/x"), "-"])
        .ok();

    ctx.expire_all();
    ctx.get_object(&cred, &b, "data/x")
        .refused("ExpiredToken")
        .refused(&format!("grant {} expired at", cred.grant_id));
    ctx.aws(&cred, &["s3", "ls", &format!("s3://{b}/data/")])
        .refused("ExpiredToken");
    ctx.boto3(&cred, &format!("s3.get_object(Bucket='{b}', Key='data/x')"))
        .refused("ExpiredToken");
    let err = ctx
        .sdk(&cred)
        .get_object()
        .bucket(&b)
        .key("data/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("ExpiredToken"));
}

async fn revoked_grants_are_refused_at_once(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read, Write]);
    ctx.aws(&cred, &["s3", "cp", &format!("s3://{b}/data/x"), "-"])
        .ok();

    ctx.revoke(&cred);
    ctx.get_object(&cred, &b, "data/x")
        .refused("AccessDenied")
        .refused(&format!("grant {} was revoked at", cred.grant_id));
    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &b,
            "--key",
            "data/y",
            "--body",
            &ctx.empty_file(),
        ],
    )
    .refused("revoked");
    assert!(ctx.backend_object(&b, "data/y").await.is_none());
    ctx.boto3(&cred, &format!("s3.get_object(Bucket='{b}', Key='data/x')"))
        .refused("revoked");
}

async fn a_grant_that_expired_while_the_gateway_was_down_is_refused_at_start(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let expiring = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let lasting = {
        let scope = sesame::model::Scope::parse(&format!("s3://{b}/data/"), vec![Read]).unwrap();
        let grant = ctx
            .gateway
            .grants
            .create("bob", scope, None, time::Duration::hours(2))
            .await
            .unwrap();
        ctx.gateway
            .grants
            .issue_credential(&grant.id)
            .await
            .unwrap()
    };
    ctx.aws(&expiring, &["s3", "cp", &format!("s3://{b}/data/x"), "-"])
        .ok();

    // The 30-minute grant runs out while the gateway is down; the 2-hour one survives.
    ctx.expire_all();
    let ctx = ctx.restarted().await;
    ctx.get_object(&expiring, &b, "data/x")
        .refused("ExpiredToken")
        .refused(&format!("grant {} expired at", expiring.grant_id));
    assert_eq!(
        ctx.aws(&lasting, &["s3", "cp", &format!("s3://{b}/data/x"), "-"])
            .ok()
            .stdout,
        "x"
    );
}

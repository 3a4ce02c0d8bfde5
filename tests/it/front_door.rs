//! The holes s3s 0.14 leaves open, each closed: anonymous and forged requests, SigV2, unsigned
//! `x-amz-*` headers, presigned URL lifetime, and upload checksums.

use std::process::Command;

use sesame::model::Action::{Read, Write};

use crate::harness::{BackendKind, Ctx, Output, run};

crate::on_every_backend!(
    anonymous_requests_are_refused,
    unknown_keys_bad_signatures_and_tampered_tokens_are_refused,
    sigv2_is_refused_with_a_hint_for_aws_cli_v1,
    presigned_urls_work_until_the_grant_ends,
    unsigned_amz_headers_on_a_presigned_put_are_refused,
    presigned_urls_longer_than_a_week_are_refused,
    uploads_with_a_wrong_checksum_store_nothing,
    requests_signed_for_another_region_are_refused,
    dotted_and_encoded_keys_cannot_leave_the_prefix,
    virtual_hosted_style_works_when_a_domain_is_configured,
);

fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\nHTTP %{http_code}"]).args(args);
    run(cmd)
}

async fn anonymous_requests_are_refused(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("open/x", b"x")]).await;
    let out = curl(&[&format!("{}/{b}/open/x", ctx.s3_url)]);
    assert!(
        out.stdout.contains("HTTP 403") && out.stdout.contains("anonymous requests are refused"),
        "{out:#?}"
    );
    let out = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "y",
        &format!("{}/{b}/open/y", ctx.s3_url),
    ]);
    assert!(out.stdout.contains("HTTP 403"), "{out:#?}");
    assert!(ctx.backend_object(&b, "open/y").await.is_none());
}

async fn unknown_keys_bad_signatures_and_tampered_tokens_are_refused(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let good = ctx.grant(&format!("s3://{b}/data/"), &[Read, Write]);
    let put = |cred| {
        ctx.aws(
            cred,
            &[
                "s3api",
                "put-object",
                "--bucket",
                &b,
                "--key",
                "data/forged",
                "--body",
                &ctx.empty_file(),
            ],
        )
    };

    let mut unknown = good.clone();
    unknown.access_key_id = "SESAUNKNOWNKEY000000".into();
    put(&unknown).refused("InvalidAccessKeyId");

    let mut wrong_secret = good.clone();
    wrong_secret.secret_access_key = sesame::secret::Secret::new("x".repeat(40));
    put(&wrong_secret).refused("SignatureDoesNotMatch");

    // Signed correctly with the right secret, but the token was altered.
    let mut tampered = good.clone();
    let token = good.session_token.expose();
    let flipped = if token.ends_with('A') { 'B' } else { 'A' };
    tampered.session_token =
        sesame::secret::Secret::new(format!("{}{flipped}", &token[..token.len() - 1]));
    put(&tampered).refused("InvalidToken");

    // A token from another grant does not fit this key.
    let other = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let mut swapped = good.clone();
    swapped.session_token = other.session_token.clone();
    put(&swapped).refused("InvalidToken");

    assert!(ctx.backend_object(&b, "data/forged").await.is_none());
    put(&good).ok();
}

async fn sigv2_is_refused_with_a_hint_for_aws_cli_v1(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let out = ctx.boto3(
        &cred,
        &format!(
            "s2 = boto3.client('s3', endpoint_url='{}', config=Config(signature_version='s3'))\ns2.get_object(Bucket='{b}', Key='data/x')",
            ctx.s3_url
        ),
    );
    out.refused("Signature Version 2 is not accepted")
        .refused("s3.signature_version s3v4")
        .refused("boto3: `Config(signature_version='s3v4')`");

    let out = ctx.boto3(
        &cred,
        &format!(
            "s2 = boto3.client('s3', endpoint_url='{}', config=Config(signature_version='s3'))\nprint(s2.generate_presigned_url('get_object', Params={{'Bucket': '{b}', 'Key': 'data/x'}}))",
            ctx.s3_url
        ),
    );
    let url = out.ok().stdout.trim().to_owned();
    assert!(url.contains("AWSAccessKeyId"), "a SigV2 URL: {url}");
    let fetched = curl(&[&url]);
    assert!(
        fetched
            .stdout
            .contains("Signature Version 2 is not accepted"),
        "{fetched:#?}"
    );
}

async fn presigned_urls_work_until_the_grant_ends(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("share/report.pdf", b"%PDF-1.7 report")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/share/"), &[Read, Write]);

    let out = ctx.aws(
        &cred,
        &[
            "s3",
            "presign",
            &format!("s3://{b}/share/report.pdf"),
            "--expires-in",
            "600",
        ],
    );
    let aws_url = out.ok().stdout.trim().to_owned();
    assert!(
        aws_url.contains("X-Amz-Signature"),
        "aws-cli v1 with its defaults presigns with SigV4 in Sesame's region: {aws_url}"
    );
    let got = curl(&[&aws_url]);
    assert!(
        got.stdout.starts_with("%PDF-1.7 report\nHTTP 200"),
        "{got:#?}"
    );

    let out = ctx.boto3(
        &cred,
        &format!(
            "print(s3.generate_presigned_url('get_object', Params={{'Bucket': '{b}', 'Key': 'share/report.pdf'}}, ExpiresIn=600))\nprint(s3.generate_presigned_url('put_object', Params={{'Bucket': '{b}', 'Key': 'share/upload.txt'}}, ExpiresIn=600))"
        ),
    );
    let urls: Vec<String> = out.ok().stdout.lines().map(str::to_owned).collect();
    let got = curl(&[&urls[0]]);
    assert!(
        got.stdout.starts_with("%PDF-1.7 report\nHTTP 200"),
        "{got:#?}"
    );
    let put = curl(&["-X", "PUT", "--data-binary", "uploaded", &urls[1]]);
    assert!(put.stdout.contains("HTTP 200"), "{put:#?}");
    assert_eq!(
        ctx.backend_object(&b, "share/upload.txt").await.unwrap(),
        b"uploaded"
    );

    ctx.revoke(&cred);
    let got = curl(&[&urls[0]]);
    assert!(
        got.stdout.contains("HTTP 403") && got.stdout.contains("was revoked"),
        "{got:#?}"
    );
    let got = curl(&[&aws_url]);
    assert!(got.stdout.contains("HTTP 403"), "{got:#?}");
}

async fn unsigned_amz_headers_on_a_presigned_put_are_refused(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("inbox/secret.txt", b"secret")]).await;
    let cred = ctx.grant(&format!("s3://{b}/inbox/"), &[Read, Write]);
    let out = ctx.boto3(&cred, &format!("print(s3.generate_presigned_url('put_object', Params={{'Bucket': '{b}', 'Key': 'inbox/new.txt'}}, ExpiresIn=600))"));
    let url = out.ok().stdout.trim().to_owned();
    // Without the check, s3s would run this as a CopyObject of secret.txt.
    let put = curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("x-amz-copy-source: {b}/inbox/secret.txt"),
        "--data-binary",
        "",
        &url,
    ]);
    assert!(
        put.stdout.contains("HTTP 403")
            && put
                .stdout
                .contains("header x-amz-copy-source is not signed"),
        "{put:#?}"
    );
    assert!(ctx.backend_object(&b, "inbox/new.txt").await.is_none());
}

async fn presigned_urls_longer_than_a_week_are_refused(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let out = ctx.boto3(&cred, &format!("print(s3.generate_presigned_url('get_object', Params={{'Bucket': '{b}', 'Key': 'data/x'}}, ExpiresIn=8*24*3600))"));
    let got = curl(&[out.ok().stdout.trim()]);
    assert!(
        got.stdout.contains("HTTP 400") && got.stdout.contains("604800"),
        "{got:#?}"
    );
}

async fn uploads_with_a_wrong_checksum_store_nothing(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let sdk = ctx.sdk(&cred);
    let err = sdk
        .put_object()
        .bucket(&b)
        .key("in/corrupt.bin")
        .checksum_crc32("AAAAAA==")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"these bytes do not hash to zero",
        ))
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert_eq!(err.meta().code(), Some("BadDigest"), "{err:?}");
    assert!(ctx.backend_object(&b, "in/corrupt.bin").await.is_none());

    let out = ctx.boto3(&cred, &format!("s3.put_object(Bucket='{b}', Key='in/corrupt2.bin', Body=b'data', ChecksumCRC32='AAAAAA==')"));
    out.refused("BadDigest");
    assert!(ctx.backend_object(&b, "in/corrupt2.bin").await.is_none());
    ctx.boto3(&cred, &format!("s3.put_object(Bucket='{b}', Key='in/good.bin', Body=b'data', ChecksumAlgorithm='CRC32')")).ok();
    assert_eq!(
        ctx.backend_object(&b, "in/good.bin").await.unwrap(),
        b"data"
    );
}

async fn requests_signed_for_another_region_are_refused(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("data/x", b"x")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let script = format!(
        "s2 = boto3.client('s3', region_name='eu-west-1', endpoint_url='{}', config=Config(signature_version='s3v4'))\ns2.get_object(Bucket='{b}', Key='data/x')",
        ctx.s3_url
    );
    ctx.boto3(&cred, &script)
        .refused("AuthorizationHeaderMalformed")
        .refused("the region 'eu-west-1' is wrong; expecting 'sesame'");
}

async fn virtual_hosted_style_works_when_a_domain_is_configured(kind: BackendKind) {
    let ctx = Ctx::start_with_domain(kind, Some("s3.test")).await;
    let b = ctx.bucket_with(&[("data/x", b"virtual")]).await;
    let cred = ctx.grant(&format!("s3://{b}/data/"), &[Read]);
    let port = ctx.gateway.s3_addr.port();
    let script = format!(
        "v = boto3.client('s3', endpoint_url='http://s3.test:{port}', config=Config(signature_version='s3v4', s3={{'addressing_style': 'virtual'}}))\nprint(v.generate_presigned_url('get_object', Params={{'Bucket': '{b}', 'Key': 'data/x'}}))"
    );
    let url = ctx.boto3(&cred, &script).ok().stdout.trim().to_owned();
    assert!(
        url.starts_with(&format!("http://{b}.s3.test:{port}/data/x?")),
        "{url}"
    );
    // The name s3.test resolves nowhere; curl connects to the gateway and keeps the Host.
    let got = curl(&["--connect-to", &format!("::127.0.0.1:{port}"), &url]);
    assert!(got.stdout.starts_with("virtual\nHTTP 200"), "{got:#?}");
    // Path style keeps working beside it, by IP and by name.
    ctx.aws(&cred, &["s3", "cp", &format!("s3://{b}/data/x"), "-"])
        .ok();
    let by_name = format!("http://localhost:{port}");
    let script = format!(
        "p = boto3.client('s3', endpoint_url='{by_name}', config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\nprint(p.get_object(Bucket='{b}', Key='data/x')['Body'].read().decode())"
    );
    assert_eq!(ctx.boto3(&cred, &script).ok().stdout.trim(), "virtual");
}

async fn dotted_and_encoded_keys_cannot_leave_the_prefix(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("team-a/x", b"a"), ("secret/x", b"s")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/team-a/"), &[Read, Write]);
    let script = format!(
        r"
for key in ['team-a/../secret/x', 'team-a/./x', 'team-a%2F..%2Fsecret/x']:
    try:
        s3.get_object(Bucket='{b}', Key=key)
        print(key, 'OK')
    except botocore.exceptions.ClientError as e:
        print(key, e.response['Error']['Code'], e.response['Error']['Message'])
"
    );
    let out = ctx.boto3(&cred, &script);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert!(
        lines[0].starts_with("team-a/../secret/x AccessDenied")
            && lines[0].contains("'.' or '..' segment"),
        "{out:#?}"
    );
    assert!(lines[1].starts_with("team-a/./x AccessDenied"), "{out:#?}");
    // A literal '%2F' is just characters of the key, which therefore lies outside team-a/.
    assert!(
        lines[2].contains("does not cover") && lines[2].contains("team-a%2F..%2Fsecret/x"),
        "{out:#?}"
    );
    ctx.aws(
        &cred,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &b,
            "--key",
            "team-a/../secret/x",
            "--body",
            &ctx.empty_file(),
        ],
    )
    .refused("AccessDenied");
    assert_eq!(ctx.backend_object(&b, "secret/x").await.unwrap(), b"s");
}

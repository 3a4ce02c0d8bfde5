//! Corrupt uploads change nothing (issue 8). An object (or an upload's part 1) exists with
//! known content; a raw upload that declares a digest its body does not match (Content-MD5,
//! the signed x-amz-content-sha256, a middle or the final aws-chunked chunk signature,
//! x-amz-decoded-content-length larger or smaller than the body) is answered with the S3
//! error S3 gives for it, leaves the old bytes on the backend exactly as they were, and the
//! cut is in the trail. The same upload with the right digest stores the new content.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use s3s::crypto::Checksum as _;
use sesame::grant::IssuedCredential;
use sesame::model::Action::{List, Read, Write};
use sha2::{Digest as _, Sha256};

use crate::harness::{BackendKind, Ctx, REGION};
use crate::sigv4::{chunk_signatures, send, sign_with_query};

crate::on_every_backend!(
    put_with_wrong_content_md5,
    put_with_wrong_content_sha256,
    put_with_wrong_middle_chunk_signature,
    put_with_wrong_final_chunk_signature,
    put_with_wrong_decoded_length_larger,
    put_with_wrong_decoded_length_smaller,
    part_with_wrong_content_md5,
    part_with_wrong_content_sha256,
    part_with_wrong_middle_chunk_signature,
    part_with_wrong_final_chunk_signature,
    part_with_wrong_decoded_length_larger,
    part_with_wrong_decoded_length_smaller,
);

async fn put_with_wrong_content_md5(kind: BackendKind) {
    corrupt_put(kind, Declared::ContentMd5).await;
}

async fn put_with_wrong_content_sha256(kind: BackendKind) {
    corrupt_put(kind, Declared::ContentSha256).await;
}

async fn put_with_wrong_middle_chunk_signature(kind: BackendKind) {
    corrupt_put(kind, Declared::MiddleChunkSignature).await;
}

async fn put_with_wrong_final_chunk_signature(kind: BackendKind) {
    corrupt_put(kind, Declared::FinalChunkSignature).await;
}

async fn put_with_wrong_decoded_length_larger(kind: BackendKind) {
    corrupt_put(kind, Declared::DecodedLengthLarger).await;
}

async fn put_with_wrong_decoded_length_smaller(kind: BackendKind) {
    corrupt_put(kind, Declared::DecodedLengthSmaller).await;
}

async fn part_with_wrong_content_md5(kind: BackendKind) {
    corrupt_part(kind, Declared::ContentMd5).await;
}

async fn part_with_wrong_content_sha256(kind: BackendKind) {
    corrupt_part(kind, Declared::ContentSha256).await;
}

async fn part_with_wrong_middle_chunk_signature(kind: BackendKind) {
    corrupt_part(kind, Declared::MiddleChunkSignature).await;
}

async fn part_with_wrong_final_chunk_signature(kind: BackendKind) {
    corrupt_part(kind, Declared::FinalChunkSignature).await;
}

async fn part_with_wrong_decoded_length_larger(kind: BackendKind) {
    corrupt_part(kind, Declared::DecodedLengthLarger).await;
}

async fn part_with_wrong_decoded_length_smaller(kind: BackendKind) {
    corrupt_part(kind, Declared::DecodedLengthSmaller).await;
}

const OLD: &[u8] = b"the old content, which must survive every corrupt upload";

/// The new content: three chunks when aws-chunked.
fn new_content() -> Vec<u8> {
    (0..5000u32).map(|i| (i % 251) as u8).collect()
}

/// The digest a row declares, rightly or wrongly.
#[derive(Debug, Clone, Copy)]
enum Declared {
    ContentMd5,
    /// A signed single-chunk payload: the hash is part of the signature.
    ContentSha256,
    MiddleChunkSignature,
    FinalChunkSignature,
    /// x-amz-decoded-content-length more than the chunks carry.
    DecodedLengthLarger,
    /// x-amz-decoded-content-length less than the chunks carry.
    DecodedLengthSmaller,
}

/// What the client and the trail must say when the declaration is wrong.
struct Refusal {
    status: &'static str,
    code: &'static str,
    /// In the S3 error's message and in the trail's record of the cut.
    fragment: &'static str,
    stop_kind: &'static str,
}

impl Declared {
    fn refusal(self) -> Refusal {
        match self {
            Declared::ContentMd5 => Refusal {
                status: "400",
                code: "BadDigest",
                fragment: "content-md5",
                stop_kind: "bad_checksum",
            },
            Declared::ContentSha256 => Refusal {
                status: "400",
                code: "XAmzContentSHA256Mismatch",
                fragment: "x-amz-content-sha256",
                stop_kind: "bad_payload_hash",
            },
            Declared::MiddleChunkSignature | Declared::FinalChunkSignature => Refusal {
                status: "403",
                code: "SignatureDoesNotMatch",
                fragment: "aws-chunked chunk signature",
                stop_kind: "bad_signature",
            },
            Declared::DecodedLengthLarger => Refusal {
                status: "400",
                code: "IncompleteBody",
                fragment: "x-amz-decoded-content-length",
                stop_kind: "incomplete",
            },
            Declared::DecodedLengthSmaller => Refusal {
                status: "400",
                code: "InvalidRequest",
                fragment: "x-amz-decoded-content-length",
                stop_kind: "too_long",
            },
        }
    }
}

/// A raw upload of `data` to `path?query`, declaring `declared` rightly (`wrong` false) or
/// wrongly; returns the signed headers and the body as they go on the wire.
fn upload(
    ctx: &Ctx,
    cred: &IssuedCredential,
    path: &str,
    query: &str,
    data: &[u8],
    declared: Declared,
    wrong: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    let host = ("host".to_owned(), ctx.gateway.s3_addr.to_string());
    let length = |n: usize| ("content-length".to_owned(), n.to_string());
    let spoiled = |d: &[u8]| {
        if wrong {
            b"other bytes".to_vec()
        } else {
            d.to_vec()
        }
    };
    match declared {
        Declared::ContentMd5 => {
            let md5 = base64::engine::general_purpose::STANDARD
                .encode(s3s::crypto::Md5::checksum(&spoiled(data)));
            let headers = vec![host, length(data.len()), ("content-md5".to_owned(), md5)];
            let signed = sign_with_query(
                cred,
                REGION,
                "PUT",
                path,
                query,
                headers,
                "UNSIGNED-PAYLOAD",
            );
            (signed, data.to_vec())
        }
        Declared::ContentSha256 => {
            let sha = hex::encode(Sha256::digest(spoiled(data)));
            let headers = vec![host, length(data.len())];
            let signed = sign_with_query(cred, REGION, "PUT", path, query, headers, &sha);
            (signed, data.to_vec())
        }
        Declared::MiddleChunkSignature
        | Declared::FinalChunkSignature
        | Declared::DecodedLengthLarger
        | Declared::DecodedLengthSmaller => {
            let third = data.len() / 3;
            let chunks: [&[u8]; 4] = [
                &data[..third],
                &data[third..2 * third],
                &data[2 * third..],
                b"",
            ];
            let decoded = match (declared, wrong) {
                (Declared::DecodedLengthLarger, true) => data.len() + 100,
                (Declared::DecodedLengthSmaller, true) => data.len() - 100,
                _ => data.len(),
            };
            let encoded: usize = chunks
                .iter()
                .map(|c| {
                    format!("{:x}", c.len()).len()
                        + ";chunk-signature=".len()
                        + 64
                        + 2
                        + c.len()
                        + 2
                })
                .sum();
            let headers = vec![
                host,
                length(encoded),
                ("content-encoding".to_owned(), "aws-chunked".to_owned()),
                (
                    "x-amz-decoded-content-length".to_owned(),
                    decoded.to_string(),
                ),
            ];
            let signed = sign_with_query(
                cred,
                REGION,
                "PUT",
                path,
                query,
                headers,
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            );
            let mut signatures = chunk_signatures(cred, REGION, &signed, &chunks);
            let spoil = match declared {
                Declared::MiddleChunkSignature => Some(1),
                Declared::FinalChunkSignature => Some(3),
                _ => None,
            };
            if let (true, Some(i)) = (wrong, spoil) {
                signatures[i] = "0".repeat(64);
            }
            let mut body = Vec::new();
            for (chunk, signature) in chunks.iter().zip(&signatures) {
                body.extend_from_slice(
                    format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
                );
                body.extend_from_slice(chunk);
                body.extend_from_slice(b"\r\n");
            }
            assert_eq!(body.len(), encoded);
            (signed, body)
        }
    }
}

/// Sends a row's upload and returns the answer; `path?query` is the target.
async fn send_upload(
    ctx: &Ctx,
    cred: &IssuedCredential,
    path: &str,
    query: &str,
    data: &[u8],
    declared: Declared,
    wrong: bool,
) -> String {
    let (headers, body) = upload(ctx, cred, path, query, data, declared, wrong);
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    send(ctx.gateway.s3_addr, "PUT", &target, &headers, &body).await
}

/// The `ETag` header of a raw answer.
fn etag_of(answer: &str) -> String {
    answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("etag")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no etag in {answer}"))
}

/// Asserts a wrong declaration's answer: status, code and message.
#[track_caller]
fn assert_refused(answer: &str, declared: Declared, what: &str) {
    let refusal = declared.refusal();
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {}", refusal.status)),
        "{what}: {answer}"
    );
    assert!(
        answer.contains(&format!("<Code>{}</Code>", refusal.code)),
        "{what}: {answer}"
    );
    let message = answer
        .split("<Message>")
        .nth(1)
        .and_then(|m| m.split("</Message>").next())
        .unwrap_or_else(|| panic!("{what}: no message in {answer}"));
    assert!(message.contains(refusal.fragment), "{what}: {message}");
}

/// Asserts that the trail records the request of `answer` as allowed for `op`, then cut
/// with the row's reason and status.
#[track_caller]
fn cut_in_trail(ctx: &Ctx, answer: &str, op: &str, declared: Declared, what: &str) {
    let refusal = declared.refusal();
    let request_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-amz-request-id: "))
        .unwrap_or_else(|| panic!("{what}: no request id in {answer}"))
        .trim();
    let trail = crate::audit::trail(ctx);
    let of_request: Vec<&serde_json::Value> = trail
        .iter()
        .map(|r| &r["body"])
        .filter(|b| b["request_id"] == request_id)
        .collect();
    let decision = of_request
        .iter()
        .find(|b| b["kind"] == "s3")
        .unwrap_or_else(|| panic!("{what}: no decision for {request_id}: {of_request:?}"));
    assert_eq!(decision["op"], op, "{what}: {decision}");
    let complete = of_request
        .iter()
        .find(|b| b["kind"] == "s3.complete")
        .unwrap_or_else(|| panic!("{what}: no completion for {request_id}: {of_request:?}"));
    assert_eq!(
        complete["status"].to_string(),
        refusal.status,
        "{what}: {complete}"
    );
    assert_eq!(
        complete["stop_kind"], refusal.stop_kind,
        "{what}: {complete}"
    );
    let stopped = complete["stopped"].as_str().unwrap_or_default();
    assert!(stopped.contains(refusal.fragment), "{what}: {complete}");
}

/// A `PutObject` declaring `declared` wrongly over an existing object, then rightly.
async fn corrupt_put(kind: BackendKind, declared: Declared) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let data = new_content();
    let what = format!("PutObject with a wrong {declared:?}");
    let key = format!("in/{declared:?}.bin");
    ctx.put(&b, &key, OLD).await;
    let path = format!("/{b}/{key}");
    let answer = send_upload(&ctx, &cred, &path, "", &data, declared, true).await;
    assert_refused(&answer, declared, &what);
    assert!(
        ctx.backend_object(&b, &key).await.as_deref() == Some(OLD),
        "{what}: the old object was changed"
    );
    cut_in_trail(&ctx, &answer, "PutObject", declared, &what);

    let answer = send_upload(&ctx, &cred, &path, "", &data, declared, false).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "PutObject with the right {declared:?}: {answer}"
    );
    assert!(
        ctx.backend_object(&b, &key).await == Some(data.clone()),
        "PutObject with the right {declared:?}: the new content is stored"
    );
}

/// An `UploadPart` declaring `declared` wrongly over an uploaded part 1, then rightly in a
/// fresh upload.
async fn corrupt_part(kind: BackendKind, declared: Declared) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write, List, Read]);
    let client = ctx.sdk(&cred);
    let data = new_content();
    let what = format!("UploadPart with a wrong {declared:?}");
    let key = format!("in/{declared:?}.bin");
    ctx.put(&b, &key, OLD).await;
    let started = client
        .create_multipart_upload()
        .bucket(&b)
        .key(&key)
        .send()
        .await
        .unwrap();
    let upload_id = started.upload_id().unwrap().to_owned();
    let path = format!("/{b}/{key}");
    let query = format!("partNumber=1&uploadId={upload_id}");
    // Part 1 holds the old content, uploaded rightly.
    let answer = send_upload(
        &ctx,
        &cred,
        &path,
        &query,
        OLD,
        Declared::ContentSha256,
        false,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{what}: seeding part 1: {answer}"
    );
    let old_etag = etag_of(&answer);

    let answer = send_upload(&ctx, &cred, &path, &query, &data, declared, true).await;
    assert_refused(&answer, declared, &what);
    cut_in_trail(&ctx, &answer, "UploadPart", declared, &what);
    let parts = client
        .list_parts()
        .bucket(&b)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    let [part] = parts.parts() else {
        panic!("{what}: parts {:?}", parts.parts())
    };
    assert_eq!(
        part.size(),
        Some(OLD.len() as i64),
        "{what}: part 1 was changed"
    );
    // s3s-fs lists no ETag; the one part 1 was answered with completes the upload.
    let etag = part.e_tag().map_or(old_etag, str::to_owned);
    client
        .complete_multipart_upload()
        .bucket(&b)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: completing with the old part 1: {e:?}"));
    assert!(
        ctx.backend_object(&b, &key).await.as_deref() == Some(OLD),
        "{what}: the upload completes with the old part 1"
    );

    // The right declaration writes the new content as part 1 of a fresh upload.
    let started = client
        .create_multipart_upload()
        .bucket(&b)
        .key(&key)
        .send()
        .await
        .unwrap();
    let upload_id = started.upload_id().unwrap().to_owned();
    let query = format!("partNumber=1&uploadId={upload_id}");
    let answer = send_upload(&ctx, &cred, &path, &query, &data, declared, false).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "UploadPart with the right {declared:?}: {answer}"
    );
    let etag = etag_of(&answer);
    client
        .complete_multipart_upload()
        .bucket(&b)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        ctx.backend_object(&b, &key).await == Some(data.clone()),
        "UploadPart with the right {declared:?}: the new content is stored"
    );
}

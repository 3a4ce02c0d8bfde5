//! aws-chunked uploads as SDKs frame them, and as no honest client would: checksum trailers
//! are verified against the data, and chunk sizes are bounded before s3s buffers a chunk.

use sesame::grant::IssuedCredential;
use sesame::model::Action::Write;

use crate::harness::{BackendKind, Ctx, REGION};
use crate::sigv4::{send, sign};

crate::on_every_backend!(
    unsigned_trailer_uploads_are_checked_against_their_trailer,
    oversized_chunks_are_refused_before_they_are_buffered,
    uploads_without_content_length_work_like_the_js_sdk_sends_them,
);

fn crc32_base64(data: &[u8]) -> String {
    use s3s::crypto::Checksum as _;
    let mut h = s3s::checksum::ChecksumHasher {
        crc32: Some(s3s::crypto::Crc32::new()),
        ..Default::default()
    };
    h.update(data);
    h.finalize().checksum_crc32.unwrap()
}

/// How the HTTP body of an upload is delimited.
#[derive(Clone, Copy)]
enum Length {
    ContentLength,
    /// As the JS SDK sends it: `Transfer-Encoding: chunked` and no Content-Length.
    TransferEncodingChunked,
}

/// A PUT framed like the JS SDK's: unsigned chunks and an unsigned checksum trailer.
async fn put_with_trailer(
    ctx: &Ctx,
    cred: &IssuedCredential,
    path: &str,
    data: &[u8],
    trailer_crc32: &str,
    length: Length,
) -> String {
    let mut body = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{trailer_crc32}\r\n\r\n").as_bytes());
    let mut headers = vec![
        ("host".to_owned(), ctx.gateway.s3_addr.to_string()),
        ("content-encoding".to_owned(), "aws-chunked".to_owned()),
        (
            "x-amz-decoded-content-length".to_owned(),
            data.len().to_string(),
        ),
        (
            "x-amz-trailer".to_owned(),
            "x-amz-checksum-crc32".to_owned(),
        ),
    ];
    match length {
        Length::ContentLength => {
            headers.push(("content-length".to_owned(), body.len().to_string()));
        }
        Length::TransferEncodingChunked => {
            headers.push(("transfer-encoding".to_owned(), "chunked".to_owned()));
            let mut framed = Vec::new();
            for piece in body.chunks(50_000) {
                framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
            }
            framed.extend_from_slice(b"0\r\n\r\n");
            body = framed;
        }
    }
    let headers = sign(
        cred,
        REGION,
        "PUT",
        path,
        headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    send(ctx.gateway.s3_addr, "PUT", path, &headers, &body).await
}

async fn uploads_without_content_length_work_like_the_js_sdk_sends_them(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 233) as u8).collect();
    let path = format!("/{b}/in/js.bin");
    let answer = put_with_trailer(
        &ctx,
        &cred,
        &path,
        &data,
        &crc32_base64(&data),
        Length::TransferEncodingChunked,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        ctx.backend_object(&b, "in/js.bin").await.unwrap() == data,
        "stored intact"
    );
}

async fn unsigned_trailer_uploads_are_checked_against_their_trailer(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();

    let answer = put_with_trailer(
        &ctx,
        &cred,
        &format!("/{b}/in/good.bin"),
        &data,
        &crc32_base64(&data),
        Length::ContentLength,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        ctx.backend_object(&b, "in/good.bin").await.unwrap() == data,
        "stored intact"
    );

    let answer = put_with_trailer(
        &ctx,
        &cred,
        &format!("/{b}/in/bad.bin"),
        &data,
        &crc32_base64(b"other"),
        Length::ContentLength,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("<Code>BadDigest</Code>")
            && answer.contains("does not match the uploaded data"),
        "{answer}"
    );
    assert!(
        ctx.backend_object(&b, "in/bad.bin").await.is_none(),
        "nothing stored"
    );
}

async fn oversized_chunks_are_refused_before_they_are_buffered(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let path = format!("/{b}/in/huge.bin");
    // Declares one 1 GiB chunk; only its first KiB is ever sent.
    let declared: usize = 1 << 30;
    let mut body = format!("{declared:x}\r\n").into_bytes();
    body.extend_from_slice(&[7u8; 1024]);
    let headers = vec![
        ("host".to_owned(), ctx.gateway.s3_addr.to_string()),
        ("content-encoding".to_owned(), "aws-chunked".to_owned()),
        ("content-length".to_owned(), (declared + 64).to_string()),
        (
            "x-amz-decoded-content-length".to_owned(),
            declared.to_string(),
        ),
        (
            "x-amz-trailer".to_owned(),
            "x-amz-checksum-crc32".to_owned(),
        ),
    ];
    let headers = sign(
        &cred,
        REGION,
        "PUT",
        &path,
        headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let answer = send(ctx.gateway.s3_addr, "PUT", &path, &headers, &body).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(
            "aws-chunked chunk of 1073741824 bytes is larger than the 8388608 bytes Sesame accepts"
        ),
        "{answer}"
    );
    assert!(ctx.backend_object(&b, "in/huge.bin").await.is_none());
}

//! Request bodies at the front door, sent as raw requests signed in the test (clients frame
//! bodies their own way): a PUT with `Transfer-Encoding: chunked` and no length is stored as
//! S3 stores it (up to a bound, and with its declared hash checked), and a client still
//! writing a refused upload reads the refusal instead of a reset connection.

use std::fmt::Write as _;

use sesame::grant::IssuedCredential;
use sesame::model::Action::{Read, Write};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{BackendKind, Ctx, REGION};
use crate::sigv4::{send, sign};

crate::on_every_backend!(
    a_put_without_any_length_is_stored_as_s3_stores_it,
    curl_pipes_an_upload_with_its_own_sigv4,
    a_put_without_a_length_over_the_bound_is_refused_and_stores_nothing,
    a_client_writing_a_refused_upload_reads_the_refusal,
);

/// `data` framed as `Transfer-Encoding: chunked`, in chunks of 64 KiB.
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

/// A PUT of `path` with `data` sent chunked and no length, signed with `payload_hash`.
async fn put_unsized(
    ctx: &Ctx,
    cred: &IssuedCredential,
    path: &str,
    data: &[u8],
    payload_hash: &str,
) -> String {
    let mut headers = sign(
        cred,
        REGION,
        "PUT",
        path,
        vec![("host".to_owned(), ctx.gateway.s3_addr.to_string())],
        payload_hash,
    );
    headers.push(("transfer-encoding".to_owned(), "chunked".to_owned()));
    send(ctx.gateway.s3_addr, "PUT", path, &headers, &chunked(data)).await
}

/// `curl --aws-sigv4 -T -` uploads what it reads from a pipe, chunked and without a length.
/// curl 7.88 does not send `x-amz-content-sha256`, which S3 requires of every SigV4 request
/// (curl 8 adds it for the `s3` service), so it is given as S3 users give it.
async fn curl_pipes_an_upload_with_its_own_sigv4(kind: BackendKind) {
    use std::io::Write as _;
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, Write]);
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 239) as u8).collect();
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "-w", "\nHTTP %{http_code}", "--aws-sigv4"])
        .arg(format!("aws:amz:{REGION}:s3"))
        .arg("--user")
        .arg(format!(
            "{}:{}",
            cred.access_key_id,
            cred.secret_access_key.expose()
        ))
        .arg("-H")
        .arg(format!(
            "x-amz-security-token: {}",
            cred.session_token.expose()
        ))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", "-"])
        .arg(format!("{}/{b}/in/piped.bin", ctx.s3_url))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    curl.stdin.take().unwrap().write_all(&data).unwrap();
    let out = curl.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("HTTP 200"), "{stdout}");
    assert!(ctx.backend_object(&b, "in/piped.bin").await == Some(data));
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn a_put_without_any_length_is_stored_as_s3_stores_it(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, Write]);
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();

    // As `curl -T -` sends a pipe: unsigned payload, no length.
    let answer = put_unsized(
        &ctx,
        &cred,
        &format!("/{b}/in/piped.bin"),
        &data,
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(ctx.backend_object(&b, "in/piped.bin").await == Some(data.clone()));

    // With the payload's hash signed: checked against what arrived.
    let answer = put_unsized(
        &ctx,
        &cred,
        &format!("/{b}/in/hashed.bin"),
        &data,
        &sha256_hex(&data),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(ctx.backend_object(&b, "in/hashed.bin").await == Some(data.clone()));
    let answer = put_unsized(
        &ctx,
        &cred,
        &format!("/{b}/in/forged.bin"),
        &data,
        &sha256_hex(b"other"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("XAmzContentSHA256Mismatch"), "{answer}");
    assert!(ctx.backend_object(&b, "in/forged.bin").await.is_none());

    // Outside the grant: refused as any upload is, nothing stored.
    let answer = put_unsized(
        &ctx,
        &cred,
        &format!("/{b}/out/x.bin"),
        &data,
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("does not cover"), "{answer}");
    assert!(ctx.backend_object(&b, "out/x.bin").await.is_none());
}

async fn a_put_without_a_length_over_the_bound_is_refused_and_stores_nothing(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let data = vec![7u8; (32 << 20) + 1];
    let answer = put_unsized(
        &ctx,
        &cred,
        &format!("/{b}/in/big.bin"),
        &data,
        "UNSIGNED-PAYLOAD",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert!(
        answer.contains("<Code>MissingContentLength</Code>"),
        "{answer}"
    );
    assert!(
        answer.contains("taken up to 32 MiB; send Content-Length, or use a multipart upload"),
        "{answer}"
    );
    assert!(ctx.backend_object(&b, "in/big.bin").await.is_none());
}

/// An upload the access check refuses before reading its body, written in full by a client
/// that reads the answer only afterwards (as the JS SDK does without `Expect: 100-continue`):
/// every write goes through and the answer is the refusal. Before, the gateway closed the
/// socket with the body unread, which resets the connection: the client's write failed with
/// `EPIPE` or its read with a reset, and the S3 error was lost.
async fn a_client_writing_a_refused_upload_reads_the_refusal(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let data = vec![1u8; 4 << 20];
    for attempt in 0..5 {
        let path = format!("/{b}/out/{attempt}.bin");
        let headers = sign(
            &cred,
            REGION,
            "PUT",
            &path,
            vec![("host".to_owned(), ctx.gateway.s3_addr.to_string())],
            "UNSIGNED-PAYLOAD",
        );
        let mut stream = tokio::net::TcpStream::connect(ctx.gateway.s3_addr)
            .await
            .unwrap();
        let mut lines = String::new();
        for (k, v) in &headers {
            let _ = write!(lines, "{k}: {v}\r\n");
        }
        let head = format!(
            "PUT {path} HTTP/1.1\r\n{lines}content-length: {}\r\n\r\n",
            data.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let written = stream.write_all(&data).await;
        let mut answer = Vec::new();
        let read = read_answer(&mut stream, &mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            written.is_ok(),
            "attempt {attempt}: the write failed: {written:?}; read {answer}"
        );
        assert!(read.is_ok(), "attempt {attempt}: the read failed: {read:?}");
        assert!(
            answer.starts_with("HTTP/1.1 403"),
            "attempt {attempt}: {answer}"
        );
        assert!(
            answer.contains("<Code>AccessDenied</Code>"),
            "attempt {attempt}: {answer}"
        );
        assert!(
            ctx.backend_object(&b, &format!("out/{attempt}.bin"))
                .await
                .is_none()
        );
    }
}

/// Reads one answer: its head, then the body its `content-length` gives.
async fn read_answer(
    stream: &mut tokio::net::TcpStream,
    into: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        into.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(into);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return Ok(());
            }
        }
    }
}

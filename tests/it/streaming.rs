//! Transfers in flight: cut when the grant is revoked or expires, and streamed without
//! holding bodies in memory.

use aws_sdk_s3::primitives::ByteStream;
use sesame::model::Action::{Read, Write};

use crate::harness::{BackendKind, Ctx, ServeProcess, credential_from_json};

crate::on_every_backend!(
    revocation_cuts_a_download_in_flight,
    expiry_cuts_a_download_in_flight,
    revocation_cuts_an_upload_in_flight,
    memory_stays_bounded_while_a_gibibyte_streams_through,
);

const MIB: usize = 1024 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

/// Starts a download, lets `end` happen after the first bytes, and returns how many bytes
/// arrived and whether the stream ended in an error.
async fn download_interrupted_by(ctx: &Ctx, end: impl FnOnce()) -> (usize, bool) {
    let b = ctx.bucket_with(&[]).await;
    ctx.put(&b, "big/object.bin", &pattern(48 * MIB)).await;
    let cred = ctx.grant(&format!("s3://{b}/big/"), &[Read]);
    let sdk = ctx.sdk(&cred);
    let mut body = sdk
        .get_object()
        .bucket(&b)
        .key("big/object.bin")
        .send()
        .await
        .expect("download starts")
        .body;
    let mut received = body
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk ok")
        .len();
    end();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => received += bytes.len(),
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

async fn revocation_cuts_a_download_in_flight(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let grants = ctx.gateway.grants.clone();
    let (received, cut) = download_interrupted_by(&ctx, || {
        let id = grants.list()[0].id.clone();
        crate::harness::block_on(grants.revoke(&id, "test")).unwrap();
    })
    .await;
    assert!(cut, "the download ended in an error");
    assert!(
        received < 48 * MIB,
        "the download stopped early: {received} bytes arrived"
    );
}

async fn expiry_cuts_a_download_in_flight(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let (received, cut) = download_interrupted_by(&ctx, || ctx.expire_all()).await;
    assert!(cut, "the download ended in an error");
    assert!(
        received < 48 * MIB,
        "the download stopped early: {received} bytes arrived"
    );
}

async fn revocation_cuts_an_upload_in_flight(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Write]);
    let sdk = ctx.sdk(&cred);

    // A body the test feeds by hand: half now, the rest only after the revocation.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>(4);
    let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
    let upload = tokio::spawn(
        sdk.put_object()
            .bucket(&b)
            .key("in/partial.bin")
            .content_length(8 * MIB as i64)
            .body(ByteStream::from_body_1_x(body))
            .send(),
    );
    let half = bytes::Bytes::from(pattern(4 * MIB));
    tx.send(Ok(hyper::body::Frame::data(half.clone())))
        .await
        .unwrap();
    ctx.revoke(&cred);
    // The rest may or may not be taken: the gateway has stopped reading.
    let _ = tx.send(Ok(hyper::body::Frame::data(half))).await;
    drop(tx);
    let result = upload.await.unwrap();
    assert!(result.is_err(), "the upload failed");
    assert!(
        ctx.backend_object(&b, "in/partial.bin").await.is_none(),
        "nothing was stored"
    );
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Sync {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn memory_stays_bounded_while_a_gibibyte_streams_through(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let data_dir = ctx.dir.path().join("serve");
    let backend = ctx.backend.clone();
    let server = ServeProcess::start(
        &data_dir,
        &["--backend", &backend.endpoint],
        &[
            ("SESAME_BACKEND_ACCESS_KEY_ID", &backend.access_key),
            ("SESAME_BACKEND_SECRET_ACCESS_KEY", &backend.secret),
        ],
    );
    let out = server.cli(&[
        "grant",
        "create",
        &format!("s3://{b}/big/"),
        "--to",
        "tester",
        "--actions",
        "read,write",
        "--for",
        "1h",
        "--format",
        "json",
    ]);
    let cred = credential_from_json(&out.ok().stdout);

    // 1 GiB on disk, streamed up as aws-chunked with a checksum trailer, then down again.
    let size: u64 = 1024 * MIB as u64;
    let path = ctx.dir.path().join("gibibyte.bin");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block = pattern(MIB);
        for _ in 0..1024 {
            f.write_all(&block).unwrap();
        }
    }
    let sdk = {
        let mut c = ctx.sdk(&cred).config().to_builder();
        c.set_endpoint_url(Some(server.s3_url.clone()));
        aws_sdk_s3::Client::from_conf(c.build())
    };
    let body = ByteStream::from_path(&path).await.unwrap();
    sdk.put_object()
        .bucket(&b)
        .key("big/gibibyte.bin")
        .body(body)
        .send()
        .await
        .expect("1 GiB upload");
    let mut body = sdk
        .get_object()
        .bucket(&b)
        .key("big/gibibyte.bin")
        .send()
        .await
        .expect("download starts")
        .body;
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(received, size);
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("sesame peak RSS while streaming 1 GiB up and down: {peak_mib} MiB");
    assert!(
        peak_mib < 100,
        "peak RSS {peak_mib} MiB is not bounded to tens of MiB"
    );
}

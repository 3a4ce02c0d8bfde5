use super::*;
use crate::record::StopKind;
use futures::StreamExt;

struct Items(std::vec::IntoIter<Result<Bytes, StdError>>);
impl Stream for Items {
    type Item = Result<Bytes, StdError>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}
impl ByteStream for Items {}

fn body(items: Vec<Result<&'static [u8], &'static str>>) -> DynByteStream {
    let items: Vec<Result<Bytes, StdError>> = items
        .into_iter()
        .map(|i| i.map(Bytes::from_static).map_err(StdError::from))
        .collect();
    Box::pin(Items(items.into_iter()))
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::checksum(data)
}

/// Everything the stream lets through, and the error it ended with.
async fn run(s: &mut Settled) -> (Vec<u8>, Option<String>) {
    let mut got = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(e) => return (got, Some(e.to_string())),
        }
    }
    (got, None)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn declarations_prefer_the_decoded_length_and_refuse_a_malformed_md5() {
    let d = declarations(&headers(&[
        ("content-length", "99"),
        ("x-amz-decoded-content-length", "11"),
        ("content-md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
    ]))
    .unwrap();
    assert_eq!(d.length, Some((11, "x-amz-decoded-content-length")));
    assert_eq!(d.md5, Some(md5_of(b"hello world")));
    let d = declarations(&headers(&[("content-length", "5")])).unwrap();
    assert_eq!(d.length, Some((5, "content-length")));
    let e = declarations(&headers(&[("content-md5", "bm90IG1kNQ==")])).unwrap_err();
    assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidDigest);
    assert!(e.message().unwrap().contains("\"bm90IG1kNQ==\""), "{e:?}");
}

#[tokio::test]
async fn a_body_that_matches_every_declaration_passes_whole() {
    let declared = Declarations {
        md5: Some(md5_of(b"hello world")),
        length: Some((11, "content-length")),
    };
    let verdict = Verdict::default();
    let mut s = Settled::new(
        body(vec![Ok(b"hello "), Ok(b"world")]),
        declared,
        verdict.clone(),
    );
    assert_eq!(run(&mut s).await, (b"hello world".to_vec(), None));
    assert_eq!(verdict.get(), None);
}

#[tokio::test]
async fn a_wrong_md5_withholds_the_last_chunk() {
    let declared = Declarations {
        md5: Some(md5_of(b"other")),
        length: None,
    };
    let verdict = Verdict::default();
    let mut s = Settled::new(body(vec![Ok(b"hel"), Ok(b"lo")]), declared, verdict.clone());
    let (got, err) = run(&mut s).await;
    assert_eq!(got, b"hel");
    assert!(err.unwrap().contains("content-md5"));
    assert!(matches!(verdict.get(), Some(Stop::BadChecksum(_))));
}

#[tokio::test]
async fn a_body_longer_or_shorter_than_declared_never_completes() {
    let declared = |n| Declarations {
        md5: None,
        length: Some((n, "x-amz-decoded-content-length")),
    };
    let verdict = Verdict::default();
    let mut s = Settled::new(
        body(vec![Ok(b"abc"), Ok(b"def")]),
        declared(5),
        verdict.clone(),
    );
    let (got, err) = run(&mut s).await;
    assert_eq!(
        got, b"",
        "the chunk before the crossing one is held back too"
    );
    assert!(
        err.unwrap()
            .contains("more than the 5 bytes x-amz-decoded-content-length")
    );
    assert!(matches!(verdict.get(), Some(Stop::TooLong(_))));

    let verdict = Verdict::default();
    let mut s = Settled::new(
        body(vec![Ok(b"abc"), Ok(b"def")]),
        declared(7),
        verdict.clone(),
    );
    let (got, err) = run(&mut s).await;
    assert_eq!(got, b"abc");
    assert!(err.unwrap().contains("ended before the 7 bytes"));
    assert!(matches!(verdict.get(), Some(Stop::Incomplete(_))));
}

#[tokio::test]
async fn s3s_stream_errors_are_named_and_an_earlier_stop_wins() {
    let cases = [
        (
            "AwsChunkedStreamError: SignatureMismatch",
            StopKind::BadSignature,
        ),
        (
            "UploadStreamError: Sha256Mismatch",
            StopKind::BadPayloadHash,
        ),
        ("UploadStreamError: LengthMismatch", StopKind::TooLong),
        ("AwsChunkedStreamError: FormatError", StopKind::BadChunk),
        ("connection reset", StopKind::Incomplete),
    ];
    for (error, kind) in cases {
        let verdict = Verdict::default();
        let stream = body(vec![Ok(b"abc"), Err(error)]);
        let mut s = Settled::new(stream, Declarations::default(), verdict.clone());
        let (got, err) = run(&mut s).await;
        assert_eq!(got, b"", "{error}");
        assert!(err.is_some(), "{error}");
        assert_eq!(verdict.get().map(Stop::kind), Some(kind), "{error}");
    }
    let verdict = Verdict::default();
    verdict.set_first(Stop::BadChunk("chunk too large".into()));
    let stream = body(vec![Err("AwsChunkedStreamError: Underlying")]);
    let mut s = Settled::new(stream, Declarations::default(), verdict.clone());
    let (_, err) = run(&mut s).await;
    assert_eq!(err.as_deref(), Some("chunk too large"));
}

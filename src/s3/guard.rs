//! Checks on the request before s3s sees it, for the holes s3s 0.14 leaves open. Every check
//! reads the one parse in [`super::parse`]: SigV2 is refused there; here, requests must be
//! signed for the gateway's region and for S3, every `x-amz-*` header must be signed,
//! presigned URLs live at most seven days, and no aws-chunked chunk may be larger than
//! [`MAX_CHUNK`] (s3s reads each chunk whole into memory before checking its signature).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use hyper::HeaderMap;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::denial::Denial;
use super::parse::{Credential, Parsed, Signer};
use super::transfer::{Stop, Verdict};

/// Largest aws-chunked chunk accepted. SDKs send 64 KiB, botocore 1 MiB.
pub const MAX_CHUNK: u64 = 8 * 1024 * 1024;

/// Longest presigned URL lifetime S3 allows; the grant's end cuts it shorter still.
pub const MAX_PRESIGN_SECONDS: u64 = 7 * 24 * 3600;

/// Parses the request once and refuses what s3s would otherwise accept. Runs before any
/// signature is checked, so it only looks at the shape of the request; the parse it returns
/// travels with the request for the checks after it.
pub fn admit(headers: &HeaderMap, query: Option<&str>, region: &str) -> S3Result<Parsed> {
    let parsed = super::parse::parse(headers, query)?;
    screen(&parsed, headers, region)?;
    super::forwarded::check(headers)?;
    Ok(parsed)
}

/// Region, service, presign lifetime and signed headers, read from the one parse.
fn screen(parsed: &Parsed, headers: &HeaderMap, region: &str) -> S3Result<()> {
    let (signed, code) = match &parsed.signer {
        // Unsigned requests are refused later as anonymous; nothing to compare here.
        Signer::Anonymous => return Ok(()),
        Signer::Header(signed) => (signed, S3ErrorCode::AuthorizationHeaderMalformed),
        Signer::Query { signed, expires } => {
            check_presign_expiry(*expires)?;
            (signed, S3ErrorCode::AuthorizationQueryParametersError)
        }
    };
    check_scope(&signed.credential, region, &code)?;
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-") && !signed.signed_headers.iter().any(|s| s == name) {
            return Err(Denial::HeaderNotSigned { name: name.into() }.into());
        }
    }
    Ok(())
}

/// The credential scope is `KEY/DATE/REGION/SERVICE/aws4_request`: its region must be ours
/// and its service `s3` (s3s also accepts `sts`, which Sesame does not serve).
fn check_scope(credential: &Credential, region: &str, code: &S3ErrorCode) -> S3Result<()> {
    if credential.region != region {
        return Err(S3Error::with_message(
            code.clone(),
            format!(
                "the region '{}' is wrong; expecting '{region}' (set AWS_REGION and AWS_DEFAULT_REGION, or --region)",
                credential.region
            ),
        ));
    }
    if credential.service != "s3" {
        return Err(S3Error::with_message(
            code.clone(),
            format!(
                "the service '{}' in the credential scope is wrong; expecting 's3'",
                credential.service
            ),
        ));
    }
    Ok(())
}

fn check_presign_expiry(secs: u64) -> S3Result<()> {
    if secs <= MAX_PRESIGN_SECONDS {
        return Ok(());
    }
    Err(s3_error!(
        AuthorizationQueryParametersError,
        "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_SECONDS}"
    ))
}

/// Whether the body is framed as aws-chunked.
#[must_use]
pub fn is_aws_chunked(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// Follows the aws-chunked framing as bytes pass and fails the body on the first chunk header
/// that declares more than [`MAX_CHUNK`] bytes. Bytes pass through unchanged.
pub struct ChunkLimit<S> {
    inner: S,
    state: Framing,
    verdict: Verdict,
}

#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// Reading a `size;chunk-signature=...\r\n` line; holds what was read so far.
    Header(Vec<u8>),
    /// Inside a chunk; bytes left including its closing CRLF.
    Data(u64),
    /// After the last (empty) chunk: trailers, passed through.
    Trailer,
}

/// Longest chunk header line: hex size, `;chunk-signature=` and 64 hex digits, with room.
const MAX_HEADER_LINE: usize = 1024;

impl<S> ChunkLimit<S> {
    pub fn new(inner: S, verdict: Verdict) -> Self {
        ChunkLimit {
            inner,
            state: Framing::Header(Vec::new()),
            verdict,
        }
    }

    fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.state {
                Framing::Trailer => return Ok(()),
                Framing::Data(left) => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    bytes = &bytes[usize::try_from(take).unwrap_or(bytes.len())..];
                    if *left == 0 {
                        self.state = Framing::Header(Vec::new());
                    }
                }
                Framing::Header(line) => {
                    let end = bytes.iter().position(|&b| b == b'\n');
                    let upto = end.map_or(bytes.len(), |i| i + 1);
                    line.extend_from_slice(&bytes[..upto]);
                    bytes = &bytes[upto..];
                    if line.len() > MAX_HEADER_LINE {
                        return Err("aws-chunked chunk header is too long".into());
                    }
                    if end.is_some() {
                        let size = chunk_size(line)?;
                        if size > MAX_CHUNK {
                            return Err(format!(
                                "aws-chunked chunk of {size} bytes is larger than the {MAX_CHUNK} bytes Sesame accepts"
                            ));
                        }
                        self.state = if size == 0 {
                            Framing::Trailer
                        } else {
                            Framing::Data(size + 2)
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let text =
        std::str::from_utf8(line).map_err(|_| "aws-chunked chunk header is not text".to_owned())?;
    let hex = text.split([';', '\r', '\n']).next().unwrap_or("").trim();
    u64::from_str_radix(hex, 16)
        .map_err(|_| format!("aws-chunked chunk size {hex:?} is not hexadecimal"))
}

impl<S> Stream for ChunkLimit<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => match self.inspect(&bytes) {
                Ok(()) => Poll::Ready(Some(Ok(bytes))),
                Err(reason) => {
                    let stop = Stop::BadChunk(reason);
                    self.verdict.set_first(stop.clone());
                    Poll::Ready(Some(Err(Box::new(stop))))
                }
            },
            other => other,
        }
    }
}

impl<S> s3s::stream::ByteStream for ChunkLimit<S>
where
    S: s3s::stream::ByteStream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        self.inner.remaining_length()
    }
}

/// An S3 error as the HTTP response s3s would have produced.
#[must_use]
pub fn error_response(e: S3Error) -> s3s::HttpResponse {
    e.to_http_response().unwrap_or_else(|_| {
        let mut res = s3s::HttpResponse::new(s3s::Body::empty());
        *res.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        res
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const REGION: &str = "us-east-1";

    fn check(headers: &HeaderMap, query: Option<&str>) -> S3Result<Parsed> {
        admit(headers, query, REGION)
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=SESA/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abc";

    /// A presigned query with these parameters changed (`None` leaves one out).
    fn presigned(changes: &[(&str, Option<&str>)]) -> String {
        let mut params = vec![
            ("X-Amz-Algorithm", Some("AWS4-HMAC-SHA256")),
            (
                "X-Amz-Credential",
                Some("SESA%2F20261129%2Fus-east-1%2Fs3%2Faws4_request"),
            ),
            ("X-Amz-Date", Some("20261129T000000Z")),
            ("X-Amz-Expires", Some("900")),
            ("X-Amz-SignedHeaders", Some("host")),
            ("X-Amz-Signature", Some("x")),
        ];
        for (name, value) in changes {
            match params.iter_mut().find(|(n, _)| n == name) {
                Some(param) => param.1 = *value,
                None => params.push((name, *value)),
            }
        }
        params
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n}={v}")))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn requests_signed_for_another_region_or_service_are_refused() {
        let other = AUTH.replace("us-east-1", "eu-west-1");
        let err = check(&headers(&[("authorization", &other)]), None).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::AuthorizationHeaderMalformed);
        assert!(
            err.message()
                .unwrap()
                .contains("'eu-west-1' is wrong; expecting 'us-east-1'")
        );
        let q = presigned(&[(
            "X-Amz-Credential",
            Some("SESA%2F20261129%2Feu-west-1%2Fs3%2Faws4_request"),
        )]);
        let err = check(&HeaderMap::new(), Some(&q)).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::AuthorizationQueryParametersError);
        let sts = AUTH.replace("/s3/", "/sts/");
        let err = check(&headers(&[("authorization", &sts)]), None).unwrap_err();
        assert!(err.message().unwrap().contains("service 'sts'"), "{err:?}");
    }

    #[test]
    fn sigv2_is_refused_with_a_hint_for_aws_cli_v1() {
        let err = check(&headers(&[("authorization", "AWS AKID:sig")]), None).unwrap_err();
        assert!(err.message().unwrap().contains("s3v4"));
        let err = check(
            &HeaderMap::new(),
            Some("AWSAccessKeyId=A&Signature=x&Expires=1"),
        )
        .unwrap_err();
        assert!(err.message().unwrap().contains("Signature Version 2"));
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let ok = headers(&[
            ("authorization", AUTH),
            ("x-amz-date", "x"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ]);
        assert!(check(&ok, None).is_ok());
        let mut bad = ok.clone();
        bad.insert("x-amz-copy-source", "other/key".parse().unwrap());
        let err = check(&bad, None).unwrap_err();
        assert!(
            err.message().unwrap().contains("x-amz-copy-source"),
            "{err:?}"
        );
        let err = check(
            &headers(&[("x-amz-copy-source", "b/k")]),
            Some(&presigned(&[])),
        )
        .unwrap_err();
        assert!(err.message().unwrap().contains("x-amz-copy-source"));
        // s3s looks signed names up exactly: " x-amz-copy-source" signs no header.
        let spaced = AUTH.replace("x-amz-date,", "x-amz-date; x-amz-copy-source,");
        let mut bad = ok.clone();
        bad.insert("authorization", spaced.parse().unwrap());
        bad.insert("x-amz-copy-source", "other/key".parse().unwrap());
        let err = check(&bad, None).unwrap_err();
        assert!(
            err.message()
                .unwrap()
                .contains("header x-amz-copy-source is not signed"),
            "{err:?}"
        );
    }

    #[test]
    fn presigned_urls_longer_than_a_week_are_refused() {
        let q = |secs: u64| presigned(&[("X-Amz-Expires", Some(&secs.to_string()))]);
        assert!(check(&HeaderMap::new(), Some(&q(604_800))).is_ok());
        let err = check(&HeaderMap::new(), Some(&q(604_801))).unwrap_err();
        assert!(err.message().unwrap().contains("604800"));
        let encoded = presigned(&[("X-Amz-Expires", None), ("X-Amz-%45xpires", Some("604801"))]);
        let err = check(&HeaderMap::new(), Some(&encoded)).unwrap_err();
        assert!(err.message().unwrap().contains("604800"), "{err:?}");
    }

    fn run(chunks: &[&[u8]]) -> Result<(), String> {
        let mut limit = ChunkLimit::new((), Verdict::default());
        chunks.iter().try_for_each(|c| limit.inspect(c))
    }

    #[test]
    fn chunk_framing_is_followed_across_reads() {
        let sig = "a".repeat(64);
        let body = format!(
            "5;chunk-signature={sig}\r\nhello\r\n0;chunk-signature={sig}\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
        );
        assert_eq!(run(&[body.as_bytes()]), Ok(()));
        let (a, b) = body.as_bytes().split_at(7);
        let (b, c) = b.split_at(70);
        assert_eq!(run(&[a, b, c]), Ok(()));
    }

    #[test]
    fn huge_declared_chunks_are_refused_before_their_data_arrives() {
        let header = format!("{:x}\r\n", MAX_CHUNK + 1);
        let err = run(&[header.as_bytes()]).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        assert!(run(&[b"zz\r\n"]).unwrap_err().contains("hexadecimal"));
        assert!(run(&[&[b'1'; 2000]]).unwrap_err().contains("too long"));
    }
}

//! What an upload declares about its body besides the `x-amz-checksum-*` digests (those are
//! `transfer::ChecksumChecked`'s): `Content-MD5`, `x-amz-decoded-content-length` (else
//! `Content-Length`), and what s3s verifies as the body passes: the signed
//! `x-amz-content-sha256` and every aws-chunked chunk signature.
//!
//! s3s 0.14 checks the sha256 and the final (empty) chunk's signature only after the last data
//! byte has gone by, never checks Content-MD5 or the decoded length, and reports each failure
//! as an opaque stream error (a 500). [`Settled`] holds back the latest chunk until the body
//! ended cleanly and every declaration matched, so a backend never receives a complete corrupt
//! body and the old object stays; the [`Verdict`] names what disagreed.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use hyper::HeaderMap;
use s3s::crypto::{Checksum as _, Md5};
use s3s::stream::{ByteStream, DynByteStream, RemainingLength};
use s3s::{S3Result, s3_error};

use super::transfer::{Stop, Verdict};

type StdError = Box<dyn std::error::Error + Send + Sync>;

/// The declarations of one upload that [`Settled`] verifies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declarations {
    /// `Content-MD5`, decoded.
    pub md5: Option<[u8; 16]>,
    /// The object bytes the body must carry, and the header that said so.
    pub length: Option<(u64, &'static str)>,
}

/// Reads the declarations from the request's headers. A `Content-MD5` that is not the base64
/// of 16 bytes is refused at once, as S3 does (`InvalidDigest`).
pub fn declarations(headers: &HeaderMap) -> S3Result<Declarations> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let md5 = match text("content-md5") {
        None => None,
        Some(value) => Some(decode_md5(value).ok_or_else(|| {
            s3_error!(
                InvalidDigest,
                "content-md5 {value:?} is not the base64 of a 16-byte md5 digest"
            )
        })?),
    };
    let length = ["x-amz-decoded-content-length", "content-length"]
        .into_iter()
        .find_map(|name| Some((text(name)?.trim().parse::<u64>().ok()?, name)));
    Ok(Declarations { md5, length })
}

fn decode_md5(value: &str) -> Option<[u8; 16]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    bytes.try_into().ok()
}

/// Why s3s failed an upload body, from its error's text: s3s 0.14 keeps its stream error
/// types private (`AwsChunkedStreamError`, `UploadStreamError`), so their `Display` is all
/// there is to go on. Anything unrecognised is a body that ended before its declared end.
fn classify(error: &StdError, declared: &Declarations) -> Stop {
    let text = error.to_string();
    if text.contains("SignatureMismatch") {
        Stop::BadSignature(
            "an aws-chunked chunk signature does not match the chunk's data; nothing was stored"
                .into(),
        )
    } else if text.contains("Sha256Mismatch") {
        Stop::BadPayloadHash(
            "x-amz-content-sha256 does not match the sha256 of the uploaded data; nothing was stored"
                .into(),
        )
    } else if text.contains("LengthMismatch") {
        Stop::TooLong(format!("{}; nothing was stored", too_long(declared)))
    } else if text.contains("FormatError") || text.contains("ChunkMetaTooLarge") {
        Stop::BadChunk(format!(
            "the aws-chunked body is malformed ({text}); nothing was stored"
        ))
    } else {
        Stop::Incomplete(format!("{}; nothing was stored", incomplete(declared)))
    }
}

fn too_long(declared: &Declarations) -> String {
    match declared.length {
        Some((n, header)) => format!("the body carries more than the {n} bytes {header} declares"),
        None => "the body carries more bytes than it declares".into(),
    }
}

fn incomplete(declared: &Declarations) -> String {
    match declared.length {
        Some((n, header)) => format!("the body ended before the {n} bytes {header} declares"),
        None => "the body ended before its declared end".into(),
    }
}

/// An upload body released to the backend only as far as its declarations allow: the latest
/// chunk waits until the next one arrives, or until the body ended cleanly and matched.
pub struct Settled {
    inner: DynByteStream,
    declared: Declarations,
    md5: Option<Md5>,
    received: u64,
    held: Option<Bytes>,
    verdict: Verdict,
    done: bool,
}

impl Settled {
    #[must_use]
    pub fn new(inner: DynByteStream, declared: Declarations, verdict: Verdict) -> Self {
        Settled {
            inner,
            md5: declared.md5.map(|_| Md5::new()),
            declared,
            received: 0,
            held: None,
            verdict,
            done: false,
        }
    }

    /// The first disagreement seen once the body ended cleanly, if any.
    fn check_end(&mut self) -> Option<Stop> {
        if let Some((n, _)) = self.declared.length
            && self.received < n
        {
            return Some(Stop::Incomplete(format!(
                "{} (got {}); nothing was stored",
                incomplete(&self.declared),
                self.received
            )));
        }
        if let (Some(declared), Some(hasher)) = (self.declared.md5, self.md5.take()) {
            let actual = hasher.finalize();
            if actual != declared {
                let b64 = |d: [u8; 16]| base64::engine::general_purpose::STANDARD.encode(d);
                return Some(Stop::BadChecksum(format!(
                    "content-md5 {} does not match the uploaded data ({}); nothing was stored",
                    b64(declared),
                    b64(actual)
                )));
            }
        }
        None
    }

    fn stop(&mut self, stop: Stop) -> Poll<Option<Result<Bytes, StdError>>> {
        self.done = true;
        self.held = None;
        // The first stop of the request (an oversized chunk, say) is what the client is told.
        let first = if let Some(earlier) = self.verdict.get() {
            earlier.clone()
        } else {
            self.verdict.set_first(stop.clone());
            stop
        };
        tracing::info!(reason = %first, "upload refused before it could complete");
        Poll::Ready(Some(Err(Box::new(first))))
    }
}

impl Stream for Settled {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(self.held.take().map(Ok));
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    self.received += bytes.len() as u64;
                    if let Some((n, _)) = self.declared.length
                        && self.received > n
                    {
                        let why = format!("{}; nothing was stored", too_long(&self.declared));
                        return self.stop(Stop::TooLong(why));
                    }
                    if let Some(h) = self.md5.as_mut() {
                        h.update(&bytes);
                    }
                    if let Some(previous) = self.held.replace(bytes) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let stop = classify(&e, &self.declared);
                    return self.stop(stop);
                }
                Poll::Ready(None) => {
                    if let Some(stop) = self.check_end() {
                        return self.stop(stop);
                    }
                    self.done = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        super::transfer::hint_with_held(self.held.as_ref(), self.inner.size_hint())
    }
}

/// Counts the withheld chunk: a consumer that saw zero remaining would stop before the end.
impl ByteStream for Settled {
    fn remaining_length(&self) -> RemainingLength {
        super::transfer::remaining_with_held(self.held.as_ref(), &self.inner.remaining_length())
    }
}

#[cfg(test)]
#[path = "declared/tests.rs"]
mod tests;

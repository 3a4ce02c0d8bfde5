//! Request bodies as the front door hands them to s3s, with two bounded kindnesses to
//! clients:
//! - An upload sent without a length (`Transfer-Encoding: chunked` and no `Content-Length`,
//!   as `curl -T -` sends a pipe) is held whole to learn its length: s3s needs the length
//!   before it checks the signature, and the backend before it stores the object. S3 and
//!   Garage take such uploads; Sesame takes them up to [`UNSIZED_MAX`] bytes, at most
//!   [`UNSIZED_AT_ONCE`] at a time, read within [`UNSIZED_READ_TIME`], so what they can make
//!   the gateway hold before any check is bounded.
//! - A body a refusal left unread is read on and dropped, up to [`DRAIN_MAX`] bytes or
//!   [`DRAIN_TIME`], after the answer is sent. Closing a socket with unread bytes in it
//!   resets the connection, and a client still writing its upload then sees `EPIPE` or a
//!   reset instead of the S3 error it was sent.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, EXPECT, HeaderMap, HeaderValue, TRANSFER_ENCODING};
use s3s::{S3Error, S3ErrorCode};
use tokio::sync::Semaphore;

/// The largest upload taken without a `Content-Length`.
pub const UNSIZED_MAX: usize = 32 << 20;
/// How many uploads without a length are held at once.
pub const UNSIZED_AT_ONCE: usize = 4;
/// How long the whole of such an upload may take to arrive.
pub const UNSIZED_READ_TIME: Duration = Duration::from_mins(1);
/// How much of a refused request's unread body is read on before the connection closes.
pub const DRAIN_MAX: usize = 8 << 20;
/// How long that reading may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

static UNSIZED: Semaphore = Semaphore::const_new(UNSIZED_AT_ONCE);

/// Whether this is an upload whose length only its end will tell: a `PUT` with a chunked
/// transfer encoding, no `Content-Length`, and no `x-amz-decoded-content-length` (an
/// aws-chunked body declares its length there, and s3s reads it as it streams).
#[must_use]
pub fn is_unsized_upload(method: &Method, headers: &HeaderMap) -> bool {
    let chunked = headers.get_all(TRANSFER_ENCODING).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
        })
    });
    method == Method::PUT
        && chunked
        && !headers.contains_key(CONTENT_LENGTH)
        && !headers.contains_key("x-amz-decoded-content-length")
}

/// Reads an upload sent without a length whole, within the bounds above, and sets its
/// `Content-Length` (unsigned by the client, who could not know it; the signature covers
/// what it signed, and the payload hash, if declared, is checked by s3s as usual).
pub async fn held_whole(headers: &mut HeaderMap, body: Incoming) -> Result<Bytes, S3Error> {
    let Ok(_permit) = UNSIZED.try_acquire() else {
        return Err(S3Error::with_message(
            S3ErrorCode::SlowDown,
            format!(
                "{UNSIZED_AT_ONCE} uploads without a Content-Length are being received already; retry, or send Content-Length"
            ),
        ));
    };
    let limited = http_body_util::Limited::new(body, UNSIZED_MAX);
    let read = tokio::time::timeout(UNSIZED_READ_TIME, limited.collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(S3Error::with_message(
                S3ErrorCode::MissingContentLength,
                format!(
                    "an upload without a Content-Length is taken up to {} MiB; send Content-Length, or use a multipart upload",
                    UNSIZED_MAX >> 20
                ),
            ));
        }
        Ok(Err(e)) => {
            return Err(S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                format!("the upload's body could not be read: {e}"),
            ));
        }
        Err(_) => {
            return Err(S3Error::with_message(
                S3ErrorCode::RequestTimeout,
                format!(
                    "an upload without a Content-Length must arrive within {} s",
                    UNSIZED_READ_TIME.as_secs()
                ),
            ));
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(bytes)
}

/// A request body that, dropped unread, is read on and discarded in the background (within
/// [`DRAIN_MAX`] and [`DRAIN_TIME`]), so the connection closes on a drained socket. Not for a
/// request that asked `Expect: 100-continue`: reading would ask the client for the body that
/// the refusal has just declined.
struct Draining {
    body: Option<Incoming>,
}

/// `body` for s3s, drained on drop unless the client waits for `100 Continue` before
/// sending it.
#[must_use]
pub fn drained_on_drop(headers: &HeaderMap, body: Incoming) -> s3s::Body {
    if headers.contains_key(EXPECT) || body.is_end_stream() {
        return s3s::Body::from(body);
    }
    s3s::Body::http_body(Draining { body: Some(body) })
}

impl Body for Draining {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drained = drain(body, DRAIN_MAX);
            // Whatever is left when either bound is reached closes with the connection.
            let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
        });
    }
}

/// Reads and drops up to `max` bytes of `body`.
async fn drain(mut body: Incoming, max: usize) {
    let mut read = 0;
    while read < max {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_a_chunked_put_without_any_length_is_unsized() {
        let put = Method::PUT;
        assert!(is_unsized_upload(
            &put,
            &headers(&[("transfer-encoding", "chunked")])
        ));
        assert!(is_unsized_upload(
            &put,
            &headers(&[("Transfer-Encoding", "gzip, Chunked")])
        ));
        for sized in [
            headers(&[("transfer-encoding", "chunked"), ("content-length", "5")]),
            headers(&[
                ("transfer-encoding", "chunked"),
                ("x-amz-decoded-content-length", "5"),
            ]),
            headers(&[("content-length", "5")]),
            headers(&[]),
        ] {
            assert!(!is_unsized_upload(&put, &sized), "{sized:?}");
        }
        assert!(!is_unsized_upload(
            &Method::POST,
            &headers(&[("transfer-encoding", "chunked")])
        ));
    }
}

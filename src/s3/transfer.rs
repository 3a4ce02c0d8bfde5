//! Bodies in flight. `Guarded` cuts a transfer the moment its grant is revoked or expires,
//! and [`download`] sends every download out that way, an S3 `GetObject` and a share link's
//! alike; `ChecksumChecked` verifies an upload's declared checksum (header or trailer)
//! against the bytes before the last of them reaches the backend, so a corrupt upload never
//! completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::Checksum;
use s3s::stream::{ByteStream, DynByteStream, RemainingLength};
use s3s::{S3Error, TrailingHeaders};
use sync_wrapper::SyncWrapper;

use super::denial::stopped_or;
use crate::clock::SharedClock;
use crate::grant::LiveGrant;
use crate::grant::usage::{Direction, GrantUsage};
use crate::model::{GrantState, Limits};
use crate::record::StopKind;

type StdError = Box<dyn std::error::Error + Send + Sync>;
type Ended = SyncWrapper<Pin<Box<dyn Future<Output = Stop> + Send>>>;

/// Why a transfer was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Revoked(String),
    #[error("{0}")]
    BadChecksum(String),
    #[error("{0}")]
    BadChunk(String),
    /// An aws-chunked chunk signature did not match its data.
    #[error("{0}")]
    BadSignature(String),
    /// The signed `x-amz-content-sha256` did not match the data.
    #[error("{0}")]
    BadPayloadHash(String),
    /// The body carried more than its declared length.
    #[error("{0}")]
    TooLong(String),
    /// The body ended before its declared length.
    #[error("{0}")]
    Incomplete(String),
    /// The grant's byte limit was reached.
    #[error("{0}")]
    Limit(String),
}

impl Stop {
    /// What kind of stop the trail records.
    #[must_use]
    pub fn kind(&self) -> StopKind {
        match self {
            Stop::Expired(_) => StopKind::Expired,
            Stop::Revoked(_) => StopKind::Revoked,
            Stop::BadChecksum(_) => StopKind::BadChecksum,
            Stop::BadChunk(_) => StopKind::BadChunk,
            Stop::BadSignature(_) => StopKind::BadSignature,
            Stop::BadPayloadHash(_) => StopKind::BadPayloadHash,
            Stop::TooLong(_) => StopKind::TooLong,
            Stop::Incomplete(_) => StopKind::Incomplete,
            Stop::Limit(_) => StopKind::Limit,
        }
    }
}

/// The first [`Stop`] of a transfer, shared with the operation that started it so it can tell
/// the client what happened.
#[derive(Debug, Clone, Default)]
pub struct Verdict(Arc<OnceLock<Stop>>);

impl Verdict {
    #[must_use]
    pub fn get(&self) -> Option<&Stop> {
        self.0.get()
    }

    /// Records the stop unless an earlier one was recorded already.
    pub fn set_first(&self, stop: Stop) {
        let _ = self.0.set(stop);
    }
}

/// Resolves once the grant is revoked or its window ends.
pub async fn grant_end(mut grant: LiveGrant, clock: SharedClock) -> Stop {
    loop {
        let current = grant.borrow_and_update().clone();
        match current.state(clock.now()) {
            GrantState::Active | GrantState::Scheduled => {}
            GrantState::Expired => {
                return Stop::Expired(format!("grant {} expired during the transfer", current.id));
            }
            GrantState::Revoked => {
                return Stop::Revoked(format!(
                    "grant {} was revoked during the transfer",
                    current.id
                ));
            }
        }
        tokio::select! {
            () = clock.sleep_until(current.expires_at) => {}
            changed = grant.changed() => {
                if changed.is_err() {
                    return Stop::Revoked(format!("grant {} is gone", current.id));
                }
            }
        }
    }
}

/// Counts the object bytes of a transfer against its grant's usage and limits, and into
/// the request's own count (for the completion record).
pub struct Tally {
    pub usage: GrantUsage,
    pub limits: Limits,
    pub direction: Direction,
    pub counted: Arc<AtomicU64>,
}

/// A body that stops with an error as soon as its grant ends (or its byte limit is reached,
/// when metered).
pub struct Guarded {
    inner: DynByteStream,
    ended: Ended,
    verdict: Verdict,
    tally: Option<Tally>,
    done: bool,
}

impl Guarded {
    pub fn new(
        inner: DynByteStream,
        grant: LiveGrant,
        clock: SharedClock,
        verdict: Verdict,
    ) -> Self {
        Guarded::until(inner, grant_end(grant, clock), verdict)
    }

    /// A body that stops with an error as soon as `ended` resolves.
    pub fn until(
        inner: DynByteStream,
        ended: impl Future<Output = Stop> + Send + 'static,
        verdict: Verdict,
    ) -> Self {
        let ended: Pin<Box<dyn Future<Output = Stop> + Send>> = Box::pin(ended);
        Guarded {
            inner,
            ended: SyncWrapper::new(ended),
            verdict,
            tally: None,
            done: false,
        }
    }

    /// Counts what passes; a chunk that would cross the grant's byte limit cuts the transfer.
    #[must_use]
    pub fn metered(self, tally: Tally) -> Self {
        Guarded {
            tally: Some(tally),
            ..self
        }
    }

    fn stop(&mut self, stop: Stop) -> Poll<Option<Result<Bytes, StdError>>> {
        self.done = true;
        tracing::info!(reason = %stop, "transfer cut");
        self.verdict.set_first(stop.clone());
        Poll::Ready(Some(Err(Box::new(stop))))
    }
}

impl Guarded {
    /// Reads the first chunk now, before the answer's head goes out: a grant that ended or a
    /// byte limit that chunk would cross is then an S3 error the client can read, instead of
    /// an answer cut before its first byte. Other errors stay in the body.
    pub async fn primed(mut self) -> Result<Primed, Stop> {
        let first = futures::StreamExt::next(&mut self).await;
        if let (Some(Err(_)), Some(stop)) = (&first, self.verdict.get()) {
            return Err(stop.clone());
        }
        Ok(Primed { first, rest: self })
    }
}

/// A guarded body whose first chunk was read by [`Guarded::primed`].
pub struct Primed {
    first: Option<Result<Bytes, StdError>>,
    rest: Guarded,
}

impl Stream for Primed {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => Pin::new(&mut self.rest).poll_next(cx),
        }
    }
}

impl ByteStream for Primed {
    /// The answer's Content-Length comes from here: the first chunk counts too.
    fn remaining_length(&self) -> RemainingLength {
        let first = match &self.first {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(_)) | None => None,
        };
        remaining_with_held(first, &self.rest.remaining_length())
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(stop) = self.ended.get_mut().as_mut().poll(cx) {
            return self.stop(stop);
        }
        let polled = self.inner.as_mut().poll_next(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some(tally)) = (&polled, &self.tally) {
            let n = chunk.len() as u64;
            if let Err(why) = tally.usage.add_bytes(&tally.limits, tally.direction, n) {
                return self.stop(Stop::Limit(why));
            }
            tally.counted.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ByteStream for Guarded {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}

/// A download's body as it goes out: cut when `ends` resolves (the grant's end, and a
/// link's), metered by `tally`, and its first chunk read before the answer's head is sent,
/// so that an end or a limit reached before any byte is an S3 error the client can read
/// ([`Guarded::primed`]). The same for `GetObject` and a share link.
pub async fn download(
    body: DynByteStream,
    ends: impl Future<Output = Stop> + Send + 'static,
    verdict: &Verdict,
    tally: Tally,
) -> Result<Primed, S3Error> {
    Guarded::until(body, ends, verdict.clone())
        .metered(tally)
        .primed()
        .await
        .map_err(|_| stopped_or(verdict, s3s::s3_error!(InternalError)))
}

/// Where the expected checksum of an upload comes from.
pub enum Expected {
    /// A header such as `x-amz-checksum-crc32`, known before the body.
    Header { algorithm: Algorithm, value: String },
    /// A trailer named by `x-amz-trailer`, known only after the last chunk.
    Trailer {
        algorithm: Algorithm,
        trailers: TrailingHeaders,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// From a header name like `x-amz-checksum-crc32`.
    #[must_use]
    pub fn from_header(name: &str) -> Option<Algorithm> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-amz-checksum-crc32" => Some(Algorithm::Crc32),
            "x-amz-checksum-crc32c" => Some(Algorithm::Crc32c),
            "x-amz-checksum-crc64nvme" => Some(Algorithm::Crc64Nvme),
            "x-amz-checksum-sha1" => Some(Algorithm::Sha1),
            "x-amz-checksum-sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    #[must_use]
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn hasher(self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        match self {
            Algorithm::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
            Algorithm::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
            Algorithm::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
            Algorithm::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
            Algorithm::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
        }
        h
    }

    fn pick(self, sums: Checksum) -> Option<String> {
        match self {
            Algorithm::Crc32 => sums.checksum_crc32,
            Algorithm::Crc32c => sums.checksum_crc32c,
            Algorithm::Crc64Nvme => sums.checksum_crc64nvme,
            Algorithm::Sha1 => sums.checksum_sha1,
            Algorithm::Sha256 => sums.checksum_sha256,
        }
    }
}

/// Hashes an upload as it passes and fails the stream at its end when the digest differs
/// from the declared one; the backend then sees an aborted body and stores nothing.
pub struct ChecksumChecked {
    inner: DynByteStream,
    expected: Option<Expected>,
    hasher: Option<ChecksumHasher>,
    /// The latest chunk, released once the next arrives or the digest matched.
    held: Option<Bytes>,
    verdict: Verdict,
    done: bool,
}

impl ChecksumChecked {
    #[must_use]
    pub fn new(inner: DynByteStream, expected: Expected, verdict: Verdict) -> Self {
        let algorithm = match &expected {
            Expected::Header { algorithm, .. } | Expected::Trailer { algorithm, .. } => *algorithm,
        };
        ChecksumChecked {
            inner,
            hasher: Some(algorithm.hasher()),
            expected: Some(expected),
            held: None,
            verdict,
            done: false,
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let (Some(expected), Some(hasher)) = (self.expected.take(), self.hasher.take()) else {
            return Ok(());
        };
        let (algorithm, declared) = match expected {
            Expected::Header { algorithm, value } => (algorithm, Some(value)),
            Expected::Trailer {
                algorithm,
                trailers,
            } => {
                let value = trailers
                    .read(|map| {
                        map.get(algorithm.header())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .flatten();
                (algorithm, value)
            }
        };
        let Some(declared) = declared else {
            return Err(format!(
                "the {} trailer announced in x-amz-trailer never arrived",
                algorithm.header()
            ));
        };
        let actual = algorithm.pick(hasher.finalize()).unwrap_or_default();
        if actual == declared.trim() {
            Ok(())
        } else {
            Err(format!(
                "{} {declared} does not match the uploaded data ({actual}); nothing was stored",
                algorithm.header()
            ))
        }
    }
}

impl Stream for ChecksumChecked {
    type Item = Result<Bytes, StdError>;

    /// Holds back the latest chunk until the next one arrives, so the last bytes are released
    /// only after the digest matched: a backend never receives a complete corrupt body.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(self.held.take().map(Ok));
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&bytes);
                    }
                    if let Some(previous) = self.held.replace(bytes) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    if let Err(reason) = self.finish() {
                        self.held = None;
                        let stop = Stop::BadChecksum(reason);
                        self.verdict.set_first(stop.clone());
                        return Poll::Ready(Some(Err(Box::new(stop))));
                    }
                }
                other => return other,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        hint_with_held(self.held.as_ref(), self.inner.size_hint())
    }
}

/// Counts the withheld chunk: a consumer that saw zero remaining would stop before the end.
impl ByteStream for ChecksumChecked {
    fn remaining_length(&self) -> RemainingLength {
        remaining_with_held(self.held.as_ref(), &self.inner.remaining_length())
    }
}

/// The size hint of a stream that holds `held` back from what its inner stream gave.
pub(super) fn hint_with_held(
    held: Option<&Bytes>,
    (lower, upper): (usize, Option<usize>),
) -> (usize, Option<usize>) {
    let held = held.map_or(0, Bytes::len);
    (lower + held, upper.map(|u| u + held))
}

/// The remaining length of a stream that holds `held` back: the held bytes still count.
pub(super) fn remaining_with_held(
    held: Option<&Bytes>,
    inner: &RemainingLength,
) -> RemainingLength {
    let held = held.map_or(0, Bytes::len);
    match inner.exact() {
        Some(n) => RemainingLength::new_exact(n + held),
        None => RemainingLength::new(held, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{Grant, example_grant};
    use futures::StreamExt;
    use time::macros::datetime;

    struct Items(std::vec::IntoIter<Result<Bytes, StdError>>);
    impl Stream for Items {
        type Item = Result<Bytes, StdError>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.next())
        }
    }
    impl ByteStream for Items {}

    fn body(chunks: &[&'static [u8]]) -> DynByteStream {
        let items: Vec<Result<Bytes, StdError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(Items(items.into_iter()))
    }

    fn crc32_of(data: &[u8]) -> String {
        let mut h = Algorithm::Crc32.hasher();
        h.update(data);
        h.finalize().checksum_crc32.unwrap()
    }

    #[tokio::test]
    async fn matching_checksum_passes_every_byte() {
        let expected = Expected::Header {
            algorithm: Algorithm::Crc32,
            value: crc32_of(b"hello world"),
        };
        let verdict = Verdict::default();
        let mut s = ChecksumChecked::new(body(&[b"hello ", b"world"]), expected, verdict.clone());
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, b"hello world");
        assert_eq!(verdict.get(), None);
    }

    #[tokio::test]
    async fn wrong_checksum_fails_the_stream_before_its_end() {
        let expected = Expected::Header {
            algorithm: Algorithm::Crc32,
            value: crc32_of(b"something else"),
        };
        let verdict = Verdict::default();
        let mut s = ChecksumChecked::new(body(&[b"hel", b"lo"]), expected, verdict.clone());
        // The last chunk is withheld: only "hel" passes before the error.
        assert_eq!(s.next().await.unwrap().unwrap().as_ref(), b"hel");
        let err = s.next().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(
            matches!(verdict.get(), Some(Stop::BadChecksum(m)) if m.contains("x-amz-checksum-crc32"))
        );
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn revocation_cuts_a_stream_that_is_waiting() {
        let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
        let grant = example_grant(
            "g-1",
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 11:00 UTC),
        );
        let (tx, rx) = tokio::sync::watch::channel(grant.clone());
        let pending: DynByteStream = Box::pin(PendingForever);
        let verdict = Verdict::default();
        let mut s = Guarded::new(pending, rx, Arc::new(clock.clone()), verdict.clone());
        assert!(futures::poll!(s.next()).is_pending());

        tx.send_replace(Grant {
            revoked_at: Some(datetime!(2026-01-01 10:01 UTC)),
            ..grant
        });
        let err = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
        assert!(matches!(verdict.get(), Some(Stop::Revoked(m)) if m.contains("g-1")));
    }

    #[tokio::test]
    async fn expiry_cuts_a_stream_when_the_clock_passes_the_deadline() {
        let clock = ManualClock::new(datetime!(2026-01-01 10:00 UTC));
        let grant = example_grant(
            "g-2",
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 10:30 UTC),
        );
        let (_tx, rx) = tokio::sync::watch::channel(grant);
        let mut s = Guarded::new(
            Box::pin(PendingForever),
            rx,
            Arc::new(clock.clone()),
            Verdict::default(),
        );
        assert!(futures::poll!(s.next()).is_pending());
        clock.advance(time::Duration::minutes(29));
        assert!(futures::poll!(s.next()).is_pending());
        clock.advance(time::Duration::minutes(1));
        let err = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    struct PendingForever;
    impl Stream for PendingForever {
        type Item = Result<Bytes, StdError>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }
    impl ByteStream for PendingForever {}
}

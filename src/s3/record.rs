//! What the audit trail says about each S3 request and share-link use: the decision, made
//! durable before anything is served by one [`commit`] for both, a record for requests
//! refused before they reached a decision, and a completion record with status, bytes and
//! latency when the response body ends.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::denial::Denial;
use crate::audit::AuditLog;
use crate::grant::usage::Meter;
use crate::record::{Body, Completion, Kind, Outcome, RequestFacts};

/// The peer of a connection, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Per-request facts the front door gathers for the trail, shared with the access check.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Answered as `x-amz-request-id` and written in every record about the request, so an
    /// error a client saw can be found in the trail.
    pub request_id: String,
    pub peer: Option<SocketAddr>,
    pub started: Instant,
    pub user_agent: String,
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// Sequence number of the decision record, once written.
    pub decision: Arc<OnceLock<u64>>,
    /// The decision record while it is on its way to disk (a read started at the backend
    /// meanwhile); nothing is answered before it is durable.
    pub durable: Durable,
    /// Object bytes received (uploads), counted as they stream to the backend.
    pub bytes_in: Arc<AtomicU64>,
    /// Why a transfer was cut, shared with every stream wrapping the request's bodies.
    pub verdict: super::transfer::Verdict,
}

impl RequestInfo {
    #[must_use]
    pub fn of(req: &hyper::Request<hyper::body::Incoming>) -> RequestInfo {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        RequestInfo {
            request_id: new_request_id(),
            peer: req.extensions().get::<Peer>().map(|p| p.0),
            started: Instant::now(),
            user_agent: header("user-agent").unwrap_or_default(),
            method: req.method().to_string(),
            path: recorded_path(req.uri().path()),
            range: header("range"),
            decision: Arc::default(),
            durable: Durable::default(),
            bytes_in: Arc::default(),
            verdict: super::transfer::Verdict::default(),
        }
    }

    /// Facts every record about this request carries.
    #[must_use]
    pub fn facts(&self) -> RequestFacts {
        RequestFacts {
            request_id: self.request_id.clone(),
            client: self.peer.map(|p| p.ip().to_string()),
            user_agent: self.user_agent.clone(),
            range: self.range.clone(),
        }
    }
}

/// Makes a decision durable before anything is served, alike for an S3 request and a share
/// link's use: a denial counts against the grant the request claimed (`denied_under`), the
/// record is appended and its seq kept for the request's completion record. A decision that
/// cannot be recorded is refused, whatever it was (DESIGN rule 1).
pub async fn commit(
    audit: &AuditLog,
    meter: &Meter,
    info: Option<&RequestInfo>,
    denied_under: Option<&str>,
    body: Body,
) -> Result<(), Denial> {
    if let Some(grant) = denied_under {
        meter.denied(grant);
    }
    match audit.append(body).await {
        Ok(seq) => {
            if let Some(info) = info {
                let _ = info.decision.set(seq);
            }
            Ok(())
        }
        Err(e) => Err(Denial::Unrecorded {
            error: e.to_string(),
        }),
    }
}

/// Starts making an allowed decision durable without waiting for it, so that a read may
/// start at the backend meanwhile: [`Durable::wait`] on `info.durable` (the operation, and
/// the front door before it answers) says when it is on disk, or refuses as [`commit`] does.
pub fn commit_started(audit: &AuditLog, info: &RequestInfo, body: Body) -> Result<(), Denial> {
    let appending = audit.append_started(body).map_err(|e| Denial::Unrecorded {
        error: e.to_string(),
    })?;
    *info.durable.0.lock().expect("not poisoned") = Some(appending);
    Ok(())
}

/// A decision record handed to the trail and not yet known to be on disk
/// ([`commit_started`]). The first waiter takes it and waits for the writer: the operation,
/// which answers only after, or else the front door, which runs after the operation; with
/// nothing (left) to wait for, [`Durable::wait`] returns at once.
#[derive(Clone, Default)]
pub struct Durable(Arc<std::sync::Mutex<Option<crate::audit::Appending>>>);

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.0.lock().is_ok_and(|w| w.is_some());
        f.debug_struct("Durable")
            .field("pending", &pending)
            .finish()
    }
}

impl Durable {
    /// Returns once the decision record is on disk, setting `decision` to its seq; a record
    /// that could not be written refuses the request, whatever it was (DESIGN rule 1).
    pub async fn wait(&self, decision: &OnceLock<u64>) -> Result<(), Denial> {
        let appending = self.0.lock().expect("not poisoned").take();
        let Some(appending) = appending else {
            return Ok(());
        };
        let seq = appending.await.map_err(|e| Denial::Unrecorded {
            error: e.to_string(),
        })?;
        let _ = decision.set(seq);
        Ok(())
    }
}

/// The path as the trail keeps it: a share link's token is its secret (anyone who reads it
/// can download), so in its place goes a SHA-256 of it, which matches the link for whoever
/// holds it and reveals nothing to whoever does not. A token sent on a path that is no
/// link's (`//_share/...`, `/_SHARE/...`, percent-encoded) is just as usable, so anything
/// shaped like one, as sent or once decoded, is hashed too.
fn recorded_path(path: &str) -> String {
    static TOKEN: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
        regex_lite::Regex::new(r"(?i)s-[0-9a-f]{24}\.[a-z0-9_-]+").expect("a valid pattern")
    });
    let hashed = |token: &str| format!("sha256:{}", crate::secret::token_hash(token));
    if let Some(token) = path.strip_prefix(crate::share::PATH_PREFIX) {
        return format!("{}{}", crate::share::PATH_PREFIX, hashed(token));
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if !TOKEN.is_match(&decoded) {
        return path.to_owned();
    }
    TOKEN
        .replace_all(&decoded, |found: &regex_lite::Captures<'_>| {
            hashed(&found[0])
        })
        .into_owned()
}

/// 16 upper-case hex digits, like S3's request ids.
fn new_request_id() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode_upper(bytes)
}

/// A response body that counts what it sends and writes the completion record when it ends
/// (or is dropped, when the client went away or the transfer was cut).
pub struct Completing {
    inner: s3s::Body,
    audit: AuditLog,
    info: RequestInfo,
    status: u16,
    sent: u64,
    /// The body's length when known: once that much is sent the transfer is complete, even
    /// if the connection never polls the body to its end (hyper stops at Content-Length).
    length: Option<u64>,
    finished: bool,
    clock: crate::clock::SharedClock,
    /// The S3 error the client was answered with (code, message), if it was one.
    error: Option<(String, Option<String>)>,
}

impl Completing {
    pub fn new(
        inner: s3s::Body,
        audit: AuditLog,
        info: RequestInfo,
        status: u16,
        clock: crate::clock::SharedClock,
    ) -> Self {
        let length = http_body::Body::size_hint(&inner).exact();
        Completing {
            inner,
            audit,
            info,
            status,
            sent: 0,
            length,
            finished: false,
            clock,
            error: None,
        }
    }

    /// The S3 error the client was answered with, for the record: a request authorised and
    /// then refused for its form (by s3s, or for a digest that did not match) says so here.
    #[must_use]
    pub fn answered(mut self, error: Option<(String, Option<String>)>) -> Self {
        self.error = error;
        self
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let stop = self.info.verdict.get();
        let body = Body::new(Kind::Completion(Completion {
            at: self.clock.now(),
            request: self.info.facts(),
            decision: self.info.decision.get().copied(),
            status: self.status,
            bytes_out: self.sent,
            bytes_in: self.info.bytes_in.load(Ordering::Relaxed),
            latency_ms: u64::try_from(self.info.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            outcome,
            stopped: stop.map(ToString::to_string),
            stop_kind: stop.map(super::transfer::Stop::kind),
            error_code: self.error.as_ref().map(|(code, _)| code.clone()),
            error: self.error.as_ref().and_then(|(_, message)| message.clone()),
        }));
        self.audit.append_later(body);
        // One log line per refusal, with its reason: INFO, since refusing is the gateway's
        // job; WARN for a failure on the gateway's or the backend's side.
        if self.status >= 400 {
            let (code, reason) = self.error.clone().unwrap_or_default();
            let reason = reason.unwrap_or_default();
            let request_id = self.info.request_id.as_str();
            if self.status >= 500 {
                tracing::warn!(
                    status = self.status,
                    code,
                    reason,
                    request_id,
                    "S3 request failed"
                );
            } else {
                tracing::info!(
                    status = self.status,
                    code,
                    reason,
                    request_id,
                    "S3 request refused"
                );
            }
        }
    }
}

impl http_body::Body for Completing {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Outcome::Cut),
            Poll::Ready(None) => self.finish(Outcome::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Completing {
    fn drop(&mut self) {
        let delivered =
            self.length == Some(self.sent) || http_body::Body::is_end_stream(&self.inner);
        self.finish(if delivered {
            Outcome::Complete
        } else {
            Outcome::ClientGone
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use super::{Durable, recorded_path};
    use crate::audit::{AuditLog, Settings};
    use crate::clock::SystemClock;

    /// A decision handed to the trail is waited for by the first waiter (the operation),
    /// which gets its seq once it is on disk; a later one (the front door) finds nothing
    /// left to wait for, and with nothing started nothing is awaited.
    #[tokio::test]
    async fn a_decision_on_its_way_to_disk_is_waited_for_before_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let audit =
            AuditLog::open(dir.path(), &Settings::default(), Arc::new(SystemClock)).unwrap();
        let idle = Durable::default();
        let decision = OnceLock::new();
        idle.wait(&decision).await.unwrap();
        assert!(decision.get().is_none());

        let durable = Durable::default();
        let appending = audit
            .append_started(crate::record::note("a decision"))
            .unwrap();
        *durable.0.lock().unwrap() = Some(appending);
        durable.clone().wait(&decision).await.unwrap();
        let seq = *decision.get().expect("the seq is set");
        let trail = std::fs::read_to_string(dir.path().join(crate::audit::TRAIL_FILE)).unwrap();
        assert!(trail.contains(&format!("\"seq\":{seq},")), "{trail}");
        durable.wait(&decision).await.unwrap();
    }

    #[test]
    fn no_share_token_is_kept_in_clear_whatever_path_it_came_on() {
        let token = "s-0123456789abcdef01234567.gNaoiWEW4ZuZTw_lGD2WDUsm";
        for path in [
            format!("/_share/{token}"),
            format!("//_share/{token}"),
            format!("/_SHARE/{}", token.to_uppercase()),
            format!("/%5Fshare/s%2D{}", &token[2..]),
            format!("/bucket/{token}/x"),
        ] {
            let kept = recorded_path(&path);
            assert!(
                !kept.to_lowercase().contains("gnaoiwew4zuztw"),
                "{path} kept as {kept}"
            );
            assert!(kept.contains("sha256:"), "{kept}");
        }
        assert_eq!(recorded_path("/bucket/a%20key"), "/bucket/a%20key");
    }
}

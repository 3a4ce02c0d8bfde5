//! Answers share links on the S3 listener: `GET`/`HEAD /_share/<token>` with no other
//! credentials. The link and its grant are checked, the decision is made durable in the
//! trail, and only then is the backend asked; the body is cut the moment the link or the
//! grant ends.

use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use s3s::stream::DynByteStream;
use s3s::{S3Error, S3ErrorCode, s3_error};

use super::decision::decide_link;
use super::denial::Denial;
use super::record::RequestInfo;
use super::transfer::{Guarded, Stop, Tally, grant_end};
use crate::audit::AuditLog;
use crate::grant::usage::{Direction, Meter};
use crate::grant::{Grants, LiveGrant};
use crate::model::Share;
use crate::record::{Body, Kind, ShareUse, Verdict};
use crate::share::{Admitted, LinkEnd, PATH_PREFIX, Refused, Shares, share_end};

/// What answering links needs.
pub struct LinkServer {
    pub shares: Arc<Shares>,
    pub grants: Arc<Grants>,
    pub backend: aws_sdk_s3::Client,
    pub audit: AuditLog,
    /// Usage per grant: a link's downloads count against its grant's limits.
    pub meter: Arc<Meter>,
}

/// A request for a link rather than an S3 operation: under [`PATH_PREFIX`] and carrying no
/// S3 signature (a signed request for a key `_share/...` in a virtual-hosted bucket is S3's).
#[must_use]
pub fn is_link(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    req.uri().path().starts_with(PATH_PREFIX)
        && !req.headers().contains_key(header::AUTHORIZATION)
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.contains("X-Amz-Credential") || q.contains("X-Amz-Signature"))
}

/// A use of a link that passed every check.
struct Cleared {
    admitted: Admitted,
    grant: LiveGrant,
}

impl LinkServer {
    /// One decision record per use, refused or not, durable before the backend is asked.
    pub async fn answer(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
        info: &RequestInfo,
    ) -> s3s::HttpResponse {
        match self.serve(req, info).await {
            Ok(res) => res,
            Err(e) => crate::s3::guard::error_response(e),
        }
    }

    async fn serve(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
        info: &RequestInfo,
    ) -> Result<s3s::HttpResponse, S3Error> {
        let head = *req.method() == Method::HEAD;
        let checked = self.check(req, head);
        let (share, denial) = match &checked {
            Ok(c) => (Some(&c.admitted.share), None),
            Err((share, denial)) => (share.as_ref(), Some(denial)),
        };
        if let (Some(share), Some(_)) = (share, denial) {
            self.meter.denied(&share.grant_id);
        }
        let record = decision_record(info, share, head, denial, self.shares.clock().now());
        let recorded = self.audit.append(record).await;
        let cleared = match (checked, recorded) {
            (Ok(cleared), Ok(seq)) => {
                let _ = info.decision.set(seq);
                cleared
            }
            (Err((_, denial)), Ok(seq)) => {
                let _ = info.decision.set(seq);
                return Err(denial.into());
            }
            (checked, Err(e)) => {
                if let Ok(cleared) = checked {
                    self.give_back(&cleared.admitted);
                }
                return Err(Denial::Unrecorded {
                    error: e.to_string(),
                }
                .into());
            }
        };
        let fetched = self
            .fetch(&cleared.admitted.share, head, req.headers())
            .await;
        let (status, mut headers, body) = match fetched {
            Ok(parts) => parts,
            Err(e) => {
                self.give_back(&cleared.admitted);
                return Err(e);
            }
        };
        add_link_headers(&mut headers, &cleared.admitted.share.key);
        let tally = {
            let grant = cleared.grant.borrow();
            Tally {
                usage: self.meter.of(&grant.id),
                limits: grant.limits,
                direction: Direction::Read,
                counted: Arc::default(),
            }
        };
        let clock = self.shares.clock().clone();
        let (grant, share) = (cleared.grant, cleared.admitted.live);
        let ends = async move {
            tokio::select! {
                stop = grant_end(grant, clock.clone()) => stop,
                end = share_end(share, clock) => match end {
                    LinkEnd::Expired(why) => Stop::Expired(why),
                    LinkEnd::Revoked(why) => Stop::Revoked(why),
                },
            }
        };
        let guarded = Guarded::until(body, ends, info.verdict.clone()).metered(tally);
        let guarded: DynByteStream = Box::pin(guarded);
        let mut res = s3s::HttpResponse::new(s3s::Body::from(guarded));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        Ok(res)
    }

    /// The link's token, its state (taking a download for a GET) and its grant.
    fn check(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
        head: bool,
    ) -> Result<Cleared, (Option<Share>, Denial)> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err((None, Denial::LinkMethodNotAllowed));
        }
        let token = &req.uri().path()[PATH_PREFIX.len()..];
        let id = self
            .shares
            .verify_token(token)
            .map_err(|_| (None, Denial::LinkTokenInvalid))?;
        let admitted = self.shares.admit(&id, !head).map_err(|refused| match refused {
            Refused::Unknown => (None, Denial::LinkUnknown { share: id.clone() }),
            Refused::Ended(share, message) => {
                let denial = Denial::LinkEnded {
                    share: share.id.clone(),
                    message,
                };
                (Some(*share), denial)
            }
            Refused::Store(reason) => {
                tracing::error!(share = %id, error = %reason, "a download could not be counted");
                (None, Denial::Uncounted)
            }
        })?;
        let share = admitted.share.clone();
        let refuse = |denial: Denial| {
            self.give_back(&admitted);
            (Some(share.clone()), denial)
        };
        let Some(grant) = self.grants.subscribe(&share.grant_id) else {
            return Err(refuse(Denial::LinkGrantGone {
                share: share.id.clone(),
            }));
        };
        let current = grant.borrow().clone();
        let now = self.shares.clock().now();
        decide_link(&current, &share.id, &share.bucket, &share.key, now).map_err(refuse)?;
        let op = if head { "HeadObject" } else { "GetObject" };
        let effect = super::ops::effect_of(op);
        self.meter
            .admit(&current, effect, now)
            .map_err(|message| refuse(Denial::LimitReached { message }))?;
        Ok(Cleared { admitted, grant })
    }

    fn give_back(&self, admitted: &Admitted) {
        if admitted.counted {
            self.shares.give_back(&admitted.share.id);
        }
    }

    /// Asks the backend for the object (or its headers), passing on what a browser or curl
    /// sent to make the answer conditional or partial. A resumed download (`Range` with
    /// `If-Range`) whose validator no longer matches gets the whole object, as RFC 9110 says,
    /// never a piece of a changed one.
    async fn fetch(
        &self,
        share: &Share,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<(StatusCode, HeaderMap, DynByteStream), S3Error> {
        let asked = Conditions::of(headers);
        match self.fetch_once(share, head, &asked.with_if_range()).await {
            Err(e) if asked.if_range.is_some() && e.code() == &S3ErrorCode::PreconditionFailed => {
                self.fetch_once(share, head, &asked.whole()).await
            }
            fetched => fetched,
        }
    }

    async fn fetch_once(
        &self,
        share: &Share,
        head: bool,
        c: &Conditions,
    ) -> Result<(StatusCode, HeaderMap, DynByteStream), S3Error> {
        /// The headers a link answer passes on from the backend's `GetObject` or `HeadObject`.
        macro_rules! passed_on {
            ($got:expr) => {{
                let got = &$got;
                let mut out = HeaderMap::new();
                put(&mut out, header::CONTENT_TYPE, got.content_type());
                let length = got.content_length().map(|n| n.to_string());
                put(&mut out, header::CONTENT_LENGTH, length.as_deref());
                put(&mut out, header::ETAG, got.e_tag());
                let modified = got.last_modified().and_then(format_http_date);
                put(&mut out, header::LAST_MODIFIED, modified.as_deref());
                put(
                    &mut out,
                    header::CONTENT_DISPOSITION,
                    got.content_disposition(),
                );
                put(&mut out, header::CONTENT_RANGE, got.content_range());
                let status = if got.content_range().is_some() {
                    StatusCode::PARTIAL_CONTENT
                } else {
                    StatusCode::OK
                };
                (status, out)
            }};
        }
        /// Asks for the object (`get_object`) or its headers (`head_object`) under `c`.
        macro_rules! ask {
            ($operation:ident) => {
                self.backend
                    .$operation()
                    .bucket(&share.bucket)
                    .key(&share.key)
                    .set_range(c.range.clone())
                    .set_if_match(c.if_match.clone())
                    .set_if_none_match(c.if_none_match.clone())
                    .set_if_modified_since(c.if_modified_since)
                    .set_if_unmodified_since(c.if_unmodified_since)
                    .send()
                    .await
                    .map_err(|e| backend_error(share, &e))?
            };
        }
        if head {
            let got = ask!(head_object);
            let (status, out) = passed_on!(got);
            return Ok((status, out, empty_body()));
        }
        let got = ask!(get_object);
        let (status, out) = passed_on!(got);
        Ok((status, out, byte_stream(got.body)))
    }
}

/// What a client sent to make its request conditional or partial.
#[derive(Debug, Clone, Default, PartialEq)]
struct Conditions {
    range: Option<String>,
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<aws_sdk_s3::primitives::DateTime>,
    if_unmodified_since: Option<aws_sdk_s3::primitives::DateTime>,
    /// `If-Range`, which S3 does not take: an entity tag or a date.
    if_range: Option<String>,
}

impl Conditions {
    fn of(headers: &HeaderMap) -> Conditions {
        let text = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let range = text(header::RANGE);
        Conditions {
            if_range: text(header::IF_RANGE).filter(|_| range.is_some()),
            range,
            if_match: text(header::IF_MATCH),
            if_none_match: text(header::IF_NONE_MATCH),
            if_modified_since: text(header::IF_MODIFIED_SINCE).and_then(|d| http_date(&d)),
            if_unmodified_since: text(header::IF_UNMODIFIED_SINCE).and_then(|d| http_date(&d)),
        }
    }

    /// `If-Range` as the precondition S3 understands: the range holds only if the entity tag
    /// still matches (or the object is unmodified since the date).
    fn with_if_range(&self) -> Conditions {
        let mut c = self.clone();
        match self.if_range.as_deref() {
            None => {}
            Some(tag) if tag.starts_with('"') || tag.starts_with("W/") => {
                c.if_match = c.if_match.or_else(|| Some(tag.to_owned()));
            }
            Some(date) => {
                c.if_unmodified_since = c.if_unmodified_since.or_else(|| http_date(date));
            }
        }
        c
    }

    /// The object has changed since the client's piece: all of it, unconditionally.
    fn whole(&self) -> Conditions {
        Conditions {
            range: None,
            if_range: None,
            ..self.clone()
        }
    }
}

/// The trail's record of one use of a link: which link, under which grant, what, and the
/// outcome. The token itself is never written (it would let anyone reading the trail in).
fn decision_record(
    info: &RequestInfo,
    share: Option<&Share>,
    head: bool,
    denial: Option<&Denial>,
    now: time::OffsetDateTime,
) -> Body {
    Body::new(Kind::Share(ShareUse {
        at: now,
        request: info.facts(),
        op: if head { "HeadObject" } else { "GetObject" }.to_owned(),
        share: share.map(|s| s.id.clone()),
        downloads: share.map(|s| s.downloads),
        max_downloads: share.and_then(|s| s.max_downloads),
        principal: share.map(|s| s.principal.clone()),
        grant: share.map(|s| s.grant_id.clone()),
        bucket: share.map(|s| s.bucket.clone()),
        key: share.map(|s| s.key.clone()),
        decision: if denial.is_none() {
            Verdict::Allowed
        } else {
            Verdict::Denied
        },
        error_code: denial.map(|d| d.code().as_str().to_owned()),
        error: denial.map(Denial::message),
    }))
}

/// The backend's answer when it did not send the object: conditions and ranges it refused
/// keep their S3 status; anything else is the backend's failure, said without its details.
fn backend_error<E>(
    share: &Share,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> S3Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let mut err = match status {
        Some(304) => S3Error::new(S3ErrorCode::Custom("NotModified".into())),
        Some(412) => s3_error!(
            PreconditionFailed,
            "a precondition in the request did not hold"
        ),
        Some(416) => s3_error!(InvalidRange, "the requested range is not satisfiable"),
        Some(404) => s3_error!(NoSuchKey, "{} does not exist (any more)", share.uri()),
        _ => {
            tracing::warn!(share = %share.id, code = ?e.code(), status = ?status, "backend failed for a share link");
            s3_error!(
                ServiceUnavailable,
                "the storage backend did not answer; try again"
            )
        }
    };
    if let Some(code) = status.and_then(|s| StatusCode::from_u16(s).ok())
        && matches!(code.as_u16(), 304 | 412 | 416 | 404)
    {
        err.set_status_code(code);
    }
    err
}

/// Headers every link answer carries: a download with a sensible file name, a type, and no
/// caching (a revoked link must not live on in a cache).
fn add_link_headers(headers: &mut HeaderMap, key: &str) {
    let name = key.rsplit('/').next().unwrap_or(key);
    if !headers.contains_key(header::CONTENT_DISPOSITION)
        && let Ok(v) = HeaderValue::from_str(&content_disposition(name))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    let generic = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| {
            t.is_empty() || t == "binary/octet-stream" || t == "application/octet-stream"
        });
    if generic {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(type_for(name)),
        );
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The object is a download, never a page of the gateway's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
}

/// `attachment` with an ASCII fallback name and the exact name in RFC 5987 form.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

/// A type from the file name, for objects stored without one.
fn type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("csv") => "text/csv",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: Option<&str>) {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(name, v);
    }
}

fn http_date(s: &str) -> Option<aws_sdk_s3::primitives::DateTime> {
    aws_sdk_s3::primitives::DateTime::from_str(s, aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
        .ok()
}

fn format_http_date(d: &aws_sdk_s3::primitives::DateTime) -> Option<String> {
    d.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()
}

fn empty_body() -> DynByteStream {
    s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>()).into()
}

/// The backend's body as the stream the guard wraps.
fn byte_stream(body: aws_sdk_s3::primitives::ByteStream) -> DynByteStream {
    let stream = futures::stream::unfold(body, |mut body| async move {
        match body.try_next().await {
            Ok(Some(chunk)) => Some((Ok(chunk), body)),
            Ok(None) => None,
            Err(e) => Some((Err(e), body)),
        }
    });
    s3s::dto::StreamingBlob::wrap(stream).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_range_becomes_a_precondition_on_the_range_and_falls_back_to_the_whole() {
        let asked = Conditions::of(&headers(&[("range", "bytes=5-"), ("if-range", "\"abc\"")]));
        let ranged = asked.with_if_range();
        assert_eq!(ranged.range.as_deref(), Some("bytes=5-"));
        assert_eq!(ranged.if_match.as_deref(), Some("\"abc\""));
        let whole = asked.whole();
        assert_eq!((whole.range, whole.if_match), (None, None));

        let dated = Conditions::of(&headers(&[
            ("range", "bytes=5-"),
            ("if-range", "Sun, 29 Nov 2026 10:00:00 GMT"),
        ]))
        .with_if_range();
        assert!(dated.if_unmodified_since.is_some() && dated.if_match.is_none());

        // If-Range without Range means nothing.
        let alone = Conditions::of(&headers(&[("if-range", "\"abc\"")]));
        assert_eq!(alone.with_if_range(), Conditions::default());
    }

    #[test]
    fn downloads_are_named_after_the_key_and_typed_by_extension() {
        assert_eq!(
            content_disposition("rapport d'été.pdf"),
            "attachment; filename=\"rapport d'_t_.pdf\"; filename*=UTF-8''rapport%20d%27%C3%A9t%C3%A9%2Epdf"
        );
        assert_eq!(type_for("a.CSV"), "text/csv");
        assert_eq!(type_for("noext"), "application/octet-stream");
    }
}

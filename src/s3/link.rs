//! Answers share links on the S3 listener: `GET`/`HEAD /_share/<token>` with no other
//! credentials. What is a link's own is here: its token, its state and downloads, the
//! headers a browser needs. The rest is the S3 front end's, shared with every S3 request:
//! the grant's window and scope (`decision::decide_link`), its limits (`meter`), the record
//! made durable before the backend is asked (`record::commit`, and the completion record
//! the front door writes for every answer), the body cut the moment the link or the grant
//! ends (`transfer::download`), and the backend's errors (`backend::sdk_error`).

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use s3s::S3Error;
use s3s::stream::DynByteStream;

use super::backend::sdk_error;
use super::decision::decide_link;
use super::denial::{Denial, Recorded};
use super::meter::{admit, tally};
use super::record::{RequestInfo, commit};
use super::transfer::{Stop, download, grant_end};
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
            Err(e) => super::guard::error_response(e),
        }
    }

    async fn serve(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
        info: &RequestInfo,
    ) -> Result<s3s::HttpResponse, S3Error> {
        let head = *req.method() == Method::HEAD;
        let checked = self.check(req, head).await;
        let (share, denial) = match &checked {
            Ok(c) => (Some(&c.admitted.share), None),
            Err((share, denial)) => (share.as_ref(), Some(denial)),
        };
        let denied_under = share
            .filter(|_| denial.is_some())
            .map(|s| s.grant_id.clone());
        let record = decision_record(info, share, head, denial, self.shares.clock().now());
        let committed = commit(
            &self.audit,
            &self.meter,
            Some(info),
            denied_under.as_deref(),
            record,
        )
        .await;
        if let (Err(_), Ok(cleared)) = (&committed, &checked) {
            self.give_back(&cleared.admitted).await;
        }
        committed?;
        let cleared = checked.map_err(|(_, denial)| denial)?;
        // From here on nothing is sent unless the backend answers: a download not delivered
        // is given back.
        let answer = self.fetch_guarded(&cleared, head, req, info).await;
        if answer.is_err() {
            self.give_back(&cleared.admitted).await;
        }
        answer
    }

    /// The object (or its headers) from the backend, with the link's headers, its body cut
    /// when the link or its grant ends and counted against the grant.
    async fn fetch_guarded(
        &self,
        cleared: &Cleared,
        head: bool,
        req: &hyper::Request<hyper::body::Incoming>,
        info: &RequestInfo,
    ) -> Result<s3s::HttpResponse, S3Error> {
        let share = &cleared.admitted.share;
        let (status, mut headers, body) = self.fetch(share, head, req.headers()).await?;
        add_link_headers(&mut headers, &share.key);
        let tally = tally(&self.meter, &cleared.grant, Direction::Read, Arc::default());
        let clock = self.shares.clock().clone();
        let (grant, live) = (cleared.grant.clone(), cleared.admitted.live.clone());
        let ends = async move {
            tokio::select! {
                stop = grant_end(grant, clock.clone()) => stop,
                end = share_end(live, clock) => match end {
                    LinkEnd::Expired(why) => Stop::Expired(why),
                    LinkEnd::Revoked(why) => Stop::Revoked(why),
                },
            }
        };
        let body: DynByteStream = Box::pin(download(body, ends, &info.verdict, tally).await?);
        let mut res = s3s::HttpResponse::new(s3s::Body::from(body));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        Ok(res)
    }

    /// The link's token, its state (taking a download for a GET) and its grant.
    async fn check(
        &self,
        req: &hyper::Request<hyper::body::Incoming>,
        head: bool,
    ) -> Result<Cleared, (Option<Share>, Denial)> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err((None, Denial::LinkMethodNotAllowed));
        }
        self.grants
            .freshness()
            .check()
            .map_err(|stale| (None, stale.into()))?;
        let token = &req.uri().path()[PATH_PREFIX.len()..];
        let id = self
            .shares
            .verify_token(token)
            .map_err(|_| (None, Denial::LinkTokenInvalid))?;
        let admitted = self.shares.admit(&id, !head).await.map_err(|refused| match refused {
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
        match self.grant_of(&admitted.share, head) {
            Ok(grant) => Ok(Cleared { admitted, grant }),
            Err(denial) => {
                self.give_back(&admitted).await;
                Err((Some(admitted.share), denial))
            }
        }
    }

    /// The grant a link was made under, if it still lets the link be used now.
    fn grant_of(&self, share: &Share, head: bool) -> Result<LiveGrant, Denial> {
        let Some(grant) = self.grants.subscribe(&share.grant_id) else {
            return Err(Denial::LinkGrantGone {
                share: share.id.clone(),
            });
        };
        let current = grant.borrow().clone();
        let now = self.shares.clock().now();
        decide_link(&current, &share.id, &share.bucket, &share.key, now)?;
        let effect = super::ops::effect_of(operation(head));
        admit(&self.meter, &current, effect, now)?;
        Ok(grant)
    }

    async fn give_back(&self, admitted: &Admitted) {
        if admitted.counted {
            self.shares.give_back(&admitted.share.id).await;
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
            Err(e)
                if asked.if_range.is_some()
                    && e.status_code() == Some(StatusCode::PRECONDITION_FAILED) =>
            {
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
                    .map_err(sdk_error)?
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
    let Recorded {
        error_code,
        error,
        denial: typed,
    } = Recorded::of(denial);
    Body::new(Kind::Share(ShareUse {
        at: now,
        request: info.facts(),
        op: operation(head).to_owned(),
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
        error_code,
        error,
        denial: typed,
    }))
}

/// The S3 operation a link's use is: a download, or a look at the object's headers.
fn operation(head: bool) -> &'static str {
    if head { "HeadObject" } else { "GetObject" }
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

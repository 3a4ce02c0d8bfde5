//! Conditional GETs and HEADs (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`), which s3s-fs ignores: evaluated here, in the order of RFC 7232
//! §6 as S3 applies it, against the object's `ETag` and Last-Modified.

use s3s::dto::{ETag, ETagCondition, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode};

/// The preconditions a GET or HEAD carries, named after their headers.
#[allow(clippy::struct_field_names)]
#[derive(Debug, Default, Clone)]
pub(super) struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

impl Conditions {
    /// Whether any precondition was sent (only then is the object looked at first).
    pub(super) fn any(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.if_unmodified_since.is_some()
    }
}

/// Why the preconditions do not let the object be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 412: `If-Match` or `If-Unmodified-Since` does not hold.
    PreconditionFailed,
    /// 304: the client's copy is current (`If-None-Match` or `If-Modified-Since`).
    NotModified,
}

/// RFC 7232 §6 as S3 applies it: `If-Match` decides, or without it `If-Unmodified-Since`
/// (412); then `If-None-Match` decides, or without it `If-Modified-Since` (304). A 412
/// comes before a 304. Dates compare to the whole second, as `Last-Modified` is sent.
pub(super) fn decide(
    c: &Conditions,
    etag: &ETag,
    last_modified: &Timestamp,
) -> Result<(), Refusal> {
    let modified = whole_seconds(last_modified);
    let fails = match (&c.if_match, &c.if_unmodified_since) {
        (Some(condition), _) => !matches(condition, etag, ETag::strong_cmp),
        (None, Some(since)) => modified > whole_seconds(since),
        (None, None) => false,
    };
    if fails {
        return Err(Refusal::PreconditionFailed);
    }
    let current = match (&c.if_none_match, &c.if_modified_since) {
        (Some(condition), _) => matches(condition, etag, ETag::weak_cmp),
        (None, Some(since)) => modified <= whole_seconds(since),
        (None, None) => false,
    };
    if current {
        Err(Refusal::NotModified)
    } else {
        Ok(())
    }
}

/// Whether `condition` names `etag` (or is `*`, which any existing object matches).
fn matches(condition: &ETagCondition, etag: &ETag, cmp: fn(&ETag, &ETag) -> bool) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(named) => cmp(named, etag),
    }
}

/// Seconds since the epoch: HTTP dates carry no fraction, file times do.
fn whole_seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// The answer to a request whose preconditions do not let the object be served: a 304
/// carries the validators the client compares its copy with (RFC 9110 §15.4.5).
pub(super) fn answer(refusal: Refusal, etag: &ETag, last_modified: &Timestamp) -> S3Error {
    match refusal {
        Refusal::PreconditionFailed => S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "a condition of the request (If-Match, If-Unmodified-Since) does not hold",
        ),
        Refusal::NotModified => {
            let mut err = S3Error::new(S3ErrorCode::NotModified);
            let mut headers = hyper::HeaderMap::new();
            if let Ok(value) = etag.to_http_header() {
                headers.insert(hyper::header::ETAG, value);
            }
            let mut date = Vec::new();
            if last_modified
                .format(TimestampFormat::HttpDate, &mut date)
                .is_ok()
                && let Ok(value) = hyper::header::HeaderValue::from_bytes(&date)
            {
                headers.insert(hyper::header::LAST_MODIFIED, value);
            }
            err.set_headers(headers);
            err
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Refusal::{NotModified, PreconditionFailed};

    const SERVE: Result<(), Refusal> = Ok(());

    fn at(secs: i64, nanos: u32) -> Timestamp {
        let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
        Timestamp::from(t.replace_nanosecond(nanos).unwrap())
    }

    fn tag(value: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(value.to_owned()))
    }

    #[test]
    fn the_order_of_rfc_7232_decides_each_combination() {
        let etag = ETag::Strong("abc".to_owned());
        // Written at 1000.5 s: Last-Modified says 1000.
        let written = at(1000, 500_000_000);
        let (before, same, after) = (Some(at(999, 0)), Some(at(1000, 0)), Some(at(1001, 0)));
        let yes = || Some(tag("abc"));
        let no = || Some(tag("other"));
        let when = |if_match, if_none_match, if_modified_since, if_unmodified_since| Conditions {
            if_match,
            if_none_match,
            if_modified_since,
            if_unmodified_since,
        };
        #[rustfmt::skip]
        let rows = [
            // Nothing asked: the object.
            (when(None, None, None, None), SERVE),
            // If-Match: the same ETag, or any object.
            (when(yes(), None, None, None), SERVE),
            (when(Some(ETagCondition::Any), None, None, None), SERVE),
            (when(no(), None, None, None), Err(PreconditionFailed)),
            // If-Unmodified-Since: to the second, so the Last-Modified a client saw holds.
            (when(None, None, None, same.clone()), SERVE),
            (when(None, None, None, before.clone()), Err(PreconditionFailed)),
            // A holding If-Match makes If-Unmodified-Since irrelevant.
            (when(yes(), None, None, before.clone()), SERVE),
            // If-None-Match: the client's copy is this one.
            (when(None, yes(), None, None), Err(NotModified)),
            (when(None, Some(ETagCondition::Any), None, None), Err(NotModified)),
            (when(None, no(), None, None), SERVE),
            // If-Modified-Since: not modified since the Last-Modified the client saw.
            (when(None, None, same.clone(), None), Err(NotModified)),
            (when(None, None, after.clone(), None), Err(NotModified)),
            (when(None, None, before.clone(), None), SERVE),
            // If-None-Match decides over If-Modified-Since, either way.
            (when(None, no(), after, None), SERVE),
            (when(None, yes(), before.clone(), None), Err(NotModified)),
            // A 412 comes before a 304.
            (when(no(), yes(), None, None), Err(PreconditionFailed)),
            (when(None, yes(), None, before), Err(PreconditionFailed)),
        ];
        for (i, (conditions, expected)) in rows.iter().enumerate() {
            assert_eq!(
                decide(conditions, &etag, &written),
                *expected,
                "row {i}: {conditions:?}"
            );
        }
    }

    #[test]
    fn a_weak_etag_never_satisfies_if_match_but_does_if_none_match() {
        let etag = ETag::Strong("abc".to_owned());
        let weak = ETagCondition::ETag(ETag::Weak("abc".to_owned()));
        let written = at(1000, 0);
        let if_match = Conditions {
            if_match: Some(weak.clone()),
            ..Conditions::default()
        };
        assert_eq!(decide(&if_match, &etag, &written), Err(PreconditionFailed));
        let if_none = Conditions {
            if_none_match: Some(weak),
            ..Conditions::default()
        };
        assert_eq!(decide(&if_none, &etag, &written), Err(NotModified));
    }

    #[test]
    fn a_304_carries_its_validators_and_a_412_says_why() {
        let etag = ETag::Strong("abc".to_owned());
        let not_modified = answer(NotModified, &etag, &at(1000, 0));
        assert_eq!(
            not_modified.status_code(),
            Some(hyper::StatusCode::NOT_MODIFIED)
        );
        let headers = not_modified.headers().unwrap();
        assert_eq!(headers.get("etag").unwrap(), "\"abc\"");
        assert_eq!(
            headers.get("last-modified").unwrap(),
            "Thu, 01 Jan 1970 00:16:40 GMT"
        );
        let failed = answer(PreconditionFailed, &etag, &at(1000, 0));
        assert_eq!(
            failed.status_code(),
            Some(hyper::StatusCode::PRECONDITION_FAILED)
        );
        assert!(failed.message().unwrap().contains("If-Match"));
    }
}

//! `x-amz-copy-source` and `x-amz-copy-source-range`, read at the front door with the same
//! function s3s reads them with (`CopySource::parse`), so the access check and the backend
//! client see the source parsed here. What s3s could not parse (it would answer only after
//! the request was recorded as allowed), a source with no key, a header sent twice, and a
//! range S3 refuses for its form (Garage would copy `bytes=100-` whole) are refused here,
//! before anything else, with the error S3 gives.

use hyper::HeaderMap;
use s3s::dto::{CopySource, ParseCopySourceError};
use s3s::{S3Error, S3ErrorCode, S3Result};

const SOURCE: &str = "x-amz-copy-source";
const RANGE: &str = "x-amz-copy-source-range";

/// S3's words for a copy source it cannot read.
const NOT_A_SOURCE: &str =
    "Copy Source must mention the source bucket and key: sourcebucket/sourcekey";

/// The copy source a request names, if any, and its range checked for form.
pub fn parse(headers: &HeaderMap) -> S3Result<Option<CopySource>> {
    if let Some(range) = once(headers, RANGE)? {
        check_range(&range)?;
    }
    once(headers, SOURCE)?.map(|s| source(&s)).transpose()
}

/// The one value of a header that may appear once, as text (lossy when it is not ASCII).
fn once(headers: &HeaderMap, name: &str) -> S3Result<Option<String>> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid(format!("header {name} appears more than once")));
    }
    Ok(Some(String::from_utf8_lossy(value.as_bytes()).into_owned()))
}

fn source(value: &str) -> S3Result<CopySource> {
    let not_a_source = || {
        invalid(format!(
            "header {SOURCE} {:?} is not a copy source: {NOT_A_SOURCE}",
            super::cut(value)
        ))
    };
    if !value.is_ascii() {
        return Err(not_utf8(value));
    }
    match CopySource::parse(value) {
        Ok(CopySource::Bucket { key, .. }) if key.is_empty() => Err(not_a_source()),
        Ok(source) => Ok(source),
        Err(ParseCopySourceError::InvalidEncoding) => Err(not_utf8(value)),
        Err(
            ParseCopySourceError::PatternMismatch
            | ParseCopySourceError::InvalidBucketName
            | ParseCopySourceError::InvalidKey
            | ParseCopySourceError::InvalidArn
            | ParseCopySourceError::InvalidAccessPointName
            | ParseCopySourceError::InvalidAccountId,
        ) => Err(not_a_source()),
    }
}

fn not_utf8(value: &str) -> S3Error {
    invalid(format!(
        "header {SOURCE} must be UTF-8, percent-encoded (as bucket/key with every byte outside ASCII written %XX): {:?} is not",
        super::cut(value)
    ))
}

/// `bytes=first-last`, both zero-based offsets, first no later than last: the only form S3
/// accepts (no suffix, no open end, one range).
fn check_range(value: &str) -> S3Result<()> {
    let offsets = value
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .filter(|(first, last)| [first, last].iter().all(|n| is_number(n)))
        .and_then(|(first, last)| Some((first.parse::<u64>().ok()?, last.parse::<u64>().ok()?)));
    match offsets {
        Some((first, last)) if first <= last => Ok(()),
        _ => Err(invalid(format!(
            "header {RANGE} must be bytes=first-last, where first and last are the zero-based offsets of the first and last bytes to copy: {:?} is not",
            super::cut(value)
        ))),
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn invalid(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                hyper::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn message(pairs: &[(&str, &str)]) -> String {
        let err = parse(&with(pairs)).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::InvalidArgument, "{pairs:?}");
        err.message().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_source_is_read_as_s3s_reads_it() {
        let read = |v: &str| parse(&with(&[(SOURCE, v)])).unwrap().unwrap();
        let expected = CopySource::Bucket {
            bucket: "bkt".into(),
            key: "team-a/x y".into(),
            version_id: None,
        };
        for written in [
            "bkt/team-a/x%20y",
            "/bkt/team-a/x%20y",
            "bkt%2Fteam-a%2Fx%20y",
        ] {
            assert_eq!(read(written), expected, "{written}");
        }
        assert_eq!(parse(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn what_s3s_cannot_read_is_refused_by_name() {
        for bad in ["b", "b/", "", "//b/k", "B_b/k"] {
            assert!(message(&[(SOURCE, bad)]).contains(NOT_A_SOURCE), "{bad:?}");
        }
        for bad in ["b/%FF", "b/é"] {
            assert!(
                message(&[(SOURCE, bad)]).contains("must be UTF-8, percent-encoded"),
                "{bad:?}"
            );
        }
        assert_eq!(
            message(&[(SOURCE, "b/k"), (SOURCE, "b/l")]),
            "header x-amz-copy-source appears more than once"
        );
    }

    #[test]
    fn only_bytes_first_last_is_a_range() {
        assert!(parse(&with(&[(RANGE, "bytes=0-0")])).is_ok());
        assert!(parse(&with(&[(RANGE, "bytes=5-99999999")])).is_ok());
        for bad in [
            "bytes=-5",
            "bytes=5-",
            "bytes=0-1,3-4",
            "bytes=9-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=0-99999999999999999999999",
            "",
        ] {
            assert!(
                message(&[(RANGE, bad)]).contains("must be bytes=first-last"),
                "{bad:?}"
            );
        }
    }
}

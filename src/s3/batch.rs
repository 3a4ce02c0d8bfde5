//! `DeleteObjects` batches as S3 takes them: a batch declares a digest of its body
//! (`Content-MD5` or an `x-amz-checksum-*` header), the digest matches, and it names at most
//! [`MAX_KEYS`] keys. s3s 0.14 checks none of this, and the backend client signs the batch it
//! re-serialises with a digest of its own, so a batch corrupted on its way to the gateway
//! would be carried out. Here the declaration is read at the front door, and the body is
//! verified as s3s reads it (after the access check, before anything is parsed or deleted).

use hyper::{HeaderMap, Method};
use s3s::dto::Delete;
use s3s::stream::DynByteStream;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::declared::{Declarations, Settled, declarations};
use super::transfer::{Algorithm, ChecksumChecked, Expected, Verdict};

/// Most keys one batch may name, as on S3.
pub const MAX_KEYS: usize = 1000;

/// The digests a delete batch declares, to check its body against.
pub struct Batch {
    declared: Declarations,
    checksum: Option<Expected>,
}

/// For a `POST ?delete`, the digests its body declares: a batch declaring none is refused
/// as S3 refuses it, and a `Content-MD5` that is no digest at all as well.
pub fn declared(
    method: &Method,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> S3Result<Option<Batch>> {
    if method != Method::POST || !query.iter().any(|(name, _)| name == "delete") {
        return Ok(None);
    }
    let declared = declarations(headers)?;
    let checksum = headers.iter().find_map(|(name, value)| {
        Some(Expected::Header {
            algorithm: Algorithm::from_header(name.as_str())?,
            value: value.to_str().ok()?.to_owned(),
        })
    });
    if declared.md5.is_none() && checksum.is_none() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Missing required header for this request: Content-MD5 (a DeleteObjects batch must carry Content-MD5 or an x-amz-checksum-* header of its body)",
        ));
    }
    Ok(Some(Batch { declared, checksum }))
}

impl Batch {
    /// The batch's body, failing as s3s reads it when a declared digest does not match (the
    /// [`Verdict`] then says which), so s3s never parses a corrupt batch.
    #[must_use]
    pub fn verified(self, body: s3s::Body, verdict: &Verdict) -> s3s::Body {
        let mut stream: DynByteStream = Box::pin(body);
        stream = Box::pin(Settled::new(stream, self.declared, verdict.clone()));
        if let Some(expected) = self.checksum {
            stream = Box::pin(ChecksumChecked::new(stream, expected, verdict.clone()));
        }
        s3s::Body::from(stream)
    }
}

/// S3 refuses a batch of more than [`MAX_KEYS`] keys as malformed.
pub fn check_size(delete: &Delete) -> S3Result<()> {
    let count = delete.objects.len();
    if count <= MAX_KEYS {
        return Ok(());
    }
    Err(S3Error::with_message(
        S3ErrorCode::MalformedXML,
        format!(
            "a DeleteObjects batch names at most {MAX_KEYS} keys; this one names {count}: send it in several"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn delete() -> Vec<(String, String)> {
        vec![("delete".into(), String::new())]
    }

    #[test]
    fn a_batch_must_declare_a_digest_of_its_body() {
        let md5 = headers(&[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")]);
        let crc = headers(&[("x-amz-checksum-crc32", "AAAAAA==")]);
        for declared in [&md5, &crc] {
            assert!(matches!(
                super::declared(&Method::POST, &delete(), declared),
                Ok(Some(_))
            ));
        }
        let Err(err) = super::declared(&Method::POST, &delete(), &HeaderMap::new()) else {
            panic!("a batch without a digest passed");
        };
        assert_eq!(err.code(), &S3ErrorCode::InvalidRequest);
        let bad = headers(&[("content-md5", "nope")]);
        let Err(err) = super::declared(&Method::POST, &delete(), &bad) else {
            panic!("a batch with a broken Content-MD5 passed");
        };
        assert_eq!(err.code(), &S3ErrorCode::InvalidDigest);
        // Only batches: any other request is no business of this module.
        assert!(matches!(
            super::declared(&Method::GET, &delete(), &HeaderMap::new()),
            Ok(None)
        ));
        assert!(matches!(
            super::declared(&Method::POST, &[], &HeaderMap::new()),
            Ok(None)
        ));
    }

    #[test]
    fn a_batch_names_at_most_a_thousand_keys() {
        let batch = |n: usize| Delete {
            objects: (0..n)
                .map(|i| s3s::dto::ObjectIdentifier {
                    key: format!("k{i}"),
                    ..Default::default()
                })
                .collect(),
            quiet: None,
        };
        assert!(check_size(&batch(MAX_KEYS)).is_ok());
        let err = check_size(&batch(MAX_KEYS + 1)).unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::MalformedXML);
        assert!(err.message().unwrap().contains("names 1001"));
    }
}

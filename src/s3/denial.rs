//! Every reason the S3 listener refuses a request or a share link, said on the wire: the S3
//! code, HTTP status and message of each [`Denial`] are written here once, as Garage's
//! `aws_code()` does, and a denial becomes an [`S3Error`] in one place, as does a transfer
//! stopped on its way ([`stopped_or`]). The reasons themselves are data the trail records
//! too, so they are defined beneath it, in `record::denial`. Refusals that are not denials
//! (malformed requests, protocol errors from the one parse, a backend's answer) stay with
//! the code that finds them.

use hyper::StatusCode;
use s3s::{S3Error, S3ErrorCode};

use super::backend::client_error;
use super::transfer::{Stop, Verdict};
use crate::duration::rfc3339;
pub use crate::record::Denial;

impl Denial {
    /// The S3 error code clients see.
    #[must_use]
    pub fn code(&self) -> S3ErrorCode {
        match self {
            Denial::Anonymous
            | Denial::NotYetActive { .. }
            | Denial::Revoked { .. }
            | Denial::OperationNotAllowed { .. }
            | Denial::ActionNotAllowed { .. }
            | Denial::OutsideBucket { .. }
            | Denial::DotSegment { .. }
            | Denial::OutsideScope { .. }
            | Denial::ListOutsideScope { .. }
            | Denial::CopySourceNotObject
            | Denial::LimitReached { .. }
            | Denial::HeaderNotSigned { .. }
            | Denial::HeaderNotAllowed { .. }
            | Denial::LinkTokenInvalid
            | Denial::LinkUnknown { .. }
            | Denial::LinkEnded { .. }
            | Denial::LinkGrantGone { .. }
            | Denial::LinkGrantEnded { .. }
            | Denial::LinkOutsideGrant { .. }
            | Denial::NotDecided => S3ErrorCode::AccessDenied,
            Denial::UnknownKey { .. } | Denial::KeyUnbound => S3ErrorCode::InvalidAccessKeyId,
            Denial::MissingToken | Denial::BadToken => S3ErrorCode::InvalidToken,
            Denial::Expired { .. } => S3ErrorCode::ExpiredToken,
            Denial::WrongTarget { .. } => S3ErrorCode::InvalidRequest,
            Denial::BlankKey => S3ErrorCode::InvalidArgument,
            Denial::UploadNotYours { .. } => S3ErrorCode::NoSuchUpload,
            Denial::FormUpload => S3ErrorCode::NotImplemented,
            Denial::LinkMethodNotAllowed => S3ErrorCode::MethodNotAllowed,
            Denial::Unrecorded { .. } | Denial::Uncounted | Denial::StaleState { .. } => {
                S3ErrorCode::ServiceUnavailable
            }
        }
    }

    /// The HTTP status: always the one S3 gives [`Denial::code`], so the two cannot disagree.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.code().status_code().unwrap_or(StatusCode::FORBIDDEN)
    }

    /// What the client is told: which grant, which rule, what to do next.
    #[must_use]
    #[allow(clippy::too_many_lines)] // one short arm per variant: every wire text in one place
    pub fn message(&self) -> String {
        match self {
            Denial::Anonymous => "anonymous requests are refused: \
                 sign requests with the credentials of a Sesame grant"
                .into(),
            Denial::UnknownKey { access_key } => format!(
                "access key {access_key} is not a Sesame credential: \
                 ask for a grant and use the credentials it prints"
            ),
            Denial::KeyUnbound => "access key is not a Sesame credential".into(),
            Denial::MissingToken => "the session token is missing: \
                 Sesame credentials come with one (AWS_SESSION_TOKEN)"
                .into(),
            Denial::BadToken => "the session token does not belong to this access key".into(),
            Denial::NotYetActive { grant, starts_at } => format!(
                "grant {grant} starts at {}; it is not active yet",
                rfc3339(*starts_at)
            ),
            Denial::Expired { grant, expires_at } => format!(
                "grant {grant} expired at {}; ask for access again",
                rfc3339(*expires_at)
            ),
            Denial::Revoked { grant, at, by } => format!(
                "grant {grant} was revoked at {}{}",
                rfc3339(*at),
                by.as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default()
            ),
            Denial::OperationNotAllowed { op } => {
                format!("operation {op} is not allowed through Sesame")
            }
            Denial::WrongTarget { op, target } => {
                format!("operation {op} does not apply to {target}")
            }
            Denial::ActionNotAllowed { grant, action } => {
                format!("{grant} does not allow {action}")
            }
            Denial::OutsideBucket { grant, bucket } => {
                format!("{grant} does not cover bucket {bucket}")
            }
            Denial::DotSegment { key } => {
                format!("key {key:?} has a '.' or '..' segment, which Sesame refuses")
            }
            Denial::BlankKey => {
                "keys made only of whitespace are not supported through Sesame".into()
            }
            Denial::OutsideScope {
                grant,
                bucket,
                key,
                action,
            } => {
                format!("{grant} does not cover s3://{bucket}/{key} for {action}")
            }
            Denial::ListOutsideScope {
                grant,
                bucket,
                prefix,
            } => format!(
                "{grant} does not cover listing s3://{bucket}/{prefix}: \
                 list with a prefix inside the grant"
            ),
            Denial::CopySourceNotObject => {
                "copy sources must be bucket/key; access points and outposts are refused".into()
            }
            Denial::UploadNotYours {
                upload_id,
                bucket,
                key,
                grant,
                principal,
            } => format!(
                "upload id {upload_id:?} is not one started for s3://{bucket}/{key} \
                 under grant {grant} or another grant of {principal}: \
                 use the id CreateMultipartUpload returned for this key"
            ),
            Denial::LimitReached { message } | Denial::LinkEnded { message, .. } => message.clone(),
            Denial::HeaderNotSigned { name } => format!(
                "header {name} is not signed: \
                 every x-amz-* header must be part of the signature"
            ),
            Denial::HeaderNotAllowed { name } => format!(
                "header {name} is not accepted by this gateway: {}",
                super::forwarded::refusal_reason(name)
            ),
            Denial::FormUpload => {
                "form POST uploads (multipart/form-data) are not accepted by Sesame: \
                 upload with a SigV4-signed PUT using the credentials of a grant, \
                 or share a link to read"
                    .into()
            }
            Denial::LinkMethodNotAllowed => "share links answer GET and HEAD only".into(),
            Denial::LinkTokenInvalid => crate::share::BadToken.to_string(),
            Denial::LinkUnknown { share } => {
                format!("share link {share} does not exist on this gateway")
            }
            Denial::LinkGrantGone { share } => {
                format!("the grant behind share link {share} is gone")
            }
            Denial::LinkGrantEnded { share, why } => {
                format!("share link {share} no longer works: {}", why.message())
            }
            Denial::LinkOutsideGrant { grant, uri } => {
                format!("grant {grant} no longer covers {uri}")
            }
            Denial::Unrecorded { error } => error.clone(),
            Denial::Uncounted => "the download could not be counted; try again".into(),
            Denial::StaleState { store, seconds } => format!(
                "this gateway has not reached its store ({store}) for {seconds}s, so it cannot know whether access was revoked meanwhile; it refuses until the store is back (try again, or another gateway)"
            ),
            Denial::NotDecided => "request was not authorised".into(),
        }
    }
}

/// What a record of a request says about its refusal, if it was refused: the S3 code and
/// message the client was answered with, and the denial itself, so readers need not parse the
/// message.
pub struct Recorded {
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub denial: Option<Denial>,
}

impl Recorded {
    #[must_use]
    pub fn of(denial: Option<&Denial>) -> Recorded {
        Recorded {
            error_code: denial.map(|d| d.code().as_str().to_owned()),
            error: denial.map(Denial::message),
            denial: denial.cloned(),
        }
    }
}

impl From<Denial> for S3Error {
    fn from(denial: Denial) -> S3Error {
        let mut error = S3Error::with_message(denial.code(), denial.message());
        error.set_status_code(denial.status());
        error
    }
}

/// The error a client sees when its transfer was stopped (`transfer::Stop`: the grant ended,
/// a limit, a digest that did not match) instead of the backend's, which only saw its body
/// end; with no stop, the backend's own error, told as `backend::client_error` tells it.
pub fn stopped_or(verdict: &Verdict, backend_error: S3Error) -> S3Error {
    match verdict.get() {
        None => client_error(backend_error),
        Some(Stop::Expired(m)) => S3Error::with_message(S3ErrorCode::ExpiredToken, m.clone()),
        Some(Stop::Revoked(m) | Stop::Limit(m)) => {
            S3Error::with_message(S3ErrorCode::AccessDenied, m.clone())
        }
        Some(Stop::BadChecksum(m)) => S3Error::with_message(S3ErrorCode::BadDigest, m.clone()),
        Some(Stop::BadChunk(m) | Stop::TooLong(m)) => {
            S3Error::with_message(S3ErrorCode::InvalidRequest, m.clone())
        }
        Some(Stop::BadSignature(m)) => {
            S3Error::with_message(S3ErrorCode::SignatureDoesNotMatch, m.clone())
        }
        Some(Stop::Incomplete(m)) => S3Error::with_message(S3ErrorCode::IncompleteBody, m.clone()),
        Some(Stop::BadPayloadHash(m)) => {
            // S3's own code for it; s3s 0.14 has no variant, so it needs its status too.
            let code = S3ErrorCode::from_bytes(b"XAmzContentSHA256Mismatch")
                .unwrap_or(S3ErrorCode::BadDigest);
            let mut e = S3Error::with_message(code, m.clone());
            e.set_status_code(hyper::StatusCode::BAD_REQUEST);
            e
        }
    }
}

impl From<crate::grant::book::BindError> for Denial {
    fn from(e: crate::grant::book::BindError) -> Denial {
        use crate::grant::book::BindError;
        match e {
            BindError::UnknownKey => Denial::KeyUnbound,
            BindError::MissingToken => Denial::MissingToken,
            BindError::BadToken => Denial::BadToken,
        }
    }
}

#[cfg(test)]
mod tests;

impl From<crate::store::Stale> for Denial {
    fn from(stale: crate::store::Stale) -> Self {
        Denial::StaleState {
            store: stale.store,
            seconds: stale.seconds,
        }
    }
}

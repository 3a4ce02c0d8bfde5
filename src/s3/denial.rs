//! Every reason the S3 listener refuses a request or a share link, as a value: what it says
//! on the wire (S3 code, HTTP status, message) is written here once, as Garage's
//! `aws_code()` does, and [`Denial`] becomes an [`S3Error`] in one place. Refusals that are
//! not denials (malformed requests, protocol errors from the one parse, a backend's answer)
//! stay with the code that finds them.

use hyper::StatusCode;
use s3s::{S3Error, S3ErrorCode};
use serde::Serialize;
use time::OffsetDateTime;

use crate::duration::rfc3339;
use crate::model::{Action, Grant};

/// A grant as a denial names it: its id, its scope and the actions it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantName {
    pub id: String,
    pub scope: String,
    pub actions: String,
}

impl From<&Grant> for GrantName {
    fn from(grant: &Grant) -> GrantName {
        GrantName {
            id: grant.id.clone(),
            scope: grant.scope.uri(),
            actions: grant.scope.actions_label(),
        }
    }
}

impl std::fmt::Display for GrantName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grant {} ({}, {})", self.id, self.scope, self.actions)
    }
}

/// Why a request is refused. Each variant carries what its message names, and nothing the
/// caller may not learn (DESIGN rule 8): its own grant, the value it sent, the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Denial {
    // Who: the credential.
    /// The request carries no signature.
    Anonymous,
    /// The access key is not one Sesame issued.
    UnknownKey {
        access_key: String,
    },
    /// The access key signed the request but names no grant any more (removed meanwhile).
    KeyUnbound,
    /// A Sesame credential without its session token.
    MissingToken,
    /// A session token that was not issued with this access key.
    BadToken,

    // When: the grant's window, checked on every request.
    NotYetActive {
        grant: String,
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
    },
    Expired {
        grant: String,
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    Revoked {
        grant: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        by: Option<String>,
    },

    // What: the operation table and the grant's actions.
    /// The operation is not in `ops::TABLE` (bucket configuration, anything unknown).
    OperationNotAllowed {
        op: String,
    },
    /// The operation is in the table, but the path names another kind of resource.
    WrongTarget {
        op: String,
        target: String,
    },
    ActionNotAllowed {
        grant: GrantName,
        action: Action,
    },

    // Where: every resource the request touches.
    OutsideBucket {
        grant: GrantName,
        bucket: String,
    },
    /// A key with a `.` or `..` segment, which a backend may resolve outside the prefix.
    DotSegment {
        key: String,
    },
    /// A key of whitespace only, which the backend client cannot send.
    BlankKey,
    OutsideScope {
        grant: GrantName,
        bucket: String,
        key: String,
        action: Action,
    },
    ListOutsideScope {
        grant: GrantName,
        bucket: String,
        prefix: String,
    },
    /// A copy source given as an access point or outpost ARN.
    CopySourceNotObject,
    /// An upload id not bound to this key and principal; said alike whatever the reason,
    /// so nobody learns about someone else's upload (`uploads.rs` logs the reason).
    UploadNotYours {
        upload_id: String,
        bucket: String,
        key: String,
        grant: String,
        principal: String,
    },

    // How much: the grant's limits, as the meter words them.
    LimitReached {
        message: String,
    },

    // The front door: headers and request kinds refused before any decision.
    /// An `x-amz-*` header outside the signature.
    HeaderNotSigned {
        name: String,
    },
    /// An `x-amz-*` header off the forwarded allow-list (`forwarded.rs`).
    HeaderNotAllowed {
        name: String,
    },
    /// A browser form upload (`POST` with `multipart/form-data`).
    FormUpload,

    // Share links.
    LinkMethodNotAllowed,
    /// A token that is not one this gateway signed.
    LinkTokenInvalid,
    LinkUnknown {
        share: String,
    },
    /// Expired, revoked or used up, as the link book words it.
    LinkEnded {
        share: String,
        message: String,
    },
    LinkGrantGone {
        share: String,
    },
    /// The link's grant is outside its window; `why` is the grant's own denial.
    LinkGrantEnded {
        share: String,
        why: Box<Denial>,
    },
    LinkOutsideGrant {
        grant: String,
        uri: String,
    },

    // Fail closed (DESIGN rule 1): what cannot be recorded or counted is refused.
    /// The decision could not be made durable in the trail.
    Unrecorded {
        error: String,
    },
    /// A link's download could not be counted in the store.
    Uncounted,

    /// No decision allowed this request: a wiring bug, refused rather than served.
    NotDecided,
}

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
            Denial::Unrecorded { .. } | Denial::Uncounted => S3ErrorCode::ServiceUnavailable,
        }
    }

    /// The HTTP status: always the one S3 gives [`Denial::code`] (a test holds them equal).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::Anonymous
            | Denial::UnknownKey { .. }
            | Denial::KeyUnbound
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
            | Denial::NotDecided => StatusCode::FORBIDDEN,
            Denial::MissingToken
            | Denial::BadToken
            | Denial::Expired { .. }
            | Denial::WrongTarget { .. }
            | Denial::BlankKey => StatusCode::BAD_REQUEST,
            Denial::UploadNotYours { .. } => StatusCode::NOT_FOUND,
            Denial::LinkMethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Denial::FormUpload => StatusCode::NOT_IMPLEMENTED,
            Denial::Unrecorded { .. } | Denial::Uncounted => StatusCode::SERVICE_UNAVAILABLE,
        }
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
            Denial::NotDecided => "request was not authorised".into(),
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

//! Why the gateway refused a request or a share link, as data: the reason and the values
//! its message names. The S3 front end decides these (`s3::decision`) and says each on the
//! wire with its S3 code, status and message (`s3::denial`); the trail keeps the value
//! itself beside the code and message the client was answered with, so a reader matches the
//! reason instead of parsing a sentence. Defined here, beneath the front end, because the
//! trail's records carry it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Action, Grant};

/// A grant as a denial names it: its id, its scope and the actions it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The gateway has not been able to read the store it shares with other gateways for
    /// longer than it may act on what it last saw: a revocation may be waiting there.
    StaleState {
        store: String,
        seconds: u64,
    },

    /// No decision allowed this request: a wiring bug, refused rather than served.
    NotDecided,
}

impl Denial {
    /// Every reason's name, in the order of the variants, as the serialised form tags it (a
    /// test in `s3::denial` holds them equal): what [`Denial::name`] gives, and the list
    /// readers check a name from people against.
    pub const REASONS: [&'static str; 33] = [
        "anonymous",
        "unknown_key",
        "key_unbound",
        "missing_token",
        "bad_token",
        "not_yet_active",
        "expired",
        "revoked",
        "operation_not_allowed",
        "wrong_target",
        "action_not_allowed",
        "outside_bucket",
        "dot_segment",
        "blank_key",
        "outside_scope",
        "list_outside_scope",
        "copy_source_not_object",
        "upload_not_yours",
        "limit_reached",
        "header_not_signed",
        "header_not_allowed",
        "form_upload",
        "link_method_not_allowed",
        "link_token_invalid",
        "link_unknown",
        "link_ended",
        "link_grant_gone",
        "link_grant_ended",
        "link_outside_grant",
        "unrecorded",
        "uncounted",
        "stale_state",
        "not_decided",
    ];

    /// The reason as the trail writes it (`outside_scope`): the tag of its serialised form.
    #[must_use]
    pub fn name(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Which variant it is: its place in [`Denial::REASONS`]. The match has no `_` arm, so a
    /// new variant does not compile until it has its place and its name.
    #[must_use]
    pub fn index(&self) -> usize {
        match self {
            Denial::Anonymous => 0,
            Denial::UnknownKey { .. } => 1,
            Denial::KeyUnbound => 2,
            Denial::MissingToken => 3,
            Denial::BadToken => 4,
            Denial::NotYetActive { .. } => 5,
            Denial::Expired { .. } => 6,
            Denial::Revoked { .. } => 7,
            Denial::OperationNotAllowed { .. } => 8,
            Denial::WrongTarget { .. } => 9,
            Denial::ActionNotAllowed { .. } => 10,
            Denial::OutsideBucket { .. } => 11,
            Denial::DotSegment { .. } => 12,
            Denial::BlankKey => 13,
            Denial::OutsideScope { .. } => 14,
            Denial::ListOutsideScope { .. } => 15,
            Denial::CopySourceNotObject => 16,
            Denial::UploadNotYours { .. } => 17,
            Denial::LimitReached { .. } => 18,
            Denial::HeaderNotSigned { .. } => 19,
            Denial::HeaderNotAllowed { .. } => 20,
            Denial::FormUpload => 21,
            Denial::LinkMethodNotAllowed => 22,
            Denial::LinkTokenInvalid => 23,
            Denial::LinkUnknown { .. } => 24,
            Denial::LinkEnded { .. } => 25,
            Denial::LinkGrantGone { .. } => 26,
            Denial::LinkGrantEnded { .. } => 27,
            Denial::LinkOutsideGrant { .. } => 28,
            Denial::Unrecorded { .. } => 29,
            Denial::Uncounted => 30,
            Denial::StaleState { .. } => 31,
            Denial::NotDecided => 32,
        }
    }
}

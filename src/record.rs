//! The audit trail's records, typed: every writer builds a [`Body`], every reader matches
//! its [`Kind`]. On disk a body is a flat JSON object tagged by `kind` (a lifecycle event also by
//! `event`, an S3 request by `decision`), with the field names and shapes the trail has had
//! from its first version, so a trail written before these types existed reads, verifies and
//! re-serialises to the bytes its hashes cover (`tests/fixtures/audit-v1`, checked in
//! `record/tests.rs`).
//!
//! Plain model types with no I/O, beneath everything that writes or reads them: the trail
//! (`audit`), the store (which keeps records owed to the trail), the request desk, the S3
//! front end, the control API, the report.
//! Plain fields only, so this module imports none of them: operations are their S3 names,
//! times RFC 3339 to the second, a refusal its S3 error code and message as the client got
//! them and, since version 2, the typed [`Denial`] they were made from.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod denial;
mod lifecycle;
#[cfg(test)]
mod tests;

pub use self::denial::{Denial, GrantName};
pub use self::lifecycle::{
    Actor, CredentialsIssued, Facts, GrantCreated, Lifecycle, MfaReset, Note, Notice, Pruned,
    Repaired, ShareChange, Undone, UserAdded,
};

/// The shape of the bodies this build writes, carried in each as `v`. Bodies written before
/// `v` existed carry none and have the version-1 shape; a change to any shape below bumps
/// it, and reading then migrates the older versions up.
///
/// - 1: the shapes of the first trail (`tests/fixtures/audit-v1`).
/// - 2: refusals (S3 decisions denied, refusals before a decision, denials after parsing,
///   share-link uses denied) also carry the typed reason as `denial`. A version-1 body
///   reads as a version-2 one without it: `denial` is absent, and stays absent when the
///   body is serialised again, so its bytes (and hash) do not change.
/// - 3: every body a gateway writes names the replica whose chain holds it, as `replica`
///   (`r-` and 8 hex digits, kept in the data directory's `replica.id`). A body of version 1
///   or 2 reads as a version-3 one without it, and stays without it when serialised again.
pub const VERSION: u32 = 3;

/// What one record says: the part of a trail line its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// [`VERSION`] when written by this build; none in records from before it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
    /// The replica that wrote the record into its chain (since version 3); none in older
    /// bodies, and in bodies not yet written ([`Body::new`]: the trail's writer says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Body {
    /// A body of the current version.
    #[must_use]
    pub fn new(kind: impl Into<Kind>) -> Body {
        Body {
            v: Some(VERSION),
            replica: None,
            kind: kind.into(),
        }
    }

    /// The body as `replica` writes it into its chain: of the current version (an older one,
    /// kept to be written later, is read as this version already) and naming the replica.
    #[must_use]
    pub fn written_by(self, replica: &str) -> Body {
        Body {
            v: Some(VERSION),
            replica: Some(replica.to_owned()),
            kind: self.kind,
        }
    }

    /// The shape version the body was written in.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.v.unwrap_or(1)
    }

    /// The body as the chain hashes and the trail stores it: compact JSON with the keys of
    /// every object sorted. One serialisation, then one pass writing the text.
    #[must_use]
    pub fn canonical(&self) -> String {
        canonical(&serde_json::to_value(self).expect("records serialise"))
    }
}

impl From<Kind> for Body {
    fn from(kind: Kind) -> Body {
        Body::new(kind)
    }
}

impl From<Lifecycle> for Body {
    fn from(event: Lifecycle) -> Body {
        Body::new(event)
    }
}

impl From<Completion> for Body {
    fn from(c: Completion) -> Body {
        Body::new(Kind::Completion(c))
    }
}

impl From<S3> for Body {
    fn from(s3: S3) -> Body {
        Body::new(s3)
    }
}

/// A JSON value as the chain hashes it: compact, with the keys of every object sorted.
/// `serde_json`'s objects are sorted maps (its `preserve_order` feature is off, which a test
/// pins), so its own compact text is already canonical: one pass, no copy.
#[must_use]
pub fn canonical(value: &serde_json::Value) -> String {
    value.to_string()
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Kind {
    /// An S3 request: decided under a grant, or refused before any decision.
    #[serde(rename = "s3")]
    S3(S3),
    /// A request its decision allowed, refused after all by a check on its parsed input
    /// (a list prefix, a copy source, a key of a batch delete, an upload id).
    #[serde(rename = "s3.denied")]
    DeniedAfterParse(DeniedAfterParse),
    /// How the answer to an S3 request or a share-link use ended.
    #[serde(rename = "s3.complete")]
    Completion(Completion),
    /// One use of a share link, allowed or refused.
    #[serde(rename = "share")]
    Share(ShareUse),
    /// Something that happened to a request, grant, link, user, the policies or the trail.
    #[serde(rename = "lifecycle")]
    Lifecycle(Lifecycle),
    /// A signature over the chain as it stands after the record before it.
    #[serde(rename = "checkpoint")]
    Checkpoint(Checkpoint),
}

impl Kind {
    /// The `kind` it is tagged with on disk.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Kind::S3(_) => "s3",
            Kind::DeniedAfterParse(_) => "s3.denied",
            Kind::Completion(_) => "s3.complete",
            Kind::Share(_) => "share",
            Kind::Lifecycle(_) => "lifecycle",
            Kind::Checkpoint(_) => "checkpoint",
        }
    }

    /// When it happened; checkpoints carry no time.
    #[must_use]
    pub fn at(&self) -> Option<OffsetDateTime> {
        match self {
            Kind::S3(S3::Allowed(d) | S3::Denied(d)) => Some(d.at),
            Kind::S3(S3::Refused(r)) => Some(r.at),
            Kind::DeniedAfterParse(d) => Some(d.at),
            Kind::Completion(c) => Some(c.at),
            Kind::Share(u) => Some(u.at),
            Kind::Lifecycle(l) => Some(l.at()),
            Kind::Checkpoint(_) => None,
        }
    }

    /// Why the request it is about was refused, typed, when the record says (records
    /// written before version 2 do not).
    #[must_use]
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Kind::S3(S3::Allowed(d) | S3::Denied(d)) => d.denial.as_ref(),
            Kind::S3(S3::Refused(r)) => r.denial.as_ref(),
            Kind::DeniedAfterParse(d) => d.denial.as_ref(),
            Kind::Share(u) => u.denial.as_ref(),
            Kind::Completion(_) | Kind::Lifecycle(_) | Kind::Checkpoint(_) => None,
        }
    }
}

/// An S3 request, by how it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum S3 {
    Allowed(Decision),
    Denied(Decision),
    /// Refused before any grant was looked at: a bad signature, an unknown key, SigV2, a
    /// form upload.
    Refused(Refusal),
}

/// Facts about the HTTP request every record about it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFacts {
    /// Answered as `x-amz-request-id`.
    pub request_id: String,
    /// The client's IP address.
    pub client: Option<String>,
    pub user_agent: String,
    /// The `Range` header, as sent.
    pub range: Option<String>,
}

/// A decision under the grant a request's credential names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// Absent when the decision was made without the front door's facts (never on a
    /// running gateway).
    #[serde(flatten)]
    pub request: Option<RequestFacts>,
    /// The S3 operation, as s3s names it (`GetObject`).
    pub op: String,
    pub access_key: Option<String>,
    pub principal: Option<String>,
    pub grant: Option<String>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The S3 error code a denied request was answered with.
    pub error_code: Option<String>,
    /// The message that came with it.
    pub error: Option<String>,
    /// Why it was refused, typed; absent in bodies before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
}

/// A request refused before any decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub request: RequestFacts,
    pub method: String,
    /// The path; a share link's token replaced by its SHA-256.
    pub path: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Why, typed, when the front door refused it for a reason of its own (a form upload);
    /// absent when s3s refused it (a bad signature) and in bodies before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
}

/// A refusal by a check on the parsed input, after the decision allowed the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedAfterParse {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub request: Option<RequestFacts>,
    /// The seq of the decision it overrides.
    pub decision: Option<u64>,
    pub error_code: String,
    pub error: Option<String>,
    /// Why it was refused, typed; absent in bodies before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
}

/// How the answer to a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub request: RequestFacts,
    /// The seq of the request's decision (none when it was refused before one).
    pub decision: Option<u64>,
    pub status: u16,
    /// Bytes of the response body sent.
    pub bytes_out: u64,
    /// Object bytes received (the bodies of uploads).
    #[serde(default)]
    pub bytes_in: u64,
    pub latency_ms: u64,
    pub outcome: Outcome,
    /// Why the transfer was cut, for people.
    pub stopped: Option<String>,
    pub stop_kind: Option<StopKind>,
    /// The S3 error the client was answered with, when the request was authorised and then
    /// refused for its form (by s3s, or for a digest that did not match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether the response body was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[serde(rename = "complete")]
    Complete,
    /// The body ended in an error (a transfer cut).
    #[serde(rename = "cut")]
    Cut,
    /// The connection went away before the body was sent.
    #[serde(rename = "client gone")]
    ClientGone,
}

/// Why a transfer was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    Expired,
    Revoked,
    BadChecksum,
    BadChunk,
    BadSignature,
    BadPayloadHash,
    TooLong,
    Incomplete,
    /// The grant's byte limit was reached.
    Limit,
}

/// Allowed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allowed,
    Denied,
}

/// One use of a share link. The token itself is never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareUse {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub request: RequestFacts,
    /// `GetObject` or `HeadObject`.
    pub op: String,
    /// The link, when the token named one.
    pub share: Option<String>,
    /// Downloads taken so far, this one included when it counted.
    pub downloads: Option<u32>,
    pub max_downloads: Option<u32>,
    pub principal: Option<String>,
    pub grant: Option<String>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub decision: Verdict,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Why it was refused, typed; absent in bodies before version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
}

impl From<Lifecycle> for Kind {
    fn from(event: Lifecycle) -> Kind {
        Kind::Lifecycle(event)
    }
}

impl From<S3> for Kind {
    fn from(s3: S3) -> Kind {
        Kind::S3(s3)
    }
}

/// A signed checkpoint (`checkpoint.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The seq of the record it follows.
    pub covers: u64,
    /// That record's hash.
    pub hash: String,
    /// Ed25519 over the hash, hex.
    pub signature: String,
    /// The signing key, hex.
    pub public_key: String,
}

/// Times as the trail writes them: RFC 3339 in UTC, to the second.
mod rfc3339 {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::duration::rfc3339(
            at.to_offset(time::UtcOffset::UTC),
        ))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| serde::de::Error::custom(format!("time {text:?}: {e}")))
    }
}

#[cfg(test)]
pub mod examples;
#[cfg(test)]
pub use self::examples::note;

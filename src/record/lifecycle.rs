//! Lifecycle events: what happened to requests, grants, links, users, the policies and the
//! trail itself, each tagged on disk by `event` under `kind: lifecycle`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::rfc3339;

/// A lifecycle event, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Lifecycle {
    #[serde(rename = "request.created")]
    RequestCreated(Notice),
    #[serde(rename = "request.approved")]
    RequestApproved(Notice),
    #[serde(rename = "request.denied")]
    RequestDenied(Notice),
    #[serde(rename = "request.withdrawn")]
    RequestWithdrawn(Notice),
    #[serde(rename = "request.timed_out")]
    RequestTimedOut(Notice),
    /// A request's change was recorded, then could not be stored.
    #[serde(rename = "request.not_stored")]
    RequestNotStored(Note),
    /// A grant approved for a later window became active.
    #[serde(rename = "grant.started")]
    GrantStarted(Notice),
    #[serde(rename = "grant.expiring_soon")]
    GrantExpiringSoon(Notice),
    #[serde(rename = "grant.expired")]
    GrantExpired(Notice),
    #[serde(rename = "grant.revoked")]
    GrantRevoked(Notice),
    /// The admin made a grant directly.
    #[serde(rename = "grant.created")]
    GrantCreated(GrantCreated),
    #[serde(rename = "credentials.issued")]
    CredentialsIssued(CredentialsIssued),
    #[serde(rename = "user.added")]
    UserAdded(UserAdded),
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled(Actor),
    #[serde(rename = "mfa.reset")]
    MfaReset(MfaReset),
    #[serde(rename = "share.created")]
    ShareCreated(ShareChange),
    #[serde(rename = "share.revoked")]
    ShareRevoked(ShareChange),
    /// An action recorded just before did not happen after all (its store write failed).
    #[serde(rename = "action.undone")]
    ActionUndone(Undone),
    #[serde(rename = "policy.reloaded")]
    PolicyReloaded(Note),
    /// A last line cut short by a crash was moved aside at start.
    #[serde(rename = "audit.repaired")]
    AuditRepaired(Repaired),
    /// Retention deleted the oldest trail files.
    #[serde(rename = "audit.pruned")]
    AuditPruned(Pruned),
}

impl Lifecycle {
    /// The `event` it is tagged with on disk.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::RequestCreated(_) => "request.created",
            Lifecycle::RequestApproved(_) => "request.approved",
            Lifecycle::RequestDenied(_) => "request.denied",
            Lifecycle::RequestWithdrawn(_) => "request.withdrawn",
            Lifecycle::RequestTimedOut(_) => "request.timed_out",
            Lifecycle::RequestNotStored(_) => "request.not_stored",
            Lifecycle::GrantStarted(_) => "grant.started",
            Lifecycle::GrantExpiringSoon(_) => "grant.expiring_soon",
            Lifecycle::GrantExpired(_) => "grant.expired",
            Lifecycle::GrantRevoked(_) => "grant.revoked",
            Lifecycle::GrantCreated(_) => "grant.created",
            Lifecycle::CredentialsIssued(_) => "credentials.issued",
            Lifecycle::UserAdded(_) => "user.added",
            Lifecycle::MfaEnrolled(_) => "mfa.enrolled",
            Lifecycle::MfaReset(_) => "mfa.reset",
            Lifecycle::ShareCreated(_) => "share.created",
            Lifecycle::ShareRevoked(_) => "share.revoked",
            Lifecycle::ActionUndone(_) => "action.undone",
            Lifecycle::PolicyReloaded(_) => "policy.reloaded",
            Lifecycle::AuditRepaired(_) => "audit.repaired",
            Lifecycle::AuditPruned(_) => "audit.pruned",
        }
    }

    #[must_use]
    pub fn at(&self) -> OffsetDateTime {
        self.facts().at
    }

    /// The time, the sentence for people, and the principal and grant it is about where it
    /// names them.
    #[must_use]
    pub fn facts(&self) -> Facts<'_> {
        match self {
            Lifecycle::RequestCreated(n)
            | Lifecycle::RequestApproved(n)
            | Lifecycle::RequestDenied(n)
            | Lifecycle::RequestWithdrawn(n)
            | Lifecycle::RequestTimedOut(n)
            | Lifecycle::GrantStarted(n)
            | Lifecycle::GrantExpiringSoon(n)
            | Lifecycle::GrantExpired(n)
            | Lifecycle::GrantRevoked(n) => Facts {
                principal: Some(&n.principal),
                ..Facts::plain(n.at, &n.summary)
            },
            Lifecycle::GrantCreated(g) => Facts {
                principal: Some(&g.principal),
                grant: Some(&g.grant),
                ..g.actor.facts()
            },
            Lifecycle::CredentialsIssued(c) => Facts {
                principal: Some(&c.principal),
                grant: Some(&c.grant),
                ..c.actor.facts()
            },
            Lifecycle::ShareCreated(s) | Lifecycle::ShareRevoked(s) => Facts {
                principal: Some(&s.principal),
                grant: Some(&s.grant),
                bucket: Some(&s.bucket),
                key: Some(&s.key),
                ..s.actor.facts()
            },
            Lifecycle::UserAdded(UserAdded { actor, .. })
            | Lifecycle::MfaEnrolled(actor)
            | Lifecycle::MfaReset(MfaReset { actor, .. })
            | Lifecycle::ActionUndone(Undone { actor, .. }) => actor.facts(),
            Lifecycle::RequestNotStored(n) | Lifecycle::PolicyReloaded(n) => {
                Facts::plain(n.at, &n.summary)
            }
            Lifecycle::AuditRepaired(r) => Facts::plain(r.at, &r.summary),
            Lifecycle::AuditPruned(p) => Facts::plain(p.at, &p.summary),
        }
    }
}

/// What every lifecycle event says, whatever its other fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    pub at: OffsetDateTime,
    pub summary: &'a str,
    /// The `principal` field, where the event has one (for notices, the requester or the
    /// grant's holder).
    pub principal: Option<&'a str>,
    /// The `grant` field, where the event has one.
    pub grant: Option<&'a str>,
    /// The `bucket` and `key` fields, where the event has them (share links).
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn plain(at: OffsetDateTime, summary: &'a str) -> Facts<'a> {
        Facts {
            at,
            summary,
            principal: None,
            grant: None,
            bucket: None,
            key: None,
        }
    }
}

/// A request or grant event, as its webhook notice says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// The requester, or the grant's holder.
    pub principal: String,
    /// `s3://bucket/prefix/`.
    pub scope: String,
    pub request_id: Option<String>,
    pub grant_id: Option<String>,
    pub summary: String,
}

/// An event with nothing but its time and sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    pub summary: String,
}

/// Who did something through the control API, when, and what they did, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    pub by: String,
    pub admin: bool,
    pub summary: String,
}

impl Actor {
    fn facts(&self) -> Facts<'_> {
        Facts::plain(self.at, &self.summary)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCreated {
    #[serde(flatten)]
    pub actor: Actor,
    pub grant: String,
    pub principal: String,
    pub scope: String,
    #[serde(with = "rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsIssued {
    #[serde(flatten)]
    pub actor: Actor,
    pub grant: String,
    pub principal: String,
    pub access_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdded {
    #[serde(flatten)]
    pub actor: Actor,
    pub user: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaReset {
    #[serde(flatten)]
    pub actor: Actor,
    pub user: String,
}

/// A share link made or revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareChange {
    #[serde(flatten)]
    pub actor: Actor,
    pub share: String,
    pub grant: String,
    pub principal: String,
    pub bucket: String,
    pub key: String,
    #[serde(with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_downloads: Option<u32>,
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undone {
    #[serde(flatten)]
    pub actor: Actor,
    /// The event recorded just before that did not happen (`user.added`).
    pub undone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repaired {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    pub summary: String,
    /// The trail file whose last line was torn.
    pub file: String,
    /// Where the torn line started in it.
    pub offset: u64,
    pub bytes: u64,
    /// Where its bytes were kept.
    pub kept_in: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// The files deleted.
    pub files: Vec<String>,
    /// The seq of the last record deleted.
    pub through_seq: u64,
    pub summary: String,
}

//! A grant: an approved scope with an absolute window, its limits, and the credentials bound
//! to it. The state of a grant is derived from its timestamps and the clock, never stored, so
//! an expiry that happened while the gateway was down is seen the moment it starts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::scope::Scope;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub principal: String,
    pub scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
    /// Deadline notices already sent (`grant.expiring_soon`, `grant.expired`), so a restart
    /// does not send them again.
    #[serde(default)]
    pub notices: Vec<String>,
    /// Usage limits and the longest share link, from the policy rule that approved it.
    #[serde(default)]
    pub limits: Limits,
}

/// What a grant allows beyond its scope and window. `None` means no limit (share links then
/// get the share book's default longest life).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes read plus bytes written under the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Objects read plus objects written under the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    /// Longest lifetime of a share link made under the grant, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_ttl_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    /// Approved for a window that has not started yet.
    Scheduled,
    Active,
    Expired,
    Revoked,
}

impl GrantState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Scheduled => "scheduled",
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

impl Grant {
    /// Revocation wins over time: a revoked grant stays revoked after its window passes.
    #[must_use]
    pub fn state(&self, now: OffsetDateTime) -> GrantState {
        if self.revoked_at.is_some() {
            GrantState::Revoked
        } else if now >= self.expires_at {
            GrantState::Expired
        } else if now < self.starts_at {
            GrantState::Scheduled
        } else {
            GrantState::Active
        }
    }

    /// When access under this grant ends, as things stand.
    #[must_use]
    pub fn ends_at(&self) -> OffsetDateTime {
        match self.revoked_at {
            Some(revoked) if revoked < self.expires_at => revoked,
            _ => self.expires_at,
        }
    }
}

/// A temporary S3 credential bound to one grant. Only the access key id is stored; the secret
/// and session token are derived from it under a key kept outside the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub access_key_id: String,
    pub grant_id: String,
    pub principal: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A read grant on `s3://data/a/` for unit tests.
#[cfg(test)]
pub(crate) fn example_grant(
    id: &str,
    starts_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Grant {
    Grant {
        id: id.into(),
        principal: "alice".into(),
        scope: Scope::parse("s3://data/a/", vec![super::Action::Read]).unwrap(),
        created_at: starts_at,
        starts_at,
        expires_at,
        revoked_at: None,
        revoked_by: None,
        notices: Vec::new(),
        limits: Limits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn grant() -> Grant {
        example_grant(
            "g-1",
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 11:00 UTC),
        )
    }

    #[test]
    fn state_follows_the_window() {
        let g = grant();
        // before the window: scheduled
        assert_eq!(
            g.state(datetime!(2026-01-01 9:59:59 UTC)),
            GrantState::Scheduled
        );
        // the window is [starts_at, expires_at)
        assert_eq!(g.state(datetime!(2026-01-01 10:00 UTC)), GrantState::Active);
        assert_eq!(
            g.state(datetime!(2026-01-01 10:59:59.999 UTC)),
            GrantState::Active
        );
        assert_eq!(
            g.state(datetime!(2026-01-01 11:00 UTC)),
            GrantState::Expired
        );
    }

    #[test]
    fn revocation_wins_and_ends_access_early() {
        let mut g = grant();
        g.revoked_at = Some(datetime!(2026-01-01 10:15 UTC));
        assert_eq!(
            g.state(datetime!(2026-01-01 10:20 UTC)),
            GrantState::Revoked
        );
        assert_eq!(
            g.state(datetime!(2026-01-01 12:00 UTC)),
            GrantState::Revoked
        );
        assert_eq!(g.ends_at(), datetime!(2026-01-01 10:15 UTC));
    }
}

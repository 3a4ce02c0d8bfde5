//! A share link as stored: one object, a window never past its grant, an optional download
//! limit, and its revocation. Its state is derived from those and the clock.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub id: String,
    pub grant_id: String,
    /// Who made the link (the grant's holder).
    pub principal: String,
    pub bucket: String,
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_downloads: Option<u32>,
    /// Downloads started (GETs answered by the backend); HEAD does not count.
    pub downloads: u32,
    pub why: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareState {
    Active,
    Expired,
    Revoked,
    /// Every allowed download has started.
    UsedUp,
}

impl ShareState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ShareState::Active => "active",
            ShareState::Expired => "expired",
            ShareState::Revoked => "revoked",
            ShareState::UsedUp => "used_up",
        }
    }
}

impl Share {
    /// Revocation wins over time, time over the download count.
    #[must_use]
    pub fn state(&self, now: OffsetDateTime) -> ShareState {
        if self.revoked_at.is_some() {
            ShareState::Revoked
        } else if now >= self.expires_at {
            ShareState::Expired
        } else if self.max_downloads.is_some_and(|max| self.downloads >= max) {
            ShareState::UsedUp
        } else {
            ShareState::Active
        }
    }

    #[must_use]
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Why this link no longer works, for the person holding it.
    #[must_use]
    pub fn refusal(&self, state: ShareState) -> Option<String> {
        let id = &self.id;
        match state {
            ShareState::Active => None,
            ShareState::Expired => Some(format!(
                "share link {id} expired at {}",
                crate::duration::rfc3339(self.expires_at)
            )),
            ShareState::Revoked => Some(format!(
                "share link {id} was revoked by {}",
                self.revoked_by.as_deref().unwrap_or("someone")
            )),
            ShareState::UsedUp => Some(format!(
                "share link {id} has been downloaded its {} allowed time(s)",
                self.max_downloads.unwrap_or(0)
            )),
        }
    }
}

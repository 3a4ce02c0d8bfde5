//! Who acts: an authenticated caller, and a local user as stored (groups, hashed API token,
//! TOTP enrolment).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

impl Principal {
    #[must_use]
    pub fn admin() -> Self {
        Principal {
            name: "admin".into(),
            groups: Vec::new(),
            admin: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUser {
    pub name: String,
    pub groups: Vec<String>,
    /// SHA-256 of the API token, hex.
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub totp: Option<TotpEnrolment>,
}

/// The TOTP secret is derived from this nonce under the credential key, so it is never
/// stored; `last_step` makes every code single-use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    pub nonce: String,
    pub last_step: Option<u64>,
}

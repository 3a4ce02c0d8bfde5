//! The JSON shapes of the control API, shared by the server and the CLI.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::grant::{Action, Grant, GrantState, IssuedCredential};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantView {
    pub id: String,
    pub principal: String,
    /// `s3://bucket/prefix/` or `s3://bucket/key`.
    pub scope: String,
    pub actions: Vec<Action>,
    pub state: GrantState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
}

impl GrantView {
    #[must_use]
    pub fn of(grant: &Grant, now: OffsetDateTime) -> Self {
        GrantView {
            id: grant.id.clone(),
            principal: grant.principal.clone(),
            scope: grant.scope.uri(),
            actions: grant.scope.actions.clone(),
            state: grant.state(now),
            created_at: grant.created_at,
            starts_at: grant.starts_at,
            expires_at: grant.expires_at,
            revoked_at: grant.revoked_at,
            revoked_by: grant.revoked_by.clone(),
        }
    }
}

/// aws-cli's `credential_process` output, plus the grant it is bound to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialView {
    pub version: u32,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expiration: OffsetDateTime,
    pub grant_id: String,
}

impl From<IssuedCredential> for CredentialView {
    fn from(c: IssuedCredential) -> Self {
        CredentialView {
            version: 1,
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key.expose().to_owned(),
            session_token: c.session_token.expose().to_owned(),
            expiration: c.expiration,
            grant_id: c.grant_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    pub scope: String,
    pub principal: String,
    pub actions: Vec<Action>,
    pub duration_seconds: i64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedGrant {
    pub grant: GrantView,
    pub credentials: CredentialView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `not_found`, `invalid`, `conflict`, `internal`.
    pub code: String,
    pub message: String,
}

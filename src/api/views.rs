//! The JSON shapes the control API answers with, shared by the server and the CLI (what it
//! accepts is in `bodies.rs`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::grant::IssuedCredential;
use crate::grant::usage::Usage;
use crate::model::{Action, Grant, GrantState, Limits};

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
    /// From the policy rule that approved it.
    #[serde(default)]
    pub limits: Limits,
    /// What was done under it so far (where the caller may see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Said when a call changed nothing, such as revoking a grant that had already ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl GrantView {
    #[must_use]
    pub fn with_usage(self, usage: Usage) -> Self {
        GrantView {
            usage: Some(usage),
            ..self
        }
    }

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
            limits: grant.limits,
            usage: None,
            note: None,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

impl WhoAmI {
    #[must_use]
    pub fn of(p: &crate::model::Principal) -> Self {
        WhoAmI {
            name: p.name.clone(),
            groups: p.groups.clone(),
            admin: p.admin,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub groups: Vec<String>,
    pub mfa: bool,
}

impl UserView {
    #[must_use]
    pub fn of(u: &crate::model::LocalUser) -> Self {
        UserView {
            name: u.name.clone(),
            groups: u.groups.clone(),
            mfa: u.totp.is_some(),
        }
    }
}

/// `sesame user add --json`: the user and their token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub user: UserView,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestView {
    pub id: String,
    /// `pending`, `active` (approved, grant in force), `expired`, `revoked`, `scheduled`,
    /// `denied`, `withdrawn` or `timed_out`.
    pub state: String,
    pub requester: String,
    pub scope: String,
    pub actions: Vec<Action>,
    pub duration_seconds: i64,
    pub justification: Option<String>,
    pub rule: String,
    pub approvals_needed: u32,
    pub approver_groups: Vec<String>,
    pub approver_mfa: bool,
    pub approved_by: Vec<String>,
    pub denial: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub pending_until: OffsetDateTime,
    pub grant_id: Option<String>,
}

impl RequestView {
    /// An approved request shows the state of its grant (`grant_state`), as requesters care
    /// about that.
    #[must_use]
    pub fn of(r: &crate::model::request::AccessRequest, grant_state: Option<GrantState>) -> Self {
        use crate::model::request::RequestState;
        let denial = match &r.state {
            RequestState::Denied { by, reason, .. } => Some(format!("{by}: {reason}")),
            RequestState::Pending
            | RequestState::Approved { .. }
            | RequestState::Withdrawn { .. }
            | RequestState::TimedOut { .. } => None,
        };
        RequestView {
            id: r.id.clone(),
            state: grant_state
                .map_or(r.state.name(), GrantState::as_str)
                .to_owned(),
            requester: r.requester.clone(),
            scope: r.scope.uri(),
            actions: r.scope.actions.clone(),
            duration_seconds: r.duration_seconds,
            justification: r.justification.clone(),
            rule: r.needs.rule.clone(),
            approvals_needed: r.needs.approvals,
            approver_groups: r.needs.approver_groups.clone(),
            approver_mfa: r.needs.approver_mfa,
            approved_by: r.approvals.iter().map(|a| a.by.clone()).collect(),
            denial,
            created_at: r.created_at,
            pending_until: r.pending_until,
            grant_id: r.grant_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareView {
    pub id: String,
    /// Works with curl or a browser, with no other credentials. A secret: shown once, to its
    /// maker, when the link is made; never in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub uri: String,
    pub grant: String,
    pub principal: String,
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_downloads: Option<u32>,
    pub downloads: u32,
    pub why: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_by: Option<String>,
}

impl ShareView {
    #[must_use]
    pub fn of(share: &crate::model::Share, url: Option<String>, now: OffsetDateTime) -> Self {
        ShareView {
            id: share.id.clone(),
            url,
            uri: share.uri(),
            grant: share.grant_id.clone(),
            principal: share.principal.clone(),
            state: share.state(now).as_str().to_owned(),
            created_at: share.created_at,
            expires_at: share.expires_at,
            max_downloads: share.max_downloads,
            downloads: share.downloads,
            why: share.why.clone(),
            revoked_at: share.revoked_at,
            revoked_by: share.revoked_by.clone(),
        }
    }
}

//! Share-link routes: holders of a grant make links to objects it can read; the maker, the
//! admin and the approvers of the grant see and revoke them. Making and revoking a link are
//! durable in the audit trail before the answer.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::bodies::CreateShare;
use super::views::ShareView;
use super::{ApiError, ApiResult, ApiState, json, read_json};
use crate::model::Principal;
use crate::model::Share;
use crate::model::{Action, Grant, GrantState, Scope};
use crate::record::{Lifecycle, ShareChange};
use crate::share::{NewShare, ShareError};
use crate::store::OwedRecord;

impl From<ShareError> for ApiError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ShareError::Invalid(_) => ApiError::invalid(e.to_string()),
            ShareError::Forbidden(_) => ApiError::forbidden(e.to_string()),
            ShareError::Store(inner) => ApiError::store(&inner),
        }
    }
}

/// What anyone allowed to see a link sees: its metadata, not its URL.
fn view(state: &ApiState, share: &Share) -> ShareView {
    ShareView::of(share, None, state.grants.clock().now())
}

/// What the maker sees once, as the link is made: with its URL.
fn view_with_url(state: &ApiState, share: &Share, token: &str) -> ShareView {
    let url = format!("{}{}{token}", state.s3_endpoint, crate::share::PATH_PREFIX);
    ShareView::of(share, Some(url), state.grants.clock().now())
}

fn may_see(state: &ApiState, who: &Principal, share: &Share) -> bool {
    who.admin
        || share.principal == who.name
        || state.workflow.is_approver_of_grant(who, &share.grant_id)
}

pub(super) fn list(
    state: &ApiState,
    who: &Principal,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let views: Vec<ShareView> = state
        .shares
        .list()
        .iter()
        .filter(|s| may_see(state, who, s))
        .map(|s| view(state, s))
        .collect();
    json(StatusCode::OK, &views)
}

/// A link the caller may see; others are reported as not found, saying nothing about them.
fn visible(state: &ApiState, who: &Principal, id: &str) -> Result<Share, ApiError> {
    let share = state.shares.get(id)?;
    if may_see(state, who, &share) {
        Ok(share)
    } else {
        Err(ShareError::NotFound(id.to_owned()).into())
    }
}

pub(super) fn get(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    let share = visible(state, who, id)?;
    Ok(json(StatusCode::OK, &view(state, &share)))
}

pub(super) async fn create(state: &ApiState, who: &Principal, req: Request<Incoming>) -> ApiResult {
    let body: CreateShare = read_json(req).await?;
    let target = Scope::parse(&body.uri, vec![Action::Read]).map_err(|e| ApiError::invalid(e.0))?;
    let key = match &target.keys {
        crate::model::KeyScope::Exact(key) => key.clone(),
        crate::model::KeyScope::Prefix(_) => {
            return Err(ApiError::invalid(format!(
                "{} is not an object: a link shares one object, name its whole key",
                body.uri
            )));
        }
    };
    let grant = grant_for(state, who, body.grant.as_deref(), &target.bucket, &key)?;
    let ttl = match body.ttl_seconds {
        Some(s) if s <= 0 => return Err(ApiError::invalid("ttl_seconds must be at least 1")),
        Some(s) => Some(time::Duration::seconds(s)),
        None => None,
    };
    let share = state.shares.draft(
        &grant,
        NewShare {
            bucket: target.bucket.clone(),
            key,
            ttl,
            max_downloads: body.max_downloads,
            why: body.why,
        },
    )?;
    // Recorded first: a link the trail cannot hold is not made.
    let event = Lifecycle::ShareCreated(described(state, "share.created", &share, who));
    let name = event.name();
    super::record(state, event).await?;
    let (share, token) = state
        .shares
        .insert(share)
        .await
        .map_err(|e| super::undone(state, name, who, e))?;
    Ok(json(
        StatusCode::CREATED,
        &view_with_url(state, &share, &token),
    ))
}

/// A revocation is never held up by the trail: its record is stored with it and moved into
/// the trail now, or as soon as the trail can be written. Revoking a link that already ended
/// changes and records nothing.
pub(super) async fn revoke(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    visible(state, who, id)?;
    let at = state.shares.clock().now();
    let (share, revoked) = state
        .shares
        .revoke_owing(id, &who.name, |share| OwedRecord {
            id: format!("{:024}-{}", at.unix_timestamp_nanos(), share.id),
            body: Lifecycle::ShareRevoked(described(state, "share.revoked", share, who)).into(),
        })
        .await?;
    if revoked && let Err(e) = state.workflow.flush_owed_records().await {
        tracing::warn!(share = %share.id, error = %e, "the share.revoked record is kept until the trail can be written");
    }
    Ok(json(StatusCode::OK, &view(state, &share)))
}

/// The grant a link is made under: the one named (which the caller must hold), or the
/// caller's active grant that reads the object and ends last.
fn grant_for(
    state: &ApiState,
    who: &Principal,
    named: Option<&str>,
    bucket: &str,
    key: &str,
) -> Result<Grant, ApiError> {
    if let Some(id) = named {
        let grant = state.grants.get(id)?;
        if grant.principal != who.name {
            return Err(ApiError::forbidden(format!(
                "grant {id} belongs to {}; links are made by the grant's holder",
                grant.principal
            )));
        }
        return Ok(grant);
    }
    let now = state.grants.clock().now();
    state
        .grants
        .list()
        .into_iter()
        .filter(|g| {
            g.principal == who.name
                && g.state(now) == GrantState::Active
                && g.scope.allows(Action::Read)
                && g.scope.covers_key(bucket, key)
        })
        .max_by_key(Grant::ends_at)
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "{} holds no active grant that reads s3://{bucket}/{key}; request one first (`sesame request s3://{bucket}/{key} --read --for 1h --why ...`)",
                who.name
            ))
        })
}

/// A link's lifecycle record, `event` naming what happened to it.
fn described(state: &ApiState, event: &str, share: &Share, who: &Principal) -> ShareChange {
    let summary = format!("{event} {} for {} by {}", share.id, share.uri(), who.name);
    ShareChange {
        actor: super::actor(state, who, summary),
        share: share.id.clone(),
        grant: share.grant_id.clone(),
        principal: share.principal.clone(),
        bucket: share.bucket.clone(),
        key: share.key.clone(),
        expires_at: share.expires_at,
        max_downloads: share.max_downloads,
        why: share.why.clone(),
    }
}

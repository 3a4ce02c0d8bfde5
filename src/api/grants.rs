//! Grant routes: the admin creates grants directly; owners, the admin and the approvers of
//! the request behind a grant see and revoke it; owners and the admin get credentials.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::bodies::CreateGrant;
use super::views::{CreatedGrant, CredentialView, GrantView};
use super::{ApiError, ApiResult, ApiState, actor, json, read_json, record, require_admin, undone};
use crate::grant::{Change, Revoked};
use crate::model::Principal;
use crate::model::{Grant, Limits, Scope};
use crate::record::{CredentialsIssued, GrantCreated, Lifecycle};

pub(super) fn list(
    state: &ApiState,
    who: &Principal,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let now = state.grants.clock().now();
    let views: Vec<GrantView> = state
        .grants
        .list()
        .iter()
        .filter(|g| {
            who.admin || g.principal == who.name || state.workflow.is_approver_of_grant(who, &g.id)
        })
        .map(|g| GrantView::of(g, now).with_usage(state.meter.get(&g.id)))
        .collect();
    json(StatusCode::OK, &views)
}

/// A grant the caller may see; others are reported as not found, saying nothing about them.
fn visible(state: &ApiState, who: &Principal, id: &str) -> Result<Grant, ApiError> {
    let grant = state.grants.get(id)?;
    if who.admin || grant.principal == who.name || state.workflow.is_approver_of_grant(who, id) {
        Ok(grant)
    } else {
        Err(crate::grant::GrantError::NotFound(id.to_owned()).into())
    }
}

pub(super) fn get(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    let grant = visible(state, who, id)?;
    let view = GrantView::of(&grant, state.grants.clock().now());
    Ok(json(
        StatusCode::OK,
        &view.with_usage(state.meter.get(&grant.id)),
    ))
}

pub(super) async fn create(state: &ApiState, who: &Principal, req: Request<Incoming>) -> ApiResult {
    require_admin(who)?;
    let body: CreateGrant = read_json(req).await?;
    let scope =
        Scope::parse(&body.scope, body.actions.clone()).map_err(|e| ApiError::invalid(e.0))?;
    let duration = time::Duration::seconds(body.duration_seconds);
    let grant = state.grants.draft(
        &body.principal,
        scope,
        body.starts_at,
        duration,
        Limits::default(),
    )?;
    let summary = format!(
        "{} granted {} {} to {} until {}",
        who.name,
        grant.scope.uri(),
        grant.scope.actions_label(),
        grant.principal,
        crate::duration::rfc3339(grant.expires_at)
    );
    let event = Lifecycle::GrantCreated(GrantCreated {
        actor: actor(state, who, summary),
        grant: grant.id.clone(),
        principal: grant.principal.clone(),
        scope: grant.scope.uri(),
        expires_at: grant.expires_at,
    });
    let name = event.name();
    // Recorded first: a grant the trail cannot hold is not made.
    record(state, event).await?;
    let grant = state
        .grants
        .commit(Change::Create(Box::new(grant)), None)
        .await
        .map_err(|e| undone(state, name, who, e))?
        .0;
    let credentials = state.grants.issue_credential(&grant.id).await?;
    let now = state.grants.clock().now();
    Ok(json(
        StatusCode::CREATED,
        &CreatedGrant {
            grant: GrantView::of(&grant, now),
            credentials: credentials.into(),
        },
    ))
}

pub(super) async fn revoke(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    visible(state, who, id)?;
    let now = state.grants.clock().now();
    let revocation = state.workflow.revoke(who, id).await?;
    let (grant, note) = match revocation.revoked {
        Revoked::Now(grant) => {
            let note = revocation.record_owed.map(|e| {
                format!(
                    "revoked; its audit record is kept and will be written to the trail as soon as it can be ({e})"
                )
            });
            (grant, note)
        }
        Revoked::Already(grant) => {
            let state = grant.state(now).as_str();
            (
                grant,
                Some(format!(
                    "grant {id} had already ended ({state}): nothing changed"
                )),
            )
        }
    };
    Ok(json(
        StatusCode::OK,
        &GrantView {
            note,
            ..GrantView::of(&grant, now)
        },
    ))
}

pub(super) async fn credentials(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    let grant = visible(state, who, id)?;
    if !who.admin && grant.principal != who.name {
        return Err(ApiError::forbidden(format!(
            "grant {id} belongs to {}; only they get its credentials",
            grant.principal
        )));
    }
    let credential = state.grants.draft_credential(id)?;
    let summary = format!(
        "{} got credentials {} for grant {id}",
        who.name, credential.access_key_id
    );
    let event = Lifecycle::CredentialsIssued(CredentialsIssued {
        actor: actor(state, who, summary),
        grant: id.to_owned(),
        principal: grant.principal.clone(),
        access_key: credential.access_key_id.clone(),
    });
    let name = event.name();
    record(state, event).await?;
    let credential = state
        .grants
        .commit_credential(credential)
        .await
        .map_err(|e| undone(state, name, who, e))?;
    Ok(json(StatusCode::CREATED, &CredentialView::from(credential)))
}

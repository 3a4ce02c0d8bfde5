//! Request, user and MFA routes.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::bodies::{AddUser, Decide, EnrollMfa, Extend, FileRequest};
use super::views::{NewUser, RequestView, UserView};
use super::{ApiError, ApiResult, ApiState, json, read_json, require_admin};
use crate::desk::NewRequest;
use crate::model::Principal;
use crate::model::Scope;
use crate::record::{Lifecycle, MfaReset, UserAdded};

fn view(state: &ApiState, r: &crate::model::request::AccessRequest) -> RequestView {
    let now = state.grants.clock().now();
    let grant_state = r
        .grant_id
        .as_deref()
        .and_then(|id| state.grants.get(id).ok())
        .map(|g| g.state(now));
    RequestView::of(r, grant_state)
}

pub(super) fn list(
    state: &ApiState,
    who: &Principal,
    query: Option<&str>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let pending_only =
        query.is_some_and(|q| q.split('&').any(|p| p == "pending=true" || p == "pending"));
    let views: Vec<RequestView> = state
        .workflow
        .list(who, pending_only)
        .iter()
        .map(|r| view(state, r))
        .collect();
    json(StatusCode::OK, &views)
}

pub(super) fn get(state: &ApiState, who: &Principal, id: &str) -> ApiResult {
    let visible = state
        .workflow
        .list(who, false)
        .into_iter()
        .find(|r| r.id == id);
    let request = visible.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("request {id} not found"),
        )
    })?;
    Ok(json(StatusCode::OK, &view(state, &request)))
}

pub(super) async fn file(state: &ApiState, who: &Principal, req: Request<Incoming>) -> ApiResult {
    let body: FileRequest = read_json(req).await?;
    let scope = Scope::parse(&body.scope, body.actions).map_err(|e| ApiError::invalid(e.0))?;
    if body.duration_seconds <= 0 {
        return Err(ApiError::invalid("duration_seconds must be positive"));
    }
    let new = NewRequest {
        scope,
        duration: time::Duration::seconds(body.duration_seconds),
        starts_at: body.starts_at,
        justification: body.justification,
        totp: body.totp,
    };
    let request = state.workflow.file(who, new).await?;
    state.deadlines_changed.notify_one();
    Ok(json(StatusCode::CREATED, &view(state, &request)))
}

/// What a caller decides about a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Decision {
    Approve,
    Deny,
    Withdraw,
}

pub(super) async fn decide(
    state: &ApiState,
    who: &Principal,
    id: &str,
    decision: Decision,
    req: Request<Incoming>,
) -> ApiResult {
    let body: Decide = read_json(req).await?;
    let request = match decision {
        Decision::Approve => {
            state
                .workflow
                .approve(who, id, body.totp.as_deref())
                .await?
        }
        Decision::Deny => {
            let reason = body
                .reason
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| ApiError::invalid("a denial needs a reason"))?;
            state
                .workflow
                .deny(who, id, &reason, body.totp.as_deref())
                .await?
        }
        Decision::Withdraw => state.workflow.withdraw(who, id).await?,
    };
    Ok(json(StatusCode::OK, &view(state, &request)))
}

/// An extension is a request against the grant, decided like any other.
pub(super) async fn extend(
    state: &ApiState,
    who: &Principal,
    grant_id: &str,
    req: Request<Incoming>,
) -> ApiResult {
    let body: Extend = read_json(req).await?;
    if body.duration_seconds <= 0 {
        return Err(ApiError::invalid("duration_seconds must be positive"));
    }
    let extra = time::Duration::seconds(body.duration_seconds);
    let request = state
        .workflow
        .extend(
            who,
            grant_id,
            extra,
            body.justification,
            body.totp.as_deref(),
        )
        .await?;
    state.deadlines_changed.notify_one();
    Ok(json(StatusCode::CREATED, &view(state, &request)))
}

/// The admin removes a user's authenticator (lost phone); recorded before it happens. The
/// user then enrols a new one with their token alone.
pub(super) async fn reset_mfa(state: &ApiState, who: &Principal, name: &str) -> ApiResult {
    require_admin(who)?;
    let users = state.workflow.users();
    if !users.has_totp(name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{name} has no authenticator enrolled"),
        ));
    }
    let summary = format!("{} reset the authenticator of {name}", who.name);
    let event = Lifecycle::MfaReset(MfaReset {
        actor: super::actor(state, who, summary),
        user: name.to_owned(),
    });
    let event_name = event.name();
    super::record(state, event).await?;
    users
        .reset_totp(name)
        .await
        .map_err(|e| super::undone(state, event_name, who, e))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "user": name, "mfa": false }),
    ))
}

pub(super) fn list_users(state: &ApiState, who: &Principal) -> ApiResult {
    require_admin(who)?;
    let users: Vec<UserView> = state
        .workflow
        .users()
        .list()
        .iter()
        .map(UserView::of)
        .collect();
    Ok(json(StatusCode::OK, &users))
}

pub(super) async fn add_user(
    state: &ApiState,
    who: &Principal,
    req: Request<Incoming>,
) -> ApiResult {
    require_admin(who)?;
    let body: AddUser = read_json(req).await?;
    let users = state.workflow.users();
    let (user, token) = users.draft(&body.name, &body.groups, state.grants.clock().now())?;
    let summary = format!(
        "{} added user {} in groups [{}]",
        who.name,
        user.name,
        body.groups.join(", ")
    );
    let event = Lifecycle::UserAdded(UserAdded {
        actor: super::actor(state, who, summary),
        user: user.name.clone(),
        groups: body.groups.clone(),
    });
    let name = event.name();
    super::record(state, event).await?;
    users
        .insert(user.clone())
        .await
        .map_err(|e| super::undone(state, name, who, e))?;
    Ok(json(
        StatusCode::CREATED,
        &NewUser {
            user: UserView::of(&user),
            token,
        },
    ))
}

/// Enrols an authenticator. Replacing one already enrolled needs a current code from it: a
/// stolen API token alone must not be enough to enrol the thief's own authenticator and
/// then approve with it. Without the old one, the admin resets it (recorded).
pub(super) async fn enroll_mfa(
    state: &ApiState,
    who: &Principal,
    req: Request<Incoming>,
) -> ApiResult {
    if who.admin {
        return Err(ApiError::forbidden(
            "MFA is enrolled per user; use a user's token",
        ));
    }
    let body: EnrollMfa = read_json(req).await?;
    let users = state.workflow.users();
    if users.has_totp(&who.name) {
        let now = state.grants.clock().now();
        let code = body.totp.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_required",
                format!(
                    "{} already has an authenticator: re-enrolling needs a current code from it (--totp), or the admin resets it (`sesame mfa reset {}`)",
                    who.name, who.name
                ),
            )
        })?;
        users.verify_totp(&who.name, &code, now).await?;
    }
    let enrolment = users.draft_totp(&who.name)?;
    let summary = format!("{} enrolled a TOTP authenticator", who.name);
    let event = Lifecycle::MfaEnrolled(super::actor(state, who, summary));
    let name = event.name();
    super::record(state, event).await?;
    let (secret, uri) = users
        .commit_totp(&who.name, enrolment)
        .await
        .map_err(|e| super::undone(state, name, who, e))?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({"secret": secret, "uri": uri}),
    ))
}

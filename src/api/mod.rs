//! The control API: HTTP/JSON under `/v1`. Every route but health and the OpenAPI document
//! needs a bearer token (the admin's, in `admin.token`, a user's, or an OIDC ID token) or,
//! over TLS, a client certificate mapped to a principal. Errors are JSON with a machine code
//! and a human message.

mod audit;
pub mod bodies;
mod grants;
mod report;
mod requests;
mod routes;
mod shares;
pub mod views;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use self::requests::Decision;
use self::routes::{Open, Recognised, Route};
use self::views::{ErrorBody, ErrorDetail};
use crate::desk::{Workflow, WorkflowError};
use crate::grant::{GrantError, Grants};
use crate::identity::IdentityError;
use crate::model::Principal;
use crate::record::{Actor, Lifecycle, Undone};
use crate::secret::{Secret, constant_time_eq};
use crate::tls::ClientNames;

/// The OpenAPI description of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the control API answers: its method and its path as the OpenAPI document
/// writes it (`/v1/grants/{id}`), in the order of the route table. For what must cover
/// every route, such as the authorisation test that asks each one as every role.
pub fn routes() -> impl Iterator<Item = (hyper::Method, &'static str)> {
    routes::every()
}

const MAX_BODY: usize = 64 * 1024;

pub struct ApiState {
    pub grants: Arc<Grants>,
    pub workflow: Arc<Workflow>,
    pub admin_token: Secret,
    pub s3_endpoint: String,
    /// A verified client certificate's name to the principal it authenticates as (a local
    /// user's name, or `admin`); empty: client certificates name no one.
    pub client_principals: std::collections::BTreeMap<String, String>,
    /// Whether the control API is served over TLS (its answers then carry HSTS).
    pub tls: bool,
    pub region: String,
    /// Wakes the request timeout task when a new deadline appears.
    pub deadlines_changed: Arc<tokio::sync::Notify>,
    /// Accepts ID tokens from the organisation's identity provider, when configured.
    pub oidc: Option<Arc<crate::identity::oidc::Oidc>>,
    pub shares: Arc<crate::share::Shares>,
    /// What was done under each grant.
    pub meter: Arc<crate::grant::usage::Meter>,
    /// The trail root (every replica's chain), read for reports and queries.
    pub audit_dir: std::path::PathBuf,
    /// For lifecycle records the caller waits on (share links made and revoked).
    pub audit: crate::audit::AuditLog,
}

pub async fn serve(listener: crate::listen::Listener, state: Arc<ApiState>) {
    crate::listen::serve(listener, move |_, req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    })
    .await;
}

/// An API failure: its status, machine code and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn store(inner: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %inner, "store failure");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "the store is unavailable; nothing was changed",
        )
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            GrantError::Invalid(_) => ApiError::invalid(e.to_string()),
            GrantError::Ended { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            GrantError::Store(inner) => ApiError::store(&inner),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Invalid(_) => ApiError::invalid(e.to_string()),
            IdentityError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            IdentityError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            IdentityError::NotEnrolled(_) | IdentityError::Totp(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "mfa_failed", e.to_string())
            }
            IdentityError::Store(inner) => ApiError::store(&inner),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        use crate::model::request::RequestError;
        match e {
            WorkflowError::Denied(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "denied_by_policy", e.to_string())
            }
            WorkflowError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            WorkflowError::Forbidden(_) => ApiError::forbidden(e.to_string()),
            WorkflowError::RequesterMfa => {
                ApiError::new(StatusCode::FORBIDDEN, "mfa_required", e.to_string())
            }
            WorkflowError::Request(ref r) => match r {
                RequestError::MfaRequired { .. } => {
                    ApiError::new(StatusCode::FORBIDDEN, "mfa_required", e.to_string())
                }
                RequestError::OwnRequest { .. }
                | RequestError::NotAnApprover { .. }
                | RequestError::NotRequester { .. } => ApiError::forbidden(e.to_string()),
                RequestError::NotPending { .. }
                | RequestError::AlreadyApproved { .. }
                | RequestError::Expired { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
                }
            },
            WorkflowError::Identity(inner) => inner.into(),
            WorkflowError::Grant(inner) => inner.into(),
            WorkflowError::Store(inner) => ApiError::store(&inner),
            WorkflowError::Policies(inner) => ApiError::invalid(inner.to_string()),
            WorkflowError::Unrecorded(inner) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!("nothing was changed: {inner}"),
            ),
        }
    }
}

type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

/// How long a browser that saw the control API over TLS keeps to HTTPS for it.
const HSTS: &str = "max-age=31536000";

async fn handle(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut res = answer(state, req).await;
    if state.tls {
        res.headers_mut().insert(
            hyper::header::STRICT_TRANSPORT_SECURITY,
            hyper::header::HeaderValue::from_static(HSTS),
        );
    }
    res
}

async fn answer(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    route(state, req).await.unwrap_or_else(|e| {
        tracing::debug!(%method, %path, status = %e.status, message = %e.message, "api error");
        json(
            e.status,
            &ErrorBody {
                error: ErrorDetail {
                    code: e.code.to_owned(),
                    message: e.message,
                },
            },
        )
    })
}

async fn route(state: &ApiState, req: Request<Incoming>) -> ApiResult {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let (route, segment) = match routes::recognise(&method, &path) {
        Some(Recognised::Open(Open::Health)) => {
            let health = serde_json::json!({"status": "ok", "s3_endpoint": state.s3_endpoint, "region": state.region});
            return Ok(json(StatusCode::OK, &health));
        }
        Some(Recognised::Open(Open::OpenApi)) => return Ok(raw_json(StatusCode::OK, OPENAPI)),
        Some(Recognised::Route(route, segment)) => (route, segment),
        None if path.split('/').nth(1) == Some("v1") => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {method} {path}"),
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{path} is not under /v1"),
            ));
        }
    };
    let who = authenticate(state, &req).await?;
    // The `{id}` (or `{name}`) of the routes that have one; the table gives it to each.
    let id = segment.unwrap_or_default();
    match route {
        Route::WhoAmI => Ok(json(StatusCode::OK, &views::WhoAmI::of(&who))),
        Route::ListGrants => Ok(grants::list(state, &who)),
        Route::CreateGrant => grants::create(state, &who, req).await,
        Route::GetGrant => grants::get(state, &who, id),
        Route::RevokeGrant => grants::revoke(state, &who, id).await,
        Route::IssueCredentials => grants::credentials(state, &who, id).await,
        Route::ExtendGrant => requests::extend(state, &who, id, req).await,
        Route::ListRequests => Ok(requests::list(state, &who, req.uri().query())),
        Route::FileRequest => requests::file(state, &who, req).await,
        Route::GetRequest => requests::get(state, &who, id),
        Route::Approve => requests::decide(state, &who, id, Decision::Approve, req).await,
        Route::Deny => requests::decide(state, &who, id, Decision::Deny, req).await,
        Route::Withdraw => requests::decide(state, &who, id, Decision::Withdraw, req).await,
        // Records waiting to share an fsync are committed first, so what was served a
        // moment ago is in the answer. A failing trail still reads as far as it goes.
        Route::Report => {
            let _ = state.audit.flushed().await;
            report::report(state, &who, req.uri().query())
        }
        Route::Audit => {
            let _ = state.audit.flushed().await;
            audit::query(state, &who, req.uri().query())
        }
        Route::ListShares => Ok(shares::list(state, &who)),
        Route::CreateShare => shares::create(state, &who, req).await,
        Route::GetShare => shares::get(state, &who, id),
        Route::RevokeShare => shares::revoke(state, &who, id).await,
        Route::ListUsers => requests::list_users(state, &who),
        Route::AddUser => requests::add_user(state, &who, req).await,
        Route::EnrollMfa => requests::enroll_mfa(state, &who, req).await,
        Route::ResetMfa => requests::reset_mfa(state, &who, id).await,
        Route::PolicyStatus => Ok(json(StatusCode::OK, &state.workflow.policy_status())),
        Route::ReloadPolicies => {
            require_admin(&who)?;
            let status = state.workflow.reload_policies().await?;
            Ok(json(StatusCode::OK, &status))
        }
    }
}

/// The admin token, a user's API token, or an OIDC ID token; without a token, a verified
/// client certificate mapped to a principal.
async fn authenticate(state: &ApiState, req: &Request<Incoming>) -> Result<Principal, ApiError> {
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (None, Some(names)) = (presented, req.extensions().get::<ClientNames>()) {
        return certified(state, names);
    }
    let Some(token) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a token as `Authorization: Bearer <token>`: an ID token from your identity provider, a user's API token (from `sesame user add`), or the admin's (admin.token in the data directory)",
        ));
    };
    if constant_time_eq(token.as_bytes(), state.admin_token.expose().as_bytes()) {
        return Ok(Principal::admin());
    }
    if let (Some(oidc), true) = (&state.oidc, crate::identity::oidc::looks_like_jwt(token)) {
        let who = oidc
            .verify(token)
            .await
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
        state
            .workflow
            .users()
            .ensure_external(&who.name, state.grants.clock().now())
            .await?;
        return Ok(who);
    }
    state.workflow.users().authenticate(token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid for this gateway",
        )
    })
}

/// The principal a verified client certificate authenticates as: the first of its names
/// that `[tls.api_clients]` maps, to a local user or to the admin.
fn certified(state: &ApiState, names: &ClientNames) -> Result<Principal, ApiError> {
    let unauthorized =
        |message: String| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let Some((name, principal)) = names
        .0
        .iter()
        .find_map(|n| state.client_principals.get(n).map(|p| (n, p)))
    else {
        return Err(unauthorized(format!(
            "the client certificate's names ({}) are not in [tls.api_clients]: map one of them to a user there, or send a token",
            names.0.join(", ")
        )));
    };
    if principal == "admin" {
        return Ok(Principal::admin());
    }
    state.workflow.users().principal(principal).ok_or_else(|| {
        unauthorized(format!(
            "the client certificate {name} is mapped to the user {principal}, who does not exist: add them with `sesame user add {principal}`"
        ))
    })
}

/// A lifecycle record for something done through the API (an admin action, a link made or
/// revoked, credentials issued), durable in the trail before the action is taken: an action
/// the trail cannot hold is refused, and nothing changes.
async fn record(state: &ApiState, event: Lifecycle) -> Result<(), ApiError> {
    state.audit.append(event).await.map(|_| ()).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            format!("nothing was changed: {e}"),
        )
    })
}

/// Who did something through the API, and when, for its lifecycle record.
fn actor(state: &ApiState, who: &Principal, summary: String) -> Actor {
    Actor {
        at: state.grants.clock().now(),
        by: who.name.clone(),
        admin: who.admin,
        summary,
    }
}

/// An action recorded in the trail failed after all (its store write): the trail says so
/// too, and the caller gets the error.
fn undone(
    state: &ApiState,
    event: &'static str,
    who: &Principal,
    error: impl Into<ApiError> + std::fmt::Display,
) -> ApiError {
    let summary = format!("the {event} recorded just before did not happen: {error}");
    state.audit.append_later(Lifecycle::ActionUndone(Undone {
        actor: actor(state, who, summary),
        undone: event.to_owned(),
    }));
    error.into()
}

fn require_admin(who: &Principal) -> Result<(), ApiError> {
    if who.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{} is not the admin; this needs the admin token",
            who.name
        )))
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            ApiError::invalid(format!(
                "cannot read the request body (at most {MAX_BODY} bytes): {e}"
            ))
        })?
        .to_bytes();
    let body = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "request body is not valid JSON for this route: {e}"
        ))
    })
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).expect("views always serialise");
    raw_json(status, body)
}

fn raw_json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The decoded value of parameter `name` in a request's query string, if it has one (`+` is
/// a space, as HTML forms send it).
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_are_decoded() {
        let query = Some("a=1&since=2026-03-01T09%3A00%3A00Z&who=audrey+b");
        assert_eq!(
            query_value(query, "since").as_deref(),
            Some("2026-03-01T09:00:00Z")
        );
        assert_eq!(query_value(query, "who").as_deref(), Some("audrey b"));
        assert_eq!(query_value(query, "b"), None);
        assert_eq!(query_value(None, "a"), None);
    }
}

//! The control API: HTTP/JSON under `/v1`, every route but health and the OpenAPI document
//! behind the admin bearer token. Errors are JSON with a machine code and a human message.

pub mod views;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use self::views::{CreateGrant, CreatedGrant, CredentialView, ErrorBody, ErrorDetail, GrantView};
use crate::grant::credential::constant_time_eq;
use crate::grant::{GrantError, Grants, Scope, Secret};

/// The OpenAPI description of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

const MAX_BODY: usize = 64 * 1024;

pub struct ApiState {
    pub grants: Arc<Grants>,
    pub admin_token: Secret,
    pub s3_endpoint: String,
    pub region: String,
}

pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    crate::s3::accept_loop(listener, move |req| {
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
            GrantError::Store(inner) => {
                tracing::error!(error = %inner, "store failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "the store is unavailable; nothing was changed",
                )
            }
        }
    }
}

type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

async fn handle(state: &ApiState, req: Request<Incoming>) -> Response<Full<Bytes>> {
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
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["v1", "health"]) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "s3_endpoint": state.s3_endpoint, "region": state.region}),
        )),
        (&Method::GET, ["v1", "openapi.json"]) => Ok(raw_json(StatusCode::OK, OPENAPI)),
        _ => {
            authorize(state, &req)?;
            match (req.method().clone(), segments.as_slice()) {
                (Method::GET, ["v1", "grants"]) => Ok(list_grants(state)),
                (Method::POST, ["v1", "grants"]) => create_grant(state, req).await,
                (Method::GET, ["v1", "grants", id]) => get_grant(state, id),
                (Method::POST, ["v1", "grants", id, "revoke"]) => revoke_grant(state, id),
                (Method::POST, ["v1", "grants", id, "credentials"]) => issue_credentials(state, id),
                (_, ["v1", ..]) => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route for {} {path}", req.method()),
                )),
                _ => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{path} is not under /v1"),
                )),
            }
        }
    }
}

fn authorize(state: &ApiState, req: &Request<Incoming>) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token)
            if constant_time_eq(
                token.trim().as_bytes(),
                state.admin_token.expose().as_bytes(),
            ) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid for this gateway",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the admin token as `Authorization: Bearer <token>` (it is in admin.token in the data directory)",
        )),
    }
}

fn list_grants(state: &ApiState) -> Response<Full<Bytes>> {
    let now = state.grants.clock().now();
    let views: Vec<GrantView> = state
        .grants
        .list()
        .iter()
        .map(|g| GrantView::of(g, now))
        .collect();
    json(StatusCode::OK, &views)
}

fn get_grant(state: &ApiState, id: &str) -> ApiResult {
    let grant = state.grants.get(id)?;
    Ok(json(
        StatusCode::OK,
        &GrantView::of(&grant, state.grants.clock().now()),
    ))
}

async fn create_grant(state: &ApiState, req: Request<Incoming>) -> ApiResult {
    let body: CreateGrant = read_json(req).await?;
    let scope =
        Scope::parse(&body.scope, body.actions.clone()).map_err(|e| ApiError::invalid(e.0))?;
    let duration = time::Duration::seconds(body.duration_seconds);
    let grant = state
        .grants
        .create(&body.principal, scope, body.starts_at, duration)?;
    let credentials = state.grants.issue_credential(&grant.id)?;
    let now = state.grants.clock().now();
    Ok(json(
        StatusCode::CREATED,
        &CreatedGrant {
            grant: GrantView::of(&grant, now),
            credentials: credentials.into(),
        },
    ))
}

fn revoke_grant(state: &ApiState, id: &str) -> ApiResult {
    let grant = state.grants.revoke(id, "admin")?;
    Ok(json(
        StatusCode::OK,
        &GrantView::of(&grant, state.grants.clock().now()),
    ))
}

fn issue_credentials(state: &ApiState, id: &str) -> ApiResult {
    let credential = state.grants.issue_credential(id)?;
    Ok(json(StatusCode::CREATED, &CredentialView::from(credential)))
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

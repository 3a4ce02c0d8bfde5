//! The S3 front end: the front door (`guard`), authentication and authorization (`access`,
//! `ops`), the operations (`gateway`), upload ids bound to their keys (`uploads`), bodies in
//! flight (`transfer`), what an upload declares about its body (`declared`) and the backend
//! client.

pub mod access;
pub mod backend;
pub mod declared;
pub mod gateway;
pub mod guard;
pub mod host;
pub mod ops;
pub mod record;
pub mod transfer;
pub mod uploads;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::grant::Grants;
use crate::grant::usage::Meter;

/// Builds the S3 service. Auth and access are always installed: s3s skips access checks
/// entirely without an auth provider, so there is no way to build one without them.
pub fn service(
    grants: Arc<Grants>,
    backend: aws_sdk_s3::Client,
    clock: SharedClock,
    domain: Option<&str>,
    audit: AuditLog,
    meter: Arc<Meter>,
    uploads: Arc<uploads::Uploads>,
) -> Result<S3Service, String> {
    let gateway = gateway::Gateway::new(backend, clock, meter.clone(), uploads.clone());
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_auth(access::Auth(grants.clone()));
    builder.set_access(access::Access {
        grants,
        audit,
        meter,
        uploads,
    });
    if let Some(domain) = domain {
        builder.set_host(host::DomainHost::new(domain)?);
    }
    Ok(builder.build())
}

/// What the front door needs besides the service.
pub struct FrontDoor {
    pub service: S3Service,
    /// The region clients must sign for.
    pub region: String,
    pub audit: AuditLog,
    pub clock: SharedClock,
    /// Answers share links, which carry no S3 credentials.
    pub links: crate::share::serve::LinkServer,
}

/// Serves the gateway: every request passes the front door, then s3s.
pub async fn serve(listener: TcpListener, door: FrontDoor) {
    let door = Arc::new(door);
    accept_loop(listener, move |req| {
        let door = door.clone();
        async move { Ok::<_, Infallible>(front_door(&door, req).await) }
    })
    .await;
}

async fn front_door(door: &FrontDoor, req: hyper::Request<Incoming>) -> s3s::HttpResponse {
    let info = record::RequestInfo::of(&req);
    let res = if crate::share::serve::is_link(&req) {
        door.links.answer(&req, &info).await
    } else if let Err(e) = guard::screen(req.headers(), req.uri().query(), &door.region) {
        guard::error_response(e)
    } else {
        let (mut parts, body) = req.into_parts();
        let verdict = info.verdict.clone();
        parts.extensions.insert(verdict.clone());
        parts.extensions.insert(info.clone());
        let body = s3s::Body::from(body);
        let body = if guard::is_aws_chunked(&parts.headers) {
            let limited: s3s::stream::DynByteStream =
                Box::pin(guard::ChunkLimit::new(body, verdict));
            s3s::Body::from(limited)
        } else {
            body
        };
        match door
            .service
            .call(hyper::Request::from_parts(parts, body))
            .await
        {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(error = ?e, "s3 service failed");
                guard::error_response(s3s::s3_error!(InternalError))
            }
        }
    };
    // Refused before any decision (bad signature, unknown key, SigV2, ...): still one record.
    if info.decision.get().is_none() {
        let body = record::merged(
            info.base(door.clock.now()),
            serde_json::json!({"kind": "s3", "decision": "refused", "method": info.method, "path": info.path, "status": res.status().as_u16()}),
        );
        if let Err(e) = door.audit.append(body).await {
            tracing::error!(error = %e, "a refused request could not be recorded");
        }
    }
    let status = res.status().as_u16();
    let mut res = res;
    if let Ok(id) = hyper::header::HeaderValue::from_str(&info.request_id) {
        res.headers_mut().insert("x-amz-request-id", id);
    }
    res.map(|body| {
        s3s::Body::http_body(record::Completing::new(
            body,
            door.audit.clone(),
            info,
            status,
            door.clock.clone(),
        ))
    })
}

/// Serves an s3s service with no front door: only for the in-process directory backend,
/// which sits on loopback behind the gateway.
pub async fn serve_plain(listener: TcpListener, service: S3Service) {
    accept_loop(listener, move |req: hyper::Request<Incoming>| {
        let service = service.clone();
        async move {
            let res = service.call(req.map(s3s::Body::from)).await;
            Ok::<_, Infallible>(
                res.unwrap_or_else(|_| guard::error_response(s3s::s3_error!(InternalError))),
            )
        }
    })
    .await;
}

/// Accepts HTTP/1.1 connections until the listener fails; one task per connection.
pub async fn accept_loop<F, Fut, B>(listener: TcpListener, handler: F)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<hyper::Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let with_peer = move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(record::Peer(peer));
                handler(req)
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service_fn(with_peer));
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

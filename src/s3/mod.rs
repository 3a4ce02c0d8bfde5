//! The S3 front end: the front door (`parse` once, then `guard` and `forwarded`, and
//! `bounds` on what an unauthenticated request can make it hold, `incoming` for bodies sent
//! without a length or left unread by a refusal), authentication and
//! authorization (`access`, `ops`), the grant decision as pure functions (`decision`) and
//! every reason to refuse, mapped to the wire once (`denial`), what is counted against a
//! grant's limits (`meter`), the operations (`gateway`), upload ids bound to their keys
//! (`uploads`), what an upload declares about its body (`declared`), what a delete batch
//! declares and may hold (`batch`), bodies in flight (`transfer`), the trail's records
//! (`record`), share links answered beside the S3 operations with the same decision, meter,
//! records and bodies (`link`), the backend client, and the embedded directory backend made
//! to answer as S3 does (`directory`).
//!
//! Every submodule is private: the rest of the gateway, the integration tests and the
//! benchmarks use only what is re-exported here.

mod access;
mod backend;
mod batch;
mod bounds;
mod decision;
mod declared;
mod denial;
mod directory;
mod forwarded;
mod gateway;
mod guard;
mod host;
mod incoming;
mod link;
mod meter;
mod ops;
mod parse;
mod record;
mod transfer;
mod uploads;

/// The backend: [`connect_backend`] reaches the configured one (starting the directory
/// server for a local directory), [`backend_client`] is the S3 client tuned for relaying
/// that it uses, and [`start_directory_server`] serves a directory as S3 on loopback (also
/// the tests' backend); [`http_client_trusting`] is an HTTP client for the S3 SDK that trusts
/// only the given CA bundle (a TLS backend, or a client of Sesame over TLS in tests and bench).
pub use self::backend::{
    client as backend_client, connect as connect_backend, http_client_trusting,
    start_directory_server,
};
/// Answers share links on the S3 listener; part of the [`FrontDoor`].
pub use self::link::LinkServer;
/// The operation table ([`TABLE`], one [`Rule`] per S3 operation Sesame lets through, looked
/// up with [`rule_for`]) and its data-effect column by operation ([`effect_of`]), which the
/// meter rebuilt from the trail and the report count by.
pub use self::ops::{Rule, TABLE, effect_of, rule_for};
/// The multipart uploads Sesame started, each bound to its key and principal; opened at
/// start over the store and shared by the access checks and the operations.
pub use self::uploads::Uploads;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::grant::Grants;
use crate::grant::usage::Meter;
use crate::listen::Listener;
use crate::record::{Refusal, S3 as S3Record};

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
    pub links: link::LinkServer,
}

/// Serves the gateway: every request passes the front door, then s3s.
pub async fn serve(listener: Listener, door: FrontDoor) {
    let door = Arc::new(door);
    crate::listen::serve(listener, move |peer, mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(record::Peer(peer));
        let door = door.clone();
        async move { Ok::<_, Infallible>(front_door(&door, req).await) }
    })
    .await;
}

async fn front_door(door: &FrontDoor, req: hyper::Request<Incoming>) -> s3s::HttpResponse {
    let info = record::RequestInfo::of(&req);
    let mut refusal = None;
    let mut denied = None;
    let mut refuse = |e: s3s::S3Error| {
        refusal = Some((e.code().as_str().to_owned(), e.message().map(str::to_owned)));
        guard::error_response(e)
    };
    let res = if let Err(denial) = bounds::refuse_form_upload(req.method(), req.headers()) {
        denied = Some(denial.clone());
        refuse(denial.into())
    } else if link::is_link(&req) {
        door.links.answer(&req, &info).await
    } else {
        let admitted =
            guard::admit(req.headers(), req.uri().query(), &door.region).and_then(|parsed| {
                let batch = batch::declared(req.method(), &parsed.query, req.headers())?;
                Ok((parsed, batch))
            });
        match admitted {
            Err(e) => refuse(e),
            Ok((parsed, batch)) => match pass(door, req, &info, parsed, batch).await {
                Ok(res) => res,
                Err(e) => refuse(e),
            },
        }
    };
    // Refused before any decision (bad signature, unknown key, SigV2, ...): still one record,
    // with the error the client was given, whether the front door or s3s refused it.
    if info.decision.get().is_none() {
        let (error_code, error) = refusal.or_else(|| error_of(&res)).unzip();
        let body = S3Record::Refused(Refusal {
            at: door.clock.now(),
            request: info.facts(),
            method: info.method.clone(),
            path: info.path.clone(),
            status: res.status().as_u16(),
            error_code,
            error: error.flatten(),
            denial: denied,
        });
        if let Err(e) = door.audit.append(body).await {
            tracing::error!(error = %e, "a refused request could not be recorded");
        }
    }
    let status = res.status().as_u16();
    let answered = error_of(&res);
    let mut res = res;
    if let Ok(id) = hyper::header::HeaderValue::from_str(&info.request_id) {
        res.headers_mut().insert("x-amz-request-id", id);
    }
    res.map(|body| {
        s3s::Body::http_body(
            record::Completing::new(body, door.audit.clone(), info, status, door.clock.clone())
                .answered(answered),
        )
    })
}

/// The code and message of an error answer, read back from its body, which s3s holds whole:
/// for the trail, which says what the client was told (s3s makes some refusals itself: a
/// signature that does not match, a query it cannot read).
fn error_of(res: &s3s::HttpResponse) -> Option<(String, Option<String>)> {
    if res.status().is_success() {
        return None;
    }
    let body = res.body().bytes()?;
    let text = std::str::from_utf8(&body).ok()?;
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = text[start..].find(&format!("</{name}>"))?;
        let value = &text[start..start + end];
        Some(
            value
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    Some((element("Code")?, element("Message")))
}

/// What the client is told when s3s answered for itself: a body that failed a check as s3s
/// read it (a delete batch's digest) is the check's error, not s3s's `InternalError`; and a
/// refusal s3s sends bare (a signature that does not match, malformed XML) gets a sentence
/// saying why (DESIGN rule 8). Other answers pass as they are.
fn explained(res: s3s::HttpResponse, verdict: &transfer::Verdict) -> s3s::HttpResponse {
    if res.status().is_server_error() && verdict.get().is_some() {
        return guard::error_response(denial::stopped_or(verdict, s3s::s3_error!(InternalError)));
    }
    let Some((code, None)) = error_of(&res) else {
        return res;
    };
    let (code, why) = match code.as_str() {
        "SignatureDoesNotMatch" => (
            s3s::S3ErrorCode::SignatureDoesNotMatch,
            "the request's signature does not match the one its credential's secret makes: check the secret key and that nothing changed the request after it was signed",
        ),
        "MalformedXML" => (
            s3s::S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ),
        "InvalidBucketName" => (
            s3s::S3ErrorCode::InvalidBucketName,
            "The specified bucket is not valid: bucket names are 3 to 63 lowercase letters, digits, '-' or '.'",
        ),
        _ => return res,
    };
    let mut e = s3s::S3Error::with_message(code, why);
    e.set_status_code(res.status());
    guard::error_response(e)
}

/// Hands a request that passed the front door to s3s, with its parse and its trail facts;
/// refused here when an upload sent without a length cannot be held whole, or when a
/// decision whose record was still on its way to disk could not be recorded.
async fn pass(
    door: &FrontDoor,
    req: hyper::Request<Incoming>,
    info: &record::RequestInfo,
    parsed: parse::Parsed,
    batch: Option<batch::Batch>,
) -> Result<s3s::HttpResponse, s3s::S3Error> {
    let (mut parts, body) = req.into_parts();
    let body = if incoming::is_unsized_upload(&parts.method, &parts.headers) {
        s3s::Body::from(incoming::held_whole(&mut parts.headers, body).await?)
    } else {
        incoming::drained_on_drop(&parts.headers, body)
    };
    let verdict = info.verdict.clone();
    parts.extensions.insert(verdict.clone());
    parts.extensions.insert(info.clone());
    parts.extensions.insert(parsed);
    let body = if guard::is_aws_chunked(&parts.headers) {
        let limited: s3s::stream::DynByteStream =
            Box::pin(guard::ChunkLimit::new(body, verdict.clone()));
        s3s::Body::from(limited)
    } else {
        body
    };
    let body = match batch {
        Some(batch) => batch.verified(body, &verdict),
        None => body,
    };
    let res = match door
        .service
        .call(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(res) => explained(res, &verdict),
        Err(e) => {
            tracing::error!(error = ?e, "s3 service failed");
            guard::error_response(s3s::s3_error!(InternalError))
        }
    };
    // A read that started at the backend while its decision went to disk is answered only
    // once the decision is there (the operation waited already, unless s3s answered first).
    info.durable.wait(&info.decision).await?;
    Ok(res)
}

/// Serves an s3s service with no front door: only for the in-process directory backend,
/// which sits on loopback behind the gateway.
pub async fn serve_plain(listener: TcpListener, service: S3Service) {
    crate::listen::serve(
        Listener::plain(listener),
        move |_, req: hyper::Request<Incoming>| {
            let service = service.clone();
            async move {
                let res = service.call(req.map(s3s::Body::from)).await;
                Ok::<_, Infallible>(
                    res.unwrap_or_else(|_| guard::error_response(s3s::s3_error!(InternalError))),
                )
            }
        },
    )
    .await;
}

//! Authentication (access key → derived secret) and authorization: every request is bound to
//! its grant, checked against the clock and the operation table, and every resource its
//! parsed input names is checked again before the backend is called.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    AbortMultipartUploadInput, CompleteMultipartUploadInput, CopyObjectInput, CopySource,
    DeleteObjectsInput, ListMultipartUploadsInput, ListObjectVersionsInput, ListObjectsInput,
    ListObjectsV2Input, ListPartsInput, UploadPartCopyInput, UploadPartInput,
};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, s3_error};

use super::ops::{Target, rule_for};
use super::uploads::{Named, Uploads};
use crate::duration::rfc3339;
use crate::grant::book::BindError;
use crate::grant::{Action, Grant, GrantState, Grants, LiveGrant};
use crate::record::{Body, Decision, DeniedAfterParse, Kind, S3 as S3Record};

/// Looks up the secret of a Sesame credential. Unknown keys never reach the backend.
pub struct Auth(pub Arc<Grants>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret_for(access_key) {
            Some(secret) => Ok(SecretKey::from(secret.expose())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "access key {access_key} is not a Sesame credential: ask for a grant and use the credentials it prints"
            )),
        }
    }
}

/// The grant a request was allowed under, kept in the request's extensions for the
/// per-operation checks and for cutting transfers when the grant ends.
#[derive(Clone)]
pub struct Allowed {
    pub grant: LiveGrant,
}

/// The grant a request's credential names, whether or not it allowed the request: for the
/// audit record, never as proof of authorization (that is [`Allowed`]).
#[derive(Clone)]
struct Claimed(Grant);

pub struct Access {
    pub grants: Arc<Grants>,
    pub audit: crate::audit::AuditLog,
    /// Usage per grant, checked against its limits.
    pub meter: Arc<crate::grant::usage::Meter>,
    /// The upload ids Sesame handed out, each bound to its key and principal.
    pub uploads: Arc<Uploads>,
}

#[async_trait::async_trait]
impl S3Access for Access {
    /// Decides, then makes the decision durable in the audit trail before anything is
    /// served; if it cannot be recorded, the request is refused.
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let decision = self.decide(cx);
        if decision.is_err()
            && let Some(Claimed(grant)) = cx.extensions_mut().get::<Claimed>()
        {
            self.meter.denied(&grant.id);
        }
        let info = cx
            .extensions_mut()
            .get::<super::record::RequestInfo>()
            .cloned();
        let body = decision_record(cx, info.as_ref(), &decision, self.grants.clock().now());
        match self.audit.append(body).await {
            Ok(seq) => {
                if let Some(info) = info {
                    let _ = info.decision.set(seq);
                }
                decision
            }
            Err(e) => Err(S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                e.to_string(),
            )),
        }
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        let result = require_list_prefix(req, &req.input.bucket, req.input.prefix.as_deref());
        self.after_parse(req, result).await
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        let result = require_list_prefix(req, &req.input.bucket, req.input.prefix.as_deref());
        self.after_parse(req, result).await
    }

    async fn list_object_versions(
        &self,
        req: &mut S3Request<ListObjectVersionsInput>,
    ) -> S3Result<()> {
        let result = require_list_prefix(req, &req.input.bucket, req.input.prefix.as_deref());
        self.after_parse(req, result).await
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        let result = require_list_prefix(req, &req.input.bucket, req.input.prefix.as_deref());
        self.after_parse(req, result).await
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let result = require_copy_source(req, &req.input.copy_source);
        self.after_parse(req, result).await
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self
            .require_bound_upload(req, &i.bucket, &i.key, &i.upload_id)
            .and_then(|()| require_copy_source(req, &i.copy_source));
        self.after_parse(req, result).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result).await
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result).await
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let result = allowed_grant(req).and_then(|grant| {
            req.input.delete.objects.iter().try_for_each(|object| {
                require_key(&grant, &req.input.bucket, &object.key, Action::Delete)
            })
        });
        self.after_parse(req, result).await
    }
}

impl Access {
    /// A check on the parsed input (list prefix, copy source, each deleted key) that refuses
    /// a request already recorded as allowed: the trail gets a record saying so, pointing at
    /// the decision it overrides.
    async fn after_parse<T>(&self, req: &S3Request<T>, result: S3Result<()>) -> S3Result<()> {
        let Err(e) = &result else { return result };
        let info = req.extensions.get::<super::record::RequestInfo>();
        let body = Kind::DeniedAfterParse(DeniedAfterParse {
            at: self.grants.clock().now(),
            request: info.map(super::record::RequestInfo::facts),
            decision: info.and_then(|i| i.decision.get().copied()),
            error_code: e.code().as_str().to_owned(),
            error: e.message().map(str::to_owned),
        });
        if let Err(audit) = self.audit.append(body).await {
            tracing::error!(error = %audit, "a refusal could not be recorded");
        }
        result
    }

    /// The upload id must be one Sesame handed out for this very key to this principal.
    fn require_bound_upload<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<()> {
        let grant = allowed_grant(req)?;
        let named = Named {
            bucket,
            key,
            upload_id,
        };
        self.uploads.require(named, &grant)
    }

    fn decide(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let token = session_token(cx);
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are refused: sign requests with the credentials of a Sesame grant"
            ));
        };
        let bound = self
            .grants
            .bind(&credentials.access_key, token.as_deref())
            .map_err(bind_error)?;
        let grant = bound.grant.borrow().clone();
        cx.extensions_mut().insert(Claimed(grant.clone()));
        check_window(&grant, self.grants.clock().now())?;

        let op = cx.s3_op().name();
        let Some(rule) = rule_for(op) else {
            return Err(s3_error!(
                AccessDenied,
                "operation {op} is not allowed through Sesame"
            ));
        };
        require_action(&grant, rule.action)?;
        match (rule.target, cx.s3_path()) {
            (Target::Root, S3Path::Root) => {}
            (Target::Bucket, S3Path::Bucket { bucket }) => require_bucket(&grant, bucket)?,
            (Target::Object, S3Path::Object { bucket, key }) => {
                require_key(&grant, bucket, key, rule.action)?;
            }
            (_, path) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "operation {op} does not apply to {}",
                    describe(path)
                ));
            }
        }
        self.meter
            .admit(&grant, rule.effect, self.grants.clock().now())
            .map_err(|why| S3Error::with_message(S3ErrorCode::AccessDenied, why))?;
        cx.extensions_mut().insert(Allowed { grant: bound.grant });
        Ok(())
    }
}

/// The trail's record of a decision: who, under which grant, what, and the outcome.
fn decision_record(
    cx: &mut S3AccessContext<'_>,
    info: Option<&super::record::RequestInfo>,
    decision: &S3Result<()>,
    now: time::OffsetDateTime,
) -> Body {
    let (bucket, key) = match cx.s3_path() {
        S3Path::Root => (None, None),
        S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
        S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
    };
    let grant = cx.extensions_mut().get::<Claimed>().map(|c| c.0.clone());
    let decided = Decision {
        at: now,
        request: info.map(super::record::RequestInfo::facts),
        op: cx.s3_op().name().to_owned(),
        access_key: cx.credentials().map(|c| c.access_key.clone()),
        principal: grant.as_ref().map(|g| g.principal.clone()),
        grant: grant.as_ref().map(|g| g.id.clone()),
        bucket,
        key,
        error_code: decision
            .as_ref()
            .err()
            .map(|e| e.code().as_str().to_owned()),
        error: decision
            .as_ref()
            .err()
            .and_then(|e| e.message().map(str::to_owned)),
    };
    match decision {
        Ok(()) => S3Record::Allowed(decided),
        Err(_) => S3Record::Denied(decided),
    }
    .into()
}

/// The session token travels as a header, or as a query parameter in presigned URLs; the
/// front door's one parse found it (and refused a request carrying both). Without that parse
/// there is no token, and the credential is refused.
fn session_token(cx: &mut S3AccessContext<'_>) -> Option<String> {
    cx.extensions_mut()
        .get::<super::parse::Parsed>()
        .and_then(|parsed| parsed.session_token.clone())
}

/// The decoded value of one query parameter of a control-API request.
#[must_use]
pub fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn bind_error(e: BindError) -> S3Error {
    match e {
        BindError::UnknownKey => {
            s3_error!(InvalidAccessKeyId, "access key is not a Sesame credential")
        }
        BindError::MissingToken => s3_error!(
            InvalidToken,
            "the session token is missing: Sesame credentials come with one (AWS_SESSION_TOKEN)"
        ),
        BindError::BadToken => s3_error!(
            InvalidToken,
            "the session token does not belong to this access key"
        ),
    }
}

/// Time is checked on every request, whatever a background task may or may not have done.
pub fn check_window(grant: &Grant, now: time::OffsetDateTime) -> S3Result<()> {
    match grant.state(now) {
        GrantState::Active => Ok(()),
        GrantState::Scheduled => Err(s3_error!(
            AccessDenied,
            "grant {} starts at {}; it is not active yet",
            grant.id,
            rfc3339(grant.starts_at)
        )),
        GrantState::Expired => Err(s3_error!(
            ExpiredToken,
            "grant {} expired at {}; ask for access again",
            grant.id,
            rfc3339(grant.expires_at)
        )),
        GrantState::Revoked => Err(s3_error!(
            AccessDenied,
            "grant {} was revoked at {}{}",
            grant.id,
            rfc3339(grant.revoked_at.unwrap_or(grant.expires_at)),
            grant
                .revoked_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        )),
    }
}

fn describe_grant(grant: &Grant) -> String {
    format!(
        "grant {} ({}, {})",
        grant.id,
        grant.scope.uri(),
        grant.scope.actions_label()
    )
}

fn require_action(grant: &Grant, action: Action) -> S3Result<()> {
    if grant.scope.allows(action) {
        return Ok(());
    }
    Err(s3_error!(
        AccessDenied,
        "{} does not allow {action}",
        describe_grant(grant)
    ))
}

fn require_bucket(grant: &Grant, bucket: &str) -> S3Result<()> {
    if grant.scope.bucket == bucket {
        return Ok(());
    }
    Err(s3_error!(
        AccessDenied,
        "{} does not cover bucket {bucket}",
        describe_grant(grant)
    ))
}

fn require_key(grant: &Grant, bucket: &str, key: &str, action: Action) -> S3Result<()> {
    require_action(grant, action)?;
    if let Err(reason) = crate::grant::scope::check_key_segments(key) {
        return Err(S3Error::with_message(S3ErrorCode::AccessDenied, reason));
    }
    if key.trim().is_empty() {
        // The backend client cannot send such a key; say so instead of failing inside it.
        return Err(s3_error!(
            InvalidArgument,
            "keys made only of whitespace are not supported through Sesame"
        ));
    }
    if grant.scope.covers_key(bucket, key) {
        return Ok(());
    }
    Err(s3_error!(
        AccessDenied,
        "{} does not cover s3://{bucket}/{key} for {action}",
        describe_grant(grant)
    ))
}

fn allowed_grant<T>(req: &S3Request<T>) -> S3Result<Grant> {
    // `check` always runs first and inserts this; its absence means a wiring bug: deny.
    let allowed = req
        .extensions
        .get::<Allowed>()
        .ok_or_else(|| s3_error!(AccessDenied, "request was not authorised"))?;
    Ok(allowed.grant.borrow().clone())
}

fn require_list_prefix<T>(req: &S3Request<T>, bucket: &str, prefix: Option<&str>) -> S3Result<()> {
    let grant = allowed_grant(req)?;
    let prefix = prefix.unwrap_or("");
    if grant.scope.covers_list_prefix(bucket, prefix) {
        return Ok(());
    }
    Err(s3_error!(
        AccessDenied,
        "{} does not cover listing s3://{bucket}/{prefix}: list with a prefix inside the grant",
        describe_grant(&grant)
    ))
}

fn require_copy_source<T>(req: &S3Request<T>, source: &CopySource) -> S3Result<()> {
    let grant = allowed_grant(req)?;
    match source {
        CopySource::Bucket { bucket, key, .. } => require_key(&grant, bucket, key, Action::Read),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(s3_error!(
            AccessDenied,
            "copy sources must be bucket/key; access points and outposts are refused"
        )),
    }
}

fn describe(path: &S3Path) -> String {
    match path {
        S3Path::Root => "the service root".into(),
        S3Path::Bucket { bucket } => format!("bucket {bucket}"),
        S3Path::Object { bucket, key } => format!("s3://{bucket}/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            url_query_value("a=1&X-Amz-Security-Token=ab%2Bc%3D", "X-Amz-Security-Token")
                .as_deref(),
            Some("ab+c=")
        );
        assert_eq!(url_query_value("a=1", "b"), None);
    }
}

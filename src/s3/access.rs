//! Authentication (access key → derived secret) and authorization: every request is bound to
//! its grant, checked against the clock and the operation table, and every resource its
//! parsed input names is checked again before the backend is called.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    AbortMultipartUploadInput, CompleteMultipartUploadInput, CopyObjectInput, DeleteObjectsInput,
    ListMultipartUploadsInput, ListObjectVersionsInput, ListObjectsInput, ListObjectsV2Input,
    ListPartsInput, UploadPartCopyInput, UploadPartInput,
};
use s3s::path::S3Path;
use s3s::{S3Error, S3Request, S3Result};

use super::decision::{decide, require_copy_source, require_key, require_list_prefix};
use super::denial::{Denial, Recorded};
use super::meter::admit;
use super::record::commit;
use super::uploads::{Named, Uploads};
use crate::grant::{Grants, LiveGrant};
use crate::model::{Action, Grant};
use crate::record::{Body, Decision, DeniedAfterParse, Kind, S3 as S3Record};

/// Looks up the secret of a Sesame credential. Unknown keys never reach the backend.
pub struct Auth(pub Arc<Grants>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret_for_any(access_key).await {
            Some(secret) => Ok(SecretKey::from(secret.expose())),
            None => Err(Denial::UnknownKey {
                access_key: access_key.into(),
            }
            .into()),
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
        let decision = self.authorize(cx);
        let info = cx
            .extensions_mut()
            .get::<super::record::RequestInfo>()
            .cloned();
        let denied_under = cx
            .extensions_mut()
            .get::<Claimed>()
            .filter(|_| decision.is_err())
            .map(|Claimed(grant)| grant.id.clone());
        let body = decision_record(cx, info.as_ref(), &decision, self.grants.clock().now());
        // A read may start at the backend while its decision goes to disk: the operation
        // and the front door wait for it before anything is answered.
        let reads = matches!(cx.s3_op().name(), "GetObject" | "HeadObject");
        if let (Ok(()), true, Some(info)) = (&decision, reads, info.as_ref()) {
            return super::record::commit_started(&self.audit, info, body).map_err(S3Error::from);
        }
        commit(
            &self.audit,
            &self.meter,
            info.as_ref(),
            denied_under.as_deref(),
            body,
        )
        .await?;
        decision.map_err(S3Error::from)
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        let result = allowed_grant(req).and_then(|grant| {
            require_list_prefix(&grant, &req.input.bucket, req.input.prefix.as_deref())
        });
        self.after_parse(req, result).await
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        let result = allowed_grant(req).and_then(|grant| {
            require_list_prefix(&grant, &req.input.bucket, req.input.prefix.as_deref())
        });
        self.after_parse(req, result).await
    }

    async fn list_object_versions(
        &self,
        req: &mut S3Request<ListObjectVersionsInput>,
    ) -> S3Result<()> {
        let result = allowed_grant(req).and_then(|grant| {
            require_list_prefix(&grant, &req.input.bucket, req.input.prefix.as_deref())
        });
        self.after_parse(req, result).await
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        let result = allowed_grant(req).and_then(|grant| {
            require_list_prefix(&grant, &req.input.bucket, req.input.prefix.as_deref())
        });
        self.after_parse(req, result).await
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let result = allowed_grant(req)
            .and_then(|grant| require_copy_source(&grant, &req.input.copy_source));
        self.after_parse(req, result).await
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result.await).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self
            .require_bound_upload(req, &i.bucket, &i.key, &i.upload_id)
            .await
            .and_then(|()| allowed_grant(req))
            .and_then(|grant| require_copy_source(&grant, &i.copy_source));
        self.after_parse(req, result).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result.await).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result.await).await
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        let i = &req.input;
        let result = self.require_bound_upload(req, &i.bucket, &i.key, &i.upload_id);
        self.after_parse(req, result.await).await
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
    async fn after_parse<T>(&self, req: &S3Request<T>, result: Result<(), Denial>) -> S3Result<()> {
        let Err(denial) = result else { return Ok(()) };
        let info = req.extensions.get::<super::record::RequestInfo>();
        let body = Kind::DeniedAfterParse(DeniedAfterParse {
            at: self.grants.clock().now(),
            request: info.map(super::record::RequestInfo::facts),
            decision: info.and_then(|i| i.decision.get().copied()),
            error_code: denial.code().as_str().to_owned(),
            error: Some(denial.message()),
            denial: Some(denial.clone()),
        });
        if let Err(audit) = self.audit.append(body).await {
            tracing::error!(error = %audit, "a refusal could not be recorded");
        }
        Err(denial.into())
    }

    /// The upload id must be one Sesame handed out for this very key to this principal.
    async fn require_bound_upload<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), Denial> {
        let grant = allowed_grant(req)?;
        let named = Named {
            bucket,
            key,
            upload_id,
        };
        self.uploads.require(named, &grant).await
    }

    /// Binds the credential to its grant, runs the pure [`decide`], then counts the request
    /// against the grant's limits.
    fn authorize(&self, cx: &mut S3AccessContext<'_>) -> Result<(), Denial> {
        let token = session_token(cx);
        let Some(credentials) = cx.credentials() else {
            return Err(Denial::Anonymous);
        };
        self.grants.freshness().check()?;
        let bound = self
            .grants
            .bind(&credentials.access_key, token.as_deref())?;
        let grant = bound.grant.borrow().clone();
        cx.extensions_mut().insert(Claimed(grant.clone()));
        let op = cx.s3_op().name();
        let now = self.grants.clock().now();
        let rule = decide(&grant, op, cx.s3_path(), now)?;
        admit(&self.meter, &grant, rule.effect, now)?;
        cx.extensions_mut().insert(Allowed { grant: bound.grant });
        Ok(())
    }
}

/// The trail's record of a decision: who, under which grant, what, and the outcome.
fn decision_record(
    cx: &mut S3AccessContext<'_>,
    info: Option<&super::record::RequestInfo>,
    decision: &Result<(), Denial>,
    now: time::OffsetDateTime,
) -> Body {
    let (bucket, key) = match cx.s3_path() {
        S3Path::Root => (None, None),
        S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
        S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
    };
    let grant = cx.extensions_mut().get::<Claimed>().map(|c| c.0.clone());
    let Recorded {
        error_code,
        error,
        denial,
    } = Recorded::of(decision.as_ref().err());
    let decided = Decision {
        at: now,
        request: info.map(super::record::RequestInfo::facts),
        op: cx.s3_op().name().to_owned(),
        access_key: cx.credentials().map(|c| c.access_key.clone()),
        principal: grant.as_ref().map(|g| g.principal.clone()),
        grant: grant.as_ref().map(|g| g.id.clone()),
        bucket,
        key,
        error_code,
        error,
        denial,
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

fn allowed_grant<T>(req: &S3Request<T>) -> Result<Grant, Denial> {
    // `check` always runs first and inserts this; its absence means a wiring bug: deny.
    let allowed = req.extensions.get::<Allowed>().ok_or(Denial::NotDecided)?;
    Ok(allowed.grant.borrow().clone())
}

#[cfg(test)]
mod tests;

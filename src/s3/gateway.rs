//! The S3 operations Sesame lets through, each forwarded to the backend by `s3s_aws::Proxy`.
//! Bodies are wrapped on the way: cut when the grant ends, uploads checksum-verified. Only the
//! operations in `ops::TABLE` are implemented; every other one answers NotImplemented (and
//! was already denied by the access check).

#[allow(clippy::wildcard_imports)] // the inputs and outputs of every operation in the table
use s3s::dto::*;
use s3s::stream::DynByteStream;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3s_aws::Proxy;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::access::Allowed;
use super::backend::{client_error, with_validator_headers};
use super::declared::{Declarations, Settled, declarations};
use super::denial::stopped_or;
use super::meter::tally;
use super::record::RequestInfo;
use super::transfer::{
    Algorithm, ChecksumChecked, Expected, Guarded, Verdict, download, grant_end,
};
use super::uploads::{Uploads, keep_in_scope};
use crate::clock::SharedClock;
use crate::grant::usage::{Direction, Meter};

pub struct Gateway {
    backend: Proxy,
    /// The same backend, for the requests Sesame makes on its own (undoing an upload).
    client: aws_sdk_s3::Client,
    clock: SharedClock,
    meter: Arc<Meter>,
    uploads: Arc<Uploads>,
}

impl Gateway {
    pub fn new(
        client: aws_sdk_s3::Client,
        clock: SharedClock,
        meter: Arc<Meter>,
        uploads: Arc<Uploads>,
    ) -> Self {
        Gateway {
            backend: Proxy::from(client.clone()),
            client,
            clock,
            meter,
            uploads,
        }
    }

    /// Binds a new upload id to its key and starter before the client learns it. If that
    /// cannot be made durable, the upload is aborted on the backend and the client refused.
    async fn bind_upload(
        &self,
        allowed: &Allowed,
        bucket: String,
        key: String,
        upload_id: &str,
    ) -> S3Result<()> {
        let grant = allowed.grant.borrow().clone();
        let binding = crate::store::UploadBinding {
            bucket,
            key,
            upload_id: upload_id.to_owned(),
            principal: grant.principal,
            grant_id: grant.id,
            created_at: self.clock.now(),
        };
        let Err(e) = self.uploads.bind(binding.clone()).await else {
            return Ok(());
        };
        tracing::error!(error = %e, bucket = %binding.bucket, key = %binding.key, "an upload could not be bound; aborting it");
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&binding.bucket)
            .key(&binding.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::error!(error = ?e, upload_id, "the unbound upload could not be aborted");
        }
        Err(s3_error!(
            ServiceUnavailable,
            "the upload could not be recorded, so it was not started; try again"
        ))
    }

    /// Forgets an upload the backend has finished; its id is refused from now on either way.
    async fn release_upload(&self, bucket: &str, upload_id: &str) {
        if let Err(e) = self.uploads.release(bucket, upload_id).await {
            tracing::error!(error = %e, bucket, upload_id, "a finished upload could not be forgotten");
        }
    }

    /// Wraps an upload body: its declarations first (they see the bytes as s3s decoded them),
    /// then the checksum, then the grant guard. The first two hold back the last chunk, so a
    /// backend receives a complete body only once everything it declared matched.
    fn guard_upload(
        &self,
        allowed: Allowed,
        body: Option<StreamingBlob>,
        expected: Option<Expected>,
        declared: Declarations,
        verdict: &Verdict,
        bytes_in: Arc<AtomicU64>,
    ) -> Option<StreamingBlob> {
        let mut stream: DynByteStream = body?.into();
        stream = Box::pin(Settled::new(stream, declared, verdict.clone()));
        if let Some(expected) = expected {
            stream = Box::pin(ChecksumChecked::new(stream, expected, verdict.clone()));
        }
        let tally = tally(&self.meter, &allowed.grant, Direction::Write, bytes_in);
        let guarded =
            Guarded::new(stream, allowed.grant, self.clock.clone(), verdict.clone()).metered(tally);
        Some(StreamingBlob::new(guarded))
    }
}

/// Wraps the body of a `PutObject` or `UploadPart` request, whose inputs name their checksum
/// fields alike, and returns the verdict shared with the wrappers.
macro_rules! guard_upload_body {
    ($gateway:expr, $req:ident) => {{
        let input = &$req.input;
        let sums = header_sums(
            input.checksum_crc32.as_ref(),
            input.checksum_crc32c.as_ref(),
            input.checksum_crc64nvme.as_ref(),
            input.checksum_sha1.as_ref(),
            input.checksum_sha256.as_ref(),
        );
        let expected = expected_checksum(&$req, sums);
        let declared = declarations(&$req.headers)?;
        let allowed = allowed(&$req)?;
        let verdict = verdict_of(&$req);
        let bytes_in = bytes_in_of(&$req);
        $req.input.body = $gateway.guard_upload(
            allowed,
            $req.input.body.take(),
            expected,
            declared,
            &verdict,
            bytes_in,
        );
        verdict
    }};
}

/// The request's count of bytes received, for its completion record.
fn bytes_in_of<T>(req: &S3Request<T>) -> Arc<AtomicU64> {
    req.extensions
        .get::<RequestInfo>()
        .map(|i| i.bytes_in.clone())
        .unwrap_or_default()
}

/// The verdict the front door put in the request, shared by every stream wrapping its body.
fn verdict_of<T>(req: &S3Request<T>) -> Verdict {
    req.extensions.get::<Verdict>().cloned().unwrap_or_default()
}

/// The trail's facts about the request, put on it by the front door.
fn info_of<T>(req: &S3Request<T>) -> Option<RequestInfo> {
    req.extensions.get::<RequestInfo>().cloned()
}

/// Does `work` at the backend while the request's decision record goes to disk
/// ([`super::record::commit_started`]), and returns once both are done: a read's first byte
/// comes after its decision is durable, and a decision that cannot be recorded refuses it.
async fn once_durable<R>(info: Option<RequestInfo>, work: impl Future<Output = R>) -> S3Result<R> {
    let durable = async {
        match &info {
            Some(info) => info.durable.wait(&info.decision).await,
            None => Ok(()),
        }
    };
    let (done, durable) = tokio::join!(work, durable);
    durable?;
    Ok(done)
}

fn allowed<T>(req: &S3Request<T>) -> S3Result<Allowed> {
    req.extensions
        .get::<Allowed>()
        .cloned()
        .ok_or_else(|| super::denial::Denial::NotDecided.into())
}

/// The fixed ACL of an object answered by Sesame: owned by `principal`, with full control.
fn owner_full_control(principal: &str) -> GetObjectAclOutput {
    let owner = Owner {
        display_name: Some(principal.to_owned()),
        id: Some(principal.to_owned()),
    };
    GetObjectAclOutput {
        grants: Some(vec![Grant {
            grantee: Some(Grantee {
                display_name: owner.display_name.clone(),
                email_address: None,
                id: owner.id.clone(),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            }),
            permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
        }]),
        owner: Some(owner),
        request_charged: None,
    }
}

/// The checksum headers an upload declared, in the order S3 reads them.
type HeaderSums<'a> = [(Algorithm, Option<&'a String>); 5];

fn header_sums<'a>(
    crc32: Option<&'a String>,
    crc32c: Option<&'a String>,
    crc64nvme: Option<&'a String>,
    sha1: Option<&'a String>,
    sha256: Option<&'a String>,
) -> HeaderSums<'a> {
    [
        (Algorithm::Crc32, crc32),
        (Algorithm::Crc32c, crc32c),
        (Algorithm::Crc64Nvme, crc64nvme),
        (Algorithm::Sha1, sha1),
        (Algorithm::Sha256, sha256),
    ]
}

fn expected_checksum<T>(req: &S3Request<T>, header_sums: HeaderSums<'_>) -> Option<Expected> {
    if let Some((algorithm, Some(value))) = header_sums.into_iter().find(|(_, v)| v.is_some()) {
        return Some(Expected::Header {
            algorithm,
            value: value.clone(),
        });
    }
    let announced = req.headers.get("x-amz-trailer")?.to_str().ok()?;
    let algorithm = Algorithm::from_header(announced)?;
    let trailers = req.trailing_headers.clone()?;
    Some(Expected::Trailer {
        algorithm,
        trailers,
    })
}

// Uploads drop their canned ACL before forwarding: the front door lets only the ones that
// grant nothing beyond the owner through (`forwarded::harmless_acl`), and no ACL reaches
// the backend at all.

/// Removes the `aws-chunked` token: it describes how the client framed the body to Sesame,
/// and the backend client adds its own when it frames the body again.
fn strip_aws_chunked(content_encoding: &mut Option<String>) {
    if let Some(value) = content_encoding.as_deref() {
        let kept: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        *content_encoding = (!kept.is_empty()).then(|| kept.join(","));
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let bucket = allowed(&req)?.grant.borrow().scope.bucket.clone();
        let mut resp = self.backend.list_buckets(req).await.map_err(client_error)?;
        if let Some(buckets) = resp.output.buckets.as_mut() {
            buckets.retain(|b| b.name.as_deref() == Some(bucket.as_str()));
        }
        Ok(resp)
    }

    async fn list_objects(
        &self,
        mut req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        req.input.delimiter = super::directory::delimiter_or_none(req.input.delimiter.take());
        self.backend.list_objects(req).await.map_err(client_error)
    }

    async fn list_objects_v2(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        req.input.delimiter = super::directory::delimiter_or_none(req.input.delimiter.take());
        self.backend
            .list_objects_v2(req)
            .await
            .map_err(client_error)
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.backend
            .list_object_versions(req)
            .await
            .map_err(client_error)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let allowed = allowed(&req)?;
        let bucket = req.input.bucket.clone();
        let mut resp = self
            .backend
            .list_multipart_uploads(req)
            .await
            .map_err(client_error)?;
        keep_in_scope(&mut resp.output, &bucket, &allowed.grant.borrow().scope);
        Ok(resp)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.backend.list_parts(req).await.map_err(client_error)
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.backend.head_bucket(req).await.map_err(client_error)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.backend
            .get_bucket_location(req)
            .await
            .map_err(client_error)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let allowed = allowed(&req)?;
        let verdict = verdict_of(&req);
        let tally = tally(&self.meter, &allowed.grant, Direction::Read, Arc::default());
        let mut resp = once_durable(info_of(&req), self.backend.get_object(req))
            .await?
            .map_err(with_validator_headers::<aws_sdk_s3::operation::get_object::GetObjectError>)
            .map_err(client_error)?;
        if let Some(body) = resp.output.body.take() {
            let ends = grant_end(allowed.grant, self.clock.clone());
            let primed = download(body.into(), ends, &verdict, tally).await?;
            resp.output.body = Some(StreamingBlob::new(primed));
        }
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        once_durable(info_of(&req), self.backend.head_object(req))
            .await?
            .map_err(with_validator_headers::<aws_sdk_s3::operation::head_object::HeadObjectError>)
            .map_err(client_error)
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.backend
            .get_object_attributes(req)
            .await
            .map_err(client_error)
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.backend
            .get_object_tagging(req)
            .await
            .map_err(client_error)
    }

    /// Answered here, as S3-compatible stores without ACLs answer: the object (which must
    /// exist) is the caller's, with full control. Nothing about the backend's own ACLs is
    /// read or told, and ACL writes are not in the table of operations at all.
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let principal = allowed(&req)?.grant.borrow().principal.clone();
        let head = req.map_input(|acl| {
            let mut head = HeadObjectInput::builder();
            head.set_bucket(acl.bucket);
            head.set_key(acl.key);
            head.set_version_id(acl.version_id);
            head.build().expect("bucket and key are set")
        });
        self.backend
            .head_object(head)
            .await
            .map_err(with_validator_headers::<aws_sdk_s3::operation::head_object::HeadObjectError>)
            .map_err(client_error)?;
        Ok(S3Response::new(owner_full_control(&principal)))
    }

    /// Refused as S3-compatible stores without ACLs refuse it, with 501: access is by grant,
    /// and no ACL ever reaches the backend. Clients that copy an object's ACL after copying
    /// it (s3cmd cp) take 501 as "this store has none" and carry on.
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        allowed(&req)?;
        Err(s3_error!(
            NotImplemented,
            "Sesame keeps no ACLs: access to s3://{}/{} is by grant",
            req.input.bucket,
            req.input.key
        ))
    }

    /// A bucket the caller holds a grant in exists and is, as far as the caller can tell,
    /// theirs: answered as S3 answers its owner (clients such as rclone create the bucket
    /// before uploading and stop at any other error). Nothing reaches the backend: creating
    /// buckets is its operator's business.
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        allowed(&req)?;
        Err(s3_error!(
            BucketAlreadyOwnedByYou,
            "bucket {} exists and your grant is in it; Sesame never creates buckets",
            req.input.bucket
        ))
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        strip_aws_chunked(&mut req.input.content_encoding);
        req.input.acl = None;
        let verdict = guard_upload_body!(self, req);
        self.backend
            .put_object(req)
            .await
            .map_err(|e| stopped_or(&verdict, e))
    }

    async fn create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        strip_aws_chunked(&mut req.input.content_encoding);
        req.input.acl = None;
        let allowed = allowed(&req)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let resp = self
            .backend
            .create_multipart_upload(req)
            .await
            .map_err(client_error)?;
        let Some(upload_id) = resp.output.upload_id.as_deref() else {
            return Err(s3_error!(
                InternalError,
                "the backend started an upload without an upload id"
            ));
        };
        self.bind_upload(&allowed, bucket, key, upload_id).await?;
        Ok(resp)
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let verdict = guard_upload_body!(self, req);
        self.backend
            .upload_part(req)
            .await
            .map_err(|e| stopped_or(&verdict, e))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.backend
            .upload_part_copy(req)
            .await
            .map_err(client_error)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, upload_id) = (req.input.bucket.clone(), req.input.upload_id.clone());
        let resp = self
            .backend
            .complete_multipart_upload(req)
            .await
            .map_err(client_error)?;
        self.release_upload(&bucket, &upload_id).await;
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (bucket, upload_id) = (req.input.bucket.clone(), req.input.upload_id.clone());
        let resp = self
            .backend
            .abort_multipart_upload(req)
            .await
            .map_err(client_error)?;
        self.release_upload(&bucket, &upload_id).await;
        Ok(resp)
    }

    async fn copy_object(
        &self,
        mut req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        strip_aws_chunked(&mut req.input.content_encoding);
        req.input.acl = None;
        self.backend.copy_object(req).await.map_err(client_error)
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.backend
            .put_object_tagging(req)
            .await
            .map_err(client_error)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.backend.delete_object(req).await.map_err(client_error)
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.backend
            .delete_object_tagging(req)
            .await
            .map_err(client_error)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        super::batch::check_size(&req.input.delete)?;
        self.backend.delete_objects(req).await.map_err(client_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_removed_and_other_encodings_kept() {
        let mut ce = Some("aws-chunked".to_owned());
        strip_aws_chunked(&mut ce);
        assert_eq!(ce, None);
        let mut ce = Some("gzip, aws-chunked".to_owned());
        strip_aws_chunked(&mut ce);
        assert_eq!(ce.as_deref(), Some("gzip"));
        let mut ce = None;
        strip_aws_chunked(&mut ce);
        assert_eq!(ce, None);
    }
}

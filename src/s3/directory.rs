//! Makes the embedded directory backend (s3s-fs) answer as S3 does where s3s-fs does not.
//! [`Directory`] wraps `s3s_fs::FileSystem` and delegates every operation it implements;
//! only the inputs and answers that s3s-fs gets wrong are fixed here, for this backend only,
//! one concern per submodule:
//!
//! - here: a folder is not an object (to read or to copy from), and an object whose key
//!   ends in `/` (a folder marker) is one a directory cannot hold: writing one is refused at
//!   once, not made a folder that every later read answers `NoSuchKey`;
//! - `listing`: delimiters, `Marker`, `ETags` and `encoding-type=url` in listings;
//! - `uploads`: `ListMultipartUploads`;
//! - `conditional`: `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`;
//! - `parts`: `partNumber` and `x-amz-mp-parts-count`;
//! - `writes`: writes into a missing bucket, and an object and a folder of one name;
//! - `layout`: the files s3s-fs keeps beside the objects, which the others read.

mod conditional;
mod layout;
mod listing;
mod parts;
mod uploads;
mod writes;

use std::path::{Path, PathBuf};

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CopySource,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use conditional::Conditions;

/// The embedded directory backend, answering as S3 does.
pub struct Directory {
    fs: s3s_fs::FileSystem,
    /// The same root s3s-fs resolves keys under, to tell folders from objects.
    root: PathBuf,
}

impl Directory {
    /// Serves `dir`, which must exist.
    pub fn new(dir: &Path) -> std::io::Result<Directory> {
        let root = std::fs::canonicalize(dir)?;
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| std::io::Error::other(format!("{}: {e:?}", root.display())))?;
        Ok(Directory { fs, root })
    }

    /// Whether `key` names a folder in `bucket`: s3s-fs opens it as a file and fails with a
    /// 500, where S3 has no such object. Keys that do not resolve plainly are left to s3s-fs.
    async fn is_folder(&self, bucket: &str, key: &str) -> bool {
        let Some(path) = layout::plain_path(&self.root, bucket, key) else {
            return false;
        };
        tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir())
    }

    /// A copy from a folder finds no object, as on S3 (s3s-fs failed it with a 500).
    async fn refuse_folder_source(&self, source: &CopySource) -> S3Result<()> {
        match source {
            CopySource::Bucket { bucket, key, .. } if self.is_folder(bucket, key).await => {
                Err(no_such_key(key))
            }
            _ => Ok(()),
        }
    }

    /// What s3s-fs answers a plain HEAD of `key`: its `ETag`, Last-Modified and length.
    async fn head(&self, bucket: &str, key: &str) -> S3Result<HeadObjectOutput> {
        let mut head = HeadObjectInput::builder();
        head.set_bucket(bucket.to_owned());
        head.set_key(key.to_owned());
        let input = head.build().expect("bucket and key are set");
        Ok(self.fs.head_object(own_request(input)).await?.output)
    }
}

/// A request this wrapper makes of s3s-fs itself (never authenticated: s3s-fs checks none).
fn own_request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: hyper::Method::HEAD,
        uri: hyper::Uri::default(),
        headers: hyper::HeaderMap::new(),
        extensions: hyper::http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// An empty `delimiter=` (rclone, minio-py, s3fs send it for recursive listings) means no
/// delimiter on S3; s3s-fs would group by the first character instead. Every backend gets it.
#[must_use]
pub fn delimiter_or_none(delimiter: Option<String>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty())
}

fn no_such_key(key: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchKey, format!("no object at key {key:?}"))
}

/// S3 stores a zero-byte object at `folder/`; a directory cannot (s3s-fs would make a
/// folder, which is no object), so writing one is refused.
fn refuse_folder_object(key: &str) -> S3Result<()> {
    if !key.ends_with('/') {
        return Ok(());
    }
    Err(S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!(
            "the directory backend cannot store an object whose key ends in '/' ({key:?}, a folder marker); a folder exists there once an object is stored under it"
        ),
    ))
}

/// The preconditions of a GET or HEAD input, taken out of it (s3s-fs would ignore them).
macro_rules! take_conditions {
    ($input:expr) => {
        Conditions {
            if_match: $input.if_match.take(),
            if_none_match: $input.if_none_match.take(),
            if_modified_since: $input.if_modified_since.take(),
            if_unmodified_since: $input.if_unmodified_since.take(),
        }
    };
}

/// Refuses the request when its preconditions do not hold for the object `head` describes.
fn check(conditions: &Conditions, head: &HeadObjectOutput) -> S3Result<()> {
    let (Some(etag), Some(modified)) = (&head.e_tag, &head.last_modified) else {
        return Ok(());
    };
    conditional::decide(conditions, etag, modified)
        .map_err(|refusal| conditional::answer(refusal, etag, modified))
}

/// Every operation s3s-fs implements, passed straight through where it answers as S3 does
/// (an operation left out here would answer NotImplemented); the fixes follow the plain ones.
#[async_trait::async_trait]
impl S3 for Directory {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    /// A key that holds no object (a folder, a path under an object) is deleted as S3
    /// deletes a missing key; folders emptied by a delete go with it.
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        if !writes::deletable(&self.root, &bucket, &key).await {
            writes::check_bucket(&self.root, &bucket).await?;
            return Ok(S3Response::new(DeleteObjectOutput::default()));
        }
        let deleted = self.fs.delete_object(req).await?;
        writes::prune(&self.root, &bucket, &key).await;
        Ok(deleted)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        writes::delete_batch(&self.fs, &self.root, req).await
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        if self.is_folder(&bucket, &key).await {
            return Err(no_such_key(&key));
        }
        let conditions = take_conditions!(req.input);
        let part = req.input.part_number.take();
        if conditions.any() || part.is_some() {
            let head = self.head(&bucket, &key).await?;
            check(&conditions, &head)?;
            if let Some(part) = part {
                return parts::get_part(&self.fs, &self.root, req, part).await;
            }
        }
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        if self.is_folder(&bucket, &key).await {
            return Err(no_such_key(&key));
        }
        let conditions = take_conditions!(req.input);
        let part = req.input.part_number.take();
        let mut head = self.fs.head_object(req).await?;
        check(&conditions, &head.output)?;
        if let Some(part) = part {
            parts::head_part(&self.root, &bucket, &key, part, &mut head.output).await?;
        }
        Ok(head)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        refuse_folder_object(&req.input.key)?;
        writes::check_writable(&self.root, &req.input.bucket, &req.input.key).await?;
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        refuse_folder_object(&req.input.key)?;
        writes::check_writable(&self.root, &req.input.bucket, &req.input.key).await?;
        self.fs.create_multipart_upload(req).await
    }

    /// Checked again (a folder or an object may have appeared since the upload started),
    /// and the sizes of the parts recorded for `partNumber`.
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        writes::check_writable(&self.root, &bucket, &key).await?;
        let sizes = parts::listed_sizes(&self.root, &req.input).await;
        let mut done = self.fs.complete_multipart_upload(req).await?;
        // s3s-fs has already written the object; its answer only waits in a future.
        if let Some(answer) = done.output.future.take() {
            done.output = answer.await?;
        }
        if let (Some(sizes), Some(etag)) = (sizes, &done.output.e_tag) {
            parts::record(&self.root, &bucket, &key, etag.value(), &sizes).await;
        }
        Ok(done)
    }

    /// A folder source is no object (s3s-fs failed copying it with a 500); a folder
    /// destination is no object it can store.
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        refuse_folder_object(&req.input.key)?;
        self.refuse_folder_source(&req.input.copy_source).await?;
        writes::check_writable(&self.root, &req.input.bucket, &req.input.key).await?;
        self.fs.copy_object(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.refuse_folder_source(&req.input.copy_source).await?;
        self.fs.upload_part_copy(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_v1(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_v2(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Ok(S3Response::new(uploads::list(&self.root, req.input).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_delimiter_is_none() {
        assert_eq!(delimiter_or_none(Some(String::new())), None);
        assert_eq!(delimiter_or_none(Some("/".into())), Some("/".into()));
        assert_eq!(delimiter_or_none(None), None);
    }
}

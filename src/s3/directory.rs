//! Makes the embedded directory backend (s3s-fs) answer as S3 does where s3s-fs does not: a
//! folder is not an object (to read or to copy from), any delimiter string groups keys,
//! `delimiter=` means none, and `encoding-type=url` encodes the names listed. An object whose key ends in `/` (a folder marker) is one a
//! directory cannot hold: writing one is refused at once, not made a folder that every later
//! read answers `NoSuchKey`.
//!
//! [`Directory`] wraps `s3s_fs::FileSystem` and delegates every operation it implements;
//! only the inputs and answers that s3s-fs gets wrong are fixed here, for this backend only.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput,
    CopySource, CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, EncodingType,
    GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput, GetObjectOutput,
    HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput,
    ListBucketsOutput, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, Object, PutObjectInput, PutObjectOutput,
    UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

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
        let path = Path::new(bucket).join(key);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return false;
        }
        tokio::fs::metadata(self.root.join(path))
            .await
            .is_ok_and(|m| m.is_dir())
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

/// Whether a listing asked for `encoding-type=url`.
fn url_encoded(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// A name as S3 writes it under `encoding-type=url`: every byte but the unreserved ones and
/// `/` as `%XX` (a space as `%20`, which every client's decoding reads as a space).
fn url_encode(name: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(name, KEEP).to_string()
}

/// Every key and common prefix of a listing, encoded.
fn encode_names(objects: &mut Option<Vec<Object>>, prefixes: &mut Option<Vec<CommonPrefix>>) {
    for object in objects.iter_mut().flatten() {
        object.key = object.key.as_deref().map(url_encode);
    }
    for common in prefixes.iter_mut().flatten() {
        common.prefix = common.prefix.as_deref().map(url_encode);
    }
}

/// One page of a listing grouped by a delimiter: what a `ListObjectsV2` answers.
#[derive(Debug, Default, PartialEq)]
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<String>,
    /// The last entry of a truncated page, where the next one resumes.
    next: Option<String>,
}

/// One entry of a grouped listing, in key order.
enum Entry {
    Object(Box<Object>),
    Prefix,
}

/// Groups `objects` (every key under `prefix`) by `delimiter` as S3 does, with the whole
/// delimiter kept at the end of each common prefix, and pages them after `after`. s3s-fs
/// slices the key one byte past the delimiter's start, which panics inside a multi-byte
/// delimiter and cuts a multi-character one short, so the grouping is done here.
fn page(
    objects: Vec<Object>,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    max_keys: usize,
) -> Page {
    let mut entries = BTreeMap::new();
    for object in objects {
        let key = object.key.clone().unwrap_or_default();
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        match rest.find(delimiter) {
            Some(at) => {
                let common = format!("{prefix}{}", &rest[..at + delimiter.len()]);
                entries.entry(common).or_insert(Entry::Prefix);
            }
            None => {
                entries.insert(key, Entry::Object(Box::new(object)));
            }
        }
    }
    let mut rest = entries
        .into_iter()
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .peekable();
    let mut page = Page::default();
    let mut last = None;
    for (key, entry) in rest.by_ref().take(max_keys) {
        match entry {
            Entry::Object(object) => page.objects.push(*object),
            Entry::Prefix => page.prefixes.push(key.clone()),
        }
        last = Some(key);
    }
    if max_keys > 0 && rest.peek().is_some() {
        page.next = last;
    }
    page
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

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
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

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if self.is_folder(&req.input.bucket, &req.input.key).await {
            return Err(no_such_key(&req.input.key));
        }
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        if self.is_folder(&req.input.bucket, &req.input.key).await {
            return Err(no_such_key(&req.input.key));
        }
        self.fs.head_object(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        refuse_folder_object(&req.input.key)?;
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        refuse_folder_object(&req.input.key)?;
        self.fs.create_multipart_upload(req).await
    }

    /// A folder source is no object (s3s-fs failed copying it with a 500); a folder
    /// destination is no object it can store.
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        refuse_folder_object(&req.input.key)?;
        self.refuse_folder_source(&req.input.copy_source).await?;
        self.fs.copy_object(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.refuse_folder_source(&req.input.copy_source).await?;
        self.fs.upload_part_copy(req).await
    }

    /// Answered by this wrapper's `ListObjectsV2`, as s3s-fs itself does, plus the `Marker`
    /// S3 echoes back.
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let marker = req.input.marker.clone();
        let url = url_encoded(req.input.encoding_type.as_ref());
        let mut v2 = self.list_grouped(req.map_input(Into::into)).await?;
        self.fill_etags(&mut v2.output).await?;
        let mut v1 = v2.map_output(|v2| ListObjectsOutput {
            contents: v2.contents,
            common_prefixes: v2.common_prefixes,
            delimiter: v2.delimiter,
            encoding_type: v2.encoding_type,
            name: v2.name,
            prefix: v2.prefix,
            marker,
            max_keys: v2.max_keys,
            is_truncated: v2.is_truncated,
            next_marker: v2.next_continuation_token,
            ..Default::default()
        });
        if url {
            let o = &mut v1.output;
            encode_names(&mut o.contents, &mut o.common_prefixes);
            for name in [
                &mut o.prefix,
                &mut o.delimiter,
                &mut o.marker,
                &mut o.next_marker,
            ] {
                *name = name.as_deref().map(url_encode);
            }
        }
        Ok(v1)
    }

    /// [`Directory::list_grouped`], with names encoded when the client asked for
    /// `encoding-type=url` (s3s-fs says it encoded them and does not).
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let url = url_encoded(req.input.encoding_type.as_ref());
        let mut v2 = self.list_grouped(req).await?;
        self.fill_etags(&mut v2.output).await?;
        if url {
            let o = &mut v2.output;
            encode_names(&mut o.contents, &mut o.common_prefixes);
            for name in [&mut o.prefix, &mut o.delimiter, &mut o.start_after] {
                *name = name.as_deref().map(url_encode);
            }
        }
        Ok(v2)
    }
}

impl Directory {
    /// Gives every listed object its `ETag`, as S3 lists them (s3s-fs leaves it out, and
    /// s3cmd sync, for one, compares by it): the one a HEAD of the object answers.
    async fn fill_etags(&self, listing: &mut ListObjectsV2Output) -> S3Result<()> {
        let Some(bucket) = listing.name.clone() else {
            return Ok(());
        };
        for object in listing.contents.iter_mut().flatten() {
            let Some(key) = object.key.clone().filter(|_| object.e_tag.is_none()) else {
                continue;
            };
            let mut head = HeadObjectInput::builder();
            head.set_bucket(bucket.clone());
            head.set_key(key);
            let head = S3Request {
                input: head.build().expect("bucket and key are set"),
                method: hyper::Method::HEAD,
                uri: hyper::Uri::default(),
                headers: hyper::HeaderMap::new(),
                extensions: hyper::http::Extensions::new(),
                credentials: None,
                region: None,
                service: None,
                trailing_headers: None,
            };
            // An object deleted since it was listed keeps no ETag, as it keeps no object.
            if let Ok(answer) = self.fs.head_object(head).await {
                object.e_tag = answer.output.e_tag;
            }
        }
        Ok(())
    }

    /// Without a delimiter s3s-fs lists as S3 does. With one, every key under the prefix is
    /// read from s3s-fs unpaged and grouped and paged by [`page`]. Names are as stored.
    async fn list_grouped(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let Some(delimiter) = delimiter_or_none(req.input.delimiter.take()) else {
            return self.fs.list_objects_v2(req).await;
        };
        let continuation = req.input.continuation_token.take();
        let start_after = req.input.start_after.take();
        let max_keys = req.input.max_keys.replace(i32::MAX).unwrap_or(1000);
        // s3s-fs matches keys against the prefix without its leading slashes.
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let trimmed = prefix.trim_start_matches('/').to_owned();
        let after = match (continuation.as_deref(), start_after.as_deref()) {
            (Some(token), Some(start)) => Some(token.max(start)),
            (Some(after), None) | (None, Some(after)) => Some(after),
            (None, None) => None,
        };
        let mut every = self.fs.list_objects_v2(req).await?;
        let objects = every.output.contents.take().unwrap_or_default();
        let page = page(
            objects,
            &trimmed,
            &delimiter,
            after,
            usize::try_from(max_keys).unwrap_or(0),
        );
        let count = page.objects.len() + page.prefixes.len();
        Ok(every.map_output(|every| ListObjectsV2Output {
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            max_keys: Some(max_keys),
            is_truncated: Some(page.next.is_some()),
            contents: (!page.objects.is_empty()).then_some(page.objects),
            common_prefixes: (!page.prefixes.is_empty()).then(|| {
                page.prefixes
                    .into_iter()
                    .map(|prefix| CommonPrefix {
                        prefix: Some(prefix),
                    })
                    .collect()
            }),
            continuation_token: continuation,
            next_continuation_token: page.next,
            delimiter: Some(delimiter),
            start_after,
            ..every
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(keys: &[&str]) -> Vec<Object> {
        keys.iter()
            .map(|k| Object {
                key: Some((*k).to_owned()),
                ..Default::default()
            })
            .collect()
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.objects
            .iter()
            .filter_map(|o| o.key.as_deref())
            .collect()
    }

    const KEYS: &[&str] = &["a/b", "a/c/d", "café→x", "caféy", "p", "x--1", "x--2"];

    #[test]
    fn a_multi_byte_delimiter_ends_each_common_prefix_whole() {
        // `é` is two bytes: s3s-fs sliced between them and panicked.
        let page = page(objects(KEYS), "", "é", None, 1000);
        assert_eq!(keys(&page), ["a/b", "a/c/d", "p", "x--1", "x--2"]);
        assert_eq!(page.prefixes, ["café"]);
        assert_eq!(page.next, None);
        let arrows = super::page(objects(KEYS), "caf", "→", None, 1000);
        assert_eq!(keys(&arrows), ["caféy"]);
        assert_eq!(arrows.prefixes, ["café→"]);
    }

    #[test]
    fn a_multi_character_delimiter_is_kept_whole() {
        let page = page(objects(KEYS), "", "--", None, 1000);
        assert_eq!(page.prefixes, ["x--"]);
    }

    #[test]
    fn pages_resume_after_the_last_entry_and_skip_a_whole_common_prefix() {
        // Page 1 ends on the prefix `a/`; page 2 resumes after it, never inside it.
        let first = page(objects(KEYS), "", "/", None, 1);
        assert_eq!(first.prefixes, ["a/"]);
        assert_eq!(first.next.as_deref(), Some("a/"));
        let second = page(objects(KEYS), "", "/", first.next.as_deref(), 2);
        // In byte order, as S3 sorts: `y` (0x79) before `→` (0xE2 0x86 0x92).
        assert_eq!(keys(&second), ["caféy", "café→x"]);
        assert_eq!(second.next.as_deref(), Some("café→x"));
        let last = page(objects(KEYS), "", "/", Some("x--1"), 2);
        assert_eq!(keys(&last), ["x--2"]);
        assert_eq!(last.next, None);
    }

    #[test]
    fn no_keys_asked_for_is_an_empty_page_that_is_not_truncated() {
        assert_eq!(page(objects(KEYS), "", "/", None, 0), Page::default());
    }

    #[test]
    fn url_encoded_names_keep_their_slashes_and_nothing_else() {
        assert_eq!(
            url_encode("team-a/a b+c%é~.txt"),
            "team-a/a%20b%2Bc%25%C3%A9~.txt"
        );
        assert!(url_encoded(Some(&EncodingType::from_static("url"))));
        assert!(!url_encoded(None));
    }

    #[test]
    fn an_empty_delimiter_is_none() {
        assert_eq!(delimiter_or_none(Some(String::new())), None);
        assert_eq!(delimiter_or_none(Some("/".into())), Some("/".into()));
        assert_eq!(delimiter_or_none(None), None);
    }
}

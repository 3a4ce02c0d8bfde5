//! Objects on the embedded directory backend answer as on Garage: conditional GETs and HEADs
//! (412 and 304 in the order RFC 7232 gives, as S3 applies it), the part count of an object
//! made by a multipart upload, writes into a bucket that does not exist, and a key that is
//! both an object and a folder (which a directory cannot store: refused at write time with
//! a clear code, never a 500, and deletes of either never fail).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use sesame::model::Action::{Delete as Remove, List, Read, Write};

use crate::harness::{BackendKind, Ctx, unique_bucket};

crate::on_every_backend!(
    conditional_gets_and_heads_answer_412_and_304_in_rfc_order,
    a_multipart_object_tells_its_part_count_and_serves_each_part,
    writes_into_a_missing_bucket_are_no_such_bucket,
    an_object_and_a_folder_of_one_name_never_answer_500,
);

/// The HTTP status and S3 error code of a failed call.
fn status_and_code<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>) {
    let status = err.raw_response().map(|r| r.status().as_u16());
    (status, err.code().map(str::to_owned))
}

/// One conditional request: which headers it sends (named after them).
#[allow(clippy::struct_field_names)]
#[derive(Debug, Default, Clone)]
struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<DateTime>,
    if_unmodified_since: Option<DateTime>,
}

/// The status a GET answers under `conditions` (200, 304, 412), the `ETag` a 304 carries, and
/// the status of the same HEAD.
async fn conditional(
    s3: &Client,
    bucket: &str,
    key: &str,
    c: &Conditions,
) -> (u16, Option<String>, u16) {
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_if_match(c.if_match.clone())
        .set_if_none_match(c.if_none_match.clone())
        .set_if_modified_since(c.if_modified_since)
        .set_if_unmodified_since(c.if_unmodified_since)
        .send()
        .await;
    let (get, etag) = match got {
        Ok(out) => {
            let body = out.body.collect().await.expect("body").into_bytes();
            assert_eq!(&body[..], b"content", "{c:?}");
            (200, None)
        }
        Err(e) => {
            let raw = e.raw_response().expect("an answer");
            let etag = raw.headers().get("etag").map(str::to_owned);
            (raw.status().as_u16(), etag)
        }
    };
    let headed = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_if_match(c.if_match.clone())
        .set_if_none_match(c.if_none_match.clone())
        .set_if_modified_since(c.if_modified_since)
        .set_if_unmodified_since(c.if_unmodified_since)
        .send()
        .await;
    let head = match headed {
        Ok(_) => 200,
        Err(e) => e.raw_response().expect("an answer").status().as_u16(),
    };
    (get, etag, head)
}

/// If-Match and If-Unmodified-Since fail with 412, If-None-Match and If-Modified-Since with
/// 304; If-Match decides over If-Unmodified-Since and If-None-Match over If-Modified-Since,
/// and a 412 comes before a 304. Before the fix the fs backend ignored them all (200).
async fn conditional_gets_and_heads_answer_412_and_304_in_rfc_order(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("f.txt", b"content")]).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read]);
    let s3 = ctx.sdk(&cred);
    let head = s3.head_object().bucket(&b).key("f.txt").send().await;
    let head = head.expect("HEAD f.txt");
    let etag = head.e_tag().expect("an ETag").to_owned();
    let modified = head.last_modified().expect("a Last-Modified").secs();
    let other = "\"0123456789abcdef0123456789abcdef\"".to_owned();
    let (before, after) = (
        DateTime::from_secs(modified - 3600),
        DateTime::from_secs(modified + 3600),
    );
    let when = |if_match: Option<&String>,
                if_none_match: Option<&String>,
                if_modified_since: Option<DateTime>,
                if_unmodified_since: Option<DateTime>| Conditions {
        if_match: if_match.cloned(),
        if_none_match: if_none_match.cloned(),
        if_modified_since,
        if_unmodified_since,
    };
    let star = "*".to_owned();
    // (what, conditions, status of GET and HEAD)
    #[rustfmt::skip]
    let rows: Vec<(&str, Conditions, u16)> = vec![
        ("no condition",                                 Conditions::default(),                         200),
        ("If-Match: its ETag",                           when(Some(&etag), None, None, None),           200),
        ("If-Match: *",                                  when(Some(&star), None, None, None),           200),
        ("If-Match: another ETag",                       when(Some(&other), None, None, None),          412),
        ("If-Unmodified-Since: after it was written",    when(None, None, None, Some(after)),           200),
        ("If-Unmodified-Since: before it was written",   when(None, None, None, Some(before)),          412),
        ("If-Match holds: If-Unmodified-Since ignored",  when(Some(&etag), None, None, Some(before)),   200),
        ("If-None-Match: its ETag",                      when(None, Some(&etag), None, None),           304),
        ("If-None-Match: another ETag",                  when(None, Some(&other), None, None),          200),
        ("If-Modified-Since: after it was written",      when(None, None, Some(after), None),           304),
        ("If-Modified-Since: before it was written",     when(None, None, Some(before), None),          200),
        ("If-None-Match fails: If-Modified-Since ignored", when(None, Some(&other), Some(after), None), 200),
        ("If-None-Match holds over If-Modified-Since",   when(None, Some(&etag), Some(before), None),   304),
        ("a failed If-Match before a 304",               when(Some(&other), Some(&etag), None, None),   412),
    ];
    let mut failures = Vec::new();
    for (what, conditions, status) in rows {
        let (get, validator, head) = conditional(&s3, &b, "f.txt", &conditions).await;
        if (get, head) != (status, status) {
            failures.push(format!("{what}: GET {get}, HEAD {head}, expected {status}"));
        }
        // A 304 carries the validator the client compares with its copy.
        if get == 304 && validator.as_deref() != Some(etag.as_str()) {
            failures.push(format!("{what}: the 304 carries ETag {validator:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const PART: usize = 5 * 1024 * 1024;

/// `big.bin` made of three parts (5 MiB, 5 MiB, 1 KiB), and its bytes.
async fn three_part_object(s3: &Client, bucket: &str) -> Vec<u8> {
    let data: Vec<u8> = (0..2 * PART + 1024).map(|i| (i % 251) as u8).collect();
    let id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("big.bin")
        .send()
        .await
        .expect("start the upload")
        .upload_id
        .expect("an upload id");
    let mut parts = Vec::new();
    for (n, chunk) in (1..).zip(data.chunks(PART)) {
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key("big.bin")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("a part ETag"))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key("big.bin")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete the upload");
    data
}

/// HEAD and GET with `partNumber` answer `x-amz-mp-parts-count` and the part's own bytes, as
/// S3 does (rclone and the AWS CLI ask for it to copy with the same parts). Before the fix
/// the fs backend ignored `partNumber`: no count, and the whole object.
async fn a_multipart_object_tells_its_part_count_and_serves_each_part(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, Write]);
    let s3 = ctx.sdk(&cred);
    let data = three_part_object(&s3, &b).await;
    let head = s3.head_object().bucket(&b).key("big.bin");
    let head = head.part_number(1).send().await.expect("HEAD part 1");
    assert_eq!(head.parts_count(), Some(3), "{head:?}");
    assert_eq!(head.content_length(), Some(PART as i64), "{head:?}");
    let total = data.len();
    for (n, range) in [(1, 0..PART), (2, PART..2 * PART), (3, 2 * PART..total)] {
        let got = s3
            .get_object()
            .bucket(&b)
            .key("big.bin")
            .part_number(n)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET part {n}: {e:?}"));
        assert_eq!(got.parts_count(), Some(3), "part {n}");
        let expected_range = format!("bytes {}-{}/{total}", range.start, range.end - 1);
        assert_eq!(
            got.content_range(),
            Some(expected_range.as_str()),
            "part {n}"
        );
        let body = got.body.collect().await.expect("body").into_bytes();
        assert!(body[..] == data[range], "part {n}: other bytes");
    }
    // The whole object is still one object.
    let whole = s3.head_object().bucket(&b).key("big.bin").send().await;
    assert_eq!(whole.expect("HEAD").content_length(), Some(total as i64));
    // A part it does not have is refused, by the client's fault.
    let err = s3
        .get_object()
        .bucket(&b)
        .key("big.bin")
        .part_number(4)
        .send()
        .await
        .expect_err("part 4 of 3");
    let status = status_and_code(&err).0.unwrap_or_default();
    assert!((400..500).contains(&status), "part 4: {err:?}");
}

/// S3 answers `NoSuchBucket` to a write into a bucket that does not exist; the fs backend made
/// the bucket's folder on the way (a grant on a missing bucket could create it).
async fn writes_into_a_missing_bucket_are_no_such_bucket(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let source = ctx.bucket_with(&[("src.txt", b"data")]).await;
    let missing = unique_bucket();
    let cred = ctx.grant(&format!("s3://{missing}/"), &[Read, List, Write]);
    let s3 = ctx.sdk(&cred);
    let put = s3
        .put_object()
        .bucket(&missing)
        .key("a/b.txt")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .map(drop)
        .map_err(|e| status_and_code(&e));
    let started = s3
        .create_multipart_upload()
        .bucket(&missing)
        .key("c.bin")
        .send()
        .await
        .map(drop)
        .map_err(|e| status_and_code(&e));
    let no_such_bucket = Err((Some(404), Some("NoSuchBucket".to_owned())));
    assert_eq!(put, no_such_bucket, "PutObject");
    assert_eq!(started, no_such_bucket, "CreateMultipartUpload");
    // A copy needs read on the source too: one grant covering both buckets' names is not
    // possible, so the operator's own client copies into the missing bucket.
    let copied = ctx
        .admin
        .copy_object()
        .bucket(&missing)
        .key("copy.txt")
        .copy_source(format!("{source}/src.txt"))
        .send()
        .await
        .map(drop)
        .map_err(|e| status_and_code(&e));
    assert_eq!(copied, no_such_bucket, "CopyObject");
    // Nothing made the bucket.
    let listed = s3.list_objects_v2().bucket(&missing).send().await;
    let err = listed.expect_err("the bucket does not exist");
    assert_eq!(
        status_and_code(&err),
        (Some(404), Some("NoSuchBucket".into()))
    );
    if kind == BackendKind::Fs {
        let folder = ctx.dir.path().join("backend").join(&missing);
        assert!(!folder.exists(), "{} was made", folder.display());
    }
}

/// On S3 `a` and `a/b` are two objects; a directory cannot hold a file and a folder at one
/// path. The fs backend answered 500 (to the write, and to a `DeleteObjects` naming either);
/// now the second write is refused at once with a code saying which way it clashes, and
/// deletes of any of these keys succeed as on S3. Garage stores both.
async fn an_object_and_a_folder_of_one_name_never_answer_500(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("file", b"an object"), ("dir/inner.txt", b"inside")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, List, Write, Remove]);
    let s3 = ctx.sdk(&cred);
    let put = |key: &'static str| {
        let s3 = s3.clone();
        let b = b.clone();
        async move {
            s3.put_object()
                .bucket(&b)
                .key(key)
                .body(ByteStream::from_static(b"new"))
                .send()
                .await
                .map(drop)
                .map_err(|e| status_and_code(&e))
        }
    };
    let under_an_object = put("file/below.txt").await;
    let deeper = put("file/x/y.txt").await;
    let over_a_folder = put("dir").await;
    let copied = s3
        .copy_object()
        .bucket(&b)
        .key("dir")
        .copy_source(format!("{b}/file"))
        .send()
        .await
        .map(drop)
        .map_err(|e| status_and_code(&e));
    match kind {
        BackendKind::Fs => {
            let parent_is_object = Err((Some(400), Some("XMinioParentIsObject".to_owned())));
            let exists_as_folder = Err((Some(409), Some("XMinioObjectExistsAsDirectory".into())));
            assert_eq!(under_an_object, parent_is_object, "PUT file/below.txt");
            assert_eq!(deeper, parent_is_object, "PUT file/x/y.txt");
            assert_eq!(over_a_folder, exists_as_folder, "PUT dir");
            assert_eq!(copied, exists_as_folder, "copy to dir");
            let got = s3.get_object().bucket(&b).key("file").send().await;
            let body = got.expect("GET file").body.collect().await.unwrap();
            assert_eq!(&body.into_bytes()[..], b"an object");
        }
        BackendKind::Garage | BackendKind::Moto => {
            for (what, stored) in [
                ("file/below.txt", under_an_object),
                ("file/x/y.txt", deeper),
                ("dir", over_a_folder),
                ("copy to dir", copied),
            ] {
                assert_eq!(stored, Ok(()), "{what}");
            }
        }
    }
    // Deleting any of these names, one by one or in a batch, never fails.
    for key in ["dir", "file/below.txt", "file/x/y.txt", "file/", "dir/"] {
        let deleted = s3.delete_object().bucket(&b).key(key).send().await;
        let deleted = deleted.map(drop).map_err(|e| status_and_code(&e));
        assert_eq!(deleted, Ok(()), "DeleteObject {key}");
    }
    let batch: Vec<ObjectIdentifier> = ["dir", "file/below.txt", "file/x/y.txt", "file", "dir/"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
        .collect();
    let deleted = s3
        .delete_objects()
        .bucket(&b)
        .delete(Delete::builder().set_objects(Some(batch)).build().unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteObjects: {:?}", status_and_code(&e)));
    assert!(deleted.errors().is_empty(), "{deleted:?}");
    assert_eq!(deleted.deleted().len(), 5, "{deleted:?}");
    // `file` is gone, `dir/inner.txt` is still there; and now `file/below.txt` and `dir`
    // can be written where nothing clashes any more.
    let listed = s3.list_objects_v2().bucket(&b).send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/inner.txt"]);
    assert_eq!(put("file/below.txt").await, Ok(()), "PUT file/below.txt");
    s3.delete_object()
        .bucket(&b)
        .key("dir/inner.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(put("dir").await, Ok(()), "PUT dir once its folder is empty");
}

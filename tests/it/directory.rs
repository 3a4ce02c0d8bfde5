//! Listings and folder keys answer as S3 answers, on the embedded directory backend as on
//! Garage: a folder is not an object, any delimiter string groups keys, and an empty
//! `delimiter=` (rclone, minio-py, s3fs) means a recursive listing. A folder marker (an
//! object whose key ends in `/`) is stored where the backend can store one, and refused at
//! once, with an S3 error, where it cannot. `ListObjects` (v1) pages by `Marker`, and uploads
//! in progress are listed (`ListMultipartUploads`) by prefix, page by page.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sesame::model::Action::{List, Read, Write};

use crate::harness::{BackendKind, Ctx};

crate::on_every_backend!(
    a_folder_key_is_no_such_key_not_internal_error,
    a_multi_byte_delimiter_groups_keys_and_never_breaks_the_backend,
    a_multi_character_delimiter_is_kept_whole_in_common_prefixes,
    an_empty_delimiter_lists_every_key_recursively,
    a_folder_marker_is_stored_or_refused_at_once,
    list_objects_v1_pages_by_marker,
    uploads_in_progress_are_listed_by_prefix_and_paged,
);

/// The keys every listing below is made of: one folder, keys around `é`, and plain keys.
const KEYS: &[&str] = &[
    "a/b.txt",
    "a/c/d.txt",
    "plain",
    "reé/x",
    "reéy",
    "x--1",
    "x--2",
];

async fn seeded(kind: BackendKind) -> (Ctx, String, sesame::grant::IssuedCredential) {
    let ctx = Ctx::start(kind).await;
    let objects: Vec<(&str, &[u8])> = KEYS.iter().map(|k| (*k, b"data".as_slice())).collect();
    let b = ctx.bucket_with(&objects).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, List]);
    (ctx, b, cred)
}

/// The HTTP status and S3 error code of a failed call.
fn status_and_code<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>) {
    let status = err.raw_response().map(|r| r.status().as_u16());
    (status, err.code().map(str::to_owned))
}

/// `a/` exists only because `a/b.txt` does (a directory on the fs backend): GET and HEAD of
/// `a` and `a/` find no object, as on S3. Before the fix the fs backend answered 500.
async fn a_folder_key_is_no_such_key_not_internal_error(kind: BackendKind) {
    let (ctx, b, cred) = seeded(kind).await;
    let s3 = ctx.sdk(&cred);
    for key in ["a", "a/", "a/c"] {
        let err = s3
            .get_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            status_and_code(&err),
            (Some(404), Some("NoSuchKey".to_owned())),
            "GET {key}: {err:?}"
        );
        let err = s3
            .head_object()
            .bucket(&b)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status_and_code(&err).0, Some(404), "HEAD {key}: {err:?}");
    }
    // The object inside the folder is still there.
    let got = s3.get_object().bucket(&b).key("a/b.txt").send().await;
    assert_eq!(got.expect("GET a/b.txt").content_length(), Some(4));
}

/// The HTTP status, S3 error code and message of a failed call.
fn refusal<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>, String) {
    let (status, code) = status_and_code(err);
    (status, code, err.message().unwrap_or_default().to_owned())
}

/// Keys and common prefixes of a `ListObjectsV2`, all pages, `max_keys` per page.
async fn list_v2(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    delimiter: &str,
    max_keys: i32,
) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    let mut token: Option<String> = None;
    for _page in 0..20 {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .delimiter(delimiter)
            .max_keys(max_keys)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("list with delimiter {delimiter:?}: {e:?}"));
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return (keys, prefixes);
        }
    }
    panic!("listing with delimiter {delimiter:?} never ended");
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// S3 accepts any delimiter string. Before the fix `é` panicked the fs server's task (it
/// sliced the key one byte past the delimiter's start) and the client got a 500.
async fn a_multi_byte_delimiter_groups_keys_and_never_breaks_the_backend(kind: BackendKind) {
    let (ctx, b, cred) = seeded(kind).await;
    let s3 = ctx.sdk(&cred);
    let expected = (
        strings(&["a/b.txt", "a/c/d.txt", "plain", "x--1", "x--2"]),
        strings(&["reé"]),
    );
    assert_eq!(list_v2(&s3, &b, "é", 1000).await, expected);
    // Page by page, resuming after a common prefix, the same entries.
    assert_eq!(list_v2(&s3, &b, "é", 1).await, expected);
    let v1 = s3
        .list_objects()
        .bucket(&b)
        .delimiter("→")
        .send()
        .await
        .expect("ListObjects with delimiter →");
    assert_eq!(v1.contents().len(), KEYS.len(), "{v1:?}");
    // The gateway and the backend still serve afterwards.
    assert_eq!(
        list_v2(&s3, &b, "/", 1000).await,
        (
            strings(&["plain", "reéy", "x--1", "x--2"]),
            strings(&["a/", "reé/"])
        )
    );
}

/// A common prefix ends with the whole delimiter. Before the fix the fs backend cut `--` to
/// its first byte and answered `x-`.
async fn a_multi_character_delimiter_is_kept_whole_in_common_prefixes(kind: BackendKind) {
    let (ctx, b, cred) = seeded(kind).await;
    let s3 = ctx.sdk(&cred);
    assert_eq!(
        list_v2(&s3, &b, "--", 1000).await,
        (
            strings(&["a/b.txt", "a/c/d.txt", "plain", "reé/x", "reéy"]),
            strings(&["x--"])
        )
    );
}

/// aws-sdk-s3 sends `delimiter=` for an empty delimiter, as rclone, minio-py and s3fs do for
/// recursive listings. Before the fix the fs backend took it for a real delimiter and listed
/// one-letter common prefixes (`a`, `p`, `r`, `x`) and no keys.
async fn an_empty_delimiter_lists_every_key_recursively(kind: BackendKind) {
    let (ctx, b, cred) = seeded(kind).await;
    let s3 = ctx.sdk(&cred);
    assert_eq!(
        list_v2(&s3, &b, "", 1000).await,
        (strings(KEYS), Vec::new())
    );
    let v1 = s3
        .list_objects()
        .bucket(&b)
        .delimiter("")
        .send()
        .await
        .expect("ListObjects with delimiter=");
    let keys: Vec<String> = v1
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys, strings(KEYS), "{v1:?}");
    assert!(v1.common_prefixes().is_empty(), "{v1:?}");
}

/// S3 stores `reports/` as a zero-byte object (consoles make "folders" this way); Garage
/// does too. A directory cannot hold an object with that name: s3s-fs made a folder and
/// answered 200, and every later GET, HEAD or listing found no such object. Now writing one
/// (PUT, copy, multipart) is refused with NotImplemented, and nothing is left behind.
async fn a_folder_marker_is_stored_or_refused_at_once(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[("src.txt", b"data")]).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, List, Write]);
    let s3 = ctx.sdk(&cred);
    let put = s3
        .put_object()
        .bucket(&b)
        .key("reports/")
        .body(ByteStream::from_static(b""))
        .send()
        .await;
    let copied = s3
        .copy_object()
        .bucket(&b)
        .key("copies/")
        .copy_source(format!("{b}/src.txt"))
        .send()
        .await;
    let started = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("parts/")
        .send()
        .await;
    let listed = s3.list_objects_v2().bucket(&b).send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    match kind {
        BackendKind::Fs => {
            let refusals = [
                ("PUT", put.map(drop).map_err(|e| refusal(&e))),
                ("copy", copied.map(drop).map_err(|e| refusal(&e))),
                ("upload", started.map(drop).map_err(|e| refusal(&e))),
            ];
            for (what, refused) in refusals {
                let (status, code, message) = refused.unwrap_err();
                assert_eq!(
                    (status, code.as_deref()),
                    (Some(501), Some("NotImplemented")),
                    "{what} of a folder marker: {message}"
                );
                assert!(message.contains("does not implement"), "{message}");
            }
            // Nothing was left behind: no folder on disk, no key in the listing.
            for folder in ["reports", "copies", "parts"] {
                let path = ctx.dir.path().join("backend").join(&b).join(folder);
                assert!(!path.exists(), "{} was made", path.display());
            }
            assert_eq!(keys, ["src.txt"]);
        }
        BackendKind::Garage | BackendKind::Moto => {
            put.expect("a folder marker is stored");
            copied.expect("a copy to a folder marker is stored");
            started.expect("an upload to a folder marker starts");
            assert_eq!(keys, ["copies/", "reports/", "src.txt"]);
            let got = s3.get_object().bucket(&b).key("reports/").send().await;
            assert_eq!(got.expect("GET reports/").content_length(), Some(0));
        }
    }
}

/// One page of a `ListObjects` (v1): keys, common prefixes, `IsTruncated`, `NextMarker`.
type V1Page = (Vec<String>, Vec<String>, bool, Option<String>);

async fn list_v1(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max_keys: i32,
) -> V1Page {
    let out = s3
        .list_objects()
        .bucket(bucket)
        .set_delimiter(delimiter.map(str::to_owned))
        .set_marker(marker.map(str::to_owned))
        .max_keys(max_keys)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListObjects after {marker:?}: {e:?}"));
    let keys = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned));
    let prefixes = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix().map(str::to_owned));
    (
        keys.collect(),
        prefixes.collect(),
        out.is_truncated() == Some(true),
        out.next_marker().map(str::to_owned),
    )
}

/// `ListObjects` (v1) resumes after `Marker`; a truncated page says so, and with a delimiter
/// it names its `NextMarker` (without one the client resumes after the last key, as S3
/// documents). Walking every page gives each key and common prefix once.
async fn list_objects_v1_pages_by_marker(kind: BackendKind) {
    let (ctx, b, cred) = seeded(kind).await;
    let s3 = ctx.sdk(&cred);
    assert_eq!(
        list_v1(&s3, &b, None, Some("plain"), 1000).await,
        (
            strings(&["reé/x", "reéy", "x--1", "x--2"]),
            Vec::new(),
            false,
            None
        )
    );
    for delimiter in [None, Some("/")] {
        let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
        let mut marker: Option<String> = None;
        for _page in 0..20 {
            let (k, p, truncated, next) = list_v1(&s3, &b, delimiter, marker.as_deref(), 2).await;
            assert!(k.len() + p.len() <= 2, "{delimiter:?}: {k:?} {p:?}");
            let last = k.iter().chain(&p).max().cloned();
            keys.extend(k);
            prefixes.extend(p);
            if !truncated {
                marker = None;
                break;
            }
            if delimiter.is_some() {
                assert_eq!(next, last, "NextMarker of a truncated page, {delimiter:?}");
            }
            marker = next.or(last);
        }
        assert_eq!(marker, None, "{delimiter:?}: the listing never ended");
        let expected = match delimiter {
            None => (strings(KEYS), Vec::new()),
            Some(_) => (
                strings(&["plain", "reéy", "x--1", "x--2"]),
                strings(&["a/", "reé/"]),
            ),
        };
        assert_eq!((keys, prefixes), expected, "{delimiter:?}");
    }
}

/// Starts an upload of `key` and returns its id.
async fn start_upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let started = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await;
    let started = started.unwrap_or_else(|e| panic!("start an upload of {key}: {e:?}"));
    started.upload_id.expect("an upload id")
}

/// Every upload in progress under `prefix` as (key, upload id), page by page.
async fn uploads(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    max_uploads: i32,
) -> Vec<(String, String)> {
    let mut listed = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    for _page in 0..20 {
        let out = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .max_uploads(max_uploads)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListMultipartUploads after {key_marker:?}: {e:?}"));
        assert!(
            out.uploads().len() <= max_uploads.unsigned_abs() as usize,
            "{out:?}"
        );
        for upload in out.uploads() {
            let (key, id) = (upload.key().unwrap_or_default(), upload.upload_id());
            listed.push((key.to_owned(), id.unwrap_or_default().to_owned()));
            assert!(upload.initiated().is_some(), "{upload:?}");
        }
        if out.is_truncated() != Some(true) {
            return listed;
        }
        key_marker = out.next_key_marker().map(str::to_owned);
        id_marker = out.next_upload_id_marker().map(str::to_owned);
    }
    panic!("the upload listing never ended");
}

/// rclone, minio clients and `aws s3api list-multipart-uploads` list uploads in progress to
/// clean them up. Before the fix the fs backend answered NotImplemented.
async fn uploads_in_progress_are_listed_by_prefix_and_paged(kind: BackendKind) {
    let ctx = Ctx::start(kind).await;
    let b = ctx.bucket_with(&[]).await;
    let cred = ctx.grant(&format!("s3://{b}/"), &[Read, List, Write]);
    let s3 = ctx.sdk(&cred);
    let mut expected = Vec::new();
    for key in ["logs/a.bin", "logs/a.bin", "logs/b/c.bin", "other/d.bin"] {
        let id = start_upload(&s3, &b, key).await;
        if key.starts_with("logs/") {
            expected.push((key.to_owned(), id));
        }
    }
    let sorted = |mut listed: Vec<(String, String)>| {
        listed.sort();
        listed
    };
    expected.sort();
    assert_eq!(sorted(uploads(&s3, &b, "logs/", 1000).await), expected);
    // One by one, through both markers (two uploads share a key), each upload once.
    assert_eq!(sorted(uploads(&s3, &b, "logs/", 1).await), expected);
    assert_eq!(uploads(&s3, &b, "none/", 1000).await, Vec::new());
    // Aborted and completed uploads are no longer in progress.
    let (aborted, completed) = (&expected[0], &expected[2]);
    s3.abort_multipart_upload()
        .bucket(&b)
        .key(&aborted.0)
        .upload_id(&aborted.1)
        .send()
        .await
        .expect("abort");
    let part = s3
        .upload_part()
        .bucket(&b)
        .key(&completed.0)
        .upload_id(&completed.1)
        .part_number(1)
        .body(ByteStream::from_static(b"the only part"))
        .send()
        .await
        .expect("upload a part");
    let parts = CompletedPart::builder()
        .part_number(1)
        .e_tag(part.e_tag().unwrap_or_default())
        .build();
    s3.complete_multipart_upload()
        .bucket(&b)
        .key(&completed.0)
        .upload_id(&completed.1)
        .multipart_upload(CompletedMultipartUpload::builder().parts(parts).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(
        uploads(&s3, &b, "logs/", 1000).await,
        vec![expected[1].clone()]
    );
}

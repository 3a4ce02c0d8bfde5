//! Writes and deletes where a directory is not a bucket. s3s-fs makes every folder a write
//! needs, the bucket's own included, so a write into a missing bucket would create it: it is
//! `NoSuchBucket` here, as on S3. A directory cannot hold an object `a` and an object
//! `a/b` (a file and a folder at one path): the second write is refused at once with the
//! code `MinIO`'s filesystem mode gives the same clash, not a 500 after the body was sent.
//! Deleting a key that holds no object (a folder, a path under an object) succeeds as on S3
//! (s3s-fs answered 500), and folders a delete empties go with it, so that the name is free
//! for an object again.

use std::path::Path;

use s3s::dto::{DeleteObjectsInput, DeleteObjectsOutput, DeletedObject};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::layout;

/// Why a key cannot be stored on a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clash {
    /// An object is stored at this key, which is a prefix of the key written (`a` for `a/b`).
    ParentIsObject(String),
    /// Objects are stored under the key written (`a/b` for `a`).
    ExistsAsFolder,
}

impl Clash {
    fn into_error(self, key: &str) -> S3Error {
        let (code, status, message) = match self {
            Clash::ParentIsObject(parent) => (
                "XMinioParentIsObject",
                hyper::StatusCode::BAD_REQUEST,
                format!(
                    "the directory backend cannot store {key:?}: an object is stored at {parent:?}, and a directory cannot hold an object and a folder of one name"
                ),
            ),
            Clash::ExistsAsFolder => (
                "XMinioObjectExistsAsDirectory",
                hyper::StatusCode::CONFLICT,
                format!(
                    "the directory backend cannot store {key:?}: objects are stored under {key:?}/, and a directory cannot hold an object and a folder of one name"
                ),
            ),
        };
        let mut err = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
        err.set_status_code(status);
        err
    }
}

/// `NoSuchBucket` unless `bucket` is a folder under the root (a name that does not resolve
/// plainly is left to s3s-fs).
pub(super) async fn check_bucket(root: &Path, bucket: &str) -> S3Result<()> {
    let Some(path) = layout::plain_path(root, bucket, "") else {
        return Ok(());
    };
    if tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    Err(S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("no bucket {bucket:?}"),
    ))
}

/// Refuses a write of `key` that the directory cannot store: into a missing bucket, under
/// an object, or over a folder that holds objects. A folder left empty is removed to make
/// room, as S3 has nothing there.
pub(super) async fn check_writable(root: &Path, bucket: &str, key: &str) -> S3Result<()> {
    check_bucket(root, bucket).await?;
    let Some(path) = layout::plain_path(root, bucket, key) else {
        return Ok(());
    };
    clash(root, bucket, &path)
        .await
        .map_or(Ok(()), |clash| Err(clash.into_error(key)))
}

/// The clash a file at `path` (in `bucket`) would meet, if any.
async fn clash(root: &Path, bucket: &str, path: &Path) -> Option<Clash> {
    let bucket_dir = root.join(bucket);
    let mut ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .take_while(|a| *a != bucket_dir)
        .collect();
    ancestors.reverse();
    for ancestor in ancestors {
        match tokio::fs::metadata(ancestor).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let parent = ancestor.strip_prefix(&bucket_dir).unwrap_or(ancestor);
                return Some(Clash::ParentIsObject(parent.to_string_lossy().into_owned()));
            }
            // Missing: so is everything below it.
            Err(_) => return None,
        }
    }
    let is_dir = tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir());
    (is_dir && tokio::fs::remove_dir(path).await.is_err()).then_some(Clash::ExistsAsFolder)
}

/// Whether s3s-fs's delete of `key` would find what it deletes: a file, or for a key
/// ending in `/`, a folder (which it removes when empty). Anything else holds no object.
pub(super) async fn deletable(root: &Path, bucket: &str, key: &str) -> bool {
    let Some(path) = layout::plain_path(root, bucket, key) else {
        return true;
    };
    match tokio::fs::metadata(path).await {
        Ok(m) if key.ends_with('/') => m.is_dir(),
        Ok(m) => m.is_file(),
        Err(_) => false,
    }
}

/// Removes the folders above a deleted `key` that it left empty, up to the bucket, as S3
/// keeps no folders: `a` can hold an object again once `a/b` is gone. A folder that is not
/// empty (or anything that fails) ends it.
pub(super) async fn prune(root: &Path, bucket: &str, key: &str) {
    let Some(path) = layout::plain_path(root, bucket, key) else {
        return;
    };
    let bucket_dir = root.join(bucket);
    for folder in path.ancestors().skip(1) {
        if folder == bucket_dir || !folder.starts_with(&bucket_dir) {
            return;
        }
        if tokio::fs::remove_dir(folder).await.is_err() {
            return;
        }
    }
}

/// `DeleteObjects`: the keys that hold no object are deleted as S3 deletes missing keys,
/// the others by s3s-fs, then the folders they emptied are removed.
pub(super) async fn delete_batch(
    fs: &s3s_fs::FileSystem,
    root: &Path,
    mut req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let bucket = req.input.bucket.clone();
    let mut nothing_there = Vec::new();
    let mut objects = Vec::new();
    for object in std::mem::take(&mut req.input.delete.objects) {
        if deletable(root, &bucket, &object.key).await {
            objects.push(object);
        } else {
            nothing_there.push(DeletedObject {
                key: Some(object.key),
                version_id: object.version_id,
                ..DeletedObject::default()
            });
        }
    }
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    req.input.delete.objects = objects;
    let mut answer = fs.delete_objects(req).await?;
    for key in &keys {
        prune(root, &bucket, key).await;
    }
    answer
        .output
        .deleted
        .get_or_insert_with(Vec::new)
        .extend(nothing_there);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_clash_is_named_and_an_empty_folder_makes_room() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("b/dir/sub")).unwrap();
        std::fs::write(r.join("b/dir/sub/x"), b"x").unwrap();
        std::fs::write(r.join("b/file"), b"f").unwrap();
        std::fs::create_dir_all(r.join("b/empty")).unwrap();
        let at = |key: &str| r.join("b").join(key);
        let parent = |p: &str| Some(Clash::ParentIsObject(p.to_owned()));
        assert_eq!(clash(r, "b", &at("file/below")).await, parent("file"));
        assert_eq!(clash(r, "b", &at("file/x/y")).await, parent("file"));
        assert_eq!(clash(r, "b", &at("dir")).await, Some(Clash::ExistsAsFolder));
        assert_eq!(
            clash(r, "b", &at("dir/sub")).await,
            Some(Clash::ExistsAsFolder)
        );
        assert_eq!(clash(r, "b", &at("dir/new")).await, None);
        assert_eq!(clash(r, "b", &at("new/deep/key")).await, None);
        // An empty folder holds no object: it is removed so the object can be written.
        assert_eq!(clash(r, "b", &at("empty")).await, None);
        assert!(!at("empty").exists());
        let err = check_writable(r, "missing", "k").await.unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::NoSuchBucket);
        let err = check_writable(r, "b", "file/below").await.unwrap_err();
        assert_eq!(err.status_code(), Some(hyper::StatusCode::BAD_REQUEST));
        assert!(err.message().unwrap().contains("\"file\""), "{err:?}");
    }

    #[tokio::test]
    async fn a_delete_removes_the_folders_it_emptied_and_no_more() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("b/a/b/c")).unwrap();
        std::fs::write(r.join("b/a/keep"), b"k").unwrap();
        // `a/b/c/gone` was just deleted: `a/b/c` and `a/b` are empty, `a` is not.
        prune(r, "b", "a/b/c/gone").await;
        assert!(!r.join("b/a/b").exists());
        assert!(r.join("b/a/keep").exists());
        assert!(r.join("b").is_dir());
        assert!(deletable(r, "b", "a/keep").await);
        assert!(!deletable(r, "b", "a").await);
        assert!(!deletable(r, "b", "a/keep/under").await);
        assert!(deletable(r, "b", "a/").await);
    }
}
